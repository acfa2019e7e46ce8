//! The I/O surface shared by [`Connection`] and the reliable
//! [`Session`](crate::reliable::Session): what an adapter needs to drive
//! either with one loop. Each layer implements it in its own module (the
//! session in `reliable::session`), so this one depends on nothing above
//! the connection.

use std::io::IoSlice;
use std::time::Instant;

use bytes::BytesMut;

use crate::connection::Connection;

/// A sans-IO endpoint an adapter moves bytes and time for.
pub trait Endpoint {
    /// The receive buffer to read into (see [`Connection::read_buf`]);
    /// `None` when there is no transport to read from.
    fn read_buf(&mut self) -> Option<&mut BytesMut>;
    /// Bytes to make room for before the next read (at least `min`).
    fn read_hint(&self, min: usize) -> usize;
    /// Whether to read from the transport now.
    fn wants_read(&self) -> bool;
    /// Processes bytes appended to the receive buffer.
    fn handle_read(&mut self, now: Instant);
    /// The transport reached end of file or failed.
    fn handle_eof(&mut self, now: Instant);
    /// Fires due timers.
    fn handle_timeout(&mut self, now: Instant);
    /// When to call `handle_timeout` next.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Bytes queued for the transport.
    fn transmit_len(&self) -> usize;
    /// Slices of the queued output for a vectored write.
    fn transmit_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize;
    /// Marks `n` queued bytes as written.
    fn advance_transmit(&mut self, n: usize);
}

impl Endpoint for Connection {
    fn read_buf(&mut self) -> Option<&mut BytesMut> {
        Some(Self::read_buf(self))
    }
    fn read_hint(&self, min: usize) -> usize {
        Self::read_hint(self, min)
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
