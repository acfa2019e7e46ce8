//! Throughput of the sans-IO core, against `memcpy` of the same bytes
//! measured in the same run (the physical limit on this machine).
//!
//! Groups (criterion ids are `group/case`):
//!
//! * `rx_<size>`: server receive path (decode, unmask, UTF-8 validation,
//!   reassembly, event delivery) of a pre-encoded, masked stream of many
//!   messages (about 4 MiB, or 10 000 messages of 16 B). Every iteration
//!   copies the masked bytes into [`Connection::read_buf`] the way
//!   hookup-tokio reads a socket (see [`receive`]), calls `handle_read` and
//!   drains `poll_event`. Throughput counts wire bytes, so the ratio of two
//!   cases is the ratio of their times. Cases: `text`, `binary`, for
//!   64 KiB / 1 MiB also `text_frag4` / `binary_frag4` (each message in 4
//!   frames), and two baselines over the same wire bytes: `memcpy` (one
//!   `copy_from_slice` into a preallocated buffer of the same size) and
//!   `memcpy_64KiB` (64 KiB pieces into one reused, cache-resident 64 KiB
//!   buffer: the socket-to-buffer copy a reader makes at least).
//! * `rx_frames_16B`: the 16 B receive cases again, counted in frames/s.
//! * `rx_16B_read`: 16 B binary receive with different read sizes (how much
//!   the event queue holds at once).
//! * `tx_<size>`: `send_text` / `send_binary` by a client (masking) and a
//!   server, draining `poll_transmit` into a reused `Vec` whenever 64 KiB
//!   are queued (a write-coalescing adapter); for 64 KiB / 1 MiB also the
//!   server's zero-copy `send(Message)` drained with `transmit_vectored` +
//!   `advance_transmit` after each message. Throughput counts payload bytes;
//!   baselines: `memcpy` copies all payload bytes at once, `memcpy_per_msg`
//!   copies each message's payload into a reused 64 KiB output buffer.
//! * `tx_frames_16B`: 16 B sends in frames/s.
//! * `mask_<size>`: `apply_mask` against `apply_mask_bytewise`.
//!
//! UTF-8 validation cost = `rx_<size>/text` − `rx_<size>/binary` (same
//! sizes, same framing). The text is mostly ASCII with some 2- and 3-byte
//! characters (about one in ten), like European-language JSON.
//!
//! Run: `cargo bench -p hookup-proto --bench proto` (add a filter such as
//! `rx_64KiB` to run one group); `hookup-proto/benches/report.sh` runs it
//! with short timings and prints a markdown table.

use std::hint::black_box;
use std::io::IoSlice;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use hookup_proto::bytes::Bytes;
use hookup_proto::mask::{apply_mask, apply_mask_bytewise};
use hookup_proto::{Config, Connection, Event, Message, MessageKind, Role};

/// Largest read an adapter makes in one go (hookup-tokio's default
/// `max_read_size`).
const READ: usize = 64 << 10;
/// hookup-tokio reserves more room only when less than this is left.
const MIN_READ: usize = 4 << 10;
/// An adapter writes out once this much is queued.
const FLUSH: usize = 64 << 10;
/// Roughly how many wire bytes one iteration processes (for sizes ≥ 1 KiB).
const STREAM_BYTES: usize = 4 << 20;
/// Messages per iteration for 16 B messages.
const SMALL_MESSAGES: usize = 10_000;

const SIZES: [(usize, &str); 4] = [
    (16, "16B"),
    (1 << 10, "1KiB"),
    (64 << 10, "64KiB"),
    (1 << 20, "1MiB"),
];

fn messages_for(size: usize) -> usize {
    if size <= 16 {
        SMALL_MESSAGES
    } else {
        (STREAM_BYTES / size).max(4)
    }
}

/// Deterministic bytes (xorshift).
fn binary_payload(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Mostly-ASCII JSON-like text with some multi-byte characters, exactly
/// `len` bytes.
fn text_payload(len: usize) -> String {
    const PATTERN: &str = "{\"id\":4711,\"user\":\"Jürgen Müller\",\"msg\":\"Grüße aus Köln — 10 € ✓\",\"ok\":true}\n";
    let mut s = String::with_capacity(len + PATTERN.len());
    while s.len() < len {
        for c in PATTERN.chars() {
            if s.len() + c.len_utf8() > len {
                break;
            }
            s.push(c);
        }
        if s.len() + 4 > len {
            while s.len() < len {
                s.push(' ');
            }
        }
    }
    s
}

fn payload(kind: MessageKind, len: usize) -> Vec<u8> {
    match kind {
        MessageKind::Text => text_payload(len).into_bytes(),
        _ => binary_payload(len),
    }
}

fn config() -> Config {
    let mut c = Config::default();
    c.rng_seed = Some([42; 32]);
    c
}

/// `count` masked client→server messages of `payload`, each in `frames` frames.
fn encode_stream(kind: MessageKind, payload: &[u8], count: usize, frames: usize) -> Vec<u8> {
    let now = Instant::now();
    let mut client = Connection::new_open(Role::Client, config(), now);
    for _ in 0..count {
        if frames == 1 {
            match kind {
                MessageKind::Text => client
                    .send_text(std::str::from_utf8(payload).unwrap())
                    .unwrap(),
                _ => client.send_binary(payload).unwrap(),
            }
        } else {
            let step = payload.len().div_ceil(frames);
            let mut chunks = payload.chunks(step).peekable();
            while let Some(chunk) = chunks.next() {
                client
                    .send_fragment(kind, chunk, chunks.peek().is_none())
                    .unwrap();
            }
        }
    }
    let mut wire = Vec::new();
    client.poll_transmit(&mut wire);
    wire
}

/// Feeds `wire` to `conn` the way hookup-tokio reads a socket (reserve
/// `read_hint` capped at the read size when less than [`MIN_READ`] is free,
/// then read into the free room), with a socket that delivers at most
/// `read` bytes per read, and drains the events; returns the number of
/// payload bytes delivered.
#[inline]
fn receive(conn: &mut Connection, now: Instant, wire: &[u8], read: usize) -> usize {
    let mut delivered = 0;
    let mut rest = wire;
    while !rest.is_empty() {
        let want = conn.read_hint(read.min(READ)).min(read);
        let buf = conn.read_buf();
        if buf.capacity() - buf.len() < MIN_READ {
            buf.reserve(want);
        }
        let n = rest.len().min(read).min(buf.capacity() - buf.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        conn.handle_read(now);
        while let Some(ev) = conn.poll_event() {
            match ev {
                Event::Message(m) => delivered += black_box(m).len(),
                other => panic!("unexpected event {other:?}"),
            }
        }
    }
    delivered
}

/// `memcpy`: `src` copied once into a preallocated buffer of its size.
fn bench_memcpy(g: &mut BenchmarkGroup<'_, WallTime>, src: &[u8]) {
    let mut dst = vec![0u8; src.len()];
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(src));
            black_box(&mut dst);
        })
    });
}

/// `memcpy_<piece>`: `src` copied in `piece`-sized pieces into one reused
/// buffer of that size, which stays in cache (the copy a reader must make
/// at least: socket to buffer).
fn bench_memcpy_pieces(g: &mut BenchmarkGroup<'_, WallTime>, src: &[u8], piece: usize, name: &str) {
    let mut dst = vec![0u8; piece];
    g.bench_function(name, |b| {
        b.iter(|| {
            for chunk in black_box(src).chunks(piece) {
                dst[..chunk.len()].copy_from_slice(chunk);
                black_box(&mut dst);
            }
        })
    });
}

fn bench_rx_case(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    wire: &[u8],
    payload_total: usize,
    read: usize,
) {
    let now = Instant::now();
    let mut conn = Connection::new_open(Role::Server, config(), now);
    assert_eq!(receive(&mut conn, now, wire, read), payload_total);
    g.bench_function(name, |b| {
        b.iter(|| receive(&mut conn, now, black_box(wire), read))
    });
    assert!(conn.is_open());
}

fn rx(c: &mut Criterion) {
    for (size, label) in SIZES {
        let count = messages_for(size);
        let text = encode_stream(
            MessageKind::Text,
            &payload(MessageKind::Text, size),
            count,
            1,
        );
        let binary = encode_stream(
            MessageKind::Binary,
            &payload(MessageKind::Binary, size),
            count,
            1,
        );
        assert_eq!(text.len(), binary.len());
        let mut g = c.benchmark_group(format!("rx_{label}"));
        g.throughput(Throughput::Bytes(text.len() as u64));
        bench_memcpy(&mut g, &binary);
        bench_memcpy_pieces(&mut g, &binary, READ, "memcpy_64KiB");
        bench_rx_case(&mut g, "text", &text, size * count, READ);
        bench_rx_case(&mut g, "binary", &binary, size * count, READ);
        if size >= 64 << 10 {
            for (kind, name) in [
                (MessageKind::Text, "text_frag4"),
                (MessageKind::Binary, "binary_frag4"),
            ] {
                let wire = encode_stream(kind, &payload(kind, size), count, 4);
                g.throughput(Throughput::Bytes(wire.len() as u64));
                bench_rx_case(&mut g, name, &wire, size * count, READ);
            }
        }
        g.finish();
    }

    let count = messages_for(16);
    let text = encode_stream(MessageKind::Text, &payload(MessageKind::Text, 16), count, 1);
    let binary = encode_stream(
        MessageKind::Binary,
        &payload(MessageKind::Binary, 16),
        count,
        1,
    );
    let mut g = c.benchmark_group("rx_frames_16B");
    g.throughput(Throughput::Elements(count as u64));
    bench_rx_case(&mut g, "text", &text, 16 * count, READ);
    bench_rx_case(&mut g, "binary", &binary, 16 * count, READ);
    g.finish();

    let mut g = c.benchmark_group("rx_16B_read");
    g.throughput(Throughput::Elements(count as u64));
    for (read, name) in [
        (4 << 10, "binary_4KiB"),
        (READ, "binary_64KiB"),
        (usize::MAX, "binary_all"),
    ] {
        bench_rx_case(&mut g, name, &binary, 16 * count, read);
    }
    g.finish();
}

#[derive(Clone, Copy)]
enum Tx {
    Text,
    Binary,
}

fn bench_tx_case(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    role: Role,
    tx: Tx,
    payload: &[u8],
    count: usize,
) {
    let now = Instant::now();
    let mut conn = Connection::new_open(role, config(), now);
    let text = std::str::from_utf8(payload).ok();
    let mut out = Vec::new();
    g.bench_function(name, |b| {
        b.iter(|| {
            let mut written = 0;
            for _ in 0..count {
                match tx {
                    Tx::Text => conn.send_text(black_box(text.unwrap())).unwrap(),
                    Tx::Binary => conn.send_binary(black_box(payload)).unwrap(),
                }
                if conn.transmit_len() >= FLUSH {
                    out.clear();
                    conn.poll_transmit(&mut out);
                    written += black_box(&out).len();
                }
            }
            out.clear();
            conn.poll_transmit(&mut out);
            written + black_box(&out).len()
        })
    });
}

/// `memcpy_per_msg`: each message's payload copied into one reused output
/// buffer that is emptied every [`FLUSH`] bytes, as `send_binary` +
/// `poll_transmit` must at least do.
fn bench_memcpy_messages(g: &mut BenchmarkGroup<'_, WallTime>, payload: &[u8], count: usize) {
    let mut out = vec![0u8; FLUSH.max(payload.len())];
    g.bench_function("memcpy_per_msg", |b| {
        b.iter(|| {
            let mut pos = 0;
            for _ in 0..count {
                if pos + payload.len() > out.len() {
                    black_box(&mut out);
                    pos = 0;
                }
                out[pos..pos + payload.len()].copy_from_slice(black_box(payload));
                pos += payload.len();
            }
            black_box(&mut out);
        })
    });
}

fn bench_tx_vectored(g: &mut BenchmarkGroup<'_, WallTime>, payload: &[u8], count: usize) {
    let now = Instant::now();
    let mut conn = Connection::new_open(Role::Server, config(), now);
    let payload = Bytes::copy_from_slice(payload);
    assert!(payload.len() >= conn.config().zero_copy_threshold);
    g.bench_function("server_send_vectored", |b| {
        b.iter(|| {
            let mut written = 0;
            for _ in 0..count {
                conn.send(Message::Binary(payload.clone())).unwrap();
                while conn.transmit_len() > 0 {
                    let n = {
                        let mut iov = [IoSlice::new(&[]); 8];
                        let k = conn.transmit_vectored(&mut iov);
                        black_box(&iov[..k]).iter().map(|s| s.len()).sum::<usize>()
                    };
                    conn.advance_transmit(n);
                    written += n;
                }
            }
            written
        })
    });
}

fn tx(c: &mut Criterion) {
    for (size, label) in SIZES {
        let count = messages_for(size);
        let text = payload(MessageKind::Text, size);
        let binary = payload(MessageKind::Binary, size);
        let mut g = c.benchmark_group(format!("tx_{label}"));
        g.throughput(Throughput::Bytes((size * count) as u64));
        bench_memcpy(&mut g, &binary.repeat(count));
        bench_memcpy_messages(&mut g, &binary, count);
        bench_tx_case(&mut g, "client_text", Role::Client, Tx::Text, &text, count);
        bench_tx_case(
            &mut g,
            "client_binary",
            Role::Client,
            Tx::Binary,
            &binary,
            count,
        );
        bench_tx_case(&mut g, "server_text", Role::Server, Tx::Text, &text, count);
        bench_tx_case(
            &mut g,
            "server_binary",
            Role::Server,
            Tx::Binary,
            &binary,
            count,
        );
        if size >= 64 << 10 {
            bench_tx_vectored(&mut g, &binary, count);
        }
        g.finish();
    }

    let count = messages_for(16);
    let binary = payload(MessageKind::Binary, 16);
    let mut g = c.benchmark_group("tx_frames_16B");
    g.throughput(Throughput::Elements(count as u64));
    bench_tx_case(
        &mut g,
        "client_binary",
        Role::Client,
        Tx::Binary,
        &binary,
        count,
    );
    bench_tx_case(
        &mut g,
        "server_binary",
        Role::Server,
        Tx::Binary,
        &binary,
        count,
    );
    g.finish();
}

fn mask(c: &mut Criterion) {
    for (size, label) in &SIZES[..3] {
        let mut buf = binary_payload(*size);
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut g = c.benchmark_group(format!("mask_{label}"));
        g.throughput(Throughput::Bytes(*size as u64));
        g.bench_function("apply_mask", |b| {
            b.iter(|| apply_mask(black_box(&mut buf), black_box(key), 0))
        });
        g.bench_function("apply_mask_bytewise", |b| {
            b.iter(|| apply_mask_bytewise(black_box(&mut buf), black_box(key), 0))
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = rx, tx, mask
}
criterion_main!(benches);
