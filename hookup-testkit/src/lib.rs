//! Adapter-neutral behavioural scenarios.
//!
//! Nothing here names an adapter type. An adapter's test file provides:
//!
//! * a [`Client`] (connect to a URL, with subprotocols) whose sockets
//!   implement [`Socket`] (and, split, [`Reader`]/[`Writer`]), speaking the
//!   neutral [`Msg`]/[`Failure`] vocabulary;
//! * a server bound to `127.0.0.1:0` that serves every path of [`ROUTES`]
//!   with [`serve_route`] (wrapping its own socket type in [`Socket`]),
//!   decides upgrades with [`decide`], answers plain HTTP to unrouted paths
//!   with [`http_answer`], and reports to the [`Probe`];
//! * a second, "limited" server with the same routes and
//!   `max_message_size = 1024`, `handshake_timeout = 300 ms`;
//! * a [`Target`] pointing at both, in the clear or under TLS.
//!
//! Every scenario is `async fn(&Target<C>)`, stops by itself and bounds
//! every wait that could hang with [`within`]. None asserts on durations.
//!
//! The suite runs on any runtime: its own timers ([`sleep`], [`within`])
//! are async-io's and its raw peer is async-io TCP, both executor-neutral;
//! the one thing it asks of the runtime under test is [`Client::spawn`].
//! [`hookup`] adapts adapters built on `hookup-driver`; [`reliable`] has
//! the scenarios of their reliability layer (the client names its runtime
//! through [`reliable::Reliable`]).
//!
//! Both adapters' `tests/adapter.rs` depend on this crate (`publish =
//! false`); [`tokio_adapter`] is hookup-tokio's side, which
//! hookup-async-std's interop scenarios use as well.
#![allow(dead_code, missing_docs, clippy::should_implement_trait)]

pub mod hookup;
pub mod raw;
pub mod reliable;
pub mod tokio_adapter;

pub use reliable::{
    reliable_ack_failed_on_deadline, reliable_acked_round_trip,
    reliable_deliveries_resolved_at_shutdown, reliable_journal_replay,
    reliable_resume_after_connection_cut, reliable_resume_after_peer_dropped,
    reliable_send_waits_at_write_window, reliable_unacked_send_resolved_at_once,
};

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hookup_proto::http::HeaderMap;
use hookup_proto::{CloseCode, CloseFrame, Closed, HandshakeError, ProtocolError};
use tokio::sync::{Mutex, mpsc};

use raw::{OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawConnector};

// ------------------------------------------------------------------ vocabulary

/// A message or surfaced control frame, as every adapter reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    Text(String),
    Binary(Bytes),
    Ping(Bytes),
    Pong {
        payload: Bytes,
        rtt: Option<Duration>,
    },
    Close(Option<CloseFrame>),
}

impl Msg {
    pub fn text(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
    pub fn is_data(&self) -> bool {
        matches!(self, Self::Text(_) | Self::Binary(_))
    }
}

/// What went wrong, as every adapter reports it.
#[derive(Debug)]
pub enum Failure {
    Connect(String),
    Handshake(HandshakeError),
    Protocol(ProtocolError),
    Closed(Box<Closed>),
    Usage(String),
    Io(std::io::Error),
    Rejected(u16),
    Other(String),
}

pub type Res<T> = Result<T, Failure>;

/// A connected WebSocket (either end).
pub trait Socket: Send + Sized + 'static {
    type Reader: Reader;
    type Writer: Writer;
    /// Sends and writes out.
    fn send(&mut self, m: Msg) -> impl Future<Output = Res<()>> + Send;
    /// Queues without writing (unless buffers are full).
    fn feed(&mut self, m: Msg) -> impl Future<Output = Res<()>> + Send;
    fn flush(&mut self) -> impl Future<Output = Res<()>> + Send;
    /// The next message; `None` once closed. Must be cancel-safe.
    fn recv(&mut self) -> impl Future<Output = Option<Res<Msg>>> + Send;
    /// Closes and waits for the end of the closing handshake.
    fn close(&mut self, code: CloseCode, reason: &str) -> impl Future<Output = Res<Closed>> + Send;
    /// How the connection ended, once it has.
    fn closed(&self) -> Option<Closed>;
    fn split(self) -> (Self::Reader, Self::Writer);
}

pub trait Reader: Send + 'static {
    fn recv(&mut self) -> impl Future<Output = Option<Res<Msg>>> + Send;
}

pub trait Writer: Send + 'static {
    fn send(&mut self, m: Msg) -> impl Future<Output = Res<()>> + Send;
    fn close(&mut self, code: CloseCode, reason: &str) -> impl Future<Output = Res<()>> + Send;
}

/// A client socket and what the server's handshake response said.
pub struct Connected<S> {
    pub socket: S,
    pub subprotocol: Option<String>,
    pub headers: HeaderMap,
}

pub trait Client: Send + Sync + 'static {
    type Socket: Socket;
    fn connect(
        &self,
        url: &str,
        protocols: &[&str],
    ) -> impl Future<Output = Res<Connected<Self::Socket>>> + Send;
    /// Starts `f` at once as a task of the runtime under test; the future
    /// returned resolves to its output (and panics if the task panicked).
    fn spawn<F>(&self, f: F) -> impl Future<Output = F::Output> + Send
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
}

/// What a scenario runs against.
pub struct Target<C> {
    pub client: C,
    /// `ws://127.0.0.1:PORT` or `wss://localhost:PORT` (no path).
    pub base: String,
    /// The limited server (`max_message_size = 1024`, 300 ms handshake timeout).
    pub limited_base: String,
    pub raw: RawConnector,
    pub limited_raw: RawConnector,
    pub probe: Arc<Probe>,
}

impl<C: Client> Target<C> {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn connect(&self, path: &str) -> C::Socket {
        match within(self.client.connect(&self.url(path), &[])).await {
            Ok(c) => c.socket,
            Err(e) => panic!("connect {path}: {e:?}"),
        }
    }
}

/// Bounds a wait that could hang (generously: this is no timing assertion).
pub async fn within<F: Future>(f: F) -> F::Output {
    within_for(Duration::from_secs(20), f).await
}

pub async fn within_for<F: Future>(d: Duration, f: F) -> F::Output {
    match timeout(d, f).await {
        Some(v) => v,
        None => panic!("no progress within {d:?}"),
    }
}

/// `f`, or `None` if `d` passes first.
pub async fn timeout<F: Future>(d: Duration, f: F) -> Option<F::Output> {
    use futures_util::future::{Either, select};
    match select(pin!(f), pin!(sleep(d))).await {
        Either::Left((v, _)) => Some(v),
        Either::Right(_) => None,
    }
}

/// Sleeps on async-io's timer (works under every executor).
pub async fn sleep(d: Duration) {
    async_io::Timer::after(d).await;
}

/// Lets other tasks run once.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

/// Scenarios that measure the process's memory run alone: every test of
/// an adapter file holds this lock while it runs, those scenarios for
/// writing.
pub fn test_lock(scenario: &str) -> TestLock {
    static LOCK: std::sync::RwLock<()> = std::sync::RwLock::new(());
    if matches!(
        scenario,
        "ping_flood_memory_bounded" | "backpressure_on_slow_reader"
    ) {
        TestLock::Alone(LOCK.write().unwrap_or_else(|e| e.into_inner()))
    } else {
        TestLock::Shared(LOCK.read().unwrap_or_else(|e| e.into_inner()))
    }
}

/// See [`test_lock`].
pub enum TestLock {
    Alone(std::sync::RwLockWriteGuard<'static, ()>),
    Shared(std::sync::RwLockReadGuard<'static, ()>),
}

/// Calls `$m!` with the name of every scenario that each adapter runs
/// (so that the list is written once).
#[macro_export]
macro_rules! all_scenarios {
    ($m:ident) => {
        $m!(
            handshake_subprotocol_and_header,
            handshake_reject_custom_status,
            handshake_unknown_path_404,
            plain_get_to_route_426,
            plain_http_handler,
            malformed_handshake_400,
            wrong_version_426,
            handshake_timeout_closes,
            echo_text,
            echo_binary,
            echo_empty,
            echo_1mib,
            echo_10mib,
            pipelined_10k,
            fragmented_from_raw_client,
            client_ping_gets_pong_with_rtt,
            server_ping_raw_client_answers,
            server_ping_client_answers,
            ping_answered_while_only_writing,
            client_close_code_seen_by_server,
            server_close_seen_by_client,
            abrupt_disconnect_reported,
            message_too_big_1009,
            unmasked_frame_1002,
            backpressure_on_slow_reader,
            reply_flushed_without_further_recv,
            split_halves,
            recv_is_cancel_safe,
            connect_refused,
            reliable_acked_round_trip,
            reliable_ack_failed_on_deadline,
            reliable_resume_after_connection_cut,
            reliable_journal_replay,
            reliable_deliveries_resolved_at_shutdown,
            reliable_unacked_send_resolved_at_once,
            reliable_send_waits_at_write_window,
            reliable_resume_after_peer_dropped,
        );
    };
}

/// Calls `$m!` with the scenarios in which the adapter's client talks to
/// the server under test (no raw peer): the interop set, for a client of
/// one adapter against a server of another.
#[macro_export]
macro_rules! interop_scenarios {
    ($m:ident) => {
        $m!(
            handshake_subprotocol_and_header,
            handshake_unknown_path_404,
            echo_text,
            echo_binary,
            echo_empty,
            echo_1mib,
            echo_10mib,
            pipelined_10k,
            client_ping_gets_pong_with_rtt,
            server_ping_client_answers,
            client_close_code_seen_by_server,
            server_close_seen_by_client,
            message_too_big_1009,
            split_halves,
            recv_is_cancel_safe,
            reliable_acked_round_trip,
            reliable_ack_failed_on_deadline,
            reliable_resume_after_connection_cut,
        );
    };
}

// ------------------------------------------------------------------ server side

/// What server handlers saw, in order.
#[derive(Debug)]
pub enum ServerEvent {
    /// A non-data item from `recv` (ping, pong, close).
    Got(Msg),
    /// `recv` returned an error.
    Error(Failure),
    /// `recv` returned `None`.
    End,
    /// The result of the handler's own `close`.
    CloseResult(Res<Closed>),
}

/// Shared between the test and the server's handlers.
pub struct Probe {
    tx: mpsc::UnboundedSender<ServerEvent>,
    rx: Mutex<mpsc::UnboundedReceiver<ServerEvent>>,
    /// `/flood`: messages whose `send` completed.
    pub flood_sent: AtomicUsize,
    /// `/flood`: the handler is inside `send`.
    pub flood_in_send: AtomicBool,
    /// `/flood`: the handler stopped (send failed or the cap was reached).
    pub flood_done: AtomicBool,
}

impl Default for Probe {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Mutex::new(rx),
            flood_sent: AtomicUsize::new(0),
            flood_in_send: AtomicBool::new(false),
            flood_done: AtomicBool::new(false),
        }
    }
}

impl Probe {
    pub fn report(&self, ev: ServerEvent) {
        let _ = self.tx.send(ev);
    }

    /// A server event already reported, if any.
    pub async fn try_next(&self) -> Option<ServerEvent> {
        self.rx.lock().await.try_recv().ok()
    }

    /// The next server event (bounded wait).
    pub async fn next(&self) -> ServerEvent {
        within(async { self.rx.lock().await.recv().await.expect("probe open") }).await
    }
}

/// Paths every server under test routes to [`serve_route`].
pub const ROUTES: &[&str] = &[
    "/echo",
    "/reject",
    "/server-close",
    "/server-ping",
    "/chatty",
    "/flood",
    "/drip",
    "/reply-once",
];

pub const SUBPROTOCOL: &str = "v2.hookup";
pub const EXTRA_HEADER: (&str, &str) = ("x-hookup-test", "accepted");
pub const REJECT_STATUS: u16 = 403;
pub const REJECT_BODY: &str = "go away\n";
pub const PAGE: &str = "<!doctype html><title>hookup test page</title>\n";
pub const FLOOD_MESSAGE: usize = 64 << 10;
/// 500 MB worth of flood messages: the handler stops there.
pub const FLOOD_CAP: usize = 500_000_000 / FLOOD_MESSAGE;
pub const DRIP_COUNT: usize = 1000;

/// The server's decision on an upgrade request to a routed path.
pub enum Decision {
    Accept {
        subprotocol: Option<String>,
        headers: Vec<(&'static str, &'static str)>,
    },
    Reject {
        status: u16,
        body: &'static str,
    },
}

/// The `on_request` policy of the servers under test.
pub fn decide(path: &str, offered: &[String]) -> Decision {
    if path == "/reject" {
        return Decision::Reject {
            status: REJECT_STATUS,
            body: REJECT_BODY,
        };
    }
    if offered.iter().any(|p| p == reliable::SUBPROTOCOL) {
        return Decision::Accept {
            subprotocol: Some(reliable::SUBPROTOCOL.to_owned()),
            headers: vec![],
        };
    }
    if offered.iter().any(|p| p == SUBPROTOCOL) {
        Decision::Accept {
            subprotocol: Some(SUBPROTOCOL.to_owned()),
            headers: vec![EXTRA_HEADER],
        }
    } else {
        Decision::Accept {
            subprotocol: None,
            headers: vec![],
        }
    }
}

/// The plain-HTTP answer for unrouted paths: (status, content type, body).
pub fn http_answer(path: &str) -> (u16, &'static str, &'static str) {
    match path {
        "/page" => (200, "text/html; charset=utf-8", PAGE),
        _ => (404, "text/plain; charset=utf-8", "nothing here\n"),
    }
}

/// Serves one accepted connection on a routed path.
pub async fn serve_route<S: Socket>(path: &str, ws: S, probe: Arc<Probe>) {
    match path {
        "/server-close" => server_close(ws, probe).await,
        "/server-ping" => server_ping(ws, probe).await,
        "/chatty" => chatty(ws).await,
        "/flood" => flood(ws, probe).await,
        "/drip" => drip(ws).await,
        "/reply-once" => reply_once(ws).await,
        _ => echo(ws, probe).await,
    }
}

/// Echoes data messages; reports everything else.
async fn echo<S: Socket>(mut ws: S, probe: Arc<Probe>) {
    loop {
        match ws.recv().await {
            Some(Ok(m)) if m.is_data() => {
                if ws.send(m).await.is_err() {
                    // The stream reports how it ended.
                    continue;
                }
            }
            Some(Ok(m)) => probe.report(ServerEvent::Got(m)),
            Some(Err(e)) => probe.report(ServerEvent::Error(e)),
            None => {
                probe.report(ServerEvent::End);
                return;
            }
        }
    }
}

async fn server_close<S: Socket>(mut ws: S, probe: Arc<Probe>) {
    let r = ws.close(CloseCode(4001), "server bye").await;
    probe.report(ServerEvent::CloseResult(r));
}

/// Pings the client, then echoes and reports like `/echo`.
async fn server_ping<S: Socket>(mut ws: S, probe: Arc<Probe>) {
    if ws
        .send(Msg::Ping(Bytes::from_static(b"srv-ping")))
        .await
        .is_ok()
    {
        echo(ws, probe).await;
    }
}

/// Only writes: a tick every 2 ms, never `recv`.
async fn chatty<S: Socket>(mut ws: S) {
    for i in 0..10_000 {
        if ws.send(Msg::Text(format!("tick {i}"))).await.is_err() {
            return;
        }
        sleep(Duration::from_millis(2)).await;
    }
}

/// Only writes 64 KiB messages, as fast as `send` lets it.
async fn flood<S: Socket>(mut ws: S, probe: Arc<Probe>) {
    let payload = Bytes::from(vec![0x5a; FLOOD_MESSAGE]);
    for _ in 0..FLOOD_CAP {
        probe.flood_in_send.store(true, Ordering::SeqCst);
        let r = ws.send(Msg::Binary(payload.clone())).await;
        probe.flood_in_send.store(false, Ordering::SeqCst);
        if r.is_err() {
            break;
        }
        probe.flood_sent.fetch_add(1, Ordering::SeqCst);
    }
    probe.flood_done.store(true, Ordering::SeqCst);
}

/// A tiny deterministic PRNG (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The `i`th message of `/drip`: numbered, every 50th one 100 KiB long so
/// that it spans several reads.
pub fn drip_message(i: usize) -> String {
    let head = format!("drip {i:04}");
    if i % 50 == 7 {
        format!("{head} {}", "x".repeat(100 << 10))
    } else {
        head
    }
}

/// Sends [`DRIP_COUNT`] messages at random intervals (0–2 ms), then closes.
async fn drip<S: Socket>(mut ws: S) {
    let mut rng = Rng::new(0x00de_c0de);
    for i in 0..DRIP_COUNT {
        match rng.below(4) {
            0 => sleep(Duration::from_millis(rng.below(3))).await,
            1 => yield_now().await,
            _ => {}
        }
        if ws.send(Msg::Text(drip_message(i))).await.is_err() {
            return;
        }
    }
    let _ = ws.close(CloseCode::NORMAL, "drained").await;
}

/// Receives one message, answers it, then stays busy without touching the
/// socket (as a handler awaiting a database would).
async fn reply_once<S: Socket>(mut ws: S) {
    if let Some(Ok(m)) = ws.recv().await {
        let _ = ws.send(m).await;
        sleep(Duration::from_secs(30)).await;
    }
}

// ------------------------------------------------------------------ helpers

fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect::<Vec<u8>>()
        .into()
}

async fn recv_one<S: Socket>(ws: &mut S) -> Msg {
    match within(ws.recv()).await {
        Some(Ok(m)) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// The next data message, skipping control frames.
async fn recv_data<S: Socket>(ws: &mut S) -> Msg {
    loop {
        let m = recv_one(ws).await;
        if m.is_data() {
            return m;
        }
    }
}

async fn echo_roundtrip<S: Socket>(ws: &mut S, m: Msg) {
    within(ws.send(m.clone())).await.expect("send");
    let got = recv_data(ws).await;
    assert!(
        got == m,
        "echo differs ({} vs {} bytes)",
        len(&got),
        len(&m)
    );
}

fn len(m: &Msg) -> usize {
    match m {
        Msg::Text(t) => t.len(),
        Msg::Binary(b) | Msg::Ping(b) | Msg::Pong { payload: b, .. } => b.len(),
        Msg::Close(_) => 0,
    }
}

/// Closes cleanly from the client and checks the outcome.
async fn close_clean<S: Socket>(ws: &mut S) {
    let closed = within(ws.close(CloseCode::NORMAL, "done"))
        .await
        .expect("close");
    assert!(closed.clean, "unclean close: {closed:?}");
}

/// Skips server events until `pred` matches one (bounded).
async fn expect_event(probe: &Probe, what: &str, pred: impl Fn(&ServerEvent) -> bool) {
    loop {
        let ev = probe.next().await;
        if pred(&ev) {
            return;
        }
        eprintln!("(skipping server event while waiting for {what}: {ev:?})");
    }
}

async fn raw_answer(raw: &RawConnector, request: &[u8]) -> (raw::Head, Vec<u8>) {
    let mut c = raw.connect().await;
    c.write(request).await;
    let bytes = within(c.read_to_end()).await;
    raw::split_response(&bytes)
}

// ------------------------------------------------------------------ handshake

/// Subprotocol chosen by `on_request` and an extra response header.
pub async fn handshake_subprotocol_and_header<C: Client>(t: &Target<C>) {
    let c = within(
        t.client
            .connect(&t.url("/echo"), &["v1.hookup", SUBPROTOCOL]),
    )
    .await
    .expect("connect");
    assert_eq!(c.subprotocol.as_deref(), Some(SUBPROTOCOL));
    assert_eq!(
        c.headers.get(EXTRA_HEADER.0).map(|v| v.as_bytes()),
        Some(EXTRA_HEADER.1.as_bytes())
    );
    let mut ws = c.socket;
    echo_roundtrip(&mut ws, Msg::text("after handshake")).await;
    close_clean(&mut ws).await;

    // Without the subprotocol offered: none chosen, no extra header.
    let c = within(t.client.connect(&t.url("/echo"), &["v1.hookup"]))
        .await
        .expect("connect");
    assert_eq!(c.subprotocol, None);
    assert!(c.headers.get(EXTRA_HEADER.0).is_none());
}

/// `on_request` rejects with a custom status and body.
pub async fn handshake_reject_custom_status<C: Client>(t: &Target<C>) {
    match within(t.client.connect(&t.url("/reject"), &[])).await {
        Err(Failure::Handshake(HandshakeError::Status(s))) => assert_eq!(s, REJECT_STATUS),
        Err(e) => panic!("wrong error: {e:?}"),
        Ok(_) => panic!("rejected request connected"),
    }
    let (head, body) = raw_answer(&t.raw, raw::upgrade_request("/reject", 13).as_bytes()).await;
    assert_eq!(head.status, REJECT_STATUS);
    assert_eq!(body, REJECT_BODY.as_bytes());
}

/// An upgrade to a path without a route: 404.
pub async fn handshake_unknown_path_404<C: Client>(t: &Target<C>) {
    match within(t.client.connect(&t.url("/nowhere"), &[])).await {
        Err(Failure::Handshake(HandshakeError::Status(404))) => {}
        Err(e) => panic!("wrong error: {e:?}"),
        Ok(_) => panic!("unrouted path connected"),
    }
}

/// Plain HTTP GET to a WebSocket route: 426 Upgrade Required.
pub async fn plain_get_to_route_426<C: Client>(t: &Target<C>) {
    let (head, _) = raw_answer(
        &t.raw,
        b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(head.status, 426, "{head:?}");
    assert_eq!(head.header("sec-websocket-version"), Some("13"));
    assert_eq!(
        head.header("upgrade")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("websocket")
    );
}

/// Plain HTTP to unrouted paths goes to the server's HTTP handler.
pub async fn plain_http_handler<C: Client>(t: &Target<C>) {
    let (head, body) = raw_answer(
        &t.raw,
        b"GET /page HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("content-type"), Some(http_answer("/page").1));
    assert_eq!(body, PAGE.as_bytes());
    if let Some(n) = head.header("content-length") {
        assert_eq!(n.parse::<usize>().unwrap(), PAGE.len());
    }
    let (head, _) = raw_answer(&t.raw, b"GET /missing HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(head.status, 404);
}

/// Garbage and incomplete upgrade requests: 400, then the socket closes.
pub async fn malformed_handshake_400<C: Client>(t: &Target<C>) {
    for req in [
        &b"THIS IS NOT HTTP\r\n\r\n"[..],
        b"GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
        b"GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ] {
        // `raw_answer` reads to EOF: the server closed the socket.
        let (head, _) = raw_answer(&t.raw, req).await;
        assert_eq!(
            head.status,
            400,
            "for {:?}: {head:?}",
            String::from_utf8_lossy(req)
        );
    }
}

/// `Sec-WebSocket-Version: 8`: 426 naming the supported version.
pub async fn wrong_version_426<C: Client>(t: &Target<C>) {
    let (head, _) = raw_answer(&t.raw, raw::upgrade_request("/echo", 8).as_bytes()).await;
    assert_eq!(head.status, 426, "{head:?}");
    assert_eq!(head.header("sec-websocket-version"), Some("13"));
}

/// Half a request, then silence: the server gives up after its handshake
/// timeout and closes the socket.
pub async fn handshake_timeout_closes<C: Client>(t: &Target<C>) {
    let mut c = t.limited_raw.connect().await;
    c.write(b"GET /echo HTTP/1.1\r\nHost: loc").await;
    let bytes = within(c.read_to_end()).await;
    assert!(
        !bytes.is_empty(),
        "the connection closed without a 408 answer"
    );
    let (head, _) = raw::split_response(&bytes);
    assert_eq!(head.status, 408, "{head:?}");
}

// ------------------------------------------------------------------ messages

pub async fn echo_text<C: Client>(t: &Target<C>) {
    let mut ws = t.connect("/echo").await;
    echo_roundtrip(&mut ws, Msg::text("hello")).await;
    echo_roundtrip(&mut ws, Msg::text("héllo wörld ☃ 🎉 — ünïcödé")).await;
    close_clean(&mut ws).await;
}

pub async fn echo_binary<C: Client>(t: &Target<C>) {
    let mut ws = t.connect("/echo").await;
    echo_roundtrip(&mut ws, Msg::Binary((0..=255u8).collect::<Vec<_>>().into())).await;
    echo_roundtrip(&mut ws, Msg::Binary(pattern(70_000, 3))).await;
    close_clean(&mut ws).await;
}

pub async fn echo_empty<C: Client>(t: &Target<C>) {
    let mut ws = t.connect("/echo").await;
    echo_roundtrip(&mut ws, Msg::text("")).await;
    echo_roundtrip(&mut ws, Msg::Binary(Bytes::new())).await;
    close_clean(&mut ws).await;
}

pub async fn echo_1mib<C: Client>(t: &Target<C>) {
    let mut ws = t.connect("/echo").await;
    echo_roundtrip(&mut ws, Msg::Binary(pattern(1 << 20, 1))).await;
    let text: String = "abcdefghijklmnopqrstuvwxyzé".repeat((1 << 20) / 28);
    echo_roundtrip(&mut ws, Msg::Text(text)).await;
    close_clean(&mut ws).await;
}

pub async fn echo_10mib<C: Client>(t: &Target<C>) {
    let mut ws = t.connect("/echo").await;
    echo_roundtrip(&mut ws, Msg::Binary(pattern(10 << 20, 2))).await;
    close_clean(&mut ws).await;
}

/// 10 000 small messages queued with `feed`, one `flush`, all echoed in order.
pub async fn pipelined_10k<C: Client>(t: &Target<C>) {
    const N: usize = 10_000;
    let mut ws = t.connect("/echo").await;
    for i in 0..N {
        within(ws.feed(Msg::Text(format!("m{i}"))))
            .await
            .expect("feed");
    }
    within(ws.flush()).await.expect("flush");
    for i in 0..N {
        let m = recv_data(&mut ws).await;
        assert_eq!(m, Msg::Text(format!("m{i}")), "message {i} out of order");
    }
    close_clean(&mut ws).await;
}

/// Fragmented messages from a raw client, with a ping between fragments and
/// the bytes dribbled out in small writes, come back reassembled.
pub async fn fragmented_from_raw_client<C: Client>(t: &Target<C>) {
    let mut c = t.raw.upgrade("/echo").await;
    let mut wire = Vec::new();
    // Text in three fragments with a ping in the middle.
    wire.extend(raw::client_frame(false, OP_TEXT, b"Hel"));
    wire.extend(raw::client_frame(false, OP_CONT, b"lo, "));
    wire.extend(raw::client_frame(true, OP_PING, b"mid"));
    wire.extend(raw::client_frame(true, OP_CONT, b"world"));
    // Binary in three fragments, one of them empty.
    wire.extend(raw::client_frame(false, OP_BINARY, &[1, 2, 3]));
    wire.extend(raw::client_frame(false, OP_CONT, &[]));
    wire.extend(raw::client_frame(true, OP_CONT, &[4, 5]));
    // Multi-byte UTF-8 split across one-byte fragments.
    let snow = "é☃🎉".as_bytes();
    for (i, b) in snow.iter().enumerate() {
        let op = if i == 0 { OP_TEXT } else { OP_CONT };
        wire.extend(raw::client_frame(i == snow.len() - 1, op, &[*b]));
    }
    for chunk in wire.chunks(5) {
        c.write(chunk).await;
    }
    let mut got = Vec::new();
    while got.len() < 4 {
        let f = within(c.read_frame()).await.expect("frame");
        assert!(!f.masked, "server frames are not masked");
        got.push(f);
    }
    let pong = got.iter().position(|f| f.opcode == OP_PONG).expect("pong");
    assert_eq!(got.remove(pong).payload, b"mid");
    assert!(got.iter().all(|f| f.fin), "echoes come back whole");
    assert_eq!(
        (got[0].opcode, &got[0].payload[..]),
        (OP_TEXT, &b"Hello, world"[..])
    );
    assert_eq!(
        (got[1].opcode, &got[1].payload[..]),
        (OP_BINARY, &[1, 2, 3, 4, 5][..])
    );
    assert_eq!((got[2].opcode, &got[2].payload[..]), (OP_TEXT, snow));
    c.send_frame(true, OP_CLOSE, &1000u16.to_be_bytes()).await;
    let f = within(c.read_frame()).await.expect("close echo");
    assert_eq!(f.close_code(), Some(1000));
    assert_eq!(within(c.read_frame()).await, None);
}

// ------------------------------------------------------------------ ping/pong

/// A client ping yields a pong with the payload and a round-trip time.
pub async fn client_ping_gets_pong_with_rtt<C: Client>(t: &Target<C>) {
    let mut ws = t.connect("/echo").await;
    within(ws.send(Msg::Ping(Bytes::from_static(b"are you there"))))
        .await
        .expect("ping");
    match recv_one(&mut ws).await {
        Msg::Pong { payload, rtt } => {
            assert_eq!(&payload[..], b"are you there");
            assert!(rtt.is_some(), "pong to our ping has an rtt");
        }
        other => panic!("unexpected {other:?}"),
    }
    close_clean(&mut ws).await;
}

/// The server pings a raw client that answers; the server sees the pong
/// with a round-trip time.
pub async fn server_ping_raw_client_answers<C: Client>(t: &Target<C>) {
    let mut c = t.raw.upgrade("/server-ping").await;
    let f = within(c.read_frame()).await.expect("ping");
    assert_eq!((f.opcode, &f.payload[..]), (OP_PING, &b"srv-ping"[..]));
    c.send_frame(true, OP_PONG, &f.payload).await;
    expect_event(&t.probe, "pong", |ev| {
        matches!(ev, ServerEvent::Got(Msg::Pong { payload, rtt: Some(_) }) if &payload[..] == b"srv-ping")
    })
    .await;
    c.send_frame(true, OP_CLOSE, &1000u16.to_be_bytes()).await;
    assert_eq!(
        within(c.read_frame()).await.unwrap().close_code(),
        Some(1000)
    );
}

/// The server pings the adapter's client, which answers by itself.
pub async fn server_ping_client_answers<C: Client>(t: &Target<C>) {
    let mut ws = t.connect("/server-ping").await;
    match recv_one(&mut ws).await {
        Msg::Ping(p) => assert_eq!(&p[..], b"srv-ping"),
        other => panic!("expected the server's ping, got {other:?}"),
    }
    // The automatic pong leaves with the client's next I/O: keep receiving
    // (as any reading application does) until the server reports it.
    let pong = expect_event(&t.probe, "pong", |ev| {
        matches!(ev, ServerEvent::Got(Msg::Pong { rtt: Some(_), .. }))
    });
    tokio::select! {
        _ = pong => {}
        item = ws.recv() => panic!("unexpected {item:?}"),
    }
    close_clean(&mut ws).await;
}

/// A server handler that only writes (never `recv`) still answers pings.
pub async fn ping_answered_while_only_writing<C: Client>(t: &Target<C>) {
    let mut c = t.raw.upgrade("/chatty").await;
    // Let the handler get into its send loop first.
    let f = within(c.read_frame()).await.expect("tick");
    assert_eq!(f.opcode, OP_TEXT);
    c.send_frame(true, OP_PING, b"still there?").await;
    let mut ticks = 0;
    loop {
        let f = within_for(Duration::from_secs(10), c.read_frame())
            .await
            .expect("server went away without answering the ping");
        match f.opcode {
            OP_TEXT => ticks += 1,
            OP_PONG => {
                assert_eq!(f.payload, b"still there?");
                break;
            }
            op => panic!("unexpected opcode {op}"),
        }
    }
    eprintln!("pong after {ticks} ticks");
}

// ------------------------------------------------------------------ closing

/// The client closes with 4000 "bye": the server's stream yields that close
/// frame, then ends; the client's `close` reports a clean close.
pub async fn client_close_code_seen_by_server<C: Client>(t: &Target<C>) {
    let mut ws = t.connect("/echo").await;
    echo_roundtrip(&mut ws, Msg::text("before close")).await;
    let closed = within(ws.close(CloseCode(4000), "bye"))
        .await
        .expect("close");
    assert!(closed.clean, "{closed:?}");
    assert_eq!(closed.sent.as_ref().map(|f| f.code), Some(CloseCode(4000)));
    assert_eq!(
        closed.received.as_ref().map(|f| f.code),
        Some(CloseCode(4000))
    );
    assert_eq!(closed.error, None);
    match t.probe.next().await {
        ServerEvent::Got(Msg::Close(Some(f))) => {
            assert_eq!((f.code, f.reason.as_str()), (CloseCode(4000), "bye"));
        }
        other => panic!("server saw {other:?}"),
    }
    assert!(matches!(t.probe.next().await, ServerEvent::End));
    // Closed is final: sending fails, the stream stays ended.
    assert!(within(ws.send(Msg::text("late"))).await.is_err());
    assert!(within(ws.recv()).await.is_none());
    assert!(ws.closed().is_some_and(|c| c.clean));
}

/// The server closes with 4001: the client's stream yields the frame, then
/// ends; the server's `close` reports a clean close.
pub async fn server_close_seen_by_client<C: Client>(t: &Target<C>) {
    let mut ws = t.connect("/server-close").await;
    match recv_one(&mut ws).await {
        Msg::Close(Some(f)) => {
            assert_eq!((f.code, f.reason.as_str()), (CloseCode(4001), "server bye"));
        }
        other => panic!("expected the server's close, got {other:?}"),
    }
    assert!(within(ws.recv()).await.is_none());
    let closed = ws.closed().expect("closed");
    assert!(closed.clean, "{closed:?}");
    match t.probe.next().await {
        ServerEvent::CloseResult(Ok(c)) => {
            assert!(c.clean, "server side: {c:?}");
            assert_eq!(c.received.map(|f| f.code), Some(CloseCode(4001)));
        }
        other => panic!("server close: {other:?}"),
    }

    // The same, observed through the client's `close` instead of `recv`.
    let mut ws = t.connect("/server-close").await;
    let closed = within(ws.close(CloseCode::NORMAL, ""))
        .await
        .expect("close");
    assert!(closed.clean, "{closed:?}");
    assert_eq!(closed.received.map(|f| f.code), Some(CloseCode(4001)));
}

/// A peer that vanishes without a close frame: the server's stream reports
/// an error (abnormal closure), then ends.
pub async fn abrupt_disconnect_reported<C: Client>(t: &Target<C>) {
    let c = t.raw.upgrade("/echo").await;
    drop(c);
    match t.probe.next().await {
        ServerEvent::Error(Failure::Closed(c)) => {
            assert!(!c.clean);
            assert_eq!(c.code(), CloseCode::ABNORMAL);
        }
        ServerEvent::Error(Failure::Io(_)) => {}
        other => panic!("server saw {other:?}"),
    }
    assert!(matches!(t.probe.next().await, ServerEvent::End));
}

// ------------------------------------------------------------------ limits

/// A message over the server's `max_message_size`: closed with 1009.
pub async fn message_too_big_1009<C: Client>(t: &Target<C>) {
    let url = format!("{}/echo", t.limited_base);
    let mut ws = within(t.client.connect(&url, &[]))
        .await
        .expect("connect")
        .socket;
    echo_roundtrip(&mut ws, Msg::Binary(pattern(1000, 9))).await;
    // The send itself may fail if the server's close arrives first.
    let _ = within(ws.send(Msg::Binary(pattern(2048, 9)))).await;
    let mut code = None;
    while let Some(item) = within(ws.recv()).await {
        if let Ok(Msg::Close(f)) = item {
            code = f.map(|f| f.code);
        }
    }
    let code = code.or_else(|| ws.closed().and_then(|c| c.received).map(|f| f.code));
    assert_eq!(code, Some(CloseCode::MESSAGE_TOO_BIG));
    expect_event(&t.probe, "MessageTooLarge", |ev| {
        matches!(
            ev,
            ServerEvent::Error(Failure::Protocol(ProtocolError::MessageTooLarge { .. }))
        )
    })
    .await;
}

/// An unmasked frame from a client: close 1002, then EOF.
pub async fn unmasked_frame_1002<C: Client>(t: &Target<C>) {
    let mut c = t.raw.upgrade("/echo").await;
    c.write(&raw::encode_frame(true, OP_TEXT, b"naked", None))
        .await;
    let f = within(c.read_frame()).await.expect("close frame");
    assert_eq!(f.close_code(), Some(1002), "{f:?}");
    assert_eq!(
        within(c.read_frame()).await,
        None,
        "EOF after the close frame"
    );
    expect_event(&t.probe, "UnmaskedFrame", |ev| {
        matches!(
            ev,
            ServerEvent::Error(Failure::Protocol(ProtocolError::UnmaskedFrame))
        )
    })
    .await;
}

fn rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb << 10)
}

/// A peer that never reads: the server handler's `send` stops completing
/// once the socket buffers are full (backpressure), far below 500 MB, and
/// memory stays flat. Once the peer reads, sending resumes.
pub async fn backpressure_on_slow_reader<C: Client>(t: &Target<C>) {
    let rss_before = rss_bytes();
    let mut c = t.raw.upgrade("/flood").await;
    let probe = &t.probe;
    // Wait until the count has stopped moving with the handler inside `send`.
    let stalled_at = within_for(Duration::from_secs(30), async {
        let mut last = usize::MAX;
        let mut still = 0;
        loop {
            sleep(Duration::from_millis(100)).await;
            let n = probe.flood_sent.load(Ordering::SeqCst);
            assert!(
                !probe.flood_done.load(Ordering::SeqCst),
                "flood handler finished: send never blocked ({n} messages)"
            );
            if n == last && n > 0 && probe.flood_in_send.load(Ordering::SeqCst) {
                still += 1;
                if still == 5 {
                    return n;
                }
            } else {
                still = 0;
            }
            last = n;
        }
    })
    .await;
    let buffered = stalled_at * FLOOD_MESSAGE;
    eprintln!("send blocked after {stalled_at} messages ({buffered} bytes)");
    assert!(stalled_at < FLOOD_CAP, "send never blocked");
    assert!(
        buffered < 64 << 20,
        "{buffered} bytes accepted by a peer that does not read"
    );
    if let (Some(before), Some(after)) = (rss_before, rss_bytes()) {
        let grown = after.saturating_sub(before);
        eprintln!("RSS grew by {} KiB", grown >> 10);
        // Other tests run in this process too: only catch an explosion.
        assert!(grown < 400 << 20, "RSS grew by {grown} bytes");
    }
    // Reading unblocks the sender.
    within(async {
        loop {
            c.drain(4 << 20).await;
            if probe.flood_sent.load(Ordering::SeqCst) > stalled_at {
                break;
            }
        }
    })
    .await;
}

/// A peer that sends pings and never reads the pongs: the server's memory
/// must not grow with them (pongs may be coalesced, RFC 6455 §5.5.3, or
/// reading may stop).
pub async fn ping_flood_memory_bounded<C: Client>(t: &Target<C>) {
    let before = rss_bytes();
    let mut c = t.raw.upgrade("/echo").await;
    let ping = raw::client_frame(true, OP_PING, &[7; 125]);
    let batch: Vec<u8> = ping
        .iter()
        .cycle()
        .take(ping.len() * 1000)
        .copied()
        .collect();
    let mut sent = 0usize;
    for _ in 0..800 {
        // Writes that stop moving mean the server applies backpressure.
        match timeout(Duration::from_secs(3), c.write(&batch)).await {
            Some(()) => sent += batch.len(),
            None => break,
        }
    }
    let pings_sent = sent / ping.len();
    let mut pings = 0usize;
    if sent == 800 * batch.len() {
        // The server kept reading: a close frame behind the pings tells
        // when it has processed every one of them (the pongs are still
        // unread by this peer).
        c.write(&raw::client_frame(true, OP_CLOSE, &1000u16.to_be_bytes()))
            .await;
        loop {
            match t.probe.next().await {
                ServerEvent::Got(Msg::Ping(_)) => pings += 1,
                ServerEvent::Got(Msg::Close(_)) => break,
                other => panic!("after {pings} pings the server saw {other:?}"),
            }
        }
        assert_eq!(pings, pings_sent, "pings processed");
    } else {
        // The server stopped reading (its unread pongs filled the socket):
        // what it holds now is all it will hold. It must have taken pings
        // before stopping, or nothing was tested.
        while let Some(ev) = t.probe.try_next().await {
            match ev {
                ServerEvent::Got(Msg::Ping(_)) => pings += 1,
                other => panic!("after {pings} pings the server saw {other:?}"),
            }
        }
        assert!(pings > 0, "the server took none of {pings_sent} pings");
    }
    eprintln!("{pings} of {pings_sent} pings processed");
    if let (Some(before), Some(after)) = (before, rss_bytes()) {
        let grown = after.saturating_sub(before);
        eprintln!(
            "{sent} bytes of pings sent; RSS grew by {} KiB",
            grown >> 10
        );
        assert!(grown < 32 << 20, "RSS grew by {grown} bytes");
    }
}

/// A handler that receives one message while the peer's next one is already
/// buffered, answers, then does something else: the answer must still leave.
pub async fn reply_flushed_without_further_recv<C: Client>(t: &Target<C>) {
    let mut c = t.raw.upgrade("/reply-once").await;
    let mut two = raw::client_frame(true, OP_TEXT, b"first");
    two.extend(raw::client_frame(true, OP_TEXT, b"second"));
    c.write(&two).await;
    let f = within_for(Duration::from_secs(10), c.read_frame())
        .await
        .expect("reply");
    assert_eq!((f.opcode, &f.payload[..]), (OP_TEXT, &b"first"[..]));
}

// ------------------------------------------------------------------ concurrency

/// Reader and writer halves in two tasks: 1000 messages out, 1000 echoes
/// in, then the write half closes.
pub async fn split_halves<C: Client>(t: &Target<C>) {
    const N: usize = 1000;
    let ws = t.connect("/echo").await;
    let (mut rd, mut wr) = ws.split();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let writer = t.client.spawn(async move {
        for i in 0..N {
            wr.send(Msg::Text(format!("split {i}")))
                .await
                .expect("send");
        }
        done_rx.await.expect("reader finished");
        wr.close(CloseCode::NORMAL, "split done")
            .await
            .expect("close");
    });
    let reader = t.client.spawn(async move {
        let mut done_tx = Some(done_tx);
        let mut n = 0;
        while let Some(item) = rd.recv().await {
            match item.expect("recv") {
                Msg::Text(s) => {
                    assert_eq!(s, format!("split {n}"));
                    n += 1;
                    if n == N {
                        let _ = done_tx.take().unwrap().send(());
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        n
    });
    within(writer).await;
    assert_eq!(within(reader).await, N);
    match t.probe.next().await {
        ServerEvent::Got(Msg::Close(Some(f))) => assert_eq!(f.reason, "split done"),
        other => panic!("server saw {other:?}"),
    }
}

/// `recv` raced against a short sleep in `select!` (so that it is dropped
/// again and again, mid-message too) loses nothing and reorders nothing.
pub async fn recv_is_cancel_safe<C: Client>(t: &Target<C>) {
    let mut ws = t.connect("/drip").await;
    let mut got = 0;
    let mut timeouts = 0u64;
    within_for(Duration::from_secs(40), async {
        loop {
            tokio::select! {
                item = ws.recv() => match item {
                    Some(Ok(Msg::Text(s))) => {
                        assert!(s == drip_message(got), "message {got} lost or reordered");
                        got += 1;
                    }
                    Some(Ok(Msg::Close(_))) | None => break,
                    Some(other) => panic!("unexpected {other:?}"),
                },
                _ = sleep(Duration::from_micros(300)) => timeouts += 1,
            }
        }
    })
    .await;
    eprintln!("{timeouts} recv futures dropped");
    assert_eq!(got, DRIP_COUNT);
    // The drip pauses (up to 2 ms) before about a sixth of its messages,
    // longer than the race's 300 µs sleep: recv futures were dropped, or
    // nothing was tested.
    assert!(timeouts > 0, "no recv future was ever dropped");
    assert!(ws.closed().is_some_and(|c| c.clean));
}

// ------------------------------------------------------------------ connecting

/// Nothing listening: a connect error, not a handshake error.
pub async fn connect_refused<C: Client>(t: &Target<C>) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let scheme = t.base.split("://").next().unwrap();
    let host = if scheme == "wss" {
        "localhost"
    } else {
        "127.0.0.1"
    };
    match within(
        t.client
            .connect(&format!("{scheme}://{host}:{port}/echo"), &[]),
    )
    .await
    {
        Err(Failure::Connect(msg)) => assert!(!msg.is_empty()),
        Err(e) => panic!("wrong error: {e:?}"),
        Ok(_) => panic!("connected to a closed port"),
    }
}
