//! The connection state machine: one per WebSocket connection, both roles.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::{Buf, Bytes, BytesMut};
use http::StatusCode;
use http::header::HeaderMap;

use crate::close::{CloseCode, CloseFrame};
use crate::config::Config;
use crate::deflate::{self, Deflate, DeflateParams};
use crate::error::{Error, HandshakeError, ProtocolError, UsageError};
use crate::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};
use crate::handshake::{self, Accept, ClientRequest, Request};
use crate::limits::Charge;
use crate::mask::apply_mask;
use crate::message::{Closed, Event, Fragment, Initiator, Message, MessageKind, Utf8Bytes};
use crate::rng::Rng;
use crate::utf8::Utf8Validator;

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

/// The timers a connection keeps, in a fixed table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    Handshake = 0,
    Close = 1,
    /// `Config::idle_timeout`: ping at half, fail at the end.
    Idle = 2,
    /// `Config::message_timeout`.
    Message = 3,
}

const TIMER_COUNT: usize = 4;

/// Pings remembered for round-trip times.
const MAX_PENDING_PINGS: usize = 16;

/// The RSV1 bit in [`FrameHeader::rsv`]: a compressed message (RFC 7692).
const RSV1: u8 = 0b100;

/// A frame whose header was decoded but whose payload is not complete yet.
#[derive(Clone, Copy, Debug)]
struct PartialFrame {
    header: FrameHeader,
    header_len: usize,
    /// Payload bytes already unmasked (and, for text, validated; when
    /// compressed, inflated).
    done: usize,
    /// Part of a permessage-deflate compressed message.
    compressed: bool,
}

/// A fragmented message being received.
#[derive(Debug)]
struct Incoming {
    kind: MessageKind,
    /// The first frame's payload, a view of the receive buffer, until the
    /// second frame arrives and `buf` is allocated.
    first: Option<Bytes>,
    buf: BytesMut,
    size: u64,
}

/// Longest payload prefix (an envelope header) assembled on the stack with
/// a frame header.
const MAX_PREFIX: usize = 16;

/// Outgoing bytes: whole segments (zero-copy payloads, or sealed copies)
/// followed by a tail that small frames are appended to.
#[derive(Debug, Default)]
struct Outgoing {
    segments: VecDeque<Bytes>,
    tail: Vec<u8>,
    /// Bytes of `tail` already handed out.
    tail_pos: usize,
    len: usize,
}

impl Outgoing {
    fn seal_tail(&mut self) {
        if self.tail.len() > self.tail_pos {
            let mut tail = std::mem::take(&mut self.tail);
            let rest = if self.tail_pos == 0 {
                Bytes::from(tail)
            } else {
                tail.drain(..self.tail_pos);
                Bytes::from(tail)
            };
            self.segments.push_back(rest);
        } else {
            self.tail.clear();
        }
        self.tail_pos = 0;
    }

    fn push_segment(&mut self, b: Bytes) {
        // An empty segment would show up as an empty slice in
        // `transmit_vectored` (and stay at the front once the bytes before
        // it are written): a writer of the first slice would write 0 bytes.
        if b.is_empty() {
            return;
        }
        self.seal_tail();
        self.len += b.len();
        self.segments.push_back(b);
    }

    fn advance(&mut self, mut n: usize) {
        assert!(n <= self.len, "advance_transmit past the queued bytes");
        self.len -= n;
        while n > 0 {
            if let Some(front) = self.segments.front_mut() {
                if n >= front.len() {
                    n -= front.len();
                    self.segments.pop_front();
                } else {
                    front.advance(n);
                    n = 0;
                }
            } else {
                self.tail_pos += n;
                n = 0;
            }
        }
        if self.tail_pos == self.tail.len() {
            self.tail.clear();
            self.tail_pos = 0;
        }
    }
}

/// Where the handshake stands.
#[derive(Debug)]
enum Handshake {
    Client {
        accept: String,
        protocols: Vec<String>,
        /// Whether permessage-deflate was offered.
        deflate: bool,
    },
    Server {
        pending: Option<Box<Request>>,
    },
    Done,
}

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
        let key = request.fixed_key().unwrap_or_else(|| {
            let mut k = [0u8; 16];
            conn.rng.fill(&mut k);
            k
        });
        let key = base64::engine::general_purpose::STANDARD.encode(key);
        let deflate = request.encode_with(&key, conn.config.deflate.as_ref(), &mut conn.out.tail);
        conn.out.len = conn.out.tail.len();
        conn.handshake = Handshake::Client {
            accept: handshake::accept_key(key.as_bytes()),
            protocols: request.protocols().to_vec(),
            deflate,
        };
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
    /// negotiated elsewhere (see [`deflate::server_accept`] and
    /// [`deflate::client_check_response`]); `None` for none.
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

    /// Fires the timers that are due at `now`. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance_clock(now);
        if self.timer_due(Timer::Handshake, now) {
            self.timers[Timer::Handshake as usize] = None;
            if matches!(
                self.state,
                State::AwaitingResponse | State::AwaitingRequest | State::AwaitingDecision
            ) {
                self.fail_handshake(HandshakeError::Timeout);
            }
        }
        if self.timer_due(Timer::Close, now) {
            self.timers[Timer::Close as usize] = None;
            match self.state {
                State::ClosingLocal => {
                    self.finish(false, Some(Error::CloseTimeout(self.config.close_timeout)));
                }
                // The close frames were exchanged; the server was just slow to
                // drop the transport.
                State::ClosingRemote => self.finish(true, None),
                _ => {}
            }
        }
        self.limit_timeouts(now);
    }

    // ------------------------------------------------------------ output

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

    /// Appends every queued output byte to `buf` (moving the buffer without
    /// copying when `buf` is empty). Returns whether anything was added.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        if self.out.len == 0 {
            return false;
        }
        if buf.is_empty() && self.out.segments.is_empty() && self.out.tail_pos == 0 {
            std::mem::swap(buf, &mut self.out.tail);
            if self.out.tail.capacity() < buf.capacity() / 2 {
                self.out.tail = Vec::with_capacity(buf.capacity().min(64 << 10));
            }
        } else {
            buf.reserve(self.out.len);
            for s in &self.out.segments {
                buf.extend_from_slice(s);
            }
            buf.extend_from_slice(&self.out.tail[self.out.tail_pos..]);
            self.out.segments.clear();
            self.out.tail.clear();
            self.out.tail_pos = 0;
        }
        self.out.len = 0;
        true
    }

    /// Fills `dst` with slices of the queued output, in order, for a
    /// vectored write; returns how many were filled. Follow with
    /// [`advance_transmit`](Self::advance_transmit) by the bytes written.
    pub fn transmit_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for s in &self.out.segments {
            if n == dst.len() {
                return n;
            }
            dst[n] = IoSlice::new(s);
            n += 1;
        }
        if n < dst.len() && self.out.tail.len() > self.out.tail_pos {
            dst[n] = IoSlice::new(&self.out.tail[self.out.tail_pos..]);
            n += 1;
        }
        n
    }

    /// Marks `n` bytes of queued output as written.
    ///
    /// # Panics
    /// If `n` exceeds [`transmit_len`](Self::transmit_len).
    pub fn advance_transmit(&mut self, n: usize) {
        self.out.advance(n);
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }

    // ------------------------------------------------------------ commands

    /// (Server) Accepts the request shown in [`Event::Request`].
    pub fn accept(&mut self, accept: Accept) -> Result<(), UsageError> {
        let Handshake::Server { pending } = &mut self.handshake else {
            return Err(UsageError::NoPendingRequest);
        };
        let Some(request) = pending.take() else {
            return Err(UsageError::NoPendingRequest);
        };
        let mut accept = accept;
        let deflate = self
            .config
            .deflate
            .as_ref()
            .filter(|_| {
                !accept
                    .headers
                    .contains_key(http::header::SEC_WEBSOCKET_EXTENSIONS)
            })
            .and_then(|config| deflate::server_accept(request.headers(), config));
        if let Some((_, value)) = &deflate {
            accept
                .headers
                .append(http::header::SEC_WEBSOCKET_EXTENSIONS, value.clone());
        }
        let start = self.out.tail.len();
        if let Err(e) = handshake::encode_accept(&request, &accept, &mut self.out.tail) {
            self.out.tail.truncate(start);
            *pending = Some(request);
            return Err(e);
        }
        self.out.len += self.out.tail.len() - start;
        self.handshake = Handshake::Done;
        self.timers[Timer::Handshake as usize] = None;
        self.state = State::Open;
        self.deflate =
            deflate.map(|(p, _)| Box::new(Deflate::new(p, self.config.deflate.as_ref())));
        self.push_event(Event::Connected(handshake::Response {
            subprotocol: accept.subprotocol,
            headers: accept.headers,
        }));
        // Frames that arrived with the request.
        self.process_frames();
        self.check_limits();
        Ok(())
    }

    /// (Server) Answers the request shown in [`Event::Request`] with a
    /// non-101 response (any status, headers and body), then closes.
    pub fn reject(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), UsageError> {
        match &mut self.handshake {
            Handshake::Server { pending } if pending.is_some() => *pending = None,
            _ => return Err(UsageError::NoPendingRequest),
        }
        let start = self.out.tail.len();
        handshake::encode_response(status, headers, body, &mut self.out.tail);
        self.out.len += self.out.tail.len() - start;
        self.handshake = Handshake::Done;
        self.finish(true, None);
        Ok(())
    }

    /// Queues a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), UsageError> {
        self.send_frame(OpCode::Text, true, text.as_bytes())
    }

    /// Queues a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), UsageError> {
        self.send_frame(OpCode::Binary, true, data)
    }

    /// Queues a message. A server queues a large payload (at least
    /// [`Config::zero_copy_threshold`]) without copying it.
    pub fn send(&mut self, message: Message) -> Result<(), UsageError> {
        let opcode = if message.is_text() {
            OpCode::Text
        } else {
            OpCode::Binary
        };
        let payload = message.into_bytes();
        if self.role == Role::Server
            && payload.len() >= self.config.zero_copy_threshold
            && self.deflate.is_none()
        {
            self.check_can_send_data(opcode)?;
            let header = FrameHeader {
                fin: true,
                rsv: 0,
                opcode,
                mask: None,
                payload_len: payload.len() as u64,
            };
            header.encode(&mut self.out.tail);
            self.out.len += header.encoded_len();
            self.out.push_segment(payload);
            return Ok(());
        }
        self.send_frame(opcode, true, &payload)
    }

    /// Queues one message whose payload is the concatenation of `parts`
    /// (for example a protocol header and an application payload), copied
    /// once into the output queue.
    pub fn send_parts(&mut self, kind: MessageKind, parts: &[&[u8]]) -> Result<(), UsageError> {
        let opcode = match kind {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        };
        self.check_can_send_data(opcode)?;
        if self.deflate.is_some() {
            self.write_data_frame(opcode, true, parts);
            return Ok(());
        }
        self.write_frame_parts(opcode, true, parts);
        Ok(())
    }

    /// Queues one message whose payload is `prefix` (a protocol header of
    /// a few bytes) followed by `payload`, copied once into the output queue.
    pub(crate) fn send_prefixed<const N: usize>(
        &mut self,
        kind: MessageKind,
        prefix: &[u8; N],
        payload: &[u8],
    ) -> Result<(), UsageError> {
        let opcode = match kind {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        };
        self.check_can_send_data(opcode)?;
        if self.deflate.is_some() {
            self.write_data_frame(opcode, true, &[prefix, payload]);
            return Ok(());
        }
        self.write_frame_prefixed(opcode, prefix, payload);
        Ok(())
    }

    /// Queues one frame of a fragmented message. The first call gives the
    /// message's kind; later calls continue it (their `kind` is ignored);
    /// `fin` ends it. Text fragments together must form valid UTF-8.
    pub fn send_fragment(
        &mut self,
        kind: MessageKind,
        data: &[u8],
        fin: bool,
    ) -> Result<(), UsageError> {
        let opcode = match (self.sending_fragmented, kind) {
            (Some(_), _) => OpCode::Continuation,
            (None, MessageKind::Text) => OpCode::Text,
            (None, MessageKind::Binary) => OpCode::Binary,
        };
        self.send_frame(opcode, fin, data)?;
        self.sending_fragmented = if fin { None } else { Some(kind) };
        Ok(())
    }

    /// Sends a ping; its pong will report a round-trip time measured from `now`.
    pub fn send_ping(&mut self, now: Instant, payload: &[u8]) -> Result<(), UsageError> {
        self.advance_clock(now);
        self.send_control(OpCode::Ping, payload)?;
        if self.pings.len() == MAX_PENDING_PINGS {
            self.pings.pop_front();
        }
        self.pings.push_back((Bytes::copy_from_slice(payload), now));
        Ok(())
    }

    /// Sends an unsolicited pong (or a reply when `auto_pong` is off).
    pub fn send_pong(&mut self, payload: &[u8]) -> Result<(), UsageError> {
        self.send_control(OpCode::Pong, payload)
    }

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

    // ------------------------------------------------------------ internals

    fn set_timer(&mut self, t: Timer, at: Instant) {
        self.timers[t as usize] = Some(at);
    }

    fn timer_due(&self, t: Timer, now: Instant) -> bool {
        self.timers[t as usize].is_some_and(|at| at <= now)
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

    fn check_can_send_data(&self, opcode: OpCode) -> Result<(), UsageError> {
        match self.state {
            State::Open => {}
            State::Closed => return Err(UsageError::Closed),
            _ => return Err(UsageError::NotOpen),
        }
        match (self.sending_fragmented.is_some(), opcode) {
            (true, OpCode::Text | OpCode::Binary) | (false, OpCode::Continuation) => {
                Err(UsageError::NotOpen)
            }
            _ => Ok(()),
        }
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), UsageError> {
        match self.state {
            State::Open => {}
            State::Closed => return Err(UsageError::Closed),
            _ => return Err(UsageError::NotOpen),
        }
        if payload.len() > 125 {
            return Err(UsageError::ControlPayloadTooLong);
        }
        self.write_frame(opcode, true, payload);
        Ok(())
    }

    fn send_frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) -> Result<(), UsageError> {
        self.check_can_send_data(opcode)?;
        if self.deflate.is_some() {
            self.write_data_frame(opcode, fin, &[payload]);
            return Ok(());
        }
        self.write_frame(opcode, fin, payload);
        Ok(())
    }

    /// Writes a data frame with permessage-deflate negotiated: compressed
    /// (RSV1 on a message's first frame) when the message qualifies.
    #[cold]
    #[inline(never)]
    fn write_data_frame(&mut self, opcode: OpCode, fin: bool, parts: &[&[u8]]) {
        let Some(d) = self.deflate.as_mut() else {
            return self.write_frame_parts(opcode, fin, parts);
        };
        let len = parts.iter().map(|p| p.len()).sum();
        let first = opcode != OpCode::Continuation;
        if !d.compress_frame(first, fin, len) {
            return self.write_frame_parts(opcode, fin, parts);
        }
        let Some(compressed) = d.compress(parts, fin) else {
            return self.write_frame_parts(opcode, fin, parts);
        };
        let rsv = if first { RSV1 } else { 0 };
        self.write_frame_with_rsv(opcode, fin, rsv, &[&compressed]);
        if let Some(d) = self.deflate.as_mut() {
            d.put_scratch(compressed);
        }
    }

    /// Encodes a frame (header, then payload, masked for a client) onto the
    /// output tail.
    #[inline]
    fn write_frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) {
        self.write_frame_parts(opcode, fin, &[payload]);
    }

    /// Encodes one frame whose payload is the concatenation of `parts`.
    #[inline]
    fn write_frame_parts(&mut self, opcode: OpCode, fin: bool, parts: &[&[u8]]) {
        self.write_frame_with_rsv(opcode, fin, 0, parts);
    }

    /// Encodes one frame with the given RSV bits.
    #[inline]
    fn write_frame_with_rsv(&mut self, opcode: OpCode, fin: bool, rsv: u8, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let (mask, start) = self.begin_frame(opcode, fin, rsv, len, &[]);
        let tail = &mut self.out.tail;
        for p in parts {
            tail.extend_from_slice(p);
        }
        if let Some(key) = mask {
            apply_mask(&mut tail[start..], key, 0);
        }
    }

    /// Encodes one frame whose payload is `prefix` (a few bytes, such as an
    /// envelope header, assembled with the frame header) then `payload`.
    #[inline]
    fn write_frame_prefixed<const N: usize>(
        &mut self,
        opcode: OpCode,
        prefix: &[u8; N],
        payload: &[u8],
    ) {
        let (mask, start) = self.begin_frame(opcode, true, 0, N + payload.len(), prefix);
        let tail = &mut self.out.tail;
        tail.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut tail[start..], key, 0);
        }
    }

    /// Appends the header of a frame of `len` payload bytes and the
    /// payload's first bytes, `prefix`, to the output tail, with room
    /// reserved for the rest of the payload. Returns the masking key (a
    /// client's) and where in the tail the payload starts.
    #[inline]
    fn begin_frame<const N: usize>(
        &mut self,
        opcode: OpCode,
        fin: bool,
        rsv: u8,
        len: usize,
        prefix: &[u8; N],
    ) -> (Option<[u8; 4]>, usize) {
        const { assert!(N <= MAX_PREFIX) };
        let mask = match self.role {
            Role::Client => Some((self.rng.next_u64() as u32).to_ne_bytes()),
            Role::Server => None,
        };
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len: len as u64,
        };
        let mut h = [0u8; MAX_HEADER_LEN + MAX_PREFIX];
        let hl = header.encode_to(h.first_chunk_mut().expect("room for a header"));
        h[hl..hl + N].copy_from_slice(prefix);
        let tail = &mut self.out.tail;
        tail.reserve(h.len() + len);
        let start = tail.len() + hl;
        // The whole stack buffer (a copy of fixed size, no call), then cut
        // back to what was encoded.
        tail.extend_from_slice(&h);
        tail.truncate(start + N);
        self.out.len += hl + len;
        (mask, start)
    }

    fn queue_close(&mut self, frame: Option<CloseFrame>) {
        let mut payload = Vec::with_capacity(125);
        if let Some(f) = &frame {
            payload.extend_from_slice(&f.code.0.to_be_bytes());
            payload.extend_from_slice(f.reason.as_bytes());
        }
        self.write_frame(OpCode::Close, true, &payload);
        self.close_sent = frame.or(Some(CloseFrame {
            code: CloseCode::NO_STATUS,
            reason: String::new(),
        }));
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

    fn fail_handshake(&mut self, err: HandshakeError) {
        if self.role == Role::Server && self.state == State::AwaitingRequest {
            let start = self.out.tail.len();
            handshake::encode_error_response(&err, &mut self.out.tail);
            self.out.len += self.out.tail.len() - start;
        }
        self.finish(false, Some(Error::Handshake(err)));
    }

    fn advance_clock(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    fn process(&mut self, now: Instant) {
        self.advance_clock(now);
        if self.pending_fail.is_some() || self.pending_close.is_some() {
            return;
        }
        match self.state {
            State::AwaitingResponse => self.process_response(),
            State::AwaitingRequest => self.process_request(),
            State::Open | State::ClosingLocal => self.process_frames(),
            // Bytes after the close handshake, or while waiting for the
            // application's decision, are kept (decision) or ignored.
            State::ClosingRemote => self.recv.clear(),
            State::AwaitingDecision | State::Closed => {}
        }
    }

    fn process_response(&mut self) {
        let Handshake::Client {
            accept,
            protocols,
            deflate,
        } = &self.handshake
        else {
            return;
        };
        let offered = self.config.deflate.as_ref().filter(|_| *deflate);
        match handshake::parse_response(
            &self.recv,
            accept,
            protocols,
            offered,
            self.config.max_head_size,
        ) {
            Ok(None) => {}
            Ok(Some((response, n, params))) => {
                self.deflate = params.map(|p| Box::new(Deflate::new(p, offered)));
                self.recv.advance(n);
                self.handshake = Handshake::Done;
                self.timers[Timer::Handshake as usize] = None;
                self.state = State::Open;
                self.push_event(Event::Connected(response));
                self.process_frames();
            }
            Err(e) => self.fail_handshake(e),
        }
    }

    fn process_request(&mut self) {
        match handshake::parse_request(&self.recv, self.config.max_head_size) {
            Ok(None) => {}
            Ok(Some((request, n))) => {
                self.recv.advance(n);
                self.handshake = Handshake::Server {
                    pending: Some(Box::new(request.clone())),
                };
                self.state = State::AwaitingDecision;
                self.push_event(Event::Request(request));
            }
            Err(e) => self.fail_handshake(e),
        }
    }

    /// Validates a header against the role, extensions, limits and the
    /// fragmentation state, before any payload is buffered.
    fn check_header(&self, h: &FrameHeader) -> Result<(), ProtocolError> {
        if h.rsv != 0 {
            self.check_rsv(h)?;
        }
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if h.payload_len > self.config.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooLarge {
                size: h.payload_len,
                max: self.config.max_frame_size,
            });
        }
        match (h.opcode, &self.incoming) {
            (OpCode::Continuation, None) => Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, Some(_)) => Err(ProtocolError::ExpectedContinuation),
            (OpCode::Continuation, Some(m)) => {
                let size = m.size + h.payload_len;
                if size > self.config.max_message_size as u64 {
                    Err(ProtocolError::MessageTooLarge {
                        size,
                        max: self.config.max_message_size,
                    })
                } else {
                    Ok(())
                }
            }
            (OpCode::Text | OpCode::Binary, None)
                if h.payload_len > self.config.max_message_size as u64 =>
            {
                Err(ProtocolError::MessageTooLarge {
                    size: h.payload_len,
                    max: self.config.max_message_size,
                })
            }
            _ => Ok(()),
        }
    }

    /// Whether the payload of `h` is text that must be validated.
    fn is_text_frame(&self, h: &FrameHeader) -> bool {
        match h.opcode {
            OpCode::Text => true,
            OpCode::Continuation => self
                .incoming
                .as_ref()
                .is_some_and(|m| m.kind == MessageKind::Text),
            _ => false,
        }
    }

    fn process_frames(&mut self) {
        while matches!(self.state, State::Open | State::ClosingLocal) {
            let p = match self.partial {
                Some(p) => p,
                None => match FrameHeader::decode(&self.recv) {
                    Ok(None) => return,
                    Ok(Some((header, header_len))) => {
                        if let Err(e) = self.check_header(&header) {
                            return self.defer_fail(e);
                        }
                        if header.opcode == OpCode::Text {
                            self.utf8.reset();
                        }
                        self.message_started |=
                            matches!(header.opcode, OpCode::Text | OpCode::Binary);
                        let compressed = (header.rsv != 0 || header.opcode == OpCode::Continuation)
                            && self.begin_compressed(&header);
                        PartialFrame {
                            header,
                            header_len,
                            done: 0,
                            compressed,
                        }
                    }
                    Err(e) => return self.defer_fail(e),
                },
            };
            // Checked against max_frame_size, so it fits in usize.
            let len = p.header.payload_len as usize;
            let avail = self.recv.len() - p.header_len;
            if avail < len {
                // Incomplete: unmask and validate what has arrived, so that
                // invalid text fails fast (Autobahn 6.4.x).
                let mut p = p;
                if avail > p.done && (p.compressed || self.is_text_frame(&p.header)) {
                    let range = p.header_len + p.done..p.header_len + avail;
                    if let Some(key) = p.header.mask {
                        apply_mask(&mut self.recv[range.clone()], key, p.done);
                    }
                    if p.compressed {
                        // Inflate as the bytes arrive: the size limit and
                        // UTF-8 apply to the output as it comes.
                        if let Err(e) = self.inflate_range(range, false) {
                            return self.defer_fail(e);
                        }
                    } else if self.utf8.feed(&self.recv[range], false).is_err() {
                        return self.defer_fail(ProtocolError::InvalidUtf8);
                    }
                    p.done = avail;
                }
                self.partial = Some(p);
                return;
            }
            self.partial = None;
            let range = p.header_len + p.done..p.header_len + len;
            if let Some(key) = p.header.mask {
                apply_mask(&mut self.recv[range.clone()], key, p.done);
            }
            if p.compressed {
                if let Err(e) = self.compressed_frame(p.header, range) {
                    return self.defer_fail(e);
                }
                continue;
            }
            let text = self.is_text_frame(&p.header);
            if text && self.utf8.feed(&self.recv[range], p.header.fin).is_err() {
                return self.defer_fail(ProtocolError::InvalidUtf8);
            }
            // One split for header and payload (each split costs an atomic
            // reference count increment); skipping the header on the frozen
            // view is pointer arithmetic.
            let mut payload = self.recv.split_to(p.header_len + len).freeze();
            payload.advance(p.header_len);
            if p.header.fin && matches!(p.header.opcode, OpCode::Text | OpCode::Binary) {
                // The common case, here rather than in `handle_frame` or
                // `deliver` (not inlined), with the queue's growth out of
                // line: the message is then stored straight into the queue,
                // not built on the stack and copied with wide reloads of
                // narrow stores (which stall store forwarding).
                self.buffered += payload.len();
                let ev = Queued::Message {
                    text,
                    data: payload,
                };
                if self.events.len() < self.events.capacity() {
                    self.events.push_back(ev);
                } else {
                    self.push_grow(ev);
                }
                continue;
            }
            if p.header.opcode == OpCode::Close && !self.events.is_empty() {
                self.pending_close = Some((p.header, payload));
                return;
            }
            if let Err(e) = self.handle_frame(p.header, payload) {
                return self.defer_fail(e);
            }
        }
    }

    /// RSV bits are set: only RSV1 on the first frame of a message, with
    /// permessage-deflate negotiated (RFC 7692 §6.1).
    #[cold]
    #[inline(never)]
    fn check_rsv(&self, h: &FrameHeader) -> Result<(), ProtocolError> {
        if h.rsv != RSV1 || self.deflate.is_none() {
            return Err(ProtocolError::ReservedBits(h.rsv));
        }
        match h.opcode {
            OpCode::Text | OpCode::Binary => Ok(()),
            OpCode::Continuation => Err(ProtocolError::CompressedContinuation),
            _ => Err(ProtocolError::CompressedControlFrame),
        }
    }

    /// Whether a frame (RSV1 set, or a continuation) belongs to a compressed
    /// message; starts receiving one on its first frame.
    #[inline]
    fn begin_compressed(&mut self, h: &FrameHeader) -> bool {
        let Some(d) = self.deflate.as_mut() else {
            return false;
        };
        match h.opcode {
            OpCode::Continuation => d.receiving(),
            OpCode::Text => {
                d.begin(MessageKind::Text);
                true
            }
            _ => {
                d.begin(MessageKind::Binary);
                true
            }
        }
    }

    /// Inflates payload bytes of a compressed message that are unmasked in
    /// the receive buffer.
    fn inflate_range(
        &mut self,
        range: std::ops::Range<usize>,
        last: bool,
    ) -> Result<(), ProtocolError> {
        let max = self.config.max_message_size;
        match self.deflate.as_mut() {
            Some(d) => d.inflate(&self.recv[range], last, max, &mut self.utf8),
            None => Ok(()),
        }
    }

    /// Handles the end of a frame of a compressed message whose bytes up to
    /// `range` are inflated: inflates the rest, drops the frame from the
    /// receive buffer and delivers the message (or, with
    /// `stream_fragments`, the frame's output) like an uncompressed one.
    fn compressed_frame(
        &mut self,
        h: FrameHeader,
        range: std::ops::Range<usize>,
    ) -> Result<(), ProtocolError> {
        let frame_len = range.end;
        let payload_len = h.payload_len;
        self.inflate_range(range, h.fin)?;
        self.recv.advance(frame_len);
        let Some(d) = self.deflate.as_mut() else {
            return Ok(());
        };
        let kind = d.receiving_kind().unwrap_or(MessageKind::Binary);
        let fragmented = self.incoming.is_some();
        if h.fin {
            self.incoming = None;
            let data = d.end().map(|(_, data)| data).unwrap_or_default();
            if fragmented && self.config.stream_fragments {
                self.push_queued(Queued::Fragment(Fragment {
                    kind,
                    data: Bytes::from(data),
                    fin: true,
                }));
            } else {
                self.deliver(kind, Bytes::from(data));
            }
            return Ok(());
        }
        let data = if self.config.stream_fragments {
            Some(d.take_output())
        } else {
            None
        };
        match self.incoming.as_mut() {
            Some(m) => m.size += payload_len,
            None => {
                self.incoming = Some(Incoming {
                    kind,
                    first: None,
                    buf: BytesMut::new(),
                    size: payload_len,
                });
            }
        }
        if let Some(data) = data {
            self.push_queued(Queued::Fragment(Fragment {
                kind,
                data: Bytes::from(data),
                fin: false,
            }));
        }
        Ok(())
    }

    /// Handles one complete, unmasked (and, for text, validated) frame.
    #[inline(never)]
    fn handle_frame(&mut self, h: FrameHeader, payload: Bytes) -> Result<(), ProtocolError> {
        match h.opcode {
            OpCode::Text | OpCode::Binary => {
                let kind = if h.opcode == OpCode::Text {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                if h.fin {
                    self.deliver(kind, payload);
                } else if self.config.stream_fragments {
                    self.incoming = Some(Incoming {
                        kind,
                        first: None,
                        buf: BytesMut::new(),
                        size: payload.len() as u64,
                    });
                    self.push_queued(Queued::Fragment(Fragment {
                        kind,
                        data: payload,
                        fin: false,
                    }));
                } else {
                    self.incoming = Some(Incoming {
                        kind,
                        size: payload.len() as u64,
                        first: Some(payload),
                        buf: BytesMut::new(),
                    });
                }
            }
            OpCode::Continuation => {
                let Some(m) = self.incoming.as_mut() else {
                    return Err(ProtocolError::UnexpectedContinuation);
                };
                m.size += payload.len() as u64;
                if self.config.stream_fragments {
                    let kind = m.kind;
                    if h.fin {
                        self.incoming = None;
                    }
                    self.push_queued(Queued::Fragment(Fragment {
                        kind,
                        data: payload,
                        fin: h.fin,
                    }));
                } else {
                    if let Some(first) = m.first.take() {
                        // The second frame: allocate once for twice the
                        // message so far (four equal frames copy each byte
                        // once), within the message size limit.
                        let cap = (first.len() + payload.len())
                            .saturating_mul(2)
                            .min(self.config.max_message_size);
                        m.buf = BytesMut::with_capacity(cap);
                        m.buf.extend_from_slice(&first);
                    }
                    m.buf.extend_from_slice(&payload);
                    if h.fin {
                        let m = self.incoming.take().expect("message in progress");
                        self.deliver(m.kind, m.buf.freeze());
                    }
                }
            }
            OpCode::Ping => {
                if self.config.auto_pong && self.state == State::Open {
                    self.write_frame(OpCode::Pong, true, &payload);
                }
                self.push_event(Event::Ping(payload));
            }
            OpCode::Pong => {
                let rtt = self.match_pong(&payload);
                self.push_event(Event::Pong { payload, rtt });
            }
            OpCode::Close => {
                let frame = CloseFrame::parse(&payload)?;
                self.close_received = Some(frame.clone().unwrap_or(CloseFrame {
                    code: CloseCode::NO_STATUS,
                    reason: String::new(),
                }));
                if self.state == State::Open {
                    // Echo the peer's code (RFC 6455 §5.5.1).
                    self.close_initiator = Some(Initiator::Remote);
                    self.queue_close(frame.map(|f| CloseFrame {
                        code: f.code,
                        reason: String::new(),
                    }));
                }
                match self.role {
                    // The server closes the transport first (§7.1.1).
                    Role::Server => self.finish(true, None),
                    Role::Client => {
                        self.state = State::ClosingRemote;
                        self.recv.clear();
                        if self.timers[Timer::Close as usize].is_none() {
                            self.set_timer(Timer::Close, self.now + self.config.close_timeout);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Queues a complete message (text already validated). Single-frame
    /// messages take the inlined copy of this in `process_frames`.
    #[inline(never)]
    fn deliver(&mut self, kind: MessageKind, data: Bytes) {
        self.buffered += data.len();
        self.events.push_back(Queued::Message {
            text: kind == MessageKind::Text,
            data,
        });
    }

    fn match_pong(&mut self, payload: &Bytes) -> Option<Duration> {
        let i = self.pings.iter().position(|(p, _)| p == payload)?;
        let (_, sent) = self.pings.drain(..=i).last()?;
        Some(self.now.saturating_duration_since(sent))
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

impl Connection {
    #[cold]
    #[inline(never)]
    fn push_grow(&mut self, ev: Queued) {
        self.events.push_back(ev);
    }
}

// ------------------------------------------------------------ limits
// Read inactivity, message completion and the shared input budget
// (`Config::{idle_timeout, message_timeout, input_budget}`).
impl Connection {
    /// After input was processed (and on opening): re-arms the idle timer,
    /// arms or clears the message timer and charges the unfinished input.
    fn check_limits(&mut self) {
        if !matches!(self.state, State::Open | State::ClosingLocal) {
            return;
        }
        let now = self.now;
        if let Some(t) = self.config.idle_timeout {
            self.idle_pinged = false;
            self.set_timer(Timer::Idle, now + t / 2);
        }
        let started = std::mem::take(&mut self.message_started);
        if let Some(t) = self.config.message_timeout {
            let in_progress =
                self.partial.is_some() || self.incoming.is_some() || !self.recv.is_empty();
            if !in_progress {
                self.timers[Timer::Message as usize] = None;
            } else if started || self.timers[Timer::Message as usize].is_none() {
                self.set_timer(Timer::Message, now + t);
            }
        }
        if self.charge.active() {
            let incoming = self
                .incoming
                .as_ref()
                .map_or(0, |m| m.first.as_ref().map_or(0, Bytes::len) + m.buf.len());
            let inflating = self.deflate.as_ref().map_or(0, |d| d.pending_output());
            let held = self.recv.len() + incoming + inflating;
            if !self.charge.set(held) {
                let limit = self.config.input_budget.as_ref().map_or(0, |b| b.limit());
                self.defer_fail(ProtocolError::InputBudgetExhausted { limit });
            }
        }
    }

    /// Fires the idle and message timers if due. Neither counts time in
    /// which this side does not read (the application has not taken what
    /// was received): they are re-armed instead.
    fn limit_timeouts(&mut self, now: Instant) {
        if !matches!(self.state, State::Open | State::ClosingLocal) {
            return;
        }
        if self.timer_due(Timer::Idle, now) {
            self.timers[Timer::Idle as usize] = None;
            if let Some(t) = self.config.idle_timeout {
                let half = t / 2;
                if !self.wants_read() {
                    self.idle_pinged = false;
                    self.set_timer(Timer::Idle, now + half);
                } else if !self.idle_pinged {
                    self.idle_pinged = true;
                    if self.state == State::Open {
                        self.write_frame(OpCode::Ping, true, &[]);
                    }
                    self.set_timer(Timer::Idle, now + (t - half));
                } else {
                    return self.fail(ProtocolError::IdleTimeout(t));
                }
            }
        }
        if self.timer_due(Timer::Message, now) {
            self.timers[Timer::Message as usize] = None;
            if let Some(t) = self.config.message_timeout {
                if self.wants_read() {
                    return self.fail(ProtocolError::MessageTimeout(t));
                }
                self.set_timer(Timer::Message, now + t);
            }
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
