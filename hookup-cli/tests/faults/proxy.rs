//! A TCP proxy that breaks connections on purpose, on its own tokio runtime
//! (the tests themselves are synchronous: they drive child processes).
//!
//! Each accepted connection gets a [`Fate`] from the test's plan, by accept
//! order. Bytes count in both directions together; when a connection's
//! budget runs out it is either cut (both sockets closed with `SO_LINGER`
//! 0, so both ends see a reset at once — no half-open side waiting for a
//! keepalive deadline) or frozen (nothing more is forwarded either way,
//! until [`Proxy::cut_all`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What happens to one proxied connection.
#[derive(Clone, Copy, Debug)]
pub enum Fate {
    /// Forwarded untouched.
    Pass,
    /// Reset on both sides after this many bytes.
    Cut(usize),
    /// Stalled in both directions after this many bytes.
    Freeze(usize),
    /// Reset at once, before anything is forwarded (nothing listens).
    Refuse,
}

#[derive(Default)]
pub struct Stats {
    pub connections: AtomicUsize,
    pub cuts: AtomicUsize,
    pub frozen: AtomicUsize,
}

pub struct Proxy {
    pub port: u16,
    pub stats: Arc<Stats>,
    kill: watch::Sender<u64>,
    rt: Option<tokio::runtime::Runtime>,
}

enum End {
    Eof,
    Limit,
}

/// Takes up to `n` bytes from the shared budget.
fn take(budget: &AtomicUsize, n: usize) -> usize {
    let before = budget
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
            Some(v.saturating_sub(n))
        })
        .expect("closure always returns Some");
    before.min(n)
}

async fn pipe(
    r: &mut tokio::net::tcp::ReadHalf<'_>,
    w: &mut tokio::net::tcp::WriteHalf<'_>,
    budget: &AtomicUsize,
) -> std::io::Result<End> {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            w.shutdown().await?;
            return Ok(End::Eof);
        }
        let allowed = take(budget, n);
        if allowed > 0 {
            w.write_all(&buf[..allowed]).await?;
        }
        if allowed < n {
            return Ok(End::Limit);
        }
    }
}

enum Outcome {
    Clean,
    Limit,
    Abort,
}

async fn handle(
    mut client: TcpStream,
    upstream: SocketAddr,
    fate: Fate,
    stats: Arc<Stats>,
    mut kill: watch::Receiver<u64>,
) {
    if let Fate::Refuse = fate {
        let _ = client.set_zero_linger();
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        let _ = client.set_zero_linger();
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let budget = AtomicUsize::new(match fate {
        Fate::Pass | Fate::Refuse => usize::MAX,
        Fate::Cut(n) | Fate::Freeze(n) => n,
    });
    let outcome = {
        let (mut cr, mut cw) = client.split();
        let (mut sr, mut sw) = server.split();
        let up = pipe(&mut cr, &mut sw, &budget);
        let down = pipe(&mut sr, &mut cw, &budget);
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            tokio::select! {
                e = &mut up, if !up_done => match e {
                    Ok(End::Eof) => up_done = true,
                    Ok(End::Limit) => break Outcome::Limit,
                    Err(_) => break Outcome::Abort,
                },
                e = &mut down, if !down_done => match e {
                    Ok(End::Eof) => down_done = true,
                    Ok(End::Limit) => break Outcome::Limit,
                    Err(_) => break Outcome::Abort,
                },
                _ = kill.changed() => break Outcome::Abort,
            }
            if up_done && down_done {
                break Outcome::Clean;
            }
        }
    };
    match (outcome, fate) {
        (Outcome::Clean, _) => return,
        (Outcome::Limit, Fate::Freeze(_)) => {
            stats.frozen.fetch_add(1, Ordering::SeqCst);
            // Hold both sockets without reading or writing.
            let _ = kill.changed().await;
        }
        (Outcome::Limit, _) => {
            stats.cuts.fetch_add(1, Ordering::SeqCst);
        }
        (Outcome::Abort, _) => {}
    }
    // An abortive close: both ends get a reset now.
    let _ = client.set_zero_linger();
    let _ = server.set_zero_linger();
}

impl Proxy {
    /// Listens on a free port and forwards to `upstream`; `plan(i)` decides
    /// the fate of the `i`-th connection (from 0).
    pub fn start(
        upstream: SocketAddr,
        mut plan: impl FnMut(usize) -> Fate + Send + 'static,
    ) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("proxy bind");
        let port = listener.local_addr().expect("proxy addr").port();
        let stats = Arc::new(Stats::default());
        let (kill, kill_rx) = watch::channel(0u64);
        let st = stats.clone();
        rt.spawn(async move {
            let mut i = 0;
            while let Ok((client, _)) = listener.accept().await {
                let fate = plan(i);
                i += 1;
                st.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(handle(client, upstream, fate, st.clone(), kill_rx.clone()));
            }
        });
        Self {
            port,
            stats,
            kill,
            rt: Some(rt),
        }
    }

    /// Resets every connection open now (frozen ones included).
    pub fn cut_all(&self) {
        self.kill.send_modify(|v| *v += 1);
    }

    pub fn connections(&self) -> usize {
        self.stats.connections.load(Ordering::SeqCst)
    }

    pub fn cuts(&self) -> usize {
        self.stats.cuts.load(Ordering::SeqCst)
    }

    pub fn frozen(&self) -> usize {
        self.stats.frozen.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut_all();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
