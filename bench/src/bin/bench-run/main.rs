//! `bench-run` — the driver. Usually started through `bench/run.sh`.
//!
//! ```text
//! bench-run [all|throughput|idle|reliable|deflate]
//! ```
//!
//! For each case and each impl: starts `echo-server <impl>` pinned to one core
//! (`taskset -c $BENCH_SERVER_CPU`, default 0), runs `load` pinned to another
//! (`$BENCH_LOAD_CPU`, default 1), samples the server's utime+stime from /proc/PID/stat
//! when the load says MEASURE_START / MEASURE_END, kills the server and prints one markdown
//! table per case. The idle mode opens `$BENCH_IDLE_CONNS` (default 5000) idle, handshaken
//! connections to each server and reports the VmRSS growth per connection. The reliable mode
//! (not part of `all`; needs `--features hookup`) compares hookup's reliable mode with raw
//! hookup: see `reliable.rs`. The deflate mode (not part of `all`) compares hookup with
//! permessage-deflate against the peers that have it: see `deflate.rs`.
//!
//! Environment:
//! - `BENCH_DURATION` measured seconds per case/impl (default 3)
//! - `BENCH_WARMUP` warmup seconds per case/impl (default 1)
//! - `BENCH_IMPLS` comma list of impls (default: all that `echo-server --list` prints)
//! - `BENCH_CASES` comma list of case numbers, 1-based (default: all)
//! - `BENCH_REPS` repetitions of each throughput case, impls interleaved (default 3)
//! - `BENCH_IDLE_CONNS` idle connections in idle mode (default 5000)
//! - `BENCH_SERVER_CPU`, `BENCH_LOAD_CPU` cores to pin to (default 0 and 1)
//! - `BENCH_PORT_BASE` first loopback port used (default 19100); each run uses the next one
//! - `BENCH_NICE` niceness of server and load, each run in a session (so an autogroup) of
//!   its own whose niceness is set too (default -20 when root, else unchanged; empty
//!   disables). Keeps a concurrent build from taking their cores.
//! - `BENCH_QUIET_WAIT` max seconds to wait before each run for other processes to go
//!   quiet (default 10); runs where others still used >10% of a core are flagged "noisy"

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use hookup_bench::procfs;

mod deflate;
mod reliable;

struct Case {
    conns: usize,
    size: usize,
    window: usize,
    /// The load offers permessage-deflate and sends compressed JSON text (deflate mode).
    deflate: bool,
}

const CASES: &[Case] = &[
    Case {
        conns: 100,
        size: 20,
        window: 1,
        deflate: false,
    },
    Case {
        conns: 16,
        size: 1024,
        window: 16,
        deflate: false,
    },
    Case {
        conns: 100,
        size: 20,
        window: 16,
        deflate: false,
    },
    Case {
        conns: 200,
        size: 16 * 1024,
        window: 1,
        deflate: false,
    },
    Case {
        conns: 10,
        size: 1024 * 1024,
        window: 4,
        deflate: false,
    },
];

/// Runs where other processes used more than this (% of one core) are flagged.
const NOISY_PCT: f64 = 10.0;

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median of `v` (NaN when empty).
fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn fmt_size(b: usize) -> String {
    if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
        format!("{} MiB", b >> 20)
    } else if b >= 1 << 10 && b.is_multiple_of(1 << 10) {
        format!("{} KiB", b >> 10)
    } else {
        format!("{b} B")
    }
}

/// A child process whose stdout lines arrive on a channel (read by a helper thread).
struct Proc {
    child: Child,
    lines: Receiver<String>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> std::io::Result<Self> {
        cmd.stdout(Stdio::piped()).stdin(Stdio::null());
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { child, lines: rx })
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Next stdout line, or None on timeout / EOF.
    fn line(&self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        // Timeout or EOF (the reader thread ended).
        self.lines.recv_timeout(left).ok()
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Env {
    bin_dir: PathBuf,
    taskset: bool,
    server_cpu: String,
    load_cpu: String,
    tck: f64,
    port: u16,
    /// Niceness for server and load (BENCH_NICE, default -20 as root: keeps a concurrent
    /// build from stealing their cores; "" disables).
    nice: Option<String>,
}

impl Env {
    fn server_core(&self) -> Option<usize> {
        if self.taskset {
            self.server_cpu.parse().ok()
        } else {
            None
        }
    }

    /// Waits (up to BENCH_QUIET_WAIT seconds, default 10) until processes other than ours
    /// use less than 10% of a core, so that e.g. a concurrent `cargo build` does not skew
    /// a run. Returns false if the machine never got quiet.
    fn wait_quiet(&self) -> bool {
        let max = Duration::from_secs_f64(env_or("BENCH_QUIET_WAIT", 10.0));
        let start = Instant::now();
        let mut warned = false;
        loop {
            let a = procfs::per_cpu_times();
            std::thread::sleep(Duration::from_millis(500));
            let b = procfs::per_cpu_times();
            let busy: u64 = b.iter().zip(&a).map(|(b, a)| b.delta(a).busy()).sum();
            let pct = busy as f64 / self.tck / 0.5 * 100.0;
            if pct < 10.0 {
                return true;
            }
            if start.elapsed() >= max {
                eprintln!("[bench-run] machine still busy ({pct:.0}% of a core), running anyway");
                return false;
            }
            if !warned {
                eprintln!(
                    "[bench-run] machine busy ({pct:.0}% of a core used by others), waiting..."
                );
                warned = true;
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    /// `[nice -n N] [taskset -c CPU] bin`; nice and taskset exec, so the PID is bin's.
    fn command(&self, cpu: &str, bin: &str) -> Command {
        let mut argv: Vec<std::ffi::OsString> = Vec::new();
        if let Some(n) = &self.nice {
            argv.extend(["nice".into(), "-n".into(), n.into()]);
        }
        if self.taskset {
            argv.extend(["taskset".into(), "-c".into(), cpu.into()]);
        }
        argv.push(self.bin_dir.join(bin).into());
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        if self.nice.is_some() {
            use std::os::unix::process::CommandExt;
            // A session of its own = an autogroup of its own, whose niceness `boost` sets.
            // SAFETY: setsid is async-signal-safe.
            unsafe {
                c.pre_exec(|| {
                    libc::setsid();
                    Ok(())
                });
            }
        }
        c
    }

    /// With autogroup scheduling (kernel.sched_autogroup_enabled=1) a process's nice only
    /// ranks it inside its session's autogroup; CPU is shared fairly between autogroups.
    /// So each child gets its own session (see `command`) and that autogroup gets the nice.
    fn boost(&self, pid: &str) {
        if let Some(n) = &self.nice {
            let _ = std::fs::write(format!("/proc/{pid}/autogroup"), n);
        }
    }

    fn next_addr(&mut self) -> String {
        self.port += 1;
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts a server and waits for its LISTENING line.
    fn start_server(&mut self, imp: &str) -> Result<(Proc, String), String> {
        let addr = self.next_addr();
        let mut cmd = self.command(&self.server_cpu, "echo-server");
        // hookup-async-std runs on async-std's global executor: one worker thread (the
        // tokio impls run on one thread too). Ignored by every other impl.
        cmd.arg(imp)
            .arg(&addr)
            .env("ECHO_SERVER_MAX_SECS", "600")
            .env("ASYNC_STD_THREAD_COUNT", "1");
        let p = Proc::spawn(cmd).map_err(|e| format!("spawn echo-server: {e}"))?;
        self.boost(&p.pid());
        match p.line(Instant::now() + Duration::from_secs(10)) {
            Some(l) if l.starts_with("LISTENING") => Ok((p, addr)),
            other => {
                p.stop();
                Err(format!("echo-server {imp} did not start: {other:?}"))
            }
        }
    }
}

#[derive(Default)]
struct Row {
    imp: String,
    msgs_per_sec: f64,
    /// Server process utime+stime per message.
    server_us_per_msg: f64,
    /// All busy time (incl. irq/softirq) of the server's core, per message.
    server_core_us_per_msg: f64,
    server_cpu_pct: f64,
    server_core_pct: f64,
    load_cpu_pct: f64,
    /// CPU charged to processes other than server and load during the window (% of a core).
    other_pct: f64,
    err: Option<String>,
    /// The load's RESULT line (deflate mode reads extra fields from it).
    result: String,
    /// Deflate mode: the server did not accept permessage-deflate (the load's detail).
    not_negotiated: Option<String>,
}

/// CPU counters sampled at one instant.
struct Snap {
    at: Instant,
    cpus: Vec<procfs::CpuTimes>,
    server: u64,
    load: u64,
}

impl Snap {
    fn take(server_pid: &str, load_pid: &str) -> Self {
        Self {
            at: Instant::now(),
            cpus: procfs::per_cpu_times(),
            server: procfs::cpu_ticks(server_pid).unwrap_or(0),
            load: procfs::cpu_ticks(load_pid).unwrap_or(0),
        }
    }
}

fn kv(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

fn run_case(env: &mut Env, case: &Case, imp: &str, warmup: f64, duration: f64) -> Row {
    let mut row = Row {
        imp: imp.to_string(),
        ..Row::default()
    };
    env.wait_quiet();
    let (server, addr) = match env.start_server(imp) {
        Ok(x) => x,
        Err(e) => {
            row.err = Some(e);
            return row;
        }
    };
    let spid = server.pid();
    let mut cmd = env.command(&env.load_cpu, "load");
    cmd.args(["--addr", &addr])
        .args(["--conns", &case.conns.to_string()])
        .args(["--size", &case.size.to_string()])
        .args(["--window", &case.window.to_string()])
        .args(["--duration", &duration.to_string()])
        .args(["--warmup", &warmup.to_string()])
        .args(["--proto", if imp == "tcp" { "tcp" } else { "ws" }]);
    if case.deflate {
        cmd.arg("--deflate");
    }
    let load = match Proc::spawn(cmd) {
        Ok(p) => p,
        Err(e) => {
            server.stop();
            row.err = Some(format!("spawn load: {e}"));
            return row;
        }
    };
    env.boost(&load.pid());
    let deadline = Instant::now() + Duration::from_secs_f64(90.0 + warmup + duration);
    let lpid = load.pid();
    let (mut s0, mut s1) = (None, None);
    let mut result = None;
    while let Some(line) = load.line(deadline) {
        if line == "MEASURE_START" {
            s0 = Some(Snap::take(&spid, &lpid));
        } else if line == "MEASURE_END" {
            s1 = Some(Snap::take(&spid, &lpid));
        } else if line.starts_with("RESULT") {
            result = Some(line);
            break;
        } else if line.starts_with("NOT_NEGOTIATED") {
            row.not_negotiated = Some(line);
        }
    }
    let server_alive = Path::new(&format!("/proc/{spid}")).exists();
    server.stop();
    load.stop();
    let Some(result) = result else {
        row.err = Some(match &row.not_negotiated {
            Some(l) => format!("did not negotiate permessage-deflate ({l}): not measured"),
            None => "load produced no RESULT (see stderr)".into(),
        });
        return row;
    };
    row.result = result.clone();
    row.msgs_per_sec = kv(&result, "msgs_per_sec").unwrap_or(0.0);
    let msgs = kv(&result, "msgs").unwrap_or(0.0);
    if let (Some(s0), Some(s1)) = (s0, s1) {
        let wall = (s1.at - s0.at).as_secs_f64();
        let tck = env.tck;
        let server_s = s1.server.saturating_sub(s0.server) as f64 / tck;
        let load_s = s1.load.saturating_sub(s0.load) as f64 / tck;
        let core = |i: Option<usize>| -> Option<procfs::CpuTimes> {
            let i = i?;
            Some(s1.cpus.get(i)?.delta(s0.cpus.get(i)?))
        };
        // /proc/stat's per-CPU categories are exclusive (a tick is user, system, softirq,
        // ...), whereas a process's stime may include softirq ticks taken while it ran; so
        // the server core is measured whole (others' use of it shows up as "noisy") and
        // the load by its process time.
        if let Some(c) = core(env.server_core()) {
            row.server_core_pct = c.busy() as f64 / c.total().max(1) as f64 * 100.0;
            if msgs > 0.0 {
                row.server_core_us_per_msg = c.busy() as f64 / tck * 1e6 / msgs;
            }
        }
        row.load_cpu_pct = load_s / wall * 100.0;
        if msgs > 0.0 {
            row.server_us_per_msg = server_s * 1e6 / msgs;
        }
        row.server_cpu_pct = server_s / wall * 100.0;
        let all_task: u64 = (0..s1.cpus.len())
            .filter_map(|i| core(Some(i)))
            .map(|c| c.task)
            .sum();
        let all_steal: u64 = (0..s1.cpus.len())
            .filter_map(|i| core(Some(i)))
            .map(|c| c.steal)
            .sum();
        let other = (all_task + all_steal) as f64 / tck - server_s - load_s;
        row.other_pct = (other / wall * 100.0).max(0.0);
    }
    let errors = kv(&result, "errors").unwrap_or(0.0);
    if errors > 0.0 || !server_alive {
        row.err = Some(format!(
            "{errors} connection errors, server alive: {server_alive}"
        ));
    } else if row.other_pct > NOISY_PCT {
        row.err = Some(format!(
            "noisy: other processes used {:.0}% of a core",
            row.other_pct
        ));
    }
    row
}

/// Not a hookup impl (`hookup`, `hookup-async-std`, `hookup-smol`) and not tcp.
fn is_peer(imp: &str) -> bool {
    imp != "tcp" && !imp.starts_with("hookup")
}

fn print_case(case_no: usize, case: &Case, rows: &[Row]) {
    println!(
        "\n### Case {case_no}: {} conns × {}, window {}\n",
        case.conns,
        fmt_size(case.size),
        case.window
    );
    let best_peer = rows
        .iter()
        .filter(|r| is_peer(&r.imp) && r.msgs_per_sec > 0.0)
        .map(|r| r.msgs_per_sec)
        .fold(0.0, f64::max);
    let tcp = rows
        .iter()
        .find(|r| r.imp == "tcp" && r.msgs_per_sec > 0.0)
        .map(|r| r.msgs_per_sec)
        .unwrap_or(0.0);
    let hookup = rows
        .iter()
        .find(|r| r.imp == "hookup" && r.msgs_per_sec > 0.0)
        .map(|r| r.msgs_per_sec)
        .unwrap_or(0.0);
    let ratio = |v: f64, base: f64| {
        if base > 0.0 {
            format!("{:.2}", v / base)
        } else {
            "–".into()
        }
    };
    println!(
        "| impl | msgs/s | server CPU µs/msg | server core µs/msg | server CPU % | \
         server core busy % | load CPU % | ratio to best peer | ratio to tcp | \
         ratio to hookup (tokio) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let note = r
            .err
            .as_deref()
            .map(|e| format!(" ⚠ {e}"))
            .unwrap_or_default();
        println!(
            "| {}{note} | {:.0} | {:.3} | {:.3} | {:.0} | {:.0} | {:.0} | {} | {} | {} |",
            r.imp,
            r.msgs_per_sec,
            r.server_us_per_msg,
            r.server_core_us_per_msg,
            r.server_cpu_pct,
            r.server_core_pct,
            r.load_cpu_pct,
            ratio(r.msgs_per_sec, best_peer),
            ratio(r.msgs_per_sec, tcp),
            ratio(r.msgs_per_sec, hookup),
        );
    }
}

/// The best peer's msgs/s and CPU per message in one repetition's rows.
fn best_peer(rows: &[Row]) -> Option<&Row> {
    rows.iter()
        .filter(|r| is_peer(&r.imp) && r.msgs_per_sec > 0.0 && r.err.is_none())
        .max_by(|a, b| a.msgs_per_sec.total_cmp(&b.msgs_per_sec))
}

/// One case over all repetitions: per impl the median msgs/s and server
/// CPU per message, and the median (min–max) of the per-repetition ratios
/// to the best peer of that repetition and to tcp.
fn print_summary(case_no: usize, case: &Case, imps: &[String], reps: &[Vec<Row>]) {
    println!(
        "\n### Case {case_no} summary: {} conns × {}, window {}, {} repetitions\n",
        case.conns,
        fmt_size(case.size),
        case.window,
        reps.len()
    );
    println!(
        "| impl | msgs/s median (min–max) | server CPU µs/msg median | ratio to best peer \
         median (min–max) | CPU/msg ratio to best peer median (min–max) | ratio to tcp median \
         (min–max) | noisy or failed runs |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let range = |v: &[f64]| {
        if v.is_empty() {
            return "–".to_string();
        }
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{:.2} ({lo:.2}–{hi:.2})", median(v.to_vec()))
    };
    for imp in imps {
        let (mut mps, mut cpu, mut vs_peer, mut cpu_vs_peer, mut vs_tcp) =
            (vec![], vec![], vec![], vec![], vec![]);
        let mut flagged = 0;
        for rows in reps {
            let Some(r) = rows.iter().find(|r| r.imp == *imp) else {
                continue;
            };
            if r.err.is_some() {
                flagged += 1;
            }
            if r.msgs_per_sec <= 0.0 {
                continue;
            }
            mps.push(r.msgs_per_sec);
            cpu.push(r.server_us_per_msg);
            if let Some(b) = best_peer(rows) {
                vs_peer.push(r.msgs_per_sec / b.msgs_per_sec);
                if b.server_us_per_msg > 0.0 {
                    cpu_vs_peer.push(r.server_us_per_msg / b.server_us_per_msg);
                }
            }
            if let Some(t) = rows.iter().find(|r| r.imp == "tcp" && r.msgs_per_sec > 0.0) {
                vs_tcp.push(r.msgs_per_sec / t.msgs_per_sec);
            }
        }
        let lo = mps.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = mps.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        println!(
            "| {imp} | {} | {:.3} | {} | {} | {} | {flagged} of {} |",
            if mps.is_empty() {
                "–".to_string()
            } else {
                format!("{:.0} ({lo:.0}–{hi:.0})", median(mps.clone()))
            },
            median(cpu),
            range(&vs_peer),
            range(&cpu_vs_peer),
            range(&vs_tcp),
            reps.len()
        );
    }
}

fn run_idle(env: &mut Env, imps: &[String], n: usize) {
    println!("\n### Idle memory: {n} idle connections (handshake done, then nothing)\n");
    println!("| impl | VmRSS before (KiB) | VmRSS with {n} idle (KiB) | bytes per idle conn |");
    println!("|---|---:|---:|---:|");
    for imp in imps {
        env.wait_quiet();
        let (server, addr) = match env.start_server(imp) {
            Ok(x) => x,
            Err(e) => {
                println!("| {imp} ⚠ {e} | | | |");
                continue;
            }
        };
        let spid = server.pid();
        std::thread::sleep(Duration::from_millis(200));
        let before = procfs::status_num(&spid, "VmRSS").unwrap_or(0);
        let mut cmd = env.command(&env.load_cpu, "load");
        cmd.args(["--addr", &addr])
            .args(["--conns", &n.to_string()])
            .args(["--idle", "--hold", "60"])
            .args(["--proto", if imp == "tcp" { "tcp" } else { "ws" }]);
        let load = match Proc::spawn(cmd) {
            Ok(p) => p,
            Err(e) => {
                server.stop();
                println!("| {imp} ⚠ spawn load: {e} | | | |");
                continue;
            }
        };
        env.boost(&load.pid());
        let ready = load.line(Instant::now() + Duration::from_secs(150));
        let row = match ready {
            Some(l) if l.starts_with("IDLE_READY") => {
                // Let the server finish whatever the last handshakes left to do.
                std::thread::sleep(Duration::from_secs(1));
                let after = procfs::status_num(&spid, "VmRSS").unwrap_or(0);
                let per = (after as f64 - before as f64) * 1024.0 / n as f64;
                format!("| {imp} | {before} | {after} | {per:.0} |")
            }
            other => format!("| {imp} ⚠ load not ready: {other:?} | {before} | | |"),
        };
        println!("{row}");
        server.stop();
        load.stop();
    }
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    if !matches!(
        mode.as_str(),
        "all" | "throughput" | "idle" | "reliable" | "deflate"
    ) {
        eprintln!("usage: bench-run [all|throughput|idle|reliable|deflate]");
        std::process::exit(2);
    }
    let bin_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let taskset = Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        && std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            >= 2;
    let mut env = Env {
        bin_dir,
        taskset,
        server_cpu: env_or("BENCH_SERVER_CPU", "0".to_string()),
        load_cpu: env_or("BENCH_LOAD_CPU", "1".to_string()),
        tck: procfs::clk_tck() as f64,
        port: env_or("BENCH_PORT_BASE", 19100u16),
        nice: None,
    };
    let is_root = procfs::status_num("self", "Uid").is_some_and(|uid| uid == 0);
    let nice = std::env::var("BENCH_NICE")
        .unwrap_or_else(|_| if is_root { "-20".into() } else { String::new() });
    if !nice.is_empty() {
        env.nice = Some(nice);
    }
    let duration: f64 = env_or("BENCH_DURATION", 3.0);
    let warmup: f64 = env_or("BENCH_WARMUP", 1.0);
    let idle_conns: usize = env_or("BENCH_IDLE_CONNS", 5000);

    let listed = Command::new(env.bin_dir.join("echo-server"))
        .arg("--list")
        .output();
    let all: Vec<String> = match listed {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
        Err(e) => {
            eprintln!("cannot run echo-server --list: {e}");
            std::process::exit(1);
        }
    };
    let imps: Vec<String> = match std::env::var("BENCH_IMPLS") {
        Ok(v) if !v.is_empty() => v.split(',').map(|s| s.trim().to_string()).collect(),
        _ => all,
    };
    let case_nos: Vec<usize> = match std::env::var("BENCH_CASES") {
        Ok(v) if !v.is_empty() => v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        _ => (1..=CASES.len()).collect(),
    };

    if mode == "reliable" {
        println!("## hookup reliable-mode benchmark\n");
        println!(
            "- pinning: {}",
            if env.taskset {
                format!(
                    "server on core {}, client on core {} (taskset)",
                    env.server_cpu, env.load_cpu
                )
            } else {
                "none (taskset missing or < 2 cores)".to_string()
            }
        );
        if let Some(n) = &env.nice {
            println!("- server and client run at niceness {n}");
        }
        reliable::run(&mut env);
        return;
    }
    if mode == "deflate" {
        deflate::run(&mut env, warmup, duration);
        return;
    }
    println!("## hookup echo benchmark\n");
    println!(
        "- pinning: {}",
        if env.taskset {
            format!(
                "server on core {}, load on core {} (taskset)",
                env.server_cpu, env.load_cpu
            )
        } else {
            "none (taskset missing or < 2 cores)".to_string()
        }
    );
    println!("- per case and impl: {warmup} s warmup + {duration} s measured");
    if let Some(n) = &env.nice {
        println!("- server and load run at niceness {n}");
    }
    println!("- impls: {}", imps.join(", "));
    println!(
        "- server CPU = utime+stime of the server process over the measured window; server \
         core = all busy time of the core the server is pinned to, incl. irq/softirq (on \
         loopback the TCP receive path of each packet runs on the sending core); load CPU = \
         utime+stime of the load process; ratios are msgs/s over the best peer (non-hookup, \
         non-tcp), over tcp and over hookup on tokio"
    );
    println!(
        "- the server is the bottleneck when its core is ~100% busy; tcp well above the \
         WebSocket servers shows the load generator has headroom"
    );

    if mode != "idle" {
        let reps: usize = env_or("BENCH_REPS", 3usize).max(1);
        println!(
            "- {reps} repetitions per case; the impls' order rotates from one repetition to \
             the next (interleaved); each summary gives the median over repetitions and its \
             range (min–max); ratios are taken within a repetition, then summarised"
        );
        for &no in &case_nos {
            let Some(case) = CASES.get(no.wrapping_sub(1)) else {
                eprintln!("no case {no}");
                continue;
            };
            let mut all: Vec<Vec<Row>> = Vec::new();
            for rep in 0..reps {
                let mut rows: Vec<Row> = (0..imps.len())
                    .map(|k| {
                        let imp = &imps[(k + rep) % imps.len()];
                        eprintln!(
                            "[bench-run] case {no} ({} × {} w{}) rep {}/{reps} {imp} ...",
                            case.conns,
                            fmt_size(case.size),
                            case.window,
                            rep + 1
                        );
                        run_case(&mut env, case, imp, warmup, duration)
                    })
                    .collect();
                // Table order is the impls' order, whatever order they ran in.
                rows.sort_by_key(|r| imps.iter().position(|i| *i == r.imp));
                if reps > 1 {
                    println!("\n#### repetition {} of {reps}", rep + 1);
                }
                print_case(no, case, &rows);
                all.push(rows);
            }
            if reps > 1 {
                print_summary(no, case, &imps, &all);
            }
        }
    }
    if mode != "throughput" {
        if let Some(lim) = procfs::nofile_soft_limit()
            && lim < idle_conns as u64 + 100
        {
            eprintln!(
                "[bench-run] warning: open-files limit {lim} < {} idle connections + 100: \
                 raise it (run.sh does `ulimit -n`)",
                idle_conns
            );
        }
        run_idle(&mut env, &imps, idle_conns);
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }
}
