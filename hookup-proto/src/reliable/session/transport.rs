//! A session's transport surface: the current connection's bytes in and
//! out, and the [`Endpoint`] implementation an adapter drives a session
//! with (the reliable layer implements it here, over the connection's).

use std::io::IoSlice;
use std::time::Instant;

use bytes::BytesMut;

use super::{Phase, Session, WireMode};
use crate::connection::Connection;
use crate::endpoint::Endpoint;

impl Session {
    /// The current connection's receive buffer (see
    /// [`Connection::read_buf`]); `None` without a connection.
    pub fn read_buf(&mut self) -> Option<&mut BytesMut> {
        self.conn.as_mut().map(Connection::read_buf)
    }

    /// Processes bytes appended to [`read_buf`](Self::read_buf).
    pub fn handle_read(&mut self, now: Instant) {
        self.advance_clock(now);
        if let Some(conn) = &mut self.conn {
            conn.handle_read(self.now);
        }
        self.pump();
    }

    /// Copies `data` into the receive buffer and processes it.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        self.advance_clock(now);
        if let Some(conn) = &mut self.conn {
            conn.handle_input(self.now, data);
        }
        self.pump();
    }

    /// The transport ended (EOF or error).
    pub fn handle_eof(&mut self, now: Instant) {
        self.advance_clock(now);
        if let Some(conn) = &mut self.conn {
            conn.handle_eof(self.now);
        }
        self.pump();
    }

    /// Appends the current connection's output to `buf` (see
    /// [`Connection::poll_transmit`]).
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        let sent = self.conn.as_mut().is_some_and(|c| c.poll_transmit(buf));
        if sent {
            // Room in the connection: the outbox may continue.
            self.pump();
        }
        sent
    }

    /// Whether the next [`send`](Self::send) would wait in the outbox
    /// although a connection is up: the session is established, but the
    /// connection's queued output has reached
    /// [`SessionConfig::write_window`](crate::reliable::SessionConfig::write_window)
    /// (or messages already wait for it). A sender that wants backpressure
    /// waits until the transport took some output
    /// ([`advance_transmit`](Self::advance_transmit),
    /// [`poll_transmit`](Self::poll_transmit)) and this is false again; the
    /// outbox bounds apply either way.
    ///
    /// Always false while no connection is established: messages then wait
    /// in the outbox for the next one (within its bounds).
    pub fn is_write_blocked(&self) -> bool {
        if self.phase != Phase::Established || !self.conn.as_ref().is_some_and(Connection::is_open)
        {
            return false;
        }
        let unwritten = match &self.wire {
            WireMode::Legacy(l) => l.has_unwritten(),
            WireMode::V1 => self.channel.has_unwritten(),
        };
        unwritten || self.transmit_len() >= self.config.write_window.max(1)
    }

    /// Bytes queued for the current transport.
    pub fn transmit_len(&self) -> usize {
        self.conn.as_ref().map_or(0, Connection::transmit_len)
    }

    /// See [`Connection::transmit_vectored`].
    pub fn transmit_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        self.conn.as_ref().map_or(0, |c| c.transmit_vectored(dst))
    }

    /// See [`Connection::advance_transmit`].
    pub fn advance_transmit(&mut self, n: usize) {
        if let Some(c) = &mut self.conn {
            c.advance_transmit(n);
            if c.transmit_len() == 0 {
                self.channel.ack_queued = false;
            }
        }
        self.pump();
    }

    /// Whether an ACK waits in the output, not yet handed to the transport.
    ///
    /// A driver that hands messages to its application one at a time
    /// writes out when this holds and the application comes back for the
    /// next one, even with more messages waiting: the peer then learns of
    /// what was taken within
    /// [`SessionConfig::ack_every`](crate::reliable::SessionConfig::ack_every)
    /// messages (or [`ack_delay`](crate::reliable::SessionConfig::ack_delay)), which
    /// bounds what it sends again after this side crashes (PROTOCOL.md §8).
    pub fn has_unsent_ack(&self) -> bool {
        self.channel.ack_queued && self.transmit_len() > 0
    }

    /// Whether the caller should read from the transport.
    pub fn wants_read(&self) -> bool {
        self.conn.as_ref().is_some_and(Connection::wants_read)
    }
}

impl Endpoint for Session {
    fn read_buf(&mut self) -> Option<&mut BytesMut> {
        Self::read_buf(self)
    }
    fn read_hint(&self, min: usize) -> usize {
        self.connection().map_or(min, |c| c.read_hint(min))
    }
    fn wants_read(&self) -> bool {
        Self::wants_read(self)
    }
    fn handle_read(&mut self, now: Instant) {
        Self::handle_read(self, now);
    }
    fn handle_eof(&mut self, now: Instant) {
        Self::handle_eof(self, now);
    }
    fn handle_timeout(&mut self, now: Instant) {
        Self::handle_timeout(self, now);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Self::poll_timeout(self)
    }
    fn transmit_len(&self) -> usize {
        Self::transmit_len(self)
    }
    fn transmit_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        Self::transmit_vectored(self, dst)
    }
    fn advance_transmit(&mut self, n: usize) {
        Self::advance_transmit(self, n);
    }
}
