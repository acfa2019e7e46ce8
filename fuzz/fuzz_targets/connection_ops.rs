//! Arbitrary sequences of operations against a server, a client, or a
//! connected pair (transmits forwarded, possibly partially or corrupted),
//! on a fake clock, with small limits.
//!
//! Checked after every operation, for every endpoint:
//! * no panic; events in order (`Closed` at most once and last, `Connected`
//!   once and before data, sizes within limits: see `EventChecker`);
//! * states only move forward (`Closed` stays `Closed`), and only through
//!   states of the endpoint's role; `Closed` state ⇔ `Closed` event seen;
//! * timers: none while `Open` or `Closed`, one while closing; a newly armed
//!   deadline is not before the connection's clock; after
//!   `handle_timeout(now)` none is due; `handle_timeout` before the deadline
//!   changes nothing;
//! * every transmitted byte re-parses as an HTTP head then canonical,
//!   correctly masked, well-sequenced frames, nothing after a close frame
//!   (see `WireChecker`), and after a full `poll_transmit` it ends on a frame
//!   boundary; nothing is queued once `Closed`;
//! * every message the API accepted appears on the wire, in order and
//!   unchanged; commands succeed exactly when the state allows them;
//! * the receive buffer stays within `max(max_head_size, 14 +
//!   max_frame_size)`; with events left undrained (backpressure) the caller
//!   stops reading when `wants_read` says so and the queue stays bounded;
//!   with the queue drained, `wants_read` is true unless closed, deciding,
//!   or holding more than `max_buffered_bytes` of unwritten output;
//! * pair, honest wire: the receiver gets exactly the sender's messages in
//!   order; the only protocol errors are size limits; after the run is
//!   settled a completed closing handshake is clean on both ends.
//! * permessage-deflate (when configured, negotiated in the handshake or
//!   for open ends from `client_offer`/`server_accept`/
//!   `client_check_response`): a client offers it exactly when configured
//!   and a server's 101 answers with it exactly when the connection reports
//!   it; RSV1 only on a message's first frame; every compressed message
//!   inflates, within the sender's negotiated window and with a fresh
//!   context when it promised no context takeover, to exactly what the API
//!   accepted. `Compressed` feeds frames deflated by the harness (any
//!   opcode and RSV bits, with or without trailer or a final block), up to
//!   1 MiB of repetitive data: a decompression bomb against limits of a few
//!   KiB. While such a frame is processed the heap grows by at most
//!   128 KiB plus a few times the size limits and the frame (a counting
//!   global allocator measures it): a message is never inflated past the
//!   limit first.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use hookup_fuzz::{EventChecker, SenderDeflate, WireChecker, deflate_payload};
use hookup_proto::deflate::{client_check_response, client_offer, server_accept};
use hookup_proto::frame::{FrameHeader, OpCode};
use hookup_proto::http::header::SEC_WEBSOCKET_EXTENSIONS;
use hookup_proto::http::{HeaderMap, StatusCode};
use hookup_proto::{
    Accept, ClientRequest, CloseCode, Config, Connection, DeflateConfig, DeflateParams, Error,
    Event, HandshakeError, Message, MessageKind, ProtocolError, Request, Role, State, UsageError,
};
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 16] = *b"hookup-fuzz-key!";
/// `Sec-WebSocket-Accept` for `KEY` (see handshake_response.rs).
const ACCEPT: &str = "SiBfGkgld99OIGuQzm6EFQADWAA=";

/// Heap bytes live now, and the most since the last `reset_peak`.
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes.
struct Counting;

impl Counting {
    fn grow(n: usize) {
        let live = LIVE.fetch_add(n, Ordering::Relaxed) + n;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to `System` unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            Self::grow(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            Self::grow(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            LIVE.fetch_sub(l.size(), Ordering::Relaxed);
            Self::grow(new);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Starts a measurement: returns the live bytes now.
fn reset_peak() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

/// Largest plaintext of a `Compressed` operation: as a bomb, about 1 KiB
/// compressed (well within the largest frame limit), far more than the
/// memory a receiver may spend on it.
const MAX_PLAIN: usize = 1 << 20;

/// Fixed part of the heap growth allowed while a compressed frame is
/// processed (the inflater's state and window, bookkeeping).
const MEM_SLACK: usize = 128 << 10;

/// (data, repetitions, level, finish) and the payload, for the last few
/// `Compressed` operations: libFuzzer mostly mutates other parts of an
/// input, and compressing a bomb is the slowest part of a run.
type Deflated = ((Vec<u8>, usize, u32, bool), Vec<u8>);

thread_local! {
    static CACHE: std::cell::RefCell<VecDeque<Deflated>> =
        const { std::cell::RefCell::new(VecDeque::new()) };
}

/// `data` repeated `times` times, deflated (see `deflate_payload`).
fn deflated(data: &[u8], times: usize, level: u32, finish: bool) -> Vec<u8> {
    CACHE.with_borrow_mut(|cache| {
        let key = (data.to_vec(), times, level, finish);
        if let Some((_, p)) = cache.iter().find(|(k, _)| *k == key) {
            return p.clone();
        }
        let p = deflate_payload(&data.repeat(times), level, 15, finish);
        if cache.len() == 8 {
            cache.pop_front();
        }
        cache.push_back((key, p.clone()));
        p
    })
}

#[derive(Arbitrary, Debug)]
enum Setup {
    Server,
    Client,
    OpenServer,
    OpenClient,
    /// A client (end 0) and a server (end 1) doing the handshake.
    Pair,
    /// A client and a server that start open.
    OpenPair,
}

#[derive(Arbitrary, Debug)]
struct FuzzConfig {
    max_frame: u16,
    max_message: u16,
    max_head: u16,
    max_buffered: u16,
    auto_pong: bool,
    stream_fragments: bool,
    handshake_timeout_ms: Option<u16>,
    close_timeout_ms: u16,
    zero_copy: u8,
    /// Transmit only on `Write`/`Flush` operations.
    lazy_writes: bool,
    /// Drain events only on `PollEvents` operations.
    lazy_events: bool,
    /// Accept (or reject, for plain HTTP) requests as they arrive.
    auto_accept: bool,
    /// permessage-deflate: offered (client) or accepted (server).
    deflate: Option<FuzzDeflate>,
}

#[derive(Arbitrary, Debug)]
struct FuzzDeflate {
    threshold: u8,
    /// % 10.
    level: u8,
    /// Window bits: 7 + v % 10 (out of range is clamped by the library).
    local_bits: u8,
    remote_bits: u8,
    local_no_context_takeover: bool,
    remote_no_context_takeover: bool,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Raw bytes into the endpoint.
    Input(Vec<u8>),
    /// One encoded frame into the endpoint, in two pieces. `flags`: 1 wrong
    /// masking, 2 random RSV bits, 4 payload made UTF-8, 8 keep an oversized
    /// or unfinished control frame.
    Frame {
        opcode: u8,
        fin: bool,
        flags: u8,
        split: u8,
        payload: Vec<u8>,
    },
    /// A valid upgrade request (server) or 101 response (client) into it,
    /// with this `Sec-WebSocket-Extensions` (the offer, or the answer).
    Handshake {
        protocol: bool,
        extensions: Option<String>,
    },
    SendText(String),
    SendBinary(Vec<u8>),
    /// `send(Message)`: the zero-copy path for a server.
    Send {
        text: bool,
        data: Vec<u8>,
    },
    SendFragment {
        text: bool,
        data: Vec<u8>,
        fin: bool,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close {
        code: u16,
        reason: String,
    },
    /// Clock moves on; timers are not fired.
    Sleep(u16),
    /// Clock moves on; due timers are fired in deadline order, as a driver would.
    Advance(u16),
    /// `handle_timeout(now)` whether or not a timer is due.
    TimeoutNow,
    Eof,
    Accept {
        protocol: bool,
    },
    Reject {
        status: u16,
        body: Vec<u8>,
    },
    /// A vectored write of at most `max` bytes.
    Write {
        max: u16,
    },
    /// A full `poll_transmit`.
    Flush,
    PollEvents,
    /// Pair: forward up to `max` queued bytes to the peer, optionally
    /// XOR-ing one byte.
    Deliver {
        max: Option<u16>,
        corrupt: Option<(u16, u8)>,
    },
    /// A data frame (`opcode % 3`: continuation, text, binary) whose payload
    /// is `data` repeated `repeat + 1` times (at most `MAX_PLAIN` bytes),
    /// deflated by the harness; RSV bits `rsv ^ 0b100` (so usually RSV1).
    /// `finish`: end the deflate stream with a final block; `trailer`: keep
    /// the sync-flush trailer that senders strip.
    Compressed {
        opcode: u8,
        fin: bool,
        rsv: u8,
        level: u8,
        finish: bool,
        trailer: bool,
        split: u8,
        repeat: u16,
        data: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
struct Step {
    side: bool,
    op: Op,
}

#[derive(Arbitrary, Debug)]
struct Input {
    setup: Setup,
    configs: [FuzzConfig; 2],
    steps: Vec<Step>,
}

/// A limit: tiny (0..=127) when the high bit is set, else `base` or more,
/// so that inputs without much data get usable limits.
fn limit(v: u16, base: usize) -> usize {
    if v & 0x8000 != 0 {
        usize::from(v & 0x7F)
    } else {
        base + usize::from(v & 0x0FFF)
    }
}

fn config(f: &FuzzConfig, seed: u8) -> Config {
    let mut c = Config::default();
    c.max_frame_size = limit(f.max_frame, 64);
    c.max_message_size = limit(f.max_message, 128);
    c.max_head_size = limit(f.max_head, 256);
    c.max_buffered_bytes = limit(f.max_buffered, 64);
    c.auto_pong = f.auto_pong;
    c.stream_fragments = f.stream_fragments;
    c.handshake_timeout = f
        .handshake_timeout_ms
        .map(|ms| Duration::from_millis(ms.into()));
    c.close_timeout = Duration::from_millis(f.close_timeout_ms.into());
    c.zero_copy_threshold = usize::from(f.zero_copy);
    c.rng_seed = Some([seed; 32]);
    c.deflate = f.deflate.as_ref().map(|d| {
        let mut x = DeflateConfig::default();
        x.threshold = usize::from(d.threshold);
        x.level = u32::from(d.level % 10);
        x.local_max_window_bits = 7 + d.local_bits % 10;
        x.remote_max_window_bits = 7 + d.remote_bits % 10;
        x.local_no_context_takeover = d.local_no_context_takeover;
        x.remote_no_context_takeover = d.remote_no_context_takeover;
        x
    });
    c
}

/// The parameters an open end agreed on without a handshake with a peer
/// of the harness: what its own configuration asks for.
fn own_params(c: &Config) -> Option<DeflateParams> {
    let d = c.deflate.as_ref()?;
    let mut p = DeflateParams::default();
    p.local_no_context_takeover = d.local_no_context_takeover;
    p.remote_no_context_takeover = d.remote_no_context_takeover;
    p.local_max_window_bits = d.local_max_window_bits.clamp(9, 15);
    p.remote_max_window_bits = d.remote_max_window_bits.clamp(8, 15);
    Some(p)
}

/// The negotiation an open pair skipped: the client's offer, the server's
/// answer, and the client's check of it, which must accept it.
fn pair_params(client: &Config, server: &Config) -> (Option<DeflateParams>, Option<DeflateParams>) {
    let (Some(cc), Some(sc)) = (&client.deflate, &server.deflate) else {
        return (None, None);
    };
    let mut offer = HeaderMap::new();
    offer.insert(SEC_WEBSOCKET_EXTENSIONS, client_offer(cc));
    let (sp, value) = server_accept(&offer, sc).expect("server refuses our client's offer");
    let mut answer = HeaderMap::new();
    answer.insert(SEC_WEBSOCKET_EXTENSIONS, value);
    let cp = client_check_response(&answer, cc)
        .expect("client refuses our server's answer")
        .expect("client ignores our server's answer");
    (Some(cp), Some(sp))
}

fn rank(s: State) -> u8 {
    match s {
        State::AwaitingResponse | State::AwaitingRequest => 0,
        State::AwaitingDecision => 1,
        State::Open => 2,
        State::ClosingLocal => 3,
        State::ClosingRemote => 4,
        State::Closed => 5,
        _ => panic!("unknown state {s:?}"),
    }
}

fn client_request(protocols: bool) -> ClientRequest {
    let r = ClientRequest::new("ws://fuzz.invalid/p?q=1")
        .unwrap()
        .with_key(KEY);
    if protocols {
        r.protocol("chat").unwrap().protocol("superchat").unwrap()
    } else {
        r
    }
}

/// One endpoint and what the harness knows about it.
struct End {
    conn: Connection,
    role: Role,
    cfg: Config,
    lazy_writes: bool,
    lazy_events: bool,
    auto_accept: bool,
    /// Starts with an HTTP handshake (not open).
    handshake: bool,
    events: EventChecker,
    wire: WireChecker,
    /// Transmitted bytes not yet delivered to the peer (pair).
    outbox: Vec<u8>,
    /// Messages the API accepted that have not appeared on the wire yet.
    expect_wire: VecDeque<Message>,
    /// Messages seen on the wire, not yet received by the peer (pair).
    in_flight: VecDeque<Message>,
    /// The outgoing fragmented message in progress.
    frag_out: Option<(MessageKind, Vec<u8>)>,
    /// The request shown in `Event::Request`, until accepted or rejected.
    pending: Option<Request>,
    prev_state: State,
    prev_timeout: Option<Instant>,
    /// Bytes taken from the connection so far.
    taken: usize,
    /// Bytes queued in total when `Closed` was first seen.
    queued_at_close: Option<usize>,
    /// Bytes fed by the last input, for the backpressure bound.
    last_fed: usize,
    /// The latest time passed to the connection (its clock).
    clock: Option<Instant>,
    /// Bytes into this endpoint that were not exactly the peer's output.
    tainted_input: bool,
    /// Messages received, for the pair comparison.
    received: Vec<Message>,
}

impl End {
    fn new(conn: Connection, cfg: Config, f: &FuzzConfig, handshake: bool) -> Self {
        let role = conn.role();
        let state = conn.state();
        Self {
            events: EventChecker::new(role, &cfg, !handshake),
            wire: WireChecker::new(role, handshake),
            prev_timeout: conn.poll_timeout(),
            conn,
            role,
            cfg,
            lazy_writes: f.lazy_writes,
            lazy_events: f.lazy_events,
            auto_accept: f.auto_accept,
            handshake,
            outbox: Vec::new(),
            expect_wire: VecDeque::new(),
            in_flight: VecDeque::new(),
            frag_out: None,
            pending: None,
            prev_state: state,
            taken: 0,
            queued_at_close: None,
            last_fed: 0,
            clock: None,
            tainted_input: false,
            received: Vec::new(),
        }
    }

    /// Records that `now` was passed to the connection.
    fn tick(&mut self, now: Instant) {
        self.clock = Some(self.clock.map_or(now, |c| c.max(now)));
    }

    fn queued_total(&self) -> usize {
        self.taken + self.conn.transmit_len()
    }

    /// Feeds bytes as a well-behaved caller: not while `wants_read` is false.
    fn input(&mut self, now: Instant, data: &[u8]) -> bool {
        if !self.conn.wants_read() {
            return false;
        }
        self.conn.handle_input(now, data);
        self.tick(now);
        self.last_fed = data.len();
        true
    }

    /// Drains events, checking them; returns completed messages.
    fn drain_events(&mut self) {
        let mut weight = 0usize;
        while let Some(ev) = self.conn.poll_event() {
            weight += match &ev {
                Event::Message(m) => m.len(),
                Event::Fragment(f) => f.data.len(),
                _ => 0,
            };
            if let Some(m) = self.events.on_event(&ev) {
                self.received.push(m);
            }
            if let Event::Request(r) = ev {
                // With events drained late the request may have been decided
                // already, or the connection closed (EOF, timeout).
                let live = self.conn.state() == State::AwaitingDecision;
                if self.auto_accept {
                    let r = if r.is_websocket() {
                        self.conn.accept(Accept::new())
                    } else {
                        self.conn
                            .reject(StatusCode::BAD_REQUEST, &HeaderMap::new(), b"")
                    };
                    assert_eq!(r.is_ok(), live, "auto accept/reject: {r:?}");
                } else {
                    self.pending = Some(r);
                }
            }
        }
        if self.lazy_events {
            // Reading stopped once `wants_read` turned false: the queue held
            // less than the limit before the last read, which added at most
            // its own bytes and a message reassembled from earlier reads.
            let bound = self.cfg.max_buffered_bytes + self.cfg.max_message_size + self.last_fed;
            assert!(
                weight <= bound,
                "event queue of {weight} bytes over {bound}"
            );
        }
    }

    /// Takes all queued output.
    fn flush(&mut self) {
        let mut out = Vec::new();
        let len = self.conn.transmit_len();
        let any = self.conn.poll_transmit(&mut out);
        assert_eq!(any, len > 0);
        assert_eq!(out.len(), len);
        assert_eq!(self.conn.transmit_len(), 0);
        self.sent(&out);
        assert!(
            self.wire.at_boundary(),
            "transmit ended inside a frame or head"
        );
        assert!(
            self.expect_wire.is_empty(),
            "messages accepted by the API missing from the wire: {:?}",
            self.expect_wire
        );
    }

    /// A vectored write of at most `max` bytes.
    fn write(&mut self, max: usize) {
        let mut slices = [IoSlice::new(&[]); 4];
        let n = self.conn.transmit_vectored(&mut slices);
        let total: usize = slices[..n].iter().map(|s| s.len()).sum();
        if n < slices.len() {
            assert_eq!(
                total,
                self.conn.transmit_len(),
                "vectored slices miss bytes"
            );
        }
        assert!(slices[..n].iter().all(|s| !s.is_empty()), "empty slice");
        let mut out = Vec::new();
        for s in &slices[..n] {
            let k = (max - out.len()).min(s.len());
            out.extend_from_slice(&s[..k]);
        }
        let len_before = self.conn.transmit_len();
        self.conn.advance_transmit(out.len());
        assert_eq!(self.conn.transmit_len(), len_before - out.len());
        self.sent(&out);
    }

    fn sent(&mut self, out: &[u8]) {
        self.taken += out.len();
        if self.wire.deflate().is_none()
            && let Some(p) = self.conn.permessage_deflate()
        {
            assert!(
                self.cfg.deflate.is_some(),
                "deflate without a configuration"
            );
            self.wire.set_deflate(SenderDeflate {
                window_bits: p.local_max_window_bits,
                no_context_takeover: p.local_no_context_takeover,
            });
        }
        self.wire.feed(out);
        if self.handshake && self.wire.in_frames() {
            match self.role {
                Role::Client => assert_eq!(
                    self.wire.extensions.is_some(),
                    self.cfg.deflate.is_some(),
                    "client offer: {:?}",
                    self.wire.extensions
                ),
                _ if self.wire.status == Some(101) => assert_eq!(
                    self.wire.extensions.is_some(),
                    self.conn.permessage_deflate().is_some(),
                    "server answer: {:?}",
                    self.wire.extensions
                ),
                _ => {}
            }
        }
        while let Some(m) = self.wire.messages.pop_front() {
            let expected = self.expect_wire.pop_front();
            assert_eq!(
                Some(&m),
                expected.as_ref(),
                "wire message differs from the API's"
            );
            self.in_flight.push_back(m);
        }
        self.outbox.extend_from_slice(out);
    }

    fn can_send_data(&self) -> bool {
        self.conn.state() == State::Open
    }

    fn check_usage(&self, r: &Result<(), UsageError>, ok: bool, what: &str) {
        match r {
            Ok(()) => assert!(ok, "{what} succeeded (now {:?})", self.conn.state()),
            Err(e) => {
                assert!(!ok, "{what} failed (now {:?}): {e}", self.conn.state());
                if self.conn.is_closed() && !matches!(what, "accept" | "reject") {
                    assert_eq!(*e, UsageError::Closed);
                }
            }
        }
    }

    /// Invariants after an operation.
    fn check(&mut self) {
        let state = self.conn.state();
        assert!(
            rank(state) >= rank(self.prev_state),
            "state went back from {:?} to {state:?}",
            self.prev_state
        );
        match self.role {
            Role::Client => assert!(!matches!(
                state,
                State::AwaitingRequest | State::AwaitingDecision
            )),
            _ => assert!(!matches!(
                state,
                State::AwaitingResponse | State::ClosingRemote
            )),
        }
        if !self.lazy_events {
            assert_eq!(
                state == State::Closed,
                self.events.closed.is_some(),
                "Closed state and Closed event disagree"
            );
            // With the event queue drained, only the state or unwritten
            // output (over `max_buffered_bytes`) may stop reading: otherwise
            // a caller that obeys `wants_read` waits forever.
            assert_eq!(
                self.conn.wants_read(),
                !matches!(state, State::Closed | State::AwaitingDecision)
                    && self.conn.transmit_len() <= self.cfg.max_buffered_bytes,
                "wants_read with an empty event queue in {state:?}"
            );
        }
        let t = self.conn.poll_timeout();
        match state {
            State::Open => assert_eq!(t, None, "timer armed while open"),
            State::Closed => {
                assert_eq!(t, None, "timer armed while closed");
                assert!(!self.conn.wants_read());
                let q = self.queued_total();
                let at_close = *self.queued_at_close.get_or_insert(q);
                assert_eq!(q, at_close, "bytes queued after Closed");
            }
            State::ClosingLocal | State::ClosingRemote => {
                assert!(t.is_some(), "no close timer while closing")
            }
            _ => assert_eq!(
                t.is_some(),
                self.cfg.handshake_timeout.is_some(),
                "handshake timer"
            ),
        }
        // A new deadline is not before the connection's clock: the latest
        // time it was given. (Work deferred to `poll_event`, which takes no
        // time, such as a close frame that arrived behind queued messages,
        // uses that clock, so the deadline may be before the harness's `now`.)
        if t != self.prev_timeout
            && let (Some(t), Some(clock)) = (t, self.clock)
        {
            assert!(t >= clock, "timer armed in the past");
        }
        self.prev_timeout = t;
        self.prev_state = state;
        let mut limit = self
            .cfg
            .max_head_size
            .max(self.cfg.max_frame_size + hookup_proto::frame::MAX_HEADER_LEN);
        if self.lazy_events {
            // A peer error found behind undrained events is deferred until
            // they are drained, with the last read left unprocessed (and
            // `wants_read` false meanwhile).
            limit += self.last_fed;
        }
        if state != State::AwaitingDecision {
            let len = self.conn.read_buf().len();
            assert!(len <= limit, "receive buffer {len} over {limit}");
        }
        assert!(self.conn.read_hint(0) <= self.cfg.max_frame_size);
        assert!(self.conn.read_hint(7) >= 7);
    }
}

struct Harness {
    now: Instant,
    start: Instant,
    ends: Vec<End>,
    pair: bool,
    /// Anything but honest delivery, or a fired timer, or an EOF happened.
    tainted: bool,
}

impl Harness {
    fn new(input: &Input) -> Self {
        let now = Instant::now();
        let c0 = config(&input.configs[0], 0);
        let c1 = config(&input.configs[1], 1);
        let (f0, f1) = (&input.configs[0], &input.configs[1]);
        let (ends, pair) = match input.setup {
            Setup::Server => (
                vec![End::new(Connection::server(c0.clone(), now), c0, f0, true)],
                false,
            ),
            Setup::Client => (
                vec![End::new(
                    Connection::client(&client_request(true), c0.clone(), now),
                    c0,
                    f0,
                    true,
                )],
                false,
            ),
            Setup::OpenServer => (
                vec![End::new(
                    Connection::new_open_with_deflate(
                        Role::Server,
                        c0.clone(),
                        own_params(&c0),
                        now,
                    ),
                    c0,
                    f0,
                    false,
                )],
                false,
            ),
            Setup::OpenClient => (
                vec![End::new(
                    Connection::new_open_with_deflate(
                        Role::Client,
                        c0.clone(),
                        own_params(&c0),
                        now,
                    ),
                    c0,
                    f0,
                    false,
                )],
                false,
            ),
            Setup::Pair => (
                vec![
                    End::new(
                        Connection::client(&client_request(f0.auto_accept), c0.clone(), now),
                        c0,
                        f0,
                        true,
                    ),
                    End::new(Connection::server(c1.clone(), now), c1, f1, true),
                ],
                true,
            ),
            Setup::OpenPair => {
                let (p0, p1) = pair_params(&c0, &c1);
                (
                    vec![
                        End::new(
                            Connection::new_open_with_deflate(Role::Client, c0.clone(), p0, now),
                            c0,
                            f0,
                            false,
                        ),
                        End::new(
                            Connection::new_open_with_deflate(Role::Server, c1.clone(), p1, now),
                            c1,
                            f1,
                            false,
                        ),
                    ],
                    true,
                )
            }
        };
        let mut h = Self {
            now,
            start: now,
            ends,
            pair,
            tainted: false,
        };
        for j in 0..h.ends.len() {
            h.after(j);
        }
        h
    }

    /// The drain order after an input or command, then the checks.
    fn after(&mut self, j: usize) {
        let e = &mut self.ends[j];
        if !e.lazy_events {
            e.drain_events();
        }
        if !e.lazy_writes {
            e.flush();
        }
        e.check();
        self.compare_received(j);
    }

    /// Pair, honest wire: what `j` received is what its peer sent.
    fn compare_received(&mut self, j: usize) {
        let got = std::mem::take(&mut self.ends[j].received);
        if !self.pair || self.ends[j].tainted_input {
            return;
        }
        let peer = &mut self.ends[1 - j];
        for m in got {
            let sent = peer.in_flight.pop_front();
            assert_eq!(
                Some(&m),
                sent.as_ref(),
                "received message differs from the sent one"
            );
        }
    }

    fn step(&mut self, step: Step) {
        let j = if self.pair { usize::from(step.side) } else { 0 };
        let now = self.now;
        let e = &mut self.ends[j];
        // (live bytes before, allowed growth) while a compressed frame is
        // processed.
        let mut mem_check = None;
        match step.op {
            Op::Input(data) => {
                if e.input(now, &data) {
                    e.tainted_input = true;
                    self.tainted = true;
                }
            }
            Op::Frame {
                opcode,
                fin,
                flags,
                split,
                mut payload,
            } => {
                let opcode = [
                    OpCode::Continuation,
                    OpCode::Text,
                    OpCode::Binary,
                    OpCode::Close,
                    OpCode::Ping,
                    OpCode::Pong,
                ][usize::from(opcode % 6)];
                let mut fin = fin;
                if opcode.is_control() && flags & 8 == 0 {
                    payload.truncate(125);
                    fin = true;
                }
                if flags & 4 != 0 {
                    payload = String::from_utf8_lossy(&payload).into_owned().into_bytes();
                }
                let masked = (e.role == Role::Server) != (flags & 1 != 0);
                let key = [split, flags, 0x5A, split ^ 0xA5];
                let header = FrameHeader {
                    fin,
                    rsv: if flags & 2 != 0 { (flags >> 4) & 7 } else { 0 },
                    opcode,
                    mask: masked.then_some(key),
                    payload_len: payload.len() as u64,
                };
                let mut bytes = Vec::new();
                header.encode(&mut bytes);
                let start = bytes.len();
                bytes.extend_from_slice(&payload);
                if masked {
                    hookup_proto::mask::apply_mask(&mut bytes[start..], key, 0);
                }
                let cut = usize::from(split) % (bytes.len() + 1);
                if e.input(now, &bytes[..cut]) {
                    e.tainted_input = true;
                    self.tainted = true;
                    e.input(now, &bytes[cut..]);
                }
            }
            Op::Compressed {
                opcode,
                fin,
                rsv,
                level,
                finish,
                trailer,
                split,
                repeat,
                data,
            } => {
                let opcode =
                    [OpCode::Continuation, OpCode::Text, OpCode::Binary][usize::from(opcode % 3)];
                let times = if data.is_empty() {
                    1
                } else {
                    (usize::from(repeat) + 1).min(MAX_PLAIN / data.len()).max(1)
                };
                let mut payload = deflated(&data, times, u32::from(level % 10), finish);
                if trailer && !finish {
                    payload.extend_from_slice(&hookup_fuzz::TRAILER);
                }
                let masked = e.role == Role::Server;
                let key = [split, rsv, 0xC3, level];
                let header = FrameHeader {
                    fin,
                    rsv: (rsv ^ 0b100) & 7,
                    opcode,
                    mask: masked.then_some(key),
                    payload_len: payload.len() as u64,
                };
                let mut bytes = Vec::new();
                header.encode(&mut bytes);
                let start = bytes.len();
                bytes.extend_from_slice(&payload);
                drop(payload);
                if masked {
                    hookup_proto::mask::apply_mask(&mut bytes[start..], key, 0);
                }
                let cut = usize::from(split) % (bytes.len() + 1);
                let allowed = MEM_SLACK
                    + 4 * (e.cfg.max_message_size + e.cfg.max_frame_size)
                    + 4 * bytes.len();
                mem_check = Some((reset_peak(), allowed));
                if e.input(now, &bytes[..cut]) {
                    e.tainted_input = true;
                    self.tainted = true;
                    e.input(now, &bytes[cut..]);
                }
            }
            Op::Handshake {
                protocol,
                extensions,
            } => {
                let ext = extensions.filter(|x| !x.contains(['\r', '\n']));
                let bytes = match e.role {
                    Role::Server => {
                        let mut r = client_request(protocol);
                        if let Some(x) = &ext {
                            r = r.clone().header("Sec-WebSocket-Extensions", x).unwrap_or(r);
                        }
                        let c = Connection::client(&r, Config::default(), now);
                        let mut out = Vec::new();
                        let mut c = c;
                        c.poll_transmit(&mut out);
                        out
                    }
                    _ => {
                        let mut s = format!(
                            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                             Connection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n"
                        );
                        if protocol {
                            s.push_str("Sec-WebSocket-Protocol: superchat\r\n");
                        }
                        if let Some(x) = &ext {
                            s.push_str(&format!("Sec-WebSocket-Extensions: {x}\r\n"));
                        }
                        s.push_str("\r\n");
                        s.into_bytes()
                    }
                };
                if e.input(now, &bytes) {
                    e.tainted_input = true;
                    self.tainted = true;
                }
            }
            Op::SendText(s) => {
                let ok = e.can_send_data() && e.frag_out.is_none();
                let r = e.conn.send_text(&s);
                e.check_usage(&r, ok, "send_text");
                if r.is_ok() {
                    e.expect_wire.push_back(Message::text(s));
                }
            }
            Op::SendBinary(b) => {
                let ok = e.can_send_data() && e.frag_out.is_none();
                let r = e.conn.send_binary(&b);
                e.check_usage(&r, ok, "send_binary");
                if r.is_ok() {
                    e.expect_wire.push_back(Message::binary(b));
                }
            }
            Op::Send { text, data } => {
                let ok = e.can_send_data() && e.frag_out.is_none();
                let m = if text {
                    Message::text(String::from_utf8_lossy(&data).into_owned())
                } else {
                    Message::binary(data)
                };
                let r = e.conn.send(m.clone());
                e.check_usage(&r, ok, "send");
                if r.is_ok() {
                    e.expect_wire.push_back(m);
                }
            }
            Op::SendFragment { text, data, fin } => {
                let ok = e.can_send_data();
                let kind = match (&e.frag_out, text) {
                    (Some((k, _)), _) => *k,
                    (None, true) => MessageKind::Text,
                    (None, false) => MessageKind::Binary,
                };
                let data = if kind == MessageKind::Text {
                    String::from_utf8_lossy(&data).into_owned().into_bytes()
                } else {
                    data
                };
                // The kind given for a continuation is ignored: pass the other one.
                let arg = if text {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                let r = e.conn.send_fragment(arg, &data, fin);
                e.check_usage(&r, ok, "send_fragment");
                if r.is_ok() {
                    let (_, buf) = e.frag_out.get_or_insert_with(|| (kind, Vec::new()));
                    buf.extend_from_slice(&data);
                    if fin {
                        let (kind, buf) = e.frag_out.take().unwrap();
                        e.expect_wire.push_back(match kind {
                            MessageKind::Text => Message::text(String::from_utf8(buf).unwrap()),
                            _ => Message::binary(buf),
                        });
                    }
                }
            }
            Op::Ping(p) => {
                let ok = e.can_send_data() && p.len() <= 125;
                let r = e.conn.send_ping(now, &p);
                e.tick(now);
                e.check_usage(&r, ok, "send_ping");
            }
            Op::Pong(p) => {
                let ok = e.can_send_data() && p.len() <= 125;
                let r = e.conn.send_pong(&p);
                e.check_usage(&r, ok, "send_pong");
            }
            Op::Close { code, reason } => {
                const VALID: [u16; 6] = [1000, 1001, 1003, 1008, 3000, 4999];
                let code = if code & 0x8000 == 0 {
                    VALID[usize::from(code) % VALID.len()]
                } else {
                    code & 0x7FFF
                };
                let code = CloseCode(code);
                let ok = e.can_send_data() && code.is_valid_on_wire() && reason.len() <= 123;
                let r = e.conn.close(now, code, &reason);
                e.check_usage(&r, ok, "close");
                if r.is_ok() {
                    e.tick(now);
                    assert_eq!(e.conn.state(), State::ClosingLocal);
                    assert_eq!(e.conn.poll_timeout(), Some(now + e.cfg.close_timeout));
                }
            }
            Op::Sleep(ms) => self.now += Duration::from_millis(ms.into()),
            Op::Advance(ms) => {
                self.advance(Duration::from_millis(ms.into()));
                return;
            }
            Op::TimeoutNow => {
                let due = e.conn.poll_timeout().is_some_and(|t| t <= now);
                let state = e.conn.state();
                e.conn.handle_timeout(now);
                e.tick(now);
                if due {
                    self.tainted = true;
                    let t = e.conn.poll_timeout();
                    assert!(t.is_none_or(|t| t > now), "a timer is still due");
                } else {
                    assert_eq!(e.conn.state(), state, "handle_timeout before the deadline");
                }
            }
            Op::Eof => {
                if !e.conn.is_closed() {
                    self.tainted = true;
                }
                e.conn.handle_eof(now);
                e.tick(now);
                assert!(e.conn.is_closed());
            }
            Op::Accept { protocol } => {
                let req = e.pending.as_ref();
                let chosen = req
                    .filter(|_| protocol)
                    .and_then(|r| r.subprotocols().first().cloned());
                let deciding = e.conn.state() == State::AwaitingDecision;
                // `None`: the request is still in the (lazily drained) queue.
                let websocket = req.map(Request::is_websocket);
                let mut a = Accept::new();
                if let Some(p) = chosen {
                    a = a.subprotocol(p);
                }
                let r = e.conn.accept(a);
                match websocket {
                    Some(ws) => e.check_usage(&r, deciding && ws, "accept"),
                    None if !deciding => e.check_usage(&r, false, "accept"),
                    None => {}
                }
                if r.is_ok() {
                    e.pending = None;
                }
            }
            Op::Reject { status, body } => {
                let status = StatusCode::from_u16(200 + status % 400).unwrap();
                let ok = e.conn.state() == State::AwaitingDecision;
                let r = e.conn.reject(status, &HeaderMap::new(), &body);
                e.check_usage(&r, ok, "reject");
                if r.is_ok() {
                    e.pending = None;
                    assert!(e.conn.is_closed());
                    // The client sees an HTTP error: not an honest-wire failure.
                    self.tainted = true;
                }
            }
            Op::Write { max } => e.write(usize::from(max)),
            Op::Flush => e.flush(),
            Op::PollEvents => e.drain_events(),
            Op::Deliver { max, corrupt } => {
                if !self.pair {
                    e.outbox.clear();
                } else {
                    self.deliver(j, max.map(usize::from), corrupt);
                }
            }
        }
        for k in 0..self.ends.len() {
            self.after(k);
        }
        if let Some((before, allowed)) = mem_check {
            let grown = PEAK.load(Ordering::Relaxed).saturating_sub(before);
            assert!(
                grown <= allowed,
                "heap grew by {grown} bytes (allowed {allowed}) for one compressed frame"
            );
        }
    }

    /// Forwards queued bytes from `j` to its peer (if the peer reads).
    fn deliver(&mut self, j: usize, max: Option<usize>, corrupt: Option<(u16, u8)>) {
        let now = self.now;
        let n = max.unwrap_or(usize::MAX).min(self.ends[j].outbox.len());
        if n == 0 || !self.ends[1 - j].conn.wants_read() {
            return;
        }
        let mut bytes: Vec<u8> = self.ends[j].outbox.drain(..n).collect();
        if let Some((pos, x)) = corrupt
            && x != 0
        {
            let pos = usize::from(pos) % bytes.len();
            bytes[pos] ^= x;
            self.ends[1 - j].tainted_input = true;
            self.tainted = true;
        }
        self.ends[1 - j].input(now, &bytes);
    }

    /// Moves the clock on by `d`, firing due timers in deadline order.
    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        for _ in 0..8 {
            let next = (0..self.ends.len())
                .filter_map(|j| self.ends[j].conn.poll_timeout().map(|t| (t, j)))
                .filter(|&(t, _)| t <= target)
                .min();
            let Some((t, j)) = next else {
                break;
            };
            self.now = self.now.max(t);
            self.ends[j].conn.handle_timeout(self.now);
            let now = self.now;
            self.ends[j].tick(now);
            self.tainted = true;
            let after = self.ends[j].conn.poll_timeout();
            assert!(
                after.is_none_or(|a| a > self.now),
                "timer still due after handle_timeout"
            );
            for k in 0..self.ends.len() {
                self.after(k);
            }
        }
        self.now = self.now.max(target);
        for k in 0..self.ends.len() {
            self.after(k);
        }
    }

    /// Drains everything and, for a pair, delivers until quiet.
    fn settle(&mut self) {
        for e in &mut self.ends {
            e.drain_events();
            e.flush();
        }
        for j in 0..self.ends.len() {
            self.ends[j].check();
            self.compare_received(j);
        }
        if !self.pair {
            return;
        }
        for _ in 0..16 {
            let mut moved = false;
            for j in 0..2 {
                if !self.ends[j].outbox.is_empty() && self.ends[1 - j].conn.wants_read() {
                    self.deliver(j, None, None);
                    moved = true;
                }
                for k in 0..2 {
                    let e = &mut self.ends[k];
                    e.drain_events();
                    e.flush();
                    e.check();
                    self.compare_received(k);
                }
            }
            if !moved {
                break;
            }
        }
        assert!(self.now >= self.start);
        if self.tainted {
            return;
        }
        // Honest wire, no timer fired, no EOF: only size limits or a small
        // head limit can fail a connection.
        let mut limit_hit = false;
        for e in &self.ends {
            let Some(closed) = &e.events.closed else {
                continue;
            };
            match &closed.error {
                None => {}
                Some(Error::Protocol(
                    ProtocolError::FrameTooLarge { .. } | ProtocolError::MessageTooLarge { .. },
                ))
                | Some(Error::Handshake(
                    HandshakeError::HeaderTooLarge { .. } | HandshakeError::Status(431),
                )) => limit_hit = true,
                Some(other) => panic!("{:?} failed on an honest wire: {other}", e.role),
            }
        }
        // Ends that both sent a close frame finish cleanly: the server
        // closes, the client waits for the server's EOF.
        if !limit_hit && self.ends.iter().all(|e| e.wire.close_sent) {
            let server = &self.ends[1];
            let closed = server.events.closed.as_ref().expect("server not closed");
            assert!(closed.clean, "unclean close on an honest wire: {closed:?}");
            let client = &self.ends[0];
            assert!(matches!(
                client.conn.state(),
                State::ClosingRemote | State::Closed
            ));
        }
    }
}

fuzz_target!(|input: Input| {
    let mut h = Harness::new(&input);
    for step in input.steps {
        h.step(step);
    }
    h.settle();
});
