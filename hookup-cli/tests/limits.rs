//! Security limits of `hookup serve` (#14), end to end: the server is a
//! child process; clients are raw blocking sockets (they answer nothing by
//! themselves), every wait bounded by socket timeouts.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

mod common;

use common::serve_with;

/// Resident size of process `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Opens a WebSocket on `path` with `headers`; returns the socket and the
/// HTTP status (0: the server closed without answering).
fn upgrade(port: u16, path: &str, headers: &[(&str, &str)]) -> (TcpStream, u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return (s, 0);
    }
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return (s, 0),
        }
    }
    let status = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (s, status)
}

/// A masked (zero key) client frame header.
fn header(opcode: u8, fin: bool, len: usize) -> Vec<u8> {
    let mut h = vec![if fin { 0x80 } else { 0 } | opcode];
    if len < 126 {
        h.push(0x80 | len as u8);
    } else if len < 65536 {
        h.push(0x80 | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(0x80 | 127);
        h.extend_from_slice(&(len as u64).to_be_bytes());
    }
    h.extend_from_slice(&[0; 4]);
    h
}

fn text_frame(len: usize) -> Vec<u8> {
    let mut f = header(1, true, len);
    f.resize(f.len() + len, b'a');
    f
}

/// What the server sent before it ended: the close code of its close
/// frame (`Some`), or `None` if the socket ended or went quiet (read
/// timeout) without one. `pings` counts the pings seen.
fn read_until_close(s: &mut TcpStream, pings: &mut usize) -> Option<u16> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        // Parse the frames we have (server frames are unmasked).
        loop {
            if buf.len() < 2 {
                break;
            }
            let (len, hl) = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                127 if buf.len() >= 10 => (
                    u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                126 | 127 => break,
                n => (n as usize, 2),
            };
            if buf.len() < hl + len {
                break;
            }
            match buf[0] & 0x0f {
                8 => {
                    return Some(if len >= 2 {
                        u16::from_be_bytes([buf[hl], buf[hl + 1]])
                    } else {
                        1005
                    });
                }
                9 => *pings += 1,
                _ => {}
            }
            buf.drain(..hl + len);
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[test]
fn chat_writer_that_never_reads_keeps_server_memory_bounded() {
    let (server, port) = serve_with(&["--idle-timeout", "0"]);
    let pid = server.0.id();
    let (mut w, status) = upgrade(port, "/chat", &[]);
    assert_eq!(status, 101);
    let before = rss_kib(pid);
    // 1 MiB messages (today's default limit for /chat is 64 KiB), never
    // reading what the room sends back.
    let msg = text_frame(1 << 20);
    w.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sent = 0;
    for _ in 0..150 {
        if w.write_all(&msg).is_err() {
            break;
        }
        sent += 1;
    }
    std::thread::sleep(Duration::from_millis(500));
    let grown_mib = rss_kib(pid).saturating_sub(before) / 1024;
    assert!(
        grown_mib < 64,
        "server grew by {grown_mib} MiB after {sent} chat messages of 1 MiB"
    );
}

#[test]
fn chat_reader_that_falls_behind_is_closed_with_1008() {
    let (_server, port) = serve_with(&["--idle-timeout", "0", "--chat-queue", "8"]);
    let (mut slow, status) = upgrade(port, "/chat", &[]);
    assert_eq!(status, 101);
    let (mut talker, status) = upgrade(port, "/chat", &[]);
    assert_eq!(status, 101);
    // Far more than the socket buffers and the queue hold, while `slow`
    // reads nothing; the talker reads its own copies as it goes.
    let msg = text_frame(60 << 10);
    let reader = {
        let mut t = talker.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut sink = vec![0u8; 1 << 16];
            while matches!(t.read(&mut sink), Ok(n) if n > 0) {}
        })
    };
    talker
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for _ in 0..600 {
        if talker.write_all(&msg).is_err() {
            break;
        }
    }
    let mut pings = 0;
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(read_until_close(&mut slow, &mut pings), Some(1008));
    drop(talker);
    let _ = reader.join();
}

#[test]
fn unfinished_messages_are_held_within_the_global_budget() {
    let budget: usize = 7 << 20;
    let (server, port) = serve_with(&[
        "--idle-timeout",
        "0",
        "--max-buffered-input",
        &budget.to_string(),
    ]);
    let mut conns = Vec::new();
    for _ in 0..6 {
        let (mut s, status) = upgrade(port, "/echo", &[]);
        assert_eq!(status, 101);
        // A 4 MiB message of which 2 MiB arrive, never the rest.
        let mut part = header(2, true, 4 << 20);
        part.resize(part.len() + (2 << 20), 0);
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(&part);
        conns.push(s);
        // Let the server read it before the next connection.
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut refused = 0;
    for s in &mut conns {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut pings = 0;
        if read_until_close(s, &mut pings) == Some(1009) {
            refused += 1;
        }
    }
    // 6 x 2 MiB against 7 MiB: at least three must go.
    assert!(refused >= 3, "only {refused} connections were refused");
    drop(server);
}

#[test]
fn connections_over_the_per_ip_cap_are_refused() {
    let (_server, port) = serve_with(&["--max-connections-per-ip", "3"]);
    let mut open = Vec::new();
    for _ in 0..3 {
        let (s, status) = upgrade(port, "/echo", &[]);
        assert_eq!(status, 101);
        open.push(s);
    }
    let (_s, status) = upgrade(port, "/echo", &[]);
    assert_eq!(status, 0, "a fourth connection from the same IP was served");
    drop(open.pop());
    // The slot comes back once the server sees the end of that connection.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_s, status) = upgrade(port, "/echo", &[]);
        if status == 101 {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot never came back");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn connections_over_the_global_cap_are_refused() {
    let (_server, port) = serve_with(&["--max-connections", "2"]);
    let (_a, status) = upgrade(port, "/echo", &[]);
    assert_eq!(status, 101);
    let (_b, status) = upgrade(port, "/echo", &[]);
    assert_eq!(status, 101);
    let (_c, status) = upgrade(port, "/echo", &[]);
    assert_eq!(status, 0, "a third connection was served");
}

#[test]
fn idle_connection_is_pinged_then_closed_with_1001() {
    let (_server, port) = serve_with(&["--idle-timeout", "2s"]);
    let (mut s, status) = upgrade(port, "/echo", &[]);
    assert_eq!(status, 101);
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut pings = 0;
    assert_eq!(read_until_close(&mut s, &mut pings), Some(1001));
    assert_eq!(pings, 1);
}

#[test]
fn unfinished_message_is_closed_with_1008() {
    let (_server, port) = serve_with(&["--idle-timeout", "0", "--message-timeout", "2s"]);
    let (mut s, status) = upgrade(port, "/echo", &[]);
    assert_eq!(status, 101);
    let mut part = header(1, true, 1000);
    part.extend_from_slice(&[b'a'; 10]);
    s.write_all(&part).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut pings = 0;
    assert_eq!(read_until_close(&mut s, &mut pings), Some(1008));
}

#[test]
fn peer_that_stops_reading_is_dropped() {
    let (_server, port) = serve_with(&["--idle-timeout", "0", "--write-stall-timeout", "2s"]);
    let (mut s, status) = upgrade(port, "/echo", &[]);
    assert_eq!(status, 101);
    // Echoes of 1 MiB messages that we never read: the server's writes
    // stop moving, then it stops reading; it must give up on us.
    let msg = {
        let mut f = header(2, true, 1 << 20);
        f.resize(f.len() + (1 << 20), 0);
        f
    };
    s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut dropped = false;
    while Instant::now() < deadline {
        match s.write(&msg) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                dropped = true;
                break;
            }
        }
    }
    assert!(dropped, "the server kept a peer that reads nothing");
}

#[test]
fn websocket_from_a_foreign_origin_is_refused() {
    let (_server, port) = serve_with(&[]);
    let (_s, status) = upgrade(port, "/chat", &[("Origin", "http://evil.example")]);
    assert_eq!(status, 403);
    let own = format!("http://127.0.0.1:{port}");
    let (_s, status) = upgrade(port, "/chat", &[("Origin", &own)]);
    assert_eq!(status, 101);
    let (_s, status) = upgrade(port, "/chat", &[("Origin", "http://localhost:1234")]);
    assert_eq!(status, 101);
    // No Origin: not a browser.
    let (_s, status) = upgrade(port, "/echo", &[]);
    assert_eq!(status, 101);

    let (_server, port) = serve_with(&["--allowed-origin", "http://evil.example"]);
    let (_s, status) = upgrade(port, "/chat", &[("Origin", "http://evil.example")]);
    assert_eq!(status, 101);
}
