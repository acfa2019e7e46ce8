//! A client with a fixed key fed arbitrary bytes as the server's response.
//!
//! Input layout: `[ctl, ...]`.
//! * `ctl & 1 == 0`: the rest is the response, raw.
//! * `ctl & 1 == 1`: `[count, (pos, op, value) * (count % 4), tail...]`: a
//!   valid 101 for the fixed key (with `Sec-WebSocket-Protocol: chat` when
//!   `ctl & 2`), mutated by up to three byte edits, followed by `tail`
//!   (frames, usually).
//!
//! Other `ctl` bits pick chunking, a small head limit, and an EOF at the end.
//!
//! Invariants: no panic; the client's own output is a well-formed request
//! with the fixed key, then well-formed masked frames; `Connected` only when
//! `httparse` sees a complete 101 HTTP/1.1 head whose first
//! `Sec-WebSocket-Accept` is exactly the right value (computed outside the
//! library), and always for the unmutated valid response; otherwise either
//! more bytes are needed (no event, `httparse` agrees) or `Closed` with a
//! handshake error and nothing transmitted beyond the request.
#![no_main]

use std::time::Instant;

use hookup_fuzz::{EventChecker, MAX_HEADERS, WireChecker};
use hookup_proto::{ClientRequest, Config, Connection, Error, Event, Role, State};
use hookup_sim::Rng;
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 16] = *b"hookup-fuzz-key!";
/// base64 of `KEY`.
const KEY_B64: &str = "aG9va3VwLWZ1enota2V5IQ==";
/// `Sec-WebSocket-Accept` for `KEY_B64`, computed independently (Python's
/// hashlib and base64).
const ACCEPT: &str = "SiBfGkgld99OIGuQzm6EFQADWAA=";

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let with_protocol = ctl & 2 != 0;
    let (input, pristine) = if ctl & 1 == 0 {
        (rest.to_vec(), false)
    } else {
        valid_with_edits(rest, with_protocol)
    };

    let now = Instant::now();
    let mut config = Config::default();
    config.rng_seed = Some([9; 32]);
    config.max_frame_size = 256;
    config.max_message_size = 512;
    let small_head = ctl & 0x40 != 0;
    if small_head {
        config.max_head_size = 100;
    }
    let mut request = ClientRequest::new("ws://fuzz.invalid/chat")
        .unwrap()
        .with_key(KEY);
    if with_protocol {
        request = request
            .protocol("chat")
            .unwrap()
            .protocol("superchat")
            .unwrap();
    }
    let mut client = Connection::client(&request, config.clone(), now);
    let mut checker = EventChecker::new(Role::Client, &config, false);
    let mut wire = WireChecker::new(Role::Client, true);

    let mut req_bytes = Vec::new();
    client.poll_transmit(&mut req_bytes);
    check_request(&req_bytes);
    wire.feed(&req_bytes);
    assert!(wire.at_boundary() && wire.in_frames());

    let chunks = if ctl & 4 != 0 {
        Rng::new(u64::from(ctl)).split(&input, 1 + usize::from((ctl >> 3) & 7) * 7)
    } else {
        vec![&input[..]]
    };
    let mut fed = 0;
    let mut connected_at = None;
    let mut transmitted_before_connect = 0;
    for chunk in chunks {
        client.handle_input(now, chunk);
        fed += chunk.len();
        while let Some(ev) = client.poll_event() {
            checker.on_event(&ev);
            if let Event::Connected(r) = &ev {
                connected_at = Some(fed);
                if let Some(p) = &r.subprotocol {
                    assert!(with_protocol && (p == "chat" || p == "superchat"));
                }
            }
        }
        let mut out = Vec::new();
        client.poll_transmit(&mut out);
        if connected_at.is_none() {
            transmitted_before_connect += out.len();
        }
        wire.feed(&out);
        assert!(wire.at_boundary());
    }
    assert_eq!(
        transmitted_before_connect, 0,
        "client sent bytes before Connected"
    );

    match connected_at {
        Some(fed) => check_valid_101(&input[..fed]),
        None => {
            assert!(
                !pristine || small_head,
                "valid 101 refused: {:?}",
                checker.closed
            );
            match client.state() {
                State::AwaitingResponse => {
                    assert_eq!(checker.count, 0);
                    assert!(input.len() <= config.max_head_size);
                    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let parsed = httparse::Response::new(&mut raw).parse(&input);
                    assert!(
                        matches!(parsed, Ok(httparse::Status::Partial)),
                        "client waits for more bytes but httparse says {parsed:?}"
                    );
                }
                State::Closed => {
                    let closed = checker.closed.clone().expect("Closed event");
                    assert!(
                        matches!(closed.error, Some(Error::Handshake(_))),
                        "{closed:?}"
                    );
                    assert_eq!(wire.total, req_bytes.len());
                    assert!(client.send_text("x").is_err());
                }
                s => panic!("state {s:?} without Connected"),
            }
        }
    }

    if ctl & 0x80 != 0 {
        let was_closed = client.is_closed();
        client.handle_eof(now);
        while let Some(ev) = client.poll_event() {
            assert!(!was_closed, "event after Closed");
            checker.on_event(&ev);
        }
        assert!(client.is_closed());
        assert!(checker.closed.is_some());
        let mut out = Vec::new();
        client.poll_transmit(&mut out);
        wire.feed(&out);
        assert!(wire.at_boundary());
    }
});

/// The client's request: GET, HTTP/1.1, the fixed key.
fn check_request(bytes: &[u8]) {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut raw);
    assert_eq!(
        req.parse(bytes),
        Ok(httparse::Status::Complete(bytes.len()))
    );
    let key: Vec<_> = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
        .map(|h| h.value)
        .collect();
    assert_eq!(key, [KEY_B64.as_bytes()]);
}

/// Checked outside the library: the bytes fed up to `Connected` hold a
/// complete 101 HTTP/1.1 head whose first `Sec-WebSocket-Accept` is right.
fn check_valid_101(fed: &[u8]) {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut raw);
    let Ok(httparse::Status::Complete(_)) = resp.parse(fed) else {
        panic!("Connected but httparse sees no complete head");
    };
    assert_eq!(resp.version, Some(1));
    assert_eq!(resp.code, Some(101));
    let accept = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
        .expect("Connected without Sec-WebSocket-Accept");
    assert_eq!(
        accept.value,
        ACCEPT.as_bytes(),
        "Connected with a wrong accept key"
    );
}

/// A valid 101 for `KEY`, with byte edits from `rest`, then the tail of `rest`.
/// Returns the input and whether it is unmutated.
fn valid_with_edits(rest: &[u8], with_protocol: bool) -> (Vec<u8>, bool) {
    let mut head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {ACCEPT}\r\n"
    );
    if with_protocol {
        head.push_str("Sec-WebSocket-Protocol: chat\r\n");
    }
    head.push_str("\r\n");
    let mut input = head.into_bytes();
    let Some((&count, mut rest)) = rest.split_first() else {
        return (input, true);
    };
    let count = count % 4;
    let mut pristine = true;
    for _ in 0..count {
        let [pos, op, value, more @ ..] = rest else {
            break;
        };
        rest = more;
        let pos = usize::from(*pos) % (input.len() + 1);
        match op % 4 {
            0 if pos < input.len() => input[pos] ^= value | 1,
            1 => input.insert(pos, *value),
            2 if pos < input.len() => {
                input.remove(pos);
            }
            _ => input.truncate(pos),
        }
        pristine = false;
    }
    input.extend_from_slice(rest);
    (input, pristine)
}
