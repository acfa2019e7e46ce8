//! Reliability scenarios (`hookup.v1` sessions): the adapter's
//! `ReliableClient` against `ReliablePeer`s on the server under test.
//!
//! Both adapters expose the same types, `hookup_driver::reliable`'s with
//! their runtime fixed, so this file is generic over that runtime: an
//! adapter's test client names it through [`Reliable`]. The servers under
//! test serve [`ROUTES`] with [`serve`] (registered by `hookup_server!`);
//! `decide` accepts [`SUBPROTOCOL`] wherever it is offered.

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hookup_driver::reliable::{
    DeliveryOutcome, Finished, ReliableClient, ReliableConfig, ReliableEvent, ReliablePeer,
    SharedStore,
};
use hookup_driver::{ClientConfig, Message, Net, Transport, WebSocket};
use hookup_proto::reliable::wire::Envelope;
use hookup_proto::reliable::{DropReason, Journal, Reconnect, SessionConfig, StoreConfig};

pub use hookup_driver::reliable::SUBPROTOCOL;

use super::{Client, Target, within, within_for};

/// A test client whose adapter has the reliability layer.
pub trait Reliable: Client {
    /// The adapter's runtime (`ReliableClient<Self::Rt>` is its client).
    type Rt: Net<Sleep: Send>;
    /// Transport settings for the target (TLS trust).
    fn client_config(&self) -> ClientConfig;
}

// ------------------------------------------------------------------ server side

/// What a reliable route does with what it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A `ReliablePeer` that sends every message back.
    Echo,
    /// Echo, and the handler drops its `ReliablePeer` after every
    /// [`DROP_EVERY`] messages it took on a connection.
    DropPeer,
    /// No `ReliablePeer`: answers HELLO with a WELCOME (new session) by
    /// hand, then reads and discards everything, never acknowledging.
    Mute,
    /// As `Mute`, but after the WELCOME it stops reading for [`STALL`]:
    /// the client's writes back up.
    Stall,
}

/// How long a [`Mode::Stall`] route leaves the connection unread.
pub const STALL: Duration = Duration::from_secs(10);

/// Reliable routes of every server under test.
pub const ROUTES: &[(&str, Mode)] = &[
    ("/reliable", Mode::Echo),
    ("/reliable-drop-peer", Mode::DropPeer),
    ("/reliable-mute", Mode::Mute),
    ("/reliable-stall", Mode::Stall),
];

pub const DROP_EVERY: usize = 25;

/// A server's session store, made when its first reliable connection
/// arrives (on the server's runtime).
pub struct LazyStore<R>(Arc<OnceLock<SharedStore<R>>>);

impl<R> Clone for LazyStore<R> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<R> Default for LazyStore<R> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

/// Serves one connection on a reliable route.
pub async fn serve<S, R>(mode: Mode, ws: WebSocket<S, R>, store: LazyStore<R>)
where
    S: Send + 'static,
    R: Net + Transport<S>,
    R::Sleep: Send,
{
    assert_eq!(ws.subprotocol(), Some(SUBPROTOCOL), "not negotiated");
    if matches!(mode, Mode::Mute | Mode::Stall) {
        return mute(ws, mode == Mode::Stall).await;
    }
    let store = store
        .0
        .get_or_init(|| SharedStore::new(StoreConfig::default()))
        .clone();
    let mut peer = ReliablePeer::new(ws, store, SessionConfig::default());
    let mut received = 0;
    while let Some(ev) = peer.recv().await {
        let ReliableEvent::Message(m) = ev else {
            continue;
        };
        received += 1;
        drop(peer.send(m, None).expect("echo queued"));
        if mode == Mode::DropPeer && received % DROP_EVERY == 0 {
            // Parks the session (with the echo still queued) and drops the
            // transport.
            return;
        }
    }
}

/// The `hookup.v1` server side without a session: WELCOME (PROTOCOL.md:
/// type 0x02, flags "key follows", id length, id, received `u64`, resume
/// key), then silence (with
/// `stall`, nothing read for [`STALL`] first).
async fn mute<S, R: Transport<S>>(mut ws: WebSocket<S, R>, stall: bool) {
    match ws.recv().await {
        Some(Ok(Message::Binary(b))) => assert!(
            matches!(Envelope::decode(&b), Ok(Envelope::Hello { .. })),
            "expected HELLO"
        ),
        other => panic!("expected HELLO, got {other:?}"),
    }
    // A new session hands its resume key (flag bit 1, 32 bytes after
    // `received`).
    let id = *b"mute-session-id!";
    let mut welcome = vec![0x02, 0b10, id.len() as u8];
    welcome.extend_from_slice(&id);
    welcome.extend_from_slice(&0u64.to_be_bytes());
    welcome.extend_from_slice(&[0x6b; 32]);
    if ws.send(Message::binary(welcome)).await.is_err() {
        return;
    }
    if stall {
        super::sleep(STALL).await;
    }
    while let Some(Ok(_)) = ws.recv().await {}
}

/// A TCP proxy in front of a server that cuts each connection (both
/// sides, mid-stream, usually mid-frame) once it has forwarded `budget`
/// bytes from the client. Plain threads and blocking sockets: independent
/// of the runtime under test. Stops accepting when dropped.
pub struct CutProxy {
    pub port: u16,
    pub cuts: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl CutProxy {
    pub fn start(upstream: SocketAddr, budget: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().unwrap().port();
        let cuts = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, st) = (cuts.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(server) = TcpStream::connect(upstream) else {
                            continue;
                        };
                        let _ = client.set_nonblocking(false);
                        let c = c.clone();
                        let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                        std::thread::spawn(move || pump(client, server, Some((budget, c))));
                        std::thread::spawn(move || pump(s2, c2, None));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(_) => return,
                }
            }
        });
        Self { port, cuts, stop }
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Copies `from` to `to`; with a budget, cuts both after that many bytes.
fn pump(mut from: TcpStream, mut to: TcpStream, budget: Option<(usize, Arc<AtomicUsize>)>) {
    use std::io::{Read as _, Write as _};
    let mut left = budget.as_ref().map_or(usize::MAX, |b| b.0);
    let mut buf = [0u8; 8192];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n.min(left),
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        left -= n;
        if left == 0 {
            if let Some((_, cuts)) = &budget {
                cuts.fetch_add(1, Ordering::Relaxed);
            }
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

// ------------------------------------------------------------------ client side

fn config<C: Reliable>(t: &Target<C>) -> ReliableConfig {
    let mut c = ReliableConfig::default();
    c.client = t.client.client_config();
    c
}

fn client<C: Reliable>(t: &Target<C>, path: &str, c: ReliableConfig) -> ReliableClient<C::Rt> {
    ReliableClient::connect(&t.url(path), c).expect("client")
}

/// The next application message (other events skipped), as text.
async fn next_text<R>(c: &mut ReliableClient<R>) -> String
where
    R: Net,
    R::Sleep: Send,
{
    within(async {
        loop {
            match c.recv().await.expect("client ended") {
                ReliableEvent::Message(m) => match m {
                    Message::Text(t) => return t.as_str().to_owned(),
                    other => panic!("unexpected {other:?}"),
                },
                _ => continue,
            }
        }
    })
    .await
}

/// Sends `marker` and asserts that it is the next message echoed: nothing
/// else (a duplicate, a replay) comes before it.
async fn expect_only_marker<R>(c: &mut ReliableClient<R>, marker: &str)
where
    R: Net,
    R::Sleep: Send,
{
    drop(c.send(marker, None).await.expect("marker queued"));
    assert_eq!(next_text(c).await, marker);
}

async fn shutdown<R>(c: ReliableClient<R>, deadline: Duration) -> Finished
where
    R: Net,
    R::Sleep: Send,
{
    within(c.shutdown(deadline)).await
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A client of a port nothing listens on that retries forever: nothing it
/// is given is ever written.
fn unreachable_client<C: Reliable>(t: &Target<C>) -> ReliableClient<C::Rt> {
    let scheme = t.base.split("://").next().unwrap();
    let mut never = config(t);
    never.session.reconnect = Reconnect::Forever;
    ReliableClient::connect(
        &format!("{scheme}://127.0.0.1:{}/reliable", closed_port()),
        never,
    )
    .expect("client")
}

/// A fresh journal path in a directory of its own (removed by the guard).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hookup-reliable-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Live (unacknowledged) records in a journal file.
fn journal_live(path: &std::path::Path) -> Vec<String> {
    let data = std::fs::read(path).expect("journal file");
    let rec = Journal::recover(&data).expect("journal valid");
    rec.journal
        .live()
        .map(|(_, m)| match m {
            hookup_proto::Message::Text(t) => t.as_str().to_owned(),
            other => panic!("unexpected record {other:?}"),
        })
        .collect()
}

// ------------------------------------------------------------------ scenarios

/// An acked send resolves `Acked`, its echo comes back, and a graceful
/// shutdown leaves nothing unacknowledged.
pub async fn reliable_acked_round_trip<C: Reliable>(t: &Target<C>) {
    let mut c = client(t, "/reliable", config(t));
    let d = c
        .send("hello", Some(Duration::from_secs(20)))
        .await
        .expect("queued");
    assert_eq!(within(d).await, DeliveryOutcome::Acked);
    assert_eq!(next_text(&mut c).await, "hello");
    let f = shutdown(c, Duration::from_secs(20)).await;
    assert_eq!(
        f,
        Finished {
            unacked: 0,
            gave_up: false
        }
    );
}

/// A server that never acknowledges: past the deadline the delivery
/// resolves `AckFailed`; the message stays unacknowledged to the end.
pub async fn reliable_ack_failed_on_deadline<C: Reliable>(t: &Target<C>) {
    let c = client(t, "/reliable-mute", config(t));
    let d = c
        .send("late", Some(Duration::from_millis(300)))
        .await
        .expect("queued");
    assert_eq!(within(d).await, DeliveryOutcome::AckFailed);
    let f = shutdown(c, Duration::from_millis(300)).await;
    assert_eq!(f.unacked, 1);
    assert!(!f.gave_up);
}

/// The connection is cut in mid-stream again and again (a proxy in front
/// of the server drops both sides after every 24 KiB from the client, more
/// than a TLS record, so that each connection gets something through): the
/// client reconnects and resumes each time, and every message and every
/// echo arrives exactly once and in order.
pub async fn reliable_resume_after_connection_cut<C: Reliable>(t: &Target<C>) {
    const N: usize = 100;
    const BUDGET: usize = 24 << 10;
    let proxy = CutProxy::start(t.raw.addr, BUDGET);
    let (scheme, rest) = t.base.split_once("://").unwrap();
    let host = rest.rsplit_once(':').unwrap().0;
    let url = format!("{scheme}://{host}:{}/reliable", proxy.port);
    let mut c: ReliableClient<C::Rt> = ReliableClient::connect(&url, config(t)).expect("client");
    // 100 messages of over 1000 bytes: more than four budgets.
    let msg = |i: usize| format!("m{i:03}-{}", "x".repeat(1000));
    for i in 0..N {
        drop(c.send(msg(i), None).await.expect("queued"));
    }
    let mut resumed = 0;
    let mut got = 0;
    within_for(Duration::from_secs(60), async {
        while got < N {
            match c.recv().await.expect("client ended") {
                ReliableEvent::Connected { resumed: true } => resumed += 1,
                ReliableEvent::Message(m) => {
                    assert!(
                        m.as_text() == Some(msg(got).as_str()),
                        "message {got} lost, duplicated or reordered: {:?}",
                        m.as_text().map(|s| &s[..4])
                    );
                    got += 1;
                }
                _ => {}
            }
        }
    })
    .await;
    // The last messages reach the server on the fifth connection at the
    // earliest.
    let cuts = proxy.cuts.load(Ordering::Relaxed);
    assert!(
        cuts >= 3 && resumed >= 3,
        "{cuts} cuts, resumed {resumed} times"
    );
    expect_only_marker(&mut c, "end").await;
    let f = shutdown(c, Duration::from_secs(20)).await;
    assert_eq!(f.unacked, 0);
}

/// A server handler that drops its `ReliablePeer` while the peer holds
/// messages it has read but not yet returned loses none of them: only
/// messages the handler took count as received (and are acknowledged), so
/// the client replays the rest to the resumed session, once and in order.
pub async fn reliable_resume_after_peer_dropped<C: Reliable>(t: &Target<C>) {
    const N: usize = 100;
    let mut c = client(t, "/reliable-drop-peer", config(t));
    for i in 0..N {
        drop(c.send(format!("m{i}"), None).await.expect("queued"));
    }
    let mut got = 0;
    within(async {
        while got < N {
            if let ReliableEvent::Message(m) = c.recv().await.expect("client ended") {
                assert_eq!(
                    m.as_text(),
                    Some(format!("m{got}").as_str()),
                    "message lost, duplicated or reordered"
                );
                got += 1;
            }
        }
    })
    .await;
    expect_only_marker(&mut c, "end").await;
    let f = shutdown(c, Duration::from_secs(20)).await;
    assert_eq!(f.unacked, 0);
}

/// Messages a client could not deliver stay in its journal file: a client
/// re-created on that file (as after a crash) sends them first, in order,
/// once; a client created after that finds nothing left to replay.
pub async fn reliable_journal_replay<C: Reliable>(t: &Target<C>) {
    let dir = TempDir::new();
    let path = dir.0.join("client.hkj");
    let crashed = dir.0.join("crashed.hkj");
    let journaled = |t: &Target<C>| {
        let mut c = config(t);
        c.journal = Some(path.clone());
        c
    };

    // A client with nowhere to deliver: its messages are journaled when
    // `send` returns. The file as it is then is what a crash leaves.
    let scheme = t.base.split("://").next().unwrap();
    let nowhere = format!("{scheme}://127.0.0.1:{}/reliable", closed_port());
    let a: ReliableClient<C::Rt> = ReliableClient::connect(&nowhere, journaled(t)).expect("client");
    for i in 0..3 {
        drop(a.send(format!("j{i}"), None).await.expect("queued"));
    }
    assert_eq!(journal_live(&path), ["j0", "j1", "j2"]);
    std::fs::copy(&path, &crashed).expect("copy journal");
    // A shutdown that gives up drops them, from the journal too.
    let f = shutdown(a, Duration::from_millis(200)).await;
    assert_eq!(f.unacked, 3);
    assert!(journal_live(&path).is_empty());

    // Re-created on the crashed process's journal: replayed first.
    std::fs::rename(&crashed, &path).expect("restore journal");
    let mut b = client(t, "/reliable", journaled(t));
    for i in 0..3 {
        assert_eq!(next_text(&mut b).await, format!("j{i}"));
    }
    expect_only_marker(&mut b, "end").await;
    let f = shutdown(b, Duration::from_secs(20)).await;
    assert_eq!(f.unacked, 0);
    assert!(journal_live(&path).is_empty());

    // And once only.
    let mut c = client(t, "/reliable", journaled(t));
    expect_only_marker(&mut c, "end again").await;
    let f = shutdown(c, Duration::from_secs(20)).await;
    assert_eq!(f.unacked, 0);
}

/// A send without an ack deadline on a connected client is written at
/// once: its delivery is resolved when `send` returns. One with a deadline
/// waits for its ack, and one that cannot be written (nothing listens)
/// stays unresolved until the client shuts down.
pub async fn reliable_unacked_send_resolved_at_once<C: Reliable>(t: &Target<C>) {
    let mut c = client(t, "/reliable", config(t));
    within(async { while !matches!(c.recv().await, Some(ReliableEvent::Connected { .. })) {} })
        .await;
    let mut w = c.send("written", None).await.expect("queued");
    assert_eq!(w.try_outcome(), Some(DeliveryOutcome::Written));
    assert_eq!(within(w).await, DeliveryOutcome::Written);
    let mut a = c
        .send("acked", Some(Duration::from_secs(20)))
        .await
        .expect("queued");
    assert_eq!(within(&mut a).await, DeliveryOutcome::Acked);
    assert_eq!(a.try_outcome(), Some(DeliveryOutcome::Acked));
    assert_eq!(next_text(&mut c).await, "written");
    assert_eq!(next_text(&mut c).await, "acked");
    assert_eq!(shutdown(c, Duration::from_secs(20)).await.unacked, 0);

    let n = unreachable_client(t);
    let mut u = n.send("unwritten", None).await.expect("queued");
    assert_eq!(u.try_outcome(), None);
    assert_eq!(shutdown(n, Duration::from_millis(300)).await.unacked, 1);
    assert_eq!(
        u.try_outcome(),
        Some(DeliveryOutcome::Dropped(DropReason::Shutdown))
    );
}

/// `send` waits while the connection's output is at the write window (the
/// server stopped reading and the socket buffers are full) rather than
/// queueing past it: every send that returned was written at once (its
/// delivery is `Written` already), none failed for a full outbox (whose
/// bounds are far away here), and the next one stays pending.
pub async fn reliable_send_waits_at_write_window<C: Reliable>(t: &Target<C>) {
    let mut cfg = config(t);
    cfg.session.max_outbox_messages = 1_000_000;
    cfg.session.max_outbox_bytes = 1 << 30;
    // The write window alone takes this many sends before one may wait.
    let floor = cfg.session.write_window / (64 << 10);
    let mut c = client(t, "/reliable-stall", cfg);
    within(async { while !matches!(c.recv().await, Some(ReliableEvent::Connected { .. })) {} })
        .await;
    let payload = bytes::Bytes::from(vec![7u8; 64 << 10]);
    // Far beyond what loopback socket buffers hold (a few MiB).
    let most = 2000;
    let mut sent = 0;
    loop {
        let mut send = std::pin::pin!(c.send(Message::Binary(payload.clone()), None));
        let mut waits = 0;
        let done = loop {
            match super::timeout(Duration::from_millis(500), send.as_mut()).await {
                Some(r) => break Some(r),
                // Below the window a wait can only be a slow machine: keep
                // waiting on the same send (bounded).
                None if sent < floor => {
                    waits += 1;
                    assert!(waits < 60, "send {sent} (below the window) waited 30 s");
                }
                // Past the window with a peer that reads nothing: the
                // send waits for room.
                None => break None,
            }
        };
        match done {
            Some(Ok(mut d)) => {
                assert_eq!(d.try_outcome(), Some(DeliveryOutcome::Written));
                sent += 1;
                assert!(sent < most, "{sent} sends of 64 KiB returned: none waited");
            }
            Some(Err(e)) => panic!("send {sent} failed: {e}"),
            None => break,
        }
    }
    assert!(
        sent >= floor,
        "only {sent} sends returned: the window takes {floor}"
    );
    // Nothing was acknowledged: all of them are still unacknowledged.
    assert_eq!(shutdown(c, Duration::from_millis(300)).await.unacked, sent);
}

/// Every outstanding delivery resolves when the client shuts down: ones
/// written and waiting for their ack, and ones never written.
pub async fn reliable_deliveries_resolved_at_shutdown<C: Reliable>(t: &Target<C>) {
    // Written, waiting for acks that never come.
    let mut c = client(t, "/reliable-mute", config(t));
    let mut pending = Vec::new();
    for i in 0..5 {
        let d = c
            .send(format!("p{i}"), Some(Duration::from_secs(60)))
            .await
            .expect("queued");
        pending.push(d);
    }
    within(async { while !matches!(c.recv().await, Some(ReliableEvent::Connected { .. })) {} })
        .await;
    // Never written: nothing listens.
    let n = unreachable_client(t);
    let mut unwritten = Vec::new();
    for i in 0..2 {
        unwritten.push(n.send(format!("u{i}"), None).await.expect("queued"));
    }

    let f = shutdown(c, Duration::from_millis(300)).await;
    assert_eq!(f.unacked, 5);
    for d in pending {
        assert_eq!(
            within(d).await,
            DeliveryOutcome::Dropped(DropReason::Shutdown)
        );
    }
    let f = shutdown(n, Duration::from_millis(300)).await;
    assert_eq!(f.unacked, 2);
    for d in unwritten {
        assert_eq!(
            within(d).await,
            DeliveryOutcome::Dropped(DropReason::Shutdown)
        );
    }
}
