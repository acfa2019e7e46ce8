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
use http::header::HeaderValue;
use http::header::SEC_WEBSOCKET_EXTENSIONS;

use super::*;
use crate::error::HandshakeError;
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

// Round trips and failures of compressed messages.
mod messages;
