//! Frame decoding on arbitrary bytes.
//!
//! Input layout: `[ctl, chunk_seed, stream...]`.
//! * `FrameHeader::decode(stream)`: no panic; a decoded header re-encodes to
//!   the same bytes when its length encoding was minimal (the decoder accepts
//!   non-minimal lengths, as most implementations do), and always round-trips;
//!   every strict prefix of a decodable header needs more data.
//! * The stream fed to an Open server and an Open client, whole and in
//!   arbitrary chunks (alternating `handle_input` and `read_buf` +
//!   `handle_read`): no panic, identical events, identical transmitted bytes
//!   and state; transmitted bytes are well-formed frames for the role; the
//!   receive buffer stays within the frame limit.
#![no_main]

use std::time::{Duration, Instant};

use hookup_fuzz::{Ev, EventChecker, WireChecker, summarize};
use hookup_proto::frame::{FrameHeader, MAX_HEADER_LEN};
use hookup_proto::{Config, Connection, Role, State};
use hookup_sim::Rng;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [ctl, seed, stream @ ..] = data else {
        return;
    };
    check_decode(stream);
    let config = config(*ctl);
    for role in [Role::Server, Role::Client] {
        let whole = run(role, &config, stream, None, ctl & 0x80 != 0);
        let chunked = run(role, &config, stream, Some(*seed), ctl & 0x80 != 0);
        assert_eq!(whole, chunked, "whole and chunked input differ ({role:?})");
    }
});

fn config(ctl: u8) -> Config {
    let mut c = Config::default();
    c.rng_seed = Some([ctl; 32]);
    c.max_frame_size = [16, 125, 1000, 16 << 20][usize::from(ctl & 3)];
    c.max_message_size = [32, 300, 4096, 64 << 20][usize::from((ctl >> 2) & 3)];
    c.stream_fragments = ctl & 0x10 != 0;
    c.auto_pong = ctl & 0x20 != 0;
    c.max_buffered_bytes = if ctl & 0x40 != 0 { 8 } else { 1 << 20 };
    c
}

fn check_decode(stream: &[u8]) {
    let Ok(decoded) = FrameHeader::decode(stream) else {
        // Errors come from the first bytes only: adding bytes cannot fix them.
        let mut more = stream.to_vec();
        more.extend_from_slice(&[0; MAX_HEADER_LEN]);
        assert!(FrameHeader::decode(&more).is_err());
        return;
    };
    let Some((h, n)) = decoded else {
        assert!(
            stream.len() < MAX_HEADER_LEN,
            "needs more than {MAX_HEADER_LEN} bytes"
        );
        return;
    };
    assert!((2..=MAX_HEADER_LEN).contains(&n) && n <= stream.len());
    let len7 = stream[1] & 0x7F;
    let masked = stream[1] & 0x80 != 0;
    let expect_n = match len7 {
        126 => 4,
        127 => 10,
        _ => 2,
    } + if masked { 4 } else { 0 };
    assert_eq!(n, expect_n);
    assert_eq!(h.mask.is_some(), masked);
    let minimal = match len7 {
        126 => h.payload_len > 125,
        127 => h.payload_len > 0xFFFF,
        _ => true,
    };
    let mut enc = Vec::new();
    h.encode(&mut enc);
    assert_eq!(enc.len(), h.encoded_len());
    if minimal {
        assert_eq!(enc, stream[..n], "re-encoded header differs");
    } else {
        assert!(enc.len() < n);
    }
    assert_eq!(FrameHeader::decode(&enc), Ok(Some((h, enc.len()))));
    for cut in 0..n {
        assert_eq!(
            FrameHeader::decode(&stream[..cut]),
            Ok(None),
            "prefix {cut}"
        );
    }
}

/// What a run produced, compared between whole and chunked input.
#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<Ev>,
    transmit: Vec<u8>,
    state: State,
}

fn run(role: Role, config: &Config, stream: &[u8], chunk_seed: Option<u8>, eof: bool) -> Outcome {
    let now = Instant::now();
    let mut conn = Connection::new_open(role, config.clone(), now);
    let mut events = Vec::new();
    let mut checker = EventChecker::new(role, config, true);
    let mut wire = WireChecker::new(role, false);
    let mut transmit = Vec::new();
    let chunks = match chunk_seed {
        None => vec![stream],
        Some(seed) => Rng::new(u64::from(seed)).split(stream, 1 + usize::from(seed % 32)),
    };
    let bound = config.max_frame_size + MAX_HEADER_LEN;
    for (i, chunk) in chunks.into_iter().enumerate() {
        let t = now + Duration::from_millis(i as u64);
        if i % 2 == 1 && !conn.is_closed() {
            conn.read_buf().extend_from_slice(chunk);
            conn.handle_read(t);
        } else {
            conn.handle_input(t, chunk);
        }
        drain(
            &mut conn,
            &mut checker,
            &mut events,
            &mut wire,
            &mut transmit,
        );
        assert!(
            conn.read_buf().len() <= bound,
            "receive buffer over the frame limit"
        );
    }
    if eof {
        conn.handle_eof(now + Duration::from_secs(1));
        drain(
            &mut conn,
            &mut checker,
            &mut events,
            &mut wire,
            &mut transmit,
        );
        assert!(conn.is_closed());
    }
    if conn.is_closed() {
        assert!(
            checker.closed.is_some(),
            "Closed state without Closed event"
        );
        assert_eq!(conn.poll_timeout(), None);
        assert!(!conn.wants_read());
    } else {
        assert!(checker.closed.is_none());
    }
    Outcome {
        events,
        transmit,
        state: conn.state(),
    }
}

fn drain(
    conn: &mut Connection,
    checker: &mut EventChecker,
    events: &mut Vec<Ev>,
    wire: &mut WireChecker,
    transmit: &mut Vec<u8>,
) {
    while let Some(ev) = conn.poll_event() {
        checker.on_event(&ev);
        events.push(summarize(&ev));
    }
    let mut out = Vec::new();
    conn.poll_transmit(&mut out);
    assert_eq!(conn.transmit_len(), 0);
    wire.feed(&out);
    assert!(wire.at_boundary(), "transmit ended inside a frame");
    transmit.extend_from_slice(&out);
}
