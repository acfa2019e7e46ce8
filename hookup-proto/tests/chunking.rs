//! Property tests: encode → decode round trips of random message scripts, and
//! chunking invariance — a byte stream (valid or not) gives the same events
//! and the same transmitted bytes however it is cut into reads.

mod common;

use std::io::IoSlice;
use std::time::{Duration, Instant};

use common::*;
use hookup_proto::bytes::Bytes;
use hookup_proto::handshake::accept_key;
use hookup_proto::{
    ClientRequest, Config, Connection, Event, Fragment, Message, MessageKind, Role, Utf8Bytes,
};
use proptest::prelude::*;

// ------------------------------------------------------------------ scripts

#[derive(Clone, Debug)]
enum Ctl {
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

#[derive(Clone, Copy, Debug)]
enum Api {
    /// `send_text` / `send_binary`.
    Direct,
    /// `Connection::send(Message)` (zero-copy on a server).
    Message,
    /// `send_fragment`, one frame per piece.
    Fragments,
}

#[derive(Clone, Debug)]
struct Msg {
    text: bool,
    data: Vec<u8>,
    api: Api,
    /// Fragment boundaries (for `Api::Fragments`).
    cuts: Vec<usize>,
    /// Control frames sent after fragment `i` (for `Api::Fragments`).
    ctl: Vec<(usize, Ctl)>,
}

#[derive(Clone, Debug)]
enum Op {
    Msg(Msg),
    Ctl(Ctl),
}

fn ctl() -> impl Strategy<Value = Ctl> {
    let payload = prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..8),
        1 => proptest::collection::vec(any::<u8>(), 0..=125),
    ];
    prop_oneof![
        payload.clone().prop_map(Ctl::Ping),
        payload.prop_map(Ctl::Pong)
    ]
}

fn payload(text: bool) -> BoxedStrategy<Vec<u8>> {
    if text {
        prop_oneof![
            8 => "\\PC{0,60}".prop_map(String::into_bytes),
            1 => ("\\PC{0,8}", 100usize..20_000).prop_map(|(s, n)| {
                let mut out = s.into_bytes();
                while out.len() < n {
                    out.extend_from_slice("ab£€𝄞".as_bytes());
                }
                out
            }),
        ]
        .boxed()
    } else {
        prop_oneof![
            8 => proptest::collection::vec(any::<u8>(), 0..100),
            1 => (any::<u8>(), 100usize..70_000).prop_map(|(b, n)| {
                (0..n).map(|i| b.wrapping_add((i % 251) as u8)).collect()
            }),
        ]
        .boxed()
    }
}

fn msg() -> impl Strategy<Value = Msg> {
    any::<bool>().prop_flat_map(|text| {
        (
            payload(text),
            prop_oneof![Just(Api::Direct), Just(Api::Message), Just(Api::Fragments)],
            proptest::collection::vec(any::<usize>(), 0..5),
            proptest::collection::vec((any::<usize>(), ctl()), 0..4),
        )
            .prop_map(move |(data, api, cuts, ctl)| {
                let n = data.len() + 1;
                let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % n).collect();
                cuts.sort_unstable();
                let pieces = cuts.len() + 1;
                let mut ctl: Vec<(usize, Ctl)> =
                    ctl.into_iter().map(|(i, c)| (i % pieces, c)).collect();
                ctl.sort_by_key(|(i, _)| *i);
                Msg {
                    text,
                    data,
                    api,
                    cuts,
                    ctl,
                }
            })
    })
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(
        prop_oneof![4 => msg().prop_map(Op::Msg), 1 => ctl().prop_map(Op::Ctl)],
        0..8,
    )
}

impl Msg {
    fn pieces(&self) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut start = 0;
        for &c in &self.cuts {
            out.push(&self.data[start..c]);
            start = c;
        }
        out.push(&self.data[start..]);
        out
    }

    fn kind(&self) -> MessageKind {
        if self.text {
            MessageKind::Text
        } else {
            MessageKind::Binary
        }
    }

    fn message(&self) -> Message {
        if self.text {
            Message::Text(Utf8Bytes::try_from_bytes(Bytes::from(self.data.clone())).unwrap())
        } else {
            Message::Binary(Bytes::from(self.data.clone()))
        }
    }
}

fn send_ctl(conn: &mut Connection, now: Instant, c: &Ctl) {
    match c {
        Ctl::Ping(p) => conn.send_ping(now, p).unwrap(),
        Ctl::Pong(p) => conn.send_pong(p).unwrap(),
    }
}

fn ctl_event(c: &Ctl) -> Event {
    match c {
        Ctl::Ping(p) => Event::Ping(Bytes::from(p.clone())),
        Ctl::Pong(p) => Event::Pong {
            payload: Bytes::from(p.clone()),
            rtt: None,
        },
    }
}

/// Runs the script on `sender` and returns the events a receiver should see.
fn play(sender: &mut Connection, now: Instant, ops: &[Op], stream: bool) -> Vec<String> {
    let mut expected = Vec::new();
    for op in ops {
        match op {
            Op::Ctl(c) => {
                send_ctl(sender, now, c);
                expected.push(ev_full(&ctl_event(c)));
            }
            Op::Msg(m) => match m.api {
                Api::Direct => {
                    if m.text {
                        sender
                            .send_text(std::str::from_utf8(&m.data).unwrap())
                            .unwrap();
                    } else {
                        sender.send_binary(&m.data).unwrap();
                    }
                    expected.push(ev_full(&Event::Message(m.message())));
                }
                Api::Message => {
                    sender.send(m.message()).unwrap();
                    expected.push(ev_full(&Event::Message(m.message())));
                }
                Api::Fragments => {
                    let pieces = m.pieces();
                    let mut ctl = m.ctl.iter().peekable();
                    for (i, piece) in pieces.iter().enumerate() {
                        let fin = i + 1 == pieces.len();
                        sender.send_fragment(m.kind(), piece, fin).unwrap();
                        if stream && pieces.len() > 1 {
                            expected.push(ev_full(&Event::Fragment(Fragment {
                                kind: m.kind(),
                                data: Bytes::copy_from_slice(piece),
                                fin,
                            })));
                        }
                        if fin {
                            break;
                        }
                        while let Some((_, c)) = ctl.next_if(|(at, _)| *at == i) {
                            send_ctl(sender, now, c);
                            expected.push(ev_full(&ctl_event(c)));
                        }
                    }
                    if !stream || pieces.len() == 1 {
                        expected.push(ev_full(&Event::Message(m.message())));
                    }
                }
            },
        }
    }
    expected
}

/// Takes a connection's output with `transmit_vectored` and partial writes
/// of the given sizes (cycled), or all at once when `sizes` is empty.
fn take_output(conn: &mut Connection, sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    if sizes.is_empty() {
        conn.poll_transmit(&mut out);
        return out;
    }
    for &want in sizes.iter().cycle() {
        if conn.transmit_len() == 0 {
            break;
        }
        let mut slices = [IoSlice::new(&[]); 3];
        let n = conn.transmit_vectored(&mut slices);
        // Every slice has bytes: a writer that takes only the first one
        // (a non-vectored write) must always make progress.
        assert!(n > 0, "transmit_len > 0 but no slices");
        assert!(
            slices[..n].iter().all(|s| !s.is_empty()),
            "empty slice in transmit_vectored"
        );
        let mut w = 0;
        for s in &slices[..n] {
            let take = s.len().min(want.max(1) - w);
            out.extend_from_slice(&s[..take]);
            w += take;
            if w == want.max(1) {
                break;
            }
        }
        conn.advance_transmit(w);
    }
    out
}

fn roundtrip(
    sender_role: Role,
    ops: &[Op],
    stream: bool,
    zero_copy_threshold: usize,
    write_sizes: &[usize],
    cuts: &[usize],
) -> Result<(), TestCaseError> {
    let now = Instant::now();
    let mut sc = seeded();
    sc.zero_copy_threshold = zero_copy_threshold;
    let mut sender = Connection::new_open(sender_role, sc, now);
    let expected = play(&mut sender, now, ops, stream);
    let wire = take_output(&mut sender, write_sizes);
    prop_assert_eq!(sender.transmit_len(), 0);
    // Masked exactly when a client sends.
    if !wire.is_empty() {
        prop_assert_eq!(all_masked(&wire), sender_role == Role::Client);
    }

    let receiver_role = match sender_role {
        Role::Client => Role::Server,
        _ => Role::Client,
    };
    let mut rc = seeded();
    rc.stream_fragments = stream;
    let mut receiver = Connection::new_open(receiver_role, rc.clone(), now);
    let run = feed_cuts(&mut receiver, now, &wire, cuts, false, ev_full);
    prop_assert_eq!(&run.events, &expected);
    prop_assert!(receiver.is_open());

    // The receiver answered every ping, in order.
    let pings: Vec<&Vec<u8>> = ops
        .iter()
        .flat_map(|op| match op {
            Op::Ctl(c) => vec![c],
            Op::Msg(m) if matches!(m.api, Api::Fragments) => m
                .ctl
                .iter()
                .filter(|(i, _)| *i + 1 < m.pieces().len())
                .map(|(_, c)| c)
                .collect(),
            Op::Msg(_) => vec![],
        })
        .filter_map(|c| match c {
            Ctl::Ping(p) => Some(p),
            Ctl::Pong(_) => None,
        })
        .collect();
    let pongs = decode_frames(&run.tx);
    let expected_pongs: Vec<String> = pings.iter().map(|p| format!("pong:{}", repr(p))).collect();
    prop_assert_eq!(&pongs, &expected_pongs);

    // The pongs go back to the sender and match its pings.
    let back = feed_whole(&mut sender, now, &run.tx, ev_full);
    prop_assert_eq!(back.events.len(), pings.len());
    if pings.len() <= 16 {
        for e in &back.events {
            prop_assert!(e.contains("rtt: Some(0ns)"), "{}", e);
        }
    }

    // The whole stream byte by byte, when small enough, gives the same.
    if wire.len() <= 4096 {
        let mut receiver = Connection::new_open(receiver_role, rc, now);
        let bytewise = feed_bytewise(&mut receiver, now, &wire, ev_full);
        prop_assert_eq!(bytewise, run);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn roundtrip_client_to_server(ops in ops(), stream in any::<bool>(),
                                  write_sizes in proptest::collection::vec(1usize..3000, 0..4),
                                  cuts in proptest::collection::vec(any::<usize>(), 0..12)) {
        let total: usize = 200_000;
        let cuts: Vec<usize> = cuts.iter().map(|c| c % total).collect();
        roundtrip(Role::Client, &ops, stream, 16 << 10, &write_sizes, &cuts)?;
    }

    #[test]
    fn roundtrip_server_to_client(ops in ops(), stream in any::<bool>(),
                                  zero_copy_threshold in prop_oneof![Just(0usize), 1usize..200, Just(16 << 10)],
                                  write_sizes in proptest::collection::vec(1usize..3000, 0..4),
                                  cuts in proptest::collection::vec(any::<usize>(), 0..12)) {
        let cuts: Vec<usize> = cuts.iter().map(|c| c % 200_000).collect();
        roundtrip(Role::Server, &ops, stream, zero_copy_threshold, &write_sizes, &cuts)?;
    }
}

// ------------------------------------------------------------------ chunking invariance

/// One frame of a random stream; mostly well-formed, sometimes not.
#[derive(Clone, Debug)]
struct FrameSpec {
    fin: bool,
    rsv: u8,
    opcode: u8,
    /// Whether to mask correctly for the receiver's role (else the opposite).
    right_mask: bool,
    payload: Vec<u8>,
    /// A length field that does not match the payload (rare).
    len_override: Option<u64>,
}

fn frame_spec() -> impl Strategy<Value = FrameSpec> {
    let opcode = prop_oneof![
        6 => Just(0x1u8), 6 => Just(0x2u8), 6 => Just(0x0u8),
        3 => Just(0x9u8), 2 => Just(0xAu8), 1 => Just(0x8u8),
        1 => 0u8..16,
    ];
    let payload = prop_oneof![
        6 => "\\PC{0,20}".prop_map(String::into_bytes),
        3 => proptest::collection::vec(any::<u8>(), 0..20),
        1 => proptest::collection::vec(any::<u8>(), 100..400),
        1 => Just(vec![0x03, 0xE8]),
        1 => prop_oneof![Just(vec![0xCE]), Just(vec![0xBA, 0xE1]), Just(vec![0xED, 0xA0, 0x80])],
    ];
    (
        prop_oneof![4 => Just(true), 3 => Just(false)],
        prop_oneof![20 => Just(0u8), 1 => 1u8..8],
        opcode,
        prop_oneof![30 => Just(true), 1 => Just(false)],
        payload,
        prop_oneof![
            30 => Just(None),
            1 => Just(Some(u64::MAX)),
            1 => Just(Some(1u64 << 40)),
            1 => (126u64..300).prop_map(Some),
        ],
    )
        .prop_map(
            |(fin, rsv, opcode, right_mask, payload, len_override)| FrameSpec {
                fin,
                rsv,
                opcode,
                right_mask,
                payload,
                len_override,
            },
        )
}

/// A well-formed frame (for the receiver's role) with the given opcode.
fn good(fin: bool, opcode: u8, payload: Vec<u8>) -> FrameSpec {
    FrameSpec {
        fin,
        rsv: 0,
        opcode,
        right_mask: true,
        payload,
        len_override: None,
    }
}

/// A stream that is mostly in sequence — messages (some fragmented, with
/// control frames between the fragments) and control frames — with now and
/// then an arbitrary frame from [`frame_spec`], so that streams get deep
/// into the connection before anything goes wrong.
fn frame_stream() -> impl Strategy<Value = Vec<FrameSpec>> {
    let message = (
        any::<bool>(),
        prop_oneof![
            6 => "\\PC{0,30}".prop_map(String::into_bytes),
            1 => proptest::collection::vec(any::<u8>(), 0..30),
            1 => proptest::collection::vec(any::<u8>(), 126..300),
        ],
        proptest::collection::vec(any::<usize>(), 0..4),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..6)),
    )
        .prop_map(|(text, data, cuts, ping)| {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (data.len() + 1)).collect();
            cuts.sort_unstable();
            cuts.push(data.len());
            let mut frames = Vec::new();
            let mut start = 0;
            for (i, &c) in cuts.iter().enumerate() {
                let opcode = match (i, text) {
                    (0, true) => 0x1,
                    (0, false) => 0x2,
                    _ => 0x0,
                };
                frames.push(good(i + 1 == cuts.len(), opcode, data[start..c].to_vec()));
                start = c;
                if i == 0
                    && cuts.len() > 1
                    && let Some(p) = &ping
                {
                    frames.push(good(true, 0x9, p.clone()));
                }
            }
            frames
        });
    let control = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..10).prop_map(|p| vec![good(true, 0x9, p)]),
        proptest::collection::vec(any::<u8>(), 0..10).prop_map(|p| vec![good(true, 0xA, p)]),
    ];
    let close = prop_oneof![
        Just(vec![good(true, 0x8, vec![0x03, 0xE8, b'o', b'k'])]),
        Just(vec![good(true, 0x8, vec![])]),
    ];
    proptest::collection::vec(
        prop_oneof![
            8 => message,
            3 => control,
            1 => close,
            1 => frame_spec().prop_map(|f| vec![f]),
        ],
        0..10,
    )
    .prop_map(|items| items.into_iter().flatten().collect())
}

fn encode_stream(role: Role, frames: &[FrameSpec], garbage: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let masked = (role == Role::Server) == f.right_mask;
        let key = if masked {
            Some([i as u8, 0x5a, 0xa5, (i >> 8) as u8])
        } else {
            None
        };
        out.extend(raw_frame_len(
            f.fin,
            f.rsv,
            f.opcode,
            key,
            &f.payload,
            f.len_override.unwrap_or(f.payload.len() as u64),
        ));
    }
    out.extend_from_slice(garbage);
    out
}

const KEY16: [u8; 16] = *b"0123456789abcdef";

/// A fresh connection in `role` at the given handshake stage; returns the
/// handshake bytes the peer would send first.
fn fresh(role: Role, handshake: bool, config: &Config, now: Instant) -> (Connection, Vec<u8>) {
    match (role, handshake) {
        (_, false) => (Connection::new_open(role, config.clone(), now), Vec::new()),
        (Role::Server, true) => {
            let req = ClientRequest::new("ws://example.com/x")
                .unwrap()
                .with_key(KEY16);
            let mut client = Connection::client(&req, seeded(), now);
            let mut head = Vec::new();
            client.poll_transmit(&mut head);
            (Connection::server(config.clone(), now), head)
        }
        (_, true) => {
            let req = ClientRequest::new("ws://example.com/x")
                .unwrap()
                .with_key(KEY16);
            // "MDEyMzQ1Njc4OWFiY2RlZg==" is KEY16 in base64.
            let head = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\n\r\n",
                accept_key(b"MDEyMzQ1Njc4OWFiY2RlZg==")
            );
            (
                Connection::client(&req, config.clone(), now),
                head.into_bytes(),
            )
        }
    }
}

fn invariance_config() -> impl Strategy<Value = Config> {
    (
        any::<bool>(),
        any::<bool>(),
        prop_oneof![3 => Just(64 << 20), 1 => 1usize..600],
        prop_oneof![3 => Just(16 << 20), 1 => 1usize..300],
    )
        .prop_map(|(stream, auto_pong, max_message, max_frame)| {
            let mut c = seeded();
            c.stream_fragments = stream;
            c.auto_pong = auto_pong;
            c.max_message_size = max_message;
            c.max_frame_size = max_frame;
            c
        })
}

fn check_invariance(
    role: Role,
    handshake: bool,
    config: &Config,
    frames: &[FrameSpec],
    garbage: &[u8],
    cuts: &[usize],
    eof: bool,
) -> Result<(), TestCaseError> {
    let now = Instant::now();
    let (mut conn, mut input) = fresh(role, handshake, config, now);
    input.extend(encode_stream(role, frames, garbage));
    let whole = feed_cuts(&mut conn, now, &input, &[], eof, ev_full);
    let end_state = conn.state();
    let timeout = conn.poll_timeout();

    let (mut conn, _) = fresh(role, handshake, config, now);
    let cut = feed_cuts(&mut conn, now, &input, cuts, eof, ev_full);
    prop_assert_eq!(&cut, &whole, "random cuts {:?}", cuts);
    prop_assert_eq!(conn.state(), end_state);
    prop_assert_eq!(conn.poll_timeout(), timeout);

    if input.len() <= 3000 {
        let (mut conn, _) = fresh(role, handshake, config, now);
        let mut bytewise = feed_bytewise(&mut conn, now, &input, ev_full);
        if eof {
            conn.handle_eof(now);
            drain_into(&mut conn, &mut bytewise, ev_full);
        }
        prop_assert_eq!(&bytewise, &whole, "byte by byte");
        prop_assert_eq!(conn.state(), end_state);
    }

    // Reading through read_buf in odd chunks is the same as handle_input.
    let (mut conn, _) = fresh(role, handshake, config, now);
    let mut rb = feed_read_buf(&mut conn, now, &input, 13, ev_full);
    if eof {
        conn.handle_eof(now);
        drain_into(&mut conn, &mut rb, ev_full);
    }
    prop_assert_eq!(&rb, &whole, "read_buf");

    // A stream always ends in exactly one Closed once EOF is seen.
    if eof {
        let n = whole
            .events
            .iter()
            .filter(|e| e.starts_with("Closed"))
            .count();
        prop_assert_eq!(n, 1, "{:?}", whole.events);
        prop_assert!(whole.events.last().unwrap().starts_with("Closed"));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn chunking_invariance(
        server in any::<bool>(),
        handshake in prop_oneof![3 => Just(false), 1 => Just(true)],
        config in invariance_config(),
        frames in prop_oneof![3 => frame_stream(), 1 => proptest::collection::vec(frame_spec(), 0..12)],
        garbage in prop_oneof![4 => Just(vec![]), 1 => proptest::collection::vec(any::<u8>(), 0..30)],
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        eof in any::<bool>(),
    ) {
        let role = if server { Role::Server } else { Role::Client };
        let len = encode_stream(role, &frames, &garbage).len() + 300;
        let cuts: Vec<usize> = cuts.iter().map(|c| c % len).collect();
        check_invariance(role, handshake, &config, &frames, &garbage, &cuts, eof)?;
    }

    /// Valid streams only (every frame well-formed and in sequence), so that
    /// long streams get deep into the connection.
    #[test]
    fn chunking_invariance_valid_streams(
        server in any::<bool>(),
        ops in ops(),
        stream in any::<bool>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..30),
    ) {
        let now = Instant::now();
        let sender_role = if server { Role::Client } else { Role::Server };
        let mut sender = Connection::new_open(sender_role, seeded(), now);
        play(&mut sender, now, &ops, stream);
        sender.close(now, hookup_proto::CloseCode::NORMAL, "end").unwrap();
        let mut wire = Vec::new();
        sender.poll_transmit(&mut wire);
        let receiver_role = if server { Role::Server } else { Role::Client };
        let mut config = seeded();
        config.stream_fragments = stream;
        let cuts: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        let now = Instant::now();
        let mut whole = Connection::new_open(receiver_role, config.clone(), now);
        let a = feed_cuts(&mut whole, now, &wire, &[], true, ev_full);
        let mut cut = Connection::new_open(receiver_role, config, now);
        let b = feed_cuts(&mut cut, now, &wire, &cuts, true, ev_full);
        prop_assert_eq!(&a, &b);
        let last = a.events.last().unwrap();
        prop_assert!(last.contains("clean: true"), "{}", last);
        prop_assert!(decode_frames(&a.tx).last().unwrap().starts_with("close:1000"));
    }
}

/// Timers are not affected by how the input was cut either: a close timer
/// armed at the same instant fires at the same instant.
#[test]
fn close_timer_is_the_same_for_any_chunking() {
    let now = Instant::now();
    let later = now + Duration::from_millis(250);
    let close = frame_to(Role::Client, true, 0x8, &close_payload(1000, b"bye"));
    let mut a = Connection::new_open(Role::Client, seeded(), now);
    a.handle_input(later, &close);
    let mut b = Connection::new_open(Role::Client, seeded(), now);
    for byte in &close {
        b.handle_input(later, std::slice::from_ref(byte));
    }
    assert_eq!(a.poll_timeout(), Some(later + Duration::from_secs(5)));
    assert_eq!(a.poll_timeout(), b.poll_timeout());
}

/// A head larger than `max_head_size` with a malformed byte beyond the
/// limit: the answer must not depend on how much arrived at once.
#[test]
fn oversized_head_answer_does_not_depend_on_chunking() {
    let mut config = seeded();
    config.max_head_size = 256;
    let mut head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
    head.resize(400, b'a');
    head.extend_from_slice(b"\x01bad\r\n\r\n");
    let now = Instant::now();
    let mut a = Connection::server(config.clone(), now);
    let whole = feed_whole(&mut a, now, &head, ev_str);
    let mut b = Connection::server(config, now);
    let bytewise = feed_bytewise(&mut b, now, &head, ev_str);
    assert_eq!(whole.events, bytewise.events);
    assert_eq!(
        String::from_utf8_lossy(&whole.tx),
        String::from_utf8_lossy(&bytewise.tx)
    );
    assert!(whole.tx.starts_with(b"HTTP/1.1 431 "));
}

const REQUEST: &str = "GET /chat?x=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
    Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

const RESPONSE: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
    Sec-WebSocket-Protocol: chat\r\n\r\n";

fn mutate_head(head: &str, muts: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut v = head.as_bytes().to_vec();
    for &(i, op, x) in muts {
        let n = v.len();
        match op % 3 {
            0 if n > 0 => v[i % n] = x,
            1 => v.insert(i % (n + 1), x),
            _ if n > 0 => {
                v.remove(i % n);
            }
            _ => {}
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Opening handshakes, valid or mutated, with a frame behind them: the
    /// outcome (events, HTTP answer, frames) does not depend on the cuts.
    #[test]
    fn handshake_chunking_invariance(
        server in any::<bool>(),
        muts in proptest::collection::vec((any::<usize>(), any::<u8>(), prop_oneof![
            Just(b'\r'), Just(b'\n'), Just(b':'), Just(b' '), Just(b'\0'), Just(0x80u8), any::<u8>()
        ]), 0..3),
        max_head in prop_oneof![Just(16usize << 10), 0usize..300],
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let role = if server { Role::Server } else { Role::Client };
        let mut config = seeded();
        config.max_head_size = max_head;
        let mut input = mutate_head(if server { REQUEST } else { RESPONSE }, &muts);
        input.extend(frame_to(role, true, 0x1, b"after"));
        let now = Instant::now();
        let make = || match role {
            Role::Server => Connection::server(config.clone(), now),
            _ => {
                let req = ClientRequest::new("ws://example.com/chat")
                    .unwrap()
                    .protocol("chat")
                    .unwrap()
                    .with_key(*b"the sample nonce");
                Connection::client(&req, config.clone(), now)
            }
        };
        let whole = feed_cuts(&mut make(), now, &input, &[], true, ev_full);
        let cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        let cut = feed_cuts(&mut make(), now, &input, &cuts, true, ev_full);
        prop_assert_eq!(&cut, &whole);
        let mut conn = make();
        let mut bytewise = feed_bytewise(&mut conn, now, &input, ev_full);
        conn.handle_eof(now);
        drain_into(&mut conn, &mut bytewise, ev_full);
        prop_assert_eq!(&bytewise, &whole);
    }
}
