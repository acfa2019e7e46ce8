//! `load` — the load generator.
//!
//! ```text
//! load --addr A --conns N --size BYTES --window W --duration SECS [--warmup SECS]
//!      [--proto ws|tcp] [--threads T] [--zero-copy-min BYTES] [--sendfile]
//! load --addr A --conns N --idle [--hold SECS] [--proto ws|tcp]
//! ```
//!
//! Throughput mode: opens N connections, does a minimal client handshake by hand (static
//! request, checks for `101`), pre-encodes ONE masked binary frame of BYTES payload (fixed
//! mask key) and keeps W messages in flight per connection: W frames are written up front,
//! and each echo frame read (only the server frame header is parsed, the payload skipped)
//! releases one more frame. Echoes that arrive in one read are answered with one write of
//! that many frames. One task per connection does both directions without ever blocking
//! on a write (it waits for read and write readiness together while output is pending),
//! so large windows of large frames cannot deadlock on full socket buffers. With
//! `--proto tcp` there is no handshake and an echo is counted per BYTES echoed.
//!
//! To stay cheaper than the servers when messages are large (payload >= `--zero-copy-min`,
//! default 64 KiB), the generator discards echoed payloads with recv(MSG_TRUNC) (no
//! kernel->user copy), reading only the frame headers. `--sendfile` also sends them with
//! sendfile(2) from a memfd holding the encoded frames (no user->kernel copy); that is off
//! by default because it made every server ~10-20% slower at 1 MiB (measured with
//! fastwebsockets: 2.0k vs 2.55k msgs/s), i.e. it changes what the server sees. The bytes
//! on the wire are the same either way.
//!
//! Prints (stdout, one per line): `READY conns=N`, `MEASURE_START`, `MEASURE_END`,
//! `RESULT msgs=.. secs=.. msgs_per_sec=.. load_cpu_pct=.. errors=..`; the driver samples the
//! server's /proc at MEASURE_START / MEASURE_END. The process exits by itself.
//!
//! Idle mode: opens N connections, completes the handshake, prints `IDLE_READY conns=N`,
//! then does nothing until killed or `--hold` seconds (default 120) pass.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::os::fd::{AsRawFd, RawFd};

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

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
    /// Payload size from which echoed payloads are discarded with recv(MSG_TRUNC).
    zero_copy_min: u64,
    /// For such payloads, also send with sendfile(2) from a memfd (off by default: it made
    /// the servers measurably slower, see the module docs).
    sendfile: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: load --addr A --conns N --size BYTES --window W --duration SECS [--warmup SECS] \
         [--proto ws|tcp] [--threads T] [--zero-copy-min BYTES] [--sendfile]\n       load --addr A --conns N --idle [--hold SECS] [--proto ws|tcp]"
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
        zero_copy_min: 64 * 1024,
        sendfile: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--idle" {
            a.idle = true;
            continue;
        }
        if k == "--sendfile" {
            a.sendfile = true;
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
            "--zero-copy-min" => a.zero_copy_min = num(&k, &v),
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
    /// WebSocket frames: only the header is parsed, the payload skipped. A message
    /// completes on a data frame (opcode 0/1/2) with FIN; control frames are not counted.
    Ws { hdr: [u8; 14], have: usize, remaining: u64, counts: bool, in_payload: bool },
    /// Raw TCP: one echo per `frame_len` bytes.
    Tcp { frame_len: u64, acc: u64 },
}

impl Parser {
    fn new(proto: Proto, frame_len: usize) -> Self {
        match proto {
            Proto::Ws => Self::Ws { hdr: [0; 14], have: 0, remaining: 0, counts: false, in_payload: false },
            Proto::Tcp => Self::Tcp { frame_len: frame_len as u64, acc: 0 },
        }
    }

    /// Payload bytes that may be discarded unread right now (no header inside them).
    fn skippable(&self) -> u64 {
        match self {
            Self::Tcp { .. } => u64::MAX,
            Self::Ws { remaining, in_payload, .. } => if *in_payload { *remaining } else { 0 },
        }
    }

    /// Accounts for `n` payload bytes discarded unread (n <= skippable()).
    fn skipped(&mut self, n: u64) -> usize {
        match self {
            Self::Tcp { frame_len, acc } => {
                *acc += n;
                let done = *acc / *frame_len;
                *acc %= *frame_len;
                done as usize
            }
            Self::Ws { remaining, in_payload, counts, .. } => {
                *remaining -= n;
                if *remaining == 0 {
                    *in_payload = false;
                    *counts as usize
                } else {
                    0
                }
            }
        }
    }

    /// Consumes received bytes; returns the number of echoes completed.
    fn feed(&mut self, mut data: &[u8]) -> usize {
        let Self::Ws { hdr, have, remaining, counts, in_payload } = self else {
            return self.skipped(data.len() as u64);
        };
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

/// Where the writer's bytes come from: `batch` = the frame repeated `window + 1` times, either
/// in memory (`send`) or in a memfd (`sendfile`: the kernel references the pages instead of
/// copying them, which keeps the generator cheap for large frames).
struct Source {
    batch: Vec<u8>,
    memfd: Option<std::os::fd::OwnedFd>,
}

impl Source {
    fn new(batch: Vec<u8>, use_sendfile: bool) -> std::io::Result<Self> {
        use std::io::Write;
        use std::os::fd::FromRawFd;
        let memfd = if use_sendfile {
            // SAFETY: plain syscall; the fd is owned below.
            let fd = unsafe { libc::memfd_create(c"hookup-bench-frames".as_ptr(), libc::MFD_CLOEXEC) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
            let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
            file.write_all(&batch)?;
            Some(file.into())
        } else {
            None
        };
        Ok(Self { batch, memfd })
    }

    /// Sends bytes [off, end) of the batch on `sock` (non-blocking); returns bytes sent.
    fn send(&self, sock: RawFd, off: usize, end: usize) -> std::io::Result<usize> {
        let n = match &self.memfd {
            Some(memfd) => {
                let mut o = off as libc::off_t;
                // SAFETY: valid fds; `o` is a valid offset pointer.
                unsafe { libc::sendfile(sock, memfd.as_raw_fd(), &mut o, end - off) }
            }
            // SAFETY: the pointer/length pair lies inside `batch`.
            None => unsafe {
                libc::send(
                    sock,
                    self.batch[off..end].as_ptr().cast(),
                    end - off,
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                )
            },
        };
        if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n as usize) }
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

impl Shared {
    fn error(&self, what: &str) {
        if self.errors.fetch_add(1, Ordering::Relaxed) == 0 {
            eprintln!("load: {what}");
        }
    }
}

/// How the reader takes bytes off the socket.
#[derive(Clone, Copy)]
struct ReadPlan {
    /// Discard payload runs of at least this many bytes with recv(MSG_TRUNC) (no copy).
    trunc_min: u64,
    /// When discarding, read headers with small reads of this size instead of READ_BUF,
    /// so that large payloads are not copied into user space.
    small_read: usize,
}

/// Drives one connection in a single task: sends frames owed to the server and reads
/// echoes, waiting on read readiness (plus write readiness while output is pending).
///
/// The bytes still to send are always a range `[off, end)` of `src`'s batch, which holds
/// `window + 1` copies of the frame: at most `window` frames are owed at any time, and the
/// range is rebased to start inside the first frame before more frames are appended, so it
/// never runs past the batch.
#[allow(clippy::too_many_arguments)]
async fn run_conn(
    stream: TcpStream,
    leftover: Vec<u8>,
    mut parser: Parser,
    src: Arc<Source>,
    frame_len: usize,
    window: usize,
    plan: ReadPlan,
    shared: Arc<Shared>,
) {
    let fd = stream.as_raw_fd();
    let (mut off, mut end) = (0usize, window * frame_len);
    let owe = |done: usize, off: &mut usize, end: &mut usize| {
        if done > 0 {
            shared.completed.fetch_add(done as u64, Ordering::Relaxed);
            let unsent = *end - *off;
            *off %= frame_len;
            *end = *off + unsent + done * frame_len;
            debug_assert!(*end <= (window + 1) * frame_len);
        }
    };
    owe(parser.feed(&leftover), &mut off, &mut end);
    let mut buf = vec![0u8; READ_BUF];
    loop {
        // Send whatever is owed until done or the socket is full.
        while off < end {
            match stream.try_io(Interest::WRITABLE, || src.send(fd, off, end)) {
                Ok(n) => off += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return shared.error(&format!("write error: {e}")),
            }
        }
        if off == end {
            (off, end) = (0, 0);
        }
        let interest =
            if off < end { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
        let ready = match stream.ready(interest).await {
            Ok(r) => r,
            Err(e) => return shared.error(&format!("poll error: {e}")),
        };
        if !ready.is_readable() {
            continue;
        }
        let r = stream.try_io(Interest::READABLE, || {
            let skip = parser.skippable();
            let trunc = skip >= plan.trunc_min;
            let (len, flags) = if trunc {
                (skip.min(1 << 30) as usize, libc::MSG_TRUNC | libc::MSG_DONTWAIT)
            } else if plan.trunc_min < u64::MAX {
                (plan.small_read.max(skip as usize).min(READ_BUF), libc::MSG_DONTWAIT)
            } else {
                (READ_BUF, libc::MSG_DONTWAIT)
            };
            // SAFETY: with MSG_TRUNC TCP discards the bytes without writing to the buffer;
            // otherwise `len` <= buf.len().
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), len, flags) };
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let n = n as usize;
            Ok((n, if n == 0 { 0 } else if trunc { parser.skipped(n as u64) } else { parser.feed(&buf[..n]) }))
        });
        match r {
            Ok((0, _)) => return shared.error("server closed a connection"),
            Ok((_, done)) => owe(done, &mut off, &mut end),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return shared.error(&format!("read error: {e}")),
        }
    }
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
    let large = a.size as u64 >= a.zero_copy_min;
    let src = Arc::new(Source::new(frame.repeat(a.window + 1), large && a.sendfile)?);
    let plan = ReadPlan {
        trunc_min: if large { 4096 } else { u64::MAX },
        // Enough for the server's frame header (2/4/10 bytes) plus a little.
        small_read: 64,
    };
    let shared = Arc::new(Shared { completed: AtomicU64::new(0), errors: AtomicU64::new(0) });
    for (stream, leftover) in conns {
        tokio::spawn(run_conn(
            stream,
            leftover,
            Parser::new(a.proto, frame_len),
            src.clone(),
            frame_len,
            a.window,
            plan,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(len: usize, opcode: u8, fin: bool) -> Vec<u8> {
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        if len < 126 {
            f.push(len as u8);
        } else if len <= 0xffff {
            f.push(126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            f.push(127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
        f.extend(std::iter::repeat_n(0xaa, len));
        f
    }

    #[test]
    fn ws_parser_counts_across_any_split() {
        let mut stream = Vec::new();
        for len in [0, 20, 125, 126, 1024, 65535, 65536, 70000] {
            stream.extend(server_frame(len, 2, true));
            stream.extend(server_frame(3, 9, true)); // ping: not counted
            stream.extend(server_frame(5, 2, false)); // fragment start: not counted
            stream.extend(server_frame(5, 0, true)); // final continuation: counted
        }
        for chunk in [1, 2, 3, 7, 100, 4096, usize::MAX] {
            let mut p = Parser::new(Proto::Ws, 0);
            let done: usize = stream.chunks(chunk.min(stream.len())).map(|c| p.feed(c)).sum();
            assert_eq!(done, 16, "chunk {chunk}");
        }
        // Skipping payloads (MSG_TRUNC path) instead of feeding them.
        let mut p = Parser::new(Proto::Ws, 0);
        let (mut i, mut done) = (0, 0);
        while i < stream.len() {
            let skip = p.skippable() as usize;
            if skip > 0 {
                let n = skip.min(1000).min(stream.len() - i);
                done += p.skipped(n as u64);
                i += n;
            } else {
                let n = 3.min(stream.len() - i);
                done += p.feed(&stream[i..i + n]);
                i += n;
            }
        }
        assert_eq!(done, 16);
    }

    #[test]
    fn client_frame_is_masked() {
        let f = encode_frame(70000, Proto::Ws);
        assert_eq!(&f[..2], &[0x82, 0x80 | 127]);
        assert_eq!(f.len(), 2 + 8 + 4 + 70000);
        assert_eq!(&f[10..14], &MASK);
        assert_eq!(f[14], MASK[0]); // payload byte 0 is 0
    }
}
