//! Helpers shared by the integration tests: a raw frame encoder that can
//! also build invalid frames, normalised event strings, a decoder for the
//! frames a connection transmits, and feeding a connection in chunks.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::time::Instant;

use hookup_proto::frame::FrameHeader;
use hookup_proto::http::{HeaderMap, StatusCode};
use hookup_proto::mask::apply_mask_bytewise;
use hookup_proto::{Accept, Closed, Config, Connection, Event, Message, MessageKind, Role};

/// A fixed masking key for frames the tests build for a server.
pub(crate) const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Encodes one frame byte by byte, without any validation, so tests can build
/// invalid frames too. `opcode` is the raw 4-bit value; `rsv` the three RSV
/// bits (RSV1 = 0b100).
pub(crate) fn raw_frame(
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: &[u8],
) -> Vec<u8> {
    raw_frame_len(fin, rsv, opcode, mask, payload, payload.len() as u64)
}

/// Like [`raw_frame`] with an explicit (possibly lying) length field.
pub(crate) fn raw_frame_len(
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: &[u8],
    len: u64,
) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | ((rsv & 7) << 4) | (opcode & 0x0f)];
    let mbit = if mask.is_some() { 0x80 } else { 0 };
    if len <= 125 {
        out.push(mbit | len as u8);
    } else if len <= 0xffff {
        out.push(mbit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mbit | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(k) = mask {
        out.extend_from_slice(&k);
    }
    let pstart = out.len();
    out.extend_from_slice(payload);
    if let Some(k) = mask {
        apply_mask_bytewise(&mut out[pstart..], k, 0);
    }
    out
}

/// A frame as the peer of `role` would send it: masked (with [`KEY`]) when
/// it goes to a server, unmasked when it goes to a client.
pub(crate) fn frame_to(role: Role, fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = match role {
        Role::Server => Some(KEY),
        _ => None,
    };
    raw_frame(fin, 0, opcode, mask, payload)
}

/// A close payload: code then reason.
pub(crate) fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

pub(crate) fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        write!(s, "{x:02x}").unwrap();
    }
    s
}

pub(crate) fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(s.len().is_multiple_of(2), "odd hex string {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn fnv(b: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for x in b {
        h ^= u64::from(*x);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// A short, human-writable rendering of a payload: printable ASCII as is,
/// other short payloads as `0x…` hex, long ones as `repeat(0xNN,len)` or
/// `len=N,fnv=…`.
pub(crate) fn repr(b: &[u8]) -> String {
    if b.len() <= 64 {
        if b.iter().all(|c| (0x20..0x7f).contains(c)) {
            String::from_utf8(b.to_vec()).unwrap()
        } else {
            format!("0x{}", hex(b))
        }
    } else if b.iter().all(|&c| c == b[0]) {
        format!("repeat(0x{:02x},{})", b[0], b.len())
    } else {
        format!("len={},fnv={:016x}", b.len(), fnv(b))
    }
}

pub(crate) fn closed_str(c: &Closed) -> String {
    let frame = |f: &Option<hookup_proto::CloseFrame>| match f {
        None => "-".to_string(),
        Some(f) if f.reason.is_empty() => f.code.0.to_string(),
        Some(f) => format!("{}({:?})", f.code.0, f.reason),
    };
    let err = match &c.error {
        None => "none".to_string(),
        Some(e) => format!("{e:?}"),
    };
    format!(
        "closed:recv={}:sent={}:clean={}:err={}",
        frame(&c.received),
        frame(&c.sent),
        c.clean,
        err
    )
}

/// A normalised event string, used by the vector files.
pub(crate) fn ev_str(ev: &Event) -> String {
    match ev {
        Event::Request(r) => format!("request:{} {}", r.method(), r.uri()),
        Event::Connected(r) => match &r.subprotocol {
            Some(p) => format!("connected:{p}"),
            None => "connected".into(),
        },
        Event::Message(Message::Text(t)) => format!("text:{}", repr(t.as_bytes())),
        Event::Message(Message::Binary(b)) => format!("binary:{}", repr(b)),
        Event::Message(m) => format!("message:{m:?}"),
        Event::Fragment(f) => format!(
            "fragment:{}:{}:{}",
            match f.kind {
                MessageKind::Text => "text",
                _ => "binary",
            },
            if f.fin { "fin" } else { "more" },
            repr(&f.data)
        ),
        Event::Ping(p) => format!("ping:{}", repr(p)),
        Event::Pong { payload, rtt: None } => format!("pong:{}", repr(payload)),
        Event::Pong {
            payload,
            rtt: Some(rtt),
        } => format!("pong:{}:rtt={rtt:?}", repr(payload)),
        Event::Closed(c) => closed_str(c),
        other => format!("{other:?}"),
    }
}

/// Full-fidelity rendering (every payload byte), for invariance checks.
pub(crate) fn ev_full(ev: &Event) -> String {
    format!("{ev:?}")
}

/// Decodes frames a connection transmitted (unmasking them) into strings:
/// `text:…`, `binary:…`, `cont:…` (with `+more` when FIN is clear),
/// `ping:…`, `pong:…`, `close:CODE[:reason]` or `close:` (empty).
pub(crate) fn decode_frames(mut b: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (h, n) = match FrameHeader::decode(b) {
            Ok(Some(x)) => x,
            other => {
                out.push(format!("undecodable:{other:?}:{}", hex(b)));
                break;
            }
        };
        let len = h.payload_len as usize;
        if b.len() < n + len {
            out.push(format!("truncated:{}", hex(b)));
            break;
        }
        let mut p = b[n..n + len].to_vec();
        if let Some(k) = h.mask {
            apply_mask_bytewise(&mut p, k, 0);
        }
        b = &b[n + len..];
        let op = match h.opcode.as_u8() {
            0 => "cont",
            1 => "text",
            2 => "binary",
            8 => "close",
            9 => "ping",
            10 => "pong",
            _ => "?",
        };
        let s = if op == "close" {
            match p.as_slice() {
                [] => "close:".to_string(),
                [a, b2, r @ ..] => {
                    let code = u16::from_be_bytes([*a, *b2]);
                    if r.is_empty() {
                        format!("close:{code}")
                    } else {
                        format!("close:{code}:{}", repr(r))
                    }
                }
                _ => format!("close:bad:{}", hex(&p)),
            }
        } else {
            format!("{op}:{}", repr(&p))
        };
        out.push(if h.fin { s } else { format!("{s}+more") });
    }
    out
}

/// Whether `b` holds frames masked (true) or unmasked (false); panics on mixed.
pub(crate) fn all_masked(mut b: &[u8]) -> bool {
    let mut masked = None;
    while let Ok(Some((h, n))) = FrameHeader::decode(b) {
        let m = h.mask.is_some();
        assert!(masked.is_none_or(|x| x == m), "mixed masking");
        masked = Some(m);
        b = &b[(n + h.payload_len as usize).min(b.len())..];
    }
    masked.unwrap_or(false)
}

/// What a connection did while being fed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Run {
    /// Events (normalised with the given function).
    pub(crate) events: Vec<String>,
    /// Everything transmitted, concatenated.
    pub(crate) tx: Vec<u8>,
}

/// How to answer an [`Event::Request`] while feeding: accept by default.
pub(crate) fn auto_accept(conn: &mut Connection, ev: &Event) {
    if let Event::Request(r) = ev {
        if r.is_websocket() {
            let a = match r.subprotocols().first() {
                Some(p) => Accept::new().subprotocol(p.clone()),
                None => Accept::new(),
            };
            conn.accept(a).unwrap();
        } else {
            conn.reject(http_status(404), &HeaderMap::new(), b"not here")
                .unwrap();
        }
    }
}

pub(crate) fn http_status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap()
}

/// Drains events and transmit (in the documented order) into `run`,
/// answering handshake requests with [`auto_accept`]. Checks that nothing
/// follows `Event::Closed`.
pub(crate) fn drain_into(conn: &mut Connection, run: &mut Run, norm: fn(&Event) -> String) {
    while let Some(ev) = conn.poll_event() {
        if let Some(last) = run.events.last() {
            assert!(
                !last.starts_with("closed") && !last.starts_with("Closed"),
                "event after Closed: {}",
                norm(&ev)
            );
        }
        auto_accept(conn, &ev);
        run.events.push(norm(&ev));
    }
    let mut buf = Vec::new();
    conn.poll_transmit(&mut buf);
    run.tx.extend_from_slice(&buf);
    if conn.is_closed() {
        assert!(conn.poll_timeout().is_none(), "timer armed after Closed");
    }
}

/// Feeds `data` split at `cuts` (sorted, deduplicated, clamped) and then, if
/// `eof`, an end of file; drains after every input.
pub(crate) fn feed_cuts(
    conn: &mut Connection,
    now: Instant,
    data: &[u8],
    cuts: &[usize],
    eof: bool,
    norm: fn(&Event) -> String,
) -> Run {
    let mut run = Run::default();
    drain_into(conn, &mut run, norm);
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(data.len())).collect();
    cuts.push(data.len());
    cuts.sort_unstable();
    cuts.dedup();
    let mut start = 0;
    for c in cuts {
        if c > start {
            conn.handle_input(now, &data[start..c]);
            drain_into(conn, &mut run, norm);
        }
        start = c;
    }
    if eof {
        conn.handle_eof(now);
        drain_into(conn, &mut run, norm);
    }
    run
}

pub(crate) fn feed_whole(
    conn: &mut Connection,
    now: Instant,
    data: &[u8],
    norm: fn(&Event) -> String,
) -> Run {
    feed_cuts(conn, now, data, &[], false, norm)
}

pub(crate) fn feed_bytewise(
    conn: &mut Connection,
    now: Instant,
    data: &[u8],
    norm: fn(&Event) -> String,
) -> Run {
    let mut run = Run::default();
    drain_into(conn, &mut run, norm);
    for b in data {
        conn.handle_input(now, std::slice::from_ref(b));
        drain_into(conn, &mut run, norm);
    }
    run
}

/// Feeds through `read_buf` + `handle_read` instead of `handle_input`.
pub(crate) fn feed_read_buf(
    conn: &mut Connection,
    now: Instant,
    data: &[u8],
    chunk: usize,
    norm: fn(&Event) -> String,
) -> Run {
    let mut run = Run::default();
    drain_into(conn, &mut run, norm);
    for c in data.chunks(chunk.max(1)) {
        if conn.is_closed() {
            break;
        }
        conn.read_buf().extend_from_slice(c);
        conn.handle_read(now);
        drain_into(conn, &mut run, norm);
    }
    run
}

/// A configuration with a fixed seed.
pub(crate) fn seeded() -> Config {
    let mut c = Config::default();
    c.rng_seed = Some([42; 32]);
    c
}

pub(crate) fn open(role: Role, config: Config, now: Instant) -> Connection {
    Connection::new_open(role, config, now)
}

/// The last event string, which must be a Closed one.
pub(crate) fn last_closed(run: &Run) -> &str {
    let last = run.events.last().expect("no events");
    assert!(last.starts_with("closed"), "not closed: {:?}", run.events);
    last
}
