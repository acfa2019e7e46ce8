//! A server's sessions while their clients are away.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::channel::Channel;
use super::{DropReason, SessionError};
use crate::rng::Rng;

/// A session's state between connections: its id, its unacknowledged
/// outgoing messages and what it received.
#[derive(Debug)]
pub struct SessionState {
    pub(crate) id: Vec<u8>,
    pub(crate) channel: Channel,
}

impl SessionState {
    /// The session id.
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// Messages not yet acknowledged by the client.
    pub fn unacked(&self) -> usize {
        self.channel.unacked()
    }
}

/// Bounds of a [`SessionStore`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoreConfig {
    /// How long a disconnected session is kept (default 60 s).
    pub ttl: Duration,
    /// Most sessions kept while disconnected (default 10,000).
    pub max_sessions: usize,
    /// Most unacknowledged payload bytes kept over all disconnected
    /// sessions (default 256 MiB).
    pub max_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(60),
            max_sessions: 10_000,
            max_bytes: 256 << 20,
        }
    }
}

/// Keeps disconnected clients' sessions for [`StoreConfig::ttl`], bounded
/// in count and bytes (the oldest go first), so that clients can resume.
#[derive(Debug)]
pub struct SessionStore {
    config: StoreConfig,
    parked: HashMap<Vec<u8>, (SessionState, Instant)>,
    attached: HashSet<Vec<u8>>,
    bytes: usize,
    rng: Rng,
    expired: u64,
}

impl SessionStore {
    /// An empty store; `seed` makes session ids reproducible.
    pub fn new(config: StoreConfig, seed: Option<[u8; 32]>) -> Self {
        Self {
            config,
            parked: HashMap::new(),
            attached: HashSet::new(),
            bytes: 0,
            rng: seed.map_or_else(Rng::from_std, Rng::from_seed),
            expired: 0,
        }
    }

    /// Opens the session a client asked for in HELLO: the parked one with
    /// that id (`resumed == true`), or a new one. `Busy` while that id is
    /// attached to another connection.
    pub fn open(
        &mut self,
        requested: &[u8],
        _now: Instant,
    ) -> Result<(SessionState, bool), SessionError> {
        if !requested.is_empty() {
            if self.attached.contains(requested) {
                return Err(SessionError::Busy);
            }
            if let Some((state, _)) = self.parked.remove(requested) {
                self.bytes -= state.channel.unacked_bytes();
                self.attached.insert(state.id.clone());
                return Ok((state, true));
            }
        }
        let mut id = [0u8; 16];
        loop {
            self.rng.fill(&mut id);
            if !self.parked.contains_key(&id[..]) && !self.attached.contains(&id[..]) {
                break;
            }
        }
        self.attached.insert(id.to_vec());
        Ok((
            SessionState {
                id: id.to_vec(),
                channel: Channel::new(),
            },
            false,
        ))
    }

    /// Keeps a session whose connection ended, for its client to resume.
    pub fn park(&mut self, mut state: SessionState, now: Instant) {
        self.attached.remove(&state.id);
        state.channel.on_disconnect();
        self.bytes += state.channel.unacked_bytes();
        self.parked.insert(state.id.clone(), (state, now));
        while self.parked.len() > self.config.max_sessions || self.bytes > self.config.max_bytes {
            let Some(oldest) = self
                .parked
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.evict(&oldest);
        }
    }

    /// Forgets a session that ended for good (its client closed it).
    pub fn release(&mut self, state: SessionState) {
        self.attached.remove(&state.id);
    }

    fn evict(&mut self, id: &[u8]) {
        if let Some((mut state, _)) = self.parked.remove(id) {
            self.bytes -= state.channel.unacked_bytes();
            state.channel.drop_all(DropReason::Expired);
            self.expired += 1;
        }
    }

    /// Reaps sessions parked for longer than the TTL.
    pub fn handle_timeout(&mut self, now: Instant) {
        let ttl = self.config.ttl;
        let due: Vec<Vec<u8>> = self
            .parked
            .iter()
            .filter(|(_, (_, t))| *t + ttl <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for id in due {
            self.evict(&id);
        }
    }

    /// When the next parked session expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.parked
            .values()
            .map(|(_, t)| *t + self.config.ttl)
            .min()
    }

    /// Sessions parked now.
    pub fn parked(&self) -> usize {
        self.parked.len()
    }

    /// Sessions attached to a connection now.
    pub fn attached(&self) -> usize {
        self.attached.len()
    }

    /// Unacknowledged bytes held by parked sessions.
    pub fn parked_bytes(&self) -> usize {
        self.bytes
    }

    /// Sessions dropped so far because they expired or made room.
    pub fn expired(&self) -> u64 {
        self.expired
    }
}
