//! A server's sessions while their clients are away.

use core::net::IpAddr;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::channel::Channel;
use super::key::{RESUME_KEY_LEN, ResumeKey};
use super::{DeliveryOutcome, DropReason, MessageId, SessionConfig, SessionError};
use crate::message::{Message, MessageKind};
use crate::rng::Rng;

/// A session's state between connections: its id, the digest of its
/// resume key, its unacknowledged outgoing messages and what it received.
#[derive(Debug)]
pub struct SessionState {
    pub(crate) id: Vec<u8>,
    pub(crate) channel: Channel,
    /// SHA-256 of the resume key.
    pub(crate) key_digest: [u8; RESUME_KEY_LEN],
    /// The resume key itself, from [`SessionStore::open`] of a session that
    /// is new (or starts over) until WELCOME hands it to the client.
    pub(crate) new_key: Option<ResumeKey>,
}

impl SessionState {
    /// The session id.
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// The SHA-256 digest of the session's resume key: what a server
    /// journal keeps (the key itself is only ever sent to the client).
    pub fn key_digest(&self) -> &[u8; RESUME_KEY_LEN] {
        &self.key_digest
    }

    /// The resume key of a session that is new (or starts over), from
    /// [`SessionStore::open`] until [`Session::attach`](super::Session::attach)
    /// hands it to the client in WELCOME; `None` otherwise (the key is not
    /// kept, only its digest).
    pub fn resume_key(&self) -> Option<&ResumeKey> {
        self.new_key.as_ref()
    }

    /// Messages not yet acknowledged by the client.
    pub fn unacked(&self) -> usize {
        self.channel.unacked()
    }

    /// Messages received from the client in order (its sequence number).
    pub fn received(&self) -> u64 {
        self.channel.received()
    }

    /// A session kept in a journal by an earlier server process: its id,
    /// the digest of its resume key ([`key_digest`](Self::key_digest)),
    /// how many of its messages the client acknowledged, how many it
    /// received from the client, and its unacknowledged messages in order
    /// (they get the sequence numbers `acked + 1`, …; no bounds apply).
    /// Returns the state and the message ids given to `messages`, in order.
    /// [`park`](SessionStore::park) it for the client to resume.
    pub fn restore(
        id: Vec<u8>,
        key_digest: [u8; RESUME_KEY_LEN],
        acked: u64,
        received: u64,
        messages: impl IntoIterator<Item = Message>,
    ) -> (Self, Vec<MessageId>) {
        let config = SessionConfig {
            max_outbox_messages: usize::MAX,
            max_outbox_bytes: usize::MAX,
            ..SessionConfig::default()
        };
        let mut channel = Channel::new();
        let ids = messages
            .into_iter()
            .filter_map(|m| {
                let kind = if m.is_text() {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                channel.push(&config, kind, m.into_bytes(), None).ok()
            })
            .collect();
        channel.restore(acked, received);
        (
            Self {
                id,
                channel,
                key_digest,
                new_key: None,
            },
            ids,
        )
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
    /// Most sessions, attached or parked, created from one client IP
    /// address (IPv6: one /64) that are alive at once (default 1,000; 0:
    /// no limit). A HELLO that would create one more is refused
    /// ([`SessionError::TooManySessions`]; the server closes with
    /// [`SESSION_QUOTA`](super::SESSION_QUOTA)); resuming a session is
    /// never refused. Counted only for sessions opened with an address
    /// ([`SessionStore::open_from`]).
    pub max_sessions_per_ip: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(60),
            max_sessions: 10_000,
            max_bytes: 256 << 20,
            max_sessions_per_ip: 1_000,
        }
    }
}

/// Keeps disconnected clients' sessions for [`StoreConfig::ttl`], bounded
/// in count and bytes (the oldest go first), so that clients can resume.
///
/// Messages in parked sessions still resolve: an ack deadline that passes
/// while the client is away reports `AckFailed`, and a session dropped
/// (expired, evicted to make room, or released) reports its unresolved
/// messages `Dropped`. Collect these with [`poll_outcome`](Self::poll_outcome)
/// after [`park`](Self::park), [`release`](Self::release) and
/// [`handle_timeout`](Self::handle_timeout).
#[derive(Debug)]
pub struct SessionStore {
    config: StoreConfig,
    parked: HashMap<Vec<u8>, Parked>,
    /// Parked sessions by the time they were parked (oldest first), for
    /// expiry and eviction in a deterministic order.
    by_age: BTreeSet<(Instant, Vec<u8>)>,
    /// Parked sessions never resumed, by the time they were parked: the
    /// newest of them are evicted first, so that a flood of new sessions
    /// evicts itself rather than sessions parked before it.
    fresh: BTreeSet<(Instant, Vec<u8>)>,
    /// Sessions (attached or parked) a client resumed at least once: they
    /// are evicted only after every session never resumed.
    established: HashSet<Vec<u8>>,
    /// The next ack deadline of each parked session that has one.
    deadlines: BTreeSet<(Instant, Vec<u8>)>,
    /// Attached sessions' ids and key digests.
    attached: HashMap<Vec<u8>, [u8; RESUME_KEY_LEN]>,
    bytes: usize,
    rng: Rng,
    expired: u64,
    outcomes: VecDeque<(Vec<u8>, MessageId, DeliveryOutcome)>,
    /// Ids of sessions dropped (expired, evicted or released), when asked for.
    dropped: Option<VecDeque<Vec<u8>>>,
    /// The address (quota key) each live session was created from.
    owners: HashMap<Vec<u8>, IpAddr>,
    /// Live sessions created from each address (quota key).
    per_ip: HashMap<IpAddr, usize>,
}

/// What the per-address quota counts: an IPv4 address (an IPv4-mapped
/// IPv6 one too), or the /64 of an IPv6 address (one host's share).
fn quota_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

#[derive(Debug)]
struct Parked {
    state: SessionState,
    since: Instant,
    deadline: Option<Instant>,
}

impl SessionStore {
    /// An empty store. `seed` seeds the ChaCha20 generator of session ids
    /// (128 bits each) and resume keys (256 bits): give 32 bytes from the
    /// operating system (`hookup-driver` does), or a fixed seed for
    /// reproducible tests. There is no fallback: anyone who can predict
    /// the seed can predict every session's key.
    pub fn new(config: StoreConfig, seed: [u8; 32]) -> Self {
        Self {
            config,
            parked: HashMap::new(),
            by_age: BTreeSet::new(),
            fresh: BTreeSet::new(),
            established: HashSet::new(),
            deadlines: BTreeSet::new(),
            attached: HashMap::new(),
            bytes: 0,
            rng: Rng::from_seed(seed),
            expired: 0,
            outcomes: VecDeque::new(),
            dropped: None,
            owners: HashMap::new(),
            per_ip: HashMap::new(),
        }
    }

    /// Sessions alive now (attached or parked) that were created from
    /// `ip`'s quota key (see [`StoreConfig::max_sessions_per_ip`]).
    pub fn sessions_from(&self, ip: IpAddr) -> usize {
        self.per_ip.get(&quota_key(ip)).copied().unwrap_or(0)
    }

    /// A session is gone for good: uncounted from its address's quota.
    fn disown(&mut self, id: &[u8]) {
        if let Some(ip) = self.owners.remove(id)
            && let Some(n) = self.per_ip.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// Keeps the ids of sessions that are gone for good (parked ones that
    /// expired or were evicted to make room, and released ones) for [`poll_dropped`](Self::poll_dropped): what
    /// a server journal needs to delete their files. Off by default.
    pub fn report_dropped(&mut self, on: bool) {
        self.dropped = on.then(VecDeque::new);
    }

    /// The id of the next session that is gone for good (with
    /// [`report_dropped`](Self::report_dropped)).
    pub fn poll_dropped(&mut self) -> Option<Vec<u8>> {
        self.dropped.as_mut()?.pop_front()
    }

    /// Opens the session a client asked for in HELLO, given the resume key
    /// it presented as proof (`proof`): the parked session with that id
    /// (`resumed == true`) when `proof` is its key, or else a new one —
    /// with a fresh id and a fresh key, whether or not a session `requested`
    /// exists, so that an id alone neither reaches a session nor tells
    /// whether it exists. `Busy` only when `proof` is the key of a session
    /// attached to another connection (its owner reconnecting before the
    /// old connection was seen to end). Keys are compared as SHA-256
    /// digests, in constant time.
    ///
    /// A parked session whose client contradicted its state on its last
    /// connection (an ACK for a message it never sent, or DATA beyond what
    /// it received, first thing after resuming) is returned with
    /// `resumed == false`: attached so, it starts over under the same id,
    /// with a new key.
    pub fn open(
        &mut self,
        requested: &[u8],
        proof: Option<&ResumeKey>,
        now: Instant,
    ) -> Result<(SessionState, bool), SessionError> {
        self.open_from(requested, proof, now, None)
    }

    /// [`open`](Self::open) for a client at address `ip`: a new session is
    /// counted against `ip`'s quota ([`StoreConfig::max_sessions_per_ip`])
    /// until it is gone for good, and refused with
    /// [`SessionError::TooManySessions`] when the quota is used up.
    /// Resuming a session is never refused by the quota. `None`: not
    /// counted (as [`open`](Self::open)).
    pub fn open_from(
        &mut self,
        requested: &[u8],
        proof: Option<&ResumeKey>,
        _now: Instant,
        ip: Option<IpAddr>,
    ) -> Result<(SessionState, bool), SessionError> {
        if !requested.is_empty()
            && let Some(proof) = proof
        {
            if let Some(digest) = self.attached.get(requested) {
                if proof.matches(digest) {
                    return Err(SessionError::Busy);
                }
            } else if self
                .parked
                .get(requested)
                .is_some_and(|p| proof.matches(&p.state.key_digest))
                && let Some(mut state) = self.unpark(requested)
            {
                // A session whose client contradicted it when it last
                // resumed (this side's journal lost records, say) would fail
                // the same way again: it starts over under the same id,
                // its unacknowledged messages numbered afresh and sent
                // again (at-least-once), with a new key.
                let resumed = !state.channel.conflicted;
                if resumed {
                    self.established.insert(state.id.clone());
                }
                if !resumed {
                    let key = ResumeKey::generate(&mut self.rng);
                    state.key_digest = key.digest();
                    state.new_key = Some(key);
                }
                self.attached.insert(state.id.clone(), state.key_digest);
                return Ok((state, resumed));
            }
        }
        let owner = ip.map(quota_key);
        if let Some(owner) = owner
            && self.config.max_sessions_per_ip > 0
            && self.per_ip.get(&owner).copied().unwrap_or(0) >= self.config.max_sessions_per_ip
        {
            return Err(SessionError::TooManySessions);
        }
        let mut id = [0u8; 16];
        loop {
            self.rng.fill(&mut id);
            if !self.parked.contains_key(&id[..]) && !self.attached.contains_key(&id[..]) {
                break;
            }
        }
        let key = ResumeKey::generate(&mut self.rng);
        let key_digest = key.digest();
        self.attached.insert(id.to_vec(), key_digest);
        if let Some(owner) = owner {
            *self.per_ip.entry(owner).or_insert(0) += 1;
            self.owners.insert(id.to_vec(), owner);
        }
        Ok((
            SessionState {
                id: id.to_vec(),
                channel: Channel::new(),
                key_digest,
                new_key: Some(key),
            },
            false,
        ))
    }

    /// Keeps a session whose connection ended, for its client to resume.
    pub fn park(&mut self, mut state: SessionState, now: Instant) {
        self.attached.remove(&state.id);
        // A key never handed to a client is of no use to anyone.
        state.new_key = None;
        // Parking an id twice replaces the older state; it must not stay
        // counted.
        if let Some(mut old) = self.unpark(&state.id) {
            old.channel.drop_all(DropReason::Expired);
            self.collect(&mut old);
        }
        state.channel.on_disconnect();
        // Outcomes not taken out of the session yet are reported now rather
        // than whenever the client comes back.
        self.collect(&mut state);
        self.bytes += state.channel.unacked_bytes();
        let id = state.id.clone();
        let deadline = state.channel.next_timeout(false);
        if let Some(d) = deadline {
            self.deadlines.insert((d, id.clone()));
        }
        self.by_age.insert((now, id.clone()));
        if !self.established.contains(&id) {
            self.fresh.insert((now, id.clone()));
        }
        self.parked.insert(
            id,
            Parked {
                state,
                since: now,
                deadline,
            },
        );
        // Over the bounds: the newest sessions never resumed go first (a
        // flood of new sessions pushes out itself), then the oldest
        // established ones.
        while self.parked.len() > self.config.max_sessions || self.bytes > self.config.max_bytes {
            let Some((_, victim)) = self.fresh.last().or_else(|| self.by_age.first()).cloned()
            else {
                break;
            };
            self.evict(&victim);
        }
    }

    /// Forgets a session that ended for good (its client closed it, or the
    /// server ended it); messages still unresolved in it are reported
    /// dropped ([`DropReason::Shutdown`]).
    pub fn release(&mut self, mut state: SessionState) {
        self.attached.remove(&state.id);
        self.established.remove(&state.id);
        self.disown(&state.id);
        state.channel.drop_all(DropReason::Shutdown);
        self.collect(&mut state);
        if let Some(d) = &mut self.dropped {
            d.push_back(state.id);
        }
    }

    /// The next outcome of a message in a session that is not attached to
    /// a connection: the session id, the message id and the outcome.
    pub fn poll_outcome(&mut self) -> Option<(Vec<u8>, MessageId, DeliveryOutcome)> {
        self.outcomes.pop_front()
    }

    fn collect(&mut self, state: &mut SessionState) {
        while let Some((m, o)) = state.channel.poll_outcome() {
            self.outcomes.push_back((state.id.clone(), m, o));
        }
    }

    /// Takes a parked session out of every index.
    fn unpark(&mut self, id: &[u8]) -> Option<SessionState> {
        let p = self.parked.remove(id)?;
        self.by_age.remove(&(p.since, p.state.id.clone()));
        self.fresh.remove(&(p.since, p.state.id.clone()));
        if let Some(d) = p.deadline {
            self.deadlines.remove(&(d, p.state.id.clone()));
        }
        self.bytes -= p.state.channel.unacked_bytes();
        Some(p.state)
    }

    fn evict(&mut self, id: &[u8]) {
        if let Some(mut state) = self.unpark(id) {
            self.established.remove(id);
            self.disown(id);
            state.channel.drop_all(DropReason::Expired);
            self.collect(&mut state);
            self.expired += 1;
            if let Some(d) = &mut self.dropped {
                d.push_back(state.id);
            }
        }
    }

    /// Reaps sessions parked for longer than the TTL and fires the ack
    /// deadlines of parked messages.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((d, id)) = self.deadlines.first().cloned()
            && d <= now
        {
            self.deadlines.pop_first();
            let Some(p) = self.parked.get_mut(&id) else {
                continue;
            };
            p.state.channel.handle_timeout(now);
            while let Some((m, o)) = p.state.channel.poll_outcome() {
                self.outcomes.push_back((id.clone(), m, o));
            }
            p.deadline = p.state.channel.next_timeout(false);
            if let Some(next) = p.deadline {
                self.deadlines.insert((next, id));
            }
        }
        let ttl = self.config.ttl;
        while let Some((since, id)) = self.by_age.first().cloned()
            && since + ttl <= now
        {
            self.evict(&id);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called:
    /// the next expiry or ack deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let expiry = self.by_age.first().map(|(t, _)| *t + self.config.ttl);
        let deadline = self.deadlines.first().map(|(t, _)| *t);
        match (expiry, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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
