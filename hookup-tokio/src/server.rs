//! Accepting connections: a single stream, or a whole server with routes.
// The handshake decision returns an `http::Response` by value: it happens
// once per connection, and boxing it would only burden the callback signature.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hookup_proto::http::{self, HeaderMap, HeaderValue, StatusCode, header};
use hookup_proto::{Accept, Connection, Event, Request};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

use crate::error::{Error, Result};
use crate::stream::MaybeTlsStream;
use crate::ws::{Config, Core, WebSocket, now};

/// An HTTP response for a rejected or plain HTTP request.
pub type HttpResponse = http::Response<Vec<u8>>;

/// Accepts a WebSocket on `io` with default settings, for any path.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(io: S) -> Result<WebSocket<S>> {
    accept_with(io, &Config::default(), |_| Ok(Accept::new())).await
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
    Ok(accept_request(io, config, callback).await?.0)
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
    let conn = Connection::server(config.proto.clone(), now());
    let mut core = Core::new(conn, io, config);
    let Event::Request(request) = poll_fn(|cx| core.poll_handshake(cx)).await? else {
        return Err(Error::Handshake(hookup_proto::HandshakeError::Malformed(
            "unexpected event".into(),
        )));
    };
    let decision = if request.is_websocket() {
        callback(&request)
    } else {
        match callback(&request) {
            Ok(_) => Err(upgrade_required()),
            Err(r) => Err(r),
        }
    };
    match decision {
        Ok(accept) => {
            core.subprotocol = accept.subprotocol.clone();
            core.conn.accept(accept)?;
            // Consume `Connected`; messages that came with the request stay queued.
            poll_fn(|cx| core.poll_handshake(cx)).await?;
            Ok((WebSocket::from_core(core), request))
        }
        Err(resp) => {
            let status = resp.status().as_u16();
            core.conn
                .reject(resp.status(), resp.headers(), resp.body())?;
            while poll_fn(|cx| core.poll_event(cx)).await.is_some() {}
            Err(Error::Rejected { status })
        }
    }
}

/// A response with a status and a plain-text body.
pub fn text_response(status: StatusCode, body: &str) -> HttpResponse {
    let mut r = http::Response::new(body.as_bytes().to_vec());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn upgrade_required() -> HttpResponse {
    let mut r = text_response(
        StatusCode::UPGRADE_REQUIRED,
        "this endpoint speaks WebSocket\n",
    );
    r.headers_mut()
        .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    r.headers_mut().insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    r
}

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type Handler = Arc<dyn Fn(WebSocket<MaybeTlsStream>, Request) -> BoxFuture + Send + Sync>;
type HttpHandler = Arc<dyn Fn(&Request) -> HttpResponse + Send + Sync>;
type Chooser = Arc<dyn Fn(&Request) -> std::result::Result<Accept, HttpResponse> + Send + Sync>;

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
    routes: HashMap<String, Handler>,
    http: Option<HttpHandler>,
    choose: Option<Chooser>,
    config: Config,
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
            routes: HashMap::new(),
            http: None,
            choose: None,
            config: Config::default(),
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
        let h: Handler = Arc::new(move |ws, req| Box::pin(handler(ws, req)));
        self.routes.insert(path.to_owned(), h);
        self
    }

    /// Answers plain (non-upgrade) HTTP requests to paths without a route
    /// with `f` (default: 404). Routed paths answer them with 426.
    pub fn http<F>(mut self, f: F) -> Self
    where
        F: Fn(&Request) -> HttpResponse + Send + Sync + 'static,
    {
        self.http = Some(Arc::new(f));
        self
    }

    /// Decides on upgrade requests to routed paths: accept with a
    /// subprotocol/headers, or reject (default: accept, no subprotocol).
    pub fn on_request<F>(mut self, f: F) -> Self
    where
        F: Fn(&Request) -> std::result::Result<Accept, HttpResponse> + Send + Sync + 'static,
    {
        self.choose = Some(Arc::new(f));
        self
    }

    /// Sets the connection configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
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

    fn decide(&self, req: &Request) -> std::result::Result<Accept, HttpResponse> {
        let routed = self.routes.contains_key(req.path());
        if !req.is_websocket() {
            return Err(match (&self.http, routed) {
                (_, true) => upgrade_required(),
                (Some(f), false) => f(req),
                (None, false) => text_response(StatusCode::NOT_FOUND, "not found\n"),
            });
        }
        if !routed {
            return Err(text_response(
                StatusCode::NOT_FOUND,
                "no WebSocket endpoint here\n",
            ));
        }
        match &self.choose {
            Some(f) => f(req),
            None => Ok(Accept::new()),
        }
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
        match accept_request(stream, &self.config, |req| self.decide(req)).await {
            Ok((ws, req)) => {
                tracing::debug!(?peer, path = req.path(), "accepted");
                if let Some(h) = self.routes.get(req.path()).cloned() {
                    h(ws, req).await;
                }
            }
            Err(e) => tracing::debug!(?peer, "handshake ended: {e}"),
        }
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

#[allow(dead_code)]
fn _assert_send(h: &HeaderMap) -> &HeaderMap {
    h
}
