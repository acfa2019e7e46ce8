//! Deflate mode (`bench-run deflate`, `bench/run.sh deflate`; needs `--features hookup` for
//! the hookup row): permessage-deflate echo throughput of `hookup-deflate` (hookup-tokio
//! with `DeflateConfig::default()`) against the peers that implement the extension
//! (`echo-server --list-deflate`: yawc, soketto), plus one control peer without it.
//!
//! The load (`load --deflate`) offers `permessage-deflate`, requires it in the response and
//! sends pre-compressed JSON-like text; a server that does not accept the extension is
//! listed as not negotiated (not measured), and one that accepts it but echoes uncompressed
//! frames is flagged and left out of the best-peer ratio. Every repetition runs every impl
//! once per case, in an order rotated per repetition; tables show medians, min–max and the
//! median of per-repetition ratios to the best peer of that repetition.
//!
//! Environment (besides the common ones): `BENCH_REPS` (default 3), `BENCH_IMPLS`
//! (default: `echo-server --list-deflate` plus the control), `BENCH_DEFLATE_CONTROL`
//! (a server without permessage-deflate, run once per case to show the flag; default
//! `fastwebsockets`, empty disables), `BENCH_CASES` (1-based subset of the cases below).

use std::process::Command;

use super::{Case, Env, Row, env_or, fmt_size, kv, median};

const CASES: &[Case] = &[
    Case {
        conns: 16,
        size: 1024,
        window: 16,
        deflate: true,
    },
    Case {
        conns: 50,
        size: 16 * 1024,
        window: 2,
        deflate: true,
    },
];

/// A row compressed fewer than this % of its echoes: flagged, not a candidate best peer.
const MIN_COMPRESSED_PCT: f64 = 99.0;

fn is_peer(imp: &str) -> bool {
    !imp.starts_with("hookup") && imp != "tcp"
}

/// Measured, negotiated and compressed: usable for ratios.
fn valid(r: &Row) -> bool {
    r.msgs_per_sec > 0.0
        && r.not_negotiated.is_none()
        && kv(&r.result, "compressed_pct").is_some_and(|p| p >= MIN_COMPRESSED_PCT)
        && r.err.as_deref().is_none_or(|e| e.starts_with("noisy"))
}

pub(super) fn run(env: &mut Env, warmup: f64, duration: f64) {
    let reps: usize = env_or("BENCH_REPS", 3usize).max(1);
    let control =
        std::env::var("BENCH_DEFLATE_CONTROL").unwrap_or_else(|_| "fastwebsockets".into());
    let imps: Vec<String> = match std::env::var("BENCH_IMPLS") {
        Ok(v) if !v.is_empty() => v.split(',').map(|s| s.trim().to_string()).collect(),
        _ => {
            let listed = Command::new(env.bin_dir.join("echo-server"))
                .arg("--list-deflate")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let mut v: Vec<String> = listed.lines().map(str::to_string).collect();
            if !control.is_empty() {
                v.push(control.clone());
            }
            v
        }
    };
    let case_nos: Vec<usize> = match std::env::var("BENCH_CASES") {
        Ok(v) if !v.is_empty() => v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        _ => (1..=CASES.len()).collect(),
    };

    println!("## hookup permessage-deflate echo benchmark\n");
    if env.taskset {
        println!(
            "- pinning: server on core {}, load on core {} (taskset)",
            env.server_cpu, env.load_cpu
        );
    }
    if let Some(n) = &env.nice {
        println!("- server and load run at niceness {n}");
    }
    println!(
        "- per case and impl: {warmup} s warmup + {duration} s measured, {reps} repetitions \
         (impl order rotated per repetition); medians, min–max"
    );
    println!("- impls: {}", imps.join(", "));
    println!(
        "- load: offers `permessage-deflate`, checks `Sec-WebSocket-Extensions` in the \
         response, sends JSON-like text with varied values, each message pre-compressed on \
         its own (level 1); counts echoes by frame header; `compressed %` = echoed data \
         frames with RSV1, `wire B/echo` = server bytes per echo"
    );
    println!(
        "- ratio = msgs/s over the best peer (highest msgs/s among negotiated, compressing \
         non-hookup impls) of the same repetition, median over repetitions; CPU ratio = \
         server CPU µs/msg over that peer's"
    );

    for &no in &case_nos {
        let Some(case) = CASES.get(no.wrapping_sub(1)) else {
            eprintln!("no deflate case {no}");
            continue;
        };
        // rows[imp][rep]
        let mut rows: Vec<Vec<Row>> = imps.iter().map(|_| Vec::new()).collect();
        for rep in 0..reps {
            for k in 0..imps.len() {
                let i = (k + rep) % imps.len();
                let imp = &imps[i];
                // The control only shows the flag: once is enough.
                if rep > 0 && *imp == control && !rows[i].is_empty() && !valid(&rows[i][0]) {
                    continue;
                }
                eprintln!(
                    "[bench-run] deflate case {no} ({} × {} w{}) rep {}/{reps} {imp} ...",
                    case.conns,
                    fmt_size(case.size),
                    case.window,
                    rep + 1
                );
                rows[i].push(super::run_case(env, case, imp, warmup, duration));
            }
        }
        print_case(no, case, &imps, &rows, reps);
    }
}

fn print_case(no: usize, case: &Case, imps: &[String], rows: &[Vec<Row>], reps: usize) {
    println!(
        "\n### Deflate case {no}: {} conns × {} JSON text, window {}\n",
        case.conns,
        fmt_size(case.size),
        case.window
    );
    // Best peer per repetition (by msgs/s), with its server CPU per message.
    let best: Vec<Option<(f64, f64, String)>> = (0..reps)
        .map(|rep| {
            imps.iter()
                .zip(rows)
                .filter(|(imp, _)| is_peer(imp))
                .filter_map(|(imp, rs)| rs.get(rep).filter(|r| valid(r)).map(|r| (imp, r)))
                .max_by(|a, b| a.1.msgs_per_sec.total_cmp(&b.1.msgs_per_sec))
                .map(|(imp, r)| (r.msgs_per_sec, r.server_us_per_msg, imp.clone()))
        })
        .collect();
    println!(
        "| impl | msgs/s median (min–max) | server CPU µs/msg | server core µs/msg | \
         load CPU % | wire B/echo | compressed % | ratio to best peer (min–max) | \
         server CPU/msg ratio to best peer | notes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for (imp, rs) in imps.iter().zip(rows) {
        let ok: Vec<&Row> = rs.iter().filter(|r| valid(r)).collect();
        let mut notes: Vec<String> = Vec::new();
        if let Some(r) = rs.iter().find(|r| r.not_negotiated.is_some()) {
            notes.push(format!(
                "⚠ did not negotiate permessage-deflate, not measured ({})",
                r.not_negotiated.as_deref().unwrap_or("")
            ));
        }
        for r in rs {
            if let Some(p) = kv(&r.result, "compressed_pct")
                && p < MIN_COMPRESSED_PCT
                && r.msgs_per_sec > 0.0
            {
                notes.push(format!(
                    "⚠ negotiated but compressed only {p:.0}% of echoes ({:.0} msgs/s): excluded",
                    r.msgs_per_sec
                ));
                break;
            }
        }
        let failed = rs
            .iter()
            .filter(|r| {
                r.not_negotiated.is_none()
                    && r.err.as_deref().is_some_and(|e| !e.starts_with("noisy"))
            })
            .count();
        if failed > 0 {
            let e = rs
                .iter()
                .find_map(|r| r.err.as_deref().filter(|e| !e.starts_with("noisy")))
                .unwrap_or("");
            notes.push(format!("⚠ {failed} failed run(s): {e}"));
        }
        let noisy = rs
            .iter()
            .filter(|r| r.err.as_deref().is_some_and(|e| e.starts_with("noisy")))
            .count();
        if noisy > 0 {
            notes.push(format!("{noisy} of {} runs noisy", rs.len()));
        }
        if ok.is_empty() {
            println!(
                "| {imp} | – | – | – | – | – | – | – | – | {} |",
                notes.join("; ")
            );
            continue;
        }
        let m = |f: &dyn Fn(&Row) -> f64| median(ok.iter().map(|r| f(r)).collect());
        let msgs: Vec<f64> = ok.iter().map(|r| r.msgs_per_sec).collect();
        let (lo, hi) = msgs
            .iter()
            .fold((f64::MAX, 0.0f64), |(l, h), &v| (l.min(v), h.max(v)));
        let mut ratios = Vec::new();
        let mut cpu_ratios = Vec::new();
        for (rep, r) in rs.iter().enumerate() {
            if let (true, Some(Some((b, bcpu, _)))) = (valid(r), best.get(rep)) {
                ratios.push(r.msgs_per_sec / b);
                if *bcpu > 0.0 {
                    cpu_ratios.push(r.server_us_per_msg / bcpu);
                }
            }
        }
        let ratio = if ratios.is_empty() {
            "–".to_string()
        } else {
            let (rl, rh) = ratios
                .iter()
                .fold((f64::MAX, 0.0f64), |(l, h), &v| (l.min(v), h.max(v)));
            format!("{:.2} ({rl:.2}–{rh:.2})", median(ratios.clone()))
        };
        let cpu_ratio = if cpu_ratios.is_empty() {
            "–".to_string()
        } else {
            format!("{:.2}", median(cpu_ratios))
        };
        println!(
            "| {imp} | {:.0} ({lo:.0}–{hi:.0}) | {:.2} | {:.2} | {:.0} | {:.0} | {:.1} | {ratio} | {cpu_ratio} | {} |",
            median(msgs.clone()),
            m(&|r| r.server_us_per_msg),
            m(&|r| r.server_core_us_per_msg),
            m(&|r| r.load_cpu_pct),
            m(&|r| kv(&r.result, "wire_bytes_per_echo").unwrap_or(f64::NAN)),
            m(&|r| kv(&r.result, "compressed_pct").unwrap_or(f64::NAN)),
            notes.join("; ")
        );
    }
    let bests: Vec<String> = best
        .iter()
        .enumerate()
        .map(|(i, b)| match b {
            Some((v, _, imp)) => format!("rep {}: {imp} {v:.0}", i + 1),
            None => format!("rep {}: none", i + 1),
        })
        .collect();
    println!("\nBest peer per repetition: {}", bests.join(", "));
}
