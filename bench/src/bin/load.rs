//! `load` — the load generator.
//!
//! ```text
//! load --addr A --conns N --size BYTES --window W --duration SECS [--warmup SECS]
//!      [--proto ws|tcp] [--threads T]
//! load --addr A --conns N --idle [--hold SECS] [--proto ws|tcp]
//! ```
//!
//! Throughput mode: opens N connections, does a minimal client handshake by hand (static
//! request, checks for `101`), pre-encodes ONE masked binary frame of BYTES payload (fixed
//! mask key) and keeps W messages in flight per connection: W frames are written up front,
//! and each echo frame read (only the server frame header is parsed, the payload skipped)
//! releases one more frame. Echoes that arrive in one read are answered with one
//! `write_all` of that many frames. Reading and writing run in two tasks per connection so
//! large windows of large frames cannot deadlock on full socket buffers. With
//! `--proto tcp` there is no handshake and an echo is counted per BYTES echoed.
//!
//! Prints (stdout, one per line): `READY conns=N`, `MEASURE_START`, `MEASURE_END`,
//! `RESULT msgs=.. secs=.. msgs_per_sec=.. load_cpu_pct=.. errors=..`; the driver samples the
//! server's /proc at MEASURE_START / MEASURE_END. The process exits by itself.
//!
//! Idle mode: opens N connections, completes the handshake, prints `IDLE_READY conns=N`,
//! then does nothing until killed or `--hold` seconds (default 120) pass.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};

use hookup_bench::{BoxError, procfs};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\n\
Host: 127.0.0.1\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";
const READ_BUF: usize = 256 * 1024;
const CONNECT_CONCURRENCY: usize = 64;

#[derive(Clone, Copy, PartialEq)]
enum Proto {
    Ws,
    Tcp,
}

struct Args {
    addr: SocketAddr,
    conns: usize,
    size: usize,
    window: usize,
    duration: f64,
    warmup: f64,
    proto: Proto,
    threads: usize,
    idle: bool,
    hold: f64,
}

fn usage() -> ! {
    eprintln!(
        "usage: load --addr A --conns N --size BYTES --window W --duration SECS [--warmup SECS] \
         [--proto ws|tcp] [--threads T]\n       load --addr A --conns N --idle [--hold SECS] [--proto ws|tcp]"
    );
    std::process::exit(2)
}

fn num<T: std::str::FromStr>(key: &str, v: &str) -> T {
    v.parse().unwrap_or_else(|_| {
        eprintln!("bad value for {key}: {v:?}");
        usage()
    })
}

fn parse_args() -> Args {
    let mut a = Args {
        addr: "127.0.0.1:9001".parse().unwrap(),
        conns: 1,
        size: 20,
        window: 1,
        duration: 3.0,
        warmup: 1.0,
        proto: Proto::Ws,
        threads: 1,
        idle: false,
        hold: 120.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--idle" {
            a.idle = true;
            continue;
        }
        let v = it.next().unwrap_or_else(|| usage());
        match k.as_str() {
            "--addr" => a.addr = num(&k, &v),
            "--conns" => a.conns = num(&k, &v),
            "--size" => a.size = num(&k, &v),
            "--window" => a.window = num(&k, &v),
            "--duration" => a.duration = num(&k, &v),
            "--warmup" => a.warmup = num(&k, &v),
            "--hold" => a.hold = num(&k, &v),
            "--threads" => a.threads = num(&k, &v),
            "--proto" => {
                a.proto = match v.as_str() {
                    "ws" => Proto::Ws,
                    "tcp" => Proto::Tcp,
                    _ => usage(),
                }
            }
            _ => usage(),
        }
    }
    if a.conns == 0 || a.window == 0 || a.size == 0 || a.threads == 0 {
        eprintln!("--conns, --window, --size and --threads must be > 0");
        usage();
    }
    a
}

/// One masked binary frame (FIN set) carrying `size` payload bytes.
fn encode_frame(size: usize, proto: Proto) -> Vec<u8> {
    let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    if proto == Proto::Tcp {
        return payload;
    }
    let mut f = Vec::with_capacity(size + 14);
    f.push(0x82);
    if size < 126 {
        f.push(0x80 | size as u8);
    } else if size <= u16::MAX as usize {
        f.push(0x80 | 126);
        f.extend_from_slice(&(size as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(size as u64).to_be_bytes());
    }
    f.extend_from_slice(&MASK);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    f
}

/// Counts complete echoes in the server's byte stream.
enum Parser {
    /// WebSocket frames: header parsed, payload skipped. A message completes on a data
    /// frame (opcode 0/1/2) with FIN; control frames are skipped without counting.
    Ws { hdr: [u8; 14], have: usize, remaining: u64, counts: bool, in_payload: bool },
    /// Raw TCP: one echo per `frame_len` bytes.
    Tcp { frame_len: u64, acc: u64 },
}

impl Parser {
    fn feed(&mut self, mut data: &[u8]) -> usize {
        match self {
            Self::Tcp { frame_len, acc } => {
                *acc += data.len() as u64;
                let done = *acc / *frame_len;
                *acc %= *frame_len;
                done as usize
            }
            Self::Ws { hdr, have, remaining, counts, in_payload } => {
                let mut done = 0;
                while !data.is_empty() {
                    if *in_payload {
                        let take = (*remaining).min(data.len() as u64) as usize;
                        *remaining -= take as u64;
                        data = &data[take..];
                        if *remaining == 0 {
                            *in_payload = false;
                            done += *counts as usize;
                        }
                        continue;
                    }
                    // Header: first the 2 fixed bytes, then extended length and mask key.
                    if *have < 2 {
                        let take = (2 - *have).min(data.len());
                        hdr[*have..*have + take].copy_from_slice(&data[..take]);
                        *have += take;
                        data = &data[take..];
                        if *have < 2 {
                            continue;
                        }
                    }
                    let ext = match hdr[1] & 0x7f {
                        126 => 2,
                        127 => 8,
                        _ => 0,
                    };
                    let need = 2 + ext + if hdr[1] & 0x80 != 0 { 4 } else { 0 };
                    if *have < need {
                        let take = (need - *have).min(data.len());
                        hdr[*have..*have + take].copy_from_slice(&data[..take]);
                        *have += take;
                        data = &data[take..];
                        if *have < need {
                            continue;
                        }
                    }
                    let len = match hdr[1] & 0x7f {
                        126 => u16::from_be_bytes([hdr[2], hdr[3]]) as u64,
                        127 => u64::from_be_bytes(hdr[2..10].try_into().unwrap()),
                        n => n as u64,
                    };
                    let opcode = hdr[0] & 0x0f;
                    *counts = hdr[0] & 0x80 != 0 && opcode < 8;
                    *have = 0;
                    if len == 0 {
                        done += *counts as usize;
                    } else {
                        *remaining = len;
                        *in_payload = true;
                    }
                }
                done
            }
        }
    }
}

/// Connects and (for ws) performs the handshake. Returns the stream and any bytes that
/// followed the 101 response.
async fn connect(addr: SocketAddr, proto: Proto) -> Result<(TcpStream, Vec<u8>), BoxError> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    if proto == Proto::Tcp {
        return Ok((s, Vec::new()));
    }
    s.write_all(REQUEST).await?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err("server closed during handshake".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let status = buf.split(|&b| b == b'\n').next().unwrap_or(&[]);
            if !(status.starts_with(b"HTTP/1.1 101") || status.starts_with(b"HTTP/1.0 101")) {
                return Err(format!(
                    "handshake rejected: {}",
                    String::from_utf8_lossy(status).trim_end()
                )
                .into());
            }
            return Ok((s, buf.split_off(pos + 4)));
        }
        if buf.len() > 16 * 1024 {
            return Err("handshake response too large".into());
        }
    }
}

async fn connect_all(a: &Args) -> Result<Vec<(TcpStream, Vec<u8>)>, BoxError> {
    let sem = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut handles = Vec::with_capacity(a.conns);
    for _ in 0..a.conns {
        let sem = sem.clone();
        let (addr, proto) = (a.addr, a.proto);
        handles.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            connect(addr, proto).await
        }));
    }
    let mut out = Vec::with_capacity(a.conns);
    for h in handles {
        out.push(h.await??);
    }
    Ok(out)
}

struct Shared {
    completed: AtomicU64,
    errors: AtomicU64,
}

async fn run_conn(
    stream: TcpStream,
    leftover: Vec<u8>,
    mut parser: Parser,
    batch: Arc<Vec<u8>>,
    frame_len: usize,
    window: usize,
    shared: Arc<Shared>,
) {
    let (mut rd, mut wr) = stream.into_split();
    let pending = Arc::new(AtomicUsize::new(window));
    let notify = Arc::new(Notify::new());
    let (p2, n2, s2) = (pending.clone(), notify.clone(), shared.clone());
    let writer = tokio::spawn(async move {
        loop {
            let k = p2.swap(0, Ordering::AcqRel);
            if k == 0 {
                n2.notified().await;
                continue;
            }
            // k <= window always: at most `window` messages are outstanding.
            if let Err(e) = wr.write_all(&batch[..k * frame_len]).await {
                if s2.errors.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("load: write error: {e}");
                }
                return;
            }
        }
    });
    let handle = |n: usize| {
        if n > 0 {
            shared.completed.fetch_add(n as u64, Ordering::Relaxed);
            pending.fetch_add(n, Ordering::AcqRel);
            notify.notify_one();
        }
    };
    handle(parser.feed(&leftover));
    let mut buf = vec![0u8; READ_BUF];
    loop {
        match rd.read(&mut buf).await {
            Ok(0) => {
                if shared.errors.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("load: server closed a connection");
                }
                break;
            }
            Ok(n) => handle(parser.feed(&buf[..n])),
            Err(e) => {
                if shared.errors.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("load: read error: {e}");
                }
                break;
            }
        }
    }
    writer.abort();
}

fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn throughput(a: Args) -> Result<(), BoxError> {
    let conns = tokio::time::timeout(Duration::from_secs(60), connect_all(&a))
        .await
        .map_err(|_| "connection setup timed out (60 s)")??;
    say(&format!("READY conns={}", conns.len()));

    let frame = encode_frame(a.size, a.proto);
    let frame_len = frame.len();
    let batch = Arc::new(frame.repeat(a.window));
    let shared = Arc::new(Shared { completed: AtomicU64::new(0), errors: AtomicU64::new(0) });
    for (stream, leftover) in conns {
        let parser = match a.proto {
            Proto::Ws => Parser::Ws {
                hdr: [0; 14],
                have: 0,
                remaining: 0,
                counts: false,
                in_payload: false,
            },
            Proto::Tcp => Parser::Tcp { frame_len: frame_len as u64, acc: 0 },
        };
        tokio::spawn(run_conn(
            stream,
            leftover,
            parser,
            batch.clone(),
            frame_len,
            a.window,
            shared.clone(),
        ));
    }

    tokio::time::sleep(Duration::from_secs_f64(a.warmup)).await;
    let tck = procfs::clk_tck() as f64;
    let cpu0 = procfs::cpu_ticks("self").unwrap_or(0);
    let c0 = shared.completed.load(Ordering::Relaxed);
    let t0 = Instant::now();
    say("MEASURE_START");
    tokio::time::sleep(Duration::from_secs_f64(a.duration)).await;
    let c1 = shared.completed.load(Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    let cpu1 = procfs::cpu_ticks("self").unwrap_or(0);
    say("MEASURE_END");
    let msgs = c1 - c0;
    let load_cpu_pct = (cpu1 - cpu0) as f64 / tck / secs * 100.0;
    let errors = shared.errors.load(Ordering::Relaxed);
    say(&format!(
        "RESULT msgs={msgs} secs={secs:.4} msgs_per_sec={:.1} load_cpu_pct={load_cpu_pct:.1} errors={errors}",
        msgs as f64 / secs
    ));
    Ok(())
}

async fn idle(a: Args) -> Result<(), BoxError> {
    let conns = tokio::time::timeout(Duration::from_secs(120), connect_all(&a))
        .await
        .map_err(|_| "connection setup timed out (120 s)")??;
    say(&format!("IDLE_READY conns={}", conns.len()));
    tokio::time::sleep(Duration::from_secs_f64(a.hold)).await;
    drop(conns);
    Ok(())
}

fn main() {
    let a = parse_args();
    // Hard stop: whatever happens, this process ends by itself.
    let limit = if a.idle { 120.0 + a.hold } else { 60.0 + a.warmup + a.duration } + 30.0;
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs_f64(limit));
        eprintln!("load: hard time limit ({limit:.0} s) reached, exiting");
        std::process::exit(3);
    });
    let rt = if a.threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(a.threads)
            .enable_all()
            .build()
    }
    .expect("runtime");
    let res = rt.block_on(async move { if a.idle { idle(a).await } else { throughput(a).await } });
    // Exit without waiting for connection tasks to wind down.
    match res {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("load: {e}");
            std::process::exit(1);
        }
    }
}
