//! Accepting connections: a single stream, or a whole server with routes.
// The handshake decision returns an `http::Response` by value: it happens
// once per connection, and boxing it would only burden the callback signature.
#![allow(clippy::result_large_err)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hookup_driver::{Result, Routes};
use hookup_proto::{Accept, Request};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

pub use hookup_driver::{HttpResponse, text_response};

use crate::stream::MaybeTlsStream;
use crate::ws::{Config, Tokio, WebSocket};

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

/// A WebSocket server: routes upgrade requests by path to handlers and
/// answers plain HTTP requests with a configurable response.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use hookup_tokio::Server;
/// let server = Server::new()
///     .route("/echo", |mut ws, _req| async move {
///         while let Some(Ok(m)) = ws.recv().await {
///             if m.is_data() && ws.send(m).await.is_err() {
///                 break;
///             }
///         }
///     })
///     .bind("127.0.0.1:9001")
///     .await?;
/// server.run().await
/// # }
/// ```
#[derive(Clone)]
pub struct Server {
    routes: Routes<MaybeTlsStream, Tokio>,
    tls_timeout: Duration,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

impl Server {
    /// A server with no routes.
    pub fn new() -> Self {
        Self {
            routes: Routes::default(),
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

    /// Serves TLS (`wss://`) with this rustls configuration.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: Arc<tokio_rustls::rustls::ServerConfig>) -> Self {
        self.tls = Some(tokio_rustls::TlsAcceptor::from(config));
        self
    }

    /// Binds a listener.
    pub async fn bind(self, addr: impl ToSocketAddrs) -> io::Result<BoundServer> {
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
                let s = tokio::time::timeout(self.tls_timeout, acceptor.accept(tcp))
                    .await
                    .map_err(|_| {
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
pub struct BoundServer {
    server: Arc<Server>,
    listener: TcpListener,
}

impl BoundServer {
    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections forever, one task each.
    pub async fn run(self) -> io::Result<()> {
        self.run_until(std::future::pending()).await
    }

    /// Accepts connections until `shutdown` completes.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                r = self.listener.accept() => match r {
                    Ok((tcp, _)) => {
                        let server = self.server.clone();
                        tokio::spawn(async move { server.serve_connection(tcp).await });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off briefly.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }
}
