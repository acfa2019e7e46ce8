//! `reliable` — reliable mode (`hookup.v1`) beside raw hookup, one client and one server
//! process (built only with `--features hookup`; driven by `bench-run reliable`).
//!
//! ```text
//! reliable server ADDR
//! reliable client --addr A --variant V [--messages N] [--size BYTES] [--journal PATH]
//! ```
//!
//! Server: a `current_thread` tokio runtime; each connection is accepted with
//! `hookup_tokio::accept_request`, selecting `hookup.v1` when the client offers it (then it
//! is driven as a `ReliablePeer` with a `SharedStore`, default `SessionConfig`, as
//! `hookup serve --reliable` does). Path `/count` counts data messages (raw: a text
//! `SYNC` is answered with the count so far); path `/echo` echoes every data message
//! (raw: `ws.send`, reliable: `peer.send(msg, None)`).
//!
//! Client variants (a `current_thread` tokio runtime, payload `--size` bytes, default 1 KiB,
//! binary):
//!
//! Throughput, client → server, N messages (`--messages`, default 200,000) after N/10
//! untimed warmup messages. The clock stops when the server has confirmed the last one.
//! - `raw`: `ws.feed` each message (written when hookup's buffer is full), then `SYNC`
//!   and wait for the server's count: the fastest raw hookup can go one way.
//! - `raw-send`: `ws.send` each message (one write per message), then `SYNC`.
//! - `reliable`: `ReliableClient::send(msg, None)` — cumulative acks (the server acks
//!   every 32 messages or 20 ms); every 1,024th message is sent with an ack deadline and
//!   the client keeps at most 8 of these marks (8,192 messages, under the 10,000-message
//!   outbox bound) unacknowledged. The clock stops when the last message is acknowledged.
//! - `reliable-ack-each`: every message with an ack deadline (so each DATA carries the
//!   "ack now" flag), at most 8,192 `Delivery`s outstanding.
//! - `reliable-concurrent64`: as `reliable`, with 64 `send` calls in progress at once
//!   (`StreamExt::buffered`), so the client's task takes several messages per wakeup.
//! - `reliable-journal-never`, `reliable-journal-10ms`, `reliable-journal-always`: as
//!   `reliable`, with a journal file (`--journal`) and `Fsync::Never`,
//!   `Fsync::Interval(10 ms)` (the default), `Fsync::Always`.
//!
//! Latency, one message in flight, N round trips after N/10 untimed ones:
//! - `rtt-raw`: `ws.send` to `/echo`, wait for the echo.
//! - `rtt-reliable`: `ReliableClient::send(msg, None)` to `/echo`, wait for the echoed
//!   `ReliableEvent::Message` (request/reply over reliable mode both ways).
//! - `rtt-reliable-ack`: `send(msg, Some(deadline))` to `/count`, wait for its `Delivery`
//!   to resolve `Acked` (send → ack).
//!
//! Prints `MEASURE_START` / `MEASURE_END` around the timed part (the driver samples the
//! server's CPU there) and one `RESULT variant=.. msgs=.. secs=.. msgs_per_sec=..
//! drain_ms=.. p50_us=.. p99_us=.. client_cpu_us=..` line. Exits by itself; any error,
//! a count mismatch or a message not acknowledged exits non-zero within `TIMEOUT`.

use std::collections::VecDeque;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookup_bench::BoxError;
use hookup_tokio::proto::reliable::{SessionConfig, StoreConfig};
use hookup_tokio::reliable::{
    self, DeliveryOutcome, Fsync, Reconnect, ReliableClient, ReliableConfig, ReliableEvent,
    ReliablePeer, SharedStore,
};
use hookup_tokio::{Accept, Message, WebSocket};
use tokio::net::{TcpListener, TcpStream};

/// Every await on the other side is bounded by this: a stuck run fails instead of hanging.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Ack deadline of marked messages (long: a miss means a broken run, reported as such).
const ACK_DEADLINE: Duration = Duration::from_secs(30);
/// `reliable`: one message in this many carries an ack deadline (a mark).
const MARK_EVERY: usize = 1024;
/// Most messages sent but not known to be acknowledged.
const WINDOW: usize = 8192;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// utime + stime of this process in microseconds (getrusage).
fn cpu_us() -> u64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> Result<T, BoxError> {
    tokio::time::timeout(TIMEOUT, f)
        .await
        .map_err(|_| format!("{what}: no progress within {TIMEOUT:?}").into())
}

// ------------------------------------------------------------------------------- server

// The handshake callback returns an HTTP response by value (hookup's signature).
#[allow(clippy::result_large_err)]
async fn serve_conn(stream: TcpStream, store: SharedStore) -> Result<(), BoxError> {
    let _ = stream.set_nodelay(true);
    let config = hookup_tokio::Config::default();
    let (ws, req) = hookup_tokio::accept_request(stream, &config, |req| {
        let offered = req
            .subprotocols()
            .iter()
            .any(|p| p == reliable::SUBPROTOCOL);
        Ok(if offered {
            Accept::new().subprotocol(reliable::SUBPROTOCOL)
        } else {
            Accept::new()
        })
    })
    .await?;
    let echo = req.path() == "/echo";
    if ws.subprotocol() == Some(reliable::SUBPROTOCOL) {
        let mut peer = ReliablePeer::new(ws, store, SessionConfig::default());
        while let Some(ev) = peer.recv().await {
            if let ReliableEvent::Message(m) = ev
                && echo
            {
                // The Delivery is not needed: dropping it does not cancel the message.
                drop(peer.send(m, None)?);
            }
        }
        return Ok(());
    }
    raw_server(ws, echo).await
}

async fn raw_server(mut ws: WebSocket<TcpStream>, echo: bool) -> Result<(), BoxError> {
    let mut count: u64 = 0;
    while let Some(msg) = ws.recv().await {
        let msg = msg?;
        match msg {
            Message::Binary(_) if echo => ws.send(msg).await?,
            Message::Binary(_) => count += 1,
            Message::Text(t) if &*t == "SYNC" => ws.send(Message::text(count.to_string())).await?,
            _ => {}
        }
    }
    Ok(())
}

fn server(addr: SocketAddr) -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        let store = SharedStore::new(StoreConfig::default());
        say(&format!("LISTENING {}", listener.local_addr()?));
        loop {
            let (stream, _) = listener.accept().await?;
            let store = store.clone();
            tokio::spawn(async move {
                if let Err(e) = serve_conn(stream, store).await {
                    eprintln!("reliable server: connection: {e}");
                }
            });
        }
    })
}

// ------------------------------------------------------------------------------- client

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Raw,
    RawSend,
    Reliable,
    ReliableAckEach,
    Concurrent64,
    JournalNever,
    Journal10ms,
    JournalAlways,
    RttRaw,
    RttReliable,
    RttReliableAck,
}

const VARIANTS: &[(&str, Variant)] = &[
    ("raw", Variant::Raw),
    ("raw-send", Variant::RawSend),
    ("reliable", Variant::Reliable),
    ("reliable-ack-each", Variant::ReliableAckEach),
    ("reliable-concurrent64", Variant::Concurrent64),
    ("reliable-journal-never", Variant::JournalNever),
    ("reliable-journal-10ms", Variant::Journal10ms),
    ("reliable-journal-always", Variant::JournalAlways),
    ("rtt-raw", Variant::RttRaw),
    ("rtt-reliable", Variant::RttReliable),
    ("rtt-reliable-ack", Variant::RttReliableAck),
];

struct Args {
    addr: SocketAddr,
    variant: Variant,
    name: String,
    messages: usize,
    size: usize,
    journal: Option<PathBuf>,
}

/// What a timed part measured.
#[derive(Default)]
struct Measured {
    secs: f64,
    /// Time from the last send returning to the server's confirmation of everything.
    drain: Duration,
    /// Round-trip samples (latency variants).
    rtts: Vec<Duration>,
    cpu_us: u64,
}

async fn raw_sync(ws: &mut WebSocket<hookup_tokio::MaybeTlsStream>) -> Result<u64, BoxError> {
    ws.send(Message::text("SYNC")).await?;
    loop {
        match within("SYNC reply", ws.recv()).await? {
            Some(Ok(Message::Text(t))) => return Ok(t.parse()?),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err("server closed before the SYNC reply".into()),
        }
    }
}

async fn raw_throughput(a: &Args, payload: Bytes) -> Result<Measured, BoxError> {
    // Like with like: the reliable client writes up to four write buffers
    // per pass of its task (BATCH_BUFFERS in hookup-driver's reliable
    // client), so raw `feed` writes out at the same size, not at every
    // `write_buffer_size` of the default config.
    let mut config = hookup_tokio::ClientConfig::default();
    config.ws.write_buffer_size *= 4;
    let request = hookup_tokio::ClientRequest::new(&format!("ws://{}/count", a.addr))?;
    let (mut ws, _) = hookup_tokio::connect_with(request, &config).await?;
    let per_msg = a.variant == Variant::RawSend;
    let warm = (a.messages / 10).max(1);
    let mut sent = 0u64;
    let burst = async |ws: &mut WebSocket<_>, n: usize| -> Result<(), BoxError> {
        for _ in 0..n {
            let m = Message::Binary(payload.clone());
            if per_msg {
                ws.send(m).await?
            } else {
                ws.feed(m).await?
            }
        }
        Ok(())
    };
    burst(&mut ws, warm).await?;
    sent += warm as u64;
    let got = raw_sync(&mut ws).await?;
    if got != sent {
        return Err(format!("server counted {got}, {sent} sent").into());
    }
    say("MEASURE_START");
    let (t0, c0) = (Instant::now(), cpu_us());
    burst(&mut ws, a.messages).await?;
    sent += a.messages as u64;
    let t_last = Instant::now();
    let got = raw_sync(&mut ws).await?;
    let (t1, c1) = (Instant::now(), cpu_us());
    say("MEASURE_END");
    if got != sent {
        return Err(format!("server counted {got}, {sent} sent").into());
    }
    let _ = ws.close(hookup_tokio::CloseCode::NORMAL, "").await;
    Ok(Measured {
        secs: (t1 - t0).as_secs_f64(),
        drain: t1 - t_last,
        cpu_us: c1 - c0,
        ..Default::default()
    })
}

async fn reliable_client(a: &Args, path: &str) -> Result<ReliableClient, BoxError> {
    let mut config = ReliableConfig::default();
    config.session.reconnect = Reconnect::Never;
    let journal_variant = matches!(
        a.variant,
        Variant::JournalNever | Variant::Journal10ms | Variant::JournalAlways
    );
    match (&a.journal, journal_variant) {
        (Some(j), true) => {
            match std::fs::remove_file(j) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
            config.journal = Some(j.clone());
            config.fsync = match a.variant {
                Variant::JournalNever => Fsync::Never,
                Variant::JournalAlways => Fsync::Always,
                _ => Fsync::Interval(Duration::from_millis(10)),
            };
        }
        (None, false) => {}
        (None, true) => return Err("journal variants need --journal PATH".into()),
        (Some(_), false) => {
            return Err(
                format!("--journal is only for the journal variants, not {}", a.name).into(),
            );
        }
    }
    let mut client = ReliableClient::connect(&format!("ws://{}{path}", a.addr), config)?;
    loop {
        match within("connect", client.recv()).await? {
            Some(ReliableEvent::Connected { .. }) => return Ok(client),
            Some(ReliableEvent::GaveUp) | None => {
                return Err("reliable client could not connect".into());
            }
            Some(_) => {}
        }
    }
}

async fn expect_acked(d: reliable::Delivery) -> Result<(), BoxError> {
    match within("ack", d).await? {
        DeliveryOutcome::Acked => Ok(()),
        other => Err(format!("delivery outcome {other:?}, expected Acked").into()),
    }
}

/// Sends `n` messages (the last one always with an ack deadline) and waits until the last
/// is acknowledged; `concurrent` sends are in progress at a time (each `send` waits for
/// the client's task to take the message; 1 = a plain loop). Returns when the last send
/// returned.
async fn reliable_burst(
    client: &ReliableClient,
    payload: &Bytes,
    n: usize,
    ack_each: bool,
    concurrent: usize,
) -> Result<Instant, BoxError> {
    use futures::StreamExt as _;
    let (every, keep) = if ack_each {
        (1, WINDOW)
    } else {
        (MARK_EVERY, WINDOW / MARK_EVERY)
    };
    // A countdown, not `i % every`: a division per message would be the benchmark's
    // own cost.
    let mut until_mark = every;
    let mut is_mark = |i: usize| {
        until_mark -= 1;
        let mark = until_mark == 0 || i + 1 == n;
        if until_mark == 0 {
            until_mark = every;
        }
        mark
    };
    let mut marks: VecDeque<reliable::Delivery> = VecDeque::with_capacity(keep + 1);
    // A mark's Delivery is kept (at most `keep` outstanding); the others are dropped at
    // once (a send without a deadline that was written is resolved `Written` already).
    let mut sent = async |mark: bool, d: Result<reliable::Delivery, _>| -> Result<(), BoxError> {
        let d = d.map_err(|e| format!("send: {e}"))?;
        if mark {
            marks.push_back(d);
            if marks.len() > keep {
                expect_acked(marks.pop_front().expect("not empty")).await?;
            }
        }
        Ok(())
    };
    if concurrent <= 1 {
        for i in 0..n {
            let mark = is_mark(i);
            let d = client
                .send(
                    Message::Binary(payload.clone()),
                    mark.then_some(ACK_DEADLINE),
                )
                .await;
            match d {
                Ok(d) if !mark => drop(d),
                d => sent(mark, d).await?,
            }
        }
    } else {
        let mut sends = futures::stream::iter(0..n)
            .map(|i| {
                let mark = is_mark(i);
                let msg = Message::Binary(payload.clone());
                async move { (mark, client.send(msg, mark.then_some(ACK_DEADLINE)).await) }
            })
            .buffered(concurrent);
        while let Some((mark, d)) = sends.next().await {
            sent(mark, d).await?;
        }
    }
    let t_last = Instant::now();
    for d in marks {
        expect_acked(d).await?;
    }
    Ok(t_last)
}

async fn reliable_throughput(a: &Args, payload: Bytes) -> Result<Measured, BoxError> {
    let client = reliable_client(a, "/count").await?;
    let ack_each = a.variant == Variant::ReliableAckEach;
    let concurrent = if a.variant == Variant::Concurrent64 {
        64
    } else {
        1
    };
    let warm = (a.messages / 10).max(1);
    reliable_burst(&client, &payload, warm, ack_each, concurrent).await?;
    say("MEASURE_START");
    let (t0, c0) = (Instant::now(), cpu_us());
    let t_last = reliable_burst(&client, &payload, a.messages, ack_each, concurrent).await?;
    let (t1, c1) = (Instant::now(), cpu_us());
    say("MEASURE_END");
    let fin = client.shutdown(Duration::from_secs(10)).await;
    if fin.unacked != 0 {
        return Err(format!("{} messages unacknowledged at shutdown", fin.unacked).into());
    }
    Ok(Measured {
        secs: (t1 - t0).as_secs_f64(),
        drain: t1 - t_last,
        cpu_us: c1 - c0,
        ..Default::default()
    })
}

async fn rtt_raw(a: &Args, payload: Bytes) -> Result<Measured, BoxError> {
    let mut ws = hookup_tokio::connect(&format!("ws://{}/echo", a.addr)).await?;
    let one = async |ws: &mut WebSocket<_>| -> Result<Duration, BoxError> {
        let t = Instant::now();
        ws.send(Message::Binary(payload.clone())).await?;
        loop {
            match within("echo", ws.recv()).await? {
                Some(Ok(Message::Binary(b))) if b.len() == payload.len() => return Ok(t.elapsed()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err("server closed".into()),
            }
        }
    };
    for _ in 0..(a.messages / 10).max(1) {
        one(&mut ws).await?;
    }
    let mut rtts = Vec::with_capacity(a.messages);
    say("MEASURE_START");
    let (t0, c0) = (Instant::now(), cpu_us());
    for _ in 0..a.messages {
        rtts.push(one(&mut ws).await?);
    }
    let (t1, c1) = (Instant::now(), cpu_us());
    say("MEASURE_END");
    let _ = ws.close(hookup_tokio::CloseCode::NORMAL, "").await;
    Ok(Measured {
        secs: (t1 - t0).as_secs_f64(),
        rtts,
        cpu_us: c1 - c0,
        ..Default::default()
    })
}

async fn rtt_reliable(a: &Args, payload: Bytes) -> Result<Measured, BoxError> {
    let ack = a.variant == Variant::RttReliableAck;
    let mut client = reliable_client(a, if ack { "/count" } else { "/echo" }).await?;
    let one = async |client: &mut ReliableClient| -> Result<Duration, BoxError> {
        let t = Instant::now();
        let d = client
            .send(
                Message::Binary(payload.clone()),
                ack.then_some(ACK_DEADLINE),
            )
            .await
            .map_err(|e| format!("send: {e}"))?;
        if ack {
            expect_acked(d).await?;
            return Ok(t.elapsed());
        }
        loop {
            match within("echo", client.recv()).await? {
                Some(ReliableEvent::Message(m)) if m.as_bytes().len() == payload.len() => {
                    return Ok(t.elapsed());
                }
                Some(ReliableEvent::GaveUp) | None => return Err("reliable client ended".into()),
                Some(_) => {}
            }
        }
    };
    for _ in 0..(a.messages / 10).max(1) {
        one(&mut client).await?;
    }
    let mut rtts = Vec::with_capacity(a.messages);
    say("MEASURE_START");
    let (t0, c0) = (Instant::now(), cpu_us());
    for _ in 0..a.messages {
        rtts.push(one(&mut client).await?);
    }
    let (t1, c1) = (Instant::now(), cpu_us());
    say("MEASURE_END");
    let fin = client.shutdown(Duration::from_secs(10)).await;
    if fin.unacked != 0 {
        return Err(format!("{} messages unacknowledged at shutdown", fin.unacked).into());
    }
    Ok(Measured {
        secs: (t1 - t0).as_secs_f64(),
        rtts,
        cpu_us: c1 - c0,
        ..Default::default()
    })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e6
}

fn client(a: Args) -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let payload = Bytes::from(vec![0x5a; a.size]);
    let m = rt.block_on(async {
        match a.variant {
            Variant::Raw | Variant::RawSend => raw_throughput(&a, payload).await,
            Variant::Reliable
            | Variant::ReliableAckEach
            | Variant::Concurrent64
            | Variant::JournalNever
            | Variant::Journal10ms
            | Variant::JournalAlways => reliable_throughput(&a, payload).await,
            Variant::RttRaw => rtt_raw(&a, payload).await,
            Variant::RttReliable | Variant::RttReliableAck => rtt_reliable(&a, payload).await,
        }
    })?;
    if let Some(j) = &a.journal {
        let _ = std::fs::remove_file(j);
    }
    let mut rtts = m.rtts;
    rtts.sort_unstable();
    let n = a.messages as f64;
    say(&format!(
        "RESULT variant={} msgs={} secs={:.6} msgs_per_sec={:.1} drain_ms={:.3} p50_us={:.2} \
         p99_us={:.2} client_cpu_us={}",
        a.name,
        a.messages,
        m.secs,
        n / m.secs,
        m.drain.as_secs_f64() * 1e3,
        percentile(&rtts, 0.50),
        percentile(&rtts, 0.99),
        m.cpu_us,
    ));
    Ok(())
}

fn usage() -> ! {
    let names: Vec<&str> = VARIANTS.iter().map(|(n, _)| *n).collect();
    eprintln!(
        "usage: reliable server ADDR\n       reliable client --addr A --variant V [--messages N] \
         [--size BYTES] [--journal PATH]\nvariants: {}",
        names.join(", ")
    );
    std::process::exit(2)
}

fn parse_client(mut it: impl Iterator<Item = String>) -> Args {
    let (mut addr, mut variant, mut messages, mut size, mut journal) =
        (None, None, 200_000, 1024, None);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| usage());
        match k.as_str() {
            "--addr" => addr = v.parse().ok(),
            "--variant" => {
                variant = VARIANTS
                    .iter()
                    .find(|(n, _)| *n == v)
                    .map(|&(n, x)| (n.to_string(), x))
            }
            "--messages" => messages = v.parse().unwrap_or_else(|_| usage()),
            "--size" => size = v.parse().unwrap_or_else(|_| usage()),
            "--journal" => journal = Some(PathBuf::from(v)),
            _ => usage(),
        }
    }
    let (Some(addr), Some((name, variant))) = (addr, variant) else {
        usage()
    };
    if messages == 0 || size == 0 {
        usage();
    }
    Args {
        addr,
        variant,
        name,
        messages,
        size,
        journal,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let r = match args.next().as_deref() {
        Some("server") => {
            let addr = args
                .next()
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| usage());
            // Never outlive a forgotten run.
            std::thread::spawn(|| {
                std::thread::sleep(Duration::from_secs(600));
                std::process::exit(0);
            });
            server(addr)
        }
        Some("client") => {
            let a = parse_client(args);
            // Bounded: the awaits have timeouts, and this is the backstop.
            std::thread::spawn(|| {
                std::thread::sleep(Duration::from_secs(300));
                eprintln!("reliable client: 300 s passed, exiting");
                std::process::exit(3);
            });
            client(a)
        }
        _ => usage(),
    };
    if let Err(e) = r {
        eprintln!("reliable: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&v, 0.50), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v[..1], 0.99), 1.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
