//! Tests of permessage-deflate: negotiation for every offer and response
//! form, round trips with and without context takeover, the decompression
//! bomb guard and RSV1 misuse.
//
// Compiled only under #[cfg(test)] (see `mod tests` in deflate.rs), so the
// sans-IO check in .ci/run skips this file like other test modules.
#![allow(clippy::field_reassign_with_default)]

use std::time::Instant;

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};
use http::HeaderMap;
use http::header::SEC_WEBSOCKET_EXTENSIONS;

use super::*;
use crate::frame::{FrameHeader, OpCode};
use crate::mask::apply_mask;
use crate::{
    Accept, ClientRequest, CloseCode, Closed, Config, Connection, Error, Event, Message, Role,
};

// ------------------------------------------------------------ helpers

fn headers(values: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        h.append(SEC_WEBSOCKET_EXTENSIONS, HeaderValue::from_str(v).unwrap());
    }
    h
}

/// The server's answer to one offer header with `config`.
fn accept_with(offer: &str, config: &DeflateConfig) -> Option<(DeflateParams, String)> {
    server_accept(&headers(&[offer]), config).map(|(p, v)| (p, v.to_str().unwrap().to_owned()))
}

fn accept(offer: &str) -> Option<(DeflateParams, String)> {
    accept_with(offer, &DeflateConfig::default())
}

fn params(local_nct: bool, remote_nct: bool, local_bits: u8, remote_bits: u8) -> DeflateParams {
    DeflateParams {
        local_no_context_takeover: local_nct,
        remote_no_context_takeover: remote_nct,
        local_max_window_bits: local_bits,
        remote_max_window_bits: remote_bits,
    }
}

fn check(response: &str, config: &DeflateConfig) -> Result<Option<DeflateParams>, HandshakeError> {
    client_check_response(&headers(&[response]), config)
}

fn deflate_config() -> Config {
    let mut c = Config::default();
    c.deflate = Some(DeflateConfig::default());
    c.rng_seed = Some([3; 32]);
    c
}

/// A client and a server connected in memory.
struct Pair {
    client: Connection,
    server: Connection,
    now: Instant,
}

impl Pair {
    fn new(client: Config, server: Config) -> Self {
        let now = Instant::now();
        let request = ClientRequest::new("ws://example.com/x").unwrap();
        let mut pair = Self {
            client: Connection::client(&request, client, now),
            server: Connection::server(server, now),
            now,
        };
        let wire = pair.client_out();
        pair.server.handle_input(now, &wire);
        match pair.server.poll_event() {
            Some(Event::Request(_)) => pair.server.accept(Accept::new()).unwrap(),
            other => panic!("expected a request, got {other:?}"),
        }
        assert!(matches!(
            pair.server.poll_event(),
            Some(Event::Connected(_))
        ));
        let wire = pair.server_out();
        pair.client.handle_input(now, &wire);
        match pair.client.poll_event() {
            Some(Event::Connected(_)) => {}
            other => panic!("expected connected, got {other:?}"),
        }
        pair
    }

    fn client_out(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        self.client.poll_transmit(&mut v);
        v
    }

    fn server_out(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        self.server.poll_transmit(&mut v);
        v
    }

    /// Moves the client's output to the server; returns the server's events.
    fn pump_to_server(&mut self) -> (Vec<u8>, Vec<Event>) {
        let wire = self.client_out();
        self.server.handle_input(self.now, &wire);
        (wire, drain(&mut self.server))
    }

    fn pump_to_client(&mut self) -> (Vec<u8>, Vec<Event>) {
        let wire = self.server_out();
        self.client.handle_input(self.now, &wire);
        (wire, drain(&mut self.client))
    }
}

fn drain(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

/// Decodes the frames in `wire`, unmasking them: (header, payload).
fn frames(mut wire: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
    let mut out = Vec::new();
    while !wire.is_empty() {
        let (h, n) = FrameHeader::decode(wire).unwrap().unwrap();
        let len = h.payload_len as usize;
        let mut payload = wire[n..n + len].to_vec();
        if let Some(k) = h.mask {
            apply_mask(&mut payload, k, 0);
        }
        out.push((h, payload));
        wire = &wire[n + len..];
    }
    out
}

fn messages(events: &[Event]) -> Vec<Message> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn closed(events: &[Event]) -> Option<&Closed> {
    events.iter().find_map(|e| match e {
        Event::Closed(c) => Some(c),
        _ => None,
    })
}

/// Compressible JSON-like text of about `n` bytes.
fn json(n: usize) -> String {
    let mut s = String::from("[");
    let mut i = 0u64;
    while s.len() < n {
        s.push_str(&format!(
            r#"{{"id":{i},"user":"user{}","kind":"{}","price":{}.{:02}}},"#,
            i * 7919 % 1000,
            if i.is_multiple_of(3) {
                "trade"
            } else {
                "quote"
            },
            i * 104_729 % 1000,
            i % 100
        ));
        i += 1;
    }
    s.push(']');
    s
}

/// Raw deflate of `data` as a permessage-deflate payload (trailer stripped).
fn compress_raw(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new_with_window_bits(Compression::new(6), false, 15);
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    assert!(compress_into(&mut c, data, &mut out, FlushCompress::Sync));
    assert!(out.ends_with(&TRAILER));
    out.truncate(out.len() - 4);
    out
}

/// A masked frame to a server.
fn client_frame(fin: bool, rsv: u8, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let key = [1, 2, 3, 4];
    let h = FrameHeader {
        fin,
        rsv,
        opcode,
        mask: Some(key),
        payload_len: payload.len() as u64,
    };
    let mut out = Vec::new();
    h.encode(&mut out);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key, 0);
    out
}

/// An open server with permessage-deflate (default parameters).
fn open_server(config: Config) -> Connection {
    Connection::new_open_with_deflate(
        Role::Server,
        config,
        Some(DeflateParams::default()),
        Instant::now(),
    )
}

fn protocol_error(events: &[Event]) -> (CloseCode, ProtocolError) {
    let c = closed(events).expect("closed");
    match &c.error {
        Some(Error::Protocol(e)) => (c.sent.as_ref().unwrap().code, e.clone()),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

// ------------------------------------------------------------ parsing

#[test]
fn parses_lists_params_quotes_and_recovers_from_junk() {
    let h = headers(&[
        "foo, permessage-deflate; client_max_window_bits; server_max_window_bits=\"10\" ,, bar;x=y",
        "baz;;, qux",
    ]);
    let exts = parse_extensions(&h);
    let names: Vec<_> = exts
        .iter()
        .map(|e| e.as_ref().map(|e| e.name.as_str()).unwrap_or("<bad>"))
        .collect();
    assert_eq!(names, ["foo", "permessage-deflate", "bar", "<bad>", "qux"]);
    assert_eq!(
        exts[1].as_ref().unwrap().params,
        [
            ("client_max_window_bits".to_owned(), None),
            ("server_max_window_bits".to_owned(), Some("10".to_owned())),
        ]
    );
    for bad in [
        "permessage-deflate; x=\"a b\"",
        "permessage-deflate x",
        "permessage-deflate; =1",
        "=",
        "permessage-deflate; a=\"unterminated",
    ] {
        assert_eq!(parse_extensions(&headers(&[bad])), [Err(())], "{bad}");
    }
}

#[test]
fn window_bits_are_8_to_15_without_leading_zeros() {
    for (v, ok) in [
        ("8", true),
        ("15", true),
        ("9", true),
        ("7", false),
        ("16", false),
        ("08", false),
        ("010", false),
        ("", false),
        ("+9", false),
        ("1a", false),
    ] {
        assert_eq!(window_bits(v).is_some(), ok, "{v}");
    }
}

// ------------------------------------------------------------ server side

#[test]
fn server_accepts_every_valid_offer_form() {
    let d = DeflateParams::default();
    let cases: &[(&str, &str, DeflateParams)] = &[
        ("permessage-deflate", "permessage-deflate", d),
        (
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate",
            d,
        ),
        (
            "permessage-deflate; client_max_window_bits=10",
            "permessage-deflate; client_max_window_bits=10",
            params(false, false, 15, 10),
        ),
        (
            "permessage-deflate; server_max_window_bits=10",
            "permessage-deflate; server_max_window_bits=10",
            params(false, false, 10, 15),
        ),
        (
            "permessage-deflate; server_max_window_bits=15",
            "permessage-deflate; server_max_window_bits=15",
            d,
        ),
        (
            // zlib cannot compress with 8: accepted, then sent uncompressed.
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; server_max_window_bits=8",
            params(false, false, 8, 15),
        ),
        (
            "permessage-deflate; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover",
            params(true, false, 15, 15),
        ),
        (
            // A client's hint needs no answer.
            "permessage-deflate; client_no_context_takeover",
            "permessage-deflate",
            d,
        ),
        (
            "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; server_max_window_bits=9",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
            params(true, false, 9, 15),
        ),
        (
            "Permessage-Deflate; Server_Max_Window_Bits=\"12\"",
            "permessage-deflate; server_max_window_bits=12",
            params(false, false, 12, 15),
        ),
    ];
    for (offer, response, p) in cases {
        assert_eq!(
            accept(offer),
            Some((*p, (*response).to_owned())),
            "offer {offer}"
        );
    }
}

#[test]
fn server_applies_its_own_preferences() {
    let mut c = DeflateConfig::default();
    c.local_no_context_takeover = true;
    c.remote_no_context_takeover = true;
    c.local_max_window_bits = 12;
    c.remote_max_window_bits = 11;
    assert_eq!(
        accept_with("permessage-deflate; client_max_window_bits", &c),
        Some((
            params(true, true, 12, 11),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11".into()
        ))
    );
    // The smaller of the offer's and ours; a client that did not offer
    // client_max_window_bits cannot be limited.
    assert_eq!(
        accept_with("permessage-deflate; server_max_window_bits=10; client_max_window_bits=9", &c),
        Some((
            params(true, true, 10, 9),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9".into()
        ))
    );
    assert_eq!(
        accept_with("permessage-deflate", &c).unwrap().0,
        params(true, true, 12, 15)
    );
    // Out-of-range settings are clamped (zlib compresses with 9 at least).
    c.local_max_window_bits = 4;
    assert_eq!(
        accept_with("permessage-deflate", &c)
            .unwrap()
            .0
            .local_max_window_bits,
        9
    );
}

#[test]
fn server_declines_invalid_offers() {
    for offer in [
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover=true",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; client_max_window_bits=0",
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; unknown_param",
        "permessage-deflate; mux=1",
        "permessage-deflate;;",
        "permessage-deflate; server_max_window_bits=\"1 0\"",
        "x-webkit-deflate-frame",
        "deflate-frame; no_context_takeover",
    ] {
        assert_eq!(accept(offer), None, "offer {offer}");
    }
}

#[test]
fn server_falls_back_to_the_next_offer_and_ignores_other_extensions() {
    assert_eq!(
        accept("permessage-deflate; server_max_window_bits=7, permessage-deflate; server_no_context_takeover, permessage-deflate")
            .unwrap()
            .1,
        "permessage-deflate; server_no_context_takeover"
    );
    assert_eq!(
        accept("x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=12")
            .unwrap()
            .1,
        "permessage-deflate; client_max_window_bits=12"
    );
    // Offers spread over several header lines.
    let h = headers(&[
        "foo",
        "permessage-deflate; bogus",
        "permessage-deflate; server_max_window_bits=11",
    ]);
    assert_eq!(
        server_accept(&h, &DeflateConfig::default()).unwrap().1,
        "permessage-deflate; server_max_window_bits=11"
    );
    assert_eq!(
        server_accept(&HeaderMap::new(), &DeflateConfig::default()),
        None
    );
}

// ------------------------------------------------------------ client side

#[test]
fn client_offers_what_it_is_configured_for() {
    let mut c = DeflateConfig::default();
    assert_eq!(
        client_offer(&c),
        "permessage-deflate; client_max_window_bits"
    );
    c.local_no_context_takeover = true;
    c.remote_no_context_takeover = true;
    c.local_max_window_bits = 10;
    c.remote_max_window_bits = 9;
    assert_eq!(
        client_offer(&c),
        "permessage-deflate; client_no_context_takeover; server_no_context_takeover; client_max_window_bits=10; server_max_window_bits=9"
    );
    // Every offer the client makes is one a server accepts.
    assert!(
        server_accept(
            &headers(&[client_offer(&c).to_str().unwrap()]),
            &DeflateConfig::default()
        )
        .is_some()
    );
}

#[test]
fn client_accepts_every_valid_response_form() {
    let c = DeflateConfig::default();
    let cases: &[(&str, DeflateParams)] = &[
        ("permessage-deflate", DeflateParams::default()),
        (
            "permessage-deflate; server_no_context_takeover",
            params(false, true, 15, 15),
        ),
        (
            "permessage-deflate; client_no_context_takeover",
            params(true, false, 15, 15),
        ),
        (
            "permessage-deflate; server_max_window_bits=10",
            params(false, false, 15, 10),
        ),
        (
            "permessage-deflate; server_max_window_bits=8",
            params(false, false, 15, 8),
        ),
        (
            "permessage-deflate; client_max_window_bits=9",
            params(false, false, 9, 15),
        ),
        (
            "permessage-deflate; client_max_window_bits=8",
            params(false, false, 8, 15),
        ),
        (
            "permessage-deflate; client_no_context_takeover; server_no_context_takeover; client_max_window_bits=12; server_max_window_bits=13",
            params(true, true, 12, 13),
        ),
    ];
    for (response, p) in cases {
        assert_eq!(check(response, &c), Ok(Some(*p)), "response {response}");
    }
    assert_eq!(client_check_response(&HeaderMap::new(), &c), Ok(None));

    // What was asked for, granted (or bettered).
    let mut c = DeflateConfig::default();
    c.remote_no_context_takeover = true;
    c.remote_max_window_bits = 10;
    c.local_max_window_bits = 11;
    c.local_no_context_takeover = true;
    assert_eq!(
        check(
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
            &c
        ),
        Ok(Some(params(true, true, 11, 9)))
    );
    assert_eq!(
        check(
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=11",
            &c
        ),
        Ok(Some(params(true, true, 11, 10)))
    );
}

#[test]
fn client_fails_on_responses_the_offer_did_not_allow() {
    let c = DeflateConfig::default();
    for response in [
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits=9; client_max_window_bits=9",
        "permessage-deflate; foo",
        "permessage-deflate, permessage-deflate",
        "permessage-deflate;;",
    ] {
        assert!(
            matches!(
                check(response, &c),
                Err(HandshakeError::InvalidExtension(_))
            ),
            "response {response}: {:?}",
            check(response, &c)
        );
    }
    assert_eq!(
        check("x-webkit-deflate-frame", &c),
        Err(HandshakeError::UnrequestedExtension(
            "x-webkit-deflate-frame".into()
        ))
    );
    let mut c = DeflateConfig::default();
    c.remote_no_context_takeover = true;
    c.remote_max_window_bits = 10;
    c.local_max_window_bits = 11;
    for response in [
        // server_no_context_takeover asked, not granted
        "permessage-deflate; server_max_window_bits=10",
        // server_max_window_bits asked, not granted, or larger
        "permessage-deflate; server_no_context_takeover",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=11",
        // client_max_window_bits larger than offered
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12",
    ] {
        assert!(
            matches!(
                check(response, &c),
                Err(HandshakeError::InvalidExtension(_))
            ),
            "response {response}"
        );
    }
}

#[test]
fn handshake_negotiates_only_when_both_want_it() {
    let pair = Pair::new(deflate_config(), deflate_config());
    assert_eq!(
        pair.client.permessage_deflate(),
        Some(&DeflateParams::default())
    );
    assert_eq!(
        pair.server.permessage_deflate(),
        Some(&DeflateParams::default())
    );

    let pair = Pair::new(deflate_config(), Config::default());
    assert_eq!(pair.client.permessage_deflate(), None);
    assert_eq!(pair.server.permessage_deflate(), None);

    let pair = Pair::new(Config::default(), deflate_config());
    assert_eq!(pair.client.permessage_deflate(), None);
    assert_eq!(pair.server.permessage_deflate(), None);

    // Both ends' preferences meet in the middle.
    let mut client = deflate_config();
    let mut server = deflate_config();
    let cd = client.deflate.as_mut().unwrap();
    cd.local_no_context_takeover = true;
    cd.remote_max_window_bits = 10;
    let sd = server.deflate.as_mut().unwrap();
    sd.remote_max_window_bits = 12;
    let pair = Pair::new(client, server);
    assert_eq!(
        pair.client.permessage_deflate(),
        Some(&params(true, false, 12, 10))
    );
    assert_eq!(
        pair.server.permessage_deflate(),
        Some(&params(false, false, 10, 12))
    );
}

#[test]
fn client_rejects_a_deflate_response_it_did_not_offer() {
    let now = Instant::now();
    let request = ClientRequest::new("ws://example.com/")
        .unwrap()
        .with_key([0; 16]);
    let mut client = Connection::client(&request, Config::default(), now);
    let accept = crate::handshake::accept_key(b"AAAAAAAAAAAAAAAAAAAAAA==");
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    );
    client.handle_input(now, resp.as_bytes());
    let events = drain(&mut client);
    assert!(matches!(
        closed(&events).unwrap().error,
        Some(Error::Handshake(HandshakeError::UnrequestedExtension(_)))
    ));
}

// ------------------------------------------------------------ messages

#[test]
fn round_trip_compresses_above_the_threshold_only() {
    let mut p = Pair::new(deflate_config(), deflate_config());
    let big = json(16 << 10);
    p.client.send_text(&big).unwrap();
    p.client.send_text("small").unwrap();
    p.client.send_binary(big.as_bytes()).unwrap();
    let (wire, events) = p.pump_to_server();
    let f = frames(&wire);
    assert_eq!(f.len(), 3);
    assert_eq!(f[0].0.rsv, RSV1_BIT);
    assert!(f[0].1.len() < big.len() / 3, "{} bytes", f[0].1.len());
    assert_eq!(f[1].0.rsv, 0, "below the threshold: uncompressed");
    assert_eq!(f[1].1, b"small");
    assert_eq!(f[2].0.rsv, RSV1_BIT);
    assert_eq!(
        messages(&events),
        [
            Message::text(big.clone()),
            Message::text("small"),
            Message::binary(big.clone().into_bytes())
        ]
    );
    // And back, from the server (zero-copy sized payloads too).
    for m in messages(&events) {
        p.server.send(m).unwrap();
    }
    let (wire, events) = p.pump_to_client();
    assert_eq!(frames(&wire)[0].0.rsv, RSV1_BIT);
    assert_eq!(messages(&events).len(), 3);
    assert_eq!(messages(&events)[2], Message::binary(big.into_bytes()));
}

const RSV1_BIT: u8 = 0b100;

#[test]
fn context_takeover_shrinks_repeats_and_no_context_takeover_resets() {
    let msg = json(4 << 10);
    for local_nct in [false, true] {
        let mut client = deflate_config();
        client.deflate.as_mut().unwrap().local_no_context_takeover = local_nct;
        let mut p = Pair::new(client, deflate_config());
        assert!(
            !p.server
                .permessage_deflate()
                .unwrap()
                .remote_no_context_takeover
        );
        let mut sizes = Vec::new();
        for _ in 0..3 {
            p.client.send_text(&msg).unwrap();
            let (wire, events) = p.pump_to_server();
            sizes.push(frames(&wire)[0].1.len());
            assert_eq!(messages(&events), [Message::text(msg.clone())]);
        }
        if local_nct {
            assert!(sizes.iter().all(|&s| s == sizes[0]), "{sizes:?}");
        } else {
            // The repeat is one back-reference away.
            assert!(sizes[1] < sizes[0] / 10, "{sizes:?}");
        }
    }
    // The server resets when the client asks it to.
    let mut client = deflate_config();
    client.deflate.as_mut().unwrap().remote_no_context_takeover = true;
    let mut p = Pair::new(client, deflate_config());
    assert!(
        p.server
            .permessage_deflate()
            .unwrap()
            .local_no_context_takeover
    );
    let mut sizes = Vec::new();
    for _ in 0..3 {
        p.server.send_text(&msg).unwrap();
        let (wire, events) = p.pump_to_client();
        sizes.push(frames(&wire)[0].1.len());
        assert_eq!(messages(&events), [Message::text(msg.clone())]);
    }
    assert!(sizes.iter().all(|&s| s == sizes[0]), "{sizes:?}");
}

#[test]
fn small_windows_round_trip_and_window_8_sends_uncompressed() {
    for bits in [8u8, 9, 12] {
        let mut client = deflate_config();
        client.deflate.as_mut().unwrap().remote_max_window_bits = bits;
        client.deflate.as_mut().unwrap().local_max_window_bits = bits;
        let mut p = Pair::new(client, deflate_config());
        assert_eq!(
            p.server.permessage_deflate().unwrap().local_max_window_bits,
            bits
        );
        let msg = json(64 << 10);
        p.server.send_text(&msg).unwrap();
        let (wire, events) = p.pump_to_client();
        assert_eq!(
            frames(&wire)[0].0.rsv,
            if bits == 8 { 0 } else { RSV1_BIT },
            "bits {bits}"
        );
        assert_eq!(messages(&events), [Message::text(msg.clone())]);
        p.client.send_text(&msg).unwrap();
        let (wire, events) = p.pump_to_server();
        // The client clamps its own window to 9 and offers 9.
        assert_eq!(frames(&wire)[0].0.rsv, RSV1_BIT);
        assert_eq!(messages(&events), [Message::text(msg)]);
    }
}

#[test]
fn fragmented_compressed_messages_both_ways() {
    let text = json(10 << 10);
    let (a, b) = text.as_bytes().split_at(4000);
    for stream in [false, true] {
        let mut server = deflate_config();
        server.stream_fragments = stream;
        let mut p = Pair::new(deflate_config(), server);
        p.client.send_fragment(MessageKind::Text, a, false).unwrap();
        p.client.send_fragment(MessageKind::Text, b, false).unwrap();
        p.client.send_ping(p.now, b"between").unwrap();
        p.client
            .send_fragment(MessageKind::Text, b"", true)
            .unwrap();
        let (wire, events) = p.pump_to_server();
        let f = frames(&wire);
        let rsv: Vec<_> = f.iter().map(|(h, _)| h.rsv).collect();
        assert_eq!(rsv, [RSV1_BIT, 0, 0, 0], "RSV1 on the first frame only");
        if stream {
            let mut got = Vec::new();
            for e in &events {
                if let Event::Fragment(f) = e {
                    got.extend_from_slice(&f.data);
                }
            }
            assert_eq!(got, text.as_bytes());
            assert!(matches!(events.last(), Some(Event::Fragment(f)) if f.fin));
        } else {
            assert_eq!(messages(&events), [Message::text(text.clone())]);
        }
        // A fragmented message whose first fragment is small goes uncompressed.
        p.client
            .send_fragment(MessageKind::Binary, b"x", false)
            .unwrap();
        p.client
            .send_fragment(MessageKind::Binary, a, true)
            .unwrap();
        let (wire, _) = p.pump_to_server();
        assert!(frames(&wire).iter().all(|(h, _)| h.rsv == 0));
    }
}

#[test]
fn many_messages_over_one_context_in_odd_read_sizes() {
    let mut p = Pair::new(deflate_config(), deflate_config());
    let mut sent = Vec::new();
    for i in 0..50 {
        let m = json(100 + i * 97);
        p.client.send_text(&m).unwrap();
        sent.push(Message::text(m));
    }
    let wire = p.client_out();
    let mut events = Vec::new();
    for chunk in wire.chunks(333) {
        p.server.handle_input(p.now, chunk);
        events.extend(drain(&mut p.server));
    }
    assert_eq!(messages(&events), sent);
}

#[test]
fn empty_message_and_send_parts() {
    let mut client = deflate_config();
    client.deflate.as_mut().unwrap().threshold = 0;
    let mut p = Pair::new(client, deflate_config());
    p.client.send_text("").unwrap();
    p.client
        .send_parts(MessageKind::Binary, &[b"header:", json(500).as_bytes()])
        .unwrap();
    let (wire, events) = p.pump_to_server();
    assert!(frames(&wire).iter().all(|(h, _)| h.rsv == RSV1_BIT));
    let mut expect = b"header:".to_vec();
    expect.extend_from_slice(json(500).as_bytes());
    assert_eq!(
        messages(&events),
        [Message::text(""), Message::binary(expect)]
    );
}

#[test]
fn a_final_block_ends_the_stream_and_the_next_message_starts_anew() {
    let mut server = open_server(Config::default());
    let now = Instant::now();
    for text in ["first message", "second message"] {
        let mut c = Compress::new_with_window_bits(Compression::new(6), false, 15);
        let mut out = Vec::with_capacity(256);
        c.compress_vec(text.as_bytes(), &mut out, FlushCompress::Finish)
            .unwrap();
        server.handle_input(now, &client_frame(true, RSV1_BIT, OpCode::Text, &out));
        let ev = drain(&mut server);
        assert_eq!(messages(&ev), [Message::text(text)], "{ev:?}");
    }
}

// ------------------------------------------------------------ failures

#[test]
fn decompression_bomb_closes_1009_with_bounded_memory() {
    let max = 1 << 20;
    let bomb = compress_raw(&vec![0u8; 32 << 20]);
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());

    // The codec on its own: it stops one byte past the limit.
    let mut d = Deflate::new(DeflateParams::default(), None);
    d.begin(MessageKind::Binary);
    let mut utf8 = Utf8Validator::default();
    let err = d.inflate(&bomb, true, max, &mut utf8).unwrap_err();
    assert_eq!(
        err,
        ProtocolError::MessageTooLarge {
            size: max as u64 + 1,
            max
        }
    );
    assert!(d.rx.as_ref().unwrap().out.capacity() <= max + 1);

    // A connection fails as the compressed bytes arrive, long before the
    // whole (small) frame has: the first 16 KiB inflate past 1 MiB.
    let mut config = Config::default();
    config.max_message_size = max;
    let mut server = open_server(config);
    let frame = client_frame(true, RSV1_BIT, OpCode::Binary, &bomb);
    let now = Instant::now();
    let mut fed = 0;
    let mut events = Vec::new();
    for chunk in frame.chunks(4096) {
        server.handle_input(now, chunk);
        fed += chunk.len();
        events.extend(drain(&mut server));
        if server.is_closed() {
            break;
        }
    }
    assert!(
        fed < frame.len() / 2,
        "failed after {fed} of {} bytes",
        frame.len()
    );
    let (code, err) = protocol_error(&events);
    assert_eq!(code, CloseCode::MESSAGE_TOO_BIG);
    assert!(matches!(err, ProtocolError::MessageTooLarge { .. }));
}

#[test]
fn the_limit_applies_to_the_decompressed_size_across_fragments() {
    let mut config = Config::default();
    config.max_message_size = 10_000;
    let data = json(12_000);
    let compressed = compress_raw(data.as_bytes());
    assert!(compressed.len() < 10_000);
    let (a, b) = compressed.split_at(compressed.len() / 2);
    let mut server = open_server(config.clone());
    server.handle_input(
        Instant::now(),
        &client_frame(false, RSV1_BIT, OpCode::Text, a),
    );
    server.handle_input(
        Instant::now(),
        &client_frame(true, 0, OpCode::Continuation, b),
    );
    let (code, _) = protocol_error(&drain(&mut server));
    assert_eq!(code, CloseCode::MESSAGE_TOO_BIG);

    // Exactly at the limit is fine.
    config.max_message_size = data.len();
    let mut server = open_server(config);
    server.handle_input(
        Instant::now(),
        &client_frame(true, RSV1_BIT, OpCode::Text, &compressed),
    );
    assert_eq!(messages(&drain(&mut server)), [Message::text(data)]);
}

#[test]
fn rsv1_misuse_fails_with_1002() {
    let now = Instant::now();
    let compressed = compress_raw(b"hello");
    let cases: Vec<(Vec<u8>, ProtocolError)> = vec![
        (
            [
                client_frame(false, 0, OpCode::Text, b"he"),
                client_frame(true, RSV1_BIT, OpCode::Continuation, b"llo"),
            ]
            .concat(),
            ProtocolError::CompressedContinuation,
        ),
        (
            [
                client_frame(false, RSV1_BIT, OpCode::Text, &compressed),
                client_frame(true, RSV1_BIT, OpCode::Continuation, b""),
            ]
            .concat(),
            ProtocolError::CompressedContinuation,
        ),
        (
            client_frame(true, RSV1_BIT, OpCode::Ping, b"p"),
            ProtocolError::CompressedControlFrame,
        ),
        (
            client_frame(true, RSV1_BIT, OpCode::Close, &[3, 232]),
            ProtocolError::CompressedControlFrame,
        ),
        (
            client_frame(true, 0b010, OpCode::Text, b"x"),
            ProtocolError::ReservedBits(0b010),
        ),
        (
            client_frame(true, 0b110, OpCode::Text, b"x"),
            ProtocolError::ReservedBits(0b110),
        ),
    ];
    for (wire, expected) in cases {
        let mut server = open_server(Config::default());
        server.handle_input(now, &wire);
        let (code, err) = protocol_error(&drain(&mut server));
        assert_eq!((code, err), (CloseCode::PROTOCOL_ERROR, expected));
    }
    // Without the extension negotiated, RSV1 is a reserved bit.
    let mut server = Connection::new_open(Role::Server, Config::default(), now);
    server.handle_input(
        now,
        &client_frame(true, RSV1_BIT, OpCode::Text, &compressed),
    );
    assert_eq!(
        protocol_error(&drain(&mut server)),
        (
            CloseCode::PROTOCOL_ERROR,
            ProtocolError::ReservedBits(RSV1_BIT)
        )
    );
}

#[test]
fn invalid_utf8_in_compressed_text_fails_fast_with_1007() {
    // Valid text, then a surrogate, then lots more: the error must come as
    // soon as the bad bytes are inflated, not at the end of the frame.
    let mut text = json(2000).into_bytes();
    text.extend_from_slice(&[0xED, 0xA0, 0x80]);
    text.extend(std::iter::repeat_n(b'a', 1 << 20));
    let compressed = compress_raw(&text);
    let frame = client_frame(true, RSV1_BIT, OpCode::Text, &compressed);
    let mut server = open_server(Config::default());
    let now = Instant::now();
    let mut fed = 0;
    let mut events = Vec::new();
    for chunk in frame.chunks(64) {
        server.handle_input(now, chunk);
        fed += chunk.len();
        events.extend(drain(&mut server));
        if server.is_closed() {
            break;
        }
    }
    assert!(fed < frame.len(), "failed only at the end");
    assert_eq!(
        protocol_error(&events),
        (CloseCode::INVALID_PAYLOAD, ProtocolError::InvalidUtf8)
    );

    // A code point cut off at the end of the message.
    let frame = client_frame(
        true,
        RSV1_BIT,
        OpCode::Text,
        &compress_raw(&[b'a', 0xE2, 0x82]),
    );
    let mut server = open_server(Config::default());
    server.handle_input(now, &frame);
    assert_eq!(
        protocol_error(&drain(&mut server)),
        (CloseCode::INVALID_PAYLOAD, ProtocolError::InvalidUtf8)
    );
}

#[test]
fn corrupt_deflate_data_fails_with_1007() {
    let mut server = open_server(Config::default());
    // BTYPE 11 (reserved) in the first block header.
    server.handle_input(
        Instant::now(),
        &client_frame(true, RSV1_BIT, OpCode::Binary, &[0xff, 0xff, 0xff]),
    );
    let (code, err) = protocol_error(&drain(&mut server));
    assert_eq!(code, CloseCode::INVALID_PAYLOAD);
    assert!(
        matches!(err, ProtocolError::InvalidCompressedData(_)),
        "{err:?}"
    );
}

#[test]
fn messages_before_a_bad_compressed_frame_are_answered_first() {
    let mut server = open_server(Config::default());
    let wire = [
        client_frame(true, RSV1_BIT, OpCode::Text, &compress_raw(b"hello")),
        client_frame(true, RSV1_BIT, OpCode::Ping, b""),
    ]
    .concat();
    server.handle_input(Instant::now(), &wire);
    let events = drain(&mut server);
    assert_eq!(messages(&events), [Message::text("hello")]);
    assert_eq!(
        protocol_error(&events).1,
        ProtocolError::CompressedControlFrame
    );
}

#[test]
fn plain_connections_are_unaffected() {
    let mut p = Pair::new(Config::default(), Config::default());
    let big = json(20 << 10);
    p.client.send_text(&big).unwrap();
    let (wire, events) = p.pump_to_server();
    assert_eq!(frames(&wire)[0].0.rsv, 0);
    assert_eq!(frames(&wire)[0].1.len(), big.len());
    assert_eq!(messages(&events), [Message::text(big)]);
    let _ = Bytes::new();
}
