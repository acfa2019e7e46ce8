//! The server's side of a session: HELLO, attaching the state from a
//! store (or refusing a busy id), handing it back when the connection ends.

use std::collections::VecDeque;
use std::time::Instant;

use super::{Phase, Role, Session, SessionEvent, Timer, WireMode};
use crate::connection::Connection;
use crate::reliable::channel::Channel;
use crate::reliable::key::{RESUME_KEY_LEN, ResumeKey};
use crate::reliable::legacy_channel::LegacyChannel;
use crate::reliable::store::SessionState;
use crate::reliable::wire;
use crate::reliable::{SessionConfig, SessionError};
use crate::rng::Rng;

impl Session {
    /// A server session on a connection that accepted the `hookup.v1`
    /// subprotocol. It waits for HELLO ([`SessionEvent::Hello`]).
    ///
    /// The session goes by the connection's settings
    /// ([`Connection::config`]): its handshake timeout bounds the wait for
    /// HELLO, its limits bound what [`send`](Self::send) accepts, and its
    /// [`rng_seed`](crate::Config::rng_seed) seeds the session's generator
    /// (one step removed: the session never repeats the connection's stream).
    pub fn server(conn: Connection, config: SessionConfig, now: Instant) -> Self {
        let mut s = Self::new_server(&conn, WireMode::V1, config, now);
        s.conn = Some(conn);
        s.phase = Phase::Greeting;
        s.set_timer(Timer::Deadline, now + s.greeting_timeout());
        s.pump();
        s
    }

    /// A server session in legacy mode, on a connection that accepted the
    /// original hookup's [`LEGACY_SUBPROTOCOL`](crate::reliable::LEGACY_SUBPROTOCOL) (`jsonProtocol`; see
    /// [`legacy`](crate::reliable::legacy)). There is no greeting and no session to
    /// resume: it is established at once ([`SessionEvent::Connected`] with an
    /// empty id) and ends with the connection.
    ///
    /// An incoming `ack_request` is acknowledged and delivered, once per id
    /// and connection; `text` and `json` envelopes are delivered (JSON as
    /// its text), binary messages as they are. [`send`](Self::send) and
    /// [`send_json`](Self::send_json) render `text`/`json` envelopes, or an
    /// `ack_request` (ids from 1 per connection) when an ack is asked for,
    /// which resolves as `Acked`, `AckFailed` at its deadline, or
    /// `Dropped(`[`DropReason::Disconnected`](crate::reliable::DropReason::Disconnected)`)` when the connection ends
    /// first. Binary messages cannot be sent ([`SendError::Unsupported`](crate::reliable::SendError::Unsupported)).
    /// A malformed envelope is reported ([`SessionError::Legacy`](crate::reliable::SessionError::Legacy)) and
    /// skipped, as is an `ack` for an id never sent
    /// ([`SessionError::AckForUnsent`](crate::reliable::SessionError::AckForUnsent)) or a `needs_ack` envelope; the
    /// connection stays open. With [`SessionConfig::report_releases`](crate::reliable::SessionConfig::report_releases) every
    /// message is [released](SessionEvent::Released) with its outcome.
    ///
    /// [`take_state`](Self::take_state) has nothing to give back: there is
    /// nothing to park. The connection's settings are used as by
    /// [`server`](Self::server).
    pub fn legacy_server(conn: Connection, config: SessionConfig, now: Instant) -> Self {
        let mut s = Self::new_server(&conn, WireMode::Legacy(LegacyChannel::new()), config, now);
        s.conn = Some(conn);
        s.establish(false);
        s.pump();
        s
    }

    /// A server session with `conn`'s settings (not yet holding it).
    fn new_server(conn: &Connection, wire: WireMode, config: SessionConfig, now: Instant) -> Self {
        let connection = conn.config().clone();
        let rng = connection.rng_seed.map_or_else(Rng::from_std, |seed| {
            let mut derived = [0u8; 32];
            Rng::from_seed(seed).fill(&mut derived);
            Rng::from_seed(derived)
        });
        Self::new(Role::Server, wire, config, connection, rng, now)
    }

    /// (Server) Attaches the session state for the id of
    /// [`SessionEvent::Hello`], from a [`SessionStore`](crate::reliable::SessionStore).
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
    /// connection is closed with [`SESSION_BUSY`](crate::reliable::SESSION_BUSY)
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
                .close(self.now, crate::reliable::SESSION_BUSY, "session busy")
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
    /// `reason`: [`SESSION_QUOTA`](crate::reliable::SESSION_QUOTA) when the
    /// store refused a new session, 1011 when the server cannot keep the
    /// session durable (its journal file cannot be written). Reports
    /// [`SessionError::Refused`].
    pub fn refuse(&mut self, code: crate::CloseCode, reason: &str) {
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

    // ------------------------------------------------------------ internals

    /// (Server) HELLO: report it for the caller to [`attach`](Self::attach)
    /// the session's state (or refuse it).
    pub(super) fn on_hello(
        &mut self,
        version: u8,
        session: &[u8],
        received: u64,
        proof: Option<&[u8; RESUME_KEY_LEN]>,
    ) -> Result<(), SessionError> {
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

    /// Drops the queued messages not yet taken by the application and
    /// forgets having read them (`hookup.v1` only).
    fn discard_undelivered(&mut self) {
        if self.is_legacy() {
            return;
        }
        if self.channel.undeliver() > 0 || self.stale_messages > 0 {
            self.events
                .retain(|e| !matches!(e, SessionEvent::Message(_)));
        }
        self.stale_messages = 0;
    }
}
