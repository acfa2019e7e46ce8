//! Fault tests of reliable sessions over real sockets: the `hookup` binary
//! runs as child processes (`serve --reliable --sink`, `connect
//! --reliable`), and the tests break what is between and around them — a
//! proxy that resets connections mid-stream, SIGKILLed servers and
//! clients, damaged journals, and a hand-written client sending envelopes
//! no correct peer sends. Each test checks the sink file against the
//! guarantees of PROTOCOL.md §8 and prints its figures (run with
//! `--nocapture` to see them). The tests that draw cut points take a fresh
//! seed each run and print it; `HOOKUP_FAULTS_SEED` replays one.
//!
//! Every wait is bounded; children are SIGKILLed when a test ends, also on
//! failure. Nothing asserts on durations.

#[allow(unreachable_pub)]
#[path = "faults/proxy.rs"]
mod proxy;
#[allow(unreachable_pub)]
#[path = "faults/rawws.rs"]
mod rawws;
#[allow(unreachable_pub)]
#[path = "faults/support.rs"]
mod support;

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use hookup_proto::Message;
use hookup_proto::reliable::Journal;

use proxy::{Fate, Proxy};
use rawws::{Ending, OP_CLOSE, OP_TEXT, RawWs, ack, data, hello, hello_with};
use support::{
    Scratch, check_boundary, connect, free_port, local, numbered, runs, seed, serve, serve_with,
    sink_count, sink_lines, sink_numbers, wait_sink_quiet, wait_until,
};

/// Longest a client may take to finish in these tests (its own `--wait` is 40 s).
const CLIENT_LIMIT: Duration = Duration::from_secs(50);

/// DATA flags.
const TEXT: u8 = 0x01;
const ACK_NOW: u8 = 0x02;

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

/// Sessions a client reported as new (WELCOME without the resumed flag).
fn new_sessions(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.starts_with("connected to") && !l.contains("resumed"))
        .count()
}

/// The number of the highest `msg N` line among a journal's live messages.
fn journal_highest(path: &std::path::Path) -> u64 {
    let bytes = std::fs::read(path).expect("read journal");
    let recovered = Journal::recover(&bytes).expect("valid journal").journal;
    recovered
        .live()
        .filter_map(|(_, m)| m.as_text()?.strip_prefix("msg ")?.parse().ok())
        .max()
        .expect("a live `msg N` line in the journal")
}

/// Live messages left in a journal file.
fn journal_live(path: &std::path::Path) -> usize {
    let bytes = std::fs::read(path).expect("read journal");
    Journal::recover(&bytes)
        .expect("valid journal")
        .journal
        .len()
}

// ------------------------------------------------------------------ 1. cuts

/// A proxy resets the first connections, then each later one with
/// probability 1/2 (up to a cap), after a seeded, log-uniform number of
/// bytes in 200 B ..= 64 KiB — in the HTTP handshake, the greeting or deep
/// in the stream. Every line arrives exactly once and in order; the
/// client exits 0.
#[test]
fn proxy_cuts_lose_and_repeat_nothing() {
    const N: u64 = 3000;
    const FIRST_CUT: usize = 16;
    const MAX_CUTS: usize = 40;
    let seed = seed("cuts");
    let scratch = Scratch::new("cuts");
    let sink = scratch.path("sink.txt");
    let port = free_port();
    let _server = serve(&scratch, port, &sink, "cuts");
    let mut rng = support::Rng::new(seed);
    let mut planned = 0;
    let proxy = Proxy::start(local(port), move |i| {
        if i < FIRST_CUT || (planned < MAX_CUTS && rng.unit() < 0.5) {
            planned += 1;
            Fate::Cut(rng.log_uniform(200, 64 << 10))
        } else {
            Fate::Pass
        }
    });

    let mut client = connect(&scratch, proxy.port, &[], "cuts", true);
    let mut stdin = client.take_stdin();
    // Input stays open until every line arrived: the client reports its
    // sessions meanwhile.
    let (end_tx, end_rx) = mpsc::channel::<()>();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(numbered(1, N).as_bytes());
        let _ = end_rx.recv_timeout(Duration::from_secs(40));
    });
    wait_until(CLIENT_LIMIT, "the last line in the sink", || {
        sink_lines(&sink).last().map(String::as_str) == Some(&format!("msg {N}"))
    });
    let _ = end_tx.send(());
    let status = client.wait(CLIENT_LIMIT);
    let _ = feeder.join();
    let err = client.stderr_text();
    assert!(
        status.success(),
        "client failed ({status}):\n{}",
        client.stderr_tail()
    );
    assert!(err.contains("all messages acknowledged"), "{err}");

    let nums = sink_numbers(&sink);
    assert_eq!(
        runs(&nums),
        [(1, N)],
        "sink is not msg 1..={N} once each in order ({} lines)",
        nums.len()
    );
    // Every planned cut happened, except maybe on the last connection (the
    // client finished before its budget ran out).
    assert!(
        proxy.cuts() + 1 >= FIRST_CUT.min(proxy.connections()),
        "the proxy cut too little to test anything"
    );
    // Cuts after the greeting were resumed, not started over.
    let resumed = count(&err, "(session resumed)");
    assert!(resumed >= 1, "no session was resumed:\n{err}");
    assert_eq!(new_sessions(&err), 1, "the session was lost:\n{err}");
    eprintln!(
        "cuts: seed {seed:#x}, N {N}, {} connections through the proxy, {} cut, \
         {resumed} resumes, {} reconnect attempts",
        proxy.connections(),
        proxy.cuts(),
        count(&err, "reconnecting (attempt"),
    );
}

// ------------------------------------------------------- 2. server restart

/// What one server-restart run left: the sink's numbers, how many lines the
/// first server had written when it was killed, and the client's stderr.
struct RestartRun {
    nums: Vec<u64>,
    split: usize,
    err: String,
}

const RESTART_N: u64 = 3000;

/// Streams `RESTART_N` paced lines through `hookup connect --reliable
/// --reconnect forever`; SIGKILLs the server (started with `extra` flags)
/// once a third of them are in the sink, calls `after_kill`, and restarts it
/// on the same port, sink and flags. Returns once the last line arrived and
/// the client exited successfully.
fn server_restart_run(name: &str, extra: &[&str], after_kill: impl FnOnce()) -> RestartRun {
    const BATCH: u64 = 50;
    let scratch = Scratch::new(name);
    let sink = scratch.path("sink.txt");
    let port = free_port();
    let mut server = serve_with(&scratch, port, &sink, "first", extra);
    let mut client = connect(&scratch, port, &["--reconnect", "forever"], "restart", true);

    // Paced input, so the kill lands mid-stream; the last third waits for
    // the kill, so the client cannot be done before it. Input stays open
    // until every line arrived: the client reports its sessions meanwhile.
    let mut stdin = client.take_stdin();
    let (killed_tx, killed_rx) = mpsc::channel::<()>();
    let (end_tx, end_rx) = mpsc::channel::<()>();
    let feeder = std::thread::spawn(move || {
        let mut waited = false;
        let mut i = 1;
        while i <= RESTART_N {
            let last = (i + BATCH - 1).min(RESTART_N);
            if !waited && last > 2 * RESTART_N / 3 {
                waited = true;
                let _ = killed_rx.recv_timeout(Duration::from_secs(40));
            }
            if stdin.write_all(numbered(i, last).as_bytes()).is_err() {
                return;
            }
            i = last + 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = end_rx.recv_timeout(Duration::from_secs(40));
    });

    wait_until(
        Duration::from_secs(30),
        "a third of the lines in the sink",
        || sink_count(&sink) as u64 >= RESTART_N / 3,
    );
    server.kill();
    // The server is dead: the sink no longer changes.
    let split = sink_count(&sink);
    after_kill();
    let holder = support::PortHolder::hold(port);
    let _ = killed_tx.send(());
    // Let the client meet the dead server a few times.
    std::thread::sleep(Duration::from_millis(300));
    drop(holder);
    let _server2 = serve_with(&scratch, port, &sink, "second", extra);

    wait_until(CLIENT_LIMIT, "the last line in the sink", || {
        sink_lines(&sink).last().map(String::as_str) == Some(&format!("msg {RESTART_N}"))
    });
    let _ = end_tx.send(());
    let status = client.wait(CLIENT_LIMIT);
    let _ = feeder.join();
    let err = client.stderr_text();
    assert!(
        status.success(),
        "client failed ({status}):\n{}",
        client.stderr_tail()
    );
    RestartRun {
        nums: sink_numbers(&sink),
        split,
        err,
    }
}

/// The server is SIGKILLed once a third of the lines are in the sink and
/// restarted on the same port and sink. The client (reconnect forever)
/// gets WELCOME(new) and sends its outbox again: every line arrives; lines
/// repeat only at the restart boundary (PROTOCOL.md §8), and few of them.
#[test]
fn server_sigkill_and_restart_mid_stream() {
    let RestartRun { nums, split, err } = server_restart_run("restart", &[], || {});
    let b = check_boundary(&nums, split);
    assert_eq!(b.last, RESTART_N, "not every line arrived");
    assert!(
        b.a as usize == split,
        "first run wrote {split} lines, up to {}",
        b.a
    );
    // What repeats is what the server's application had taken but the
    // client had not seen acknowledged: the server writes an ACK within
    // `ack_every` (32) messages of its application taking them (PROTOCOL.md
    // §8), so at most 32, another 32 if the kill's reset swallowed the last
    // ACK on its way, and the message in hand.
    const ACK_EVERY: u64 = 32;
    assert!(
        b.duplicates <= 2 * ACK_EVERY + 1,
        "{} lines delivered twice at the restart (PROTOCOL.md §8 allows {})",
        b.duplicates,
        2 * ACK_EVERY + 1
    );
    // The restarted server did not know the session: WELCOME(new).
    assert_eq!(new_sessions(&err), 2, "{err}");
    eprintln!(
        "restart: N {RESTART_N}, killed after {split} lines, second run from msg {}, \
         {} duplicates, {} failed reconnect attempts",
        b.b,
        b.duplicates,
        count(&err, "reconnecting (attempt"),
    );
}

/// As above, but the server keeps its sessions in `--journal-dir`: the
/// restarted server loads the client's session from it, the client resumes
/// it (WELCOME resumed, not new), and the lines the first server had taken
/// are dropped as duplicates. Every line arrives exactly once and in order
/// — except the one window PROTOCOL.md §8 names: a line the server's
/// application had taken (written to the sink) whose delivered-count record
/// was not yet in the journal when it was killed arrives again (at most one
/// line here: the echo server asks for the next message right after writing
/// one, and that records it).
#[test]
fn server_sigkill_with_journal_dir_resumes_without_duplicates() {
    let dir = std::env::temp_dir().join(format!(
        "hookup-faults-sessions-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.display().to_string();
    let extra = ["--journal-dir", dir_arg.as_str()];
    let RestartRun { nums, split, err } = server_restart_run("restart-journal", &extra, || {
        // Session files only: a kill during a compaction leaves its
        // `.compact` file behind (the restarted server discards it, the
        // original is intact).
        let files = std::fs::read_dir(&dir).map_or(0, |d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "hkj"))
            })
            .count()
        });
        assert_eq!(files, 1, "one session file expected in {dir_arg}");
    });
    let _ = std::fs::remove_dir_all(&dir);
    let b = check_boundary(&nums, split);
    assert_eq!(b.last, RESTART_N, "not every line arrived");
    assert!(
        b.duplicates <= 1,
        "{} lines delivered twice across the server restart",
        b.duplicates
    );
    // The restarted server had the session from its journal.
    assert_eq!(new_sessions(&err), 1, "the session was not resumed:\n{err}");
    assert!(err.contains("(session resumed)"), "{err}");
    eprintln!(
        "restart with journal: N {RESTART_N}, killed after {split} lines, second run from \
         msg {}, {} duplicates, {} failed reconnect attempts",
        b.b,
        b.duplicates,
        count(&err, "reconnecting (attempt"),
    );
}

// ------------------------------------------------------ 2b. session expiry

/// The connection is cut mid-stream and the client cannot come back before
/// its parked session expired (`--session-ttl 1s`): the server answers
/// WELCOME(new) and the client sends its whole outbox again. Nothing is
/// lost; lines repeat only at that boundary.
#[test]
fn expired_session_starts_over_without_loss() {
    const N: u64 = 2000;
    let scratch = Scratch::new("expiry");
    let sink = scratch.path("sink.txt");
    let port = free_port();
    let server = serve_with(&scratch, port, &sink, "expiry", &["--session-ttl", "1s"]);
    let open = Arc::new(AtomicBool::new(false));
    let gate = open.clone();
    let proxy = Proxy::start(local(port), move |i| match i {
        0 => Fate::Cut(24 << 10),
        _ if gate.load(Ordering::SeqCst) => Fate::Pass,
        _ => Fate::Refuse,
    });
    let mut client = connect(&scratch, proxy.port, &[], "expiry", true);
    let mut stdin = client.take_stdin();
    // Input stays open until every line arrived: the client reports its
    // sessions meanwhile.
    let (end_tx, end_rx) = mpsc::channel::<()>();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(numbered(1, N).as_bytes());
        let _ = end_rx.recv_timeout(Duration::from_secs(40));
    });
    wait_until(Duration::from_secs(30), "the cut", || proxy.cuts() == 1);
    // The server notices the reset at once; its reaper runs every second
    // and logs the session it drops.
    let split = wait_sink_quiet(&sink, Duration::from_millis(200), Duration::from_secs(10));
    wait_until(
        Duration::from_secs(20),
        "the parked session to expire",
        || server.stderr_text().contains("session(s) expired"),
    );
    open.store(true, Ordering::SeqCst);

    wait_until(CLIENT_LIMIT, "the last line in the sink", || {
        sink_lines(&sink).last().map(String::as_str) == Some(&format!("msg {N}"))
    });
    let _ = end_tx.send(());
    let status = client.wait(CLIENT_LIMIT);
    let _ = feeder.join();
    let err = client.stderr_text();
    assert!(
        status.success(),
        "client failed ({status}):\n{}",
        client.stderr_tail()
    );
    let nums = sink_numbers(&sink);
    let b = check_boundary(&nums, split);
    assert_eq!(b.last, N, "not every line arrived");
    // The session had expired: WELCOME(new), not a resume.
    assert_eq!(new_sessions(&err), 2, "{err}");
    assert!(!err.contains("(session resumed)"), "{err}");
    eprintln!(
        "expiry: N {N}, cut after {split} lines, the new session from msg {}, {} duplicates, \
         {} connections refused",
        b.b,
        b.duplicates,
        proxy.connections() - 2,
    );
}

// ----------------------------------------------------- 3. client + journal

/// A client with a journal gets all N lines at once and is SIGKILLed while
/// a proxy holds its connection frozen mid-stream (so it cannot finish
/// first). A new `hookup connect --journal` with empty input resumes the
/// session kept in the journal and sends what was not acknowledged: the
/// server drops what it already had, so every line arrives exactly once and
/// in order; the journal ends empty.
#[test]
fn client_sigkill_then_journal_replays() {
    const N: u64 = 3000;
    let seed = seed("journal");
    let scratch = Scratch::new("journal");
    let sink = scratch.path("sink.txt");
    let journal = scratch.path("client.journal");
    let journal_arg = journal.display().to_string();
    let port = free_port();
    let _server = serve(&scratch, port, &sink, "journal");
    let mut rng = support::Rng::new(seed);
    let freeze_at = 16_384 + (rng.next_u64() % 32_768) as usize;
    let proxy = Proxy::start(local(port), move |i| {
        if i == 0 {
            Fate::Freeze(freeze_at)
        } else {
            Fate::Pass
        }
    });

    let mut client = connect(
        &scratch,
        proxy.port,
        &["--journal", &journal_arg],
        "first",
        true,
    );
    let mut stdin = client.take_stdin();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(numbered(1, N).as_bytes());
    });
    wait_until(Duration::from_secs(30), "the proxy to freeze", || {
        proxy.frozen() == 1
    });
    let before = wait_sink_quiet(&sink, Duration::from_millis(300), Duration::from_secs(20));
    assert!(
        before > 0 && (before as u64) < N,
        "{before} lines before the kill"
    );
    assert!(
        client.try_status().is_none(),
        "the client ended through a frozen proxy:\n{}",
        client.stderr_tail()
    );
    client.kill();
    let _ = feeder.join();
    proxy.cut_all();
    let split = wait_sink_quiet(&sink, Duration::from_millis(200), Duration::from_secs(10));
    let live = journal_live(&journal);
    assert!(live > 0, "nothing left in the journal");
    // The highest line the first client accepted: the journal holds every
    // accepted line not yet acknowledged, so its last one is the last line
    // of the whole run (the client read stdin only up to there).
    let highest = journal_highest(&journal);

    let mut again = connect(&scratch, port, &["--journal", &journal_arg], "again", false);
    let status = again.wait(CLIENT_LIMIT);
    assert!(
        status.success(),
        "restarted client failed ({status}):\n{}",
        again.stderr_tail()
    );

    let nums = sink_numbers(&sink);
    // Everything the journal held arrived: the sink is msg 1..=highest,
    // each once and in order — no line missing, none repeated.
    assert_eq!(
        runs(&nums),
        [(1, highest)],
        "sink is not msg 1..={highest} once each in order ({} lines, {before} before the kill, \
         {live} live in the journal)",
        nums.len()
    );
    assert!(highest >= before as u64, "the journal ends before the sink");
    assert_eq!(journal_live(&journal), 0, "journal not emptied");
    eprintln!(
        "journal: seed {seed:#x}, N {N}, frozen after {freeze_at} B, {before} lines before the kill, \
         {live} live in the journal up to msg {highest}, {} resent after the restart",
        highest - split as u64
    );
}

/// A journal file that is not a journal: a clear error and a non-zero
/// exit, no panic, and the file left as it was.
#[test]
fn garbage_journal_is_refused() {
    let scratch = Scratch::new("garbage");
    let journal = scratch.path("garbage.journal");
    let garbage = b"this is not a journal\n\x00\xff\x13".repeat(20);
    std::fs::write(&journal, &garbage).unwrap();
    let port = free_port();
    let mut client = connect(
        &scratch,
        port,
        &[
            "--journal",
            &journal.display().to_string(),
            "--reconnect",
            "never",
        ],
        "garbage",
        false,
    );
    let status = client.wait(Duration::from_secs(20));
    let err = client.stderr_text();
    assert!(!status.success(), "accepted a garbage journal: {err}");
    assert!(err.contains("not a hookup journal"), "unclear error: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(std::fs::read(&journal).unwrap(), garbage, "file changed");
}

/// A journal whose last record is torn (the process died while appending
/// it): the tail is cut off with a warning and the live messages before it
/// are delivered.
#[test]
fn torn_journal_tail_is_recovered() {
    let scratch = Scratch::new("torn");
    let sink = scratch.path("sink.txt");
    let path = scratch.path("torn.journal");
    let mut j = Journal::new();
    let mut file = Journal::header().to_vec();
    let ids: Vec<u64> = (1..=12)
        .map(|i| {
            j.add(&Message::text(format!("torn {i}")), &mut file)
                .expect("ids left")
        })
        .collect();
    for id in &ids[..3] {
        j.done(*id, &mut file);
    }
    let mut last = Vec::new();
    j.add(&Message::text("torn 13 (never complete)"), &mut last);
    file.extend_from_slice(&last[..last.len() / 2]);
    std::fs::write(&path, &file).unwrap();

    let port = free_port();
    let _server = serve(&scratch, port, &sink, "torn");
    let mut client = connect(
        &scratch,
        port,
        &["--journal", &path.display().to_string()],
        "torn",
        false,
    );
    let status = client.wait(CLIENT_LIMIT);
    let err = client.stderr_text();
    assert!(status.success(), "client failed ({status}):\n{err}");
    assert!(err.contains("torn or corrupt tail"), "no warning: {err}");
    let want: Vec<String> = (4..=12).map(|i| format!("torn {i}")).collect();
    assert_eq!(sink_lines(&sink), want);
    assert_eq!(journal_live(&path), 0);
}

/// No server at all: when the client gives up (`--reconnect 2`) or its
/// `--wait` for acknowledgements runs out, it exits non-zero and counts the
/// lines that were not acknowledged.
#[test]
fn unreachable_server_is_a_failure_with_a_count() {
    let scratch = Scratch::new("unreachable");
    let port = free_port();
    for (tag, extra) in [
        ("gave-up", ["--reconnect", "2"]),
        ("wait", ["--wait", "1s"]),
    ] {
        let mut client = connect(&scratch, port, &extra, tag, true);
        let mut stdin = client.take_stdin();
        stdin.write_all(numbered(1, 3).as_bytes()).unwrap();
        drop(stdin);
        let status = client.wait(CLIENT_LIMIT);
        let err = client.stderr_text();
        assert!(
            !status.success(),
            "{tag}: exit 0 though nothing was delivered:\n{err}"
        );
        assert!(
            err.contains("3 messages were not acknowledged"),
            "{tag}: wrong or missing count:\n{err}"
        );
    }
}

// ----------------------------------------------------------- 4. bad input

/// Envelopes no correct client sends: each closes that connection with
/// 1002; the server keeps serving.
#[test]
fn bad_envelopes_close_with_1002_and_the_server_lives_on() {
    let scratch = Scratch::new("raw");
    let sink = scratch.path("sink.txt");
    let port = free_port();
    let mut server = serve(&scratch, port, &sink, "raw");

    type Case = (&'static str, fn(&mut RawWs));
    let cases: [Case; 10] = [
        ("unknown envelope type", |ws| ws.send_binary(&[0x7f, 1, 2])),
        ("truncated HELLO", |ws| {
            ws.send_binary(&[0x01, 0x01, 0x05, b'a'])
        }),
        ("HELLO with a trailing byte", |ws| {
            let mut h = hello(b"", 0);
            h.push(0);
            ws.send_binary(&h);
        }),
        ("HELLO of version 3", |ws| {
            let mut h = hello(b"", 0);
            h[1] = 3;
            ws.send_binary(&h);
        }),
        ("a text message", |ws| ws.send_frame(OP_TEXT, b"hello")),
        ("DATA before HELLO", |ws| {
            ws.send_binary(&data(TEXT, 1, b"msg early"))
        }),
        ("ACK for a never-sent sequence", |ws| {
            ws.hello(b"", 0);
            ws.send_binary(&ack(5));
        }),
        ("DATA with unknown flags", |ws| {
            ws.hello(b"", 0);
            ws.send_binary(&data(0x80 | TEXT, 1, b"msg flags"));
        }),
        ("a second HELLO", |ws| {
            ws.hello(b"", 0);
            ws.send_binary(&hello(b"", 0));
        }),
        ("DATA gap", |ws| {
            ws.hello(b"", 0);
            ws.send_binary(&data(TEXT | ACK_NOW, 1, b"gap 1"));
            ws.send_binary(&data(TEXT | ACK_NOW, 3, b"gap 3"));
        }),
    ];
    for (what, case) in cases {
        let mut ws = RawWs::connect(port);
        case(&mut ws);
        let (ending, _) = ws.until_close();
        match ending {
            Ending::Close(1002, reason) => assert!(!reason.is_empty(), "{what}: no reason"),
            other => panic!("{what}: ended with {other:?}, not a 1002 close"),
        }
        assert!(
            server.try_status().is_none(),
            "server died after {what}:\n{}",
            server.stderr_tail()
        );
    }
    // Still serving sessions.
    let w = RawWs::connect(port).hello(b"", 0);
    assert!(!w.resumed && !w.id.is_empty());
    // The message before the gap was delivered (once); nothing after it.
    assert_eq!(sink_lines(&sink), ["gap 1"]);
}

/// HELLO naming a session the server never had: WELCOME(new) with a fresh
/// id. Then the session resumes across a reconnect: the server replays its
/// unacknowledged echo, and a repeated DATA is acknowledged but not
/// delivered again.
#[test]
fn unknown_session_gets_a_new_one_and_resume_works() {
    let scratch = Scratch::new("resume");
    let sink = scratch.path("sink.txt");
    let port = free_port();
    let server = serve(&scratch, port, &sink, "resume");

    let mut ws = RawWs::connect(port);
    let w = ws.hello(b"no-such-session", 7);
    assert!(!w.resumed, "resumed a session that never existed");
    assert_ne!(w.id, b"no-such-session");
    assert!((1..=64).contains(&w.id.len()));
    assert_eq!(w.received, 0);
    let key = w.key.expect("WELCOME(new) carries the resume key");
    let id = w.id;

    ws.send_binary(&data(TEXT | ACK_NOW, 1, b"resume 1"));
    // The ACK (and the echo, DATA 1, which we leave unacknowledged).
    let mut got_ack = false;
    let mut echo = false;
    while !(got_ack && echo) {
        let m = ws.recv_data();
        match m[0] {
            0x04 => {
                assert_eq!(m, ack(1));
                got_ack = true;
            }
            0x03 => {
                assert_eq!(&m[2..10], &1u64.to_be_bytes());
                assert_eq!(&m[10..], b"resume 1");
                echo = true;
            }
            t => panic!("unexpected envelope type {t:#x}"),
        }
    }
    // The network fails (a close with 1000 would end the session).
    drop(ws);
    // Narrows the race with the server noticing (it answers a HELLO that
    // comes first with 4013, and the loop below retries).
    std::thread::sleep(Duration::from_millis(100));

    // Resume; retried while the server still holds the id (4013).
    let mut attempts = 0;
    let (mut ws, w) = loop {
        attempts += 1;
        let mut ws = RawWs::connect(port);
        ws.send_binary(&hello_with(&id, 0, Some(&key)));
        match ws.recv() {
            Some((0x2, m)) => break (ws, rawws::parse_welcome(&m)),
            Some((OP_CLOSE, p)) if p.starts_with(&4013u16.to_be_bytes()) && attempts < 100 => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => panic!(
                "resume answered {other:?} (attempt {attempts}); server:\n{}",
                server.stderr_tail()
            ),
        }
    };
    assert!(w.resumed && w.id == id && w.received == 1, "{w:?}");
    // The unacknowledged echo comes again, with the same number.
    assert_eq!(ws.recv_data(), data(TEXT, 1, b"resume 1"));
    ws.send_binary(&ack(1));
    // A repeat is acknowledged at once, not delivered.
    ws.send_binary(&data(TEXT, 1, b"resume 1"));
    assert_eq!(ws.recv_data(), ack(1));
    ws.send_binary(&data(TEXT | ACK_NOW, 2, b"resume 2"));
    let mut acked = false;
    while !acked {
        acked = ws.recv_data() == ack(2);
    }
    assert_eq!(sink_lines(&sink), ["resume 1", "resume 2"]);
}

/// PROTOCOL.md §3: a HELLO that proves ownership (the resume key) of a
/// session attached to another live connection is refused at once with
/// 4013; the live one goes on.
#[test]
fn busy_session_is_refused_with_4013() {
    let scratch = Scratch::new("busy");
    let sink = scratch.path("sink.txt");
    let port = free_port();
    let _server = serve(&scratch, port, &sink, "busy");

    let mut live = RawWs::connect(port);
    let w = live.hello(b"", 0);
    let mut second = RawWs::connect(port);
    second.send_binary(&hello_with(&w.id, 0, w.key.as_ref()));
    let (ending, _) = second.until_close();
    assert!(
        matches!(ending, Ending::Close(4013, _)),
        "a HELLO for a busy session ended with {ending:?}"
    );
    live.send_binary(&data(TEXT | ACK_NOW, 1, b"busy 1"));
    let mut acked = false;
    while !acked {
        acked = live.recv_data() == ack(1);
    }
    assert_eq!(sink_lines(&sink), ["busy 1"]);
}

/// Issue #14: a session cannot be taken over by its id. A second client
/// that presents the owner's session id without its resume key (none, or
/// a wrong one) gets WELCOME(new) with another id — not 4013, not the
/// owner's unacknowledged messages — and what it sends is its own; the
/// owner's connection goes on and its messages arrive.
#[test]
fn a_session_id_without_its_key_gets_a_new_session() {
    let scratch = Scratch::new("thief");
    let sink = scratch.path("sink.txt");
    let port = free_port();
    let mut server = serve(&scratch, port, &sink, "thief");

    let mut owner = RawWs::connect(port);
    let w = owner.hello(b"", 0);
    assert!(!w.resumed && w.key.is_some(), "{w:?}");
    // The owner's message; its echo stays unacknowledged in the session.
    owner.send_binary(&data(TEXT | ACK_NOW, 1, b"owner 1"));
    let (mut acked, mut echoed) = (false, false);
    while !(acked && echoed) {
        let m = owner.recv_data();
        acked |= m == ack(1);
        echoed |= m == data(TEXT, 1, b"owner 1");
    }
    let wrong = [0x5A; 32];
    for (n, proof) in [None, Some(&wrong)].into_iter().enumerate() {
        let mut thief = RawWs::connect(port);
        let t = thief.hello_with(&w.id, 0, proof);
        assert!(!t.resumed, "the thief resumed the owner's session: {t:?}");
        assert_ne!(t.id, w.id, "the thief got the owner's id");
        assert!(t.key.is_some() && t.key != w.key);
        assert_eq!(t.received, 0);
        // Whatever the thief is sent now is its own: the ACK and echo of
        // its message, and nothing of the owner's before them.
        let mine = format!("thief {n}");
        thief.send_binary(&data(TEXT | ACK_NOW, 1, mine.as_bytes()));
        let (mut acked, mut echoed) = (false, false);
        while !(acked && echoed) {
            let m = thief.recv_data();
            if m == ack(1) {
                acked = true;
            } else if m == data(TEXT, 1, mine.as_bytes()) {
                echoed = true;
            } else {
                panic!("the thief got {m:?}");
            }
        }
    }
    // The owner's connection goes on.
    owner.send_binary(&data(TEXT | ACK_NOW, 2, b"owner 2"));
    let mut acked = false;
    while !acked {
        let m = owner.recv_data();
        assert!(m[0] == 0x03 || m[0] == 0x04, "owner got {m:?}");
        acked = m == ack(2);
    }
    let mut lines = sink_lines(&sink);
    lines.sort();
    assert_eq!(lines, ["owner 1", "owner 2", "thief 0", "thief 1"]);
    assert!(
        server.try_status().is_none(),
        "the server died:\n{}",
        server.stderr_tail()
    );
}
