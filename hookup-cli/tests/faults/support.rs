//! Child processes of the `hookup` binary, scratch directories, the sink
//! file and a small seeded random generator.

use std::fs::File;
use std::io::Read as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_hookup");

/// A port nobody listens on right now (bind to port 0, then let it go).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Keeps a port taken while its server is down (between a kill and a
/// restart), so that no other test's server gets it meanwhile. Connections
/// are accepted and closed at once: to a client, the server is still down.
pub struct PortHolder {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PortHolder {
    pub fn hold(port: u16) -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind(local(port)).expect("hold the port");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                while let Ok((conn, _)) = listener.accept() {
                    drop(conn);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for PortHolder {
    /// Frees the port (the listener closes when the thread ends).
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A scratch directory, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "hookup-faults-{}-{name}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Self(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `hookup` child process; killed (SIGKILL) and reaped when dropped, so
/// nothing outlives a test, also when it panics. Its stderr goes to a file.
pub struct Proc {
    pub name: String,
    child: Child,
    stderr: PathBuf,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `hookup ARGS` with stdin piped (or closed), stdout discarded.
    pub fn spawn(name: &str, args: &[String], stderr: PathBuf, piped_stdin: bool) -> Self {
        let err = File::create(&stderr).expect("stderr file");
        let child = Command::new(BIN)
            .args(args)
            .env(
                "RUST_LOG",
                // Info from the reliable layer: the tests watch for its
                // notes (a session expired).
                std::env::var("HOOKUP_FAULTS_LOG")
                    .unwrap_or_else(|_| "warn,hookup_driver::reliable=info".into()),
            )
            .stdin(if piped_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Self {
            name: name.to_owned(),
            child,
            stderr,
            status: None,
        }
    }

    /// The process id.
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn take_stdin(&mut self) -> ChildStdin {
        self.child.stdin.take().expect("stdin piped")
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// The exit status, if it has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Waits for the exit, at most `limit` (then panics, showing stderr).
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.try_status() {
                return s;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "{} did not exit within {limit:?}; stderr:\n{}",
                    self.name,
                    self.stderr_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The last lines of stderr, for failure messages.
    pub fn stderr_tail(&self) -> String {
        let text = self.stderr_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `hookup serve --reliable --sink SINK` on `port`, once it accepts
/// connections.
pub fn serve(scratch: &Scratch, port: u16, sink: &Path, tag: &str) -> Proc {
    serve_with(scratch, port, sink, tag, &[])
}

/// [`serve`] with more arguments.
pub fn serve_with(scratch: &Scratch, port: u16, sink: &Path, tag: &str, extra: &[&str]) -> Proc {
    let mut args: Vec<String> = [
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--reliable",
        "--sink",
        &sink.display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut p = Proc::spawn(
        &format!("server {tag}"),
        &args,
        scratch.path(&format!("server-{tag}.err")),
        false,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if TcpStream::connect_timeout(&local(port), Duration::from_secs(1)).is_ok() {
            return p;
        }
        if let Some(s) = p.try_status() {
            panic!("{} exited early ({s}):\n{}", p.name, p.stderr_tail());
        }
        assert!(Instant::now() < deadline, "{} never listened", p.name);
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `hookup connect ws://127.0.0.1:PORT/echo --reliable EXTRA…`.
pub fn connect(scratch: &Scratch, port: u16, extra: &[&str], tag: &str, piped_stdin: bool) -> Proc {
    let mut args: Vec<String> = vec![
        "connect".into(),
        format!("ws://127.0.0.1:{port}/echo"),
        "--reliable".into(),
        // Outcomes are checked through the sink; no "no ack" noise.
        "--ack-timeout".into(),
        "60s".into(),
    ];
    if !extra.contains(&"--wait") {
        // Below the tests' own bounds, so a stuck client reports itself.
        args.extend(["--wait".into(), "40s".into()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    Proc::spawn(
        &format!("client {tag}"),
        &args,
        scratch.path(&format!("client-{tag}.err")),
        piped_stdin,
    )
}

/// The lines `msg FIRST` … `msg LAST`, newline-terminated.
pub fn numbered(first: u64, last: u64) -> String {
    (first..=last).map(|i| format!("msg {i}\n")).collect()
}

/// The sink's complete lines.
pub fn sink_lines(sink: &Path) -> Vec<String> {
    let mut s = String::new();
    if let Ok(mut f) = File::open(sink) {
        f.read_to_string(&mut s).expect("read sink");
    }
    // A line being appended right now is not complete yet.
    let complete = s.rfind('\n').map_or(0, |i| i + 1);
    s[..complete].lines().map(str::to_owned).collect()
}

pub fn sink_count(sink: &Path) -> usize {
    sink_lines(sink).len()
}

/// The numbers of the sink's `msg N` lines (panics on anything else).
pub fn sink_numbers(sink: &Path) -> Vec<u64> {
    sink_lines(sink)
        .iter()
        .map(|l| {
            l.strip_prefix("msg ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected sink line {l:?}"))
        })
        .collect()
}

/// Maximal runs of consecutive numbers (each `+1` from the one before),
/// as `(first, last)`.
pub fn runs(nums: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &n in nums {
        match out.last_mut() {
            Some((_, last)) if n == *last + 1 => *last = n,
            _ => out.push((n, n)),
        }
    }
    out
}

/// What a sink written across one crash looks like.
#[derive(Debug)]
pub struct Boundary {
    /// The first part is `1..=a`.
    pub a: u64,
    /// The second part is `b..=last`.
    pub b: u64,
    pub last: u64,
    /// Lines delivered twice (`a + 1 - b`).
    pub duplicates: u64,
}

/// Checks the sink of a stream interrupted once at line `split`: the lines
/// before are `msg 1..=a` in order, those after are `msg b..=last` in order
/// with `1 <= b <= a + 1` (nothing lost; repeats only at the boundary).
pub fn check_boundary(nums: &[u64], split: usize) -> Boundary {
    let (first, second) = nums.split_at(split);
    let r1 = runs(first);
    let r2 = runs(second);
    let a = match r1.as_slice() {
        [] => 0,
        [(1, a)] => *a,
        _ => panic!("first part is not msg 1..=a in order: runs {r1:?}"),
    };
    let (b, last) = match r2.as_slice() {
        [] => (a + 1, a),
        [(b, last)] => (*b, *last),
        _ => panic!("second part is not one run in order: runs {r2:?}"),
    };
    assert!(
        b >= 1 && b <= a + 1,
        "second part starts at {b}, after a hole (first part ended at {a})"
    );
    assert!(last >= a, "second part ends at {last}, before {a}");
    Boundary {
        a,
        b,
        last,
        duplicates: a + 1 - b,
    }
}

/// Polls `cond` every 5 ms until it holds; panics with `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until the sink stops growing: `quiet` without a new line (at most
/// `limit` overall). Returns the final count.
pub fn wait_sink_quiet(sink: &Path, quiet: Duration, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    let mut count = sink_count(sink);
    let mut since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(10));
        let c = sink_count(sink);
        if c != count {
            count = c;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return count;
        }
        assert!(Instant::now() < deadline, "sink never stopped growing");
    }
}

/// SplitMix64: small, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Log-uniform in `[lo, hi]`: as many cuts in the handshake's first
    /// hundreds of bytes as deep into a stream.
    pub fn log_uniform(&mut self, lo: usize, hi: usize) -> usize {
        let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
        ((l + (h - l) * self.unit()).exp() as usize).clamp(lo, hi)
    }
}

/// The test seed: `HOOKUP_FAULTS_SEED` (decimal or `0x` hex) to replay a
/// run, else a fresh one from the OS (through the standard library's
/// randomly keyed hasher), so every run tries another cut plan. Printed
/// either way: a failure names the seed that replays it.
pub fn seed(test: &str) -> u64 {
    let given = std::env::var("HOOKUP_FAULTS_SEED").ok().map(|s| {
        let parsed = match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => s.parse(),
        };
        parsed.unwrap_or_else(|_| panic!("HOOKUP_FAULTS_SEED={s:?} is not a number"))
    });
    let seed = given.unwrap_or_else(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write(test.as_bytes());
        h.finish()
    });
    eprintln!("{test}: seed {seed:#x} (replay: HOOKUP_FAULTS_SEED={seed:#x})");
    seed
}
