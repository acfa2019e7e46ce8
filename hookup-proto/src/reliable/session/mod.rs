//! A session: one end of a `hookup.v1` conversation across connections, or
//! of a legacy `jsonProtocol` connection.
//!
//! This file has the types, the commands and events both roles share and
//! the loop that runs the connection's events
//! through the session; `timers` the timer table, keepalive and clock;
//! `transport` the transport surface (bytes in and
//! out, the [`Endpoint`](crate::Endpoint) implementation); `client` the client's side (connecting, HELLO and
//! WELCOME, restore, reconnect with backoff), `server` the server's
//! (HELLO, attach, refuse, take_state), `v1` the `hookup.v1` envelopes
//! received, `legacy_mode` the `jsonProtocol` messages. Each adds its own
//! `impl Session` block.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::channel::Channel;
use super::key::{RESUME_KEY_LEN, ResumeKey};
use super::legacy::{LEGACY_SUBPROTOCOL, Payload, RawJson};
use super::legacy_channel::LegacyChannel;
use super::wire;
use super::{DeliveryOutcome, DropReason, MessageId, SendError, SessionConfig, SessionError};
use crate::close::CloseCode;
use crate::config::Config;
use crate::connection::Connection;
use crate::event::{Event, Initiator};
use crate::handshake::ClientRequest;
use crate::message::{Message, MessageKind, Utf8Bytes};
use crate::rng::Rng;

mod client;
mod legacy_mode;
mod server;
mod timers;
mod transport;
mod v1;

use timers::{TIMERS, Timer};

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
    /// reported [`DeliveryOutcome::Written`] are not reported again). Terminal.
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

#[derive(Debug)]
enum Role {
    Client { request: Box<ClientRequest> },
    Server,
}

/// The wire protocol a session speaks, fixed when it is made.
///
/// The `hookup.v1` message engine (`Session::channel`) stays a field of the
/// session in both modes rather than a payload of `V1`: a server's state
/// moves in and out of it ([`Session::attach`], [`Session::take_state`]),
/// and in legacy mode it stays empty, so its counters add nothing.
#[derive(Debug)]
enum WireMode {
    /// `hookup.v1`: envelopes with sequence numbers, acknowledgements,
    /// resumable sessions.
    V1,
    /// The original hookup's `jsonProtocol` (see [`legacy`](super::legacy)),
    /// with its own message engine: one connection, nothing sent again.
    Legacy(LegacyChannel),
}

impl WireMode {
    /// The WebSocket subprotocol of this wire protocol.
    fn subprotocol(&self) -> &'static str {
        match self {
            Self::V1 => wire::SUBPROTOCOL,
            Self::Legacy(_) => LEGACY_SUBPROTOCOL,
        }
    }
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
/// [`DeliveryOutcome::Written`] by then — without going through the events.
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
    /// The WebSocket settings: (client) of every connection it makes,
    /// (server) those of the connection it was given. Also the limits a
    /// message is checked against while there is no connection.
    connection: Config,
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
    /// The wire protocol: `hookup.v1`, or legacy `jsonProtocol` with its
    /// own message engine (then `channel` stays unused).
    wire: WireMode,
    /// (Client) Restored from a journal and not yet confirmed by the server.
    restored: bool,
    /// (Client) [`SessionEvent::Message`]s at the front of `events` from a
    /// session the server no longer had (WELCOME new): delivered, but not
    /// counted as received in the new one.
    stale_messages: u64,
    /// Outcomes not in the channel's queue: legacy mode's, and those left in
    /// a channel taken out by [`take_state`](Self::take_state).
    outcomes: VecDeque<(MessageId, DeliveryOutcome)>,
    /// Legacy mode: messages released (every outcome releases one).
    legacy_released: u64,
    now: Instant,
}

impl Session {
    fn new(
        role: Role,
        wire: WireMode,
        config: SessionConfig,
        connection: Config,
        rng: Rng,
        now: Instant,
    ) -> Self {
        let mut channel = Channel::new();
        if config.report_releases {
            channel.released = Some(VecDeque::new());
        }
        Self {
            role,
            config,
            connection,
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
            wire,
            restored: false,
            stale_messages: 0,
            outcomes: VecDeque::new(),
            legacy_released: 0,
            now,
        }
    }

    // ------------------------------------------------------------ getters

    /// Whether the session speaks the legacy `jsonProtocol`.
    pub fn is_legacy(&self) -> bool {
        matches!(self.wire, WireMode::Legacy(_))
    }

    /// The session id (empty until established).
    pub fn id(&self) -> &[u8] {
        &self.id
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
        match &self.wire {
            WireMode::Legacy(l) => l.unresolved(),
            WireMode::V1 => self.channel.unacked(),
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
        match &self.wire {
            WireMode::Legacy(l) => l.queued_bytes(),
            WireMode::V1 => self.channel.unacked_bytes(),
        }
    }

    /// The current connection, if any.
    pub fn connection(&self) -> Option<&Connection> {
        self.conn.as_ref()
    }

    fn greeting_timeout(&self) -> Duration {
        self.connection
            .handshake_timeout
            .unwrap_or(Duration::from_secs(10))
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
        if self.is_legacy() {
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
            .map_or(&self.connection, Connection::config);
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
        if !self.is_legacy() {
            return self.send(now, Message::text(raw.as_str()), ack);
        }
        self.advance_clock(now);
        if self.shutting_down || self.is_finished() {
            return Err(SendError::Closed);
        }
        self.send_legacy(&Payload::Json(raw), ack)
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
        if let WireMode::Legacy(l) = &mut self.wire {
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

    // ------------------------------------------------------------ input

    /// The next thing the caller must do.
    pub fn poll_action(&mut self) -> Option<Action> {
        let a = self.actions.pop_front()?;
        if a == Action::Connect && self.phase == Phase::NeedTransport {
            self.phase = Phase::Connecting;
        }
        Some(a)
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
        if !self.is_legacy() && matches!(ev, SessionEvent::Message(_)) {
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
    pub fn poll_outcome(&mut self) -> Option<(MessageId, DeliveryOutcome)> {
        self.outcomes
            .pop_front()
            .or_else(|| self.channel.poll_outcome())
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
                match &mut self.wire {
                    WireMode::Legacy(l) => l.write(conn, now, self.config.write_window),
                    WireMode::V1 => self.channel.write(conn, now, self.config.write_window),
                }
            }
            // Everything read must be taken (and acknowledged) first, else
            // the peer would count it lost.
            if self.shutting_down
                && self.unacked() == 0
                && (self.is_legacy() || self.channel.undelivered() == 0)
                && let Some(conn) = &mut self.conn
                && conn.is_open()
            {
                // Flush our last acks before saying goodbye (legacy acks
                // are written as soon as their request arrives).
                if matches!(self.wire, WireMode::V1) {
                    self.channel.write(conn, now, usize::MAX);
                }
                let _ = conn.close(now, CloseCode::NORMAL, "");
            }
        }
        self.drain_outcomes();
    }

    /// Moves legacy outcomes and released ids to where the caller polls them.
    fn drain_outcomes(&mut self) {
        if let WireMode::Legacy(l) = &mut self.wire {
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
                if let Role::Client { .. } = self.role {
                    self.on_connected(resp.subprotocol.as_deref());
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
        if self.is_legacy() {
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
        if let WireMode::Legacy(l) = &mut self.wire {
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
