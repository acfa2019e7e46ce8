//! Test vectors from RFC 6455 and elsewhere, kept as data in
//! `tests/vectors/*.json`. Every decoder vector is fed three ways — whole,
//! byte by byte, and followed by another frame — and must give the same
//! events and replies each time.

mod common;

use std::time::Instant;

use common::*;
use hookup_proto::handshake::accept_key;
use hookup_proto::{ClientRequest, Config, Connection, Event, Role, State};
use serde::Deserialize;
use serde::de::DeserializeOwned;

fn load<T: DeserializeOwned>(name: &str) -> T {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn role(s: &str) -> Role {
    match s {
        "client" => Role::Client,
        "server" => Role::Server,
        other => panic!("unknown role {other:?}"),
    }
}

#[derive(Deserialize, Default, Clone)]
#[serde(default, deny_unknown_fields)]
struct VConfig {
    max_frame_size: Option<usize>,
    max_message_size: Option<usize>,
    auto_pong: Option<bool>,
    stream_fragments: Option<bool>,
}

impl VConfig {
    fn build(&self) -> Config {
        let mut c = seeded();
        if let Some(v) = self.max_frame_size {
            c.max_frame_size = v;
        }
        if let Some(v) = self.max_message_size {
            c.max_message_size = v;
        }
        if let Some(v) = self.auto_pong {
            c.auto_pong = v;
        }
        if let Some(v) = self.stream_fragments {
            c.stream_fragments = v;
        }
        c
    }
}

/// Expands an input part: hex, `repeat:XX:N` or `masked-repeat:KEY:XX:N`.
fn expand(part: &str) -> Vec<u8> {
    let fields: Vec<&str> = part.split(':').collect();
    match fields.as_slice() {
        ["repeat", byte, n] => vec![unhex(byte)[0]; n.parse().unwrap()],
        ["masked-repeat", key, byte, n] => {
            let key = unhex(key);
            let byte = unhex(byte)[0];
            (0..n.parse::<usize>().unwrap())
                .map(|i| byte ^ key[i % 4])
                .collect()
        }
        [hexstr] => unhex(hexstr),
        _ => panic!("bad input part {part:?}"),
    }
}

/// The frame appended to check that trailing data is handled.
fn trailer(r: Role) -> Vec<u8> {
    frame_to(r, true, 0x9, b"trailer")
}

/// Runs `input` on a fresh open connection in `role` three ways (plus via
/// `read_buf` in odd chunks) and checks every way gives `events` and
/// `transmit`. Returns the events.
fn check_decoder(
    name: &str,
    r: Role,
    config: &Config,
    input: &[u8],
    events: &[String],
    transmit: &[String],
) {
    let now = Instant::now();
    let mut conn = Connection::new_open(r, config.clone(), now);
    let whole = feed_whole(&mut conn, now, input, ev_str);
    assert_eq!(whole.events, events, "{name}: events (whole)");
    assert_eq!(
        decode_frames(&whole.tx),
        transmit,
        "{name}: transmit (whole)"
    );
    assert_eq!(
        all_masked(&whole.tx),
        r == Role::Client && !whole.tx.is_empty(),
        "{name}: masking"
    );
    let open_after = conn.state() == State::Open;

    let mut conn = Connection::new_open(r, config.clone(), now);
    let bytewise = feed_bytewise(&mut conn, now, input, ev_str);
    assert_eq!(bytewise, whole, "{name}: byte by byte differs from whole");

    let mut conn = Connection::new_open(r, config.clone(), now);
    let chunked = feed_read_buf(&mut conn, now, input, 7, ev_str);
    assert_eq!(
        chunked, whole,
        "{name}: read_buf in chunks of 7 differs from whole"
    );

    // With a following frame: it is processed only if the connection is
    // still open, and nothing that came before changes.
    let mut with_trailer = input.to_vec();
    with_trailer.extend_from_slice(&trailer(r));
    let mut expected = whole.events.clone();
    let mut expected_tx = decode_frames(&whole.tx);
    if open_after {
        expected.push("ping:trailer".into());
        if config.auto_pong {
            expected_tx.push("pong:trailer".into());
        }
    }
    let mut conn = Connection::new_open(r, config.clone(), now);
    let t = feed_whole(&mut conn, now, &with_trailer, ev_str);
    assert_eq!(t.events, expected, "{name}: events with trailing data");
    assert_eq!(
        decode_frames(&t.tx),
        expected_tx,
        "{name}: transmit with trailing data"
    );
    let mut conn = Connection::new_open(r, config.clone(), now);
    let tb = feed_bytewise(&mut conn, now, &with_trailer, ev_str);
    assert_eq!(
        tb, t,
        "{name}: trailing data byte by byte differs from whole"
    );
}

// ------------------------------------------------------------------ frames

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrameVector {
    name: String,
    role: String,
    #[serde(default)]
    config: VConfig,
    input: Vec<String>,
    events: Vec<String>,
    transmit: Vec<String>,
}

#[derive(Deserialize)]
struct FrameFile {
    #[allow(dead_code)]
    comment: String,
    vectors: Vec<FrameVector>,
}

#[test]
fn frame_vectors() {
    let file: FrameFile = load("frames.json");
    assert!(file.vectors.len() >= 9);
    for v in &file.vectors {
        let input: Vec<u8> = v.input.iter().flat_map(|p| expand(p)).collect();
        check_decoder(
            &v.name,
            role(&v.role),
            &v.config.build(),
            &input,
            &v.events,
            &v.transmit,
        );
    }
}

/// The RFC 6455 §5.7 examples, restated here so that they are checked even
/// if the data file were edited: the exact bytes of the RFC.
#[test]
fn rfc_5_7_bytes_are_the_vectors() {
    let file: FrameFile = load("frames.json");
    let find = |prefix: &str| {
        file.vectors
            .iter()
            .find(|v| v.name.starts_with(prefix))
            .map(|v| v.input.iter().flat_map(|p| expand(p)).collect::<Vec<u8>>())
            .unwrap_or_else(|| panic!("no vector {prefix:?}"))
    };
    assert_eq!(
        find("RFC 6455 5.7: a single-frame unmasked"),
        [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
    );
    assert_eq!(
        find("RFC 6455 5.7: a single-frame masked"),
        [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
        ]
    );
    assert_eq!(
        find("RFC 6455 5.7: a fragmented unmasked text message"),
        [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]
    );
    assert_eq!(
        find("RFC 6455 5.7: unmasked ping"),
        [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
    );
    assert_eq!(
        find("RFC 6455 5.7: masked pong"),
        [
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
        ]
    );
    assert_eq!(
        find("RFC 6455 5.7: 256 bytes")[..4],
        [0x82, 0x7e, 0x01, 0x00]
    );
    assert_eq!(
        find("RFC 6455 5.7: 64KiB")[..10],
        [0x82, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]
    );
}

/// The encoder produces the RFC's bytes: a server sending "Hello" as text,
/// a ping, and the 256-byte and 64 KiB binary headers.
#[test]
fn encoder_produces_rfc_5_7_bytes() {
    let now = Instant::now();
    let mut server = Connection::new_open(Role::Server, seeded(), now);
    server.send_text("Hello").unwrap();
    server.send_ping(now, b"Hello").unwrap();
    let mut out = Vec::new();
    server.poll_transmit(&mut out);
    assert_eq!(
        out,
        [
            0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f
        ]
    );
    server.send_binary(&[0u8; 256]).unwrap();
    out.clear();
    server.poll_transmit(&mut out);
    assert_eq!(out[..4], [0x82, 0x7e, 0x01, 0x00]);
    assert_eq!(out.len(), 4 + 256);
    server.send_binary(&vec![0u8; 65536]).unwrap();
    out.clear();
    server.poll_transmit(&mut out);
    assert_eq!(out[..10], [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
    assert_eq!(out.len(), 10 + 65536);
    server
        .send_fragment(hookup_proto::MessageKind::Text, b"Hel", false)
        .unwrap();
    server
        .send_fragment(hookup_proto::MessageKind::Text, b"lo", true)
        .unwrap();
    out.clear();
    server.poll_transmit(&mut out);
    assert_eq!(out, [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]);

    // A client masks: the frame decodes to "Hello" and is not sent in clear.
    let mut client = Connection::new_open(Role::Client, seeded(), now);
    client.send_text("Hello").unwrap();
    out.clear();
    client.poll_transmit(&mut out);
    assert_eq!(out[..2], [0x81, 0x85]);
    assert_eq!(decode_frames(&out), ["text:Hello"]);
}

// ------------------------------------------------------------------ close codes

#[derive(Deserialize)]
struct CodeEntry {
    code: u16,
    valid: bool,
}

#[derive(Deserialize)]
struct PayloadEntry {
    name: String,
    payload: String,
    sent: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct CloseFile {
    #[allow(dead_code)]
    comment: String,
    codes: Vec<CodeEntry>,
    payloads: Vec<PayloadEntry>,
}

/// Feeds a close frame with `payload` to both roles and checks the reply
/// and the final event. A client waits for the server's EOF after a valid
/// close, so it gets one before the end.
fn check_close(name: &str, payload: &[u8], sent: &str, closed: &str) {
    for r in [Role::Server, Role::Client] {
        let input = frame_to(r, true, 0x8, payload);
        let now = Instant::now();
        let is_error = !closed.contains(":err=none");
        let (events, eof_events): (Vec<String>, Vec<String>) = match (r, is_error) {
            (Role::Client, false) => (vec![], vec![closed.to_string()]),
            _ => (vec![closed.to_string()], vec![]),
        };
        check_decoder(
            &format!("{name} ({r:?})"),
            r,
            &seeded(),
            &input,
            &events,
            &[sent.to_string()],
        );
        let mut conn = Connection::new_open(r, seeded(), now);
        let run = feed_cuts(&mut conn, now, &input, &[], true, ev_str);
        let all: Vec<String> = events.iter().chain(&eof_events).cloned().collect();
        assert_eq!(run.events, all, "{name} ({r:?}): events through EOF");
    }
}

#[test]
fn close_code_table() {
    let file: CloseFile = load("close_codes.json");
    for e in &file.codes {
        let payload = e.code.to_be_bytes();
        if e.valid {
            let closed = format!("closed:recv={0}:sent={0}:clean=true:err=none", e.code);
            check_close(
                &format!("code {}", e.code),
                &payload,
                &format!("close:{}", e.code),
                &closed,
            );
        } else {
            let closed = format!(
                "closed:recv=-:sent=1002:clean=false:err=Protocol(InvalidCloseCode({}))",
                e.code
            );
            check_close(&format!("code {}", e.code), &payload, "close:1002", &closed);
        }
        // The table agrees with the library's own predicate.
        assert_eq!(
            hookup_proto::CloseCode(e.code).is_valid_on_wire(),
            e.valid,
            "code {}",
            e.code
        );
    }
    // Every code is covered in the table's ranges: 1000-1011 and 3000-4999
    // valid, the rest not.
    for code in 0..=u16::MAX {
        let valid = matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999);
        assert_eq!(
            hookup_proto::CloseCode(code).is_valid_on_wire(),
            valid,
            "{code}"
        );
    }
}

#[test]
fn close_payload_table() {
    let file: CloseFile = load("close_codes.json");
    for e in &file.payloads {
        let payload = unhex(&e.payload);
        let now = Instant::now();
        // What the server reports, to build the expected Closed string.
        let mut conn = Connection::new_open(Role::Server, seeded(), now);
        let run = feed_whole(
            &mut conn,
            now,
            &frame_to(Role::Server, true, 0x8, &payload),
            ev_str,
        );
        let closed = last_closed(&run).to_string();
        match &e.error {
            None => assert!(
                closed.ends_with(":clean=true:err=none"),
                "{}: {closed}",
                e.name
            ),
            Some(err) => assert!(
                closed.ends_with(&format!(":clean=false:err={err}")),
                "{}: {closed}",
                e.name
            ),
        }
        check_close(&e.name, &payload, &e.sent, &closed);
    }
}

// ------------------------------------------------------------------ UTF-8

#[derive(Deserialize)]
struct Utf8Entry {
    name: String,
    hex: String,
    valid: bool,
}

#[derive(Deserialize)]
struct Utf8File {
    #[allow(dead_code)]
    comment: String,
    vectors: Vec<Utf8Entry>,
}

#[test]
fn utf8_vectors() {
    let file: Utf8File = load("utf8.json");
    for v in &file.vectors {
        let text = unhex(&v.hex);
        assert_eq!(
            std::str::from_utf8(&text).is_ok(),
            v.valid,
            "{}: the vector itself",
            v.name
        );
        let (events, transmit) = if v.valid {
            (vec![format!("text:{}", repr(&text))], vec![])
        } else {
            (
                vec!["closed:recv=-:sent=1007:clean=false:err=Protocol(InvalidUtf8)".to_string()],
                vec!["close:1007".to_string()],
            )
        };
        for r in [Role::Client, Role::Server] {
            // One frame.
            let input = frame_to(r, true, 0x1, &text);
            check_decoder(&v.name, r, &seeded(), &input, &events, &transmit);
            // Two fragments, split at every byte.
            for cut in 0..=text.len() {
                let mut input = frame_to(r, false, 0x1, &text[..cut]);
                input.extend(frame_to(r, true, 0x0, &text[cut..]));
                check_decoder(
                    &format!("{} split at {cut}", v.name),
                    r,
                    &seeded(),
                    &input,
                    &events,
                    &transmit,
                );
            }
            // One fragment per byte.
            let mut input = frame_to(r, text.len() <= 1, 0x1, &text[..text.len().min(1)]);
            for i in 1..text.len() {
                input.extend(frame_to(r, i + 1 == text.len(), 0x0, &text[i..=i]));
            }
            check_decoder(
                &format!("{} byte per fragment", v.name),
                r,
                &seeded(),
                &input,
                &events,
                &transmit,
            );
        }
        // Streamed fragments: still validated.
        let mut config = seeded();
        config.stream_fragments = true;
        let mut input = frame_to(Role::Client, false, 0x1, &text[..text.len() / 2]);
        input.extend(frame_to(Role::Client, true, 0x0, &text[text.len() / 2..]));
        let now = Instant::now();
        let mut conn = Connection::new_open(Role::Client, config.clone(), now);
        let run = feed_whole(&mut conn, now, &input, ev_full);
        let mut conn = Connection::new_open(Role::Client, config, now);
        assert_eq!(
            feed_bytewise(&mut conn, now, &input, ev_full),
            run,
            "{}",
            v.name
        );
        let closed = run.events.iter().any(|e| e.contains("InvalidUtf8"));
        assert_eq!(closed, !v.valid, "{}: streamed: {:?}", v.name, run.events);
        assert_eq!(decode_frames(&run.tx), transmit, "{}: streamed", v.name);
    }
}

// ------------------------------------------------------------------ handshake

#[derive(Deserialize)]
struct AcceptEntry {
    key: String,
    raw: String,
    accept: String,
}

#[derive(Deserialize)]
struct HandshakeFile {
    #[allow(dead_code)]
    comment: String,
    accept_keys: Vec<AcceptEntry>,
    rfc_request: String,
    rfc_response: String,
}

fn request_with_key(key: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

fn response_with_accept(accept: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
}

fn raw16(hexstr: &str) -> [u8; 16] {
    unhex(hexstr).try_into().expect("16 bytes")
}

#[test]
fn accept_key_vectors() {
    let file: HandshakeFile = load("handshake.json");
    let now = Instant::now();
    for e in &file.accept_keys {
        assert_eq!(accept_key(e.key.as_bytes()), e.accept, "{}", e.key);

        // A client with this key sends it and accepts exactly this answer.
        let req = ClientRequest::new("ws://example.com/ws")
            .unwrap()
            .with_key(raw16(&e.raw));
        let mut client = Connection::client(&req, seeded(), now);
        let mut out = Vec::new();
        client.poll_transmit(&mut out);
        let head = String::from_utf8(out).unwrap();
        assert!(
            head.contains(&format!("\r\nSec-WebSocket-Key: {}\r\n", e.key)),
            "{head}"
        );
        let run = feed_whole(
            &mut client,
            now,
            response_with_accept(&e.accept).as_bytes(),
            ev_str,
        );
        assert_eq!(run.events, ["connected"], "{}", e.key);

        // A server given this key answers with this accept value.
        let mut server = Connection::server(seeded(), now);
        let run = feed_whole(
            &mut server,
            now,
            request_with_key(&e.key).as_bytes(),
            ev_str,
        );
        assert_eq!(run.events, ["request:GET /ws", "connected"]);
        let resp = String::from_utf8(run.tx).unwrap();
        assert!(resp.starts_with("HTTP/1.1 101 "), "{resp}");
        assert!(
            resp.contains(&format!("\r\nSec-WebSocket-Accept: {}\r\n", e.accept)),
            "{resp}"
        );
    }
}

/// The §1.2/§1.3 sample handshake, whole, byte by byte and with a frame in
/// the same chunk as the head.
#[test]
fn rfc_sample_handshake() {
    let file: HandshakeFile = load("handshake.json");
    let now = Instant::now();

    // Server side.
    let after = frame_to(Role::Server, true, 0x1, b"first");
    for (how, with_frame) in [
        ("whole", false),
        ("bytewise", false),
        ("whole+frame", true),
        ("bytewise+frame", true),
    ] {
        let mut input = file.rfc_request.as_bytes().to_vec();
        if with_frame {
            input.extend_from_slice(&after);
        }
        let mut server = Connection::server(seeded(), now);
        let mut run = Run::default();
        let mut request = None;
        let mut feed = |server: &mut Connection, chunk: &[u8], run: &mut Run| {
            server.handle_input(now, chunk);
            while let Some(ev) = server.poll_event() {
                if let Event::Request(r) = &ev {
                    assert_eq!(r.path(), "/chat");
                    assert_eq!(r.subprotocols(), ["chat", "superchat"]);
                    assert_eq!(r.origin(), Some("http://example.com"));
                    assert!(r.is_websocket());
                    request = Some(r.clone());
                    server
                        .accept(hookup_proto::Accept::new().subprotocol("chat"))
                        .unwrap();
                }
                run.events.push(ev_str(&ev));
            }
            server.poll_transmit(&mut run.tx);
        };
        if how.starts_with("bytewise") {
            for b in &input {
                feed(&mut server, std::slice::from_ref(b), &mut run);
            }
        } else {
            feed(&mut server, &input, &mut run);
        }
        let mut expected = vec!["request:GET /chat", "connected:chat"];
        if with_frame {
            expected.push("text:first");
        }
        assert_eq!(run.events, expected, "server {how}");
        assert!(request.is_some());
        // The response has exactly the RFC's header lines (order aside).
        let resp = String::from_utf8(run.tx).unwrap();
        let mut got: Vec<&str> = resp.split("\r\n").collect();
        let mut want: Vec<&str> = file.rfc_response.split("\r\n").collect();
        assert_eq!(got[0], want[0]);
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "server {how}");
        assert!(resp.ends_with("\r\n\r\n"));
    }

    // Client side.
    let req = ClientRequest::new("ws://server.example.com/chat")
        .unwrap()
        .protocol("chat")
        .unwrap()
        .protocol("superchat")
        .unwrap()
        .with_key(*b"the sample nonce");
    let after = frame_to(Role::Client, true, 0x1, b"first");
    for (how, with_frame) in [
        ("whole", false),
        ("bytewise", false),
        ("whole+frame", true),
        ("bytewise+frame", true),
    ] {
        let mut client = Connection::client(&req, seeded(), now);
        let mut head = Vec::new();
        client.poll_transmit(&mut head);
        let head = String::from_utf8(head).unwrap();
        // The client's request carries the same fields as the RFC's.
        for line in file
            .rfc_request
            .split("\r\n")
            .filter(|l| !l.starts_with("Origin"))
        {
            assert!(head.contains(line), "client request lacks {line:?}: {head}");
        }
        let mut input = file.rfc_response.as_bytes().to_vec();
        if with_frame {
            input.extend_from_slice(&after);
        }
        let run = if how.starts_with("bytewise") {
            feed_bytewise(&mut client, now, &input, ev_str)
        } else {
            feed_whole(&mut client, now, &input, ev_str)
        };
        let mut expected = vec!["connected:chat"];
        if with_frame {
            expected.push("text:first");
        }
        assert_eq!(run.events, expected, "client {how}");
        assert_eq!(client.state(), State::Open);
    }
}
