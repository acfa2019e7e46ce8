//! Accepting connections: a single stream, or a whole server with routes.
// The handshake decision returns an `http::Response` by value: it happens
// once per connection, and boxing it would only burden the callback signature.
#![allow(clippy::result_large_err)]

use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_io::Timer;
use async_net::{AsyncToSocketAddrs, TcpListener, TcpStream};
use futures_io::{AsyncRead, AsyncWrite};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use hookup_driver::{Result, Routes};
use hookup_proto::{Accept, Request};

pub use hookup_driver::{HttpResponse, text_response};

use crate::rt::{AsyncIo, Config, WebSocket};
use crate::stream::MaybeTlsStream;

/// Accepts a WebSocket on `io` with default settings, for any path.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(io: S) -> Result<WebSocket<S>> {
    hookup_driver::accept(io).await
}

/// Accepts a WebSocket on `io`. `callback` sees the request (path, query,
/// headers, subprotocols, origin) and accepts it — with a subprotocol and
/// headers — or answers it with any HTTP response. Plain (non-upgrade) HTTP
/// requests reach the callback too; accepting one answers 426.
pub async fn accept_with<S, F>(io: S, config: &Config, callback: F) -> Result<WebSocket<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&Request) -> std::result::Result<Accept, HttpResponse>,
{
    hookup_driver::accept_with(io, config, callback).await
}

/// Like [`accept_with`], also returning the request.
pub async fn accept_request<S, F>(
    io: S,
    config: &Config,
    callback: F,
) -> Result<(WebSocket<S>, Request)>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&Request) -> std::result::Result<Accept, HttpResponse>,
{
    hookup_driver::accept_request(io, config, callback).await
}

/// One connection's work, as handed to a [`Server::spawn_with`] spawner.
pub type ConnectionFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

type Spawner = Arc<dyn Fn(ConnectionFuture) + Send + Sync>;

/// A WebSocket server: routes upgrade requests by path to handlers and
/// answers plain HTTP requests with a configurable response.
///
/// It needs no executor of its own: by default [`BoundServer::run`] drives
/// every connection inside its own future (concurrently, on the task that
/// awaits it). To run each connection as a task of your executor — in
/// parallel on a multi-threaded one — pass a spawner with
/// [`spawn_with`](Self::spawn_with):
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use hookup_async_std::Server;
/// let server = Server::new()
///     .route("/echo", |mut ws, _req| async move {
///         while let Some(Ok(m)) = ws.recv().await {
///             if m.is_data() && ws.send(m).await.is_err() {
///                 break;
///             }
///         }
///     })
///     // async-std: `|f| { async_std::task::spawn(f); }`
///     // smol:      `|f| smol::spawn(f).detach()`
///     .bind("127.0.0.1:9001")
///     .await?;
/// server.run().await
/// # }
/// ```
#[derive(Clone)]
pub struct Server {
    routes: Routes<MaybeTlsStream, AsyncIo>,
    spawn: Option<Spawner>,
    tls_timeout: Duration,
    #[cfg(feature = "tls")]
    tls: Option<futures_rustls::TlsAcceptor>,
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Server");
        d.field("routes", &self.routes)
            .field("spawner", &self.spawn.is_some());
        #[cfg(feature = "tls")]
        d.field("tls", &self.tls.is_some());
        d.finish_non_exhaustive()
    }
}

impl Server {
    /// A server with no routes.
    pub fn new() -> Self {
        Self {
            routes: Routes::default(),
            spawn: None,
            tls_timeout: Duration::from_secs(10),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Serves WebSocket upgrades for `path` with `handler`.
    pub fn route<F, Fut>(mut self, path: &str, handler: F) -> Self
    where
        F: Fn(WebSocket<MaybeTlsStream>, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.routes.route(path, handler);
        self
    }

    /// Answers plain (non-upgrade) HTTP requests to paths without a route
    /// with `f` (default: 404). Routed paths answer them with 426.
    pub fn http<F>(mut self, f: F) -> Self
    where
        F: Fn(&Request) -> HttpResponse + Send + Sync + 'static,
    {
        self.routes.http(f);
        self
    }

    /// Decides on upgrade requests to routed paths: accept with a
    /// subprotocol/headers, or reject (default: accept, no subprotocol).
    pub fn on_request<F>(mut self, f: F) -> Self
    where
        F: Fn(&Request) -> std::result::Result<Accept, HttpResponse> + Send + Sync + 'static,
    {
        self.routes.on_request(f);
        self
    }

    /// Sets the connection configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.routes.set_config(config);
        self
    }

    /// Runs each accepted connection through `spawn` (a task of your
    /// executor) instead of inside [`BoundServer::run`]: with async-std
    /// `|f| { async_std::task::spawn(f); }`, with smol
    /// `|f| smol::spawn(f).detach()`.
    pub fn spawn_with<F>(mut self, spawn: F) -> Self
    where
        F: Fn(ConnectionFuture) + Send + Sync + 'static,
    {
        self.spawn = Some(Arc::new(spawn));
        self
    }

    /// Serves TLS (`wss://`) with this rustls configuration.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: Arc<hookup_driver::tls::ServerConfig>) -> Self {
        self.tls = Some(futures_rustls::TlsAcceptor::from(config));
        self
    }

    /// Binds a listener.
    pub async fn bind(self, addr: impl AsyncToSocketAddrs) -> io::Result<BoundServer> {
        let listener = TcpListener::bind(addr).await?;
        Ok(BoundServer {
            server: Arc::new(self),
            listener,
        })
    }

    /// Serves one accepted TCP connection to its end.
    pub async fn serve_connection(&self, tcp: TcpStream) {
        let _ = tcp.set_nodelay(true);
        let peer = tcp.peer_addr().ok();
        let stream = match self.wrap(tcp).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(?peer, "TLS accept failed: {e}");
                return;
            }
        };
        self.routes.serve(stream, peer).await;
    }

    #[cfg(feature = "tls")]
    async fn wrap(&self, tcp: TcpStream) -> io::Result<MaybeTlsStream> {
        match &self.tls {
            None => Ok(MaybeTlsStream::Plain(tcp)),
            Some(acceptor) => {
                let s = crate::rt::timeout(self.tls_timeout, acceptor.accept(tcp))
                    .await
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                    })??;
                Ok(MaybeTlsStream::ServerTls(Box::new(s)))
            }
        }
    }

    #[cfg(not(feature = "tls"))]
    async fn wrap(&self, tcp: TcpStream) -> io::Result<MaybeTlsStream> {
        let _ = self.tls_timeout;
        Ok(MaybeTlsStream::Plain(tcp))
    }
}

/// A server bound to a listener.
#[derive(Debug)]
pub struct BoundServer {
    server: Arc<Server>,
    listener: TcpListener,
}

impl BoundServer {
    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections forever (see [`Server`] on where they run).
    pub async fn run(self) -> io::Result<()> {
        self.run_until(std::future::pending()).await
    }

    /// Accepts connections until `shutdown` completes. Connections handed
    /// to a spawner go on; those driven by this future end with it.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let mut shutdown = pin!(shutdown);
        let mut incoming = self.listener.incoming();
        let mut local = FuturesUnordered::<ConnectionFuture>::new();
        let mut backoff: Option<Timer> = None;
        poll_fn(|cx| {
            if shutdown.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            loop {
                if let Some(t) = &mut backoff {
                    if Pin::new(t).poll(cx).is_pending() {
                        break;
                    }
                    backoff = None;
                }
                match incoming.poll_next_unpin(cx) {
                    Poll::Ready(Some(Ok(tcp))) => {
                        let server = self.server.clone();
                        let conn: ConnectionFuture =
                            Box::pin(async move { server.serve_connection(tcp).await });
                        match &self.server.spawn {
                            Some(spawn) => spawn(conn),
                            None => local.push(conn),
                        }
                    }
                    Poll::Ready(Some(Err(e))) => {
                        // Out of file descriptors and the like: back off briefly.
                        tracing::warn!("accept failed: {e}");
                        backoff = Some(Timer::after(Duration::from_millis(50)));
                    }
                    Poll::Ready(None) => return Poll::Ready(Ok(())),
                    Poll::Pending => break,
                }
            }
            // Drive the connections kept here (Ready(None) once there are none).
            while let Poll::Ready(Some(())) = local.poll_next_unpin(cx) {}
            Poll::Pending
        })
        .await
    }
}
