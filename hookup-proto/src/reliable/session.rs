//! A session: one end of a `hookup.v1` conversation across connections, or
//! of a legacy `jsonProtocol` connection.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::time::{Duration, Instant};

use bytes::{Buf as _, Bytes, BytesMut};

use super::channel::Channel;
use super::key::{RESUME_KEY_LEN, ResumeKey};
use super::legacy::{self, LEGACY_SUBPROTOCOL, Payload, RawJson};
use super::legacy_channel::LegacyChannel;
use super::store::SessionState;
use super::wire::{self, Envelope};
use super::{DropReason, MessageId, Outcome, Reconnect, SendError, SessionConfig, SessionError};
use crate::close::CloseCode;
use crate::connection::Connection;
use crate::handshake::ClientRequest;
use crate::message::{Event, Initiator, Message, MessageKind, Utf8Bytes};
use crate::rng::Rng;

/// What the caller must do for a session.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// (Client) Open a transport to the request's host and port, then call
    /// [`Session::handle_connected`] or [`Session::handle_connect_failed`].
    Connect,
    /// Write out what [`Session::poll_transmit`] still has, then close the
    /// transport. The session will not read from it again.
    CloseTransport,
}

/// What a session reports.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SessionEvent {
    /// The session is established (new, or resumed with `resumed`).
    Connected {
        /// The session id.
        session: Vec<u8>,
        /// Whether the peer still had the session.
        resumed: bool,
    },
    /// (Server) A client said HELLO for this session id (empty: a new
    /// session), with the resume key it presented as proof of owning it:
    /// give both to [`SessionStore::open`](super::SessionStore::open) and
    /// call [`Session::attach`] (or [`Session::refuse_busy`]).
    Hello {
        /// The requested session id.
        session: Vec<u8>,
        /// The resume key the client presented (none from a version 1
        /// client, or one without a key).
        proof: Option<ResumeKey>,
    },
    /// (Client) A reconnect attempt is scheduled after `delay`.
    Reconnecting {
        /// Consecutive attempt number, from 1.
        attempt: u32,
        /// The backoff delay before it.
        delay: Duration,
    },
    /// The connection ended (the session goes on, unless `GaveUp`/`Closed`
    /// follows).
    Disconnected {
        /// The close code (1006 when the transport just ended).
        code: CloseCode,
        /// The reason given, or what went wrong.
        reason: String,
    },
    /// (Client) The reconnect policy is exhausted; unacknowledged messages
    /// without an outcome yet are reported dropped by
    /// [`Session::poll_outcome`] ([`DropReason::GaveUp`]; those already
    /// reported [`Outcome::Written`] are not reported again). Terminal.
    GaveUp,
    /// An application message, delivered once and in order.
    Message(Message),
    /// The peer acknowledged this message: it left the outbox (only with
    /// [`SessionConfig::report_releases`]). In legacy mode, which never
    /// sends a message again, every message is released with its outcome.
    Released(MessageId),
    /// Round-trip time of a keepalive ping.
    Rtt(Duration),
    /// The peer broke the session protocol; the connection is closed —
    /// except in legacy mode, where a malformed envelope or an ack for an
    /// unknown id is only reported (see [`Session::legacy_server`]).
    Error(SessionError),
    /// The session is finished (shut down, or a server's connection ended).
    /// Terminal.
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// (Client) A transport is needed; `Action::Connect` is pending.
    NeedTransport,
    /// (Client) The caller is opening a transport.
    Connecting,
    /// WebSocket handshake and HELLO/WELCOME in progress.
    Greeting,
    /// (Server) `Hello` was emitted; waiting for `attach`.
    AwaitingAttach,
    Established,
    /// (Client) Waiting to reconnect.
    Backoff,
    GaveUp,
    Closed,
}

#[derive(Clone, Copy)]
enum Timer {
    Reconnect = 0,
    Ping = 1,
    /// Pong deadline, or the deadline for WELCOME.
    Deadline = 2,
}

const TIMERS: usize = 3;

#[derive(Debug)]
enum Role {
    Client { request: Box<ClientRequest> },
    Server,
}

/// One end of a reliable session. See the [module docs](super).
///
/// The drain order is the connection's: after every input and command,
/// drain [`poll_action`](Self::poll_action),
/// [`poll_event`](Self::poll_event) and
/// [`poll_outcome`](Self::poll_outcome), write out
/// [`poll_transmit`](Self::poll_transmit), re-arm the timer at
/// [`poll_timeout`](Self::poll_timeout). Outcomes have a queue of their own
/// (they answer this side's sends; events come from the peer or the
/// transport), so a sender can collect the outcome of a message right after
/// its [`send`](Self::send) — a message written at once is reported
/// [`Outcome::Written`] by then — without going through the events.
///
/// Taking output ([`poll_transmit`](Self::poll_transmit),
/// [`advance_transmit`](Self::advance_transmit)) makes room under
/// [`SessionConfig::write_window`](super::SessionConfig::write_window), so
/// more of the outbox is written, which may report more outcomes: repeat
/// the drain until `poll_transmit` has nothing more and no action, event or
/// outcome is left.
///
/// A server session gets its state from [`attach`](Self::attach) after
/// [`SessionEvent::Hello`]. When it ends ([`SessionEvent::Closed`]), take
/// the state back with [`take_state`](Self::take_state) and
/// [`park`](super::SessionStore::park) it for the client to resume — or
/// [`release`](super::SessionStore::release) it when the session is over:
/// the last [`SessionEvent::Disconnected`] has code 1000 when the client
/// shut its session down (the server's unacknowledged messages were then
/// reported [`DropReason::Shutdown`]) or this side did.
#[derive(Debug)]
pub struct Session {
    role: Role,
    config: SessionConfig,
    conn: Option<Connection>,
    channel: Channel,
    id: Vec<u8>,
    phase: Phase,
    events: VecDeque<SessionEvent>,
    actions: VecDeque<Action>,
    timers: [Option<Instant>; TIMERS],
    attempt: u32,
    rng: Rng,
    shutting_down: bool,
    ping_counter: u64,
    /// (Server) What the client said it received, until `attach`.
    pending_hello_received: u64,
    /// (Server) The HELLO version of the client: WELCOME is written in it.
    hello_version: u8,
    /// (Client) The resume key of the session `id`, once the server gave
    /// one. (Server) Unused.
    key: Option<ResumeKey>,
    /// (Server) The digest of the attached session's resume key.
    key_digest: [u8; RESUME_KEY_LEN],
    /// Legacy `jsonProtocol` mode (then `channel` stays unused).
    legacy: Option<LegacyChannel>,
    /// (Client) Restored from a journal and not yet confirmed by the server.
    restored: bool,
    /// (Client) [`SessionEvent::Message`]s at the front of `events` from a
    /// session the server no longer had (WELCOME new): delivered, but not
    /// counted as received in the new one.
    stale_messages: u64,
    /// Outcomes not in the channel's queue: legacy mode's, and those left in
    /// a channel taken out by [`take_state`](Self::take_state).
    outcomes: VecDeque<(MessageId, Outcome)>,
    /// Legacy mode: messages released (every outcome releases one).
    legacy_released: u64,
    now: Instant,
}

impl Session {
    fn new(role: Role, config: SessionConfig, now: Instant) -> Self {
        let rng = config
            .connection
            .rng_seed
            .map_or_else(Rng::from_std, Rng::from_seed);
        let mut channel = Channel::new();
        if config.report_releases {
            channel.released = Some(VecDeque::new());
        }
        Self {
            role,
            config,
            conn: None,
            channel,
            id: Vec::new(),
            phase: Phase::NeedTransport,
            events: VecDeque::new(),
            actions: VecDeque::new(),
            timers: [None; TIMERS],
            attempt: 0,
            rng,
            shutting_down: false,
            ping_counter: 0,
            pending_hello_received: 0,
            hello_version: wire::VERSION,
            key: None,
            key_digest: [0; RESUME_KEY_LEN],
            legacy: None,
            restored: false,
            stale_messages: 0,
            outcomes: VecDeque::new(),
            legacy_released: 0,
            now,
        }
    }

    /// A client session for `request` (the `hookup.v1` subprotocol is added
    /// to it). It starts by asking for a transport ([`Action::Connect`]).
    pub fn client(request: ClientRequest, config: SessionConfig, now: Instant) -> Self {
        let request = if request.protocols().iter().any(|p| p == wire::SUBPROTOCOL) {
            request
        } else {
            request
                .protocol(wire::SUBPROTOCOL)
                .expect("valid subprotocol token")
        };
        let mut s = Self::new(
            Role::Client {
                request: Box::new(request),
            },
            config,
            now,
        );
        s.actions.push_back(Action::Connect);
        s
    }

    /// A server session on a connection that accepted the `hookup.v1`
    /// subprotocol. It waits for HELLO ([`SessionEvent::Hello`]).
    pub fn server(conn: Connection, config: SessionConfig, now: Instant) -> Self {
        let mut s = Self::new(Role::Server, config, now);
        s.conn = Some(conn);
        s.phase = Phase::Greeting;
        s.set_timer(Timer::Deadline, now + s.greeting_timeout());
        s.pump();
        s
    }

    /// A server session in legacy mode, on a connection that accepted the
    /// original hookup's [`LEGACY_SUBPROTOCOL`] (`jsonProtocol`; see
    /// [`legacy`](super::legacy)). There is no greeting and no session to
    /// resume: it is established at once ([`SessionEvent::Connected`] with an
    /// empty id) and ends with the connection.
    ///
    /// An incoming `ack_request` is acknowledged and delivered, once per id
    /// and connection; `text` and `json` envelopes are delivered (JSON as
    /// its text), binary messages as they are. [`send`](Self::send) and
    /// [`send_json`](Self::send_json) render `text`/`json` envelopes, or an
    /// `ack_request` (ids from 1 per connection) when an ack is asked for,
    /// which resolves as `Acked`, `AckFailed` at its deadline, or
    /// `Dropped(`[`DropReason::Disconnected`]`)` when the connection ends
    /// first. Binary messages cannot be sent ([`SendError::Unsupported`]).
    /// A malformed envelope is reported ([`SessionError::Legacy`]) and
    /// skipped, as is an `ack` for an id never sent
    /// ([`SessionError::AckForUnsent`]) or a `needs_ack` envelope; the
    /// connection stays open. With [`SessionConfig::report_releases`] every
    /// message is [released](SessionEvent::Released) with its outcome.
    ///
    /// [`take_state`](Self::take_state) has nothing to give back: there is
    /// nothing to park.
    pub fn legacy_server(conn: Connection, config: SessionConfig, now: Instant) -> Self {
        let mut s = Self::new(Role::Server, config, now);
        s.legacy = Some(LegacyChannel::new());
        s.conn = Some(conn);
        s.establish(false);
        s.pump();
        s
    }

    /// A client session in legacy mode, for servers of the original hookup:
    /// `request` is sent with the [`LEGACY_SUBPROTOCOL`] (`jsonProtocol`)
    /// added, and the server must select it. Established as soon as the
    /// handshake completes; messages are as for
    /// [`legacy_server`](Self::legacy_server). It reconnects on the
    /// [`SessionConfig::reconnect`] policy; messages not yet written wait
    /// for the next connection, ack requests in flight when a connection
    /// ends are dropped ([`DropReason::Disconnected`]).
    pub fn legacy_client(request: ClientRequest, config: SessionConfig, now: Instant) -> Self {
        let request = if request.protocols().iter().any(|p| p == LEGACY_SUBPROTOCOL) {
            request
        } else {
            request
                .protocol(LEGACY_SUBPROTOCOL)
                .expect("valid subprotocol token")
        };
        let mut s = Self::new(
            Role::Client {
                request: Box::new(request),
            },
            config,
            now,
        );
        s.legacy = Some(LegacyChannel::new());
        s.actions.push_back(Action::Connect);
        s
    }

    /// Whether the session speaks the legacy `jsonProtocol`.
    pub fn is_legacy(&self) -> bool {
        self.legacy.is_some()
    }

    /// (Client) The request used for every connection.
    pub fn request(&self) -> Option<&ClientRequest> {
        match &self.role {
            Role::Client { request } => Some(request),
            Role::Server => None,
        }
    }

    /// The session id (empty until established).
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// (Client) The resume key of the current session, as the server gave
    /// it in WELCOME(new) (or as [`restore`](Self::restore)d): what a
    /// journal keeps next to the session id so that a restarted client can
    /// prove it owns the session. `None` before the first WELCOME, and on a
    /// server.
    pub fn resume_key(&self) -> Option<&ResumeKey> {
        match self.role {
            Role::Client { .. } => self.key.as_ref(),
            Role::Server => None,
        }
    }

    /// Whether messages currently flow.
    pub fn is_established(&self) -> bool {
        self.phase == Phase::Established
    }

    /// Whether the session has ended (`GaveUp` or `Closed`).
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::GaveUp | Phase::Closed)
    }

    /// Messages sent but not yet acknowledged by the peer (in legacy mode:
    /// messages without an outcome yet, queued or awaiting their ack).
    pub fn unacked(&self) -> usize {
        match &self.legacy {
            Some(l) => l.unresolved(),
            None => self.channel.unacked(),
        }
    }

    /// Messages the peer acknowledged, in all (they left the outbox; in
    /// legacy mode, where nothing is kept to be sent again, every message
    /// with an outcome). Counts across reconnects and session resets: an
    /// abort or a give-up empties the outbox without acknowledgements, so
    /// `unacked` alone does not tell how many arrived.
    pub fn released(&self) -> u64 {
        self.channel.released_count + self.legacy_released
    }

    /// Payload bytes sent but not yet acknowledged (in legacy mode: bytes
    /// of rendered envelopes not written yet).
    pub fn unacked_bytes(&self) -> usize {
        match &self.legacy {
            Some(l) => l.queued_bytes(),
            None => self.channel.unacked_bytes(),
        }
    }

    /// The current connection, if any.
    pub fn connection(&self) -> Option<&Connection> {
        self.conn.as_ref()
    }

    fn greeting_timeout(&self) -> Duration {
        self.config
            .connection
            .handshake_timeout
            .unwrap_or(Duration::from_secs(10))
    }

    fn set_timer(&mut self, t: Timer, at: Instant) {
        self.timers[t as usize] = Some(at);
    }

    fn clear_timer(&mut self, t: Timer) {
        self.timers[t as usize] = None;
    }

    fn advance_clock(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    // ------------------------------------------------------------ commands

    /// Queues a message. With `ack`, the peer acknowledges it at once and
    /// the outcome is `Acked`, or `AckFailed` when `ack` passes after it was
    /// written; without, the outcome is `Written`. Either way it is kept
    /// until acknowledged and replayed after reconnects.
    ///
    /// A server session accepts messages once it has its state (after
    /// [`attach`](Self::attach), from [`SessionEvent::Connected`] on);
    /// before that, and after it ended, `send` fails with
    /// [`SendError::Closed`].
    pub fn send(
        &mut self,
        now: Instant,
        message: Message,
        ack: Option<Duration>,
    ) -> Result<MessageId, SendError> {
        self.advance_clock(now);
        if self.shutting_down || self.is_finished() {
            return Err(SendError::Closed);
        }
        if self.legacy.is_some() {
            return match message {
                Message::Text(t) => {
                    self.send_legacy(&Payload::Text(std::borrow::Cow::Borrowed(t.as_str())), ack)
                }
                _ => Err(SendError::Unsupported),
            };
        }
        if matches!(self.role, Role::Server) && self.id.is_empty() {
            // Not attached: this outbox is a placeholder that `attach`
            // replaces (its messages would be lost without an outcome, and
            // their ids reused by the attached state).
            return Err(SendError::Closed);
        }
        // One envelope is one frame: it must fit the limits this side
        // enforces (a proxy for the peer's), or every replay of it would
        // close the connection and block what is queued behind it.
        let limits = self
            .conn
            .as_ref()
            .map_or(&self.config.connection, Connection::config);
        let max = limits.max_frame_size.min(limits.max_message_size);
        if message.len().saturating_add(wire::DATA_HEADER_LEN) > max {
            return Err(SendError::TooLarge);
        }
        let kind = if message.is_text() {
            MessageKind::Text
        } else {
            MessageKind::Binary
        };
        let id = self
            .channel
            .push(&self.config, kind, message.into_bytes(), ack)?;
        // Only the outbox moved: write it out (what `pump` would do; every
        // input drains the connection's events itself, and a send neither
        // releases a message nor finishes a shutdown).
        if self.phase == Phase::Established
            && let Some(conn) = &mut self.conn
        {
            self.channel.write(conn, self.now, self.config.write_window);
        }
        Ok(id)
    }

    /// Queues a JSON value: in legacy mode as a `json` envelope (its
    /// content is `json` as given, surrounding whitespace trimmed), with
    /// `hookup.v1` as a text message. Fails with [`SendError::InvalidJson`]
    /// unless `json` is exactly one JSON value; otherwise as
    /// [`send`](Self::send).
    pub fn send_json(
        &mut self,
        now: Instant,
        json: &str,
        ack: Option<Duration>,
    ) -> Result<MessageId, SendError> {
        let raw = RawJson::new(json).map_err(SendError::InvalidJson)?;
        if self.legacy.is_none() {
            return self.send(now, Message::text(raw.as_str()), ack);
        }
        self.advance_clock(now);
        if self.shutting_down || self.is_finished() {
            return Err(SendError::Closed);
        }
        self.send_legacy(&Payload::Json(raw), ack)
    }

    fn send_legacy(
        &mut self,
        payload: &Payload<'_>,
        ack: Option<Duration>,
    ) -> Result<MessageId, SendError> {
        let limits = self
            .conn
            .as_ref()
            .map_or(&self.config.connection, Connection::config);
        let max = limits.max_frame_size.min(limits.max_message_size);
        let mut inner = String::new();
        legacy::render_payload(payload, &mut inner);
        if inner.len().saturating_add(legacy::ACK_REQUEST_OVERHEAD) > max {
            return Err(SendError::TooLarge);
        }
        let Some(l) = &mut self.legacy else {
            return Err(SendError::Unsupported);
        };
        let id = l.push(&self.config, inner, ack)?;
        self.pump();
        Ok(id)
    }

    /// Finishes gracefully: no more sends; once every message is
    /// acknowledged the connection is closed with 1000 and the session
    /// ends with [`SessionEvent::Closed`]. A client keeps reconnecting until
    /// then (or until it gives up). Use [`abort`](Self::abort) to stop now.
    pub fn shutdown(&mut self, now: Instant) {
        self.advance_clock(now);
        self.shutting_down = true;
        if self.unacked() == 0 && matches!(self.phase, Phase::Backoff | Phase::NeedTransport) {
            // Nothing left to deliver and no connection: do not reconnect
            // just to close (with its server gone for good, a client would
            // never finish).
            self.finish(Phase::Closed);
            return;
        }
        self.pump();
    }

    /// Ends the session now: unacknowledged messages without an outcome yet
    /// are reported dropped ([`DropReason::Shutdown`]).
    pub fn abort(&mut self, now: Instant) {
        self.advance_clock(now);
        if self.is_finished() {
            return;
        }
        self.channel.drop_all(DropReason::Shutdown);
        if let Some(l) = &mut self.legacy {
            l.drop_all(DropReason::Shutdown);
        }
        if let Some(conn) = &mut self.conn
            && !conn.is_closed()
        {
            // Mid-handshake too: the transport must be closed either way.
            if conn.is_open() {
                let _ = conn.close(self.now, CloseCode::GOING_AWAY, "");
            }
            self.actions.push_back(Action::CloseTransport);
        }
        self.finish(Phase::Closed);
    }

    /// (Server) Attaches the session state for the id of
    /// [`SessionEvent::Hello`], from a [`SessionStore`](super::SessionStore).
    ///
    /// If the connection ended in the meantime (its [`SessionEvent::Closed`]
    /// is queued behind the `Hello`), the state is kept as it is, for
    /// [`take_state`](Self::take_state) to hand back to the store.
    ///
    /// A state that is not resumed goes out with its new resume key in
    /// WELCOME (one is made here if the state has none), unless the client
    /// spoke HELLO version 1, which has no place for it.
    pub fn attach(&mut self, state: SessionState, resumed: bool) {
        let SessionState {
            id,
            mut channel,
            mut key_digest,
            new_key,
        } = state;
        if self.config.report_releases && channel.released.is_none() {
            channel.released = Some(VecDeque::new());
        }
        let conn = match self.conn.as_mut() {
            Some(conn) if self.phase == Phase::AwaitingAttach && conn.is_open() => conn,
            _ => {
                // Dropping the state would lose its messages without an
                // outcome and leave its id attached in the store for ever
                // (every later HELLO for it: busy). Keep it for `take_state`.
                if self.id.is_empty() {
                    channel.on_disconnect();
                    self.channel = channel;
                    self.id = id;
                    self.key_digest = key_digest;
                }
                return;
            }
        };
        let peer_received = self.pending_hello_received;
        if resumed {
            if let Err(e) = channel.on_resume(peer_received) {
                self.channel = channel;
                self.id = id;
                self.key_digest = key_digest;
                return self.protocol_error(e);
            }
        } else {
            channel.reset();
        }
        let key = if resumed || self.hello_version < 2 {
            None
        } else {
            let key = new_key.unwrap_or_else(|| {
                let k = ResumeKey::generate(&mut self.rng);
                key_digest = k.digest();
                k
            });
            Some(key)
        };
        let welcome = wire::encode_welcome(
            resumed,
            &id,
            channel.greeting(),
            key.as_ref().map(ResumeKey::as_bytes),
        );
        let _ = conn.send_binary(&welcome);
        self.channel = channel;
        self.id = id;
        self.key_digest = key_digest;
        self.establish(resumed);
        // Replay what the client has not received now, behind the WELCOME:
        // a caller that drains once would otherwise hold it back until the
        // next input.
        self.pump();
    }

    /// (Server) Refuses the HELLO: the session id is in use elsewhere. The
    /// connection is closed with [`SESSION_BUSY`](super::SESSION_BUSY)
    /// (4013, "try again later"); the client retries after its backoff.
    pub fn refuse_busy(&mut self) {
        if self.phase != Phase::AwaitingAttach {
            return;
        }
        self.events
            .push_back(SessionEvent::Error(SessionError::Busy));
        self.phase = Phase::Greeting;
        if let Some(conn) = &mut self.conn
            && conn
                .close(self.now, super::SESSION_BUSY, "session busy")
                .is_err()
        {
            // Closing is refused only when the connection is already ending:
            // end the transport rather than leave it open until the greeting
            // deadline.
            conn.handle_eof(self.now);
        }
        self.pump();
    }

    /// (Server) Refuses the HELLO, closing the connection with `code` and
    /// `reason`: [`SESSION_QUOTA`](super::SESSION_QUOTA) when the store
    /// refused a new session, 1011 when the server cannot keep the session
    /// durable (its journal file cannot be written). Reports
    /// [`SessionError::Refused`].
    pub fn refuse(&mut self, code: CloseCode, reason: &str) {
        if self.phase != Phase::AwaitingAttach {
            return;
        }
        self.events
            .push_back(SessionEvent::Error(SessionError::Refused(code)));
        self.phase = Phase::Greeting;
        if let Some(conn) = &mut self.conn
            && conn.close(self.now, code, reason).is_err()
        {
            conn.handle_eof(self.now);
        }
        self.pump();
    }

    /// (Client) Resumes a session kept in a journal by an earlier process,
    /// before the first connection: its id (1–64 bytes), its resume key
    /// (the proof of owning it, from [`resume_key`](Self::resume_key)), how many messages
    /// the server acknowledged in it (the messages queued so far, in order,
    /// are its next sequence numbers) and how many were received from it.
    /// The first HELLO then asks the server for that session. If the server
    /// no longer has it, it starts a new one as usual; if the journal turns
    /// out to disagree with the server (it lost records the server relied
    /// on: an ACK for a message it does not have, or DATA beyond what it
    /// received), that connection is closed as a protocol error and the
    /// next one starts a new session. Ignored unless the session is a
    /// `hookup.v1` client that has not connected yet.
    pub fn restore(&mut self, id: &[u8], key: &ResumeKey, acked: u64, received: u64) {
        let fresh = matches!(self.phase, Phase::NeedTransport | Phase::Connecting)
            && self.conn.is_none()
            && self.id.is_empty();
        if !matches!(self.role, Role::Client { .. })
            || self.legacy.is_some()
            || !fresh
            || !(1..=64).contains(&id.len())
        {
            return;
        }
        self.id = id.to_vec();
        self.key = Some(key.clone());
        self.channel.restore(acked, received);
        self.restored = true;
    }

    /// (Client) The server disagrees with a session restored from a
    /// journal, or resumed contradicting this session's state (a server
    /// restarted on a journal that lost records, say): resuming it again
    /// would fail the same way, so the next connection starts a new one
    /// (everything unacknowledged is sent again).
    fn restore_failed(&mut self) {
        let client = matches!(self.role, Role::Client { .. });
        if std::mem::take(&mut self.restored) || (client && self.channel.conflicted) {
            self.id.clear();
            self.key = None;
            self.channel.reset();
        }
    }

    /// (Server) Takes the session state out, to park it in a store after
    /// the connection ended (or to move it elsewhere). Unacknowledged
    /// messages stay in it.
    ///
    /// Messages read but not yet taken with [`poll_event`](Self::poll_event)
    /// are discarded from the event queue: they were never counted as
    /// received (nor acknowledged), so the client sends them again when it
    /// resumes the session.
    pub fn take_state(&mut self) -> Option<SessionState> {
        if self.id.is_empty() {
            return None;
        }
        self.discard_undelivered();
        let id = std::mem::take(&mut self.id);
        let mut channel = std::mem::replace(&mut self.channel, Channel::new());
        // Outcomes not yet collected stay with this session (the caller's
        // sends), not with the state handed on.
        while let Some(o) = channel.poll_outcome() {
            self.outcomes.push_back(o);
        }
        channel.on_disconnect();
        Some(SessionState {
            id,
            channel,
            key_digest: self.key_digest,
            new_key: None,
        })
    }

    /// Drops the queued messages not yet taken by the application and
    /// forgets having read them (`hookup.v1` only).
    fn discard_undelivered(&mut self) {
        if self.legacy.is_some() {
            return;
        }
        if self.channel.undeliver() > 0 || self.stale_messages > 0 {
            self.events
                .retain(|e| !matches!(e, SessionEvent::Message(_)));
        }
        self.stale_messages = 0;
    }

    // ------------------------------------------------------------ input

    /// The next thing the caller must do.
    pub fn poll_action(&mut self) -> Option<Action> {
        let a = self.actions.pop_front()?;
        if a == Action::Connect && self.phase == Phase::NeedTransport {
            self.phase = Phase::Connecting;
        }
        Some(a)
    }

    /// (Client) The transport asked for by [`Action::Connect`] is open.
    pub fn handle_connected(&mut self, now: Instant) {
        self.advance_clock(now);
        let Role::Client { request } = &self.role else {
            return;
        };
        if self.phase != Phase::Connecting {
            if self.is_finished() {
                // Shut down or aborted while the caller was connecting: the
                // new transport is not wanted.
                self.actions.push_back(Action::CloseTransport);
            }
            return;
        }
        let mut config = self.config.connection.clone();
        if config.rng_seed.is_some() {
            let mut seed = [0u8; 32];
            self.rng.fill(&mut seed);
            config.rng_seed = Some(seed);
        }
        self.conn = Some(Connection::client(request, config, self.now));
        self.phase = Phase::Greeting;
        self.set_timer(Timer::Deadline, self.now + self.greeting_timeout());
        self.pump();
    }

    /// (Client) The transport could not be opened.
    pub fn handle_connect_failed(&mut self, now: Instant, reason: &str) {
        self.advance_clock(now);
        if self.phase != Phase::Connecting {
            return;
        }
        self.events
            .push_back(SessionEvent::Error(SessionError::Transport(
                reason.to_owned(),
            )));
        self.schedule_reconnect();
    }

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

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance_clock(now);
        let now = self.now;
        if let Some(conn) = &mut self.conn {
            conn.handle_timeout(now);
        }
        self.channel.handle_timeout(now);
        if let Some(l) = &mut self.legacy {
            l.handle_timeout(now);
        }
        if self.timers[Timer::Reconnect as usize].is_some_and(|t| t <= now) {
            self.clear_timer(Timer::Reconnect);
            if self.phase == Phase::Backoff {
                self.phase = Phase::NeedTransport;
                self.actions.push_back(Action::Connect);
            }
        }
        if self.timers[Timer::Deadline as usize].is_some_and(|t| t <= now) {
            self.clear_timer(Timer::Deadline);
            match self.phase {
                Phase::Established => self.drop_transport(SessionError::KeepaliveTimeout),
                Phase::Greeting | Phase::AwaitingAttach => {
                    self.drop_transport(SessionError::Unexpected("silence: no greeting in time"));
                }
                _ => {}
            }
        }
        if self.timers[Timer::Ping as usize].is_some_and(|t| t <= now) {
            self.clear_timer(Timer::Ping);
            if self.phase == Phase::Established
                && let Some(conn) = &mut self.conn
            {
                self.ping_counter += 1;
                if conn
                    .send_ping(now, &self.ping_counter.to_be_bytes())
                    .is_ok()
                {
                    self.timers[Timer::Deadline as usize] = Some(now + self.config.pong_timeout);
                }
            }
        }
        self.pump();
    }

    // ------------------------------------------------------------ output

    /// The next event.
    ///
    /// A [`SessionEvent::Message`] counts as received (acknowledged to the
    /// peer, reported in greetings, kept by [`take_state`](Self::take_state))
    /// only once it is returned here. An ACK that becomes due with it is
    /// queued when it is returned — or, if another message is queued right
    /// behind it, with the last of that burst (at most
    /// [`SessionConfig::ack_every`](super::SessionConfig::ack_every)
    /// messages later), one ACK for all: write out
    /// [`poll_transmit`](Self::poll_transmit) and re-arm the timer at
    /// [`poll_timeout`](Self::poll_timeout) after draining events, as after
    /// any input.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        let ev = self.events.pop_front()?;
        if self.legacy.is_none() && matches!(ev, SessionEvent::Message(_)) {
            if self.stale_messages > 0 {
                self.stale_messages -= 1;
            } else {
                let ack_due = self.channel.on_delivered(&self.config, self.now);
                // An ACK covers everything taken so far: while another
                // message waits right behind this one (the caller is
                // draining a burst), the ACK waits for the last of them,
                // up to `ack_every` messages. A shutdown may have waited for
                // this message to be taken.
                let more = matches!(self.events.front(), Some(SessionEvent::Message(_)))
                    && self.channel.taken_since_ack() < self.config.ack_every;
                if (ack_due && !more) || self.shutting_down {
                    self.pump();
                }
            }
        }
        Some(ev)
    }

    /// The next outcome of a [`send`](Self::send): the message's id and
    /// what became of it. Every message sent gets exactly one.
    pub fn poll_outcome(&mut self) -> Option<(MessageId, Outcome)> {
        self.outcomes
            .pop_front()
            .or_else(|| self.channel.poll_outcome())
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
    /// [`SessionConfig::write_window`](super::SessionConfig::write_window)
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
        let unwritten = match &self.legacy {
            Some(l) => l.has_unwritten(),
            None => self.channel.has_unwritten(),
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
    /// [`SessionConfig::ack_every`](super::SessionConfig::ack_every)
    /// messages (or [`ack_delay`](super::SessionConfig::ack_delay)), which
    /// bounds what it sends again after this side crashes (PROTOCOL.md §8).
    pub fn has_unsent_ack(&self) -> bool {
        self.channel.ack_queued && self.transmit_len() > 0
    }

    /// Whether the caller should read from the transport.
    pub fn wants_read(&self) -> bool {
        self.conn.as_ref().is_some_and(Connection::wants_read)
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conn = self.conn.as_ref().and_then(Connection::poll_timeout);
        // Ack deadlines run whether or not a connection is up (an
        // `AckFailed` must not wait for the next reconnect); the delayed-ack
        // timer only while an ACK can be sent, else it stays due for ever
        // and a caller that sleeps until it would spin.
        let chan = if self.is_finished() {
            None
        } else {
            let can_ack = self.phase == Phase::Established
                && self.conn.as_ref().is_some_and(Connection::is_open);
            match &self.legacy {
                Some(l) => l.next_timeout(),
                None => self.channel.next_timeout(can_ack),
            }
        };
        self.timers
            .iter()
            .flatten()
            .copied()
            .chain(conn)
            .chain(chan)
            .min()
    }

    // ------------------------------------------------------------ internals

    /// Runs the connection's events through the session, then writes.
    fn pump(&mut self) {
        while let Some(conn) = &mut self.conn {
            // Data messages (the envelopes) without building an `Event`.
            if let Some((text, data)) = conn.poll_message() {
                self.on_data_message(text, data);
            } else if let Some(ev) = conn.poll_event() {
                self.on_connection_event(ev);
            } else {
                break;
            }
        }
        if self.phase == Phase::Established {
            let now = self.now;
            if let Some(conn) = &mut self.conn {
                match &mut self.legacy {
                    Some(l) => l.write(conn, now, self.config.write_window),
                    None => self.channel.write(conn, now, self.config.write_window),
                }
            }
            // Everything read must be taken (and acknowledged) first, else
            // the peer would count it lost.
            if self.shutting_down
                && self.unacked() == 0
                && (self.legacy.is_some() || self.channel.undelivered() == 0)
                && let Some(conn) = &mut self.conn
                && conn.is_open()
            {
                // Flush our last acks before saying goodbye (legacy acks
                // are written as soon as their request arrives).
                if self.legacy.is_none() {
                    self.channel.write(conn, now, usize::MAX);
                }
                let _ = conn.close(now, CloseCode::NORMAL, "");
            }
        }
        self.drain_outcomes();
    }

    /// Moves legacy outcomes and released ids to where the caller polls them.
    fn drain_outcomes(&mut self) {
        if let Some(l) = &mut self.legacy {
            while let Some((id, outcome)) = l.poll_outcome() {
                self.outcomes.push_back((id, outcome));
                // Nothing is kept to be sent again.
                self.legacy_released += 1;
                if self.config.report_releases {
                    self.events.push_back(SessionEvent::Released(id));
                }
            }
        }
        if let Some(r) = &mut self.channel.released
            && !r.is_empty()
        {
            self.events.extend(r.drain(..).map(SessionEvent::Released));
        }
    }

    fn on_connection_event(&mut self, ev: Event) {
        match ev {
            Event::Connected(resp) => {
                if let Role::Client { .. } = self.role
                    && self.legacy.is_some()
                {
                    if resp.subprotocol.as_deref() != Some(LEGACY_SUBPROTOCOL) {
                        return self.protocol_error(SessionError::NotNegotiated);
                    }
                    self.establish(false);
                } else if let Role::Client { .. } = self.role {
                    if resp.subprotocol.as_deref() != Some(wire::SUBPROTOCOL) {
                        return self.protocol_error(SessionError::NotNegotiated);
                    }
                    let hello = wire::encode_hello(
                        wire::VERSION,
                        &self.id,
                        self.channel.greeting(),
                        self.key.as_ref().map(ResumeKey::as_bytes),
                    );
                    if let Some(conn) = &mut self.conn {
                        let _ = conn.send_binary(&hello);
                    }
                }
            }
            Event::Message(m) => {
                let text = m.is_text();
                self.on_data_message(text, m.into_bytes());
            }
            Event::Pong { rtt: Some(rtt), .. } => {
                if self.phase == Phase::Established {
                    self.clear_timer(Timer::Deadline);
                    self.arm_ping();
                }
                self.events.push_back(SessionEvent::Rtt(rtt));
            }
            Event::Closed(c) => {
                // The peer closed with 1000 (not echoing ours): on a server,
                // the client shut its session down.
                let peer_finished = c.initiator == Some(Initiator::Remote)
                    && c.received
                        .as_ref()
                        .is_some_and(|f| f.code == CloseCode::NORMAL);
                let reason = c.error.as_ref().map_or_else(
                    || {
                        c.received
                            .as_ref()
                            .map(|f| f.reason.clone())
                            .unwrap_or_default()
                    },
                    ToString::to_string,
                );
                self.on_disconnect(c.code(), reason, peer_finished);
            }
            _ => {}
        }
    }

    /// A data message from the connection (`text`: its payload is UTF-8).
    fn on_data_message(&mut self, text: bool, data: Bytes) {
        if self.legacy.is_some() {
            let m = if text {
                Message::Text(Utf8Bytes::from_validated(data))
            } else {
                Message::Binary(data)
            };
            return self.on_legacy_message(m);
        }
        // Once the connection is closing (our protocol error or shutdown,
        // the peer's close) nothing received on it can be acknowledged any
        // more: DATA is not delivered (the peer sends it again on the next
        // connection) and nothing but ACKs is acted on.
        let open = self.conn.as_ref().is_some_and(Connection::is_open);
        let result = if text {
            Err(SessionError::Wire(wire::WireError::TextMessage))
        } else {
            self.on_envelope(data, open)
        };
        if let Err(e) = result
            && open
        {
            self.protocol_error(e);
        }
    }

    fn on_envelope(&mut self, mut bytes: Bytes, open: bool) -> Result<(), SessionError> {
        let envelope = Envelope::decode(&bytes)?;
        if !open && !matches!(envelope, Envelope::Ack { .. }) {
            return Ok(());
        }
        match envelope {
            Envelope::Hello {
                version,
                session,
                received,
                proof,
            } => {
                if !matches!(self.role, Role::Server) || self.phase != Phase::Greeting {
                    return Err(SessionError::Unexpected("HELLO"));
                }
                self.pending_hello_received = received;
                self.hello_version = version;
                self.phase = Phase::AwaitingAttach;
                self.events.push_back(SessionEvent::Hello {
                    session: session.to_vec(),
                    proof: proof.map(|p| ResumeKey::from_bytes(*p)),
                });
                Ok(())
            }
            Envelope::Welcome {
                resumed,
                session,
                received,
                key,
            } => {
                if !matches!(self.role, Role::Client { .. }) || self.phase != Phase::Greeting {
                    return Err(SessionError::Unexpected("WELCOME"));
                }
                if session.is_empty() {
                    return Err(SessionError::Unexpected("empty session id"));
                }
                let resumed = resumed && session == self.id.as_slice();
                // A new session comes with its key (without one it could
                // never be resumed); a resumed one keeps the key it has.
                match (resumed, key) {
                    (false, None) => {
                        return Err(SessionError::Unexpected(
                            "WELCOME(new) without a resume key",
                        ));
                    }
                    (true, Some(_)) => {
                        return Err(SessionError::Unexpected("resume key in WELCOME(resumed)"));
                    }
                    _ => {}
                }
                if resumed {
                    self.channel
                        .on_resume(received)
                        .inspect_err(|_| self.restore_failed())?;
                } else {
                    // Messages of the old session still queued are
                    // delivered, but not counted in the new one.
                    self.stale_messages += self.channel.undelivered();
                    self.channel.reset();
                    self.id = session.to_vec();
                    self.key = key.map(|k| ResumeKey::from_bytes(*k));
                    self.restored = false;
                }
                self.establish(resumed);
                Ok(())
            }
            Envelope::Data {
                text, ack_now, seq, ..
            } => {
                if self.phase != Phase::Established {
                    return Err(SessionError::Unexpected(
                        "DATA before the session is established",
                    ));
                }
                // The payload is the rest of `bytes`: handed on without
                // taking a new reference.
                bytes.advance(wire::DATA_HEADER_LEN);
                if let Some(m) = self
                    .channel
                    .on_data(text, ack_now, seq, bytes)
                    .inspect_err(|_| self.restore_failed())?
                {
                    self.restored = false;
                    self.events.push_back(SessionEvent::Message(m));
                }
                Ok(())
            }
            Envelope::Ack { seq } => {
                if self.phase != Phase::Established {
                    return Err(SessionError::Unexpected(
                        "ACK before the session is established",
                    ));
                }
                self.channel
                    .on_ack(seq)
                    .inspect_err(|_| self.restore_failed())
            }
        }
    }

    /// A message in legacy mode. Everything is acted on, even while the
    /// connection closes: nothing is ever sent again, so a message skipped
    /// here would be lost (an ack that can no longer be written leaves the
    /// sender with `AckFailed` or a drop: at-least-once).
    fn on_legacy_message(&mut self, m: Message) {
        let Some(l) = &mut self.legacy else { return };
        let text = match m {
            Message::Text(t) => t,
            other => {
                // The original sends binary messages as they are.
                self.events.push_back(SessionEvent::Message(other));
                return;
            }
        };
        let deliver = |payload: Payload<'_>| match payload {
            Payload::Text(std::borrow::Cow::Owned(s)) => Message::Text(Utf8Bytes::from(s)),
            Payload::Text(std::borrow::Cow::Borrowed(s)) => Message::Text(
                Utf8Bytes::from_validated(text.as_bytes().slice_ref(s.as_bytes())),
            ),
            Payload::Json(j) => Message::Text(Utf8Bytes::from_validated(
                text.as_bytes().slice_ref(j.as_str().as_bytes()),
            )),
        };
        match legacy::Envelope::parse(text.as_str()) {
            Ok(legacy::Envelope::Message(p)) => {
                self.events.push_back(SessionEvent::Message(deliver(p)));
            }
            Ok(legacy::Envelope::AckRequest { id, payload }) => {
                // Ack first (as the original): a failed write means the
                // connection is closing; the sender then sees no ack.
                if let Some(conn) = &mut self.conn {
                    let _ = conn.send_text(&legacy::render_ack(id));
                }
                if l.on_request(id) {
                    self.events
                        .push_back(SessionEvent::Message(deliver(payload)));
                }
            }
            Ok(legacy::Envelope::Ack { id }) => {
                if !l.on_ack(id) {
                    self.events
                        .push_back(SessionEvent::Error(SessionError::AckForUnsent(id)));
                }
            }
            Ok(legacy::Envelope::NeedsAck { .. }) => {
                self.events
                    .push_back(SessionEvent::Error(SessionError::Unexpected(
                        "needs_ack on the wire (a buffer-file envelope)",
                    )));
            }
            Err(e) => self
                .events
                .push_back(SessionEvent::Error(SessionError::Legacy(e))),
        }
    }

    fn establish(&mut self, resumed: bool) {
        self.phase = Phase::Established;
        self.attempt = 0;
        self.clear_timer(Timer::Deadline);
        self.arm_ping();
        self.events.push_back(SessionEvent::Connected {
            session: self.id.clone(),
            resumed,
        });
    }

    fn arm_ping(&mut self) {
        if let Some(i) = self.config.ping_interval {
            self.set_timer(Timer::Ping, self.now + i);
        }
    }

    /// A session-protocol violation: report it and close the connection;
    /// nothing queued is lost.
    fn protocol_error(&mut self, e: SessionError) {
        self.events.push_back(SessionEvent::Error(e.clone()));
        if let Some(conn) = &mut self.conn
            && conn.is_open()
        {
            let mut reason = e.to_string();
            reason.truncate(100);
            let _ = conn.close(self.now, CloseCode::PROTOCOL_ERROR, &reason);
        }
    }

    /// Gives up on the current transport without a closing handshake.
    fn drop_transport(&mut self, e: SessionError) {
        self.events.push_back(SessionEvent::Error(e.clone()));
        if let Some(conn) = &mut self.conn {
            conn.handle_eof(self.now);
        }
        self.pump();
    }

    fn on_disconnect(&mut self, code: CloseCode, reason: String, peer_finished: bool) {
        self.channel.on_disconnect();
        if let Some(l) = &mut self.legacy {
            match self.role {
                // The session ends with its connection.
                Role::Server => l.drop_all(DropReason::Disconnected),
                Role::Client { .. } => l.on_disconnect(),
            }
        }
        self.clear_timer(Timer::Ping);
        self.clear_timer(Timer::Deadline);
        self.actions.push_back(Action::CloseTransport);
        self.events
            .push_back(SessionEvent::Disconnected { code, reason });
        match self.role {
            Role::Server => {
                if peer_finished {
                    // Only a client that shut its session down closes with
                    // 1000, once everything it sent was acknowledged: it
                    // will not come back for the rest.
                    self.channel.drop_all(DropReason::Shutdown);
                }
                self.finish(Phase::Closed);
            }
            Role::Client { .. } => {
                if self.shutting_down && self.unacked() == 0 {
                    self.finish(Phase::Closed);
                } else if !self.is_finished() {
                    self.schedule_reconnect();
                }
            }
        }
    }

    fn schedule_reconnect(&mut self) {
        self.attempt += 1;
        let allowed = match self.config.reconnect {
            Reconnect::Never => false,
            Reconnect::AtMost(n) => self.attempt <= n,
            Reconnect::Forever => true,
        };
        if !allowed {
            self.channel.drop_all(DropReason::GaveUp);
            if let Some(l) = &mut self.legacy {
                l.drop_all(DropReason::GaveUp);
            }
            self.drain_outcomes();
            self.events.push_back(SessionEvent::GaveUp);
            self.phase = Phase::GaveUp;
            self.timers = [None; TIMERS];
            return;
        }
        let delay = self.backoff_delay();
        self.phase = Phase::Backoff;
        self.set_timer(Timer::Reconnect, self.now + delay);
        self.events.push_back(SessionEvent::Reconnecting {
            attempt: self.attempt,
            delay,
        });
    }

    /// Exponential backoff with full jitter: uniform in
    /// `[min, min(max, min * 2^(attempt-1))]`.
    fn backoff_delay(&mut self) -> Duration {
        let min = self.config.backoff_min;
        let max = self.config.backoff_max.max(min);
        let exp = self.attempt.saturating_sub(1).min(32);
        let cap = min.saturating_mul(1u32 << exp.min(31)).min(max);
        let span = (cap - min).as_nanos().min(u128::from(u64::MAX)) as u64;
        min + Duration::from_nanos(self.rng.below_inclusive(span))
    }

    fn finish(&mut self, phase: Phase) {
        if self.is_finished() {
            return;
        }
        self.phase = phase;
        self.timers = [None; TIMERS];
        // A queued `Connect` would otherwise, once polled, take the session
        // out of its final phase.
        self.actions.retain(|a| *a != Action::Connect);
        self.drain_outcomes();
        self.events.push_back(SessionEvent::Closed);
    }
}
