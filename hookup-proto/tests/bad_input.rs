//! Malformed input from the peer and misuse of the API: every case ends in a
//! typed error with the right close code or HTTP status — never a panic.

mod common;

use std::time::{Duration, Instant};

use common::*;
use hookup_proto::handshake::accept_key;
use hookup_proto::http::HeaderMap;
use hookup_proto::{
    Accept, ClientRequest, CloseCode, Config, Connection, Error, Event, HandshakeError, Message,
    MessageKind, ProtocolError, Role, State, UsageError,
};
use proptest::prelude::*;

/// Feeds `input` to an open connection in `role` (whole and byte by byte,
/// which must agree) and checks that it fails with `err`, sending a close
/// frame with the error's code. Returns the events.
fn expect_protocol_error(
    role: Role,
    config: &Config,
    input: &[u8],
    err: ProtocolError,
) -> Vec<String> {
    let now = Instant::now();
    let mut conn = Connection::new_open(role, config.clone(), now);
    let run = feed_whole(&mut conn, now, input, ev_str);
    let code = err.close_code();
    assert_eq!(
        last_closed(&run),
        format!(
            "closed:recv=-:sent={}:clean=false:err=Protocol({err:?})",
            code.0
        ),
        "{role:?} {}",
        hex(input)
    );
    assert_eq!(
        decode_frames(&run.tx).last().unwrap(),
        &format!("close:{}", code.0)
    );
    assert!(conn.is_closed());
    assert_eq!(conn.poll_timeout(), None);
    assert!(!conn.wants_read());
    let mut conn = Connection::new_open(role, config.clone(), now);
    let bytewise = feed_bytewise(&mut conn, now, input, ev_str);
    assert_eq!(bytewise, run, "byte by byte differs");
    run.events
}

fn both_roles(make: impl Fn(Role) -> Vec<u8>, err: ProtocolError) {
    for role in [Role::Server, Role::Client] {
        expect_protocol_error(role, &seeded(), &make(role), err.clone());
    }
}

// ------------------------------------------------------------------ frames

#[test]
fn reserved_opcodes() {
    for op in (0x3..=0x7).chain(0xB..=0xF) {
        both_roles(
            |r| frame_to(r, true, op, b"x"),
            ProtocolError::ReservedOpcode(op),
        );
        // Also in the middle of a fragmented message.
        both_roles(
            |r| {
                let mut v = frame_to(r, false, 0x1, b"a");
                v.extend(frame_to(r, true, op, b""));
                v
            },
            ProtocolError::ReservedOpcode(op),
        );
    }
}

#[test]
fn reserved_bits() {
    for rsv in 1..8u8 {
        for op in [0x1u8, 0x2, 0x9, 0xA, 0x8] {
            both_roles(
                |r| {
                    let mask = (r == Role::Server).then_some(KEY);
                    raw_frame(true, rsv, op, mask, b"")
                },
                ProtocolError::ReservedBits(rsv),
            );
        }
    }
    // After valid frames: the events before the bad frame are delivered first.
    let mut input = frame_to(Role::Server, true, 0x1, b"ok");
    input.extend(raw_frame(true, 0b100, 0x1, Some(KEY), b"deflated?"));
    let events = expect_protocol_error(
        Role::Server,
        &seeded(),
        &input,
        ProtocolError::ReservedBits(4),
    );
    assert_eq!(events[0], "text:ok");
}

#[test]
fn masking_must_match_the_role() {
    for op in [0x1u8, 0x2, 0x8, 0x9, 0xA] {
        expect_protocol_error(
            Role::Server,
            &seeded(),
            &raw_frame(true, 0, op, None, b""),
            ProtocolError::UnmaskedFrame,
        );
        expect_protocol_error(
            Role::Client,
            &seeded(),
            &raw_frame(true, 0, op, Some(KEY), b""),
            ProtocolError::MaskedFrame,
        );
    }
    // A continuation with the wrong masking, after a correct first frame.
    let mut input = frame_to(Role::Server, false, 0x2, b"a");
    input.extend(raw_frame(true, 0, 0x0, None, b"b"));
    expect_protocol_error(
        Role::Server,
        &seeded(),
        &input,
        ProtocolError::UnmaskedFrame,
    );
}

#[test]
fn fragmented_and_oversized_control_frames() {
    for op in [0x8u8, 0x9, 0xA] {
        both_roles(
            |r| frame_to(r, false, op, b""),
            ProtocolError::FragmentedControlFrame,
        );
        both_roles(
            |r| frame_to(r, true, op, &[b'a'; 126]),
            ProtocolError::ControlFrameTooLong,
        );
        // A 7-bit length of 126/127 with a small extended length is still too long.
        both_roles(
            |r| {
                let mask = (r == Role::Server).then_some(KEY);
                let mut f = raw_frame(true, 0, op, mask, &[]);
                f[1] |= 126;
                f
            },
            ProtocolError::ControlFrameTooLong,
        );
        both_roles(
            |r| {
                let mask = (r == Role::Server).then_some(KEY);
                let mut f = raw_frame(true, 0, op, mask, &[]);
                f[1] |= 127;
                f
            },
            ProtocolError::ControlFrameTooLong,
        );
    }
    // 125 bytes is the limit, and fine.
    let now = Instant::now();
    let mut c = Connection::new_open(Role::Client, seeded(), now);
    let run = feed_whole(
        &mut c,
        now,
        &frame_to(Role::Client, true, 0x9, &[b'a'; 125]),
        ev_str,
    );
    assert_eq!(run.events, ["ping:repeat(0x61,125)"]);
    assert_eq!(decode_frames(&run.tx), ["pong:repeat(0x61,125)"]);
}

#[test]
fn bad_continuation_sequences() {
    use ProtocolError::{ExpectedContinuation, UnexpectedContinuation};
    let f = frame_to;
    // A continuation with nothing in progress.
    both_roles(|r| f(r, true, 0x0, b"x"), UnexpectedContinuation);
    both_roles(|r| f(r, false, 0x0, b"x"), UnexpectedContinuation);
    // A continuation after a complete message.
    both_roles(
        |r| [f(r, true, 0x1, b"done"), f(r, true, 0x0, b"x")].concat(),
        UnexpectedContinuation,
    );
    // A continuation after the message's last fragment.
    both_roles(
        |r| {
            [
                f(r, false, 0x2, b"a"),
                f(r, true, 0x0, b"b"),
                f(r, true, 0x0, b"c"),
            ]
            .concat()
        },
        UnexpectedContinuation,
    );
    // A new data frame inside a fragmented message, of either kind.
    for (first, second) in [(0x1, 0x1), (0x1, 0x2), (0x2, 0x1), (0x2, 0x2)] {
        both_roles(
            |r| [f(r, false, first, b"a"), f(r, true, second, b"b")].concat(),
            ExpectedContinuation,
        );
        // Even with a control frame between.
        both_roles(
            |r| {
                [
                    f(r, false, first, b"a"),
                    f(r, true, 0x9, b""),
                    f(r, false, second, b"b"),
                ]
                .concat()
            },
            ExpectedContinuation,
        );
    }
}

#[test]
fn bad_close_frames() {
    both_roles(
        |r| frame_to(r, true, 0x8, &[0x03]),
        ProtocolError::CloseFrameTooShort,
    );
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 2999, 5000, u16::MAX] {
        both_roles(
            |r| frame_to(r, true, 0x8, &close_payload(code, b"")),
            ProtocolError::InvalidCloseCode(code),
        );
    }
    for reason in [
        &b"\xff"[..],
        b"ok\xc0\xaf",
        b"\xed\xa0\x80",
        b"truncated \xe2\x82",
    ] {
        both_roles(
            |r| frame_to(r, true, 0x8, &close_payload(1000, reason)),
            ProtocolError::InvalidUtf8,
        );
    }
}

#[test]
fn huge_64_bit_lengths() {
    // The most significant bit may not be set.
    for len in [u64::MAX, 1 << 63, (1 << 63) + 5] {
        both_roles(
            |r| raw_frame_len(true, 0, 0x2, (r == Role::Server).then_some(KEY), &[], len),
            ProtocolError::InvalidLength,
        );
    }
    // Legal but larger than max_frame_size: refused from the header alone,
    // without waiting for (or buffering) the payload.
    let max = Config::default().max_frame_size;
    for len in [(1u64 << 63) - 1, 1 << 40, max as u64 + 1] {
        both_roles(
            |r| raw_frame_len(true, 0, 0x2, (r == Role::Server).then_some(KEY), &[], len),
            ProtocolError::FrameTooLarge { size: len, max },
        );
    }
    // A message over max_message_size from its first frame's header.
    let mut c = seeded();
    c.max_message_size = 100;
    for role in [Role::Server, Role::Client] {
        let input = raw_frame_len(
            true,
            0,
            0x1,
            (role == Role::Server).then_some(KEY),
            &[],
            101,
        );
        expect_protocol_error(
            role,
            &c,
            &input,
            ProtocolError::MessageTooLarge {
                size: 101,
                max: 100,
            },
        );
    }
}

/// A payload length must use the fewest bytes (RFC 6455 §5.2): a 16-bit
/// length below 126 or a 64-bit length up to 0xFFFF is closed with 1002,
/// for data and control frames, in both roles.
#[test]
fn non_minimal_lengths() {
    let frame = |role: Role, opcode: u8, len7: u8, ext: &[u8]| {
        let mut f = vec![0x80 | opcode];
        let masked = role == Role::Server;
        f.push(if masked { 0x80 } else { 0 } | len7);
        f.extend_from_slice(ext);
        if masked {
            f.extend_from_slice(&KEY);
        }
        f
    };
    for len in [0u16, 5, 125] {
        both_roles(
            |r| frame(r, 0x2, 126, &len.to_be_bytes()),
            ProtocolError::NonMinimalLength,
        );
    }
    for len in [0u64, 125, 126, 0xFFFF] {
        both_roles(
            |r| frame(r, 0x1, 127, &len.to_be_bytes()),
            ProtocolError::NonMinimalLength,
        );
    }
    assert_eq!(
        ProtocolError::NonMinimalLength.close_code(),
        CloseCode::PROTOCOL_ERROR
    );
}

/// Invalid UTF-8 fails as soon as the bad bytes arrive, before the frame is
/// complete: the peer sees our close 1007 before it has sent the rest.
#[test]
fn invalid_utf8_fails_fast() {
    let now = Instant::now();
    let mut good_then_bad = "κόσμε".as_bytes().to_vec();
    good_then_bad.extend_from_slice(&[0xED, 0xA0, 0x80]); // a surrogate
    good_then_bad.extend_from_slice(&[b'x'; 1000]);
    for role in [Role::Server, Role::Client] {
        let frame = frame_to(role, true, 0x1, &good_then_bad);
        let header_len = frame.len() - good_then_bad.len();
        // The header and the valid prefix: nothing happens yet.
        let mut conn = Connection::new_open(role, seeded(), now);
        let valid_prefix = header_len + "κόσμε".len() + 1; // ... + 0xED
        let run = feed_whole(&mut conn, now, &frame[..valid_prefix], ev_str);
        assert!(
            run.events.is_empty() && run.tx.is_empty(),
            "{role:?}: {run:?}"
        );
        assert!(conn.is_open());
        // One more byte makes the prefix invalid: close 1007 right away,
        // with 1000 bytes of the frame still unsent.
        let run = feed_whole(
            &mut conn,
            now,
            &frame[valid_prefix..valid_prefix + 1],
            ev_str,
        );
        assert_eq!(
            run.events,
            ["closed:recv=-:sent=1007:clean=false:err=Protocol(InvalidUtf8)"],
            "{role:?}"
        );
        assert_eq!(decode_frames(&run.tx), ["close:1007"]);
        // The rest is ignored.
        let run = feed_whole(&mut conn, now, &frame[valid_prefix + 1..], ev_str);
        assert_eq!(run, Run::default());

        // Across fragments: a first fragment ending in a lead byte, then a
        // continuation whose first byte cannot follow it.
        let mut input = frame_to(role, false, 0x1, b"ok \xF0");
        let cont = frame_to(
            role,
            true,
            0x0,
            &[b"\x28".as_slice(), &[b'y'; 500]].concat(),
        );
        let cont_header = cont.len() - 501;
        input.extend_from_slice(&cont[..cont_header + 1]);
        let mut conn = Connection::new_open(role, seeded(), now);
        let run = feed_whole(&mut conn, now, &input, ev_str);
        assert_eq!(
            run.events,
            ["closed:recv=-:sent=1007:clean=false:err=Protocol(InvalidUtf8)"],
            "{role:?}"
        );

        // A frame that ends (FIN) inside a code point is invalid too, even
        // though each byte so far was a valid prefix.
        expect_protocol_error(
            role,
            &seeded(),
            &frame_to(role, true, 0x1, b"abc\xE2\x82"),
            ProtocolError::InvalidUtf8,
        );
        // Also in streamed mode.
        let mut c = seeded();
        c.stream_fragments = true;
        let mut input = frame_to(role, false, 0x1, b"abc\xE2");
        input.extend(frame_to(role, true, 0x0, b"\x82"));
        let events = expect_protocol_error(role, &c, &input, ProtocolError::InvalidUtf8);
        assert_eq!(events[0], "fragment:text:more:0x616263e2");
    }
}

/// Same through the simulation harness idea: the server's close arrives at
/// a client that has sent only a prefix of its frame.
#[test]
fn fail_fast_close_reaches_a_client_mid_frame() {
    let now = Instant::now();
    let mut server = Connection::new_open(Role::Server, seeded(), now);
    let mut client = Connection::new_open(Role::Client, seeded(), now);
    // The client streams a large frame: header and first 10 bytes, with an
    // invalid byte among them.
    let mut payload = b"hello \xFF world".to_vec();
    payload.resize(100_000, b'.');
    let frame = frame_to(Role::Server, true, 0x1, &payload);
    let header_len = frame.len() - payload.len();
    server.handle_input(now, &frame[..header_len + 10]);
    let mut to_client = Vec::new();
    while server.poll_event().is_some() {}
    server.poll_transmit(&mut to_client);
    assert!(server.is_closed());
    client.handle_input(now, &to_client);
    let mut events = Vec::new();
    while let Some(ev) = client.poll_event() {
        events.push(ev_str(&ev));
    }
    // The client has been told why, while 99 990 bytes are still unsent.
    assert_eq!(client.state(), State::ClosingRemote);
    let mut echo = Vec::new();
    client.poll_transmit(&mut echo);
    assert_eq!(decode_frames(&echo), ["close:1007"]);
    client.handle_eof(now);
    let ev = client.poll_event().unwrap();
    assert_eq!(
        ev_str(&ev),
        "closed:recv=1007:sent=1007:clean=true:err=none"
    );
    assert!(events.is_empty());
}

#[test]
fn errors_after_the_close_frame_are_ignored() {
    // A client in ClosingRemote drops whatever follows the close.
    let now = Instant::now();
    let mut c = Connection::new_open(Role::Client, seeded(), now);
    let mut input = frame_to(Role::Client, true, 0x8, &close_payload(1000, b""));
    input.extend_from_slice(&[0xFF; 50]);
    let run = feed_whole(&mut c, now, &input, ev_str);
    assert!(run.events.is_empty());
    assert_eq!(c.state(), State::ClosingRemote);
    let run = feed_whole(&mut c, now, &[0x83, 0x00], ev_str);
    assert!(run.events.is_empty() && run.tx.is_empty());
    c.handle_eof(now);
    assert_eq!(
        ev_str(&c.poll_event().unwrap()),
        "closed:recv=1000:sent=1000:clean=true:err=none"
    );
}

/// An error behind messages read in the same chunk takes effect once those
/// are drained, so replies to them go out before the close frame.
#[test]
fn replies_to_earlier_messages_precede_the_close_frame() {
    let now = Instant::now();
    let mut s = Connection::new_open(Role::Server, seeded(), now);
    let mut input = frame_to(Role::Server, true, 0x1, b"first");
    input.extend(frame_to(Role::Server, true, 0x9, b"ping"));
    input.extend(raw_frame(true, 0, 0x3, Some(KEY), b""));
    input.extend(frame_to(Role::Server, true, 0x1, b"never"));
    s.handle_input(now, &input);
    assert!(!s.wants_read(), "no reading past a known error");
    assert!(s.is_open(), "the error waits behind the queued events");
    let mut events = Vec::new();
    while let Some(ev) = s.poll_event() {
        if let Event::Message(m) = &ev {
            s.send(m.clone()).unwrap(); // the echo is still allowed
        }
        events.push(ev_str(&ev));
    }
    assert_eq!(
        events,
        [
            "text:first",
            "ping:ping",
            "closed:recv=-:sent=1002:clean=false:err=Protocol(ReservedOpcode(3))"
        ]
    );
    let mut out = Vec::new();
    s.poll_transmit(&mut out);
    assert_eq!(
        decode_frames(&out),
        ["pong:ping", "text:first", "close:1002"]
    );
    // An EOF before the events are drained reports the protocol error.
    let mut s = Connection::new_open(Role::Server, seeded(), now);
    s.handle_input(now, &input);
    s.handle_eof(now);
    let events: Vec<String> = std::iter::from_fn(|| s.poll_event())
        .map(|e| ev_str(&e))
        .collect();
    assert_eq!(
        events.last().unwrap(),
        "closed:recv=-:sent=1002:clean=false:err=Protocol(ReservedOpcode(3))"
    );
}

#[test]
fn protocol_error_while_closing_sends_no_second_close() {
    let now = Instant::now();
    let mut s = Connection::new_open(Role::Server, seeded(), now);
    s.close(now, CloseCode::NORMAL, "bye").unwrap();
    let mut out = Vec::new();
    s.poll_transmit(&mut out);
    let run = feed_whole(
        &mut s,
        now,
        &raw_frame(true, 0, 0x3, Some(KEY), b""),
        ev_str,
    );
    assert_eq!(
        run.events,
        ["closed:recv=-:sent=1000(\"bye\"):clean=false:err=Protocol(ReservedOpcode(3))"]
    );
    assert!(
        run.tx.is_empty(),
        "a second close frame: {:?}",
        decode_frames(&run.tx)
    );
}

// ------------------------------------------------------------------ server handshake

const GOOD_REQUEST: &str = "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Feeds a request to a server (whole and byte by byte) and checks the
/// handshake error and the HTTP status of the automatic answer. Returns it.
fn expect_http_error(request: &[u8], config: &Config, err: HandshakeError, status: u16) -> String {
    let now = Instant::now();
    let mut results = Vec::new();
    for bytewise in [false, true] {
        let mut s = Connection::server(config.clone(), now);
        let run = if bytewise {
            feed_bytewise(&mut s, now, request, ev_str)
        } else {
            feed_whole(&mut s, now, request, ev_str)
        };
        assert_eq!(
            run.events,
            [format!(
                "closed:recv=-:sent=-:clean=false:err=Handshake({err:?})"
            )],
            "{}",
            String::from_utf8_lossy(request)
        );
        assert_eq!(err.status(), status);
        let resp = String::from_utf8(run.tx.clone()).unwrap();
        assert!(resp.starts_with(&format!("HTTP/1.1 {status} ")), "{resp}");
        assert!(resp.contains("\r\nConnection: close\r\n"), "{resp}");
        let body_len = resp.len() - resp.find("\r\n\r\n").unwrap() - 4;
        assert!(
            resp.contains(&format!("\r\nContent-Length: {body_len}\r\n")),
            "{resp}"
        );
        assert!(s.is_closed());
        results.push(resp);
    }
    assert_eq!(results[0], results[1]);
    results.pop().unwrap()
}

#[test]
fn handshake_garbage_is_400() {
    let c = seeded();
    for garbage in [
        &b"\x00\x01garbage\r\n\r\n"[..],
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", // a TLS ClientHello
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n: empty name\r\n\r\n",
        b"GET /a b/c HTTP/1.1\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
    ] {
        let now = Instant::now();
        let mut s = Connection::server(c.clone(), now);
        let run = feed_whole(&mut s, now, garbage, ev_str);
        let closed = last_closed(&run);
        assert!(closed.contains("err=Handshake("), "{closed}");
        assert!(
            run.tx.starts_with(b"HTTP/1.1 400 "),
            "{}",
            String::from_utf8_lossy(&run.tx)
        );
    }
    // Empty lines before the request line are skipped (RFC 9112 2.2), but
    // not forever.
    let mut c2 = seeded();
    c2.max_head_size = 64;
    expect_http_error(
        "\r\n".repeat(40).as_bytes(),
        &c2,
        HandshakeError::HeaderTooLarge { max: 64 },
        431,
    );
    let mut crlf_first = "\r\n\r\n".to_string();
    crlf_first.push_str(GOOD_REQUEST);
    let now = Instant::now();
    let mut s = Connection::server(c.clone(), now);
    let run = feed_whole(&mut s, now, crlf_first.as_bytes(), ev_str);
    assert_eq!(run.events, ["request:GET /chat", "connected"]);
    expect_http_error(
        b"\x00\x01garbage\r\n\r\n",
        &c,
        HandshakeError::Malformed("invalid token".into()),
        400,
    );
}

#[test]
fn handshake_field_errors() {
    let c = seeded();
    let cases: &[(&str, &str, HandshakeError, u16)] = &[
        (
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Version: 8",
            HandshakeError::UnsupportedVersion,
            426,
        ),
        (
            "Sec-WebSocket-Version: 13\r\n",
            "",
            HandshakeError::UnsupportedVersion,
            426,
        ),
        (
            "Upgrade: websocket",
            "Upgrade: h2c",
            HandshakeError::NotWebSocketUpgrade,
            426,
        ),
        ("GET /chat", "POST /chat", HandshakeError::MethodNotGet, 405),
        (
            "Host: example.com\r\n",
            "",
            HandshakeError::MissingHost,
            400,
        ),
        (
            "Host: example.com\r\n",
            "Host: a\r\nHost: b\r\n",
            HandshakeError::MissingHost,
            400,
        ),
        ("HTTP/1.1", "HTTP/1.0", HandshakeError::HttpVersion, 400),
        (
            "Connection: Upgrade",
            "Connection: keep-alive",
            HandshakeError::MissingConnectionUpgrade,
            400,
        ),
        (
            "dGhlIHNhbXBsZSBub25jZQ==",
            "c2hvcnQ=",
            HandshakeError::InvalidKey,
            400,
        ),
        (
            "dGhlIHNhbXBsZSBub25jZQ==",
            "not base64 at all!!",
            HandshakeError::InvalidKey,
            400,
        ),
        (
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            "",
            HandshakeError::InvalidKey,
            400,
        ),
        (
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            HandshakeError::InvalidKey,
            400,
        ),
    ];
    for (from, to, err, status) in cases {
        let req = GOOD_REQUEST.replacen(from, to, 1);
        assert_ne!(req, GOOD_REQUEST, "{from}");
        expect_http_error(req.as_bytes(), &c, err.clone(), *status);
    }
}

#[test]
fn wrong_version_is_426_with_the_supported_version() {
    let req = GOOD_REQUEST.replacen("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 7", 1);
    let resp = expect_http_error(
        req.as_bytes(),
        &seeded(),
        HandshakeError::UnsupportedVersion,
        426,
    );
    assert!(
        resp.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{resp}"
    );
    assert!(
        resp.to_ascii_lowercase()
            .contains("\r\nsec-websocket-version: 13\r\n"),
        "{resp}"
    );
}

#[test]
fn too_large_head_is_431() {
    let mut c = seeded();
    c.max_head_size = 1024;
    // Complete but too large.
    let big = GOOD_REQUEST.replacen(
        "\r\n\r\n",
        &format!("\r\nX-Pad: {}\r\n\r\n", "p".repeat(1100)),
        1,
    );
    expect_http_error(
        big.as_bytes(),
        &c,
        HandshakeError::HeaderTooLarge { max: 1024 },
        431,
    );
    // Not complete yet, and already too large: refused without waiting.
    let endless = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Pad: {}", "p".repeat(2000));
    expect_http_error(
        endless.as_bytes(),
        &c,
        HandshakeError::HeaderTooLarge { max: 1024 },
        431,
    );
    // Exactly the limit is fine.
    let pad = 1024 - GOOD_REQUEST.len() - "X-P: \r\n".len();
    let exact = GOOD_REQUEST.replacen(
        "\r\n\r\n",
        &format!("\r\nX-P: {}\r\n\r\n", "p".repeat(pad)),
        1,
    );
    assert_eq!(exact.len(), 1024);
    let now = Instant::now();
    let mut s = Connection::server(c.clone(), now);
    let run = feed_whole(&mut s, now, exact.as_bytes(), ev_str);
    assert_eq!(run.events, ["request:GET /chat", "connected"]);
    // Too many headers counts as too large.
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let req = GOOD_REQUEST.replacen("\r\n\r\n", &format!("\r\n{many}\r\n"), 1);
    let now = Instant::now();
    let mut s = Connection::server(seeded(), now);
    let run = feed_whole(&mut s, now, req.as_bytes(), ev_str);
    assert!(
        last_closed(&run).contains("HeaderTooLarge"),
        "{:?}",
        run.events
    );
    assert!(run.tx.starts_with(b"HTTP/1.1 431 "));
}

#[test]
fn eof_and_timeout_during_the_server_handshake() {
    let now = Instant::now();
    let mut s = Connection::server(seeded(), now);
    let run = feed_cuts(
        &mut s,
        now,
        &GOOD_REQUEST.as_bytes()[..20],
        &[],
        true,
        ev_str,
    );
    assert_eq!(
        run.events,
        ["closed:recv=-:sent=-:clean=false:err=Handshake(Eof)"]
    );
    assert!(run.tx.is_empty(), "no answer to a peer that left");

    let mut s = Connection::server(seeded(), now);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(10)));
    s.handle_timeout(now + Duration::from_secs(10));
    let mut run = Run::default();
    drain_into(&mut s, &mut run, ev_str);
    assert_eq!(
        run.events,
        ["closed:recv=-:sent=-:clean=false:err=Handshake(Timeout)"]
    );
    assert!(run.tx.starts_with(b"HTTP/1.1 408 "));
}

// ------------------------------------------------------------------ client handshake

const CLIENT_KEY: [u8; 16] = *b"the sample nonce";
const CLIENT_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn client_with(protocols: &[&str]) -> Connection {
    let mut req = ClientRequest::new("ws://example.com/chat")
        .unwrap()
        .with_key(CLIENT_KEY);
    for p in protocols {
        req = req.protocol(*p).unwrap();
    }
    let mut c = Connection::client(&req, seeded(), Instant::now());
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    c
}

fn good_response(extra: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {CLIENT_ACCEPT}\r\n{extra}\r\n"
    )
}

fn expect_client_error(protocols: &[&str], response: &str, err: HandshakeError) {
    for bytewise in [false, true] {
        let mut c = client_with(protocols);
        let now = Instant::now();
        let run = if bytewise {
            feed_bytewise(&mut c, now, response.as_bytes(), ev_str)
        } else {
            feed_whole(&mut c, now, response.as_bytes(), ev_str)
        };
        assert_eq!(
            run.events,
            [format!(
                "closed:recv=-:sent=-:clean=false:err=Handshake({err:?})"
            )],
            "{response}"
        );
        assert!(
            run.tx.is_empty(),
            "a client sends nothing after a failed handshake"
        );
        assert!(c.is_closed());
    }
}

#[test]
fn client_rejects_bad_responses() {
    use HandshakeError::*;
    assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), CLIENT_ACCEPT);
    // The good response works, so each case below fails for its own reason.
    let mut c = client_with(&["chat"]);
    let now = Instant::now();
    let run = feed_whole(
        &mut c,
        now,
        good_response("Sec-WebSocket-Protocol: chat\r\n").as_bytes(),
        ev_str,
    );
    assert_eq!(run.events, ["connected:chat"]);

    for status in [200u16, 301, 400, 403, 404, 426, 500, 503] {
        let resp = format!("HTTP/1.1 {status} Whatever\r\nContent-Length: 0\r\n\r\n");
        expect_client_error(&[], &resp, Status(status));
    }
    expect_client_error(
        &[],
        &good_response("").replace(CLIENT_ACCEPT, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        InvalidAccept,
    );
    expect_client_error(
        &[],
        &good_response("").replace(&format!("Sec-WebSocket-Accept: {CLIENT_ACCEPT}\r\n"), ""),
        InvalidAccept,
    );
    expect_client_error(
        &["chat"],
        &good_response("Sec-WebSocket-Protocol: superchat\r\n"),
        UnofferedSubprotocol("superchat".into()),
    );
    expect_client_error(
        &[],
        &good_response("Sec-WebSocket-Protocol: chat\r\n"),
        UnofferedSubprotocol("chat".into()),
    );
    expect_client_error(
        &["a", "b"],
        &good_response("Sec-WebSocket-Protocol: a, b\r\n"),
        UnofferedSubprotocol("a".into()),
    );
    expect_client_error(
        &[],
        &good_response("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
        UnrequestedExtension("permessage-deflate".into()),
    );
    expect_client_error(
        &[],
        &good_response("").replace("Upgrade: websocket\r\n", ""),
        NotWebSocketUpgrade,
    );
    expect_client_error(
        &[],
        &good_response("").replace("Connection: Upgrade\r\n", "Connection: close\r\n"),
        MissingConnectionUpgrade,
    );
    expect_client_error(
        &[],
        &good_response("").replace("HTTP/1.1", "HTTP/1.0"),
        HttpVersion,
    );
    expect_client_error(
        &[],
        "SSH-2.0-OpenSSH_9.6\r\n\r\n",
        Malformed("invalid HTTP version".into()),
    );
    let big = good_response(&format!("X-Pad: {}\r\n", "p".repeat(20_000)));
    expect_client_error(&[], &big, HeaderTooLarge { max: 16 << 10 });
}

#[test]
fn client_eof_and_timeout_during_the_handshake() {
    let now = Instant::now();
    let mut c = client_with(&[]);
    let run = feed_cuts(&mut c, now, b"HTTP/1.1 101 Swi", &[], true, ev_str);
    assert_eq!(
        run.events,
        ["closed:recv=-:sent=-:clean=false:err=Handshake(Eof)"]
    );
    let mut c = client_with(&[]);
    let t = c.poll_timeout().unwrap();
    c.handle_timeout(t);
    assert_eq!(
        ev_str(&c.poll_event().unwrap()),
        "closed:recv=-:sent=-:clean=false:err=Handshake(Timeout)"
    );
    let mut out = Vec::new();
    assert!(!c.poll_transmit(&mut out));
}

// ------------------------------------------------------------------ API misuse

fn all_sends(c: &mut Connection, now: Instant) -> Vec<Result<(), UsageError>> {
    vec![
        c.send_text("x"),
        c.send_binary(b"x"),
        c.send(Message::text("x")),
        c.send(Message::binary(vec![0u8; 20_000])),
        c.send_fragment(MessageKind::Text, b"x", false),
        c.send_ping(now, b"x"),
        c.send_pong(b"x"),
        c.close(now, CloseCode::NORMAL, ""),
    ]
}

#[test]
fn sending_before_open_is_not_open() {
    let now = Instant::now();
    let mut client = client_with(&[]);
    let mut server = Connection::server(seeded(), now);
    for conn in [&mut client, &mut server] {
        let before = conn.transmit_len();
        for r in all_sends(conn, now) {
            assert_eq!(r, Err(UsageError::NotOpen));
        }
        assert_eq!(
            conn.transmit_len(),
            before,
            "a failed command queued output"
        );
        assert!(conn.poll_event().is_none());
    }
    // Awaiting the decision: still not open.
    server.handle_input(now, GOOD_REQUEST.as_bytes());
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    for r in all_sends(&mut server, now) {
        assert_eq!(r, Err(UsageError::NotOpen));
    }
    server.accept(Accept::new()).unwrap();
    assert!(server.send_text("now it works").is_ok());
}

#[test]
fn sending_after_close_is_an_error() {
    let now = Instant::now();
    for role in [Role::Client, Role::Server] {
        let mut c = Connection::new_open(role, seeded(), now);
        c.close(now, CloseCode::NORMAL, "").unwrap();
        // Closing: data and control frames may not be sent any more.
        for r in all_sends(&mut c, now) {
            assert_eq!(r, Err(UsageError::NotOpen), "{role:?} closing");
        }
        // Closed.
        let close = frame_to(role, true, 0x8, &close_payload(1000, b""));
        c.handle_input(now, &close);
        c.handle_eof(now);
        while c.poll_event().is_some() {}
        assert!(c.is_closed());
        let mut out = Vec::new();
        c.poll_transmit(&mut out);
        for r in all_sends(&mut c, now) {
            assert_eq!(r, Err(UsageError::Closed), "{role:?} closed");
        }
        assert_eq!(c.transmit_len(), 0);
        // Input after Closed is ignored.
        c.handle_input(now, &frame_to(role, true, 0x1, b"late"));
        c.handle_eof(now);
        c.handle_timeout(now + Duration::from_secs(3600));
        assert!(c.poll_event().is_none());
    }
}

#[test]
fn control_payload_limits() {
    let now = Instant::now();
    for role in [Role::Client, Role::Server] {
        let mut c = Connection::new_open(role, seeded(), now);
        assert_eq!(
            c.send_ping(now, &[0; 126]),
            Err(UsageError::ControlPayloadTooLong)
        );
        assert_eq!(
            c.send_pong(&[0; 126]),
            Err(UsageError::ControlPayloadTooLong)
        );
        assert_eq!(
            c.close(now, CloseCode::NORMAL, &"r".repeat(124)),
            Err(UsageError::ControlPayloadTooLong)
        );
        assert_eq!(c.transmit_len(), 0);
        assert!(
            c.is_open(),
            "a refused command leaves the connection usable"
        );
        c.send_ping(now, &[0; 125]).unwrap();
        c.send_pong(&[0; 125]).unwrap();
        c.close(now, CloseCode::NORMAL, &"r".repeat(123)).unwrap();
        let mut out = Vec::new();
        c.poll_transmit(&mut out);
        let frames = decode_frames(&out);
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[2], "close:1000:repeat(0x72,123)");
    }
}

#[test]
fn invalid_close_codes_are_refused() {
    let now = Instant::now();
    let mut c = Connection::new_open(Role::Server, seeded(), now);
    for code in [
        0u16,
        999,
        1004,
        1005,
        1006,
        1012,
        1015,
        1016,
        2000,
        2999,
        5000,
        u16::MAX,
    ] {
        assert_eq!(
            c.close(now, CloseCode(code), ""),
            Err(UsageError::InvalidCloseCode(code))
        );
        assert!(c.is_open());
    }
    assert_eq!(c.transmit_len(), 0);
    for code in [1000u16, 1001, 1011, 3000, 4999] {
        let mut c = Connection::new_open(Role::Server, seeded(), now);
        c.close(now, CloseCode(code), "").unwrap();
        assert_eq!(
            c.close(now, CloseCode(code), ""),
            Err(UsageError::NotOpen),
            "twice"
        );
    }
}

#[test]
fn fragment_sequencing_misuse() {
    let now = Instant::now();
    let mut c = Connection::new_open(Role::Server, seeded(), now);
    c.send_fragment(MessageKind::Text, b"a", false).unwrap();
    // A whole message may not start inside a fragmented one…
    assert_eq!(c.send_text("b"), Err(UsageError::NotOpen));
    assert_eq!(c.send_binary(b"b"), Err(UsageError::NotOpen));
    assert_eq!(
        c.send(Message::binary(vec![0u8; 50_000])),
        Err(UsageError::NotOpen)
    );
    // …but control frames may.
    c.send_ping(now, b"p").unwrap();
    c.send_fragment(MessageKind::Binary, b"b", true).unwrap();
    c.send_text("c").unwrap();
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    assert_eq!(
        decode_frames(&out),
        ["text:a+more", "ping:p", "cont:b", "text:c"]
    );
}

#[test]
fn accept_and_reject_misuse() {
    let now = Instant::now();
    let mut client = client_with(&[]);
    assert_eq!(
        client.accept(Accept::new()),
        Err(UsageError::NoPendingRequest)
    );
    assert_eq!(
        client.reject(http_status(400), &HeaderMap::new(), b""),
        Err(UsageError::NoPendingRequest)
    );
    let mut server = Connection::server(seeded(), now);
    assert_eq!(
        server.accept(Accept::new()),
        Err(UsageError::NoPendingRequest)
    );
    let req = GOOD_REQUEST.replacen("\r\n\r\n", "\r\nSec-WebSocket-Protocol: chat\r\n\r\n", 1);
    server.handle_input(now, req.as_bytes());
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    // Choosing a subprotocol the client did not offer: refused, still pending.
    assert!(matches!(
        server.accept(Accept::new().subprotocol("superchat")),
        Err(UsageError::InvalidHeader(_))
    ));
    assert_eq!(server.transmit_len(), 0);
    assert_eq!(server.state(), State::AwaitingDecision);
    server.accept(Accept::new().subprotocol("chat")).unwrap();
    assert_eq!(
        server.accept(Accept::new()),
        Err(UsageError::NoPendingRequest)
    );
    assert_eq!(
        server.reject(http_status(400), &HeaderMap::new(), b""),
        Err(UsageError::NoPendingRequest)
    );
    let mut open = Connection::new_open(Role::Server, seeded(), now);
    assert_eq!(
        open.accept(Accept::new()),
        Err(UsageError::NoPendingRequest)
    );

    // EOF while the application decides: the request cannot be accepted later.
    let mut server = Connection::server(seeded(), now);
    server.handle_input(now, GOOD_REQUEST.as_bytes());
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    server.handle_eof(now);
    assert_eq!(
        ev_str(&server.poll_event().unwrap()),
        "closed:recv=-:sent=-:clean=false:err=Handshake(Eof)"
    );
    assert_eq!(
        server.accept(Accept::new()),
        Err(UsageError::NoPendingRequest)
    );
    assert!(server.is_closed());
    assert!(server.poll_event().is_none());
}

#[test]
fn client_request_validation() {
    for bad in [
        "http://example.com/",
        "example.com",
        "ws://",
        "ws://user:pw@host/",
        "",
        "ws://[::1/",
    ] {
        assert!(
            matches!(ClientRequest::new(bad), Err(UsageError::InvalidUrl(_))),
            "{bad:?}"
        );
    }
    let r = ClientRequest::new("WSS://Example.com").unwrap();
    assert!(r.is_tls());
    assert_eq!(r.port(), 443);
    let r = ClientRequest::new("ws://example.com").unwrap();
    assert_eq!((r.host(), r.port()), ("example.com", 80));
    let base = || ClientRequest::new("ws://example.com/").unwrap();
    for bad in ["", "a b", "a,b", "é", "a\r\nX-Injected: 1"] {
        assert!(
            matches!(base().protocol(bad), Err(UsageError::InvalidHeader(_))),
            "{bad:?}"
        );
    }
    assert!(matches!(
        base().header("bad name", "v"),
        Err(UsageError::InvalidHeader(_))
    ));
    assert!(matches!(
        base().header("X-Ok", "a\r\nX-Injected: 1"),
        Err(UsageError::InvalidHeader(_))
    ));
    assert!(matches!(
        base().header("", "v"),
        Err(UsageError::InvalidHeader(_))
    ));
}

// ------------------------------------------------------------------ random input

/// The states a connection can be put in before random input arrives.
#[derive(Clone, Copy, Debug)]
enum Start {
    ServerAwaitingRequest,
    ServerAwaitingDecision,
    ServerOpen,
    ServerClosingLocal,
    ClientAwaitingResponse,
    ClientOpen,
    ClientClosingLocal,
    ClientClosingRemote,
    OpenServer,
    OpenClient,
}

const STARTS: [Start; 10] = [
    Start::ServerAwaitingRequest,
    Start::ServerAwaitingDecision,
    Start::ServerOpen,
    Start::ServerClosingLocal,
    Start::ClientAwaitingResponse,
    Start::ClientOpen,
    Start::ClientClosingLocal,
    Start::ClientClosingRemote,
    Start::OpenServer,
    Start::OpenClient,
];

/// Puts a connection in the state `s` (as far as `config` allows: with tiny
/// limits the set-up itself may fail). Returns the events it produced.
fn start(s: Start, config: &Config, now: Instant) -> (Connection, Vec<Event>) {
    let c = config.clone();
    let client_req = ClientRequest::new("ws://example.com/chat")
        .unwrap()
        .with_key(CLIENT_KEY);
    let mut conn = match s {
        Start::ServerAwaitingRequest
        | Start::ServerAwaitingDecision
        | Start::ServerOpen
        | Start::ServerClosingLocal => Connection::server(c, now),
        Start::ClientAwaitingResponse
        | Start::ClientOpen
        | Start::ClientClosingLocal
        | Start::ClientClosingRemote => Connection::client(&client_req, c, now),
        Start::OpenServer => Connection::new_open(Role::Server, c, now),
        Start::OpenClient => Connection::new_open(Role::Client, c, now),
    };
    let mut events = Vec::new();
    match s {
        Start::ServerAwaitingDecision | Start::ServerOpen | Start::ServerClosingLocal => {
            conn.handle_input(now, GOOD_REQUEST.as_bytes());
        }
        Start::ClientOpen | Start::ClientClosingLocal | Start::ClientClosingRemote => {
            conn.handle_input(now, good_response("").as_bytes());
        }
        _ => {}
    }
    while let Some(ev) = conn.poll_event() {
        // For ServerAwaitingDecision the request is left waiting.
        if let (Event::Request(_), Start::ServerOpen | Start::ServerClosingLocal) = (&ev, s) {
            conn.accept(Accept::new()).unwrap();
        }
        events.push(ev);
    }
    if matches!(s, Start::ServerClosingLocal | Start::ClientClosingLocal) {
        let _ = conn.close(now, CloseCode::GOING_AWAY, "");
    }
    if matches!(s, Start::ClientClosingRemote) {
        conn.handle_input(
            now,
            &frame_to(Role::Client, true, 0x8, &close_payload(1000, b"")),
        );
    }
    events.extend(std::iter::from_fn(|| conn.poll_event()));
    let mut out = Vec::new();
    conn.poll_transmit(&mut out);
    (conn, events)
}

#[test]
fn every_start_state_is_reached_with_the_default_config() {
    let now = Instant::now();
    for s in STARTS {
        let (conn, events) = start(s, &seeded(), now);
        assert!(
            !events.iter().any(|e| matches!(e, Event::Closed(_))),
            "{s:?}: {events:?}"
        );
        let want = match s {
            Start::ServerAwaitingRequest => State::AwaitingRequest,
            Start::ServerAwaitingDecision => State::AwaitingDecision,
            Start::ClientAwaitingResponse => State::AwaitingResponse,
            Start::ServerClosingLocal | Start::ClientClosingLocal => State::ClosingLocal,
            Start::ClientClosingRemote => State::ClosingRemote,
            _ => State::Open,
        };
        assert_eq!(conn.state(), want, "{s:?}");
    }
}

/// A valid stream for the peer of `role`, to be mutated.
fn valid_stream(s: Start) -> Vec<u8> {
    let role = match s {
        Start::ServerAwaitingRequest
        | Start::ServerAwaitingDecision
        | Start::ServerOpen
        | Start::ServerClosingLocal
        | Start::OpenServer => Role::Server,
        _ => Role::Client,
    };
    let mut out = match s {
        Start::ServerAwaitingRequest => GOOD_REQUEST.as_bytes().to_vec(),
        Start::ClientAwaitingResponse => good_response("").into_bytes(),
        _ => Vec::new(),
    };
    let f = |fin, op, p: &[u8]| frame_to(role, fin, op, p);
    out.extend(f(true, 0x1, "hello κόσμε".as_bytes()));
    out.extend(f(false, 0x2, &[1, 2, 3]));
    out.extend(f(true, 0x9, b"ping"));
    out.extend(f(true, 0x0, &[4; 130]));
    out.extend(f(true, 0xA, b""));
    out.extend(f(true, 0x8, &close_payload(1000, b"bye")));
    out
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn mutate(mut v: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let n = v.len();
        match *m {
            Mutation::Flip(i, x) if n > 0 => v[i % n] ^= x,
            Mutation::Insert(i, x) => v.insert(i % (n + 1), x),
            Mutation::Delete(i) if n > 0 => {
                v.remove(i % n);
            }
            Mutation::Truncate(i) => v.truncate(i % (n + 1)),
            _ => {}
        }
    }
    v
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Mutation::Insert(i, x)),
        2 => any::<usize>().prop_map(Mutation::Delete),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn random_config() -> impl Strategy<Value = Config> {
    (
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(64usize << 20), 0usize..200],
        prop_oneof![Just(16usize << 20), 0usize..200],
        prop_oneof![Just(16usize << 10), 0usize..300],
        prop_oneof![Just(1usize << 20), 0usize..100],
    )
        .prop_map(|(stream, pong, msg, frame, head, buffered)| {
            let mut c = seeded();
            c.stream_fragments = stream;
            c.auto_pong = pong;
            c.max_message_size = msg;
            c.max_frame_size = frame;
            c.max_head_size = head;
            c.max_buffered_bytes = buffered;
            c
        })
}

/// Feeds `input` in chunks, draining after each and poking the connection
/// with commands; then EOF. Checks: no panic, nothing after Closed, and the
/// connection ends with exactly one Closed.
fn survive(
    s: Start,
    config: &Config,
    input: &[u8],
    cuts: &[usize],
    decide: u8,
) -> Result<(), TestCaseError> {
    let now = Instant::now();
    let (mut conn, initial) = start(s, config, now);
    let mut initial = initial.into_iter();
    let mut events: Vec<String> = Vec::new();
    let mut closed = 0;
    let mut drain =
        |conn: &mut Connection, events: &mut Vec<String>| -> Result<(), TestCaseError> {
            while let Some(ev) = initial.next().or_else(|| conn.poll_event()) {
                prop_assert_eq!(closed, 0, "event after Closed: {:?}", ev);
                if let Event::Closed(c) = &ev {
                    closed += 1;
                    // A close frame we sent always carries a code that may go on
                    // the wire (1005 is reported as "none sent").
                    if let Some(f) = &c.sent {
                        prop_assert!(f.code.is_valid_on_wire(), "{:?}", f);
                    }
                    // A protocol error is answered with its close code, unless
                    // we had already sent a close frame (then that one stands).
                    if let (Some(Error::Protocol(e)), Some(f)) = (&c.error, &c.sent) {
                        prop_assert!(
                            f.code == e.close_code() || f.code == CloseCode::GOING_AWAY,
                            "{:?}",
                            c
                        );
                    }
                }
                if let Event::Request(_) = ev {
                    match decide % 3 {
                        0 => {
                            let _ = conn.accept(Accept::new());
                        }
                        1 => {
                            let _ = conn.reject(http_status(403), &HeaderMap::new(), b"no");
                        }
                        _ => {}
                    }
                }
                events.push(ev_str(&ev));
            }
            let mut out = Vec::new();
            conn.poll_transmit(&mut out);
            Ok(())
        };
    if let Start::ServerAwaitingDecision = s {
        match decide % 3 {
            0 => drop(conn.accept(Accept::new())),
            1 => drop(conn.reject(http_status(403), &HeaderMap::new(), b"no")),
            _ => {}
        }
    }
    drain(&mut conn, &mut events)?;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.push(input.len());
    cuts.sort_unstable();
    let mut at = 0;
    for (i, c) in cuts.into_iter().enumerate() {
        conn.handle_input(now, &input[at..c]);
        at = c;
        drain(&mut conn, &mut events)?;
        // Poke it: commands either work or fail with a UsageError.
        let t = now + Duration::from_millis(i as u64);
        match i % 4 {
            0 => drop(conn.send_text("poke")),
            1 => drop(conn.send_ping(t, b"p")),
            2 => drop(conn.send_fragment(MessageKind::Binary, b"f", i % 8 == 2)),
            _ => conn.handle_timeout(t),
        }
        let _ = conn.wants_read();
        let _ = conn.read_hint(1);
        drain(&mut conn, &mut events)?;
        if conn.is_open() {
            prop_assert!(conn.send_pong(b"").is_ok());
        }
    }
    conn.handle_eof(now);
    drain(&mut conn, &mut events)?;
    conn.handle_timeout(now + Duration::from_secs(1000));
    drain(&mut conn, &mut events)?;
    prop_assert_eq!(closed, 1, "{:?} {:?}", s, events);
    prop_assert!(conn.is_closed());
    prop_assert_eq!(conn.poll_timeout(), None);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(
        s in proptest::sample::select(STARTS.to_vec()),
        config in random_config(),
        input in proptest::collection::vec(any::<u8>(), 0..300),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        decide in any::<u8>(),
    ) {
        survive(s, &config, &input, &cuts, decide)?;
    }

    #[test]
    fn mutated_streams_never_panic(
        s in proptest::sample::select(STARTS.to_vec()),
        config in prop_oneof![3 => Just(seeded()), 1 => random_config()],
        muts in proptest::collection::vec(mutation(), 0..4),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        decide in any::<u8>(),
    ) {
        let input = mutate(valid_stream(s), &muts);
        survive(s, &config, &input, &cuts, decide)?;
    }
}
