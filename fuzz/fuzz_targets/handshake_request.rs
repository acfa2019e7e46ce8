//! A server fed arbitrary bytes as the client's upgrade request.
//!
//! Input layout: `[ctl, request...]`; `ctl` picks the head limit, chunking,
//! what happens when the head stays incomplete (nothing, EOF or the handshake
//! timeout) and whether `accept` picks the first offered subprotocol.
//!
//! Invariants: no panic, and exactly one of
//! * more bytes needed: no event, nothing transmitted, `httparse` agrees the
//!   head is incomplete and it is within `max_head_size`; a later EOF closes
//!   silently, a later timeout answers 408;
//! * `Event::Request` (and `httparse` parses the same head): for an upgrade,
//!   `accept()` succeeds and transmits a 101 whose `Sec-WebSocket-Accept` is
//!   right and which a client with the same key accepts; for plain HTTP,
//!   `accept()` fails and `reject()` sends a well-formed response;
//! * `Event::Closed` with a handshake error, after a complete HTTP error
//!   response whose status is the error's.
//!
//! Everything transmitted goes through the wire checker.
#![no_main]

use std::time::{Duration, Instant};

use base64::Engine as _;
use hookup_fuzz::{EventChecker, MAX_HEADERS, WireChecker, parse_error_response};
use hookup_proto::http::{HeaderMap, StatusCode};
use hookup_proto::{
    Accept, ClientRequest, Config, Connection, Error, Event, HandshakeError, Role, State,
    UsageError,
};
use hookup_sim::Rng;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, bytes)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let mut config = Config::default();
    config.rng_seed = Some([3; 32]);
    config.max_frame_size = 64;
    config.max_message_size = 128;
    if ctl & 1 != 0 {
        config.max_head_size = 256;
    }
    let mut server = Connection::server(config.clone(), now);
    let mut checker = EventChecker::new(Role::Server, &config, false);
    let mut wire = WireChecker::new(Role::Server, true);
    let mut out = Vec::new();
    let mut request = None;

    let chunks = if ctl & 2 != 0 {
        Rng::new(u64::from(ctl)).split(bytes, 1 + usize::from((ctl >> 2) & 7) * 9)
    } else {
        vec![bytes]
    };
    let mut fed = 0;
    for chunk in chunks {
        if !server.wants_read() {
            break;
        }
        server.handle_input(now, chunk);
        fed += chunk.len();
        while let Some(ev) = server.poll_event() {
            checker.on_event(&ev);
            if let Event::Request(r) = ev {
                request = Some(r);
            }
        }
        let before = out.len();
        server.poll_transmit(&mut out);
        wire.feed(&out[before..]);
        assert!(wire.at_boundary());
    }
    let fed = &bytes[..fed];

    match server.state() {
        State::AwaitingRequest => {
            assert_eq!(checker.count, 0);
            assert!(out.is_empty(), "transmitted while waiting for the head");
            assert!(fed.len() <= config.max_head_size);
            let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let parsed = httparse::Request::new(&mut raw).parse(fed);
            assert!(
                matches!(parsed, Ok(httparse::Status::Partial)),
                "library waits for more bytes but httparse says {parsed:?}"
            );
            match (ctl >> 5) & 3 {
                1 => {
                    server.handle_eof(now);
                    let closed = expect_closed(&mut server, &mut checker);
                    assert_eq!(closed.error, Some(Error::Handshake(HandshakeError::Eof)));
                    assert_eq!(server.transmit_len(), 0);
                }
                2 => {
                    let t = server.poll_timeout().expect("handshake timer");
                    assert_eq!(t, now + config.handshake_timeout.unwrap());
                    server.handle_timeout(t - Duration::from_millis(1));
                    assert_eq!(server.state(), State::AwaitingRequest, "timer fired early");
                    server.handle_timeout(t);
                    let closed = expect_closed(&mut server, &mut checker);
                    assert_eq!(
                        closed.error,
                        Some(Error::Handshake(HandshakeError::Timeout))
                    );
                    let mut resp = Vec::new();
                    server.poll_transmit(&mut resp);
                    assert_eq!(parse_error_response(&resp), 408);
                }
                _ => {}
            }
        }
        State::AwaitingDecision => {
            let req = request.expect("AwaitingDecision without a Request event");
            assert!(out.is_empty());
            // httparse agrees on the head.
            let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Request::new(&mut raw);
            let Ok(httparse::Status::Complete(n)) = parsed.parse(fed) else {
                panic!("library saw a request that httparse does not");
            };
            assert!(n <= config.max_head_size);
            assert_eq!(parsed.method, Some(req.method().as_str()));
            assert_eq!(parsed.version, Some(1));
            if req.is_websocket() {
                accept(&mut server, &mut checker, &mut wire, &req, ctl & 0x80 != 0);
            } else {
                assert_eq!(
                    server.accept(Accept::new()).unwrap_err(),
                    UsageError::NotAnUpgrade
                );
                assert_eq!(server.state(), State::AwaitingDecision);
                let status = [400, 404, 200, 426][usize::from(ctl >> 6)];
                let status = StatusCode::from_u16(status).unwrap();
                server.reject(status, &HeaderMap::new(), b"nope").unwrap();
                let closed = expect_closed(&mut server, &mut checker);
                assert!(closed.clean && closed.error.is_none());
                let mut resp = Vec::new();
                server.poll_transmit(&mut resp);
                assert_eq!(parse_error_response(&resp), status.as_u16());
                assert!(server.accept(Accept::new()).is_err());
            }
        }
        State::Closed => {
            let closed = checker.closed.clone().expect("Closed state without event");
            let Some(Error::Handshake(err)) = closed.error else {
                panic!("closed without a handshake error: {closed:?}");
            };
            assert!(request.is_none());
            assert_eq!(parse_error_response(&out), err.status());
            assert!(server.accept(Accept::new()).is_err());
        }
        s => panic!("unexpected state {s:?}"),
    }
});

fn expect_closed(conn: &mut Connection, checker: &mut EventChecker) -> hookup_proto::Closed {
    while let Some(ev) = conn.poll_event() {
        checker.on_event(&ev);
    }
    assert!(conn.is_closed());
    assert_eq!(conn.poll_timeout(), None);
    checker.closed.clone().expect("Closed event")
}

fn accept(
    server: &mut Connection,
    checker: &mut EventChecker,
    wire: &mut WireChecker,
    req: &hookup_proto::Request,
    pick_protocol: bool,
) {
    let protocol = req
        .subprotocols()
        .first()
        .filter(|_| pick_protocol)
        .cloned();
    let mut a = Accept::new();
    if let Some(p) = &protocol {
        a = a.subprotocol(p.clone());
    }
    server.accept(a).expect("accept of a valid upgrade");
    assert!(server.accept(Accept::new()).is_err(), "second accept");
    while let Some(ev) = server.poll_event() {
        checker.on_event(&ev);
    }
    assert!(checker.connected);
    assert!(matches!(
        server.state(),
        State::Open | State::Closed | State::ClosingLocal
    ));
    let mut resp = Vec::new();
    server.poll_transmit(&mut resp);
    wire.feed(&resp);
    assert!(wire.at_boundary());
    assert_eq!(wire.status, Some(101));

    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut raw);
    let Ok(httparse::Status::Complete(n)) = parsed.parse(&resp) else {
        panic!("101 does not parse");
    };
    let key = req
        .headers()
        .get("sec-websocket-key")
        .expect("key")
        .as_bytes()
        .trim_ascii();
    let expected = hookup_proto::handshake::accept_key(key);
    let got: Vec<_> = parsed
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|h| h.value)
        .collect();
    assert_eq!(got, [expected.as_bytes()]);

    // A client that sent this key accepts the 101.
    let raw_key: [u8; 16] = base64::engine::general_purpose::STANDARD
        .decode(key)
        .expect("server accepted a key that is not base64")
        .try_into()
        .expect("server accepted a key that is not 16 bytes");
    let mut client_req = ClientRequest::new("ws://fuzz.invalid/")
        .unwrap()
        .with_key(raw_key);
    if let Some(p) = &protocol {
        match client_req.clone().protocol(p.clone()) {
            Ok(r) => client_req = r,
            // Not a token: a real client could not have offered it.
            Err(_) => return,
        }
    }
    let now = Instant::now();
    let mut client = Connection::client(&client_req, Config::default(), now);
    let mut sent = Vec::new();
    client.poll_transmit(&mut sent);
    client.handle_input(now, &resp[..n]);
    match client.poll_event() {
        Some(Event::Connected(r)) => assert_eq!(r.subprotocol, protocol),
        other => panic!("client rejected the server's 101: {other:?}"),
    }
    assert_eq!(client.state(), State::Open);
}
