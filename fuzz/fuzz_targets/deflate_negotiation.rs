//! The permessage-deflate negotiation (RFC 7692 §5, §7.1): the
//! `Sec-WebSocket-Extensions` parser behind `deflate::server_accept` (a
//! client's offers) and `deflate::client_check_response` (a server's
//! answer).
//!
//! Input layout: `[c0, c1, c2, c3, value...]`. `c0`/`c1` build the server's
//! and `c2`/`c3` the client's `DeflateConfig` (window bits, context
//! takeover); `value` is split at `\n` into header values (each one a
//! `Sec-WebSocket-Extensions` line; values `HeaderValue` refuses are
//! dropped).
//!
//! Invariants:
//! * no panic, and the same answer when asked twice;
//! * whatever a client offers, the server's response (if it accepts) is
//!   accepted by a default client, which derives exactly the mirror image
//!   of the server's parameters; the server never compresses with a window
//!   larger than its configuration allows or than the offer asked for, and
//!   announces `server_no_context_takeover` when it resets;
//! * the same value as a server's answer to the client of `c2`/`c3`: when
//!   accepted, the parameters stay within what that client offered (window
//!   sizes at most the offered ones, requested no-context-takeover
//!   granted) and within 8–15;
//! * round trip: the offer that client makes is always accepted by the
//!   server of `c0`/`c1`, and the client accepts that server's response
//!   with mirrored parameters.
#![no_main]

use hookup_proto::deflate::{client_check_response, client_offer, server_accept};
use hookup_proto::http::header::SEC_WEBSOCKET_EXTENSIONS;
use hookup_proto::http::{HeaderMap, HeaderValue};
use hookup_proto::{DeflateConfig, DeflateParams};
use libfuzzer_sys::fuzz_target;

/// A configuration from two control bytes: window bits (both sides, 8–15
/// and out of range, which the library clamps) and the two no-context-
/// takeover flags.
fn config(a: u8, b: u8) -> DeflateConfig {
    let mut c = DeflateConfig::default();
    c.local_max_window_bits = 7 + (a & 0x0F) % 10; // 7..=16
    c.remote_max_window_bits = 7 + (a >> 4) % 10;
    c.local_no_context_takeover = b & 1 != 0;
    c.remote_no_context_takeover = b & 2 != 0;
    c.threshold = usize::from(b >> 2);
    c
}

fn headers(values: &[HeaderValue]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        h.append(SEC_WEBSOCKET_EXTENSIONS, v.clone());
    }
    h
}

/// The parameters as the other end sees them.
fn mirror(p: &DeflateParams) -> (bool, bool, u8, u8) {
    (
        p.remote_no_context_takeover,
        p.local_no_context_takeover,
        p.remote_max_window_bits,
        p.local_max_window_bits,
    )
}

fn own(p: &DeflateParams) -> (bool, bool, u8, u8) {
    (
        p.local_no_context_takeover,
        p.remote_no_context_takeover,
        p.local_max_window_bits,
        p.remote_max_window_bits,
    )
}

fn in_range(p: &DeflateParams) {
    assert!((8..=15).contains(&p.local_max_window_bits), "{p:?}");
    assert!((8..=15).contains(&p.remote_max_window_bits), "{p:?}");
}

/// The server's side: accept `offer` with `server`, then check the response
/// with a default client (which allows any window and asks for nothing).
fn check_server(offer: &HeaderMap, server: &DeflateConfig) {
    let got = server_accept(offer, server);
    assert_eq!(
        got,
        server_accept(offer, server),
        "server_accept is not deterministic"
    );
    let Some((sp, value)) = got else {
        return;
    };
    in_range(&sp);
    let text = value.to_str().expect("response is ASCII");
    assert!(
        text.to_ascii_lowercase().starts_with("permessage-deflate"),
        "response {text:?}"
    );
    assert!(
        sp.local_max_window_bits <= server.local_max_window_bits.clamp(9, 15),
        "server window {sp:?} over its configuration"
    );
    if server.local_no_context_takeover {
        assert!(sp.local_no_context_takeover);
    }
    // What the default client makes of it: the mirror image.
    let client = DeflateConfig::default();
    let cp = client_check_response(&headers(std::slice::from_ref(&value)), &client)
        .unwrap_or_else(|e| panic!("client refuses the server's response {text:?}: {e}"))
        .unwrap_or_else(|| panic!("client ignores the server's response {text:?}"));
    assert_eq!(own(&cp), mirror(&sp), "response {text:?}");
}

/// The client's side: `response` as the answer to `client`'s offer.
fn check_client(response: &HeaderMap, client: &DeflateConfig) {
    let got = client_check_response(response, client);
    let again = client_check_response(response, client);
    assert_eq!(
        got.as_ref().ok(),
        again.as_ref().ok(),
        "client_check_response is not deterministic"
    );
    let Ok(Some(cp)) = got else {
        return;
    };
    in_range(&cp);
    assert!(
        cp.local_max_window_bits <= client.local_max_window_bits.clamp(9, 15),
        "{cp:?} over the offered client window"
    );
    assert!(
        cp.remote_max_window_bits <= client.remote_max_window_bits.clamp(8, 15),
        "{cp:?} over the requested server window"
    );
    if client.remote_no_context_takeover {
        assert!(cp.remote_no_context_takeover, "requested reset not granted");
    }
    if client.local_no_context_takeover {
        assert!(cp.local_no_context_takeover, "offered reset not kept");
    }
}

fuzz_target!(|data: &[u8]| {
    let [c0, c1, c2, c3, value @ ..] = data else {
        return;
    };
    let server = config(*c0, *c1);
    let client = config(*c2, *c3);
    let values: Vec<HeaderValue> = value
        .split(|&b| b == b'\n')
        .filter_map(|v| HeaderValue::from_bytes(v).ok())
        .collect();
    let map = headers(&values);

    check_server(&map, &server);
    check_client(&map, &client);

    // Round trip between the two configurations.
    let offer = client_offer(&client);
    let (sp, response) = server_accept(&headers(std::slice::from_ref(&offer)), &server)
        .unwrap_or_else(|| panic!("server refuses our own offer {offer:?}"));
    let cp = client_check_response(&headers(&[response.clone()]), &client)
        .unwrap_or_else(|e| panic!("{offer:?} -> {response:?} refused: {e}"))
        .expect("accepted");
    assert_eq!(
        (cp.local_max_window_bits, cp.remote_max_window_bits),
        (sp.remote_max_window_bits, sp.local_max_window_bits),
        "{offer:?} -> {response:?}"
    );
    assert_eq!(cp.remote_no_context_takeover, sp.local_no_context_takeover);
    // A client may reset more often than the server asked, never less.
    assert!(cp.local_no_context_takeover >= sp.remote_no_context_takeover);
    check_client(&headers(&[response]), &client);
});
