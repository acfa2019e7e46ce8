//! A `hookup.v1` client `Session` and server `Session`s (one per
//! connection, states kept in a `SessionStore`) driven by arbitrary
//! operations on a fake clock: sends both ways (text or binary, small
//! payloads, with or without an ack deadline, one at a time or in bursts),
//! partial and chunked deliveries, time passing with timers fired in
//! deadline order, connections cut (each end seeing EOF at once, later or
//! never), connects refused, connections accepted without `hookup.v1`,
//! server applications that go away (`take_state` + park), abort or shut
//! their session down, client shutdown and abort, events taken lazily,
//! and (when the input enables it) arbitrary binary or text WebSocket
//! messages, raw or shaped as envelopes, injected into either direction.
//! Then an orderly finish: no more injections, every cut noticed, the
//! client reconnects while it asks, time passes until both sides are
//! quiet, the client shuts down, everything drains, parked sessions
//! expire.
//!
//! The server application attaches sessions on `Hello` (`SessionStore::open`,
//! `refuse_busy` when busy), sends to the session connected last, and on
//! `Closed` takes the state back and parks it (releases it after a 1000
//! close). Every payload starts with `c<k>|` (client) or `s<k>|` (server):
//! the sender's k-th accepted message.
//!
//! Checked, always:
//! * no panic; no timer left due after `handle_timeout(now)` (session or
//!   store); a HELLO without a resume proof gets a new session (another
//!   id), never `Busy` or a resumed one; a server never asks for `Connect`, a client never reports
//!   `Hello`; `Connected { resumed: true }` names the session the client
//!   was in; a connection refused as busy does not stay open;
//! * `send` fails exactly as documented: on an open session `TooLarge`
//!   exactly when the payload exceeds `max_outbox_bytes`; `Full` only at
//!   the outbox bounds;
//!   `Closed` only once shut down or finished (server: also before
//!   `attach`); never `Unsupported`/`InvalidJson`;
//! * bounded memory: `unacked() <= max_outbox_messages` and
//!   `unacked_bytes() <= max_outbox_bytes` on every session; the store
//!   within `max_sessions` and `max_bytes`;
//! * outcomes: only for ids `send` returned (per session id on the
//!   server), never two for one message; `Written` only without a
//!   deadline, `Acked`/`AckFailed` only with one, `AckFailed` not before
//!   the deadline; drop reasons of the right side (client: overflow, gave
//!   up, shutdown; server: overflow, shutdown, expired); `Released` at
//!   most once per message; a message dropped for overflow is never
//!   delivered; the backoff delay of `Reconnecting` is within PROTOCOL.md
//!   section 6's bounds;
//! * after the finish: the client finished (`Closed` or `GaveUp`), no
//!   server session left, nothing parked, and every message `send`
//!   accepted has exactly one outcome; a client `Dropped(GaveUp)` only
//!   after `GaveUp`, `Dropped(Shutdown)` only after `abort`.
//!
//! Checked when nothing was injected:
//! * each delivered message is one its peer's application sent, unchanged;
//! * within a session incarnation (from a `Connected { resumed: false }`
//!   through its resumptions) deliveries are in order without duplicates;
//!   first deliveries are in order over the whole run (a message is
//!   delivered again only in a session that started over: at-least-once);
//! * `Acked` and `Released` only for messages the peer's application took;
//! * after the finish, unless the client gave up or aborted: every client
//!   message not dropped for overflow was delivered to the server.
#![no_main]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use hookup_proto::reliable::{
    Action, DeliveryOutcome, DropReason, MessageId, Overflow, Reconnect, SUBPROTOCOL, SendError,
    Session, SessionConfig, SessionError, SessionEvent, SessionStore, StoreConfig,
};
use hookup_proto::{Accept, ClientRequest, CloseCode, Config, Connection, Event, Message};
use hookup_sim::Rng;
use libfuzzer_sys::fuzz_target;

/// Most operations per input.
const MAX_OPS: usize = 256;
/// Longest filler after a payload's `c<k>|` head.
const MAX_FILLER: usize = 48;
/// Longest injected message.
const MAX_INJECT: usize = 96;
/// Timers fired by one `Advance`.
const MAX_FIRES: usize = 32;
/// Steps (a drain and one timer) of each finishing phase, and the fake
/// time each may take.
const SETTLE_STEPS: usize = 3000;
const SETTLE_TIME: Duration = Duration::from_secs(3600);

#[derive(Arbitrary, Debug)]
struct SideConfig {
    /// 1 + v % 8.
    max_outbox_messages: u8,
    /// 16 + v % 512.
    max_outbox_bytes: u16,
    drop_oldest: bool,
    /// 1 + v ms.
    ack_delay_ms: u8,
    /// 1 + v % 8.
    ack_every: u8,
    /// 10 + v % 5000 ms.
    ping_interval_ms: Option<u16>,
    /// 1 + v % 5000 ms.
    pong_timeout_ms: u16,
    /// Handshake and greeting timeout: 1 + v % 5000 ms.
    greeting_timeout_ms: u16,
    /// 1 + v % 5000 ms.
    close_timeout_ms: u16,
    /// 1 + v bytes.
    write_window: u16,
    report_releases: bool,
    /// Events are taken only by `PollEvents` (and in the finish).
    lazy_events: bool,
}

#[derive(Arbitrary, Debug)]
struct FuzzConfig {
    client: SideConfig,
    server: SideConfig,
    /// % 8: 0 never, 1–3 at most that many attempts, else forever.
    reconnect: u8,
    /// 1 + v ms.
    backoff_min_ms: u8,
    /// v % 5000 ms.
    backoff_max_ms: u16,
    /// 1 + v ms.
    store_ttl_ms: u16,
    /// 1 + v % 4.
    store_max_sessions: u8,
    /// 16 + v % 2048.
    store_max_bytes: u16,
    /// The first `v % 16 - 13` connections (if positive) are accepted
    /// without `hookup.v1`.
    plain_accepts: u8,
    /// The transport opens as soon as the client asks (else `Connect` and
    /// `RefuseConnect` answer it).
    auto_connect: bool,
    /// `Inject*` operations are carried out (else skipped).
    inject: bool,
    seed: u64,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// The client application sends: text or binary, `filler` bytes after
    /// the head, an ack deadline of `ack_ms` (+ 1) ms.
    ClientSend {
        text: bool,
        filler: u8,
        ack_ms: Option<u16>,
    },
    /// The server application sends to its newest session.
    ServerSend {
        text: bool,
        filler: u8,
        ack_ms: Option<u16>,
    },
    /// `1 + n % 8` sends in a row from one side.
    Burst {
        server: bool,
        n: u8,
        ack_ms: Option<u16>,
    },
    /// Up to `max` bytes (all: `None`) in flight on a link (`link`: 0 the
    /// newest live one), one read; EOF once the writer closed and nothing
    /// is left.
    Deliver {
        to_server: bool,
        link: u8,
        max: Option<u16>,
    },
    /// Everything in flight, in reads of 1..=`max` + 1 bytes.
    DeliverChunked {
        to_server: bool,
        link: u8,
        seed: u8,
        max: u8,
    },
    /// Everything in flight on every link, both ways, until nothing moves
    /// (no timer fires).
    Flush,
    /// The transport the client asked for opens.
    Connect,
    /// It could not be opened.
    RefuseConnect,
    /// The link dies: what is in flight is lost; each end sees EOF now or
    /// (later, by `Deliver`) when it reads.
    Cut {
        link: u8,
        client_now: bool,
        server_now: bool,
    },
    /// The server application goes away: its session is parked without
    /// taking what is queued, the transport closed.
    Abandon {
        link: u8,
    },
    ServerShutdown {
        link: u8,
    },
    /// The server application aborts its session (then parks it).
    ServerAbort {
        link: u8,
    },
    ClientShutdown,
    ClientAbort,
    /// Time passes; no timer fires.
    Sleep(u16),
    /// Time passes; due timers fire in deadline order.
    Advance(u16),
    /// `handle_timeout(now)` on everything, due or not.
    TimeoutNow,
    /// Take up to `max` (0: all) events of the client or of a server.
    PollEvents {
        server: bool,
        link: u8,
        max: u8,
    },
    /// A WebSocket message written by the other end of a link.
    InjectRaw {
        to_server: bool,
        link: u8,
        text: bool,
        data: Vec<u8>,
    },
    /// An envelope (`kind` % 4: HELLO, WELCOME, DATA, ACK) with small
    /// numbers; see `envelope`.
    InjectEnvelope {
        to_server: bool,
        link: u8,
        kind: u8,
        flags: u8,
        num: u8,
        data: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    config: FuzzConfig,
    ops: Vec<Op>,
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn seed32(seed: u64, salt: u64) -> [u8; 32] {
    let mut s = [0u8; 32];
    let mut x = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for c in s.chunks_mut(8) {
        x = x
            .wrapping_mul(0x5851_F42D_4C95_7F2D)
            .wrapping_add(0x1405_7B7E_F767_814F);
        c.copy_from_slice(&(x ^ (x >> 29)).to_le_bytes());
    }
    s
}

/// One side's session settings and its connections' settings.
fn session_config(f: &SideConfig, fc: &FuzzConfig, seed: [u8; 32]) -> (SessionConfig, Config) {
    let mut conn = Config::default();
    conn.rng_seed = Some(seed);
    conn.handshake_timeout = Some(ms(1 + u64::from(f.greeting_timeout_ms) % 5000));
    conn.close_timeout = ms(1 + u64::from(f.close_timeout_ms) % 5000);
    let mut c = SessionConfig::default();
    c.ack_delay = ms(1 + u64::from(f.ack_delay_ms));
    c.ack_every = 1 + u32::from(f.ack_every % 8);
    c.max_outbox_messages = 1 + usize::from(f.max_outbox_messages % 8);
    c.max_outbox_bytes = 16 + usize::from(f.max_outbox_bytes % 512);
    c.overflow = if f.drop_oldest {
        Overflow::DropOldest
    } else {
        Overflow::Reject
    };
    c.ping_interval = f.ping_interval_ms.map(|v| ms(10 + u64::from(v) % 5000));
    c.pong_timeout = ms(1 + u64::from(f.pong_timeout_ms) % 5000);
    c.reconnect = match fc.reconnect % 8 {
        0 => Reconnect::Never,
        n @ 1..=3 => Reconnect::AtMost(u32::from(n)),
        _ => Reconnect::Forever,
    };
    c.backoff_min = ms(1 + u64::from(fc.backoff_min_ms));
    c.backoff_max = ms(u64::from(fc.backoff_max_ms) % 5000);
    c.write_window = 1 + usize::from(f.write_window);
    c.report_releases = f.report_releases;
    (c, conn)
}

/// One frame: FIN, `opcode`, masked (client to server) or not.
fn ws_frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    let m = if masked { 0x80 } else { 0 };
    let n = payload.len();
    if n <= 125 {
        out.push(m | n as u8);
    } else {
        out.push(m | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    }
    let key = [0x5A, 0x17, 0xC3, 0x88];
    if masked {
        out.extend_from_slice(&key);
    }
    out.extend(
        payload
            .iter()
            .enumerate()
            .map(|(i, b)| if masked { b ^ key[i % 4] } else { *b }),
    );
    out
}

/// An envelope of PROTOCOL.md section 2 with small numbers: `flags` bit 7
/// keeps the flags byte raw (else only the defined bits, and version 2 in
/// HELLO — version 1 with bit 4), with the rest of `data` after the
/// greeting's fixed part; bit 6 puts the client's session id in a greeting
/// (else up to 64 bytes of `data`); bit 5 makes the HELLO's proof (or the
/// WELCOME's key, with flag bit 1) the client's resume key (else 32 bytes
/// of `data`, or none); `num` is the sequence or `received`.
fn envelope(
    kind: u8,
    flags: u8,
    num: u8,
    data: &[u8],
    sid: &[u8],
    key: Option<&[u8; 32]>,
) -> Vec<u8> {
    let num = u64::from(num).to_be_bytes();
    let raw = flags & 0x80 != 0;
    let (id, rest) = if flags & 0x40 != 0 {
        (sid, data)
    } else {
        data.split_at(data.len().min(64))
    };
    // A proof or key: the client's, or 32 bytes of `data` (if it has them).
    let secret: Option<[u8; 32]> = if flags & 0x20 != 0 {
        key.copied()
    } else {
        rest.get(..32).map(|k| k.try_into().expect("32 bytes"))
    };
    let mut e = Vec::new();
    match kind % 4 {
        0 | 1 => {
            let second = match (kind % 4, raw) {
                (_, true) => flags,
                (0, false) if flags & 0x10 != 0 => 1,
                (0, false) => 2,
                _ => flags & 3,
            };
            e.extend_from_slice(&[1 + kind % 4, second, id.len() as u8]);
            e.extend_from_slice(id);
            e.extend_from_slice(&num);
            match (kind % 4, raw, secret) {
                (_, true, _) => e.extend_from_slice(rest),
                (0, false, _) if second == 1 => {}
                (0, false, Some(p)) if !id.is_empty() => {
                    e.push(32);
                    e.extend_from_slice(&p);
                }
                (0, false, _) => e.push(0),
                (_, false, Some(k)) if second & 2 != 0 => e.extend_from_slice(&k),
                // A WELCOME whose key flag has no key: truncated.
                (_, false, _) => {}
            }
        }
        2 => {
            e.extend_from_slice(&[0x03, if raw { flags } else { flags & 3 }]);
            e.extend_from_slice(&num);
            e.extend_from_slice(data);
        }
        _ => {
            e.push(0x04);
            e.extend_from_slice(&num);
        }
    }
    e
}

/// The payload of a side's k-th message.
fn make_message(tag: char, k: usize, text: bool, filler: u8) -> Message {
    let n = usize::from(filler) % (MAX_FILLER + 1);
    let head = format!("{tag}{k}|");
    if text {
        let mut s = head;
        for i in 0..n {
            s.push(['a', 'é', ' ', '€', 'z'][(i + k) % 5]);
        }
        Message::text(s)
    } else {
        let mut b = head.into_bytes();
        b.extend((0..n).map(|i| (i * 31 + k) as u8));
        Message::binary(b)
    }
}

/// The `(tag, k)` a payload starts with.
fn parse_message(m: &Message) -> Option<(char, usize)> {
    let b = m.as_bytes();
    let bar = b.iter().take(24).position(|&c| c == b'|')?;
    let tag = char::from(*b.first()?);
    let k = std::str::from_utf8(&b[1..bar]).ok()?.parse().ok()?;
    Some((tag, k))
}

/// A message an application gave to `send`, which accepted it.
#[derive(Debug)]
struct Sent {
    msg: Message,
    ack: Option<Duration>,
    sent_at: Instant,
    outcome: Option<DeliveryOutcome>,
    released: bool,
    /// Times the peer's application took it.
    delivered: u32,
}

#[derive(Debug, Default)]
struct App {
    /// By k.
    sent: Vec<Sent>,
    /// (session id — empty on the client —, message id) → k.
    by_id: HashMap<(Vec<u8>, MessageId), usize>,
    /// Receiving: the last k of the peer taken in each incarnation.
    last_in: HashMap<u64, usize>,
    /// Receiving: the highest k of the peer taken for the first time.
    max_first: Option<usize>,
}

struct ServerEnd {
    s: Session,
    /// The session id, once attached (kept after `take_state`).
    sid: Vec<u8>,
    /// The incarnation its messages belong to, from `Connected`.
    epoch: Option<u64>,
    /// Order of its `Connected` among all server sessions (0: none yet).
    connected: u64,
    last_code: Option<CloseCode>,
    shutdown: bool,
}

enum Srv {
    Handshake(Box<Connection>),
    Session(Box<ServerEnd>),
    Gone,
}

/// One transport: bytes in flight each way; a direction is closed by its
/// writer (EOF after the bytes), and its EOF delivered once.
struct Link {
    c2s: Vec<u8>,
    c2s_closed: bool,
    c2s_eof_done: bool,
    s2c: Vec<u8>,
    s2c_closed: bool,
    s2c_eof_done: bool,
    /// Nothing written to it arrives any more.
    cut: bool,
    server: Srv,
}

impl Link {
    fn live(&self) -> bool {
        !matches!(self.server, Srv::Gone)
            || !self.c2s.is_empty()
            || !self.s2c.is_empty()
            || (self.c2s_closed && !self.c2s_eof_done)
            || (self.s2c_closed && !self.s2c_eof_done)
    }
}

#[derive(Clone, Copy, Debug)]
enum Who {
    Client,
    Server(usize),
    Store,
}

struct Harness {
    start: Instant,
    now: Instant,
    ccfg: SessionConfig,
    scfg: SessionConfig,
    /// The settings of every connection the server accepts.
    sconn: Config,
    store_cfg: StoreConfig,
    client_lazy: bool,
    server_lazy: bool,
    seed: u64,
    /// Connections still to accept without `hookup.v1`.
    plain_accepts: u8,
    auto_connect: bool,
    inject: bool,
    client: Session,
    client_link: Option<usize>,
    connect_pending: bool,
    /// Transports opened so far.
    connects: u64,
    client_sid: Vec<u8>,
    client_epoch: Option<u64>,
    client_shutdown: bool,
    client_aborted: bool,
    client_gave_up: bool,
    client_closed: bool,
    links: Vec<Link>,
    store: SessionStore,
    /// Client application (sends c messages, receives s messages).
    ca: App,
    /// Server application.
    sa: App,
    next_epoch: u64,
    sid_epoch: HashMap<Vec<u8>, u64>,
    connected_seq: u64,
    /// Something was injected: deliveries are not checked.
    tainted: bool,
    /// The finish: events are taken eagerly.
    settling: bool,
}

impl Harness {
    fn new(fc: &FuzzConfig) -> Self {
        let start = Instant::now();
        let (ccfg, cconn) = session_config(&fc.client, fc, seed32(fc.seed, 1));
        let (scfg, sconn) = session_config(&fc.server, fc, seed32(fc.seed, 2));
        let mut store_cfg = StoreConfig::default();
        store_cfg.ttl = ms(1 + u64::from(fc.store_ttl_ms));
        store_cfg.max_sessions = 1 + usize::from(fc.store_max_sessions % 4);
        store_cfg.max_bytes = 16 + usize::from(fc.store_max_bytes % 2048);
        let store = SessionStore::new(store_cfg.clone(), seed32(fc.seed, 3));
        let request = ClientRequest::new("ws://fuzz.example/session").expect("valid url");
        let client = Session::client(request, ccfg.clone(), cconn, start);
        let mut h = Self {
            start,
            now: start,
            ccfg,
            scfg,
            sconn,
            store_cfg,
            client_lazy: fc.client.lazy_events,
            server_lazy: fc.server.lazy_events,
            seed: fc.seed,
            plain_accepts: (fc.plain_accepts % 16).saturating_sub(13),
            auto_connect: fc.auto_connect,
            inject: fc.inject,
            client,
            client_link: None,
            connect_pending: false,
            connects: 0,
            client_sid: Vec::new(),
            client_epoch: None,
            client_shutdown: false,
            client_aborted: false,
            client_gave_up: false,
            client_closed: false,
            links: Vec::new(),
            store,
            ca: App::default(),
            sa: App::default(),
            next_epoch: 0,
            sid_epoch: HashMap::new(),
            connected_seq: 0,
            tainted: false,
            settling: false,
        };
        h.drain_client();
        h
    }

    fn new_epoch(&mut self) -> u64 {
        self.next_epoch += 1;
        self.next_epoch
    }

    /// The link `sel` picks among the live ones (0: the newest).
    fn pick_link(&self, sel: u8) -> Option<usize> {
        let live: Vec<usize> = (0..self.links.len())
            .filter(|&i| self.links[i].live())
            .collect();
        (!live.is_empty()).then(|| live[live.len() - 1 - usize::from(sel) % live.len()])
    }

    // ------------------------------------------------------------ network

    /// Forgets the links where nothing can happen any more.
    fn gc_links(&mut self) {
        if self.links.iter().all(Link::live) {
            return;
        }
        let mut kept = Vec::new();
        let mut client_link = None;
        for (i, l) in std::mem::take(&mut self.links).into_iter().enumerate() {
            let client = self.client_link == Some(i);
            if l.live() || client {
                if client {
                    client_link = Some(kept.len());
                }
                kept.push(l);
            }
        }
        self.links = kept;
        self.client_link = client_link;
    }

    fn write_c2s(&mut self, li: usize, data: &[u8]) {
        let l = &mut self.links[li];
        if !l.cut && !l.c2s_closed {
            l.c2s.extend_from_slice(data);
        }
    }

    fn write_s2c(&mut self, li: usize, data: &[u8]) {
        let l = &mut self.links[li];
        if !l.cut && !l.s2c_closed {
            l.s2c.extend_from_slice(data);
        }
    }

    /// Delivers up to `max` bytes (or the EOF) of one direction of link
    /// `li`; returns whether anything happened.
    fn deliver(&mut self, li: usize, to_server: bool, max: usize) -> bool {
        let now = self.now;
        if to_server {
            let l = &mut self.links[li];
            let reader_open = match &l.server {
                Srv::Gone => false,
                Srv::Handshake(c) => !c.is_closed(),
                Srv::Session(e) => e.s.connection().is_some_and(|c| !c.is_closed()),
            };
            if !reader_open {
                // Nobody reads this any more.
                l.c2s.clear();
                let any = l.c2s_closed && !l.c2s_eof_done;
                l.c2s_eof_done |= l.c2s_closed;
                if any && let Srv::Session(e) = &mut l.server {
                    e.s.handle_eof(now);
                    self.drain_server(li);
                }
                return any;
            }
            if !l.c2s.is_empty() {
                let wants = match &l.server {
                    Srv::Handshake(c) => c.wants_read(),
                    Srv::Session(e) => e.s.wants_read(),
                    Srv::Gone => false,
                };
                if !wants {
                    return false;
                }
                let n = max.max(1).min(l.c2s.len());
                let bytes: Vec<u8> = l.c2s.drain(..n).collect();
                match &mut l.server {
                    Srv::Handshake(c) => c.handle_input(now, &bytes),
                    Srv::Session(e) => e.s.handle_input(now, &bytes),
                    Srv::Gone => {}
                }
            } else if l.c2s_closed && !l.c2s_eof_done {
                l.c2s_eof_done = true;
                match &mut l.server {
                    Srv::Handshake(c) => c.handle_eof(now),
                    Srv::Session(e) => e.s.handle_eof(now),
                    Srv::Gone => {}
                }
            } else {
                return false;
            }
            self.drain_server(li);
            true
        } else {
            let attached = self.client_link == Some(li);
            let reader_open = attached && self.client.connection().is_some_and(|c| !c.is_closed());
            let l = &mut self.links[li];
            if !reader_open {
                l.s2c.clear();
                let any = l.s2c_closed && !l.s2c_eof_done;
                l.s2c_eof_done |= l.s2c_closed;
                if any && attached {
                    self.client.handle_eof(now);
                    self.drain_client();
                }
                return any;
            }
            if !l.s2c.is_empty() {
                if !self.client.wants_read() {
                    return false;
                }
                let n = max.max(1).min(l.s2c.len());
                let bytes: Vec<u8> = l.s2c.drain(..n).collect();
                self.client.handle_input(now, &bytes);
            } else if l.s2c_closed && !l.s2c_eof_done {
                l.s2c_eof_done = true;
                self.client.handle_eof(now);
            } else {
                return false;
            }
            self.drain_client();
            true
        }
    }

    fn cut(&mut self, li: usize, client_now: bool, server_now: bool) {
        let l = &mut self.links[li];
        l.cut = true;
        l.c2s.clear();
        l.s2c.clear();
        l.c2s_closed = true;
        l.s2c_closed = true;
        if server_now {
            self.deliver(li, true, usize::MAX);
        }
        if client_now {
            self.deliver(li, false, usize::MAX);
        }
    }

    fn inject(&mut self, li: usize, to_server: bool, text: bool, payload: &[u8]) {
        if !self.inject {
            return;
        }
        let l = &self.links[li];
        let open = !l.cut
            && if to_server {
                !l.c2s_closed
            } else {
                !l.s2c_closed
            };
        if !open {
            return;
        }
        self.tainted = true;
        let frame = ws_frame(if text { 1 } else { 2 }, payload, to_server);
        if to_server {
            self.write_c2s(li, &frame);
        } else {
            self.write_s2c(li, &frame);
        }
    }

    // ------------------------------------------------------------ client

    fn drain_client(&mut self) {
        for _ in 0..64 {
            let mut progress = false;
            while let Some(a) = self.client.poll_action() {
                progress = true;
                match a {
                    Action::Connect => self.connect_pending = true,
                    Action::CloseTransport => {
                        let mut buf = Vec::new();
                        while self.client.poll_transmit(&mut buf) {}
                        if let Some(li) = self.client_link.take() {
                            self.write_c2s(li, &buf);
                            self.links[li].c2s_closed = true;
                        }
                    }
                    other => panic!("unknown client action {other:?}"),
                }
            }
            if !self.client_lazy || self.settling {
                while let Some(e) = self.client.poll_event() {
                    progress = true;
                    self.on_client_event(e);
                }
            }
            while let Some((id, o)) = self.client.poll_outcome() {
                progress = true;
                self.outcome(false, Vec::new(), id, o);
            }
            let mut buf = Vec::new();
            if self.client.poll_transmit(&mut buf) {
                progress = true;
                if let Some(li) = self.client_link {
                    self.write_c2s(li, &buf);
                }
            }
            if self.connect_pending && self.auto_connect {
                self.connect(true);
                progress = true;
            }
            if !progress {
                break;
            }
        }
    }

    fn poll_client_events(&mut self, max: usize) {
        for _ in 0..max {
            let Some(e) = self.client.poll_event() else {
                break;
            };
            self.on_client_event(e);
        }
        self.drain_client();
    }

    fn on_client_event(&mut self, e: SessionEvent) {
        match e {
            SessionEvent::Connected { session, resumed } => {
                assert!(!session.is_empty(), "connected with an empty session id");
                if resumed {
                    assert_eq!(session, self.client_sid, "resumed another session");
                } else {
                    let ep = self.new_epoch();
                    self.client_epoch = Some(ep);
                }
                self.client_sid = session;
            }
            SessionEvent::Message(m) => {
                let ep = self.client_epoch.expect("message before Connected");
                self.receive(false, ep, &m);
            }
            SessionEvent::Released(id) => self.released(false, Vec::new(), id),
            SessionEvent::Reconnecting { attempt, delay } => {
                let min = self.ccfg.backoff_min;
                let max = self.ccfg.backoff_max.max(min);
                let cap = min
                    .saturating_mul(1u32 << attempt.saturating_sub(1).min(31))
                    .min(max);
                assert!(
                    attempt >= 1 && delay >= min && delay <= cap,
                    "backoff {delay:?} for attempt {attempt} outside [{min:?}, {cap:?}]"
                );
            }
            SessionEvent::GaveUp => self.client_gave_up = true,
            SessionEvent::Closed => self.client_closed = true,
            SessionEvent::Hello { .. } => panic!("Hello on a client"),
            _ => {}
        }
    }

    fn connect(&mut self, ok: bool) {
        if !std::mem::take(&mut self.connect_pending) {
            return;
        }
        let now = self.now;
        if !ok {
            self.client
                .handle_connect_failed(now, "refused by the fuzzer");
            self.drain_client();
            return;
        }
        let mut cfg = self.sconn.clone();
        self.connects += 1;
        cfg.rng_seed = Some(seed32(self.seed, 100 + self.connects));
        self.links.push(Link {
            c2s: Vec::new(),
            c2s_closed: false,
            c2s_eof_done: false,
            s2c: Vec::new(),
            s2c_closed: false,
            s2c_eof_done: false,
            cut: false,
            server: Srv::Handshake(Box::new(Connection::server(cfg, now))),
        });
        self.client_link = Some(self.links.len() - 1);
        self.client.handle_connected(now);
        self.drain_client();
    }

    fn client_send(&mut self, text: bool, filler: u8, ack: Option<Duration>) {
        let k = self.ca.sent.len();
        let m = make_message('c', k, text, filler);
        let len = m.len();
        let before = (self.client.unacked(), self.client.unacked_bytes());
        let closed = self.client_shutdown || self.client.is_finished();
        let r = self.client.send(self.now, m.clone(), ack);
        let cfg = &self.ccfg;
        check_send(&r, closed, len, before, cfg);
        if let Ok(id) = r {
            assert!(
                self.ca.by_id.insert((Vec::new(), id), k).is_none(),
                "client id {id:?} given twice"
            );
            self.ca.sent.push(Sent {
                msg: m,
                ack,
                sent_at: self.now,
                outcome: None,
                released: false,
                delivered: 0,
            });
        }
        self.drain_client();
    }

    // ------------------------------------------------------------ server

    fn drain_server(&mut self, li: usize) {
        let mut srv = std::mem::replace(&mut self.links[li].server, Srv::Gone);
        for _ in 0..64 {
            let mut progress = false;
            match &mut srv {
                Srv::Gone => break,
                Srv::Handshake(conn) => {
                    let mut upgrade = false;
                    let mut closed = false;
                    while let Some(ev) = conn.poll_event() {
                        progress = true;
                        match ev {
                            Event::Request(req) => {
                                let offered = req.subprotocols().iter().any(|p| p == SUBPROTOCOL);
                                let plain = self.plain_accepts > 0;
                                self.plain_accepts = self.plain_accepts.saturating_sub(1);
                                let a = if offered && !plain {
                                    Accept::new().subprotocol(SUBPROTOCOL)
                                } else {
                                    Accept::new()
                                };
                                conn.accept(a).expect("accept");
                                // What else is queued (frames that came
                                // with the request) is the session's.
                                upgrade = true;
                                break;
                            }
                            Event::Closed(_) => {
                                closed = true;
                                break;
                            }
                            _ => {}
                        }
                    }
                    if upgrade {
                        let Srv::Handshake(conn) = std::mem::replace(&mut srv, Srv::Gone) else {
                            unreachable!()
                        };
                        let s = Session::server(*conn, self.scfg.clone(), self.now);
                        srv = Srv::Session(Box::new(ServerEnd {
                            s,
                            sid: Vec::new(),
                            epoch: None,
                            connected: 0,
                            last_code: None,
                            shutdown: false,
                        }));
                        continue;
                    }
                    let mut buf = Vec::new();
                    if conn.poll_transmit(&mut buf) {
                        progress = true;
                        self.write_s2c(li, &buf);
                    }
                    if closed {
                        self.links[li].s2c_closed = true;
                        srv = Srv::Gone;
                    }
                }
                Srv::Session(end) => {
                    while let Some(a) = end.s.poll_action() {
                        progress = true;
                        match a {
                            Action::CloseTransport => {
                                let mut buf = Vec::new();
                                while end.s.poll_transmit(&mut buf) {}
                                self.write_s2c(li, &buf);
                                self.links[li].s2c_closed = true;
                            }
                            other => panic!("server action {other:?}"),
                        }
                    }
                    if self.server_outcomes(end) {
                        progress = true;
                    }
                    let mut ended = false;
                    if !self.server_lazy || self.settling {
                        while let Some(e) = end.s.poll_event() {
                            progress = true;
                            if self.on_server_event(end, e) {
                                ended = true;
                                break;
                            }
                        }
                    }
                    let mut buf = Vec::new();
                    if end.s.poll_transmit(&mut buf) {
                        progress = true;
                        self.write_s2c(li, &buf);
                    }
                    if ended {
                        self.end_server(li, end);
                        srv = Srv::Gone;
                    }
                }
            }
            if !progress {
                break;
            }
        }
        self.links[li].server = srv;
    }

    /// What is left of a server session after `Closed`.
    fn end_server(&mut self, li: usize, end: &mut ServerEnd) {
        while let Some(a) = end.s.poll_action() {
            assert_eq!(a, Action::CloseTransport, "server action after Closed");
        }
        let mut buf = Vec::new();
        while end.s.poll_transmit(&mut buf) {}
        self.write_s2c(li, &buf);
        self.links[li].s2c_closed = true;
        self.server_outcomes(end);
        while let Some(e) = end.s.poll_event() {
            match e {
                SessionEvent::Released(id) => self.released(true, end.sid.clone(), id),
                SessionEvent::Message(_) => panic!("a message after Closed"),
                _ => {}
            }
        }
    }

    fn server_outcomes(&mut self, end: &mut ServerEnd) -> bool {
        if !end.s.id().is_empty() {
            end.sid = end.s.id().to_vec();
        }
        let mut any = false;
        while let Some((id, o)) = end.s.poll_outcome() {
            any = true;
            self.outcome(true, end.sid.clone(), id, o);
        }
        any
    }

    fn store_outcomes(&mut self) {
        while let Some((sid, id, o)) = self.store.poll_outcome() {
            self.outcome(true, sid, id, o);
        }
    }

    /// Returns true once the session ended (`Closed`).
    fn on_server_event(&mut self, end: &mut ServerEnd, e: SessionEvent) -> bool {
        match e {
            SessionEvent::Hello { session, proof } => {
                let proven = proof.is_some();
                match self.store.open(&session, proof.as_ref(), self.now) {
                    Ok((state, resumed)) => {
                        // Issue #14: an id alone reaches no session.
                        assert!(
                            proven || (!resumed && (session.is_empty() || state.id() != session)),
                            "a HELLO without a proof got session {:?} (resumed: {resumed})",
                            state.id()
                        );
                        end.s.attach(state, resumed);
                    }
                    Err(SessionError::Busy) if !proven => {
                        panic!("Busy for a HELLO without a proof")
                    }
                    Err(SessionError::Busy) => {
                        end.s.refuse_busy();
                        assert!(
                            !end.s.connection().is_some_and(Connection::is_open),
                            "a connection refused as busy stays open"
                        );
                    }
                    Err(e) => panic!("store.open: {e:?}"),
                }
                self.server_outcomes(end);
            }
            SessionEvent::Connected { session, resumed } => {
                assert!(!session.is_empty(), "server connected without an id");
                let ep = match self.sid_epoch.get(&session) {
                    Some(&ep) if resumed => ep,
                    _ => {
                        let ep = self.new_epoch();
                        self.sid_epoch.insert(session.clone(), ep);
                        ep
                    }
                };
                end.epoch = Some(ep);
                self.connected_seq += 1;
                end.connected = self.connected_seq;
                end.sid = session;
            }
            SessionEvent::Message(m) => {
                let ep = end.epoch.expect("server message before Connected");
                self.receive(true, ep, &m);
            }
            SessionEvent::Released(id) => {
                self.server_outcomes(end);
                self.released(true, end.sid.clone(), id);
            }
            SessionEvent::Disconnected { code, .. } => end.last_code = Some(code),
            SessionEvent::Closed => {
                self.server_outcomes(end);
                if let Some(state) = end.s.take_state() {
                    if end.last_code == Some(CloseCode::NORMAL) {
                        self.store.release(state);
                    } else {
                        self.store.park(state, self.now);
                    }
                    self.store_outcomes();
                }
                self.server_outcomes(end);
                return true;
            }
            SessionEvent::Reconnecting { .. } | SessionEvent::GaveUp => {
                panic!("client event {e:?} on a server")
            }
            _ => {}
        }
        false
    }

    fn poll_server_events(&mut self, li: usize, max: usize) {
        let mut srv = std::mem::replace(&mut self.links[li].server, Srv::Gone);
        let mut ended = false;
        if let Srv::Session(end) = &mut srv {
            for _ in 0..max {
                let Some(e) = end.s.poll_event() else {
                    break;
                };
                if self.on_server_event(end, e) {
                    ended = true;
                    break;
                }
            }
            if ended {
                self.end_server(li, end);
            }
        }
        self.links[li].server = if ended { Srv::Gone } else { srv };
        self.drain_server(li);
    }

    /// The server application's session: the one connected last, if it
    /// is still there.
    fn current_server(&self) -> Option<usize> {
        let (li, c) = self
            .links
            .iter()
            .enumerate()
            .filter_map(|(i, l)| match &l.server {
                Srv::Session(e) => Some((i, e.connected)),
                _ => None,
            })
            .max_by_key(|&(_, c)| c)?;
        (c > 0 && c == self.connected_seq).then_some(li)
    }

    fn server_send(&mut self, text: bool, filler: u8, ack: Option<Duration>) {
        let Some(li) = self.current_server() else {
            return;
        };
        let Srv::Session(end) = &mut self.links[li].server else {
            unreachable!()
        };
        let k = self.sa.sent.len();
        let m = make_message('s', k, text, filler);
        let len = m.len();
        let before = (end.s.unacked(), end.s.unacked_bytes());
        let closed = end.shutdown || end.s.is_finished() || end.s.id().is_empty();
        let r = end.s.send(self.now, m.clone(), ack);
        check_send(&r, closed, len, before, &self.scfg);
        if let Ok(id) = r {
            let sid = end.s.id().to_vec();
            assert!(
                self.sa.by_id.insert((sid, id), k).is_none(),
                "server id {id:?} given twice"
            );
            self.sa.sent.push(Sent {
                msg: m,
                ack,
                sent_at: self.now,
                outcome: None,
                released: false,
                delivered: 0,
            });
        }
        self.drain_server(li);
    }

    /// The server application goes away without taking what is queued:
    /// its session is parked, the transport closed.
    fn abandon(&mut self, li: usize) {
        let srv = std::mem::replace(&mut self.links[li].server, Srv::Gone);
        if let Srv::Session(mut end) = srv {
            self.server_outcomes(&mut end);
            let state = end.s.take_state();
            self.server_outcomes(&mut end);
            while let Some(e) = end.s.poll_event() {
                match e {
                    SessionEvent::Released(id) => self.released(true, end.sid.clone(), id),
                    SessionEvent::Message(_) => panic!("a message not taken survived take_state"),
                    _ => {}
                }
            }
            if let Some(state) = state {
                self.store.park(state, self.now);
                self.store_outcomes();
            }
        }
        let l = &mut self.links[li];
        l.s2c_closed = true;
        l.c2s.clear();
        l.c2s_eof_done = true;
    }

    // ------------------------------------------------------------ checks

    fn outcome(&mut self, server: bool, sid: Vec<u8>, id: MessageId, o: DeliveryOutcome) {
        let now = self.now;
        let tainted = self.tainted;
        let app = if server { &mut self.sa } else { &mut self.ca };
        let Some(&k) = app.by_id.get(&(sid, id)) else {
            panic!("outcome {o:?} for {id:?}, which send never returned (server: {server})");
        };
        let m = &mut app.sent[k];
        if let Some(first) = m.outcome {
            panic!("second outcome {o:?} for #{k} (first {first:?}, server: {server})");
        }
        m.outcome = Some(o);
        match (o, m.ack) {
            (DeliveryOutcome::Written, None) => {}
            (DeliveryOutcome::Acked, Some(_)) => {
                assert!(
                    tainted || m.delivered > 0,
                    "#{k} Acked but its peer never took it (server: {server})"
                );
            }
            (DeliveryOutcome::AckFailed, Some(d)) => {
                assert!(now >= m.sent_at + d, "#{k} AckFailed before its deadline");
            }
            (DeliveryOutcome::Dropped(r), _) => {
                let ok = match r {
                    DropReason::Overflow => true,
                    DropReason::GaveUp => !server,
                    DropReason::Shutdown => true,
                    DropReason::Expired => server,
                    _ => false,
                };
                assert!(ok, "#{k} dropped for {r:?} (server: {server})");
                if r == DropReason::Overflow {
                    assert!(
                        tainted || m.delivered == 0,
                        "#{k} dropped for overflow but delivered"
                    );
                }
            }
            (o, ack) => panic!("outcome {o:?} for #{k} with deadline {ack:?} (server: {server})"),
        }
    }

    fn released(&mut self, server: bool, sid: Vec<u8>, id: MessageId) {
        let tainted = self.tainted;
        let app = if server { &mut self.sa } else { &mut self.ca };
        let Some(&k) = app.by_id.get(&(sid, id)) else {
            panic!("Released for {id:?}, which send never returned (server: {server})");
        };
        let m = &mut app.sent[k];
        assert!(!m.released, "#{k} released twice (server: {server})");
        m.released = true;
        assert!(
            tainted || m.delivered > 0,
            "#{k} released (acknowledged) but its peer never took it (server: {server})"
        );
    }

    /// The application on one side took a message of incarnation `epoch`.
    fn receive(&mut self, at_server: bool, epoch: u64, m: &Message) {
        if self.tainted {
            return;
        }
        let Some((tag, k)) = parse_message(m) else {
            panic!("delivered a message nobody sent: {m:?}");
        };
        assert_eq!(
            tag,
            if at_server { 'c' } else { 's' },
            "message from the wrong side"
        );
        let (sender, receiver) = if at_server {
            (&mut self.ca, &mut self.sa)
        } else {
            (&mut self.sa, &mut self.ca)
        };
        let Some(sent) = sender.sent.get_mut(k) else {
            panic!("{tag}{k} delivered but never accepted by send");
        };
        assert_eq!(&sent.msg, m, "{tag}{k} delivered changed");
        assert!(
            sent.outcome != Some(DeliveryOutcome::Dropped(DropReason::Overflow)),
            "{tag}{k} delivered after Dropped(Overflow)"
        );
        sent.delivered += 1;
        if let Some(&last) = receiver.last_in.get(&epoch) {
            assert!(
                k > last,
                "{tag}{k} delivered after {tag}{last} in the same session (out of order or twice)"
            );
        }
        receiver.last_in.insert(epoch, k);
        if sent.delivered == 1 {
            if let Some(mf) = receiver.max_first {
                assert!(k > mf, "{tag}{k} first delivered after {tag}{mf}");
            }
            receiver.max_first = Some(k);
        }
    }

    fn check_bounds(&self) {
        let check = |s: &Session, cfg: &SessionConfig, who: &str| {
            assert!(
                s.unacked() <= cfg.max_outbox_messages,
                "{who} outbox holds {} messages (max {})",
                s.unacked(),
                cfg.max_outbox_messages
            );
            assert!(
                s.unacked_bytes() <= cfg.max_outbox_bytes,
                "{who} outbox holds {} bytes (max {})",
                s.unacked_bytes(),
                cfg.max_outbox_bytes
            );
        };
        check(&self.client, &self.ccfg, "client");
        for l in &self.links {
            if let Srv::Session(e) = &l.server {
                check(&e.s, &self.scfg, "server");
            }
        }
        assert!(self.store.parked() <= self.store_cfg.max_sessions);
        assert!(self.store.parked_bytes() <= self.store_cfg.max_bytes);
    }

    // ------------------------------------------------------------ time

    fn next_timer(&self) -> Option<(Instant, Who)> {
        let mut best: Option<(Instant, Who)> = None;
        let mut consider = |t: Option<Instant>, who: Who| {
            if let Some(t) = t
                && best.is_none_or(|(b, _)| t < b)
            {
                best = Some((t, who));
            }
        };
        consider(self.client.poll_timeout(), Who::Client);
        for (i, l) in self.links.iter().enumerate() {
            let t = match &l.server {
                Srv::Handshake(c) => c.poll_timeout(),
                Srv::Session(e) => e.s.poll_timeout(),
                Srv::Gone => None,
            };
            consider(t, Who::Server(i));
        }
        consider(self.store.poll_timeout(), Who::Store);
        best
    }

    /// `handle_timeout(now)`; checks that no timer is left due.
    fn fire(&mut self, who: Who) {
        let now = self.now;
        let after = match who {
            Who::Client => {
                self.client.handle_timeout(now);
                self.drain_client();
                self.client.poll_timeout()
            }
            Who::Server(li) => {
                match &mut self.links[li].server {
                    Srv::Handshake(c) => c.handle_timeout(now),
                    Srv::Session(e) => e.s.handle_timeout(now),
                    Srv::Gone => {}
                }
                self.drain_server(li);
                match &self.links[li].server {
                    Srv::Handshake(c) => c.poll_timeout(),
                    Srv::Session(e) => e.s.poll_timeout(),
                    Srv::Gone => None,
                }
            }
            Who::Store => {
                self.store.handle_timeout(now);
                self.store_outcomes();
                self.store.poll_timeout()
            }
        };
        assert!(
            after.is_none_or(|t| t > now),
            "{who:?}: a timer is still due after handle_timeout"
        );
    }

    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        for _ in 0..MAX_FIRES {
            match self.next_timer() {
                Some((t, who)) if t <= target => {
                    self.now = self.now.max(t);
                    self.fire(who);
                }
                _ => break,
            }
        }
        self.now = self.now.max(target);
    }

    // ------------------------------------------------------------ ops

    fn drain_all(&mut self) {
        self.drain_client();
        for li in 0..self.links.len() {
            self.drain_server(li);
        }
    }

    fn step(&mut self, op: Op) {
        let now = self.now;
        match op {
            Op::ClientSend {
                text,
                filler,
                ack_ms,
            } => self.client_send(text, filler, ack_ms.map(|v| ms(1 + u64::from(v)))),
            Op::ServerSend {
                text,
                filler,
                ack_ms,
            } => self.server_send(text, filler, ack_ms.map(|v| ms(1 + u64::from(v)))),
            Op::Burst { server, n, ack_ms } => {
                let ack = ack_ms.map(|v| ms(1 + u64::from(v)));
                for i in 0..=n % 8 {
                    if server {
                        self.server_send(i % 2 == 0, n ^ i, ack);
                    } else {
                        self.client_send(i % 2 == 0, n ^ i, ack);
                    }
                }
            }
            Op::Deliver {
                to_server,
                link,
                max,
            } => {
                if let Some(li) = self.pick_link(link) {
                    self.deliver(li, to_server, max.map_or(usize::MAX, usize::from));
                }
            }
            Op::DeliverChunked {
                to_server,
                link,
                seed,
                max,
            } => {
                if let Some(li) = self.pick_link(link) {
                    let mut rng = Rng::new(u64::from(seed));
                    for _ in 0..256 {
                        let n = rng.chunk(usize::from(max) + 1);
                        if !self.deliver(li, to_server, n) {
                            break;
                        }
                    }
                }
            }
            Op::Flush => {
                self.flush_links();
            }
            Op::Connect => self.connect(true),
            Op::RefuseConnect => self.connect(false),
            Op::Cut {
                link,
                client_now,
                server_now,
            } => {
                if let Some(li) = self.pick_link(link) {
                    self.cut(li, client_now, server_now);
                }
            }
            Op::Abandon { link } => {
                if let Some(li) = self.pick_link(link) {
                    self.abandon(li);
                }
            }
            Op::ServerShutdown { link } => {
                if let Some(li) = self.pick_link(link)
                    && let Srv::Session(e) = &mut self.links[li].server
                {
                    e.s.shutdown(now);
                    e.shutdown = true;
                    self.drain_server(li);
                }
            }
            Op::ServerAbort { link } => {
                if let Some(li) = self.pick_link(link)
                    && let Srv::Session(e) = &mut self.links[li].server
                {
                    e.s.abort(now);
                    e.shutdown = true;
                    self.drain_server(li);
                }
            }
            Op::ClientShutdown => {
                self.client.shutdown(now);
                self.client_shutdown = true;
            }
            Op::ClientAbort => {
                self.client.abort(now);
                self.client_aborted = true;
            }
            Op::Sleep(v) => self.now += ms(u64::from(v)),
            Op::Advance(v) => self.advance(ms(u64::from(v))),
            Op::TimeoutNow => {
                self.fire(Who::Client);
                for li in 0..self.links.len() {
                    self.fire(Who::Server(li));
                }
                self.fire(Who::Store);
            }
            Op::PollEvents { server, link, max } => {
                let max = if max == 0 {
                    usize::MAX
                } else {
                    usize::from(max)
                };
                if !server {
                    self.poll_client_events(max);
                } else if let Some(li) = self.pick_link(link) {
                    self.poll_server_events(li, max);
                }
            }
            Op::InjectRaw {
                to_server,
                link,
                text,
                mut data,
            } => {
                if let Some(li) = self.pick_link(link) {
                    data.truncate(MAX_INJECT);
                    if text {
                        data = String::from_utf8_lossy(&data).into_owned().into_bytes();
                    }
                    self.inject(li, to_server, text, &data);
                }
            }
            Op::InjectEnvelope {
                to_server,
                link,
                kind,
                flags,
                num,
                mut data,
            } => {
                if let Some(li) = self.pick_link(link) {
                    data.truncate(MAX_INJECT);
                    let key = self.client.resume_key().map(|k| *k.as_bytes());
                    let e = envelope(kind, flags, num, &data, &self.client_sid, key.as_ref());
                    self.inject(li, to_server, false, &e);
                }
            }
        }
        self.drain_all();
        self.check_bounds();
        self.gc_links();
    }

    // ------------------------------------------------------------ finish

    /// Delivers everything in flight (and the EOFs), until nothing moves;
    /// returns whether anything did.
    fn flush_links(&mut self) -> bool {
        let mut any = false;
        for _ in 0..256 {
            let mut moved = false;
            for li in 0..self.links.len() {
                for to_server in [true, false] {
                    while self.deliver(li, to_server, usize::MAX) {
                        moved = true;
                    }
                }
            }
            if !moved {
                return any;
            }
            any = true;
        }
        panic!("deliveries do not stop");
    }

    /// Drains everything, connects when asked, delivers everything in
    /// flight, until nothing moves.
    fn flush_all(&mut self) {
        for _ in 0..256 {
            self.drain_all();
            let mut moved = false;
            if self.connect_pending {
                self.connect(true);
                moved = true;
            }
            moved |= self.flush_links();
            self.check_bounds();
            if !moved {
                return;
            }
        }
        panic!("the finish does not settle");
    }

    fn servers_gone(&self) -> bool {
        self.links.iter().all(|l| matches!(l.server, Srv::Gone))
    }

    /// Both ends of the client's session are idle: nothing to send.
    fn healed(&self) -> bool {
        if self.client.is_finished() {
            return true;
        }
        if !self.client.is_established() || self.client.unacked() != 0 {
            return false;
        }
        self.links.iter().all(|l| match &l.server {
            Srv::Session(e) if e.s.id() == self.client_sid.as_slice() => e.s.unacked() == 0,
            _ => true,
        })
    }

    /// Runs `flush_all` and timers until `done`; false if it never is.
    fn run_until(&mut self, done: impl Fn(&Self) -> bool) -> bool {
        let limit = self.now + SETTLE_TIME;
        for _ in 0..SETTLE_STEPS {
            self.flush_all();
            if done(self) {
                return true;
            }
            match self.next_timer() {
                Some((t, who)) if t <= limit => {
                    self.now = self.now.max(t);
                    self.fire(who);
                }
                _ => return false,
            }
        }
        false
    }

    fn settle(&mut self) {
        self.settling = true;
        // Every end notices a dead link.
        for li in 0..self.links.len() {
            if self.links[li].cut {
                self.deliver(li, true, usize::MAX);
                self.deliver(li, false, usize::MAX);
            }
        }
        let healed = self.run_until(Self::healed);
        let now = self.now;
        self.client.shutdown(now);
        self.client_shutdown = true;
        let finished = self.run_until(|h| h.client.is_finished() && h.servers_gone());
        assert!(
            finished,
            "not finished after the shutdown (healed: {healed}; client finished: {}, \
             established: {}, unacked: {}; server sessions left: {})",
            self.client.is_finished(),
            self.client.is_established(),
            self.client.unacked(),
            self.links
                .iter()
                .filter(|l| !matches!(l.server, Srv::Gone))
                .count()
        );
        assert!(
            self.client_closed || self.client_gave_up,
            "client finished without Closed or GaveUp"
        );
        // Parked sessions expire.
        let ttl = self.store_cfg.ttl;
        let expired = self.run_until(|h| h.store.parked() == 0);
        assert!(expired, "sessions still parked after the finish");
        self.advance(ttl);
        assert_eq!(self.store.parked(), 0);
        assert!(self.now >= self.start);

        for (who, app) in [("client", &self.ca), ("server", &self.sa)] {
            for (k, m) in app.sent.iter().enumerate() {
                assert!(m.outcome.is_some(), "{who} message #{k} has no outcome");
            }
        }
        for (k, m) in self.ca.sent.iter().enumerate() {
            match m.outcome {
                Some(DeliveryOutcome::Dropped(DropReason::GaveUp)) => {
                    assert!(self.client_gave_up, "c{k} Dropped(GaveUp) without GaveUp");
                }
                Some(DeliveryOutcome::Dropped(DropReason::Shutdown)) => {
                    assert!(self.client_aborted, "c{k} Dropped(Shutdown) without abort");
                }
                Some(DeliveryOutcome::Dropped(DropReason::Overflow)) => continue,
                _ => {}
            }
            if !self.tainted && !self.client_gave_up && !self.client_aborted {
                assert!(m.delivered > 0, "c{k} ({:?}) never delivered", m.outcome);
            }
        }
    }
}

/// Checks a `send` result against what the docs promise.
fn check_send(
    r: &Result<MessageId, SendError>,
    closed: bool,
    len: usize,
    (unacked, bytes): (usize, usize),
    cfg: &SessionConfig,
) {
    let too_large = len > cfg.max_outbox_bytes;
    match r {
        Ok(_) => {
            assert!(!closed, "send accepted on a closed session");
            assert!(!too_large, "send accepted a message over max_outbox_bytes");
        }
        Err(SendError::Closed) => assert!(closed, "send refused as Closed on an open session"),
        Err(SendError::TooLarge) => {
            assert!(too_large, "a {len}-byte message refused as too large")
        }
        Err(SendError::Full) => assert!(
            unacked >= cfg.max_outbox_messages || bytes + len > cfg.max_outbox_bytes,
            "Full with {unacked} messages / {bytes} bytes queued and a {len}-byte message"
        ),
        Err(e) => panic!("unexpected send error {e:?}"),
    }
    if too_large && !closed {
        assert_eq!(
            r,
            &Err(SendError::TooLarge),
            "a message over max_outbox_bytes"
        );
    }
}

fuzz_target!(|input: Input| {
    let mut h = Harness::new(&input.config);
    for op in input.ops.into_iter().take(MAX_OPS) {
        h.step(op);
    }
    h.settle();
});
