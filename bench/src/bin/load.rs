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
//! Deflate mode (`--deflate`): the handshake offers `Sec-WebSocket-Extensions:
//! permessage-deflate` and the response must accept it (else the load prints
//! `NOT_NEGOTIATED <response header>` and exits 1: a server that does not compress is
//! flagged, never measured). It sends `--size`-byte JSON-like text messages with varied
//! values (the generator of hookup-proto's deflate bench), a cycle of distinct ones (at least
//! 64 and 1 MiB of text), each pre-compressed by itself (raw deflate level 1, 15-bit window,
//! sync flush, RSV1 set), so the load does no compression; the server inflates each and
//! compresses its echo with its own settings. Echoes are counted by frame header only (not
//! inflated); RESULT adds `compressed_pct` (echoed data frames with RSV1 set) and
//! `wire_bytes_per_echo` (server bytes received per echo).
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
    /// Offer permessage-deflate and send pre-compressed text messages (see module docs).
    deflate: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: load --addr A --conns N --size BYTES --window W --duration SECS [--warmup SECS] \
         [--proto ws|tcp] [--threads T] [--zero-copy-min BYTES] [--sendfile] [--deflate]\n       load --addr A --conns N --idle [--hold SECS] [--proto ws|tcp]"
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
        deflate: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--idle" {
            a.idle = true;
            continue;
        }
        if k == "--deflate" {
            a.deflate = true;
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
    Ws {
        hdr: [u8; 14],
        have: usize,
        remaining: u64,
        counts: bool,
        in_payload: bool,
        /// First frames of data messages (opcode 1/2) seen, and how many had RSV1 set.
        data_frames: u64,
        rsv1_frames: u64,
    },
    /// Raw TCP: one echo per `frame_len` bytes.
    Tcp { frame_len: u64, acc: u64 },
}

impl Parser {
    fn new(proto: Proto, frame_len: usize) -> Self {
        match proto {
            Proto::Ws => Self::Ws {
                hdr: [0; 14],
                have: 0,
                remaining: 0,
                counts: false,
                in_payload: false,
                data_frames: 0,
                rsv1_frames: 0,
            },
            Proto::Tcp => Self::Tcp {
                frame_len: frame_len as u64,
                acc: 0,
            },
        }
    }

    /// Payload bytes that may be discarded unread right now (no header inside them).
    fn skippable(&self) -> u64 {
        match self {
            Self::Tcp { .. } => u64::MAX,
            Self::Ws {
                remaining,
                in_payload,
                ..
            } => {
                if *in_payload {
                    *remaining
                } else {
                    0
                }
            }
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
            Self::Ws {
                remaining,
                in_payload,
                counts,
                ..
            } => {
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
        let Self::Ws {
            hdr,
            have,
            remaining,
            counts,
            in_payload,
            data_frames,
            rsv1_frames,
        } = self
        else {
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
            if opcode == 1 || opcode == 2 {
                *data_frames += 1;
                *rsv1_frames += u64::from(hdr[0] & 0x40 != 0);
            }
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
            let fd =
                unsafe { libc::memfd_create(c"hookup-bench-frames".as_ptr(), libc::MFD_CLOEXEC) };
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
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

/// Connects and (for ws) performs the handshake. Returns the stream and any bytes that
/// followed the 101 response.
async fn connect(
    addr: SocketAddr,
    proto: Proto,
    deflate: bool,
) -> Result<(TcpStream, Vec<u8>), BoxError> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    if proto == Proto::Tcp {
        return Ok((s, Vec::new()));
    }
    if deflate {
        s.write_all(REQUEST_DEFLATE).await?;
    } else {
        s.write_all(REQUEST).await?;
    }
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
            if deflate {
                check_deflate_response(&buf[..pos])?;
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
        let (addr, proto, deflate) = (a.addr, a.proto, a.deflate);
        handles.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            connect(addr, proto, deflate).await
        }));
    }
    let mut out = Vec::with_capacity(a.conns);
    for h in handles {
        out.push(h.await??);
    }
    Ok(out)
}

#[derive(Default)]
struct Shared {
    completed: AtomicU64,
    errors: AtomicU64,
    /// Deflate mode: echoed data frames, those with RSV1, bytes received.
    data_frames: AtomicU64,
    rsv1_frames: AtomicU64,
    rx_bytes: AtomicU64,
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
        let interest = if off < end {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
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
                (
                    skip.min(1 << 30) as usize,
                    libc::MSG_TRUNC | libc::MSG_DONTWAIT,
                )
            } else if plan.trunc_min < u64::MAX {
                (
                    plan.small_read.max(skip as usize).min(READ_BUF),
                    libc::MSG_DONTWAIT,
                )
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
            Ok((
                n,
                if n == 0 {
                    0
                } else if trunc {
                    parser.skipped(n as u64)
                } else {
                    parser.feed(&buf[..n])
                },
            ))
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
    if a.deflate {
        return deflate_throughput(a, conns).await;
    }

    let frame = encode_frame(a.size, a.proto);
    let frame_len = frame.len();
    let large = a.size as u64 >= a.zero_copy_min;
    let src = Arc::new(Source::new(
        frame.repeat(a.window + 1),
        large && a.sendfile,
    )?);
    let plan = ReadPlan {
        trunc_min: if large { 4096 } else { u64::MAX },
        // Enough for the server's frame header (2/4/10 bytes) plus a little.
        small_read: 64,
    };
    let shared = Arc::new(Shared::default());
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

    measure(&a, &shared).await;
    Ok(())
}

/// Warmup, then the measured window; prints MEASURE_START / MEASURE_END / RESULT.
async fn measure(a: &Args, shared: &Shared) {
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
    let mut extra = String::new();
    if a.deflate {
        let frames = shared.data_frames.load(Ordering::Relaxed);
        let rsv1 = shared.rsv1_frames.load(Ordering::Relaxed);
        let rx = shared.rx_bytes.load(Ordering::Relaxed);
        let done = shared.completed.load(Ordering::Relaxed).max(1);
        extra = format!(
            " compressed_pct={:.1} wire_bytes_per_echo={:.0}",
            rsv1 as f64 * 100.0 / frames.max(1) as f64,
            rx as f64 / done as f64
        );
    }
    say(&format!(
        "RESULT msgs={msgs} secs={secs:.4} msgs_per_sec={:.1} load_cpu_pct={load_cpu_pct:.1} errors={errors}{extra}",
        msgs as f64 / secs
    ));
}

const REQUEST_DEFLATE: &[u8] = b"GET / HTTP/1.1\r\n\
Host: 127.0.0.1\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n";

/// The response head must accept permessage-deflate with a client window we can use (our
/// messages are compressed with a 15-bit window). Errors start with `NOT_NEGOTIATED`.
fn check_deflate_response(head: &[u8]) -> Result<(), BoxError> {
    let head = String::from_utf8_lossy(head);
    let ext: Vec<&str> = head
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("sec-websocket-extensions")
                .then_some(v.trim())
        })
        .collect();
    let ext = ext.join(", ");
    let pmd = ext.split(',').map(str::trim).find(|e| {
        e.split(';')
            .next()
            .is_some_and(|n| n.trim().eq_ignore_ascii_case("permessage-deflate"))
    });
    let Some(pmd) = pmd else {
        return Err(format!("NOT_NEGOTIATED extensions={ext:?}").into());
    };
    for p in pmd.split(';').skip(1) {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        if k.trim() == "client_max_window_bits"
            && v.trim()
                .trim_matches('"')
                .parse::<u8>()
                .is_ok_and(|b| b < 15)
        {
            return Err(format!("NOT_NEGOTIATED unusable parameters {pmd:?}").into());
        }
    }
    Ok(())
}

/// Compressible JSON of `n` bytes, different for each `seed`: the same
/// messages as hookup-proto's deflate bench.
#[path = "../../../hookup-proto/benches/common/json.rs"]
mod json_corpus;
use json_corpus::json;

/// Masked text frames (FIN + RSV1), each carrying one JSON message of `size` bytes
/// compressed by itself: raw deflate level 1, sync flush, trailing 00 00 ff ff removed.
fn encode_deflate_frames(size: usize) -> Vec<Vec<u8>> {
    use flate2::{Compress, Compression, FlushCompress};
    let count = ((1 << 20) / size).clamp(64, 1024);
    (0..count as u64)
        .map(|seed| {
            let text = json(size, seed + 1);
            let mut c = Compress::new(Compression::fast(), false);
            let mut out = Vec::with_capacity(size + 64);
            c.compress_vec(text.as_bytes(), &mut out, FlushCompress::Sync)
                .expect("deflate");
            while c.total_in() < text.len() as u64 || !out.ends_with(&[0, 0, 0xff, 0xff]) {
                out.reserve(size + 64);
                let before = c.total_in();
                c.compress_vec(
                    &text.as_bytes()[before as usize..],
                    &mut out,
                    FlushCompress::Sync,
                )
                .expect("deflate");
            }
            out.truncate(out.len() - 4);
            let len = out.len();
            let mut f = Vec::with_capacity(len + 14);
            f.push(0xc1);
            if len < 126 {
                f.push(0x80 | len as u8);
            } else if len <= u16::MAX as usize {
                f.push(0x80 | 126);
                f.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                f.push(0x80 | 127);
                f.extend_from_slice(&(len as u64).to_be_bytes());
            }
            f.extend_from_slice(&MASK);
            f.extend(out.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
            f
        })
        .collect()
}

async fn deflate_throughput(a: Args, conns: Vec<(TcpStream, Vec<u8>)>) -> Result<(), BoxError> {
    let frames = Arc::new(encode_deflate_frames(a.size));
    let shared = Arc::new(Shared::default());
    for (i, (stream, leftover)) in conns.into_iter().enumerate() {
        let start = i * 17 % frames.len();
        tokio::spawn(run_conn_deflate(
            stream,
            leftover,
            frames.clone(),
            start,
            a.window,
            shared.clone(),
        ));
    }
    measure(&a, &shared).await;
    Ok(())
}

/// Like `run_conn`, with a cycle of different frames: owed frames are appended to an
/// output buffer (one copy each; the frames are compressed, so a few hundred bytes to
/// a few KiB).
async fn run_conn_deflate(
    stream: TcpStream,
    leftover: Vec<u8>,
    frames: Arc<Vec<Vec<u8>>>,
    mut next: usize,
    window: usize,
    shared: Arc<Shared>,
) {
    let fd = stream.as_raw_fd();
    let mut parser = Parser::new(Proto::Ws, 0);
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut off = 0usize;
    let mut owe = |done: usize, out: &mut Vec<u8>| {
        for _ in 0..done {
            out.extend_from_slice(&frames[next]);
            next = (next + 1) % frames.len();
        }
    };
    owe(window, &mut out);
    let d = parser.feed(&leftover);
    shared.completed.fetch_add(d as u64, Ordering::Relaxed);
    owe(d, &mut out);
    let mut buf = vec![0u8; READ_BUF];
    let (mut seen_frames, mut seen_rsv1) = (0u64, 0u64);
    loop {
        while off < out.len() {
            // SAFETY: the pointer/length pair lies inside `out`.
            let r = stream.try_io(Interest::WRITABLE, || {
                let n = unsafe {
                    libc::send(
                        fd,
                        out[off..].as_ptr().cast(),
                        out.len() - off,
                        libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                    )
                };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match r {
                Ok(n) => off += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return shared.error(&format!("write error: {e}")),
            }
        }
        if off == out.len() {
            out.clear();
            off = 0;
        }
        let interest = if off < out.len() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let ready = match stream.ready(interest).await {
            Ok(r) => r,
            Err(e) => return shared.error(&format!("poll error: {e}")),
        };
        if !ready.is_readable() {
            continue;
        }
        let r = stream.try_io(Interest::READABLE, || {
            // SAFETY: `READ_BUF` == buf.len().
            let n =
                unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), READ_BUF, libc::MSG_DONTWAIT) };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match r {
            Ok(0) => return shared.error("server closed a connection"),
            Ok(n) => {
                let done = parser.feed(&buf[..n]);
                shared.rx_bytes.fetch_add(n as u64, Ordering::Relaxed);
                if let Parser::Ws {
                    data_frames,
                    rsv1_frames,
                    ..
                } = &parser
                {
                    shared
                        .data_frames
                        .fetch_add(data_frames - seen_frames, Ordering::Relaxed);
                    shared
                        .rsv1_frames
                        .fetch_add(rsv1_frames - seen_rsv1, Ordering::Relaxed);
                    (seen_frames, seen_rsv1) = (*data_frames, *rsv1_frames);
                }
                if done > 0 {
                    shared.completed.fetch_add(done as u64, Ordering::Relaxed);
                    // Compact before appending so the buffer does not grow without bound.
                    out.drain(..off);
                    off = 0;
                    owe(done, &mut out);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return shared.error(&format!("read error: {e}")),
        }
    }
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
    let limit = if a.idle {
        120.0 + a.hold
    } else {
        60.0 + a.warmup + a.duration
    } + 30.0;
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs_f64(limit));
        eprintln!("load: hard time limit ({limit:.0} s) reached, exiting");
        std::process::exit(3);
    });
    let rt = if a.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(a.threads)
            .enable_all()
            .build()
    }
    .expect("runtime");
    let res = rt.block_on(async move {
        if a.idle {
            idle(a).await
        } else {
            throughput(a).await
        }
    });
    // Exit without waiting for connection tasks to wind down.
    match res {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            let e = e.to_string();
            if e.starts_with("NOT_NEGOTIATED") {
                say(&e);
            }
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
            let done: usize = stream
                .chunks(chunk.min(stream.len()))
                .map(|c| p.feed(c))
                .sum();
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
