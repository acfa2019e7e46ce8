//! Issue #14 over real sockets: `hookup serve --reliable --journal-dir`
//! runs as a child process and is fed sessions by a hand-written
//! `hookup.v1` client (`faults/rawws.rs`). A flood of new sessions must
//! neither push out sessions established before it nor hold a file
//! descriptor per parked session, and a session the server cannot keep
//! in its journal is refused, never served without it.
//!
//! Every wait is bounded; the server is SIGKILLed when a test ends, also
//! on failure. Nothing asserts on durations.

#[allow(unreachable_pub, dead_code)]
#[path = "faults/rawws.rs"]
mod rawws;
#[allow(unreachable_pub, dead_code)]
#[path = "faults/support.rs"]
mod support;

use rawws::{RawWs, hello, hello_with};
use support::{Scratch, free_port, serve_with};

/// The close code of a HELLO refused for want of a journal file
/// (PROTOCOL.md §3).
const INTERNAL_ERROR: u16 = 1011;

/// A session established by a raw client: its id and resume key.
struct Established {
    id: Vec<u8>,
    key: [u8; 32],
}

/// Opens a new session and drops the connection (the session is parked).
fn establish(port: u16) -> Established {
    let mut ws = RawWs::connect(port);
    let w = ws.hello(b"", 0);
    assert!(!w.resumed);
    Established {
        id: w.id,
        key: w.key.expect("WELCOME(new) carries the resume key"),
    }
}

/// What the server answers a HELLO with: a WELCOME (resumed?) or a close.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Welcome { resumed: bool },
    Close(u16),
    Eof,
}

fn answer(ws: &mut RawWs, hello: &[u8]) -> Answer {
    ws.send_binary(hello);
    match ws.recv() {
        Some((0x2, m)) => Answer::Welcome {
            resumed: rawws::parse_welcome(&m).resumed,
        },
        Some((0x8, p)) => Answer::Close(if p.len() >= 2 {
            u16::from_be_bytes([p[0], p[1]])
        } else {
            1005
        }),
        None => Answer::Eof,
        Some(other) => panic!("unexpected answer to HELLO: {other:?}"),
    }
}

/// The answer to a HELLO resuming `e`. A 4013 (the server has not yet
/// seen the session's last connection end: it is still attached) is
/// retried, for at most 10 s.
fn resume(port: u16, e: &Established) -> Answer {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = answer(
            &mut RawWs::connect(port),
            &hello_with(&e.id, 0, Some(&e.key)),
        );
        if got != Answer::Close(4013) || std::time::Instant::now() >= deadline {
            return got;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Issue #14: a HELLO whose session file cannot be written (here: the
/// journal directory was replaced by a plain file, which stops root too)
/// is refused with 1011 rather than served without a journal, and a
/// parked session that cannot be reopened stays parked: it resumes once
/// the directory is back.
#[test]
fn a_session_the_journal_cannot_keep_is_refused() {
    let scratch = Scratch::new("journal-refused");
    let dir = scratch.path("journal");
    let port = free_port();
    let server = serve_with(
        &scratch,
        port,
        &scratch.path("sink"),
        "journal-refused",
        &["--journal-dir", &dir.display().to_string()],
    );
    let before = establish(port);

    // The directory goes away; a plain file takes its place.
    let moved = scratch.path("journal.moved");
    std::fs::rename(&dir, &moved).expect("move the journal directory");
    std::fs::write(&dir, b"not a directory").expect("a file in its place");

    let fresh = answer(&mut RawWs::connect(port), &hello(b"", 0));
    assert_eq!(
        fresh,
        Answer::Close(INTERNAL_ERROR),
        "a new session without a journal file\n{}",
        server.stderr_tail()
    );
    let got = resume(port, &before);
    assert_eq!(
        got,
        Answer::Close(INTERNAL_ERROR),
        "a parked file that cannot be reopened"
    );

    // Back again: the parked session was kept.
    std::fs::remove_file(&dir).unwrap();
    std::fs::rename(&moved, &dir).unwrap();
    let got = resume(port, &before);
    assert_eq!(
        got,
        Answer::Welcome { resumed: true },
        "{}",
        server.stderr_tail()
    );
    assert!(
        server.stderr_text().contains("HELLO refused"),
        "the refusal is logged:\n{}",
        server.stderr_tail()
    );
}

/// The quota's close code (PROTOCOL.md §3).
#[cfg(target_os = "linux")]
const SESSION_QUOTA: u16 = 4029;

/// File descriptors the process holds.
#[cfg(target_os = "linux")]
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Issue #14: a few thousand new sessions, each parked at once, after a
/// few established ones: the established sessions still resume, the
/// server holds no file descriptor per parked session, and it lives.
/// (No per-address quota here: every flood session is parked.)
#[cfg(target_os = "linux")]
#[test]
fn a_session_flood_keeps_no_file_per_session_and_spares_earlier_sessions() {
    const FLOOD: usize = 3000;
    let scratch = Scratch::new("session-flood");
    let dir = scratch.path("journal");
    let port = free_port();
    let mut server = serve_with(
        &scratch,
        port,
        &scratch.path("sink"),
        "session-flood",
        &[
            "--journal-dir",
            &dir.display().to_string(),
            "--max-sessions-per-ip",
            "0",
        ],
    );
    let established: Vec<Established> = (0..3).map(|_| establish(port)).collect();
    // Resumed once: established in the store's eyes.
    for e in &established {
        let got = resume(port, e);
        assert_eq!(got, Answer::Welcome { resumed: true });
    }
    let baseline = open_fds(server.pid());
    let mut welcomed = 0;
    let mut peak = baseline;
    for i in 0..FLOOD {
        if answer(&mut RawWs::connect(port), &hello(b"", 0)) == (Answer::Welcome { resumed: false })
        {
            welcomed += 1;
        }
        if i % 250 == 0 {
            peak = peak.max(open_fds(server.pid()));
        }
    }
    // Every flood session has its file (they are durable) ...
    support::wait_until(
        std::time::Duration::from_secs(20),
        "the flood's sessions parked",
        || std::fs::read_dir(&dir).map_or(0, |d| d.count()) >= FLOOD + established.len(),
    );
    // ... and none is held open.
    peak = peak.max(open_fds(server.pid()));
    println!("flood: {welcomed} welcomed; fds {baseline} before, {peak} at most");
    assert_eq!(welcomed, FLOOD);
    assert!(
        peak < baseline + 200,
        "{peak} file descriptors held (baseline {baseline}): one per parked session?"
    );
    for e in &established {
        let got = resume(port, e);
        assert_eq!(
            got,
            Answer::Welcome { resumed: true },
            "{}",
            server.stderr_tail()
        );
    }
    assert!(server.try_status().is_none(), "the server died");
}

/// Issue #14: past `--max-sessions-per-ip` a HELLO that would create a
/// session is refused with 4029, while resuming (from that address too)
/// and new sessions from another address go on. (Linux: 127.0.0.2 is a
/// loopback address there without configuration.)
#[cfg(target_os = "linux")]
#[test]
fn new_sessions_past_the_per_ip_quota_are_refused() {
    let scratch = Scratch::new("session-quota");
    let port = free_port();
    let mut server = serve_with(
        &scratch,
        port,
        &scratch.path("sink"),
        "session-quota",
        &[
            "--journal-dir",
            &scratch.path("journal").display().to_string(),
            "--max-sessions-per-ip",
            "5",
        ],
    );
    let established: Vec<Established> = (0..5).map(|_| establish(port)).collect();
    for _ in 0..50 {
        let got = answer(&mut RawWs::connect(port), &hello(b"", 0));
        assert_eq!(
            got,
            Answer::Close(SESSION_QUOTA),
            "{}",
            server.stderr_tail()
        );
    }
    for e in &established {
        let got = resume(port, e);
        assert_eq!(got, Answer::Welcome { resumed: true });
    }
    let other = answer(
        &mut RawWs::connect_from(port, std::net::Ipv4Addr::new(127, 0, 0, 2)),
        &hello(b"", 0),
    );
    assert_eq!(other, Answer::Welcome { resumed: false }, "another address");
    assert!(
        server.stderr_text().contains("too many"),
        "the refusal is logged"
    );
    assert!(server.try_status().is_none(), "the server died");
}
