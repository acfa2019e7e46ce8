//! `bench-run reliable`: reliable mode (`hookup.v1`) beside raw hookup, in the same run.
//!
//! For each repetition, every variant of the `reliable` binary (see `src/bin/reliable.rs`)
//! runs once, in an order rotated by one per repetition so that slow drifts in the machine's
//! load hit every variant alike: a fresh `reliable server` pinned to the server core, one
//! `reliable client --variant V` pinned to the load core. The server's CPU is sampled at the
//! client's MEASURE_START / MEASURE_END; the client reports its own (getrusage).
//!
//! Tables: medians over the repetitions, the min–max of msgs/s, and ratios to `raw` (for
//! throughput) or `rtt-raw` (for latency) taken per repetition and then the median of those,
//! so a repetition that was slow for everyone does not move the ratio.
//!
//! Environment (besides bench-run's BENCH_SERVER_CPU, BENCH_LOAD_CPU, BENCH_NICE,
//! BENCH_QUIET_WAIT, BENCH_PORT_BASE):
//! - `BENCH_REPS` repetitions (default 5)
//! - `BENCH_REL_VARIANTS` comma list (default: all)
//! - `BENCH_REL_MESSAGES` messages per run of `raw` and the reliable variants without a
//!   journal (default 2000000: at 3–5 M msgs/s a shorter run is mostly start-up and noise)
//! - `BENCH_REL_SLOW_MESSAGES` messages per run of `raw-send` and the journal variants
//!   but `-always` (default 200000: they write once or twice per message)
//! - `BENCH_REL_RTTS` round trips per latency run (default 20000)
//! - `BENCH_REL_ALWAYS_MESSAGES` messages for `reliable-journal-always` (default 1000: one
//!   fsync per message)
//! - `BENCH_REL_SIZE` payload bytes (default 1024)

use std::time::{Duration, Instant};

use super::{Env, NOISY_PCT, Proc, Snap, env_or, fmt_size, kv, median};

/// All variants, throughput first; `raw` and `rtt-raw` are the baselines.
const VARIANTS: &[&str] = &[
    "raw",
    "raw-send",
    "reliable",
    "reliable-ack-each",
    "reliable-concurrent64",
    "reliable-journal-never",
    "reliable-journal-10ms",
    "reliable-journal-always",
    "rtt-raw",
    "rtt-reliable",
    "rtt-reliable-ack",
];

#[derive(Clone, Default)]
struct Sample {
    msgs_per_sec: f64,
    drain_ms: f64,
    p50_us: f64,
    p99_us: f64,
    client_us_per_msg: f64,
    server_us_per_msg: f64,
    other_pct: f64,
}

fn is_rtt(v: &str) -> bool {
    v.starts_with("rtt-")
}

fn run_one(env: &mut Env, variant: &str, messages: usize, size: usize) -> Result<Sample, String> {
    env.wait_quiet();
    let addr = env.next_addr();
    let mut cmd = env.command(&env.server_cpu, "reliable");
    cmd.arg("server").arg(&addr);
    let server = Proc::spawn(cmd).map_err(|e| format!("spawn reliable server: {e}"))?;
    env.boost(&server.pid());
    match server.line(Instant::now() + Duration::from_secs(10)) {
        Some(l) if l.starts_with("LISTENING") => {}
        other => {
            server.stop();
            return Err(format!("reliable server did not start: {other:?}"));
        }
    }
    let journal = env.bin_dir.join("reliable-bench.hkj");
    let mut cmd = env.command(&env.load_cpu, "reliable");
    cmd.arg("client")
        .args(["--addr", &addr])
        .args(["--variant", variant])
        .args(["--messages", &messages.to_string()])
        .args(["--size", &size.to_string()]);
    if variant.contains("journal") {
        cmd.arg("--journal").arg(&journal);
    }
    let client = match Proc::spawn(cmd) {
        Ok(p) => p,
        Err(e) => {
            server.stop();
            return Err(format!("spawn reliable client: {e}"));
        }
    };
    env.boost(&client.pid());
    let (spid, cpid) = (server.pid(), client.pid());
    let deadline = Instant::now() + Duration::from_secs(320);
    let (mut s0, mut s1, mut result) = (None, None, None);
    while let Some(line) = client.line(deadline) {
        if line == "MEASURE_START" {
            s0 = Some(Snap::take(&spid, &cpid));
        } else if line == "MEASURE_END" {
            s1 = Some(Snap::take(&spid, &cpid));
        } else if line.starts_with("RESULT") {
            result = Some(line);
            break;
        }
    }
    server.stop();
    client.stop();
    let _ = std::fs::remove_file(&journal);
    let result = result.ok_or("client produced no RESULT (see stderr)")?;
    let msgs = kv(&result, "msgs").unwrap_or(0.0).max(1.0);
    let mut s = Sample {
        msgs_per_sec: kv(&result, "msgs_per_sec").unwrap_or(0.0),
        drain_ms: kv(&result, "drain_ms").unwrap_or(0.0),
        p50_us: kv(&result, "p50_us").unwrap_or(0.0),
        p99_us: kv(&result, "p99_us").unwrap_or(0.0),
        client_us_per_msg: kv(&result, "client_cpu_us").unwrap_or(0.0) / msgs,
        ..Sample::default()
    };
    if let (Some(s0), Some(s1)) = (s0, s1) {
        let wall = (s1.at - s0.at).as_secs_f64().max(1e-9);
        let server_s = s1.server.saturating_sub(s0.server) as f64 / env.tck;
        let client_s = s1.load.saturating_sub(s0.load) as f64 / env.tck;
        s.server_us_per_msg = server_s * 1e6 / msgs;
        let busy: u64 = s1
            .cpus
            .iter()
            .zip(&s0.cpus)
            .map(|(b, a)| b.delta(a))
            .map(|c| c.task + c.steal)
            .sum();
        let other = busy as f64 / env.tck - server_s - client_s;
        s.other_pct = (other / wall * 100.0).max(0.0);
    }
    Ok(s)
}

/// Runs the reliable mode and prints its tables.
pub(super) fn run(env: &mut Env) {
    if !env.bin_dir.join("reliable").exists() {
        eprintln!("bench-run reliable: no `reliable` binary: build with --features hookup");
        std::process::exit(2);
    }
    let reps: usize = env_or("BENCH_REPS", 5).max(1);
    let messages: usize = env_or("BENCH_REL_MESSAGES", 2_000_000);
    let slow: usize = env_or("BENCH_REL_SLOW_MESSAGES", 200_000);
    let rtts: usize = env_or("BENCH_REL_RTTS", 20_000);
    let always: usize = env_or("BENCH_REL_ALWAYS_MESSAGES", 1000);
    let size: usize = env_or("BENCH_REL_SIZE", 1024);
    let variants: Vec<String> = match std::env::var("BENCH_REL_VARIANTS") {
        Ok(v) if !v.is_empty() => v.split(',').map(|s| s.trim().to_string()).collect(),
        _ => VARIANTS.iter().map(|s| s.to_string()).collect(),
    };
    println!(
        "\n### Reliable mode beside raw: {} messages, {reps} repetitions\n",
        fmt_size(size)
    );
    println!(
        "- throughput: {messages} messages client → server per run (`raw-send` and journal \
         variants: {slow}, `reliable-journal-always`: {always}), after 10% untimed warmup; \
         clock stops when the server confirmed the last one (raw: a SYNC reply with its \
         count; reliable: the last message's ack)"
    );
    println!("- latency: {rtts} round trips per run, one message in flight");
    println!(
        "- variants run in an order rotated per repetition; ratios are the median of per-\
         repetition ratios to `raw` / `rtt-raw`; CPU µs/msg = process utime+stime over the \
         timed part per message; ⚠ = some repetition had other processes using > {NOISY_PCT}% \
         of a core"
    );
    // samples[variant][rep]
    let mut samples: Vec<Vec<Option<Sample>>> = vec![vec![None; reps]; variants.len()];
    let mut errors: Vec<String> = Vec::new();
    // rep indexes the inner vectors and rotates the order.
    #[allow(clippy::needless_range_loop)]
    for rep in 0..reps {
        for k in 0..variants.len() {
            let i = (k + rep) % variants.len();
            let v = &variants[i];
            let n = if is_rtt(v) {
                rtts
            } else if v == "reliable-journal-always" {
                always
            } else if v == "raw-send" || v.starts_with("reliable-journal") {
                slow
            } else {
                messages
            };
            eprintln!("[bench-run] reliable rep {}/{reps}: {v} ({n}) ...", rep + 1);
            match run_one(env, v, n, size) {
                Ok(s) => samples[i][rep] = Some(s),
                Err(e) => {
                    eprintln!("[bench-run] {v}: {e}");
                    errors.push(format!("{v} rep {}: {e}", rep + 1));
                }
            }
        }
    }
    let col = |i: usize, f: fn(&Sample) -> f64| -> Vec<f64> {
        samples[i].iter().flatten().map(f).collect()
    };
    let base = |name: &str| variants.iter().position(|v| v == name);
    // Median over repetitions of (this / baseline) for metric f.
    let ratio = |i: usize, b: Option<usize>, f: fn(&Sample) -> f64| -> String {
        let Some(b) = b else { return "–".into() };
        let r: Vec<f64> = (0..reps)
            .filter_map(|rep| match (&samples[i][rep], &samples[b][rep]) {
                (Some(x), Some(y)) if f(y) > 0.0 => Some(f(x) / f(y)),
                _ => None,
            })
            .collect();
        if r.is_empty() {
            "–".into()
        } else {
            format!("{:.3}", median(r))
        }
    };
    let name = |i: usize| {
        let noisy = samples[i].iter().flatten().any(|s| s.other_pct > NOISY_PCT);
        let n = samples[i].iter().flatten().count();
        let mut s = variants[i].clone();
        if n < reps {
            s += &format!(" ({n}/{reps} ok)");
        }
        if noisy {
            s += " ⚠";
        }
        s
    };
    let raw = base("raw");
    println!("\n#### Throughput (client → server, until all confirmed)\n");
    println!(
        "| variant | msgs/s (median) | min–max | ratio to raw | drain ms | client CPU µs/msg | \
         server CPU µs/msg | others' CPU % (max) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for i in (0..variants.len()).filter(|&i| !is_rtt(&variants[i])) {
        let m = col(i, |s| s.msgs_per_sec);
        if m.is_empty() {
            println!("| {} | – | | | | | | |", name(i));
            continue;
        }
        let (lo, hi) = m
            .iter()
            .fold((f64::MAX, 0.0f64), |(l, h), &x| (l.min(x), h.max(x)));
        println!(
            "| {} | {:.0} | {:.0}–{:.0} | {} | {:.2} | {:.3} | {:.3} | {:.0} |",
            name(i),
            median(m),
            lo,
            hi,
            ratio(i, raw, |s| s.msgs_per_sec),
            median(col(i, |s| s.drain_ms)),
            median(col(i, |s| s.client_us_per_msg)),
            median(col(i, |s| s.server_us_per_msg)),
            col(i, |s| s.other_pct).into_iter().fold(0.0, f64::max),
        );
    }
    let rtt_raw = base("rtt-raw");
    println!("\n#### Latency (one message in flight)\n");
    println!(
        "| variant | p50 µs | p99 µs | p50 ratio to rtt-raw | p99 ratio to rtt-raw | round trips/s | \
         client CPU µs/rt | server CPU µs/rt | others' CPU % (max) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for i in (0..variants.len()).filter(|&i| is_rtt(&variants[i])) {
        if samples[i].iter().flatten().count() == 0 {
            println!("| {} | – | | | | | | | |", name(i));
            continue;
        }
        println!(
            "| {} | {:.1} | {:.1} | {} | {} | {:.0} | {:.2} | {:.2} | {:.0} |",
            name(i),
            median(col(i, |s| s.p50_us)),
            median(col(i, |s| s.p99_us)),
            ratio(i, rtt_raw, |s| s.p50_us),
            ratio(i, rtt_raw, |s| s.p99_us),
            median(col(i, |s| s.msgs_per_sec)),
            median(col(i, |s| s.client_us_per_msg)),
            median(col(i, |s| s.server_us_per_msg)),
            col(i, |s| s.other_pct).into_iter().fold(0.0, f64::max),
        );
    }
    if !errors.is_empty() {
        println!("\nFailed runs:\n");
        for e in &errors {
            println!("- {e}");
        }
    }
}
