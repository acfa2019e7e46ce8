//! The reliability layer (`hookup_proto::reliable`) under a deterministic
//! simulation: a client session and a server (handshake, `Session::server`,
//! `SessionStore`) joined by a seeded lossy network on a fake clock — see
//! `reliable_sim/harness.rs` — plus targeted scenarios and the journal format.

#[path = "reliable_sim/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use harness::{Bad, Knobs, SideConfig, Sim, sim_config, small_outbox, ws_frame};
use hookup_sim::Rng as SimRng;
use proptest::prelude::*;

use hookup_proto::reliable::{
    Action, DeliveryOutcome, DropReason, Journal, JournalError, MessageId, Overflow, Reconnect,
    ResumeKey, SUBPROTOCOL, SendError, Session, SessionConfig, SessionError, SessionEvent,
    SessionState, SessionStore, StoreConfig, wire,
};
use hookup_proto::{Accept, ClientRequest, Config, Connection, Event, Message, Role};

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn big_store() -> StoreConfig {
    let mut s = StoreConfig::default();
    s.ttl = Duration::from_secs(24 * 3600);
    s
}

#[derive(Clone, Debug)]
struct Params {
    seed: u64,
    client_msgs: usize,
    server_msgs: usize,
    cuts: bool,
    refuse: bool,
    silent: bool,
    inject: bool,
    small_outbox: bool,
    drop_oldest: bool,
    small_window: bool,
}

fn params() -> impl Strategy<Value = Params> {
    (
        any::<u64>(),
        0usize..40,
        0usize..40,
        prop::bool::weighted(0.85),
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.25),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                seed,
                client_msgs,
                server_msgs,
                cuts,
                refuse,
                silent,
                inject,
                small_outbox,
                drop_oldest,
                small_window,
            )| Params {
                seed,
                client_msgs,
                server_msgs,
                cuts,
                refuse,
                silent,
                inject,
                small_outbox,
                drop_oldest,
                small_window,
            },
        )
}

fn build(p: &Params, restarts: bool) -> Sim {
    let mut rng = SimRng::new(p.seed);
    let mut ccfg = sim_config(&mut rng);
    let mut scfg = sim_config(&mut rng);
    if p.small_outbox {
        small_outbox(&mut ccfg, &mut rng, p.drop_oldest);
        small_outbox(&mut scfg, &mut rng, p.drop_oldest);
    }
    if p.small_window {
        ccfg.write_window = rng.range(1, 4096) as usize;
        scfg.write_window = rng.range(1, 4096) as usize;
    }
    let lat_lo = rng.range(1, 30);
    let active_for = rng.ms(2000, 60_000);
    let knobs = Knobs {
        latency_ms: (lat_lo, lat_lo + rng.range(0, 60)),
        chunking: rng.chance(0.8),
        cut_mean: p.cuts.then(|| rng.ms(500, 6000)),
        restart_mean: restarts.then(|| rng.ms(2000, 15_000)),
        down_max: rng.ms(0, 4000),
        refuse_p: if p.refuse { 0.3 } else { 0.0 },
        silent_p: if p.silent { 0.5 } else { 0.0 },
        inject_mean: p.inject.then(|| rng.ms(1000, 8000)),
        active_for,
        send_mean: active_for / (p.client_msgs.max(p.server_msgs) as u32 + 1),
        vectored: rng.chance(0.3),
        // From its own stream: the other draws stay what they were.
        abandon_p: if p.cuts && SimRng::new(p.seed ^ 0x5EED).chance(0.3) {
            0.05
        } else {
            0.0
        },
        ..Knobs::default()
    };
    let mut sim = Sim::new(rng.next_u64(), knobs, ccfg, scfg, big_store());
    sim.start(p.client_msgs, p.server_msgs);
    sim
}

proptest! {
    // PROPTEST_CASES=n runs more (a soak); the default keeps the file fast.
    #![proptest_config(ProptestConfig { cases: cases(128), ..ProptestConfig::default() })]

    /// (a)–(c), (e)–(h): without server restarts every message is delivered
    /// exactly once and in order (or reported dropped by the overflow
    /// policy), every send gets exactly one outcome, `Acked` implies
    /// delivered, bounds hold, dead links are noticed in time, backoff
    /// stays in bounds, injected garbage costs a reconnect and nothing else.
    #[test]
    fn exactly_once_through_cuts_refusals_and_garbage(p in params()) {
        let mut sim = build(&p, false);
        sim.heal_and_shutdown();
        sim.finish_checks();
    }

    /// (d): server restarts lose the store; the client starts a new
    /// session and resends what was not acknowledged: at-least-once, in
    /// order, duplicates only of unacknowledged messages, nothing lost.
    #[test]
    fn at_least_once_through_server_restarts(p in params()) {
        let mut sim = build(&p, true);
        sim.heal_and_shutdown();
        sim.finish_checks();
    }
}

/// Replays one case: `SIM_CASE=seed,client_msgs,server_msgs,flags` with
/// eight 0/1 flags (cuts refuse silent inject small_outbox drop_oldest
/// small_window restarts), e.g. from a proptest failure:
/// `SIM_CASE=… cargo test -p hookup-proto --test reliable_sim -- --ignored replay_case_from_env`.
#[test]
#[ignore = "a replay tool: needs SIM_CASE naming the case to replay"]
fn replay_case_from_env() {
    let v = std::env::var("SIM_CASE")
        .expect("SIM_CASE=seed,client_msgs,server_msgs,flags names the case to replay");
    let f: Vec<&str> = v.split(',').collect();
    let b = |i: usize| f[3].as_bytes()[i] == b'1';
    let p = Params {
        seed: f[0].parse().expect("seed"),
        client_msgs: f[1].parse().expect("client_msgs"),
        server_msgs: f[2].parse().expect("server_msgs"),
        cuts: b(0),
        refuse: b(1),
        silent: b(2),
        inject: b(3),
        small_outbox: b(4),
        drop_oldest: b(5),
        small_window: b(6),
    };
    let mut sim = build(&p, b(7));
    sim.heal_and_shutdown();
    sim.finish_checks();
}

/// The random runs must actually exercise what they claim to: a fixed
/// sweep of seeds, with counts of the interesting things that happened.
#[test]
fn the_random_runs_cover_the_interesting_cases() {
    #[derive(Default, Debug)]
    struct Cov {
        runs: u32,
        cuts: u32,
        restarts: u32,
        injected: u32,
        injected_errors: u32,
        keepalive: u32,
        busy: u32,
        refused: u32,
        resumed: u32,
        new_after_restart: u32,
        duplicates: u32,
        orphaned: u32,
        full: u32,
        dropped_overflow: u32,
        acked: u32,
        ack_failed: u32,
        written: u32,
        delivered: u32,
        abandoned: u32,
    }
    let mut cov = Cov::default();
    let mut rng = SimRng::new(0xC0FFEE);
    for i in 0..40 {
        let p = Params {
            seed: rng.next_u64(),
            client_msgs: rng.range(5, 40) as usize,
            server_msgs: rng.range(5, 40) as usize,
            cuts: true,
            refuse: rng.chance(0.5),
            silent: rng.chance(0.5),
            inject: rng.chance(0.5),
            small_outbox: rng.chance(0.5),
            drop_oldest: rng.chance(0.5),
            small_window: rng.chance(0.5),
        };
        let mut sim = build(&p, i % 2 == 1);
        sim.heal_and_shutdown();
        sim.finish_checks();
        cov.runs += 1;
        cov.cuts += sim.cuts;
        cov.restarts += sim.restarts;
        cov.injected += sim.injected.len() as u32;
        let errors = sim.client_errors.iter().chain(&sim.server_errors);
        for e in errors {
            match e {
                SessionError::KeepaliveTimeout => cov.keepalive += 1,
                SessionError::Busy => cov.busy += 1,
                SessionError::Transport(_) => cov.refused += 1,
                e if sim.injected.iter().any(|(b, _)| b.matches(e)) => cov.injected_errors += 1,
                _ => {}
            }
        }
        cov.resumed += sim.connected.iter().filter(|(_, r)| *r).count() as u32;
        cov.new_after_restart += sim.connected.iter().skip(1).filter(|(_, r)| !*r).count() as u32;
        cov.orphaned += sim.orphaned as u32;
        cov.abandoned += sim.abandoned;
        cov.full += (sim.ca.full_count + sim.sa.full_count) as u32;
        for m in sim.ca.msgs.iter().chain(&sim.sa.msgs) {
            cov.duplicates += m.delivered.saturating_sub(1);
            cov.delivered += m.delivered;
            match m.outcome {
                Some((DeliveryOutcome::Dropped(DropReason::Overflow), _)) => {
                    cov.dropped_overflow += 1
                }
                Some((DeliveryOutcome::Acked, _)) => cov.acked += 1,
                Some((DeliveryOutcome::AckFailed, _)) => cov.ack_failed += 1,
                Some((DeliveryOutcome::Written, _)) => cov.written += 1,
                _ => {}
            }
        }
    }
    eprintln!("{cov:#?}");
    for (what, n) in [
        ("cuts", cov.cuts),
        ("restarts", cov.restarts),
        ("injections", cov.injected),
        ("errors from injections", cov.injected_errors),
        ("keepalive timeouts", cov.keepalive),
        ("busy refusals", cov.busy),
        ("refused connects", cov.refused),
        ("resumed sessions", cov.resumed),
        ("new sessions after a restart", cov.new_after_restart),
        ("duplicates after restarts", cov.duplicates),
        ("full outboxes", cov.full),
        ("overflow drops", cov.dropped_overflow),
        ("acked", cov.acked),
        ("ack failures", cov.ack_failed),
        ("written", cov.written),
        ("abandoned server sessions", cov.abandoned),
    ] {
        assert!(n > 0, "the sweep never saw any {what}: {cov:#?}");
    }
}

// ------------------------------------------------------------------ targeted

/// Fixed round timers and no chaos; the test drives what happens.
fn quiet_sim(seed: u64, tweak: impl FnOnce(&mut SideConfig, &mut SideConfig, &mut Knobs)) -> Sim {
    let mut rng = SimRng::new(seed);
    let mut ccfg = sim_config(&mut rng);
    let mut scfg = sim_config(&mut rng);
    for c in [&mut ccfg, &mut scfg] {
        c.ping_interval = Some(Duration::from_secs(2));
        c.pong_timeout = Duration::from_secs(1);
        c.backoff_min = Duration::from_millis(100);
        c.backoff_max = Duration::from_secs(2);
        c.connection.handshake_timeout = Some(Duration::from_secs(2));
        c.connection.close_timeout = Duration::from_secs(1);
    }
    let mut knobs = Knobs {
        latency_ms: (10, 20),
        deadline_p: 0.0,
        ..Knobs::default()
    };
    tweak(&mut ccfg, &mut scfg, &mut knobs);
    let mut sim = Sim::new(seed, knobs, ccfg, scfg, big_store());
    sim.start(0, 0);
    sim
}

/// HELLO version 2, without a proof.
fn hello(id: &[u8], received: u64) -> Vec<u8> {
    hello_with(id, received, None)
}

/// HELLO version 2, with the session's resume key as proof.
fn hello_with(id: &[u8], received: u64, proof: Option<&ResumeKey>) -> Vec<u8> {
    let mut h = vec![0x01, 2, id.len() as u8];
    h.extend_from_slice(id);
    h.extend_from_slice(&received.to_be_bytes());
    match proof {
        Some(p) => {
            h.push(32);
            h.extend_from_slice(p.as_bytes());
        }
        None => h.push(0),
    }
    h
}

/// The (opcode, payload) of the unmasked frames in `b` (a server's output
/// after its HTTP response).
fn frames(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while b.len() >= 2 {
        let op = b[0] & 0x0f;
        let (len, h) = match b[1] & 0x7f {
            126 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (usize::from(n), 2),
        };
        out.push((op, b[h..h + len].to_vec()));
        b = &b[h + len..];
    }
    out
}

const REQUEST: &[u8] = b"GET /x HTTP/1.1\r\nHost: sim\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: hookup.v1\r\n\r\n";

/// A server session on an already open connection, fed `input` (frames
/// from a client).
fn server_session(now: Instant, input: &[u8]) -> Session {
    let mut config = SessionConfig::default();
    config.report_releases = true;
    let conn = Connection::new_open(Role::Server, Config::default(), now);
    let mut s = Session::server(conn, config, now);
    s.handle_input(now, input);
    s
}

fn events(s: &mut Session) -> Vec<SessionEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn outcomes(s: &mut Session) -> Vec<(MessageId, DeliveryOutcome)> {
    std::iter::from_fn(|| s.poll_outcome()).collect()
}

/// (1) The HELLO may arrive in the same read as the HTTP request: the
/// frames queued in the connection at `accept` are the session's.
#[test]
fn hello_in_the_same_chunk_as_the_request_is_not_lost() {
    let now = Instant::now();
    let mut input = REQUEST.to_vec();
    input.extend(ws_frame(2, &hello(b"", 0), true));
    let mut conn = Connection::server(Config::default(), now);
    conn.handle_input(now, &input);
    let Some(Event::Request(req)) = conn.poll_event() else {
        panic!("no request")
    };
    assert!(req.subprotocols().iter().any(|p| p == SUBPROTOCOL));
    conn.accept(Accept::new().subprotocol(SUBPROTOCOL)).unwrap();
    let mut s = Session::server(conn, SessionConfig::default(), now);
    let evs = events(&mut s);
    assert!(
        matches!(evs.as_slice(), [SessionEvent::Hello { session, proof: None }] if session.is_empty()),
        "{evs:?}"
    );
    let mut store = SessionStore::new(StoreConfig::default(), [1; 32]);
    let (state, resumed) = store.open(b"", None, now).unwrap();
    let id = state.id().to_vec();
    s.attach(state, resumed);
    let evs = events(&mut s);
    assert!(
        matches!(evs.as_slice(), [SessionEvent::Connected { session, resumed: false }] if *session == id),
        "{evs:?}"
    );
    let mut out = Vec::new();
    s.poll_transmit(&mut out);
    let head_end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(out.starts_with(b"HTTP/1.1 101"));
    let f = frames(&out[head_end..]);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].0, 2);
    assert_eq!(f[0].1[0], 0x02, "WELCOME");
}

/// (f) A link that dies without either side seeing EOF is noticed within
/// ping_interval + pong_timeout (plus the last byte's latency), on both
/// sides; the client then reconnects and resumes.
#[test]
fn keepalive_notices_a_silently_dead_link_in_time() {
    for seed in 0..8u64 {
        let mut sim = quiet_sim(seed, |_, _, _| {});
        sim.establish();
        sim.app_send(false, None);
        sim.app_send(true, None);
        // Somewhere in the ping cycle.
        sim.run_for(Duration::from_millis(3000 + seed * 377));
        let link = sim.client_link().unwrap();
        let (ce, se) = (sim.client_errors.len(), sim.server_errors.len());
        sim.cut(link, [true, true]);
        let bound = Duration::from_secs(3) + Duration::from_millis(21);
        sim.run_until(Duration::from_secs(30), "reconnected", |s| {
            s.client_link().is_some_and(|l| l != link) && s.established()
        });
        let detected = *sim.detections.last().unwrap();
        assert!(detected <= bound, "seed {seed}: noticed after {detected:?}");
        assert!(sim.client_errors[ce..].contains(&SessionError::KeepaliveTimeout));
        assert!(sim.server_errors[se..].contains(&SessionError::KeepaliveTimeout));
        assert!(sim.connected.last().unwrap().1, "resumed");
        sim.heal_and_shutdown();
        sim.finish_checks();
    }
}

/// (g) Full-jitter backoff: each delay within [min, min(max, min·2^(n-1))],
/// the mean follows the cap, and the reconnect happens exactly then.
#[test]
fn backoff_is_bounded_and_grows_exponentially() {
    let (min, max) = (Duration::from_millis(100), Duration::from_millis(6400));
    let attempts = 9usize;
    let runs = 300u64;
    let mut sums = vec![Duration::ZERO; attempts];
    let mut highest = vec![Duration::ZERO; attempts];
    for seed in 0..runs {
        let t0 = Instant::now();
        let mut now = t0;
        let mut cfg = SessionConfig::default();
        let mut conn = Config::default();
        conn.rng_seed = Some(SimRng::new(seed).seed32());
        cfg.backoff_min = min;
        cfg.backoff_max = max;
        let mut c = Session::client(ClientRequest::new("ws://sim/x").unwrap(), cfg, conn, now);
        let mut delays = Vec::new();
        let mut due = None;
        while delays.len() < attempts {
            match c.poll_action() {
                Some(Action::Connect) => {
                    if let Some(d) = due.take() {
                        assert_eq!(now, d, "reconnect not at the backoff delay");
                    }
                    c.handle_connect_failed(now, "refused");
                }
                Some(other) => panic!("{other:?}"),
                None => {
                    now = c.poll_timeout().expect("a reconnect timer");
                    c.handle_timeout(now);
                }
            }
            for ev in events(&mut c) {
                if let SessionEvent::Reconnecting { attempt, delay } = ev {
                    assert_eq!(attempt as usize, delays.len() + 1);
                    let cap = min.saturating_mul(1 << (attempt - 1)).min(max);
                    assert!(delay >= min && delay <= cap, "attempt {attempt}: {delay:?}");
                    due = Some(now + delay);
                    delays.push(delay);
                }
            }
        }
        for (i, d) in delays.into_iter().enumerate() {
            sums[i] += d;
            highest[i] = highest[i].max(d);
        }
    }
    let mut last = Duration::ZERO;
    for (i, sum) in sums.iter().enumerate() {
        let mean = *sum / runs as u32;
        let cap = min.saturating_mul(1 << i).min(max);
        let expect = (min + cap) / 2;
        let tol = expect.mul_f64(0.12);
        assert!(
            mean + tol >= expect && mean <= expect + tol,
            "attempt {}: mean {mean:?}, expected about {expect:?}",
            i + 1
        );
        if cap < max {
            assert!(mean > last, "attempt {}: the mean did not grow", i + 1);
        }
        // Full jitter: the whole range is used.
        assert!(
            highest[i] >= cap.mul_f64(0.9),
            "attempt {}: highest {:?}",
            i + 1,
            highest[i]
        );
        last = mean;
    }
}

/// (g) The attempt count (and so the delay) resets once a session is
/// established again — only then: connecting without a WELCOME (here the
/// server does not select hookup.v1) keeps counting.
#[test]
fn backoff_resets_after_a_session_only() {
    let mut sim = quiet_sim(7, |_, _, _| {});
    sim.establish();
    sim.plain_server = true;
    sim.cut_client_link([false, false]);
    sim.run_until(Duration::from_secs(60), "4 failed attempts", |s| {
        s.reconnects.len() >= 4
    });
    let attempts: Vec<u32> = sim.reconnects.iter().map(|r| r.0).collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
    assert!(sim.client_errors.contains(&SessionError::NotNegotiated));
    sim.plain_server = false;
    let n = sim.connected.len();
    sim.run_until(Duration::from_secs(60), "resumed", |s| {
        s.connected.len() > n && s.established()
    });
    assert!(sim.connected.last().unwrap().1);
    let r = sim.reconnects.len();
    sim.cut_client_link([false, false]);
    sim.run_until(Duration::from_secs(60), "next reconnect", |s| {
        s.reconnects.len() > r
    });
    let (attempt, delay) = sim.reconnects[r];
    assert_eq!(attempt, 1);
    assert_eq!(delay, Duration::from_millis(100));
    sim.heal_and_shutdown();
    sim.finish_checks();
}

/// (g) `AtMost(3)`: three failed attempts, then `GaveUp`; every message
/// without an outcome is reported `Dropped(GaveUp)` (those already
/// `Written` keep that single outcome); the session is final.
#[test]
fn at_most_n_gives_up_after_n_failures_and_reports_drops() {
    let mut sim = quiet_sim(11, |c, _, _| c.reconnect = Reconnect::AtMost(3));
    sim.establish();
    let acked = sim.app_send(false, Some(Duration::from_secs(30)));
    sim.run_until(Duration::from_secs(5), "acked", |s| {
        s.ca.msgs[acked].outcome.is_some()
    });
    sim.cut_client_link([true, true]);
    sim.server_down = true;
    // Written on the dead link: one without a deadline, one with.
    let written = sim.app_send(false, None);
    let in_flight = sim.app_send(false, Some(Duration::from_secs(60)));
    sim.run_until(Duration::from_secs(60), "gave up", |s| s.gave_up);
    // Queued after the link was found dead, never written.
    let attempts: Vec<u32> = sim.reconnects.iter().map(|r| r.0).collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert_eq!(sim.connect_failures, 3);
    let outcome = |k: usize| sim.ca.msgs[k].outcome.map(|o| o.0);
    assert_eq!(outcome(acked), Some(DeliveryOutcome::Acked));
    assert_eq!(outcome(written), Some(DeliveryOutcome::Written));
    assert_eq!(
        outcome(in_flight),
        Some(DeliveryOutcome::Dropped(DropReason::GaveUp))
    );
    let now = sim.now();
    let c = sim.client_mut();
    assert!(c.is_finished());
    assert_eq!(c.unacked(), 0);
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(
        c.send(now, Message::text("late"), None),
        Err(SendError::Closed)
    );
    assert!(c.poll_action().is_none());
    // Messages sent while it was reconnecting, never written.
    let mut c2 = quiet_sim(12, |c, _, _| c.reconnect = Reconnect::Never);
    c2.server_down = true;
    let k = c2.app_send(false, None);
    c2.run_until(Duration::from_secs(10), "gave up", |s| s.gave_up);
    assert_eq!(
        c2.ca.msgs[k].outcome.map(|o| o.0),
        Some(DeliveryOutcome::Dropped(DropReason::GaveUp))
    );
    assert_eq!(c2.connect_failures, 1);
}

/// (e) `Reject` refuses at the bounds; a message larger than the byte bound
/// is `TooLarge`; `DropOldest` drops the oldest unwritten message and
/// reports it, and refuses when everything queued was written.
#[test]
fn overflow_policies() {
    let now = Instant::now();
    let client = |max_msgs: usize, max_bytes: usize, overflow: Overflow| {
        let mut cfg = SessionConfig::default();
        cfg.max_outbox_messages = max_msgs;
        cfg.max_outbox_bytes = max_bytes;
        cfg.overflow = overflow;
        Session::client(
            ClientRequest::new("ws://sim/x").unwrap(),
            cfg,
            Config::default(),
            now,
        )
    };
    let msg = |n: usize| Message::binary(vec![7u8; n]);
    let mut c = client(3, 1000, Overflow::Reject);
    for _ in 0..3 {
        c.send(now, msg(10), None).unwrap();
    }
    assert_eq!(c.send(now, msg(10), None), Err(SendError::Full));
    assert_eq!(c.unacked(), 3);
    let mut c = client(100, 100, Overflow::Reject);
    c.send(now, msg(60), None).unwrap();
    assert_eq!(c.send(now, msg(50), None), Err(SendError::Full));
    assert_eq!(c.send(now, msg(101), None), Err(SendError::TooLarge));
    c.send(now, msg(40), None).unwrap();
    assert_eq!(c.unacked_bytes(), 100);

    let mut c = client(3, 1000, Overflow::DropOldest);
    let first = c.send(now, msg(1), None).unwrap();
    c.send(now, msg(2), None).unwrap();
    c.send(now, msg(3), None).unwrap();
    c.send(now, msg(4), None).unwrap();
    let outs = outcomes(&mut c);
    assert_eq!(
        outs,
        [(first, DeliveryOutcome::Dropped(DropReason::Overflow))],
        "{outs:?}"
    );
    assert_eq!(c.unacked(), 3);
    assert_eq!(c.unacked_bytes(), 9);

    // Everything written (acks cannot come back): DropOldest refuses too.
    let mut sim = quiet_sim(3, |c, _, _| {
        c.max_outbox_messages = 3;
        c.overflow = Overflow::DropOldest;
    });
    sim.establish();
    sim.cut_client_link([true, true]);
    for _ in 0..3 {
        sim.app_send(false, None);
    }
    let now = sim.now();
    assert_eq!(
        sim.client_mut().send(now, msg(1), None),
        Err(SendError::Full)
    );
    sim.heal_and_shutdown();
    sim.finish_checks();
}

/// (e) After a server restart the client renumbers its outbox; messages
/// that were written in the lost session are not "unwritten" again: the
/// drop-oldest policy must not drop them (they had been reported `Written`
/// and would vanish without a trace). A one-byte write window keeps the
/// replay from being written all at once.
#[test]
fn drop_oldest_spares_messages_written_before_a_new_session() {
    let mut sim = quiet_sim(5, |c, _, _| {
        c.max_outbox_messages = 3;
        c.overflow = Overflow::DropOldest;
        c.write_window = 1;
    });
    sim.establish();
    sim.cut_client_link([true, true]);
    for _ in 0..5 {
        sim.app_send(false, None);
    }
    sim.restart(Duration::ZERO);
    sim.heal_and_shutdown();
    sim.finish_checks();
    let delivered: Vec<u32> = sim.ca.msgs.iter().map(|m| m.delivered).collect();
    assert_eq!(delivered, [1, 1, 1, 1, 1]);
}

/// (h) Each kind of garbage, in each direction, costs one reconnect and
/// nothing else: the receiver reports the matching error and everything
/// queued is still delivered exactly once.
#[test]
fn bad_input_costs_a_reconnect_and_nothing_else() {
    for (i, bad) in Bad::ALL.into_iter().enumerate() {
        for to_server in [false, true] {
            let mut sim = quiet_sim(100 + i as u64, |_, _, _| {});
            sim.establish();
            for _ in 0..3 {
                sim.app_send(false, Some(Duration::from_secs(30)));
                sim.app_send(true, None);
            }
            let sessions = sim.connected.len();
            assert!(sim.inject(bad, to_server));
            for _ in 0..3 {
                sim.app_send(false, None);
                sim.app_send(true, Some(Duration::from_secs(30)));
            }
            sim.heal_and_shutdown();
            sim.finish_checks();
            let errors = if to_server {
                &sim.server_errors
            } else {
                &sim.client_errors
            };
            assert!(
                errors.iter().any(|e| bad.matches(e)),
                "{bad:?} to_server={to_server}: {errors:?}"
            );
            assert!(sim.connected.len() > sessions, "{bad:?}: no reconnect");
            assert!(
                sim.connected[sessions..]
                    .iter()
                    .all(|(_, resumed)| *resumed)
            );
        }
    }
}

/// (h) A HELLO for a session the server does not know (here: lost in a
/// restart) gets a new session; the client resends what was not
/// acknowledged.
#[test]
fn unknown_session_id_gets_a_new_session() {
    let mut sim = quiet_sim(21, |_, _, _| {});
    sim.establish();
    let old = sim.client_session.clone();
    sim.cut_client_link([true, true]);
    sim.app_send(false, None);
    sim.restart(Duration::ZERO);
    sim.run_until(Duration::from_secs(30), "new session", |s| {
        s.established() && s.client_session != old
    });
    assert_eq!(sim.server_hellos.last().unwrap(), &old);
    let (new, resumed) = sim.connected.last().unwrap().clone();
    assert!(!resumed);
    assert_ne!(new, old);
    sim.heal_and_shutdown();
    sim.finish_checks();
    assert_eq!(sim.ca.msgs[0].delivered, 1);
}

/// A new session whose WELCOME is lost is orphaned: the client asks again
/// (with the id it had) and gets another one. What the server application
/// sent into the orphan cannot be delivered; it is reported when the
/// session expires (`Written` ones keep their single outcome). Everything
/// else is delivered exactly once.
#[test]
fn orphaned_session_reports_its_messages_when_it_expires() {
    let mut sim = quiet_sim(61, |_, _, _| {});
    sim.cut_loses_all = true;
    // Queued before the client shows up: sent as soon as a session exists.
    let lost_with_deadline = sim.app_send(true, Some(Duration::from_secs(48 * 3600)));
    let lost_written = sim.app_send(true, None);
    sim.run_until(Duration::from_secs(10), "server attached", |s| {
        !s.seen_sessions.is_empty()
    });
    let orphan = sim.server_current.clone();
    assert!(sim.cut_client_link([true, true]), "WELCOME still in flight");
    sim.cut_loses_all = false;
    sim.run_until(Duration::from_secs(30), "another session", |s| {
        s.established()
    });
    assert_ne!(sim.client_session, orphan);
    assert!(!sim.client_knew(&orphan));
    sim.app_send(true, None);
    sim.app_send(false, None);
    sim.heal_and_shutdown();
    sim.finish_checks();
    assert_eq!(sim.orphaned, 2);
    let outcome = |k: usize| sim.sa.msgs[k].outcome.map(|o| o.0);
    assert_eq!(
        outcome(lost_with_deadline),
        Some(DeliveryOutcome::Dropped(DropReason::Expired))
    );
    assert_eq!(outcome(lost_written), Some(DeliveryOutcome::Written));
}

/// An ack deadline passes while the client is disconnected: `AckFailed`
/// is reported exactly at the deadline, not at the next reconnect.
#[test]
fn ack_deadline_fires_while_disconnected() {
    let mut sim = quiet_sim(31, |_, _, _| {});
    sim.establish();
    sim.cut_client_link([true, true]);
    sim.server_down = true;
    let k = sim.app_send(false, Some(Duration::from_millis(5500)));
    sim.run_until(Duration::from_secs(30), "ack failed", |s| {
        s.ca.msgs[k].outcome.is_some()
    });
    let m = &sim.ca.msgs[k];
    let (outcome, at) = m.outcome.unwrap();
    assert_eq!(outcome, DeliveryOutcome::AckFailed);
    assert_eq!(at, m.sent_at.unwrap() + Duration::from_millis(5500));
    assert!(
        !sim.client_mut().is_established(),
        "the deadline fell after the link was found dead"
    );
    sim.heal_and_shutdown();
    sim.finish_checks();
}

/// A client that shuts down closes with 1000 once its own outbox is
/// empty; server messages still in flight are then not delivered (they
/// could not be acknowledged) and the server reports them
/// `Dropped(Shutdown)`.
#[test]
fn client_shutdown_while_server_messages_are_in_flight() {
    let mut sim = quiet_sim(41, |_, _, _| {});
    sim.establish();
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(sim.app_send(true, (i % 2 == 0).then_some(Duration::from_secs(30))));
    }
    let now = sim.now();
    sim.client_mut().shutdown(now);
    sim.drain_client();
    sim.run_until(Duration::from_secs(30), "both finished", |s| {
        s.client_closed && s.server_sessions() == 0
    });
    for (i, k) in ids.into_iter().enumerate() {
        let m = &sim.sa.msgs[k];
        assert_eq!(m.delivered, 0, "delivered after the client closed");
        let want = if i % 2 == 0 {
            DeliveryOutcome::Dropped(DropReason::Shutdown)
        } else {
            DeliveryOutcome::Written
        };
        assert_eq!(m.outcome.map(|o| o.0), Some(want));
    }
    assert_eq!(sim.store.parked(), 0, "released, not parked");
    assert_eq!(sim.store.attached(), 0);
}

/// A client with nothing left to send shuts down at once while it cannot
/// connect (it must not wait for a server that may never come back).
#[test]
fn shutdown_while_disconnected_with_an_empty_outbox() {
    let mut sim = quiet_sim(51, |_, _, _| {});
    sim.server_down = true;
    sim.run_for(Duration::from_secs(2));
    let now = sim.now();
    sim.client_mut().shutdown(now);
    sim.drain_client();
    assert!(sim.client_closed);
    assert!(sim.client_mut().is_finished());
    assert_eq!(sim.client_mut().poll_timeout(), None);
}

/// `abort` is final: a `Connect` queued before it is not handed out (it
/// would revive the session); a transport opened after it is closed; one
/// mid-handshake is closed.
#[test]
fn abort_is_final() {
    let now = Instant::now();
    let new = || {
        Session::client(
            ClientRequest::new("ws://sim/x").unwrap(),
            SessionConfig::default(),
            Config::default(),
            now,
        )
    };
    let mut c = new();
    c.abort(now);
    assert!(c.is_finished());
    assert_eq!(c.poll_action(), None);
    assert!(c.is_finished());
    assert!(matches!(events(&mut c).as_slice(), [SessionEvent::Closed]));

    let mut c = new();
    assert_eq!(c.poll_action(), Some(Action::Connect));
    c.abort(now);
    c.handle_connected(now);
    assert_eq!(c.poll_action(), Some(Action::CloseTransport));
    assert!(c.is_finished());

    let mut c = new();
    assert_eq!(c.poll_action(), Some(Action::Connect));
    c.handle_connected(now);
    c.abort(now);
    assert_eq!(c.poll_action(), Some(Action::CloseTransport));
    assert!(c.is_finished());
}

/// A server session has no outbox before it is attached: `send` refuses
/// instead of queueing into a placeholder that `attach` throws away.
#[test]
fn server_send_before_attach_is_refused() {
    let now = Instant::now();
    let mut s = server_session(now, &[]);
    assert_eq!(
        s.send(now, Message::text("x"), None),
        Err(SendError::Closed)
    );
    s.handle_input(now, &ws_frame(2, &hello(b"", 0), true));
    assert!(matches!(
        events(&mut s).as_slice(),
        [SessionEvent::Hello { .. }]
    ));
    assert_eq!(
        s.send(now, Message::text("x"), None),
        Err(SendError::Closed)
    );
    let mut store = SessionStore::new(StoreConfig::default(), [2; 32]);
    let (state, resumed) = store.open(b"", None, now).unwrap();
    s.attach(state, resumed);
    assert!(s.send(now, Message::text("x"), None).is_ok());
}

/// The connection may end between `Hello` and `attach` (HELLO and EOF in
/// one read): the attached state must come back from `take_state`, else
/// the store keeps the id attached for ever and every later HELLO for it
/// is refused as busy. A late `refuse_busy` must not revive the session.
#[test]
fn attach_after_the_connection_ended_keeps_the_state() {
    let now = Instant::now();
    let mut store = SessionStore::new(StoreConfig::default(), [3; 32]);
    // A session with a message for its client, parked.
    let mut s = server_session(now, &ws_frame(2, &hello(b"", 0), true));
    let _ = events(&mut s);
    let (state, resumed) = store.open(b"", None, now).unwrap();
    let id = state.id().to_vec();
    let key = state.resume_key().expect("a new session's key").clone();
    s.attach(state, resumed);
    let sent = s
        .send(
            now,
            Message::text("for the client"),
            Some(Duration::from_secs(60)),
        )
        .unwrap();
    s.handle_eof(now);
    let _ = events(&mut s);
    store.park(s.take_state().unwrap(), now);
    // The client comes back; the connection ends in the same read.
    let mut s = server_session(now, &ws_frame(2, &hello_with(&id, 0, Some(&key)), true));
    s.handle_eof(now);
    let evs = events(&mut s);
    assert!(
        matches!(evs.first(), Some(SessionEvent::Hello { session, proof: Some(_) }) if *session == id),
        "{evs:?}"
    );
    assert!(matches!(evs.last(), Some(SessionEvent::Closed)), "{evs:?}");
    let (state, resumed) = store.open(&id, Some(&key), now).unwrap();
    assert!(resumed);
    s.attach(state, resumed);
    s.refuse_busy();
    assert!(s.is_finished());
    let state = s.take_state().expect("the state is kept");
    assert_eq!(state.unacked(), 1);
    store.park(state, now);
    assert_eq!((store.parked(), store.attached()), (1, 0));
    // And the next connection resumes it, with the message replayed.
    let mut s = server_session(now, &ws_frame(2, &hello_with(&id, 0, Some(&key)), true));
    let _ = events(&mut s);
    let (state, resumed) = store.open(&id, Some(&key), now).expect("not busy");
    assert!(resumed);
    s.attach(state, resumed);
    let mut out = Vec::new();
    s.poll_transmit(&mut out);
    let f = frames(&out);
    assert_eq!(f[0].1[0], 0x02, "WELCOME");
    assert_eq!(&f[1].1[10..], b"for the client");
    assert!(store.poll_outcome().is_none());
    let _ = sent;
}

/// A client DATA envelope (masked frame), `ack_now` flag as given.
fn data_frame(seq: u64, text: &str, ack_now: bool) -> Vec<u8> {
    let mut d = vec![0x03, 0x01 | if ack_now { 0x02 } else { 0 }];
    d.extend_from_slice(&seq.to_be_bytes());
    d.extend_from_slice(text.as_bytes());
    ws_frame(2, &d, true)
}

/// The ACKs (cumulative sequence numbers) and the WELCOME `received` in a
/// server's output.
fn acks_and_welcome(out: &[u8]) -> (Vec<u64>, Option<u64>) {
    let mut acks = Vec::new();
    let mut welcome = None;
    for (op, p) in frames(out) {
        match (op, p.first()) {
            (2, Some(0x04)) => acks.push(u64::from_be_bytes(p[1..9].try_into().unwrap())),
            (2, Some(0x02)) => {
                welcome = Some(u64::from_be_bytes(p[p.len() - 8..].try_into().unwrap()));
            }
            _ => {}
        }
    }
    (acks, welcome)
}

/// The texts of the `Message` events among `evs`.
fn texts(evs: &[SessionEvent]) -> Vec<String> {
    evs.iter()
        .filter_map(|e| match e {
            SessionEvent::Message(m) => Some(m.as_text().unwrap().to_owned()),
            _ => None,
        })
        .collect()
}

/// A message counts as received only once the application took it from
/// the session: a server session that read N messages of which the
/// application took k before the state was parked (a handler that went
/// away) acknowledges k at most, in ACKs and in its WELCOME on resume, so
/// the client's replay brings the other N - k exactly once, in order.
#[test]
fn messages_read_but_not_taken_are_replayed_after_resume() {
    const N: u64 = 10;
    for k in 0..=N {
        for ack_now in [false, true] {
            let mut now = Instant::now();
            let mut store = SessionStore::new(StoreConfig::default(), [7; 32]);
            let mut s = server_session(now, &ws_frame(2, &hello(b"", 0), true));
            let _ = events(&mut s);
            let (state, resumed) = store.open(b"", None, now).unwrap();
            let id = state.id().to_vec();
            let key = state.resume_key().expect("a new session's key").clone();
            s.attach(state, resumed);
            let _ = events(&mut s);
            let mut out = Vec::new();
            while s.poll_transmit(&mut out) {}
            // N messages in one read; the application takes k of them.
            let input: Vec<u8> = (1..=N)
                .flat_map(|i| data_frame(i, &format!("m{i}"), ack_now))
                .collect();
            s.handle_input(now, &input);
            let mut taken = Vec::new();
            while (taken.len() as u64) < k {
                match s.poll_event() {
                    Some(SessionEvent::Message(m)) => taken.push(m.as_text().unwrap().to_owned()),
                    Some(_) => {}
                    None => panic!("k={k}: only {} messages", taken.len()),
                }
            }
            let want: Vec<String> = (1..=k).map(|i| format!("m{i}")).collect();
            assert_eq!(taken, want);
            // Time passes (the delayed ACK is due), the handler is gone.
            now += Duration::from_secs(1);
            s.handle_timeout(now);
            while s.poll_transmit(&mut out) {}
            let (acks, _) = acks_and_welcome(&out);
            assert!(
                acks.iter().all(|&a| a <= k),
                "k={k} ack_now={ack_now}: acked {acks:?}"
            );
            if ack_now && k > 0 {
                assert_eq!(
                    acks.last(),
                    Some(&k),
                    "ack_now: the taken messages are acked"
                );
            }
            store.park(s.take_state().expect("attached"), now);
            drop(s);

            // The client resumes, having received nothing.
            let mut s = server_session(now, &ws_frame(2, &hello_with(&id, 0, Some(&key)), true));
            let _ = events(&mut s);
            let (state, resumed) = store.open(&id, Some(&key), now).unwrap();
            assert!(resumed);
            s.attach(state, resumed);
            let evs = events(&mut s);
            assert!(
                matches!(
                    evs.as_slice(),
                    [SessionEvent::Connected { resumed: true, .. }]
                ),
                "{evs:?}"
            );
            let mut out = Vec::new();
            while s.poll_transmit(&mut out) {}
            let (_, welcome) = acks_and_welcome(&out);
            assert_eq!(welcome, Some(k), "k={k}: WELCOME received");
            // It replays what the WELCOME did not cover — and, to be sure
            // the session dedups by what it counted, everything once more.
            let replay: Vec<u8> = (k + 1..=N)
                .chain(1..=N)
                .flat_map(|i| data_frame(i, &format!("m{i}"), ack_now))
                .collect();
            s.handle_input(now, &replay);
            let evs = events(&mut s);
            let want: Vec<String> = (k + 1..=N).map(|i| format!("m{i}")).collect();
            assert_eq!(texts(&evs), want, "k={k} ack_now={ack_now}");
            assert!(
                !evs.iter().any(|e| matches!(e, SessionEvent::Error(_))),
                "{evs:?}"
            );
            now += Duration::from_secs(1);
            s.handle_timeout(now);
            let mut out = Vec::new();
            while s.poll_transmit(&mut out) {}
            let (acks, _) = acks_and_welcome(&out);
            if k < N {
                assert_eq!(acks.last(), Some(&N), "k={k}: all acked once taken");
            }
        }
    }
}

/// The payloads of the masked frames in `b` (a client's output after its
/// HTTP request).
fn client_payloads(mut b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while b.len() >= 6 {
        let (len, h) = match b[1] & 0x7f {
            126 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (usize::from(n), 2),
        };
        let key = [b[h], b[h + 1], b[h + 2], b[h + 3]];
        let p = &b[h + 4..h + 4 + len];
        out.push(p.iter().enumerate().map(|(i, x)| x ^ key[i % 4]).collect());
        b = &b[h + 4 + len..];
    }
    out
}

/// Opens a client connection to a new server session, returning the
/// server session and the client's output (after its HTTP request).
fn connect_pair(c: &mut Session, store: &mut SessionStore, now: Instant) -> (Session, Vec<u8>) {
    let (s, from_client, _) = connect_pair_events(c, store, now);
    (s, from_client)
}

/// [`connect_pair`], also returning the server's events (but `Hello`).
fn connect_pair_events(
    c: &mut Session,
    store: &mut SessionStore,
    now: Instant,
) -> (Session, Vec<u8>, Vec<SessionEvent>) {
    // (Past the last transport's `CloseTransport`.)
    while c.poll_action().expect("Connect") != Action::Connect {}
    c.handle_connected(now);
    let mut req = Vec::new();
    while c.poll_transmit(&mut req) {}
    let mut conn = Connection::server(Config::default(), now);
    conn.handle_input(now, &req);
    let Some(Event::Request(_)) = conn.poll_event() else {
        panic!("no request")
    };
    conn.accept(Accept::new().subprotocol(SUBPROTOCOL)).unwrap();
    let mut s = Session::server(conn, SessionConfig::default(), now);
    let mut from_client = Vec::new();
    let mut events = Vec::new();
    // Shuttle until quiet; the client's events stay queued.
    loop {
        let mut b = Vec::new();
        while s.poll_transmit(&mut b) {}
        if !b.is_empty() {
            c.handle_input(now, &b);
        }
        let mut a = Vec::new();
        while c.poll_transmit(&mut a) {}
        if !a.is_empty() {
            from_client.extend_from_slice(&a);
            s.handle_input(now, &a);
        }
        while let Some(e) = s.poll_event() {
            if let SessionEvent::Hello { session, proof } = e {
                let (state, resumed) = store.open(&session, proof.as_ref(), now).unwrap();
                s.attach(state, resumed);
            } else {
                events.push(e);
            }
        }
        if a.is_empty() && b.is_empty() {
            break;
        }
    }
    (s, from_client, events)
}

/// The client side: messages read and still queued when the connection
/// ends are delivered from the queue; the next HELLO reports only what the
/// application took, and the server's replays of the rest are not
/// delivered twice.
#[test]
fn client_hello_reports_only_what_the_application_took() {
    let now = Instant::now();
    let mut store = SessionStore::new(StoreConfig::default(), [9; 32]);
    let request = ClientRequest::new("ws://sim/x").unwrap();
    let mut c = Session::client(request, SessionConfig::default(), Config::default(), now);
    let (mut s, _) = connect_pair(&mut c, &mut store, now);
    let id = s.id().to_vec();
    assert!(c.is_established() && !id.is_empty());
    while let Some(e) = c.poll_event() {
        assert!(!matches!(e, SessionEvent::Message(_)));
    }
    for i in 1..=3 {
        s.send(now, Message::text(format!("x{i}")), None).unwrap();
    }
    let mut b = Vec::new();
    while s.poll_transmit(&mut b) {}
    c.handle_input(now, &b);
    // The connection ends before the application took more than one.
    c.handle_eof(now);
    s.handle_eof(now);
    while s.poll_event().is_some() {}
    store.park(s.take_state().unwrap(), now);
    let mut got = Vec::new();
    while got.is_empty() {
        match c.poll_event() {
            Some(SessionEvent::Message(m)) => got.push(m.as_text().unwrap().to_owned()),
            Some(_) => {}
            None => panic!("no message"),
        }
    }
    // Reconnect: the HELLO says 1.
    let later = now + Duration::from_secs(60);
    c.handle_timeout(later);
    let (mut s, from_client) = connect_pair(&mut c, &mut store, later);
    let hello = client_payloads(&from_client)
        .into_iter()
        .find(|p| p.first() == Some(&0x01))
        .expect("HELLO");
    let Ok(wire::Envelope::Hello {
        received, proof, ..
    }) = wire::Envelope::decode(&hello)
    else {
        panic!("not a HELLO: {hello:?}")
    };
    assert_eq!(received, 1, "HELLO received");
    assert!(proof.is_some(), "HELLO proves the session");
    assert_eq!(s.id(), id.as_slice());
    // The rest comes from the queue, once (the replays are duplicates).
    got.extend(
        std::iter::from_fn(|| c.poll_event()).filter_map(|e| match e {
            SessionEvent::Message(m) => Some(m.as_text().unwrap().to_owned()),
            _ => None,
        }),
    );
    assert_eq!(got, ["x1", "x2", "x3"]);
    // Once taken, they are acknowledged: the server's outbox empties.
    let t = later + Duration::from_secs(1);
    c.handle_timeout(t);
    let mut a = Vec::new();
    while c.poll_transmit(&mut a) {}
    s.handle_input(t, &a);
    assert_eq!(s.unacked(), 0);
}

/// (e) The store keeps at most `max_sessions` and `max_bytes` (the newest
/// sessions never resumed go first, #14: `store_flood.rs` covers the order
/// with resumed ones), reaps after the TTL, fires ack deadlines of parked
/// messages, and reports every message it drops.
#[test]
fn store_bounds_expiry_and_outcomes() {
    let t0 = Instant::now();
    let mut config = StoreConfig::default();
    config.max_sessions = 3;
    config.max_bytes = 1000;
    config.ttl = Duration::from_secs(60);
    let mut store = SessionStore::new(config, [4; 32]);
    // Parks a session holding one message of `size` bytes (with an ack
    // deadline of `deadline`) and one without deadline.
    let park = |store: &mut SessionStore, at: Instant, size: usize, deadline: Duration| {
        let mut s = server_session(at, &ws_frame(2, &hello(b"", 0), true));
        let _ = events(&mut s);
        let (state, resumed) = store.open(b"", None, at).unwrap();
        s.attach(state, resumed);
        let a = s
            .send(at, Message::binary(vec![1u8; size]), Some(deadline))
            .unwrap();
        let b = s.send(at, Message::binary(vec![2u8; 10]), None).unwrap();
        s.handle_eof(at);
        let _ = events(&mut s);
        let state = s.take_state().unwrap();
        let id = state.id().to_vec();
        store.park(state, at);
        assert!(store.parked() <= 3 && store.parked_bytes() <= 1000);
        (id, a, b)
    };
    let sec = Duration::from_secs(1);
    let s1 = park(&mut store, t0, 100, 5 * sec);
    let s2 = park(&mut store, t0 + sec, 100, 100 * sec);
    let s3 = park(&mut store, t0 + 2 * sec, 100, 100 * sec);
    assert_eq!(store.poll_outcome(), None);
    // A fourth session, over the bounds, is the newest never resumed: it
    // is the one evicted (a flood of new sessions pushes out itself, not
    // the sessions parked before it).
    let s4 = park(&mut store, t0 + 3 * sec, 100, 100 * sec);
    assert_eq!(store.parked(), 3);
    assert_eq!(store.expired(), 1);
    assert_eq!(
        store.poll_outcome(),
        Some((
            s4.0.clone(),
            s4.1,
            DeliveryOutcome::Dropped(DropReason::Expired)
        ))
    );
    assert_eq!(
        store.poll_outcome(),
        None,
        "the Written one has its outcome already"
    );
    // Bytes: a big new session goes the same way; the three parked before
    // it stay.
    let s5 = park(&mut store, t0 + 4 * sec, 800, 100 * sec);
    assert!(store.parked_bytes() <= 1000);
    assert_eq!(store.parked(), 3);
    let dropped: Vec<_> = std::iter::from_fn(|| store.poll_outcome()).collect();
    assert_eq!(
        dropped,
        [(
            s5.0.clone(),
            s5.1,
            DeliveryOutcome::Dropped(DropReason::Expired)
        )]
    );
    // s1, s2 and s3 stay parked until the TTL below reaps them.
    let _ = (&s1, &s2, &s3);
    // The ack deadline of a parked message fires on time (the store's
    // timer), then the TTL reaps.
    let mut store2 = SessionStore::new(StoreConfig::default(), [5; 32]);
    let p = park(&mut store2, t0, 10, 5 * sec);
    assert_eq!(store2.poll_timeout(), Some(t0 + 5 * sec));
    store2.handle_timeout(t0 + 5 * sec);
    assert_eq!(
        store2.poll_outcome(),
        Some((p.0.clone(), p.1, DeliveryOutcome::AckFailed))
    );
    assert_eq!(store2.poll_timeout(), Some(t0 + 60 * sec));
    store2.handle_timeout(t0 + 60 * sec);
    assert_eq!(store2.parked(), 0);
    assert_eq!(store2.poll_outcome(), None, "resolved already");
    // TTL on the first store.
    store.handle_timeout(t0 + 200 * sec);
    assert_eq!((store.parked(), store.parked_bytes()), (0, 0));
    let dropped: Vec<_> = std::iter::from_fn(|| store.poll_outcome()).collect();
    assert_eq!(dropped.len(), 3, "s1 (its ack deadline first), s2 and s3");
    assert!(dropped.iter().all(
        |(_, _, o)| *o == DeliveryOutcome::Dropped(DropReason::Expired)
            || *o == DeliveryOutcome::AckFailed
    ));
    let _ = (s1, s2, s3);
    // Releasing reports what is left as dropped (shutdown).
    let mut s = server_session(t0, &ws_frame(2, &hello(b"", 0), true));
    let _ = events(&mut s);
    let (state, resumed) = store.open(b"", None, t0).unwrap();
    s.attach(state, resumed);
    let m = s.send(t0, Message::text("x"), Some(sec)).unwrap();
    s.handle_eof(t0);
    let _ = events(&mut s);
    let state = s.take_state().unwrap();
    let sid = state.id().to_vec();
    store.release(state);
    assert_eq!(
        store.poll_outcome(),
        Some((sid, m, DeliveryOutcome::Dropped(DropReason::Shutdown)))
    );
    assert_eq!(store.attached(), 0);
}

// ------------------------------------------------------------------ journal

#[derive(Clone, Debug)]
enum JOp {
    Add(bool, Vec<u8>),
    Done(usize),
    DoneUnknown(u64),
    Compact,
}

fn jop() -> impl Strategy<Value = JOp> {
    prop_oneof![
        4 => (any::<bool>(), prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(t, p)| JOp::Add(t, p)),
        3 => any::<usize>().prop_map(JOp::Done),
        1 => any::<u64>().prop_map(JOp::DoneUnknown),
        1 => Just(JOp::Compact),
    ]
}

/// The file and, after each whole record, its length and the live set.
struct Written {
    file: Vec<u8>,
    ends: Vec<usize>,
    states: Vec<BTreeMap<u64, Message>>,
}

fn write_journal(ops: &[JOp]) -> (Written, Journal) {
    let mut j = Journal::new();
    let mut w = Written {
        file: Journal::header().to_vec(),
        ends: vec![4],
        states: vec![BTreeMap::new()],
    };
    let mut model = BTreeMap::new();
    let mut ids = Vec::new();
    for op in ops {
        let before = w.file.len();
        match op {
            JOp::Add(text, p) => {
                let m = if *text {
                    Message::text(String::from_utf8_lossy(p).into_owned())
                } else {
                    Message::binary(p.clone())
                };
                let id = j.add(&m, &mut w.file).expect("ids left");
                assert!(model.insert(id, m).is_none(), "id {id} reused");
                ids.push(id);
            }
            JOp::Done(i) => {
                if !ids.is_empty() {
                    let id = ids[i % ids.len()];
                    let live = model.remove(&id).is_some();
                    j.done(id, &mut w.file);
                    assert_eq!(w.file.len() > before, live, "DONE written iff live");
                }
            }
            JOp::DoneUnknown(id) => {
                j.done(id.saturating_add(1 << 40), &mut w.file);
                assert_eq!(w.file.len(), before);
            }
            JOp::Compact => {
                let mut snap = Vec::new();
                j.snapshot(&mut snap);
                w = Written {
                    file: Journal::header().to_vec(),
                    ends: vec![4],
                    states: vec![BTreeMap::new()],
                };
                let mut state = BTreeMap::new();
                let mut pos = 4;
                while pos < snap.len() {
                    let (rec, n) = Journal::decode_record(&snap[pos..]).expect("snapshot record");
                    let hookup_proto::reliable::JournalRecord::Add { id, message } = rec else {
                        panic!("a snapshot holds ADDs only")
                    };
                    state.insert(id, message);
                    pos += n;
                    w.ends.push(pos);
                    w.states.push(state.clone());
                }
                assert_eq!(state, model);
                w.file = snap;
                continue;
            }
        }
        if w.file.len() > before {
            w.ends.push(w.file.len());
            w.states.push(model.clone());
        }
    }
    (w, j)
}

fn live(j: &Journal) -> BTreeMap<u64, Message> {
    j.live().map(|(id, m)| (id, m.clone())).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), ..ProptestConfig::default() })]

    /// (4) Recovery gives the live set the writer had; ids continue after
    /// the recovered ones.
    #[test]
    fn journal_recovers_the_live_set(ops in prop::collection::vec(jop(), 0..50)) {
        let (w, j) = write_journal(&ops);
        let r = Journal::recover(&w.file).unwrap();
        prop_assert_eq!(r.valid_len, w.file.len());
        prop_assert_eq!(r.cut, 0);
        prop_assert_eq!(live(&r.journal), live(&j));
        prop_assert_eq!(&live(&r.journal), w.states.last().unwrap());
        let mut rj = r.journal;
        let next = rj
            .add(&Message::text("next"), &mut Vec::new())
            .expect("ids left");
        prop_assert!(live(&j).keys().all(|id| *id < next));
    }

    /// (4) Any truncation and any single-byte corruption recovers exactly
    /// the records before the damage, without panicking; only damage to
    /// the magic makes the file unusable.
    #[test]
    fn journal_damage_recovers_a_prefix(
        ops in prop::collection::vec(jop(), 0..40),
        picks in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 24),
    ) {
        let (w, _) = write_journal(&ops);
        let len = w.file.len();
        let prefix_at = |at: usize| w.ends.iter().rposition(|e| *e <= at).unwrap_or(0);
        // Truncations: every cut near a record boundary, plus random ones.
        let mut cuts: Vec<usize> = w.ends.iter().flat_map(|e| [e.saturating_sub(1), *e, e + 1]).collect();
        cuts.extend(picks.iter().map(|(i, _)| i.index(len + 1)));
        cuts.extend(0..4);
        for cut in cuts.into_iter().filter(|c| *c <= len) {
            let r = Journal::recover(&w.file[..cut]).unwrap();
            if cut < 4 {
                prop_assert_eq!((r.valid_len, r.cut, r.journal.len()), (0, cut, 0));
                continue;
            }
            let k = prefix_at(cut);
            prop_assert_eq!(r.valid_len, w.ends[k], "cut at {}", cut);
            prop_assert_eq!(r.cut, cut - w.ends[k]);
            prop_assert_eq!(&live(&r.journal), &w.states[k]);
        }
        // Corruptions: one byte changed.
        for (i, x) in &picks {
            let pos = i.index(len);
            let mut bad = w.file.clone();
            bad[pos] ^= x;
            match Journal::recover(&bad) {
                Err(JournalError::NotAJournal) => prop_assert!(pos < 4),
                Err(e) => prop_assert!(false, "unexpected {:?}", e),
                // A changed magic byte that turns `HKJ3` into an older
                // magic (`HKJ1`, `HKJ2`) is read as that version (the record
                // framing is the same): it recovers without a panic, like
                // any file.
                Ok(_) if pos < 4 => prop_assert!(
                    matches!(&bad[..4], b"HKJ1" | b"HKJ2"),
                    "magic {:?} accepted",
                    &bad[..4]
                ),
                Ok(r) => {
                    // The damaged record is the first one ending after `pos`.
                    let k = w.ends.iter().rposition(|e| *e <= pos).unwrap();
                    prop_assert_eq!(r.valid_len, w.ends[k], "byte {} of {}", pos, len);
                    prop_assert_eq!(r.valid_len + r.cut, len);
                    prop_assert_eq!(&live(&r.journal), &w.states[k]);
                }
            }
        }
    }
}

#[test]
fn journal_ids_near_the_top_do_not_overflow() {
    // A record with id u64::MAX (a valid CRC): recovery must not panic, and
    // as no journal writes that id, it is a corrupt tail (taken in, it made
    // the next `add` overflow: found by the reliable_journal fuzz target).
    let mut body = vec![1u8];
    body.extend_from_slice(&u64::MAX.to_le_bytes());
    body.push(0);
    body.extend_from_slice(b"x");
    let mut file = Journal::header().to_vec();
    file.extend_from_slice(&(body.len() as u32).to_le_bytes());
    file.extend_from_slice(&crc32(&body).to_le_bytes());
    file.extend_from_slice(&body);
    let r = Journal::recover(&file).unwrap();
    assert_eq!(r.journal.len(), 0);
    assert_eq!((r.valid_len, r.cut), (4, file.len() - 4));
    let mut j = r.journal;
    assert_eq!(j.add(&Message::text("y"), &mut Vec::new()), Some(1));
}

fn crc32(b: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &x in b {
        crc ^= u32::from(x);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A message that cannot fit in one frame of the peer's (configured like
/// this side) is refused up front: queued, it would close the connection
/// on every replay and block everything behind it for ever. A zero write
/// window still lets messages out one at a time.
#[test]
fn oversized_message_is_refused_and_tiny_windows_progress() {
    let mut sim = quiet_sim(71, |c, s, _| {
        c.connection.max_message_size = 1000;
        s.connection.max_frame_size = 1000;
        c.write_window = 0;
    });
    sim.establish();
    let now = sim.now();
    let big = |n: usize, tag: &str| {
        let mut p = tag.as_bytes().to_vec();
        p.resize(n, b'x');
        Message::binary(p)
    };
    assert_eq!(
        sim.client_mut().send(now, big(991, "c0|"), None),
        Err(SendError::TooLarge)
    );
    sim.app_send_message(false, big(990, "c0|"), None);
    sim.app_send_message(false, big(10, "c1|"), None);
    sim.app_send_message(true, big(990, "s0|"), None);
    let now = sim.now();
    let s = sim.server_session_mut().unwrap();
    assert_eq!(s.send(now, big(991, "s1|"), None), Err(SendError::TooLarge));
    sim.heal_and_shutdown();
    sim.finish_checks();
    assert_eq!(sim.connected.len(), 1, "no reconnects");
}

/// An ack deadline too far away for `Instant` is no panic: it never fires.
#[test]
fn ack_deadline_beyond_instant_never_fires() {
    let now = Instant::now();
    let mut s = server_session(now, &ws_frame(2, &hello(b"", 0), true));
    let mut store = SessionStore::new(big_store(), [1; 32]);
    let (state, resumed) = store.open(b"", None, now).expect("new session");
    s.attach(state, resumed);
    assert!(s.is_established());
    let id = s
        .send(now, Message::text("x"), Some(Duration::MAX))
        .unwrap();
    let outs = outcomes(&mut s);
    assert!(!outs.iter().any(|(d, _)| *d == id), "{outs:?}");
    assert_eq!(s.unacked(), 1);
}

/// `is_write_blocked` tells a sender when a message sent now would wait in
/// the outbox although a connection is up (its output is at the write
/// window); never while disconnected, where messages wait for the next
/// connection anyway. Taking output unblocks, and what waited is written.
#[test]
fn write_blocked_at_the_window_only_while_connected() {
    let now = Instant::now();
    let mut store = SessionStore::new(StoreConfig::default(), [9; 32]);
    let mut cfg = SessionConfig::default();
    cfg.write_window = 4096;
    let mut c = Session::client(
        ClientRequest::new("ws://sim/x").unwrap(),
        cfg,
        Config::default(),
        now,
    );
    assert!(!c.is_write_blocked(), "not connected");
    let first = c.send(now, Message::binary(vec![1u8; 3000]), None).unwrap();
    assert!(!c.is_write_blocked(), "not connected, one queued");
    let (_s, _) = connect_pair(&mut c, &mut store, now);
    assert!(c.is_established());
    assert_eq!(c.poll_outcome(), Some((first, DeliveryOutcome::Written)));
    assert!(!c.is_write_blocked(), "output taken by the pair");
    // 3000 + 10-byte envelope + frame header: under the window.
    let a = c.send(now, Message::binary(vec![2u8; 3000]), None).unwrap();
    assert_eq!(c.poll_outcome(), Some((a, DeliveryOutcome::Written)));
    assert!(!c.is_write_blocked());
    // Past the window: this one is still written (the window is checked
    // before each message), the next waits.
    let b = c.send(now, Message::binary(vec![3u8; 3000]), None).unwrap();
    assert_eq!(c.poll_outcome(), Some((b, DeliveryOutcome::Written)));
    assert!(c.is_write_blocked());
    let waiting = c.send(now, Message::binary(vec![4u8; 10]), None).unwrap();
    assert_eq!(c.poll_outcome(), None, "waits in the outbox");
    assert!(c.is_write_blocked());
    // The transport takes the output: the waiting message is written.
    let mut out = Vec::new();
    while c.poll_transmit(&mut out) {}
    assert_eq!(c.poll_outcome(), Some((waiting, DeliveryOutcome::Written)));
    assert!(!c.is_write_blocked());
    // Disconnected: never blocked, whatever is queued.
    c.handle_eof(now);
    for _ in 0..4 {
        c.send(now, Message::binary(vec![5u8; 3000]), None).unwrap();
        assert!(!c.is_write_blocked());
    }
}

/// A client restored from a journal that lags behind the server (its last
/// ACKED records were lost in the crash: they are written lazily) resumes
/// the session: the server's WELCOME acknowledges the messages the journal
/// still held, so none of them is sent or delivered again, and each gets
/// `Acked`.
#[test]
fn restored_client_whose_journal_lags_behind_the_acks_sends_nothing_twice() {
    let now = Instant::now();
    let mut store = SessionStore::new(StoreConfig::default(), [9; 32]);
    let request = ClientRequest::new("ws://sim/x").unwrap();
    let mut c = Session::client(
        request.clone(),
        SessionConfig::default(),
        Config::default(),
        now,
    );
    let (mut s, _) = connect_pair(&mut c, &mut store, now);
    let id = s.id().to_vec();
    let key = c.resume_key().expect("the client has the key").clone();
    for i in 1..=10 {
        c.send(now, Message::text(format!("m{i}")), None).unwrap();
    }
    let mut a = Vec::new();
    while c.poll_transmit(&mut a) {}
    s.handle_input(now, &a);
    let delivered: Vec<_> = std::iter::from_fn(|| s.poll_event())
        .filter_map(|e| match e {
            SessionEvent::Message(m) => Some(m.as_text().unwrap().to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(delivered.len(), 10);
    // The server acknowledges all ten (the application took them; the
    // delayed ACK)...
    let now = now + Duration::from_millis(50);
    s.handle_timeout(now);
    let mut b = Vec::new();
    while s.poll_transmit(&mut b) {}
    c.handle_input(now, &b);
    assert_eq!(c.unacked(), 0, "acked");
    // ...but the client crashes with a journal that recorded only 3 ACKs:
    // it requeues m4..m10 and restores the session with acked = 3.
    s.handle_eof(now);
    while s.poll_event().is_some() {}
    store.park(s.take_state().unwrap(), now);
    let mut r = Session::client(request, SessionConfig::default(), Config::default(), now);
    let requeued: Vec<_> = (4..=10)
        .map(|i| r.send(now, Message::text(format!("m{i}")), None).unwrap())
        .collect();
    r.restore(&id, &key, 3, 0);
    let (s, from_client, events) = connect_pair_events(&mut r, &mut store, now);
    assert_eq!(s.id(), id.as_slice(), "resumed");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SessionEvent::Connected { resumed: true, .. })),
        "{events:?}"
    );
    // Nothing reached the server's application twice, nor was sent again.
    for e in &events {
        assert!(!matches!(e, SessionEvent::Message(_)), "{e:?}");
    }
    assert!(
        client_payloads(&from_client)
            .iter()
            .all(|p| p.first() != Some(&0x03)),
        "no DATA sent again"
    );
    let outcomes = outcomes(&mut r);
    assert_eq!(
        outcomes,
        requeued
            .iter()
            .map(|&id| (id, DeliveryOutcome::Acked))
            .collect::<Vec<_>>()
    );
    assert_eq!(r.unacked(), 0);
}

/// Shuttles one round of bytes between a client and a server session.
fn shuttle(c: &mut Session, s: &mut Session, now: Instant) {
    for _ in 0..4 {
        let mut a = Vec::new();
        while c.poll_transmit(&mut a) {}
        s.handle_input(now, &a);
        let mut b = Vec::new();
        while s.poll_transmit(&mut b) {}
        c.handle_input(now, &b);
    }
}

/// The client's next connection after its current one ended: past the
/// backoff, to a server session of `store`. Returns the server session, its
/// events and the time.
fn reconnect(
    c: &mut Session,
    store: &mut SessionStore,
    now: Instant,
) -> (Session, Vec<SessionEvent>, Instant) {
    let later = now + Duration::from_secs(60);
    c.handle_timeout(later);
    let (s, _, evs) = connect_pair_events(c, store, later);
    (s, evs, later)
}

fn errors_of(evs: &[SessionEvent]) -> Vec<SessionError> {
    evs.iter()
        .filter_map(|e| match e {
            SessionEvent::Error(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// A server restarted on a journal that lost records contradicts its
/// client: (a) it has fewer messages than the client says it received from
/// it. The resume fails once (`AckForUnsent` at the server), and the next
/// HELLO for that id starts the session over under the same id instead of
/// failing the same way for ever: the client's messages get through.
#[test]
fn a_server_session_the_client_contradicts_starts_over() {
    let now = Instant::now();
    let mut store = SessionStore::new(StoreConfig::default(), [9; 32]);
    let id = b"journal-lost-adds".to_vec();
    let key = ResumeKey::from_bytes([3; 32]);
    // What the server's journal kept: the session, nothing sent.
    let (state, _) = SessionState::restore(id.clone(), key.digest(), 0, 0, []);
    store.park(state, now);
    let request = ClientRequest::new("ws://sim/x").unwrap();
    let mut c = Session::client(request, SessionConfig::default(), Config::default(), now);
    let m = c.send(now, Message::text("hello"), None).unwrap();
    // The client's journal: it had received 5 messages of that session.
    c.restore(&id, &key, 0, 5);
    let (mut s, _, evs) = connect_pair_events(&mut c, &mut store, now);
    assert_eq!(errors_of(&evs), [SessionError::AckForUnsent(5)]);
    shuttle(&mut c, &mut s, now);
    s.handle_eof(now);
    while s.poll_event().is_some() {}
    store.park(s.take_state().unwrap(), now);
    c.handle_eof(now);
    while c.poll_event().is_some() {}
    // Next connection: same id, a new session, the message delivered.
    let (mut s, evs, now) = reconnect(&mut c, &mut store, now);
    assert_eq!(s.id(), id.as_slice());
    assert!(
        evs.iter()
            .any(|e| matches!(e, SessionEvent::Connected { resumed: false, .. })),
        "{evs:?}"
    );
    assert_eq!(texts(&evs), ["hello"]);
    let evs: Vec<_> = std::iter::from_fn(|| c.poll_event()).collect();
    assert!(
        evs.iter().any(|e| matches!(
            e,
            SessionEvent::Connected { resumed: false, session } if *session == id
        )),
        "{evs:?}"
    );
    shuttle(&mut c, &mut s, now + Duration::from_millis(50));
    s.handle_timeout(now + Duration::from_millis(50));
    shuttle(&mut c, &mut s, now + Duration::from_millis(50));
    assert!(outcomes(&mut c).contains(&(m, DeliveryOutcome::Acked)));
}

/// (b) The restarted server's journal counts fewer messages as received
/// than it had acknowledged: its WELCOME says so, the client refuses to
/// resume (`ResumedBehind`) and its next connection starts a new session,
/// sending everything unacknowledged again.
#[test]
fn a_client_refuses_a_server_that_resumes_behind_its_acks() {
    let now = Instant::now();
    let mut store = SessionStore::new(StoreConfig::default(), [9; 32]);
    let request = ClientRequest::new("ws://sim/x").unwrap();
    let mut c = Session::client(request, SessionConfig::default(), Config::default(), now);
    let (mut s, _) = connect_pair(&mut c, &mut store, now);
    let id = s.id().to_vec();
    let digest = c.resume_key().expect("the client has the key").digest();
    for i in 1..=5 {
        c.send(now, Message::text(format!("m{i}")), None).unwrap();
    }
    shuttle(&mut c, &mut s, now);
    while s.poll_event().is_some() {}
    let now = now + Duration::from_millis(50);
    s.handle_timeout(now);
    shuttle(&mut c, &mut s, now);
    assert_eq!(c.unacked(), 0, "all five acknowledged");
    let pending = c.send(now, Message::text("m6"), None).unwrap();
    c.handle_eof(now);
    while c.poll_event().is_some() {}
    // The server restarts on a journal that recorded only 2 as received.
    let mut store = SessionStore::new(StoreConfig::default(), [7; 32]);
    let (state, _) = SessionState::restore(id.clone(), digest, 0, 2, []);
    store.park(state, now);
    let (_s, _, now) = reconnect(&mut c, &mut store, now);
    let evs: Vec<_> = std::iter::from_fn(|| c.poll_event()).collect();
    assert_eq!(
        errors_of(&evs),
        [SessionError::ResumedBehind {
            received: 2,
            acked: 5
        }]
    );
    // The next connection: a new session (another id), m6 delivered.
    c.handle_eof(now);
    while c.poll_event().is_some() {}
    let (mut s, evs, now) = reconnect(&mut c, &mut store, now);
    assert_ne!(s.id(), id.as_slice());
    assert_eq!(texts(&evs), ["m6"]);
    let now = now + Duration::from_millis(50);
    s.handle_timeout(now);
    shuttle(&mut c, &mut s, now);
    assert!(outcomes(&mut c).contains(&(pending, DeliveryOutcome::Written)));
    assert_eq!(c.unacked(), 0, "m6 acknowledged in the new session");
}

/// DATA that asks for an immediate ACK, taken by the application in one
/// burst, is acknowledged by one ACK for the whole burst (not one each),
/// at most `ack_every` messages apart.
#[test]
fn acks_for_a_burst_of_ack_now_data_are_coalesced() {
    for (n, ack_every, want) in [
        (10u64, 32u32, vec![10u64]),
        (1, 32, vec![1]),
        (70, 32, vec![32, 64, 70]),
    ] {
        let now = Instant::now();
        let mut store = SessionStore::new(StoreConfig::default(), [7; 32]);
        let mut config = SessionConfig::default();
        config.ack_every = ack_every;
        let conn = Connection::new_open(Role::Server, Config::default(), now);
        let mut s = Session::server(conn, config, now);
        s.handle_input(now, &ws_frame(2, &hello(b"", 0), true));
        let _ = events(&mut s);
        let (state, resumed) = store.open(b"", None, now).unwrap();
        s.attach(state, resumed);
        let _ = events(&mut s);
        let mut out = Vec::new();
        while s.poll_transmit(&mut out) {}
        let input: Vec<u8> = (1..=n)
            .flat_map(|i| data_frame(i, &format!("m{i}"), true))
            .collect();
        s.handle_input(now, &input);
        assert_eq!(texts(&events(&mut s)).len() as u64, n);
        let mut out = Vec::new();
        while s.poll_transmit(&mut out) {}
        let (acks, _) = acks_and_welcome(&out);
        assert_eq!(acks, want, "n={n} ack_every={ack_every}");
    }
}

/// What a session server wrote: the envelopes of its frames, decoded.
fn server_envelopes(out: &[u8]) -> Vec<String> {
    frames(out)
        .into_iter()
        .filter(|(op, _)| *op == 2)
        .map(|(_, p)| format!("{:?}", wire::Envelope::decode(&p).expect("an envelope")))
        .collect()
}

/// Issue #14: a session is not taken over by its id alone. A HELLO naming
/// a known session without its resume key (no proof, or a wrong one) gets
/// a new session — another id, its own key — whether the owner is
/// connected or parked: never `Busy` (which would tell the id is live),
/// never the owner's messages. The owner's connection goes on, its parked
/// state stays as it was, and the owner still resumes it with its key.
#[test]
fn a_hello_with_a_known_id_but_no_valid_proof_gets_a_new_session() {
    let now = Instant::now();
    let mut store = SessionStore::new(StoreConfig::default(), [11; 32]);
    let request = ClientRequest::new("ws://sim/x").unwrap();
    let mut owner = Session::client(request, SessionConfig::default(), Config::default(), now);
    let (mut s, _) = connect_pair(&mut owner, &mut store, now);
    let id = s.id().to_vec();
    let key = owner.resume_key().expect("WELCOME(new) gave a key").clone();
    // A message for the owner, written but not delivered yet.
    s.send(now, Message::text("secret-1"), None).unwrap();
    let mut held = Vec::new();
    while s.poll_transmit(&mut held) {}
    assert_eq!(s.unacked(), 1);

    let wrong = ResumeKey::from_bytes([0x5A; 32]);
    let thief = |store: &mut SessionStore, proof: Option<&ResumeKey>| {
        let mut t = server_session(now, &ws_frame(2, &hello_with(&id, 0, proof), true));
        let Some(SessionEvent::Hello { session, proof }) = t.poll_event() else {
            panic!("no HELLO")
        };
        assert_eq!(session, id);
        let (state, resumed) = store
            .open(&session, proof.as_ref(), now)
            .expect("not Busy without the key");
        assert!(!resumed);
        assert_ne!(state.id(), id.as_slice(), "another id");
        let new_id = state.id().to_vec();
        t.attach(state, resumed);
        let mut out = Vec::new();
        while t.poll_transmit(&mut out) {}
        let envs = server_envelopes(&out);
        assert_eq!(envs.len(), 1, "a WELCOME and nothing else: {envs:?}");
        assert!(
            envs[0].starts_with("Welcome { resumed: false") && envs[0].contains("key: Some("),
            "{envs:?}"
        );
        assert!(!out.windows(6).any(|w| w == b"secret"));
        t.handle_eof(now);
        while t.poll_event().is_some() {}
        store.release(t.take_state().expect("attached"));
        new_id
    };

    // The owner is connected.
    let a = thief(&mut store, None);
    let b = thief(&mut store, Some(&wrong));
    assert_ne!(a, b);
    assert!(s.is_established());
    owner.handle_input(now, &held);
    shuttle(&mut owner, &mut s, now);
    let evs: Vec<_> = std::iter::from_fn(|| owner.poll_event()).collect();
    assert_eq!(texts(&evs), ["secret-1"]);
    owner.send(now, Message::text("from-owner"), None).unwrap();
    shuttle(&mut owner, &mut s, now);
    let evs: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert_eq!(texts(&evs), ["from-owner"]);

    // The owner is away, its session parked with a message for it.
    s.send(now, Message::text("secret-2"), None).unwrap();
    s.handle_eof(now);
    while s.poll_event().is_some() {}
    store.park(s.take_state().unwrap(), now);
    owner.handle_eof(now);
    while owner.poll_event().is_some() {}
    assert_eq!(store.parked(), 1);
    thief(&mut store, None);
    thief(&mut store, Some(&wrong));
    assert_eq!((store.parked(), store.attached()), (1, 0), "still parked");
    // The owner resumes, with the message.
    let (s, evs, _) = reconnect(&mut owner, &mut store, now);
    assert_eq!(s.id(), id.as_slice());
    assert!(
        evs.iter()
            .any(|e| matches!(e, SessionEvent::Connected { resumed: true, .. })),
        "{evs:?}"
    );
    let evs: Vec<_> = std::iter::from_fn(|| owner.poll_event()).collect();
    assert_eq!(texts(&evs), ["secret-2"]);
    assert_eq!(
        owner.resume_key().map(ResumeKey::as_bytes),
        Some(key.as_bytes())
    );
}

/// A version 1 HELLO (a client of hookup before resume keys) is still
/// served, but can resume nothing: it gets a new session, in the version 1
/// WELCOME layout (no key).
#[test]
fn a_version_1_hello_gets_a_new_session_without_a_key() {
    let now = Instant::now();
    let mut store = SessionStore::new(StoreConfig::default(), [12; 32]);
    let mut s = server_session(now, &ws_frame(2, &hello(b"", 0), true));
    let _ = events(&mut s);
    let (state, resumed) = store.open(b"", None, now).unwrap();
    let id = state.id().to_vec();
    s.attach(state, resumed);
    s.handle_eof(now);
    while s.poll_event().is_some() {}
    store.park(s.take_state().unwrap(), now);
    let mut v1 = vec![0x01, 1, id.len() as u8];
    v1.extend_from_slice(&id);
    v1.extend_from_slice(&0u64.to_be_bytes());
    let mut s = server_session(now, &ws_frame(2, &v1, true));
    let Some(SessionEvent::Hello { session, proof }) = s.poll_event() else {
        panic!("no HELLO")
    };
    assert_eq!((session.as_slice(), proof.is_none()), (id.as_slice(), true));
    let (state, resumed) = store.open(&session, None, now).unwrap();
    assert!(!resumed);
    s.attach(state, resumed);
    let mut out = Vec::new();
    while s.poll_transmit(&mut out) {}
    let envs = server_envelopes(&out);
    assert_eq!(envs.len(), 1);
    assert!(
        envs[0].contains("resumed: false") && envs[0].contains("key: None"),
        "{envs:?}"
    );
    assert_eq!(store.parked(), 1, "the old session stays parked");
}
