//! [`Core`]: the driver of a plain WebSocket, a `Connection` on an [`Io`].
//! The I/O is the shared drive loop ([`Io::poll_drive`]); this file holds
//! what a plain WebSocket does with the connection's events and with the
//! application's sends.

use std::task::{Context, Poll, ready};

use hookup_proto::{CloseCode, Closed, Connection, Event, Initiator};

use crate::drive::{Drove, Io};
use crate::error::{Error, Result, closed_error};
use crate::message::Message;
use crate::ws::Config;
use crate::{Runtime, Transport};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    /// `Event::Closed` seen: write out what is left, then shut down.
    Finishing,
    Done,
}

/// The driver of a plain WebSocket: a `Connection` on an `Io`.
pub(crate) struct Core<S, R: Runtime> {
    pub(crate) conn: Connection,
    pub(crate) io: Io<S, R>,
    write_buffer_size: usize,
    phase: Phase,
    pub(crate) closed: Option<Closed>,
    /// The last item the stream yields after `Closed` (a close frame or an error).
    final_item: Option<Result<Message>>,
    /// The subprotocol agreed in the handshake.
    pub(crate) subprotocol: Option<String>,
    /// This poll consumed input or advanced the phase. A split socket's
    /// other half may be waiting for exactly that and need not get a wakeup
    /// of its own: a readiness-based reactor (async-io) does not report
    /// data that was read before it looked.
    pub(crate) advanced: bool,
    /// The application is working through received messages that were
    /// already waiting when the stream last yielded: it comes back to read,
    /// so a flush need not read for it (see `poll_flush`).
    in_burst: bool,
}

impl<S, R: Transport<S>> Core<S, R> {
    pub(crate) fn new(conn: Connection, io: S, config: &Config) -> Self {
        let mut io = Io::new(io, config.max_read_size);
        io.set_write_stall_timeout(config.write_stall_timeout);
        Self {
            conn,
            io,
            write_buffer_size: config.write_buffer_size,
            phase: Phase::Running,
            closed: None,
            final_item: None,
            advanced: false,
            in_burst: false,
            subprotocol: None,
        }
    }

    /// The state machine and the stream, for moving the connection into
    /// another driver (the reliable session).
    pub(crate) fn into_parts(self) -> (Connection, S) {
        (self.conn, self.io.into_inner())
    }

    /// The I/O error that ended the connection, if it is to be reported:
    /// not after the close frames were exchanged (a reset is then just the
    /// end, and the connection closed cleanly).
    fn io_error(&mut self, c: &Closed) -> Option<std::io::Error> {
        self.io.take_error().filter(|_| !c.clean)
    }

    /// Drives I/O until the state machine has an event; `None` once the
    /// connection is closed and the transport shut down.
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        loop {
            match self.phase {
                Phase::Done => return Poll::Ready(None),
                Phase::Finishing => {
                    ready!(self.io.poll_finish(&mut self.conn, cx));
                    self.phase = Phase::Done;
                    self.advanced = true;
                    continue;
                }
                Phase::Running => {}
            }
            if let Some(ev) = self.conn.poll_event() {
                if let Event::Closed(c) = &ev {
                    self.phase = Phase::Finishing;
                    self.closed = Some(c.clone());
                }
                return Poll::Ready(Some(ev));
            }
            // Nothing left to hand out: the application is about to wait,
            // so this is the moment to write everything queued in one go.
            match ready!(self.io.poll_drive(&mut self.conn, true, cx)) {
                Drove::Input => self.advanced = true,
                // Writing makes no events, and every source is waiting.
                Drove::Output => return Poll::Pending,
            }
        }
    }

    /// The stream: messages (and surfaced control frames) until closed.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        let r = self.poll_next_item(cx);
        self.in_burst = r.is_ready() && self.conn.has_events();
        r
    }

    fn poll_next_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        loop {
            match ready!(self.poll_event(cx)) {
                None => return Poll::Ready(self.final_item.take()),
                Some(Event::Message(m)) => return Poll::Ready(Some(Ok(m.into()))),
                Some(Event::Ping(p)) => return Poll::Ready(Some(Ok(Message::Ping(p)))),
                Some(Event::Pong { payload, rtt }) => {
                    return Poll::Ready(Some(Ok(Message::Pong { payload, rtt })));
                }
                Some(Event::Closed(c)) => {
                    self.final_item = if let Some(e) = self.io_error(&c) {
                        Some(Err(Error::Io(e)))
                    } else if let Some(e) = closed_error(&c) {
                        Some(Err(e))
                    } else if c.initiator == Some(Initiator::Remote) {
                        let frame = c
                            .received
                            .clone()
                            .filter(|f| f.code != CloseCode::NO_STATUS);
                        Some(Ok(Message::Close(frame)))
                    } else {
                        None
                    };
                }
                Some(_) => {}
            }
        }
    }

    /// Reads and processes what the socket has ready, without waiting, so
    /// that pings are answered (and a peer's close or EOF is noticed) while
    /// the application only writes. Events stay queued for `poll_next`; the
    /// read stops at `max_buffered_bytes` like any other.
    fn poll_input(&mut self, cx: &mut Context<'_>) {
        let mut progress = false;
        for _ in 0..8 {
            if self.phase != Phase::Running
                || self.io.poll_read_once(&mut self.conn, cx).is_pending()
            {
                break;
            }
            progress = true;
        }
        if progress {
            // A reader parked on the socket (split halves) must learn of
            // the events queued here.
            cx.waker().wake_by_ref();
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.phase != Phase::Running || self.conn.is_closed() {
            return Err(Error::Usage(hookup_proto::UsageError::Closed));
        }
        Ok(())
    }

    /// Input is not read here unless sending has to wait: a protocol
    /// error read between the application's decision to send and
    /// `start_send` would fail the connection before the message is queued
    /// (a reply to the last valid message must go out before our close).
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.check_open()?;
        if self.conn.transmit_len() >= self.write_buffer_size {
            // About to wait for the socket: keep answering pings and
            // noticing a close meanwhile (replies queue behind our data).
            self.poll_input(cx);
            ready!(self.io.poll_write(&mut self.conn, cx))?;
        }
        Poll::Ready(Ok(()))
    }

    pub(crate) fn start_send(&mut self, msg: Message) -> Result<()> {
        self.check_open()?;
        let r = match msg {
            Message::Text(t) => self.conn.send(hookup_proto::Message::Text(t)),
            Message::Binary(b) => self.conn.send(hookup_proto::Message::Binary(b)),
            Message::Ping(p) => self.conn.send_ping(R::now(), &p),
            Message::Pong { payload, .. } => self.conn.send_pong(&payload),
            Message::Close(f) => {
                let (code, reason) =
                    f.map_or((CloseCode::NORMAL, String::new()), |f| (f.code, f.reason));
                self.conn.close(R::now(), code, &reason)
            }
        };
        Ok(r?)
    }

    /// Writes out what is queued, then reads what the socket has, so that
    /// pings are answered (and a close is noticed) while the application
    /// only writes; a reply that came of it is written too. Not while the
    /// application is working through messages that were already waiting
    /// (replying to each): it reads again when it has taken them, and a
    /// read per reply would cost a syscall per message.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.phase != Phase::Running {
            return Poll::Ready(Ok(()));
        }
        let written = self.io.poll_write(&mut self.conn, cx);
        if !(self.in_burst && self.conn.has_events()) {
            self.poll_input(cx);
        }
        if let Poll::Ready(Ok(())) = written
            && self.conn.transmit_len() > 0
        {
            return Poll::Ready(ready!(self.io.poll_write(&mut self.conn, cx)).map_err(Error::Io));
        }
        Poll::Ready(ready!(written).map_err(Error::Io))
    }

    /// Starts closing (1000) if open, then drives the connection to its end,
    /// discarding incoming messages.
    pub(crate) fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.conn.is_open() {
            self.conn.close(R::now(), CloseCode::NORMAL, "")?;
        }
        while ready!(self.poll_event(cx)).is_some() {}
        Poll::Ready(Ok(()))
    }

    /// Drives the opening handshake to the first `Connected` or `Request`.
    pub(crate) fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event>> {
        loop {
            match ready!(self.poll_event(cx)) {
                Some(ev @ (Event::Connected(_) | Event::Request(_))) => return Poll::Ready(Ok(ev)),
                Some(Event::Closed(c)) => {
                    let err = self
                        .io_error(&c)
                        .map(Error::Io)
                        .or_else(|| closed_error(&c))
                        .unwrap_or(Error::Closed(Box::new(c)));
                    // Write out the HTTP error answer (server) before failing.
                    while ready!(self.poll_event(cx)).is_some() {}
                    return Poll::Ready(Err(err));
                }
                Some(_) => {}
                None => {
                    return Poll::Ready(Err(Error::Handshake(hookup_proto::HandshakeError::Eof)));
                }
            }
        }
    }

    pub(crate) fn get_ref(&self) -> &S {
        self.io.get_ref()
    }
}
