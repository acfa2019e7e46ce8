//! Echo server implementations and the accept loop they share.
//!
//! Every impl runs on a single-threaded (`current_thread`) tokio runtime (except
//! `hookup-async-std` and `hookup-smol`, see `hookup_async.rs`), binds with a
//! listen backlog of 1024, sets TCP_NODELAY on each accepted socket and spawns one task per
//! connection. Each impl's per-connection function is spawned directly (no dispatch inside
//! the task), so a task's size, and so its idle memory, is that impl's own.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::BoxError;

mod fast_ws;
mod soketto_ws;
mod tcp;
mod tokio_ws;
mod tung;
mod tung_batched;
mod yawc_ws;

// ---------------------------------------------------------------------------------------
// HOOKUP SLOT: the hookup echo server lives in `servers/hookup.rs`, compiled only with
// `--features hookup` (which pulls in `hookup-tokio` from ../hookup-tokio). It must provide
//
//     pub async fn serve(stream: tokio::net::TcpStream) -> Result<(), crate::BoxError>
//
// which handles ONE accepted connection (server handshake, then echo every text/binary
// message until close). The accept loop below is shared by all impls.
// ---------------------------------------------------------------------------------------
#[cfg(feature = "hookup")]
mod hookup;
// hookup-async-std on smol's and async-std's executors (not tokio): see hookup_async.rs.
#[cfg(feature = "hookup")]
mod hookup_async;
// hookup-tokio with permessage-deflate accepted (`bench/run.sh deflate`).
#[cfg(feature = "hookup")]
mod hookup_deflate;

/// Names accepted by `echo-server <impl>`, in the order the driver runs them.
pub const IMPLS: &[&str] = &[
    #[cfg(feature = "hookup")]
    "hookup",
    #[cfg(feature = "hookup")]
    "hookup-feed",
    #[cfg(feature = "hookup")]
    "hookup-async-std",
    #[cfg(feature = "hookup")]
    "hookup-smol",
    "tungstenite",
    "tungstenite-batched",
    "tokio-websockets",
    "fastwebsockets",
    "tcp",
];

/// The impls that accept permessage-deflate (`echo-server --list-deflate`, `bench-run
/// deflate`). Not in `IMPLS`: the plain throughput cases do not offer the extension.
/// tungstenite, tokio-websockets and fastwebsockets have no permessage-deflate in their
/// published versions.
pub const DEFLATE_IMPLS: &[&str] = &[
    #[cfg(feature = "hookup")]
    "hookup-deflate",
    "yawc",
    "soketto",
];

/// Listen backlog (the kernel caps it at net.core.somaxconn).
const BACKLOG: u32 = 1024;

/// Runs the echo server `impl_name` on `addr` until the process is killed (on a
/// `current_thread` tokio runtime, except the hookup-async-std impls).
/// Prints `LISTENING <addr>` on stdout once the socket is listening.
pub fn run(impl_name: &str, addr: SocketAddr) -> Result<(), BoxError> {
    #[cfg(feature = "hookup")]
    if hookup_async::NAMES.contains(&impl_name) {
        return hookup_async::run(impl_name, addr);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = bind(addr)?;
        println!("LISTENING {}", listener.local_addr()?);
        match impl_name {
            "tungstenite" => accept_loop(listener, tung::serve).await,
            "tungstenite-batched" => accept_loop(listener, tung_batched::serve).await,
            "tokio-websockets" => accept_loop(listener, tokio_ws::serve).await,
            "fastwebsockets" => accept_loop(listener, fast_ws::serve).await,
            "tcp" => accept_loop(listener, tcp::serve).await,
            "yawc" => accept_loop(listener, yawc_ws::serve).await,
            "soketto" => accept_loop(listener, soketto_ws::serve).await,
            #[cfg(feature = "hookup")]
            "hookup-deflate" => accept_loop(listener, hookup_deflate::serve).await,
            // HOOKUP SLOT (see above).
            #[cfg(feature = "hookup")]
            "hookup" => accept_loop(listener, hookup::serve).await,
            #[cfg(feature = "hookup")]
            "hookup-feed" => accept_loop(listener, hookup::serve_feed).await,
            other => Err(format!("unknown impl {other:?}; known: {}", IMPLS.join(", ")).into()),
        }
    })
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Wraps a connection future in `tokio::task::unconstrained` when BENCH_UNCONSTRAINED=1
/// (fastwebsockets' and tokio-websockets' own examples do that; default is plain tokio).
pub(crate) fn spawn_conn<F>(fut: F)
where
    F: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    let verbose = verbose();
    let report = move |r: Result<(), BoxError>| {
        if let Err(e) = r
            && verbose
        {
            eprintln!("connection error: {e}");
        }
    };
    if unconstrained() {
        tokio::spawn(tokio::task::unconstrained(async move { report(fut.await) }));
    } else {
        tokio::spawn(async move { report(fut.await) });
    }
}

fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

pub(crate) fn unconstrained() -> bool {
    static U: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *U.get_or_init(|| flag("BENCH_UNCONSTRAINED"))
}

pub(crate) fn verbose() -> bool {
    static V: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *V.get_or_init(|| flag("ECHO_SERVER_VERBOSE"))
}

async fn accept_loop<F, Fut>(listener: TcpListener, serve: F) -> Result<(), BoxError>
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                spawn_conn(serve(stream));
            }
            Err(e) => {
                // e.g. EMFILE: back off instead of spinning.
                eprintln!("accept error: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
