//! The `hookup` command end to end: `hookup serve` and `hookup connect`
//! as child processes, killed at the end of each test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{BIN, Guard, free_port, serve, serve_with};

/// Waits for the child (bounded), collecting its output.
fn finish(mut guard: Guard, limit: Duration) -> (ExitStatus, String, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = guard.0.try_wait().expect("try_wait") {
            let mut out = String::new();
            let mut err = String::new();
            if let Some(mut s) = guard.0.stdout.take() {
                s.read_to_string(&mut out).unwrap();
            }
            if let Some(mut s) = guard.0.stderr.take() {
                s.read_to_string(&mut err).unwrap();
            }
            return (status, out, err);
        }
        assert!(
            Instant::now() < deadline,
            "child did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `hookup connect ARGS` with piped stdin, stdout and stderr.
fn spawn_connect(args: &[&str]) -> std::process::Child {
    Command::new(BIN)
        .arg("connect")
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hookup connect")
}

/// Runs `hookup connect` with `input` on stdin.
fn connect(args: &[&str], input: &str) -> (ExitStatus, String, String) {
    let mut child = spawn_connect(args);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin); // EOF: the client sends what it read, lingers, closes.
    // Small outputs: the pipes do not fill before the child exits.
    finish(Guard(child), Duration::from_secs(30))
}

#[test]
fn connect_echoes_stdin_lines() {
    let (_server, port) = serve();
    let url = format!("ws://127.0.0.1:{port}/echo");
    let input = "first line\nsecond line\nünïcödé ☃\n\nlast\n";
    let (status, out, err) = connect(&[&url, "--linger", "2s"], input);
    assert!(status.success(), "exit {status}; stderr: {err}");
    assert_eq!(out, input, "stderr: {err}");
}

#[test]
fn connect_to_closed_port_fails() {
    let url = format!("ws://127.0.0.1:{}/echo", free_port());
    let (status, out, err) = connect(&[&url], "hello\n");
    assert!(!status.success(), "exit {status}");
    assert!(out.is_empty(), "stdout: {out}");
    assert!(err.contains("hookup"), "stderr: {err:?}");
    assert!(err.contains("connect"), "stderr: {err:?}");
}

/// The server closes the connection (here: 1009 for a line over its
/// message limit) while standard input is still open: `hookup connect`
/// says so and exits non-zero at once, without waiting for the end of
/// input.
#[test]
fn connect_exits_when_the_server_closes_while_stdin_is_open() {
    let (_server, port) = serve_with(&["--max-message-size", "16"]);
    let mut child = spawn_connect(&[&format!("ws://127.0.0.1:{port}/echo")]);
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"a line well over the sixteen bytes the server takes\n")
        .unwrap();
    // stdin stays open until the child has exited.
    let (status, _, err) = finish(Guard(child), Duration::from_secs(30));
    drop(stdin);
    assert!(!status.success(), "exit {status}; stderr: {err}");
    assert!(err.contains("1009"), "no close code in stderr: {err}");
}

#[test]
fn connect_rejects_bad_url() {
    let (status, _, err) = connect(&["http://127.0.0.1:1/"], "");
    assert!(!status.success(), "exit {status}");
    assert!(!err.is_empty());
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .expect("the server closes after answering");
    String::from_utf8(answer).expect("UTF-8 answer")
}

#[test]
fn serve_answers_the_chat_page() {
    let (_server, port) = serve();
    let answer = http_get(port, "/");
    let (head, body) = answer.split_once("\r\n\r\n").expect("HTTP head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{head}"
    );
    assert!(body.contains("<html"), "{body}");
    assert!(body.contains("/chat"), "the page talks to /chat");

    let answer = http_get(port, "/no-such-page");
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let answer = http_get(port, "/echo");
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
}

#[test]
fn help_lists_the_commands() {
    let out: Output = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("serve") && text.contains("connect"), "{text}");
}

/// `hookup serve --reliable` also speaks the original hookup's
/// `jsonProtocol` (legacy mode) to a client that offers only that: every
/// `ack_request` is acknowledged, a repeated id is acknowledged again but
/// delivered once, the Scala client's `"message"` field is read, garbage is
/// skipped without ending the connection, and the sink gets each message
/// once and in order.
#[test]
fn serve_reliable_speaks_legacy_json_protocol() {
    let dir = std::env::temp_dir().join(format!("hookup-cli-legacy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sink = dir.join("sink.txt");
    let _ = std::fs::remove_file(&sink);
    let port = free_port();
    let child = Command::new(BIN)
        .args([
            "serve",
            "--reliable",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--sink")
        .arg(&sink)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hookup serve");
    let _server = Guard(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "hookup serve never listened");
        std::thread::sleep(Duration::from_millis(20));
    }

    let url = format!("ws://127.0.0.1:{port}/echo");
    let input = concat!(
        "{\"type\":\"ack_request\",\"id\":1,\"content\":\"hello\"}\n",
        "{\"type\":\"ack_request\",\"id\":1,\"content\":\"hello\"}\n",
        "{\"type\":\"text\",\"content\":\"world\"}\n",
        "not json\n",
        "{\"type\":\"ack_request\",\"id\":2,\"message\":{\"type\":\"text\",\"content\":\"scala\"}}\n",
    );
    let (status, out, err) = connect(
        &[&url, "--protocol", "jsonProtocol", "--linger", "2s"],
        input,
    );
    assert!(status.success(), "exit {status}; stderr: {err}");
    assert!(
        err.contains("subprotocol jsonProtocol"),
        "the server selected jsonProtocol; stderr: {err}"
    );
    let lines: Vec<&str> = out.lines().collect();
    let count = |l: &str| lines.iter().filter(|x| **x == l).count();
    assert_eq!(count("{\"type\":\"ack\",\"id\":1}"), 2, "stdout: {out}");
    assert_eq!(count("{\"type\":\"ack\",\"id\":2}"), 1, "stdout: {out}");
    let echoes: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("{\"type\":\"text\""))
        .collect();
    assert_eq!(
        echoes,
        [
            "{\"type\":\"text\",\"content\":\"hello\"}",
            "{\"type\":\"text\",\"content\":\"world\"}",
            "{\"type\":\"text\",\"content\":\"scala\"}",
        ],
        "stdout: {out}"
    );
    assert_eq!(lines.len(), 6, "nothing else came back; stdout: {out}");
    let sunk = std::fs::read_to_string(&sink).unwrap();
    assert_eq!(sunk, "hello\nworld\nscala\n");
    let _ = std::fs::remove_dir_all(&dir);
}
