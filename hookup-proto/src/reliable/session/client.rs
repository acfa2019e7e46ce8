//! The client's side of a session: the request it connects with, HELLO
//! and WELCOME, a session restored from a journal, reconnecting with
//! backoff.

use std::time::{Duration, Instant};

use super::{Action, Phase, Role, Session, SessionEvent, TIMERS, Timer, WireMode};
use crate::config::Config;
use crate::connection::Connection;
use crate::handshake::ClientRequest;
use crate::reliable::key::{RESUME_KEY_LEN, ResumeKey};
use crate::reliable::legacy::LEGACY_SUBPROTOCOL;
use crate::reliable::legacy_channel::LegacyChannel;
use crate::reliable::wire;
use crate::reliable::{DropReason, Reconnect, SessionConfig, SessionError};
use crate::rng::Rng;

impl Session {
    /// A client session for `request` (the `hookup.v1` subprotocol is added
    /// to it). It starts by asking for a transport ([`Action::Connect`]).
    ///
    /// `connection` holds the settings of every WebSocket connection the
    /// session makes (limits, timeouts, compression); its
    /// [`rng_seed`](Config::rng_seed) seeds the session's generator
    /// (reconnect jitter), which seeds each connection's in turn.
    pub fn client(
        request: ClientRequest,
        config: SessionConfig,
        connection: Config,
        now: Instant,
    ) -> Self {
        let request = if request.protocols().iter().any(|p| p == wire::SUBPROTOCOL) {
            request
        } else {
            request
                .protocol(wire::SUBPROTOCOL)
                .expect("valid subprotocol token")
        };
        let rng = connection
            .rng_seed
            .map_or_else(Rng::from_std, Rng::from_seed);
        let mut s = Self::new(
            Role::Client {
                request: Box::new(request),
            },
            WireMode::V1,
            config,
            connection,
            rng,
            now,
        );
        s.actions.push_back(Action::Connect);
        s
    }

    /// A client session in legacy mode, for servers of the original hookup:
    /// `request` is sent with the [`LEGACY_SUBPROTOCOL`] (`jsonProtocol`)
    /// added, and the server must select it. Established as soon as the
    /// handshake completes; messages are as for
    /// [`legacy_server`](Self::legacy_server). It reconnects on the
    /// [`SessionConfig::reconnect`] policy; messages not yet written wait
    /// for the next connection, ack requests in flight when a connection
    /// ends are dropped ([`DropReason::Disconnected`]). `connection` is as
    /// for [`client`](Self::client).
    pub fn legacy_client(
        request: ClientRequest,
        config: SessionConfig,
        connection: Config,
        now: Instant,
    ) -> Self {
        let request = if request.protocols().iter().any(|p| p == LEGACY_SUBPROTOCOL) {
            request
        } else {
            request
                .protocol(LEGACY_SUBPROTOCOL)
                .expect("valid subprotocol token")
        };
        let rng = connection
            .rng_seed
            .map_or_else(Rng::from_std, Rng::from_seed);
        let mut s = Self::new(
            Role::Client {
                request: Box::new(request),
            },
            WireMode::Legacy(LegacyChannel::new()),
            config,
            connection,
            rng,
            now,
        );
        s.actions.push_back(Action::Connect);
        s
    }

    /// (Client) The request used for every connection.
    pub fn request(&self) -> Option<&ClientRequest> {
        match &self.role {
            Role::Client { request } => Some(request),
            Role::Server => None,
        }
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
            || self.is_legacy()
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

    // ------------------------------------------------------------ input

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
        let mut config = self.connection.clone();
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

    // ------------------------------------------------------------ internals

    /// (Client) The WebSocket handshake completed, selecting `subprotocol`:
    /// a legacy session is established at once, a `hookup.v1` one says
    /// HELLO and waits for WELCOME.
    pub(super) fn on_connected(&mut self, subprotocol: Option<&str>) {
        if subprotocol != Some(self.wire.subprotocol()) {
            return self.protocol_error(SessionError::NotNegotiated);
        }
        if self.is_legacy() {
            return self.establish(false);
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

    /// (Client) WELCOME: the session is resumed or new; established.
    pub(super) fn on_welcome(
        &mut self,
        resumed: bool,
        session: &[u8],
        received: u64,
        key: Option<&[u8; RESUME_KEY_LEN]>,
    ) -> Result<(), SessionError> {
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

    /// (Client) The server disagrees with a session restored from a
    /// journal, or resumed contradicting this session's state (a server
    /// restarted on a journal that lost records, say): resuming it again
    /// would fail the same way, so the next connection starts a new one
    /// (everything unacknowledged is sent again).
    pub(super) fn restore_failed(&mut self) {
        let client = matches!(self.role, Role::Client { .. });
        if std::mem::take(&mut self.restored) || (client && self.channel.conflicted) {
            self.id.clear();
            self.key = None;
            self.channel.reset();
        }
    }

    pub(super) fn schedule_reconnect(&mut self) {
        self.attempt += 1;
        let allowed = match self.config.reconnect {
            Reconnect::Never => false,
            Reconnect::AtMost(n) => self.attempt <= n,
            Reconnect::Forever => true,
        };
        if !allowed {
            self.channel.drop_all(DropReason::GaveUp);
            if let WireMode::Legacy(l) = &mut self.wire {
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
}
