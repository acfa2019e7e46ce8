//! The simulation harness behind `tests/reliable_sim.rs`: one client
//! [`Session`], a server made of `Connection::server` + handshake + a
//! [`Session::server`] per connection + a [`SessionStore`], and a seeded
//! lossy network between them, all on a fake clock that jumps from event to
//! event. Two small applications send numbered messages and check every
//! delivery and every outcome as it happens; [`Sim::finish_checks`] checks
//! what must hold at the end.
//!
//! Nothing here sleeps or reads the real clock after the start. A failure
//! panics with the reason and the last few hundred trace lines.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::io::IoSlice;
use std::time::{Duration, Instant};

use hookup_proto::reliable::{
    Action, DeliveryOutcome, DropReason, MessageId, Overflow, SUBPROTOCOL, SendError, Session,
    SessionConfig, SessionError, SessionEvent, SessionStore, StoreConfig,
};
use hookup_proto::{Accept, ClientRequest, CloseCode, Config, Connection, Event, Message};
use hookup_sim::{C2S, Chunk, Clock, Link, Netem, Rng, S2C};

// ------------------------------------------------------------------ frames

/// One WebSocket frame (FIN set), masked when it goes to a server.
pub(crate) fn ws_frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    let m = if masked { 0x80 } else { 0 };
    let n = payload.len();
    if n <= 125 {
        out.push(m | n as u8);
    } else if n <= 0xffff {
        out.push(m | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    let key = [0x12, 0x34, 0x56, 0x78];
    if masked {
        out.extend_from_slice(&key);
    }
    let start = out.len();
    out.extend_from_slice(payload);
    if masked {
        for (i, b) in out[start..].iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    out
}

/// Session-protocol violations a test can inject into a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bad {
    /// An envelope of an unknown type.
    UnknownType,
    /// A DATA envelope with unknown flag bits.
    UnknownFlags,
    /// An ACK cut short.
    Truncated,
    /// An ACK for a sequence number far beyond anything sent.
    AckForUnsent,
    /// A DATA envelope that skips far ahead.
    Gap,
    /// A text WebSocket message.
    Text,
}

impl Bad {
    pub(crate) const ALL: [Self; 6] = [
        Self::UnknownType,
        Self::UnknownFlags,
        Self::Truncated,
        Self::AckForUnsent,
        Self::Gap,
        Self::Text,
    ];

    pub(crate) fn frame(self, to_server: bool) -> Vec<u8> {
        let far = 1u64 << 40;
        let (op, payload): (u8, Vec<u8>) = match self {
            Self::UnknownType => (2, vec![0x7f, 1, 2, 3]),
            Self::UnknownFlags => {
                let mut p = vec![0x03, 0x80];
                p.extend_from_slice(&1u64.to_be_bytes());
                (2, p)
            }
            Self::Truncated => (2, vec![0x04, 0, 0]),
            Self::AckForUnsent => {
                let mut p = vec![0x04];
                p.extend_from_slice(&far.to_be_bytes());
                (2, p)
            }
            Self::Gap => {
                let mut p = vec![0x03, 0];
                p.extend_from_slice(&far.to_be_bytes());
                p.extend_from_slice(b"bogus");
                (2, p)
            }
            Self::Text => (1, b"hello".to_vec()),
        };
        ws_frame(op, &payload, to_server)
    }

    /// Whether `e` is the error this injection must produce.
    pub(crate) fn matches(self, e: &SessionError) -> bool {
        use hookup_proto::reliable::wire::WireError;
        match (self, e) {
            (Self::UnknownType, SessionError::Wire(WireError::UnknownType(0x7f))) => true,
            (Self::UnknownFlags, SessionError::Wire(WireError::Unsupported(_))) => true,
            (Self::Truncated, SessionError::Wire(WireError::Truncated)) => true,
            (Self::AckForUnsent, SessionError::AckForUnsent(s)) => *s == 1 << 40,
            (Self::Gap, SessionError::Gap { got, .. }) => *got == 1 << 40,
            (Self::Text, SessionError::Wire(WireError::TextMessage)) => true,
            // Before the session is established the envelope is unexpected
            // whatever it is.
            (_, SessionError::Unexpected(_)) => true,
            _ => false,
        }
    }
}

// ------------------------------------------------------------------ messages

/// A message whose payload starts with `{tag}{index}|`, then filler.
pub(crate) fn make_message(rng: &mut Rng, tag: char, index: usize, max_big: usize) -> Message {
    let size = match rng.below(12) {
        0 => rng.range(1000, max_big.max(1000) as u64) as usize,
        1 => 0,
        _ => rng.below(300) as usize,
    };
    let head = format!("{tag}{index}|");
    if rng.chance(0.5) {
        let mut s = head;
        let alphabet = ['a', 'z', ' ', 'é', '€', '𝄞', '0'];
        while s.len() < size {
            s.push(alphabet[rng.below(alphabet.len() as u64) as usize]);
        }
        Message::text(s)
    } else {
        let mut b = head.into_bytes();
        while b.len() < size {
            b.push(rng.next_u64() as u8);
        }
        Message::binary(b)
    }
}

/// The `(tag, index)` a payload starts with.
pub(crate) fn parse_message(m: &Message) -> Option<(char, usize)> {
    let b = m.as_bytes();
    let bar = b.iter().take(24).position(|&c| c == b'|')?;
    let tag = char::from(*b.first()?);
    let n = std::str::from_utf8(&b[1..bar]).ok()?.parse().ok()?;
    Some((tag, n))
}

// ------------------------------------------------------------------ network

/// The network (see `hookup_sim::Netem`) and chaos model.
#[derive(Clone, Debug)]
pub(crate) struct Knobs {
    /// One-way latency per chunk, uniform in this range (ms).
    pub(crate) latency_ms: (u64, u64),
    /// Split every write into random chunks.
    pub(crate) chunking: bool,
    /// Mean time between cuts of the client's current link.
    pub(crate) cut_mean: Option<Duration>,
    /// Mean time between server restarts (losing the store).
    pub(crate) restart_mean: Option<Duration>,
    /// Longest time the server stays down after a restart.
    pub(crate) down_max: Duration,
    /// Probability that a connect is refused.
    pub(crate) refuse_p: f64,
    /// Probability that one side of a cut link never sees EOF.
    pub(crate) silent_p: f64,
    /// Mean time between injections of invalid envelopes.
    pub(crate) inject_mean: Option<Duration>,
    /// Mean time between application sends (each side).
    pub(crate) send_mean: Duration,
    /// Largest "big" message.
    pub(crate) max_big: usize,
    /// Probability that a message has an ack deadline.
    pub(crate) deadline_p: f64,
    /// Chaos goes on at least this long.
    pub(crate) active_for: Duration,
    /// Sessions' output is taken with `transmit_vectored` and partial
    /// `advance_transmit` (else `poll_transmit`).
    pub(crate) vectored: bool,
    /// Probability that the server application, having taken a message,
    /// goes away (as a handler that drops its `ReliablePeer`): it parks the
    /// session without taking what is still queued and drops the
    /// transport. Drawn from its own random stream.
    pub(crate) abandon_p: f64,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            latency_ms: (5, 40),
            chunking: true,
            cut_mean: None,
            restart_mean: None,
            down_max: Duration::from_secs(3),
            refuse_p: 0.0,
            silent_p: 0.0,
            inject_mean: None,
            send_mean: Duration::from_millis(200),
            max_big: 20_000,
            deadline_p: 0.3,
            active_for: Duration::ZERO,
            vectored: false,
            abandon_p: 0.0,
        }
    }
}

// ------------------------------------------------------------------ apps

/// A message one application handed (or will hand) to its session.
#[derive(Debug)]
pub(crate) struct Sent {
    pub(crate) msg: Message,
    pub(crate) deadline: Option<Duration>,
    pub(crate) sent_at: Option<Instant>,
    /// (session id — empty on the client —, id) once a session accepted it.
    pub(crate) key: Option<(Vec<u8>, MessageId)>,
    pub(crate) outcome: Option<(DeliveryOutcome, Instant)>,
    pub(crate) released: bool,
    /// Times the peer application received it.
    pub(crate) delivered: u32,
    /// The receiver's session id at the first delivery.
    pub(crate) first_session: Option<Vec<u8>>,
    /// The sending session was lost with a server restart.
    pub(crate) lost: bool,
    /// `send` refused it for good (the session had ended).
    pub(crate) refused: bool,
}

#[derive(Debug, Default)]
pub(crate) struct App {
    pub(crate) msgs: Vec<Sent>,
    /// Created, not yet accepted by a session.
    pub(crate) pending: VecDeque<usize>,
    pub(crate) by_id: HashMap<(Vec<u8>, MessageId), usize>,
    /// How many messages to create in all.
    pub(crate) target: usize,
    /// Indices of the peer's messages received, in order, with the session.
    pub(crate) received: Vec<(usize, Vec<u8>)>,
    pub(crate) last_in_session: HashMap<Vec<u8>, usize>,
    pub(crate) max_first: Option<usize>,
    pub(crate) full_count: usize,
}

// ------------------------------------------------------------------ server

enum SrvState {
    Handshake(Box<Connection>),
    Session(Box<Session>),
    Gone,
}

struct Srv {
    link: usize,
    state: SrvState,
    /// The close code of the last `Disconnected`.
    last_code: Option<CloseCode>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Sched {
    ConnectResult,
    ClientSend,
    ServerSend,
    Cut,
    Restart,
    Inject,
    Retry,
}

// ------------------------------------------------------------------ sim

pub(crate) struct Sim {
    pub(crate) clock: Clock,
    pub(crate) rng: Rng,
    pub(crate) knobs: Knobs,
    pub(crate) ccfg: SideConfig,
    pub(crate) scfg: SideConfig,
    pub(crate) store_cfg: StoreConfig,
    links: Vec<Link>,
    pub(crate) client: Option<Session>,
    client_link: Option<usize>,
    servers: Vec<Srv>,
    pub(crate) store: SessionStore,
    /// Connects are refused until then (a restarting server).
    pub(crate) server_down_until: Option<Instant>,
    /// Connects are always refused.
    pub(crate) server_down: bool,
    sched: BinaryHeap<Reverse<(Instant, u64, Sched)>>,
    sched_seq: u64,
    /// Client application (sends `c` messages, receives `s` messages).
    pub(crate) ca: App,
    /// Server application.
    pub(crate) sa: App,
    /// Chaos and application sends are on.
    pub(crate) active: bool,
    pub(crate) restarts: u32,
    pub(crate) cuts: u32,
    pub(crate) injected: Vec<(Bad, bool)>,
    pub(crate) lost_sessions: BTreeSet<Vec<u8>>,
    /// The session id the client is in, from its last `Connected`.
    pub(crate) client_session: Vec<u8>,
    pub(crate) client_events: Vec<(Duration, String)>,
    pub(crate) client_errors: Vec<SessionError>,
    pub(crate) server_errors: Vec<SessionError>,
    pub(crate) server_hellos: Vec<Vec<u8>>,
    pub(crate) connected: Vec<(Vec<u8>, bool)>,
    pub(crate) reconnects: Vec<(u32, Duration)>,
    pub(crate) gave_up: bool,
    pub(crate) client_closed: bool,
    /// When the client was told to shut down (it then closes its connection).
    shutdown_at: Option<Instant>,
    pub(crate) connect_failures: u32,
    last_attempt: u32,
    reconnect_due: Option<Instant>,
    /// Disconnects of the client, with the time since its link was cut.
    pub(crate) detections: Vec<Duration>,
    pub(crate) steps: u64,
    same_instant: u64,
    /// Every server session id attached so far.
    pub(crate) seen_sessions: BTreeSet<Vec<u8>>,
    /// The server session the server application sends to.
    pub(crate) server_current: Vec<u8>,
    trace: VecDeque<(String, f64, u32)>,
    /// Check exactly-once (no restarts, no evictions).
    pub(crate) exactly_once: bool,
    /// Whether `Released` is reported (checked against deliveries).
    pub(crate) releases: bool,
    pub(crate) abort_seen: bool,
    /// Server messages that went into orphaned sessions.
    pub(crate) orphaned: usize,
    retry_scheduled: bool,
    /// The server accepts without selecting `hookup.v1`.
    pub(crate) plain_server: bool,
    /// Cuts lose everything in flight (else a random prefix arrives).
    pub(crate) cut_loses_all: bool,
    /// Decides abandonments (apart from `rng`, so that turning them on
    /// changes nothing else in a run).
    abandon_rng: Rng,
    /// Server applications that went away with messages maybe queued.
    pub(crate) abandoned: u32,
}

const TRACE_LINES: usize = 300;

impl Sim {
    pub(crate) fn new(
        seed: u64,
        knobs: Knobs,
        ccfg: SideConfig,
        scfg: SideConfig,
        store_cfg: StoreConfig,
    ) -> Self {
        let t0 = Instant::now();
        let mut rng = Rng::new(seed);
        let store = SessionStore::new(store_cfg.clone(), rng.seed32());
        let request = ClientRequest::new("ws://sim/x").expect("valid url");
        let releases = ccfg.report_releases;
        let client = Session::client(request, ccfg.session.clone(), ccfg.connection.clone(), t0);
        let mut sim = Self {
            clock: Clock::new(t0),
            rng,
            knobs,
            ccfg,
            scfg,
            store_cfg,
            links: Vec::new(),
            client: Some(client),
            client_link: None,
            servers: Vec::new(),
            store,
            server_down_until: None,
            server_down: false,
            sched: BinaryHeap::new(),
            sched_seq: 0,
            ca: App::default(),
            sa: App::default(),
            active: true,
            restarts: 0,
            cuts: 0,
            injected: Vec::new(),
            lost_sessions: BTreeSet::new(),
            client_session: Vec::new(),
            client_events: Vec::new(),
            client_errors: Vec::new(),
            server_errors: Vec::new(),
            server_hellos: Vec::new(),
            connected: Vec::new(),
            reconnects: Vec::new(),
            gave_up: false,
            client_closed: false,
            shutdown_at: None,
            connect_failures: 0,
            last_attempt: 0,
            reconnect_due: None,
            detections: Vec::new(),
            steps: 0,
            same_instant: 0,
            seen_sessions: BTreeSet::new(),
            server_current: Vec::new(),
            trace: VecDeque::new(),
            exactly_once: true,
            releases,
            abort_seen: false,
            orphaned: 0,
            retry_scheduled: false,
            plain_server: false,
            cut_loses_all: false,
            abandon_rng: Rng::new(seed ^ 0xABA2_D0E5),
            abandoned: 0,
        };
        sim.drain_client();
        sim
    }

    /// Schedules the applications' sends and the chaos.
    pub(crate) fn start(&mut self, client_msgs: usize, server_msgs: usize) {
        self.ca.target = client_msgs;
        self.sa.target = server_msgs;
        if client_msgs > 0 {
            let d = self.rng.exp(self.knobs.send_mean);
            self.schedule(d, Sched::ClientSend);
        }
        if server_msgs > 0 {
            let d = self.rng.exp(self.knobs.send_mean);
            self.schedule(d, Sched::ServerSend);
        }
        if let Some(m) = self.knobs.cut_mean {
            let d = self.rng.exp(m);
            self.schedule(d, Sched::Cut);
        }
        if let Some(m) = self.knobs.restart_mean {
            let d = self.rng.exp(m);
            self.schedule(d, Sched::Restart);
        }
        if let Some(m) = self.knobs.inject_mean {
            let d = self.rng.exp(m);
            self.schedule(d, Sched::Inject);
        }
    }

    // -------------------------------------------------------------- utils

    pub(crate) fn now(&self) -> Instant {
        self.clock.now()
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.clock.elapsed()
    }

    pub(crate) fn log(&mut self, s: impl FnOnce() -> String) {
        let line = s();
        if self.trace.back().is_some_and(|(l, _, _)| *l == line) {
            self.trace.back_mut().expect("back").2 += 1;
            return;
        }
        if self.trace.len() == TRACE_LINES {
            self.trace.pop_front();
        }
        let t = self.elapsed().as_secs_f64();
        self.trace.push_back((line, t, 1));
    }

    #[track_caller]
    pub(crate) fn fail(&self, msg: impl AsRef<str>) -> ! {
        let mut s = String::new();
        for (l, t, n) in &self.trace {
            if *n > 1 {
                s.push_str(&format!("{t:10.4} {l}   (x{n})\n"));
            } else {
                s.push_str(&format!("{t:10.4} {l}\n"));
            }
        }
        panic!(
            "{}\n  at t={:?}\n--- last {} trace lines ---\n{s}",
            msg.as_ref(),
            self.elapsed(),
            self.trace.len()
        );
    }

    /// Takes a session's output: all of it, or (vectored mode) one partial
    /// vectored write of a random size, as a socket might accept it.
    fn take_output(&mut self, s: &mut Session, buf: &mut Vec<u8>) -> bool {
        if !self.knobs.vectored {
            return s.poll_transmit(buf);
        }
        let len = s.transmit_len();
        if len == 0 {
            return false;
        }
        let limit = 1 + self.rng.below(len as u64) as usize;
        let mut slices = [IoSlice::new(&[]); 4];
        let n = s.transmit_vectored(&mut slices);
        let mut taken = 0;
        for sl in &slices[..n] {
            let k = sl.len().min(limit - taken);
            buf.extend_from_slice(&sl[..k]);
            taken += k;
            if taken == limit {
                break;
            }
        }
        s.advance_transmit(taken);
        taken > 0
    }

    fn schedule_retry(&mut self) {
        if !self.retry_scheduled {
            self.retry_scheduled = true;
            self.schedule(Duration::from_millis(100), Sched::Retry);
        }
    }

    fn schedule(&mut self, after: Duration, what: Sched) {
        self.sched_seq += 1;
        self.sched
            .push(Reverse((self.clock.now() + after, self.sched_seq, what)));
    }

    fn netem(&self) -> Netem {
        let (lo, hi) = self.knobs.latency_ms;
        Netem::uniform_ms(lo, hi, self.knobs.chunking)
    }

    fn latency(&mut self) -> Duration {
        self.netem().draw_latency(&mut self.rng)
    }

    /// Longest time a side may take to notice that its link is dead, after
    /// the last byte that could still arrive on it.
    pub(crate) fn detection_bound(&self, cfg: &SideConfig) -> Duration {
        let keepalive = cfg
            .ping_interval
            .map_or(Duration::MAX, |i| i + cfg.pong_timeout);
        let handshake = cfg
            .connection
            .handshake_timeout
            .unwrap_or(Duration::from_secs(10));
        keepalive.max(handshake).max(cfg.connection.close_timeout)
    }

    // -------------------------------------------------------------- network

    fn write(&mut self, link: usize, dir: usize, data: Vec<u8>) {
        if data.is_empty() {
            return;
        }
        if self.links[link].closed(dir) {
            let n = data.len();
            self.log(|| format!("link {link} dir {dir}: {n} bytes into the void"));
            return;
        }
        let netem = self.netem();
        self.links[link].dirs[dir].write(&mut self.rng, &netem, &self.clock, &data);
    }

    /// The writer of `dir` closes its socket: EOF after the data.
    fn close_dir(&mut self, link: usize, dir: usize) {
        if self.links[link].closed(dir) {
            return;
        }
        let netem = self.netem();
        self.links[link].dirs[dir].close(&mut self.rng, &netem, &self.clock);
    }

    /// Cuts a link: each direction keeps a random prefix of what is in
    /// flight (possibly mid-frame), then each reader sees EOF at some later
    /// time, or never.
    pub(crate) fn cut(&mut self, link: usize, silent: [bool; 2]) {
        let lose_all = self.cut_loses_all;
        if !self.links[link].cut(&mut self.rng, &self.clock, lose_all, silent) {
            return;
        }
        self.cuts += 1;
        let dirs = [
            self.links[link].dirs[C2S].in_flight.len(),
            self.links[link].dirs[S2C].in_flight.len(),
        ];
        self.log(|| format!("CUT link {link} (silent {silent:?}, chunks left {dirs:?})"));
    }

    /// Cuts the client's current link, if any.
    pub(crate) fn cut_client_link(&mut self, silent: [bool; 2]) -> bool {
        match self.client_link {
            Some(l) => {
                self.cut(l, silent);
                true
            }
            None => false,
        }
    }

    /// Puts `frame` on the client's current link (`to_server`: client →
    /// server), after everything written so far: it starts at a frame
    /// boundary.
    pub(crate) fn inject(&mut self, bad: Bad, to_server: bool) -> bool {
        let Some(l) = self.client_link else {
            return false;
        };
        if self.links[l].closed(usize::from(!to_server)) {
            return false;
        }
        self.injected.push((bad, to_server));
        self.log(|| format!("INJECT {bad:?} to_server={to_server} on link {l}"));
        let f = bad.frame(to_server);
        self.write(l, if to_server { C2S } else { S2C }, f);
        true
    }

    /// A server restart: every server connection dies with the process
    /// (the client sees EOF, or nothing if the machine died), the store is
    /// lost, and connects are refused for a while.
    pub(crate) fn restart(&mut self, down: Duration) {
        self.restarts += 1;
        self.log(|| format!("RESTART (down {down:?})"));
        let servers = std::mem::take(&mut self.servers);
        for s in servers {
            let silent = self.rng.chance(self.knobs.silent_p);
            self.cut(s.link, [true, silent]);
        }
        // Attached and parked sessions are all lost, with what they held.
        self.lost_sessions
            .extend(self.seen_sessions.iter().cloned());
        for m in &mut self.sa.msgs {
            if m.key.is_some() && !m.released {
                m.lost = true;
            }
        }
        let seed = self.rng.seed32();
        self.store = SessionStore::new(self.store_cfg.clone(), seed);
        self.server_down_until = Some(self.clock.now() + down);
        // Messages delivered to lost sessions may come again.
        self.exactly_once = false;
    }

    // -------------------------------------------------------------- loop

    /// The next instant anything happens.
    fn next_time(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut consider = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        for l in &self.links {
            for d in &l.dirs {
                consider(d.next_at());
            }
        }
        if let Some(Reverse((at, _, _))) = self.sched.peek() {
            consider(Some(*at));
        }
        consider(self.client.as_ref().and_then(Session::poll_timeout));
        for s in &self.servers {
            consider(match &s.state {
                SrvState::Handshake(c) => c.poll_timeout(),
                SrvState::Session(s) => s.poll_timeout(),
                SrvState::Gone => None,
            });
        }
        consider(self.store.poll_timeout());
        t
    }

    /// Does one thing. Returns false when nothing is left to happen.
    pub(crate) fn step(&mut self) -> bool {
        self.steps += 1;
        let Some(t) = self.next_time() else {
            return false;
        };
        if self.clock.advance_to(t) {
            self.same_instant = 0;
        } else {
            self.same_instant += 1;
            if self.same_instant > 10_000 {
                self.fail(
                    "livelock: 10,000 steps without the clock moving (a timer that stays due?)",
                );
            }
        }
        let now = self.clock.now();
        // 1. network
        for li in 0..self.links.len() {
            for dir in [C2S, S2C] {
                if let Some(c) = self.links[li].dirs[dir].pop_due(now) {
                    self.deliver(li, dir, c);
                    self.after_step();
                    return true;
                }
            }
        }
        // 2. scheduled
        if self
            .sched
            .peek()
            .is_some_and(|Reverse((at, _, _))| *at <= now)
        {
            let Reverse((_, _, what)) = self.sched.pop().expect("peeked");
            self.run_sched(what);
            self.after_step();
            return true;
        }
        // 3. timers
        if self
            .client
            .as_ref()
            .and_then(Session::poll_timeout)
            .is_some_and(|t| t <= now)
        {
            self.log(|| "client timeout".into());
            self.client.as_mut().expect("client").handle_timeout(now);
            self.drain_client();
            self.after_step();
            return true;
        }
        for si in 0..self.servers.len() {
            let due = match &self.servers[si].state {
                SrvState::Handshake(c) => c.poll_timeout(),
                SrvState::Session(s) => s.poll_timeout(),
                SrvState::Gone => None,
            }
            .is_some_and(|t| t <= now);
            if due {
                let link = self.servers[si].link;
                self.log(|| format!("server[{link}] timeout"));
                match &mut self.servers[si].state {
                    SrvState::Handshake(c) => c.handle_timeout(now),
                    SrvState::Session(s) => s.handle_timeout(now),
                    SrvState::Gone => {}
                }
                self.drain_server(si);
                self.after_step();
                return true;
            }
        }
        if self.store.poll_timeout().is_some_and(|t| t <= now) {
            self.store.handle_timeout(now);
            self.after_store();
            self.after_step();
            return true;
        }
        self.fail("next_time() was due but nothing ran");
    }

    fn after_step(&mut self) {
        self.servers.retain(|s| !matches!(s.state, SrvState::Gone));
        self.check_bounds();
        self.check_liveness();
    }

    /// Records the outcomes the store reports for parked sessions.
    fn after_store(&mut self) {
        while let Some((sid, id, outcome)) = self.store.poll_outcome() {
            self.log(|| format!("store outcome {id:?} {outcome:?}"));
            self.outcome(true, sid, id, outcome);
        }
    }

    /// Runs until `done` holds, failing after `limit` of fake time.
    pub(crate) fn run_until(
        &mut self,
        limit: Duration,
        what: &str,
        mut done: impl FnMut(&mut Self) -> bool,
    ) {
        let deadline = self.clock.now() + limit;
        while !done(self) {
            if self.clock.now() > deadline {
                self.fail(format!("not done within {limit:?}: {what}"));
            }
            if !self.step() {
                if done(self) {
                    return;
                }
                self.fail(format!("nothing left to happen, but not done: {what}"));
            }
        }
    }

    /// Runs for `d` of fake time (or until nothing can happen).
    pub(crate) fn run_for(&mut self, d: Duration) {
        let end = self.clock.now() + d;
        while self.next_time().is_some_and(|t| t <= end) {
            self.step();
        }
        self.clock.advance_to(end);
    }

    fn deliver(&mut self, link: usize, dir: usize, c: Chunk) {
        let desc = match &c {
            Chunk::Data(d) => format!("{} bytes", d.len()),
            Chunk::Eof => "EOF".into(),
        };
        if dir == S2C {
            if self.client_link != Some(link) {
                self.log(|| format!("link {link} s2c {desc}: client no longer reads it"));
                return;
            }
            self.log(|| format!("link {link} s2c {desc} -> client"));
            let c2 = self.client.as_mut().expect("client");
            match c {
                Chunk::Data(d) => c2.handle_input(self.clock.now(), &d),
                Chunk::Eof => c2.handle_eof(self.clock.now()),
            }
            self.drain_client();
        } else {
            let Some(si) = self.servers.iter().position(|s| s.link == link) else {
                self.log(|| format!("link {link} c2s {desc}: no server reads it"));
                return;
            };
            self.log(|| format!("link {link} c2s {desc} -> server"));
            let now = self.clock.now();
            match (&mut self.servers[si].state, c) {
                (SrvState::Handshake(conn), Chunk::Data(d)) => conn.handle_input(now, &d),
                (SrvState::Handshake(conn), Chunk::Eof) => conn.handle_eof(now),
                (SrvState::Session(s), Chunk::Data(d)) => s.handle_input(now, &d),
                (SrvState::Session(s), Chunk::Eof) => s.handle_eof(now),
                (SrvState::Gone, _) => {}
            }
            self.drain_server(si);
        }
    }

    fn run_sched(&mut self, what: Sched) {
        match what {
            Sched::ConnectResult => self.connect_result(),
            Sched::ClientSend => {
                if self.active && self.ca.msgs.len() < self.ca.target {
                    let i = self.ca.msgs.len();
                    let max_big = self.knobs.max_big;
                    let msg = make_message(&mut self.rng, 'c', i, max_big);
                    let deadline = self
                        .rng
                        .chance(self.knobs.deadline_p)
                        .then(|| self.rng.ms(50, 3000));
                    self.ca.msgs.push(new_sent(msg, deadline));
                    self.ca.pending.push_back(i);
                    self.flush_client_app();
                    if self.ca.msgs.len() < self.ca.target {
                        let d = self.rng.exp(self.knobs.send_mean);
                        self.schedule(d, Sched::ClientSend);
                    }
                }
            }
            Sched::ServerSend => {
                if self.active && self.sa.msgs.len() < self.sa.target {
                    let i = self.sa.msgs.len();
                    let max_big = self.knobs.max_big;
                    let msg = make_message(&mut self.rng, 's', i, max_big);
                    let deadline = self
                        .rng
                        .chance(self.knobs.deadline_p)
                        .then(|| self.rng.ms(50, 3000));
                    self.sa.msgs.push(new_sent(msg, deadline));
                    self.sa.pending.push_back(i);
                    self.flush_server_app();
                    if self.sa.msgs.len() < self.sa.target {
                        let d = self.rng.exp(self.knobs.send_mean);
                        self.schedule(d, Sched::ServerSend);
                    }
                }
            }
            Sched::Retry => {
                self.retry_scheduled = false;
                self.flush_client_app();
                self.flush_server_app();
            }
            Sched::Cut => {
                if self.active {
                    let silent = [
                        self.rng.chance(self.knobs.silent_p),
                        self.rng.chance(self.knobs.silent_p),
                    ];
                    self.cut_client_link(silent);
                    if let Some(m) = self.knobs.cut_mean {
                        let d = self.rng.exp(m);
                        self.schedule(d, Sched::Cut);
                    }
                }
            }
            Sched::Restart => {
                if self.active {
                    let down = self.rng.ms(0, self.knobs.down_max.as_millis() as u64);
                    self.restart(down);
                    if let Some(m) = self.knobs.restart_mean {
                        let d = self.rng.exp(m);
                        self.schedule(d, Sched::Restart);
                    }
                }
            }
            Sched::Inject => {
                if self.active {
                    let bad = Bad::ALL[self.rng.below(Bad::ALL.len() as u64) as usize];
                    let to_server = self.rng.chance(0.5);
                    self.inject(bad, to_server);
                    if let Some(m) = self.knobs.inject_mean {
                        let d = self.rng.exp(m);
                        self.schedule(d, Sched::Inject);
                    }
                }
            }
        }
    }

    fn connect_result(&mut self) {
        let now = self.clock.now();
        let c = self.client.as_mut().expect("client");
        if c.is_finished() {
            return;
        }
        let down = self.server_down || self.server_down_until.is_some_and(|t| now < t);
        let refused = self.active && self.rng.chance(self.knobs.refuse_p);
        if down || refused {
            self.connect_failures += 1;
            self.log(|| format!("connect refused (down={down})"));
            self.client
                .as_mut()
                .expect("client")
                .handle_connect_failed(now, "connection refused");
            self.drain_client();
            return;
        }
        let link = self.links.len();
        self.links.push(Link::default());
        let mut cfg = self.scfg.connection.clone();
        cfg.rng_seed = Some(self.rng.seed32());
        self.servers.push(Srv {
            link,
            state: SrvState::Handshake(Box::new(Connection::server(cfg, now))),
            last_code: None,
        });
        self.client_link = Some(link);
        self.log(|| format!("connected: link {link}"));
        self.client.as_mut().expect("client").handle_connected(now);
        self.drain_client();
    }

    // -------------------------------------------------------------- client

    pub(crate) fn drain_client(&mut self) {
        let mut c = self.client.take().expect("client");
        loop {
            let mut progress = false;
            while let Some(a) = c.poll_action() {
                progress = true;
                match a {
                    Action::Connect => {
                        self.log(|| "client: Action::Connect".into());
                        if let Some(due) = self.reconnect_due.take()
                            && self.clock.now() != due
                        {
                            self.client = Some(c);
                            self.fail(format!(
                                "reconnect at {:?}, backoff said {:?}",
                                self.clock.now() - self.clock.start(),
                                due - self.clock.start()
                            ));
                        }
                        let d = self.latency() * 2;
                        self.schedule(d, Sched::ConnectResult);
                    }
                    Action::CloseTransport => {
                        let mut buf = Vec::new();
                        while self.take_output(&mut c, &mut buf) {}
                        let Some(l) = self.client_link.take() else {
                            self.log(|| "client: CloseTransport without a transport".into());
                            continue;
                        };
                        self.log(|| format!("client: CloseTransport link {l}"));
                        self.write(l, C2S, buf);
                        self.close_dir(l, C2S);
                        if let Some(cut) = self.links[l].cut_at {
                            self.detections.push(self.clock.now() - cut);
                        }
                    }
                    other => {
                        self.client = Some(c);
                        self.fail(format!("unknown action {other:?}"));
                    }
                }
            }
            while let Some(e) = c.poll_event() {
                progress = true;
                self.on_client_event(&mut c, e);
            }
            while let Some((id, outcome)) = c.poll_outcome() {
                progress = true;
                self.outcome(false, Vec::new(), id, outcome);
            }
            let mut buf = Vec::new();
            if self.take_output(&mut c, &mut buf) {
                progress = true;
                match self.client_link {
                    Some(l) => self.write(l, C2S, buf),
                    None => {
                        self.client = Some(c);
                        self.fail("client output without a transport");
                    }
                }
            }
            if !progress {
                break;
            }
        }
        self.client = Some(c);
    }

    fn on_client_event(&mut self, c: &mut Session, e: SessionEvent) {
        let now = self.clock.now();
        let el = self.elapsed();
        let short = match &e {
            SessionEvent::Message(m) => format!("Message {:?}", parse_message(m)),
            other => format!("{other:?}"),
        };
        self.log(|| format!("client event: {short}"));
        if !matches!(
            e,
            SessionEvent::Message(_) | SessionEvent::Released(_) | SessionEvent::Rtt(_)
        ) {
            self.client_events.push((el, short));
        }
        match e {
            SessionEvent::Connected { session, resumed } => {
                if resumed && session != self.client_session {
                    self.fail("resumed a different session");
                }
                if !resumed && !self.client_session.is_empty() && self.exactly_once {
                    self.fail("a new session although the server kept the old one");
                }
                self.client_session = session.clone();
                self.connected.push((session, resumed));
                self.last_attempt = 0;
                self.flush_client_app_with(c);
            }
            SessionEvent::Reconnecting { attempt, delay } => {
                if attempt != self.last_attempt + 1 {
                    self.fail(format!(
                        "attempt {attempt} after attempt {}",
                        self.last_attempt
                    ));
                }
                self.last_attempt = attempt;
                let min = self.ccfg.backoff_min;
                let max = self.ccfg.backoff_max.max(min);
                let cap = min.saturating_mul(1u32 << (attempt - 1).min(31)).min(max);
                if delay < min || delay > cap {
                    self.fail(format!(
                        "backoff {delay:?} for attempt {attempt} outside [{min:?}, {cap:?}]"
                    ));
                }
                self.reconnects.push((attempt, delay));
                self.reconnect_due = Some(now + delay);
            }
            SessionEvent::Message(m) => {
                let sid = self.client_session.clone();
                self.receive(false, sid, m);
            }
            SessionEvent::Released(id) => self.released(false, Vec::new(), id),
            SessionEvent::Error(e) => self.client_errors.push(e),
            SessionEvent::GaveUp => {
                self.gave_up = true;
                self.reconnect_due = None;
            }
            SessionEvent::Closed => self.client_closed = true,
            SessionEvent::Disconnected { .. } | SessionEvent::Rtt(_) => {}
            SessionEvent::Hello { .. } => self.fail("Hello on a client"),
            other => self.fail(format!("unknown event {other:?}")),
        }
    }

    fn flush_client_app(&mut self) {
        let mut c = self.client.take().expect("client");
        self.flush_client_app_with(&mut c);
        self.client = Some(c);
        self.drain_client();
    }

    fn flush_client_app_with(&mut self, c: &mut Session) {
        while let Some(&k) = self.ca.pending.front() {
            let (msg, deadline) = (self.ca.msgs[k].msg.clone(), self.ca.msgs[k].deadline);
            let before = (c.unacked(), c.unacked_bytes());
            match c.send(self.clock.now(), msg, deadline) {
                Ok(id) => {
                    self.ca.pending.pop_front();
                    let m = &mut self.ca.msgs[k];
                    m.key = Some((Vec::new(), id));
                    m.sent_at = Some(self.clock.now());
                    if self.ca.by_id.insert((Vec::new(), id), k).is_some() {
                        self.fail(format!("message id {id:?} given twice"));
                    }
                    self.log(|| format!("client app: sent c{k} as {id:?}"));
                }
                Err(SendError::Full) => {
                    self.ca.full_count += 1;
                    let len = self.ca.msgs[k].msg.len();
                    let cfg = &self.ccfg;
                    if before.0 < cfg.max_outbox_messages && before.1 + len <= cfg.max_outbox_bytes
                    {
                        self.fail(format!(
                            "Full with {before:?} queued and a {len}-byte message, below the bounds"
                        ));
                    }
                    self.log(|| format!("client app: c{k} Full"));
                    self.schedule_retry();
                    return;
                }
                Err(SendError::Closed) if c.is_finished() => {
                    for k in self.ca.pending.drain(..) {
                        self.ca.msgs[k].refused = true;
                    }
                    return;
                }
                Err(e) => self.fail(format!("client send c{k}: {e:?}")),
            }
        }
    }

    // -------------------------------------------------------------- server

    fn drain_server(&mut self, si: usize) {
        let link = self.servers[si].link;
        let mut state = std::mem::replace(&mut self.servers[si].state, SrvState::Gone);
        loop {
            let mut progress = false;
            if let SrvState::Handshake(conn) = &mut state {
                let mut accepted = false;
                while let Some(ev) = conn.poll_event() {
                    progress = true;
                    match ev {
                        Event::Request(req) => {
                            let offered = req.subprotocols().iter().any(|p| p == SUBPROTOCOL);
                            let accept = if offered && !self.plain_server {
                                Accept::new().subprotocol(SUBPROTOCOL)
                            } else {
                                Accept::new()
                            };
                            conn.accept(accept).expect("accept");
                            accepted = true;
                            // Whatever else the connection has queued
                            // (frames that came with the request) is the
                            // session's to process.
                            break;
                        }
                        Event::Closed(c) => {
                            self.log(|| {
                                format!("server[{link}] handshake connection closed: {:?}", c.error)
                            });
                            let mut buf = Vec::new();
                            conn.poll_transmit(&mut buf);
                            self.write(link, S2C, buf);
                            self.close_dir(link, S2C);
                            self.servers[si].state = SrvState::Gone;
                            return;
                        }
                        _ => {}
                    }
                }
                if accepted {
                    let SrvState::Handshake(conn) = std::mem::replace(&mut state, SrvState::Gone)
                    else {
                        unreachable!()
                    };
                    self.log(|| format!("server[{link}] accepted; Session::server"));
                    state = SrvState::Session(Box::new(Session::server(
                        *conn,
                        self.scfg.session.clone(),
                        self.clock.now(),
                    )));
                    continue;
                }
                let mut buf = Vec::new();
                if conn.poll_transmit(&mut buf) {
                    progress = true;
                    self.write(link, S2C, buf);
                }
            }
            if let SrvState::Session(s) = &mut state {
                while let Some(a) = s.poll_action() {
                    progress = true;
                    match a {
                        Action::CloseTransport => {
                            let mut buf = Vec::new();
                            while self.take_output(s, &mut buf) {}
                            self.log(|| format!("server[{link}]: CloseTransport"));
                            self.write(link, S2C, buf);
                            self.close_dir(link, S2C);
                        }
                        other => self.fail(format!("server action {other:?}")),
                    }
                }
                let mut ended = false;
                let mut abandon = false;
                if self.server_outcomes(s) {
                    progress = true;
                }
                while let Some(e) = s.poll_event() {
                    progress = true;
                    let message = matches!(e, SessionEvent::Message(_));
                    if self.on_server_event(si, s, e) {
                        ended = true;
                    }
                    if message
                        && !ended
                        && self.active
                        && self.knobs.abandon_p > 0.0
                        && self.abandon_rng.chance(self.knobs.abandon_p)
                    {
                        abandon = true;
                        break;
                    }
                }
                if abandon {
                    // The handler is gone: the session is parked with what
                    // it holds, unsent output and unread input are lost,
                    // the client sees the transport end.
                    self.abandoned += 1;
                    self.log(|| format!("server[{link}] app ABANDONS its session"));
                    let sid = s.id().to_vec();
                    let parked = s.take_state();
                    // Outcomes already reported still reach the sender (a
                    // driver resolves its deliveries as it drains).
                    while let Some((id, outcome)) = s.poll_outcome() {
                        self.outcome(true, sid.clone(), id, outcome);
                    }
                    while let Some(e) = s.poll_event() {
                        match e {
                            SessionEvent::Released(id) => self.released(true, sid.clone(), id),
                            SessionEvent::Message(_) => {
                                self.fail("a message not taken survived take_state");
                            }
                            _ => {}
                        }
                    }
                    if let Some(parked) = parked {
                        self.store.park(parked, self.clock.now());
                        self.after_store();
                    }
                    self.close_dir(link, S2C);
                    state = SrvState::Gone;
                    break;
                }
                let mut buf = Vec::new();
                if self.take_output(s, &mut buf) {
                    progress = true;
                    self.write(link, S2C, buf);
                }
                if ended {
                    // What is left: the transport's last bytes and its close.
                    while let Some(a) = s.poll_action() {
                        if a != Action::CloseTransport {
                            self.fail(format!("server action {a:?} after Closed"));
                        }
                        self.log(|| format!("server[{link}]: CloseTransport"));
                        let mut buf = Vec::new();
                        while self.take_output(s, &mut buf) {}
                        self.write(link, S2C, buf);
                        self.close_dir(link, S2C);
                    }
                    let mut buf = Vec::new();
                    if self.take_output(s, &mut buf) {
                        self.write(link, S2C, buf);
                    }
                    if s.poll_event().is_some() {
                        self.fail("server session events after Closed");
                    }
                    if s.poll_outcome().is_some() {
                        self.fail("server session outcomes after Closed");
                    }
                    state = SrvState::Gone;
                    break;
                }
            }
            if !progress {
                break;
            }
        }
        self.servers[si].state = state;
    }

    /// Returns true when the session ended.
    fn on_server_event(&mut self, si: usize, s: &mut Session, e: SessionEvent) -> bool {
        let link = self.servers[si].link;
        let short = match &e {
            SessionEvent::Message(m) => format!("Message {:?}", parse_message(m)),
            other => format!("{other:?}"),
        };
        self.log(|| format!("server[{link}] event: {short}"));
        match e {
            SessionEvent::Hello { session, proof } => {
                self.server_hellos.push(session.clone());
                match self.store.open(&session, proof.as_ref(), self.clock.now()) {
                    Ok((state, resumed)) => {
                        self.log(|| format!("server[{link}] attach resumed={resumed}"));
                        s.attach(state, resumed);
                    }
                    Err(SessionError::Busy) => s.refuse_busy(),
                    Err(e) => self.fail(format!("store.open: {e:?}")),
                }
            }
            SessionEvent::Connected { session, .. } => {
                // The application sends to the newest session. (An older
                // one may still look established: its WELCOME may have been
                // lost, the client then asked again and got a new session.)
                self.seen_sessions.insert(session.clone());
                self.server_current = session;
                self.flush_server_app_with(s);
            }
            SessionEvent::Message(m) => {
                let sid = s.id().to_vec();
                self.receive(true, sid, m);
            }
            SessionEvent::Released(id) => {
                let sid = s.id().to_vec();
                self.released(true, sid, id);
            }
            SessionEvent::Error(e) => {
                if e == SessionError::Busy && s.connection().is_some_and(Connection::is_open) {
                    self.fail("a connection refused as busy stays open");
                }
                self.server_errors.push(e);
            }
            SessionEvent::Disconnected { code, .. } => self.servers[si].last_code = Some(code),
            SessionEvent::Closed => {
                self.server_outcomes(s);
                if let Some(state) = s.take_state() {
                    if self.servers[si].last_code == Some(CloseCode::NORMAL) {
                        self.log(|| format!("server[{link}] release"));
                        self.store.release(state);
                    } else {
                        self.log(|| format!("server[{link}] park ({} unacked)", state.unacked()));
                        self.store.park(state, self.clock.now());
                    }
                    self.after_store();
                }
                return true;
            }
            SessionEvent::Rtt(_) => {}
            other => self.fail(format!("server event {other:?}")),
        }
        false
    }

    fn current_server(&self) -> Option<usize> {
        self.servers.iter().position(
            |o| matches!(&o.state, SrvState::Session(x) if x.is_established() && x.id() == self.server_current.as_slice()),
        )
    }

    fn flush_server_app(&mut self) {
        let Some(si) = self.current_server() else {
            return;
        };
        let SrvState::Session(mut s) =
            std::mem::replace(&mut self.servers[si].state, SrvState::Gone)
        else {
            unreachable!()
        };
        self.flush_server_app_with(&mut s);
        self.servers[si].state = SrvState::Session(s);
        self.drain_server(si);
    }

    fn flush_server_app_with(&mut self, s: &mut Session) {
        if !s.is_established() || s.id() != self.server_current.as_slice() {
            return;
        }
        while let Some(&k) = self.sa.pending.front() {
            let (msg, deadline) = (self.sa.msgs[k].msg.clone(), self.sa.msgs[k].deadline);
            let before = (s.unacked(), s.unacked_bytes());
            match s.send(self.clock.now(), msg, deadline) {
                Ok(id) => {
                    self.sa.pending.pop_front();
                    let sid = s.id().to_vec();
                    let m = &mut self.sa.msgs[k];
                    m.key = Some((sid.clone(), id));
                    m.sent_at = Some(self.clock.now());
                    if self.sa.by_id.insert((sid, id), k).is_some() {
                        self.fail(format!("server message id {id:?} given twice"));
                    }
                    self.log(|| format!("server app: sent s{k} as {id:?}"));
                }
                Err(SendError::Full) => {
                    self.sa.full_count += 1;
                    let len = self.sa.msgs[k].msg.len();
                    let cfg = &self.scfg;
                    if before.0 < cfg.max_outbox_messages && before.1 + len <= cfg.max_outbox_bytes
                    {
                        self.fail(format!(
                            "server Full with {before:?} queued, below the bounds"
                        ));
                    }
                    self.schedule_retry();
                    return;
                }
                Err(e) => self.fail(format!("server send s{k}: {e:?}")),
            }
        }
    }

    // -------------------------------------------------------------- checks

    /// A message arrived at an application (`at_server`: a client message
    /// at the server).
    fn receive(&mut self, at_server: bool, sid: Vec<u8>, m: Message) {
        let Some((tag, k)) = parse_message(&m) else {
            self.fail(format!("unparsable message {m:?}"))
        };
        let expect_tag = if at_server { 'c' } else { 's' };
        if tag != expect_tag {
            self.fail(format!("message tagged {tag} at the wrong side"));
        }
        let exactly_once = self.exactly_once;
        let (sender, receiver) = if at_server {
            (&mut self.ca, &mut self.sa)
        } else {
            (&mut self.sa, &mut self.ca)
        };
        let Some(sent) = sender.msgs.get_mut(k) else {
            self.fail(format!("{tag}{k} delivered but never created"));
        };
        if sent.msg != m {
            self.fail(format!("{tag}{k} delivered with different content"));
        }
        if sent.key.is_none() {
            self.fail(format!(
                "{tag}{k} delivered but never accepted by a session"
            ));
        }
        if matches!(
            sent.outcome,
            Some((DeliveryOutcome::Dropped(DropReason::Overflow), _))
        ) {
            self.fail(format!("{tag}{k} delivered after Dropped(Overflow)"));
        }
        sent.delivered += 1;
        let first_session = sent.first_session.clone();
        let released = sent.released;
        let delivered = sent.delivered;
        if delivered == 1 {
            sent.first_session = Some(sid.clone());
        }
        if let Some(&last) = receiver.last_in_session.get(&sid)
            && k <= last
        {
            self.fail(format!("{tag}{k} delivered after {tag}{last} in the same session (out of order or duplicate)"));
        }
        receiver.last_in_session.insert(sid.clone(), k);
        receiver.received.push((k, sid.clone()));
        if delivered == 1 {
            if let Some(mf) = receiver.max_first
                && k < mf
            {
                self.fail(format!(
                    "{tag}{k} first delivered after {tag}{mf}: out of order"
                ));
            }
            receiver.max_first = Some(k);
        } else {
            if exactly_once {
                self.fail(format!("{tag}{k} delivered {delivered} times"));
            }
            if released {
                self.fail(format!(
                    "{tag}{k} delivered again after the peer acknowledged it"
                ));
            }
            let first = first_session.unwrap_or_default();
            if first == sid || !self.lost_sessions.contains(&first) {
                self.fail(format!(
                    "{tag}{k} duplicated although its first session was not lost"
                ));
            }
        }
    }

    /// Collects a server session's outcomes (before its state is taken: the
    /// id goes with it).
    fn server_outcomes(&mut self, s: &mut Session) -> bool {
        let mut any = false;
        while let Some((id, outcome)) = s.poll_outcome() {
            any = true;
            let sid = s.id().to_vec();
            self.outcome(true, sid, id, outcome);
        }
        any
    }

    fn outcome(&mut self, server: bool, sid: Vec<u8>, id: MessageId, outcome: DeliveryOutcome) {
        let now = self.clock.now();
        let app = if server { &mut self.sa } else { &mut self.ca };
        let Some(&k) = app.by_id.get(&(sid.clone(), id)) else {
            self.fail(format!(
                "outcome {outcome:?} for unknown {id:?} (server={server})"
            ));
        };
        let m = &mut app.msgs[k];
        if let Some((o, _)) = m.outcome {
            self.fail(format!(
                "second outcome {outcome:?} for #{k} (first {o:?}, server={server})"
            ));
        }
        m.outcome = Some((outcome, now));
        let (deadline, sent_at, delivered) = (m.deadline, m.sent_at, m.delivered);
        let ok = match (outcome, deadline) {
            (DeliveryOutcome::Written, None) | (DeliveryOutcome::Dropped(_), _) => true,
            (DeliveryOutcome::Acked, Some(_)) => {
                if delivered == 0 {
                    self.fail(format!("#{k} Acked but never delivered (server={server})"));
                }
                true
            }
            (DeliveryOutcome::AckFailed, Some(d)) => {
                if now < sent_at.expect("sent") + d {
                    self.fail(format!("#{k} AckFailed before its deadline"));
                }
                true
            }
            _ => false,
        };
        if !ok {
            self.fail(format!(
                "outcome {outcome:?} for #{k} with deadline {deadline:?}"
            ));
        }
    }

    fn released(&mut self, server: bool, sid: Vec<u8>, id: MessageId) {
        let app = if server { &mut self.sa } else { &mut self.ca };
        let Some(&k) = app.by_id.get(&(sid, id)) else {
            self.fail(format!("Released for unknown {id:?}"));
        };
        let m = &mut app.msgs[k];
        if m.released {
            self.fail(format!("#{k} released twice"));
        }
        m.released = true;
        if m.delivered == 0 {
            self.fail(format!(
                "#{k} released (acknowledged) but never delivered (server={server})"
            ));
        }
    }

    fn check_bounds(&mut self) {
        let check = |s: &Session, cfg: &SessionConfig| {
            s.unacked() <= cfg.max_outbox_messages && s.unacked_bytes() <= cfg.max_outbox_bytes
        };
        if let Some(c) = &self.client
            && !check(c, &self.ccfg.session)
        {
            self.fail(format!(
                "client outbox over its bounds: {} / {}",
                c.unacked(),
                c.unacked_bytes()
            ));
        }
        for s in &self.servers {
            if let SrvState::Session(x) = &s.state
                && !check(x, &self.scfg.session)
            {
                self.fail("server outbox over its bounds");
            }
        }
        if self.store.parked() > self.store_cfg.max_sessions
            || self.store.parked_bytes() > self.store_cfg.max_bytes
        {
            self.fail("store over its bounds");
        }
    }

    /// A side on a cut link must notice within the detection bound of the
    /// last byte that could still arrive.
    fn check_liveness(&mut self) {
        let max_lat = Duration::from_millis(self.knobs.latency_ms.1) + Duration::from_millis(1);
        if let Some(l) = self.client_link
            && let Some(cut) = self.links[l].cut_at
        {
            let bound = self.detection_bound(&self.ccfg) + max_lat;
            // A shutdown closes the connection: from then on no pings go out
            // and the close handshake has `close_timeout` to finish, counted
            // from the shutdown, however long after the cut it came.
            let closing = self
                .shutdown_at
                .map_or(Duration::ZERO, |t| t.saturating_duration_since(cut))
                + self.ccfg.connection.close_timeout
                + max_lat;
            let bound = bound.max(closing);
            if self.clock.now() > cut + bound {
                self.fail(format!(
                    "client still on link {l}, cut {:?} ago (bound {bound:?})",
                    self.clock.now() - cut
                ));
            }
        }
        let bound = self.detection_bound(&self.scfg) + max_lat;
        for s in &self.servers {
            if let Some(cut) = self.links[s.link].cut_at
                && self.clock.now() > cut + bound
                && !matches!(s.state, SrvState::Gone)
            {
                self.fail(format!(
                    "server still on link {}, cut {:?} ago (bound {bound:?})",
                    s.link,
                    self.clock.now() - cut
                ));
            }
        }
    }

    // -------------------------------------------------------------- phases

    pub(crate) fn client_mut(&mut self) -> &mut Session {
        self.client.as_mut().expect("client")
    }

    /// The outbox of the server session the client is in, if attached.
    pub(crate) fn server_unacked(&self) -> Option<usize> {
        self.servers.iter().find_map(|s| match &s.state {
            SrvState::Session(x)
                if x.is_established() && x.id() == self.client_session.as_slice() =>
            {
                Some(x.unacked())
            }
            _ => None,
        })
    }

    pub(crate) fn server_sessions(&self) -> usize {
        self.servers
            .iter()
            .filter(|s| matches!(s.state, SrvState::Session(_)))
            .count()
    }

    /// Every message created was handed to a session, and both outboxes are empty.
    pub(crate) fn quiescent(&self) -> bool {
        let c = self.client.as_ref().expect("client");
        self.ca.msgs.len() == self.ca.target
            && self.sa.msgs.len() == self.sa.target
            && self.ca.pending.is_empty()
            && self.sa.pending.is_empty()
            && c.is_established()
            && c.unacked() == 0
            && self.server_unacked() == Some(0)
            && self.server_current == self.client_session
    }

    /// Stops the chaos, lets everything drain, shuts the client down and
    /// waits until both ends are finished.
    pub(crate) fn heal_and_shutdown(&mut self) {
        let active_until = self.clock.start() + self.knobs.active_for;
        self.run_until(Duration::from_secs(3600), "all messages created", |s| {
            s.ca.msgs.len() == s.ca.target
                && s.sa.msgs.len() == s.sa.target
                && s.now() >= active_until
        });
        self.active = false;
        self.server_down_until = None;
        self.server_down = false;
        self.plain_server = false;
        self.log(|| "=== healed ===".into());
        self.run_until(Duration::from_secs(1200), "quiescent after healing", |s| {
            s.quiescent()
        });
        let now = self.clock.now();
        self.shutdown_at = Some(now);
        self.client_mut().shutdown(now);
        self.drain_client();
        self.run_until(
            Duration::from_secs(600),
            "client and server finished after shutdown",
            |s| s.client.as_ref().expect("client").is_finished() && s.server_sessions() == 0,
        );
        if !self.client_closed {
            self.fail("no Closed event after shutdown");
        }
        // Sessions whose client never came back (orphans: their WELCOME was
        // lost and the client got another session) expire now, reporting
        // their messages.
        let ttl = self.store_cfg.ttl;
        self.run_for(ttl + Duration::from_secs(1));
        if self.store.parked() != 0 {
            self.fail("sessions still parked after the TTL");
        }
    }

    /// Whether the client ever was in this server session.
    pub(crate) fn client_knew(&self, sid: &[u8]) -> bool {
        self.connected.iter().any(|(s, _)| s == sid)
    }

    /// The application on one side sends a new message now.
    pub(crate) fn app_send(&mut self, server: bool, deadline: Option<Duration>) -> usize {
        let max_big = self.knobs.max_big;
        let i = if server {
            self.sa.msgs.len()
        } else {
            self.ca.msgs.len()
        };
        let msg = make_message(&mut self.rng, if server { 's' } else { 'c' }, i, max_big);
        self.app_send_message(server, msg, deadline)
    }

    /// The application sends `msg`, which must start with its tag and
    /// index (see [`make_message`]).
    pub(crate) fn app_send_message(
        &mut self,
        server: bool,
        msg: Message,
        deadline: Option<Duration>,
    ) -> usize {
        let app = if server { &mut self.sa } else { &mut self.ca };
        let i = app.msgs.len();
        app.msgs.push(new_sent(msg, deadline));
        app.pending.push_back(i);
        app.target = app.msgs.len();
        if server {
            self.flush_server_app();
        } else {
            self.flush_client_app();
        }
        i
    }

    /// Both ends established in the same session.
    pub(crate) fn established(&self) -> bool {
        self.client.as_ref().is_some_and(Session::is_established) && self.server_unacked().is_some()
    }

    /// Runs until both ends are established.
    pub(crate) fn establish(&mut self) {
        self.run_until(Duration::from_secs(600), "established", |s| s.established());
    }

    /// The server session the application sends to, if attached.
    pub(crate) fn server_session_mut(&mut self) -> Option<&mut Session> {
        let si = self.current_server()?;
        match &mut self.servers[si].state {
            SrvState::Session(s) => Some(s),
            _ => None,
        }
    }

    /// The current client link, if any.
    pub(crate) fn client_link(&self) -> Option<usize> {
        self.client_link
    }

    /// What must hold at the end of a run that drained.
    pub(crate) fn finish_checks(&mut self) {
        for (who, app) in [("client", &self.ca), ("server", &self.sa)] {
            for (k, m) in app.msgs.iter().enumerate() {
                if m.refused || m.lost {
                    continue;
                }
                if m.key.is_some() && m.outcome.is_none() {
                    self.fail(format!("{who} message #{k} has no outcome"));
                }
                if who == "server"
                    && let Some((sid, _)) = &m.key
                    && !self.client_knew(sid)
                {
                    // Sent into an orphaned session: it cannot have been
                    // delivered; its outcome was checked above.
                    if m.delivered != 0 {
                        self.fail(format!(
                            "server #{k} delivered from a session the client never joined"
                        ));
                    }
                    // Dropped when the session expired, or earlier by the
                    // drop-oldest policy of a full outbox (nobody reads it).
                    if let Some((DeliveryOutcome::Dropped(r), _)) = m.outcome
                        && r != DropReason::Expired
                        && r != DropReason::Overflow
                    {
                        self.fail(format!(
                            "server #{k} in an orphaned session dropped for {r:?}"
                        ));
                    }
                    self.orphaned += 1;
                    continue;
                }
                let dropped_overflow = matches!(
                    m.outcome,
                    Some((DeliveryOutcome::Dropped(DropReason::Overflow), _))
                );
                match (dropped_overflow, m.delivered) {
                    (true, 0) => {}
                    (true, _) => self.fail(format!("{who} #{k} dropped but delivered")),
                    (false, 0) => self.fail(format!(
                        "{who} message #{k} never delivered ({:?})",
                        m.outcome
                    )),
                    (false, 1) => {}
                    (false, n) if !self.exactly_once => {
                        let _ = n;
                    }
                    (false, n) => self.fail(format!("{who} #{k} delivered {n} times")),
                }
                if let Some((DeliveryOutcome::Dropped(r), _)) = m.outcome
                    && r != DropReason::Overflow
                {
                    self.fail(format!(
                        "{who} #{k} dropped ({r:?}) in a run that did not give up"
                    ));
                }
            }
        }
        let c = self.client.as_ref().expect("client");
        if c.unacked() != 0 {
            self.fail("client outbox not empty at the end");
        }
    }
}

fn new_sent(msg: Message, deadline: Option<Duration>) -> Sent {
    Sent {
        msg,
        deadline,
        sent_at: None,
        key: None,
        outcome: None,
        released: false,
        delivered: 0,
        first_session: None,
        lost: false,
        refused: false,
    }
}

/// One side's settings: the session's, and its connections' (a client's
/// for every connection it makes; the server's for each one it accepts).
/// Reads as its [`SessionConfig`] for the session's fields.
#[derive(Clone, Debug)]
pub(crate) struct SideConfig {
    pub(crate) session: SessionConfig,
    pub(crate) connection: Config,
}

impl std::ops::Deref for SideConfig {
    type Target = SessionConfig;

    fn deref(&self) -> &SessionConfig {
        &self.session
    }
}

impl std::ops::DerefMut for SideConfig {
    fn deref_mut(&mut self) -> &mut SessionConfig {
        &mut self.session
    }
}

/// Settings for a simulation: short timers (fake time is free, but every
/// ping is an event) and a seeded random source.
pub(crate) fn sim_config(rng: &mut Rng) -> SideConfig {
    let mut conn = Config::default();
    conn.rng_seed = Some(rng.seed32());
    conn.handshake_timeout = Some(rng.ms(1000, 3000));
    conn.close_timeout = rng.ms(500, 2000);
    let mut c = SideConfig {
        session: SessionConfig::default(),
        connection: conn,
    };
    c.ack_delay = rng.ms(1, 50);
    c.ack_every = rng.range(1, 16) as u32;
    c.ping_interval = Some(rng.ms(500, 3000));
    c.pong_timeout = rng.ms(300, 2000);
    c.backoff_min = rng.ms(10, 300);
    c.backoff_max = c.backoff_min + rng.ms(0, 5000);
    c.report_releases = true;
    c
}

pub(crate) fn small_outbox(c: &mut SessionConfig, rng: &mut Rng, drop_oldest: bool) {
    c.max_outbox_messages = rng.range(2, 12) as usize;
    c.max_outbox_bytes = rng.range(25_000, 60_000) as usize;
    c.overflow = if drop_oldest {
        Overflow::DropOldest
    } else {
        Overflow::Reject
    };
}
