//! permessage-deflate against plain frames, through the whole sans-IO path:
//! a client `send_text`s, its output is handed to a server with
//! `handle_input`, and the server's `poll_event` delivers the message.
//!
//! Groups (criterion ids are `group/case`):
//!
//! * `deflate_json_16KiB`: 64 different, compressible JSON messages of
//!   16 KiB (records with varied values, so context takeover helps but does
//!   not find whole repeats). Cases: `off` (no extension), `level1`
//!   (the default), `level6` (zlib's default), `level1_no_context_takeover`.
//!   Throughput counts payload bytes.
//! * `deflate_small_64B`: 1000 messages of 64 B per iteration, below the
//!   compression threshold: the cost of having the extension negotiated
//!   when small messages go uncompressed. Cases `off`, `on`.
//! * `deflate_codec_16KiB`: compress or inflate one 16 KiB JSON message
//!   with flate2 (zlib-rs backend) or miniz_oxide directly, levels 1 and 6,
//!   raw deflate with a sync flush (no framing): the crate choice.
//!
//! The wire size of each case is printed once before it runs.
//!
//! Run: `cargo bench -p hookup-proto --bench deflate`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use hookup_proto::deflate::{DeflateConfig, DeflateParams};
use hookup_proto::{Config, Connection, Event, Role};

#[path = "common/json.rs"]
mod json_corpus;
use json_corpus::json;

/// An open client/server pair, with permessage-deflate when `deflate` is set.
fn pair(deflate: Option<(u32, bool)>) -> (Connection, Connection) {
    let now = Instant::now();
    let mut config = Config::default();
    config.rng_seed = Some([9; 32]);
    let params = deflate.map(|(level, no_context_takeover)| {
        let mut d = DeflateConfig::default();
        d.level = level;
        config.deflate = Some(d);
        let mut p = DeflateParams::default();
        p.local_no_context_takeover = no_context_takeover;
        p.remote_no_context_takeover = no_context_takeover;
        p
    });
    (
        Connection::new_open_with_deflate(Role::Client, config.clone(), params, now),
        Connection::new_open_with_deflate(Role::Server, config, params, now),
    )
}

/// Sends each message from client to server; returns the wire bytes.
fn send_all(
    client: &mut Connection,
    server: &mut Connection,
    msgs: &[String],
    wire: &mut Vec<u8>,
) -> usize {
    let now = Instant::now();
    let mut total = 0;
    for m in msgs {
        client.send_text(m).unwrap();
    }
    wire.clear();
    client.poll_transmit(wire);
    total += wire.len();
    server.handle_input(now, wire);
    let mut n = 0;
    while let Some(ev) = server.poll_event() {
        if let Event::Message(m) = ev {
            black_box(&m);
            n += 1;
        }
    }
    assert_eq!(n, msgs.len());
    total
}

fn bench_json(c: &mut Criterion) {
    let msgs: Vec<String> = (0..64).map(|s| json(16 << 10, s)).collect();
    let mut g = c.benchmark_group("deflate_json_16KiB");
    g.throughput(Throughput::Bytes((16 << 10) as u64));
    let cases: [(&str, Option<(u32, bool)>); 4] = [
        ("off", None),
        ("level1", Some((1, false))),
        ("level6", Some((6, false))),
        ("level1_no_context_takeover", Some((1, true))),
    ];
    for (name, deflate) in cases {
        let (mut client, mut server) = pair(deflate);
        let mut wire = Vec::with_capacity(64 << 10);
        let bytes = send_all(&mut client, &mut server, &msgs, &mut wire);
        eprintln!(
            "deflate_json_16KiB/{name}: {:.0} wire bytes per 16384-byte message ({:.1}%)",
            bytes as f64 / msgs.len() as f64,
            bytes as f64 * 100.0 / (msgs.len() * (16 << 10)) as f64
        );
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % msgs.len();
                send_all(&mut client, &mut server, &msgs[i..=i], &mut wire)
            });
        });
    }
    g.finish();
}

fn bench_small(c: &mut Criterion) {
    let msgs: Vec<String> = (0..1000)
        .map(|i| format!("{{\"id\":{i:>8},\"v\":\"{:>42}\"}}", i * 7))
        .collect();
    assert!(msgs.iter().all(|m| m.len() == 64));
    let mut g = c.benchmark_group("deflate_small_64B");
    g.throughput(Throughput::Elements(msgs.len() as u64));
    for (name, deflate) in [("off", None), ("on", Some((1, false)))] {
        let (mut client, mut server) = pair(deflate);
        let mut wire = Vec::with_capacity(128 << 10);
        g.bench_function(name, |b| {
            b.iter(|| send_all(&mut client, &mut server, &msgs, &mut wire));
        });
    }
    g.finish();
}

fn bench_codec(c: &mut Criterion) {
    use miniz_oxide::deflate::core::{CompressorOxide, create_comp_flags_from_zip_params};
    use miniz_oxide::inflate::stream::InflateState;
    use miniz_oxide::{DataFormat, MZFlush};

    let data = json(16 << 10, 1);
    let data = data.as_bytes();
    let mut g = c.benchmark_group("deflate_codec_16KiB");
    g.throughput(Throughput::Bytes(data.len() as u64));
    for level in [1u32, 6] {
        // flate2 + zlib-rs
        let mut comp = Compress::new_with_window_bits(Compression::new(level), false, 15);
        let mut out = Vec::with_capacity(32 << 10);
        comp.compress_vec(data, &mut out, FlushCompress::Sync)
            .unwrap();
        let compressed = out.clone();
        eprintln!("zlib-rs level {level}: {} bytes", compressed.len());
        g.bench_function(format!("zlib_rs_compress_level{level}"), |b| {
            b.iter(|| {
                out.clear();
                comp.reset();
                comp.compress_vec(black_box(data), &mut out, FlushCompress::Sync)
                    .unwrap();
                out.len()
            });
        });
        let mut dec = Decompress::new(false);
        let mut dout = Vec::with_capacity(32 << 10);
        g.bench_function(format!("zlib_rs_inflate_level{level}"), |b| {
            b.iter(|| {
                dout.clear();
                dec.reset(false);
                dec.decompress_vec(black_box(&compressed), &mut dout, FlushDecompress::Sync)
                    .unwrap();
                assert_eq!(dout.len(), data.len());
            });
        });

        // miniz_oxide
        let flags = create_comp_flags_from_zip_params(level as i32, -15, 0);
        let mut mz = Box::new(CompressorOxide::new(flags));
        let mut mout = vec![0u8; 64 << 10];
        let n = miniz_oxide::deflate::stream::deflate(&mut mz, data, &mut mout, MZFlush::Sync)
            .bytes_written;
        let mcompressed = mout[..n].to_vec();
        eprintln!("miniz_oxide level {level}: {n} bytes");
        g.bench_function(format!("miniz_oxide_compress_level{level}"), |b| {
            b.iter(|| {
                mz.reset();
                miniz_oxide::deflate::stream::deflate(
                    &mut mz,
                    black_box(data),
                    &mut mout,
                    MZFlush::Sync,
                )
                .bytes_written
            });
        });
        let mut st = InflateState::new_boxed(DataFormat::Raw);
        let mut dbuf = vec![0u8; 64 << 10];
        g.bench_function(format!("miniz_oxide_inflate_level{level}"), |b| {
            b.iter(|| {
                st.reset(DataFormat::Raw);
                let r = miniz_oxide::inflate::stream::inflate(
                    &mut st,
                    black_box(&mcompressed),
                    &mut dbuf,
                    MZFlush::Sync,
                );
                assert_eq!(r.bytes_written, data.len());
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench_json, bench_small, bench_codec);
criterion_main!(benches);
