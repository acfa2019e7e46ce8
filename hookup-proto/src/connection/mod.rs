//! The connection state machine: one per WebSocket connection, both roles.
//!
//! Split along its seams: this file has the types, construction, getters,
//! the event queue and closing; `transmit` the output queue, the send
//! commands and the one frame encoder; `receive` frame decoding,
//! reassembly and inflation; `upgrade` the opening handshake (the glue to
//! `crate::handshake`); `timers` the timer table and the clock. Each adds
//! its own `impl Connection` block.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::close::{CloseCode, CloseFrame};
use crate::config::Config;
use crate::deflate::{Deflate, DeflateParams};
use crate::error::{Error, HandshakeError, ProtocolError, UsageError};
use crate::event::{Closed, Event, Initiator};
use crate::frame::FrameHeader;
use crate::handshake::ClientRequest;
use crate::limits::Charge;
use crate::message::{Fragment, Message, MessageKind, Utf8Bytes};
use crate::rng::Rng;
use crate::utf8::Utf8Validator;

use receive::{Incoming, PartialFrame};
use timers::{TIMER_COUNT, Timer};
use transmit::Outgoing;
use upgrade::Handshake;

mod limits;
mod receive;
mod timers;
mod transmit;
mod upgrade;

/// Which end of the connection this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// Sends masked frames, expects unmasked ones.
    Client,
    /// Sends unmasked frames, expects masked ones.
    Server,
}

/// The state of a connection. Every transition is made in this module;
/// the table in the crate docs lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// (Client) The request is written; waiting for the server's response.
    AwaitingResponse,
    /// (Server) Waiting for the client's request.
    AwaitingRequest,
    /// (Server) The request was shown to the application as
    /// [`Event::Request`]; waiting for `accept` or `reject`.
    AwaitingDecision,
    /// Messages flow both ways.
    Open,
    /// This endpoint sent a close frame and waits for the peer's.
    ClosingLocal,
    /// (Client) Close frames were exchanged; waiting for the server to close
    /// the transport (RFC 6455 §7.1.1).
    ClosingRemote,
    /// Finished. Write out remaining transmit bytes, then close the transport.
    Closed,
}

/// The RSV1 bit in [`FrameHeader::rsv`]: a compressed message (RFC 7692).
const RSV1: u8 = 0b100;

/// A WebSocket connection as a pure state machine (sans-IO).
///
/// The methods fall into four groups, as in quinn-proto:
/// * getters (`state`, `role`, `transmit_len`, ...);
/// * `handle_*`: input from the transport and the clock;
/// * commands from the application (`send_*`, `close`, `accept`, `reject`);
/// * `poll_*`: output for the caller to act on.
///
/// See the [crate docs](crate) for the run loop and the drain order.
#[derive(Debug)]
pub struct Connection {
    role: Role,
    state: State,
    config: Config,
    rng: Rng,
    handshake: Handshake,
    recv: BytesMut,
    partial: Option<PartialFrame>,
    incoming: Option<Incoming>,
    utf8: Utf8Validator,
    events: VecDeque<Queued>,
    buffered: usize,
    out: Outgoing,
    /// Kind of the outgoing fragmented message in progress, if any.
    sending_fragmented: Option<MessageKind>,
    timers: [Option<Instant>; TIMER_COUNT],
    pings: VecDeque<(Bytes, Instant)>,
    close_sent: Option<CloseFrame>,
    close_received: Option<CloseFrame>,
    close_initiator: Option<Initiator>,
    /// The latest time passed in by the caller.
    now: Instant,
    /// A peer error found after events that are still queued: the failure
    /// takes effect once those are drained, so that replies to messages
    /// before the bad frame still go out before our close frame.
    pending_fail: Option<ProtocolError>,
    /// A peer's close frame that arrived behind still-queued messages: like
    /// `pending_fail`, it takes effect once they are drained, so replies to
    /// them still go out before our close reply.
    pending_close: Option<(FrameHeader, Bytes)>,
    /// permessage-deflate state, once negotiated.
    deflate: Option<Box<Deflate>>,
    /// This connection's charge against `Config::input_budget`.
    charge: Charge,
    /// The idle timer sent its ping and nothing was read since.
    idle_pinged: bool,
    /// A data message started in the input processed last (re-arms the
    /// message timer).
    message_started: bool,
}

impl Connection {
    fn new(role: Role, state: State, handshake: Handshake, config: Config, now: Instant) -> Self {
        let rng = config.rng_seed.map_or_else(Rng::from_std, Rng::from_seed);
        let mut conn = Self {
            role,
            state,
            rng,
            handshake,
            recv: BytesMut::new(),
            partial: None,
            incoming: None,
            utf8: Utf8Validator::default(),
            events: VecDeque::new(),
            buffered: 0,
            out: Outgoing::default(),
            sending_fragmented: None,
            timers: [None; TIMER_COUNT],
            pings: VecDeque::new(),
            close_sent: None,
            close_received: None,
            close_initiator: None,
            now,
            pending_fail: None,
            pending_close: None,
            deflate: None,
            charge: Charge::new(config.input_budget.clone()),
            idle_pinged: false,
            message_started: false,
            config,
        };
        if !matches!(state, State::Open)
            && let Some(t) = conn.config.handshake_timeout
        {
            conn.set_timer(Timer::Handshake, now + t);
        }
        conn
    }

    /// A client that starts by sending the upgrade request for `request`.
    pub fn client(request: &ClientRequest, config: Config, now: Instant) -> Self {
        let mut conn = Self::new(
            Role::Client,
            State::AwaitingResponse,
            Handshake::Done,
            config,
            now,
        );
        conn.start_client_handshake(request);
        conn
    }

    /// A server waiting for a client's upgrade request.
    pub fn server(config: Config, now: Instant) -> Self {
        Self::new(
            Role::Server,
            State::AwaitingRequest,
            Handshake::Server { pending: None },
            config,
            now,
        )
    }

    /// A connection whose opening handshake was done elsewhere (for example
    /// by hyper's upgrade mechanism). It starts [`State::Open`].
    pub fn new_open(role: Role, config: Config, now: Instant) -> Self {
        let mut conn = Self::new(role, State::Open, Handshake::Done, config, now);
        conn.check_limits();
        conn
    }

    /// Like [`new_open`](Self::new_open), with permessage-deflate parameters
    /// negotiated elsewhere (see [`deflate::server_accept`](crate::deflate::server_accept) and
    /// [`deflate::client_check_response`](crate::deflate::client_check_response)); `None` for none.
    pub fn new_open_with_deflate(
        role: Role,
        config: Config,
        deflate: Option<DeflateParams>,
        now: Instant,
    ) -> Self {
        let mut conn = Self::new(role, State::Open, Handshake::Done, config, now);
        conn.deflate = deflate.map(|p| Box::new(Deflate::new(p, conn.config.deflate.as_ref())));
        conn.check_limits();
        conn
    }

    // ------------------------------------------------------------ getters

    /// This endpoint's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the connection may still send data messages.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Whether the connection is finished (after [`Event::Closed`]).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The permessage-deflate parameters agreed in the handshake, if the
    /// extension is in use.
    pub fn permessage_deflate(&self) -> Option<&DeflateParams> {
        self.deflate.as_deref().map(Deflate::params)
    }

    /// Whether the caller should read more bytes from the transport: false
    /// once closed, while a server waits for the application's decision on a
    /// request, and while received payload waiting in the event queue reaches
    /// [`Config::max_buffered_bytes`] (backpressure). An empty queue never
    /// stops reading, whatever the limit.
    pub fn wants_read(&self) -> bool {
        !matches!(self.state, State::Closed | State::AwaitingDecision)
            && self.pending_fail.is_none()
            && self.pending_close.is_none()
            && (self.buffered == 0 || self.buffered < self.config.max_buffered_bytes)
            // A peer that does not read what we owe it (pongs, echoes) must
            // not make us buffer without bound: stop reading until it does.
            && self.out.len <= self.config.max_buffered_bytes
    }

    /// Whether events are waiting in [`poll_event`](Self::poll_event).
    /// An adapter may defer flushing output while this is true, so that
    /// replies to a burst of messages leave in one write.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Bytes queued for the transport.
    pub fn transmit_len(&self) -> usize {
        self.out.len
    }

    /// Bytes the caller should make room for before its next read: what the
    /// frame in progress still needs, at least `min`.
    pub fn read_hint(&self, min: usize) -> usize {
        let need = match self.partial {
            Some(p) => (p.header_len as u64 + p.header.payload_len)
                .saturating_sub(self.recv.len() as u64)
                .min(self.config.max_frame_size as u64) as usize,
            None => 0,
        };
        need.max(min)
    }

    // ------------------------------------------------------------ input

    /// The receive buffer. A caller that reads from its transport straight
    /// into it (for example with `read_buf`) avoids a copy; it must only
    /// append bytes, then call [`handle_read`](Self::handle_read).
    pub fn read_buf(&mut self) -> &mut BytesMut {
        &mut self.recv
    }

    /// Processes bytes appended to [`read_buf`](Self::read_buf).
    pub fn handle_read(&mut self, now: Instant) {
        self.process(now);
        self.check_limits();
        if self.recv.is_empty() && self.recv.capacity() > 64 << 10 {
            // Give back the memory of a large message once it is consumed.
            self.recv = BytesMut::new();
        }
    }

    /// Copies `data` into the receive buffer and processes it.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        if self.state == State::Closed {
            return;
        }
        self.recv.extend_from_slice(data);
        self.handle_read(now);
    }

    /// The transport reached end of file (the peer closed it).
    pub fn handle_eof(&mut self, now: Instant) {
        self.advance_clock(now);
        if let Some(e) = self.pending_fail.take() {
            return self.fail(e);
        }
        if let Some((h, payload)) = self.pending_close.take()
            && let Err(e) = self.handle_frame(h, payload)
        {
            return self.fail(e);
        }
        match self.state {
            State::Closed => {}
            State::AwaitingResponse | State::AwaitingRequest | State::AwaitingDecision => {
                self.finish(false, Some(HandshakeError::Eof.into()));
            }
            State::ClosingRemote => self.finish(true, None),
            State::Open | State::ClosingLocal => self.finish(false, Some(Error::Eof)),
        }
    }

    // ------------------------------------------------------------ events

    /// The next event if it is a complete data message, as `(text, payload)`
    /// (a text payload was validated as UTF-8); `None` when the next event
    /// is anything else, or there is none: then [`poll_event`](Self::poll_event)
    /// has it. The same queue as `poll_event`, without building an `Event`.
    #[inline]
    pub(crate) fn poll_message(&mut self) -> Option<(bool, Bytes)> {
        if !matches!(self.events.front(), Some(Queued::Message { .. })) {
            return None;
        }
        match self.events.pop_front() {
            Some(Queued::Message { text, data }) => {
                self.buffered -= data.len();
                Some((text, data))
            }
            _ => None,
        }
    }

    /// The next event, if any. Drain until `None` after every input.
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.events.is_empty() {
            if let Some(e) = self.pending_fail.take() {
                self.fail(e);
            } else if let Some((h, payload)) = self.pending_close.take()
                && let Err(e) = self.handle_frame(h, payload)
            {
                self.fail(e);
            }
        }
        let ev = self.events.pop_front()?;
        self.buffered -= ev.weight();
        // Each arm returns on its own: with a shared tail the compiler builds
        // the `Event` on the stack and copies all 256 bytes of it.
        match ev {
            Queued::Message { text: true, data } => Some(Event::Message(Message::Text(
                Utf8Bytes::from_validated(data),
            ))),
            Queued::Message { text: false, data } => Some(Event::Message(Message::Binary(data))),
            Queued::Fragment(f) => Some(Event::Fragment(f)),
            Queued::Other(ev) => unbox_event(ev),
        }
    }

    fn push_event(&mut self, ev: Event) {
        self.push_queued(match ev {
            Event::Message(m) => Queued::Message {
                text: m.is_text(),
                data: m.into_bytes(),
            },
            Event::Fragment(f) => Queued::Fragment(f),
            other => Queued::Other(Box::new(other)),
        });
    }

    // Not inlined, so that the compiler does not merge it with the inlined
    // push in `deliver` into one block that goes through a stack copy
    // (whose wide reloads of narrow stores stall store forwarding).
    #[inline(never)]
    fn push_queued(&mut self, ev: Queued) {
        self.buffered += ev.weight();
        self.events.push_back(ev);
    }

    #[cold]
    #[inline(never)]
    fn push_grow(&mut self, ev: Queued) {
        self.events.push_back(ev);
    }

    // ------------------------------------------------------------ closing

    /// Starts the closing handshake with `code` and `reason` (at most 123
    /// bytes). Messages may still arrive until the peer's close frame; the
    /// peer has [`Config::close_timeout`] to send it.
    pub fn close(&mut self, now: Instant, code: CloseCode, reason: &str) -> Result<(), UsageError> {
        match self.state {
            State::Open => {}
            State::Closed => return Err(UsageError::Closed),
            _ => return Err(UsageError::NotOpen),
        }
        if !code.is_valid_on_wire() {
            return Err(UsageError::InvalidCloseCode(code.0));
        }
        if reason.len() > 123 {
            return Err(UsageError::ControlPayloadTooLong);
        }
        self.queue_close(Some(CloseFrame {
            code,
            reason: reason.to_owned(),
        }));
        self.advance_clock(now);
        self.close_initiator = Some(Initiator::Local);
        self.state = State::ClosingLocal;
        self.set_timer(Timer::Close, self.now + self.config.close_timeout);
        Ok(())
    }

    /// Ends the connection: emits [`Event::Closed`] once.
    fn finish(&mut self, clean: bool, error: Option<Error>) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.timers = [None; TIMER_COUNT];
        self.charge.set(0);
        self.partial = None;
        self.incoming = None;
        self.recv = BytesMut::new();
        // A request still awaiting a decision (handshake timeout or EOF)
        // can no longer be accepted: that would reopen a closed connection.
        if let Handshake::Server { pending } = &mut self.handshake {
            *pending = None;
        }
        // Likewise a peer's close or error deferred behind queued events
        // (close timeout while undrained): handling it after `Closed` would
        // reopen the connection and emit a second `Closed`.
        self.pending_close = None;
        self.pending_fail = None;
        let sent = self
            .close_sent
            .clone()
            .filter(|f| f.code != CloseCode::NO_STATUS);
        self.push_event(Event::Closed(Closed {
            received: self.close_received.clone(),
            sent,
            initiator: self.close_initiator,
            clean,
            error,
        }));
    }

    /// Fails the connection for a peer's protocol error (RFC 6455 §7.1.7):
    /// queue a close frame with the error's code, then finish.
    fn fail(&mut self, err: ProtocolError) {
        if self.close_sent.is_none() {
            self.close_initiator = Some(Initiator::Local);
            self.queue_close(Some(CloseFrame {
                code: err.close_code(),
                reason: String::new(),
            }));
        }
        self.finish(false, Some(Error::Protocol(err)));
    }

    /// Fails now, or after the queued events are drained (see `pending_fail`).
    fn defer_fail(&mut self, err: ProtocolError) {
        if self.events.is_empty() {
            self.fail(err);
        } else {
            self.pending_fail = Some(err);
        }
    }
}

/// A queued event. Messages and fragments are kept inline and everything
/// else boxed, so queueing a message moves 48 bytes instead of a whole
/// `Event` (256 bytes, because of `Request`).
#[derive(Debug)]
enum Queued {
    /// A complete message; `text` was validated as UTF-8.
    Message {
        text: bool,
        data: Bytes,
    },
    Fragment(Fragment),
    Other(Box<Event>),
}

impl Queued {
    /// Received payload bytes, for backpressure.
    fn weight(&self) -> usize {
        match self {
            Self::Message { data, .. } => data.len(),
            Self::Fragment(f) => f.data.len(),
            Self::Other(_) => 0,
        }
    }
}

#[cold]
#[inline(never)]
fn unbox_event(ev: Box<Event>) -> Option<Event> {
    Some(*ev)
}

/// Regressions found by the fuzz targets in `fuzz/`.
#[cfg(test)]
mod fuzz_regressions {
    use std::time::Duration;

    use super::*;

    /// `connection_ops`: with `max_buffered_bytes` at 0, `wants_read` was
    /// false even with an empty event queue, so a caller that obeys it never
    /// read anything.
    #[test]
    fn zero_max_buffered_bytes_still_reads_with_an_empty_queue() {
        let now = Instant::now();
        let config = Config {
            max_buffered_bytes: 0,
            ..Config::default()
        };
        let server = Connection::server(config.clone(), now);
        assert!(server.wants_read());
        let mut open = Connection::new_open(Role::Client, config, now);
        assert!(open.wants_read());
        open.handle_input(now, &[0x82, 0x01, 0xAA]);
        assert!(!open.wants_read(), "one byte queued, over the limit");
        assert!(matches!(open.poll_event(), Some(Event::Message(_))));
        assert!(open.wants_read());
    }

    /// `connection_ops` (seed `deferred_close_then_close_timeout`): a close
    /// frame deferred behind an undrained message, then the close timeout,
    /// then the drain: the deferred close ran after `Closed`, moving the
    /// client back to `ClosingRemote` and emitting a second `Closed` on EOF.
    #[test]
    fn deferred_close_is_dropped_when_the_close_timer_closes_first() {
        let now = Instant::now();
        let mut c = Connection::new_open(Role::Client, Config::default(), now);
        c.close(now, CloseCode::NORMAL, "").unwrap();
        // A message, then the server's close frame, read before any drain.
        c.handle_input(now, &[0x81, 0x02, b'h', b'i', 0x88, 0x02, 0x03, 0xE8]);
        c.handle_timeout(now + Duration::from_secs(6));
        assert!(matches!(c.poll_event(), Some(Event::Message(_))));
        assert!(matches!(c.poll_event(), Some(Event::Closed(_))));
        assert!(c.poll_event().is_none());
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.poll_timeout(), None);
        c.handle_eof(now + Duration::from_secs(7));
        assert!(c.poll_event().is_none(), "a second Closed");
    }
}
