//! Accepting connections: the server handshake on one stream, the routing
//! table of a server, and the server itself over an adapter's sockets
//! ([`Server`], [`BoundServer`]).
// The handshake decision returns an `http::Response` by value: it happens
// once per connection, and boxing it would only burden the callback signature.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use futures_core::Stream as _;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;

use hookup_proto::http::{self, HeaderValue, StatusCode, header};
use hookup_proto::{Accept, Connection, Event, Request};

use crate::conn::Core;
use crate::error::{Error, Result};
use crate::net::{Bind, ConnectionFuture, Net};
use crate::ws::{Config, WebSocket};
use crate::{Runtime, Transport};

/// An HTTP response for a rejected or plain HTTP request.
pub type HttpResponse = http::Response<Vec<u8>>;

/// Accepts a WebSocket on `io` with default settings, for any path.
pub async fn accept<S, R: Transport<S>>(io: S) -> Result<WebSocket<S, R>> {
    accept_with(io, &Config::default(), |_| Ok(Accept::new())).await
}

/// Accepts a WebSocket on `io`. `callback` sees the request (path, query,
/// headers, subprotocols, origin) and accepts it — with a subprotocol and
/// headers — or answers it with any HTTP response. Plain (non-upgrade) HTTP
/// requests reach the callback too; accepting one answers 426.
pub async fn accept_with<S, R, F>(io: S, config: &Config, callback: F) -> Result<WebSocket<S, R>>
where
    R: Transport<S>,
    F: FnOnce(&Request) -> std::result::Result<Accept, HttpResponse>,
{
    Ok(accept_request(io, config, callback).await?.0)
}

/// Like [`accept_with`], also returning the request.
pub async fn accept_request<S, R, F>(
    io: S,
    config: &Config,
    callback: F,
) -> Result<(WebSocket<S, R>, Request)>
where
    R: Transport<S>,
    F: FnOnce(&Request) -> std::result::Result<Accept, HttpResponse>,
{
    let conn = Connection::server(crate::entropy::seeded(&config.proto), R::now());
    let mut core = Core::<S, R>::new(conn, io, config);
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
type Handler<S, R> = Arc<dyn Fn(WebSocket<S, R>, Request) -> BoxFuture + Send + Sync>;
type HttpHandler = Arc<dyn Fn(&Request) -> HttpResponse + Send + Sync>;
type Chooser = Arc<dyn Fn(&Request) -> std::result::Result<Accept, HttpResponse> + Send + Sync>;

/// The routing table of a server: handlers by path, the upgrade decision,
/// the answer to plain HTTP and the connection configuration. An adapter's
/// `Server` wraps it with a listener, TLS and tasks.
pub struct Routes<S, R: Runtime> {
    routes: HashMap<String, Handler<S, R>>,
    http: Option<HttpHandler>,
    choose: Option<Chooser>,
    config: Config,
}

impl<S, R: Runtime> Clone for Routes<S, R> {
    fn clone(&self) -> Self {
        Self {
            routes: self.routes.clone(),
            http: self.http.clone(),
            choose: self.choose.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S, R: Runtime> Default for Routes<S, R> {
    fn default() -> Self {
        Self {
            routes: HashMap::new(),
            http: None,
            choose: None,
            config: Config::default(),
        }
    }
}

impl<S, R: Runtime> fmt::Debug for Routes<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut paths: Vec<_> = self.routes.keys().collect();
        paths.sort();
        f.debug_struct("Routes")
            .field("paths", &paths)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, R: Transport<S>> Routes<S, R> {
    /// Serves WebSocket upgrades for `path` with `handler`.
    pub fn route<F, Fut>(&mut self, path: &str, handler: F)
    where
        F: Fn(WebSocket<S, R>, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let h: Handler<S, R> = Arc::new(move |ws, req| Box::pin(handler(ws, req)));
        self.routes.insert(path.to_owned(), h);
    }

    /// Answers plain (non-upgrade) HTTP requests to paths without a route
    /// with `f` (default: 404). Routed paths answer them with 426.
    pub fn http<F>(&mut self, f: F)
    where
        F: Fn(&Request) -> HttpResponse + Send + Sync + 'static,
    {
        self.http = Some(Arc::new(f));
    }

    /// Decides on upgrade requests to routed paths: accept with a
    /// subprotocol/headers, or reject (default: accept, no subprotocol).
    pub fn on_request<F>(&mut self, f: F)
    where
        F: Fn(&Request) -> std::result::Result<Accept, HttpResponse> + Send + Sync + 'static,
    {
        self.choose = Some(Arc::new(f));
    }

    /// Sets the connection configuration.
    pub fn set_config(&mut self, config: Config) {
        self.config = config;
    }

    /// The connection configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The answer to `req`: accept, or an HTTP response (404 for unrouted
    /// paths unless an HTTP handler answers them, 426 for plain HTTP to a
    /// route, else the `on_request` decision).
    pub fn decide(&self, req: &Request) -> std::result::Result<Accept, HttpResponse> {
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

    /// Runs the handshake on `stream` (an accepted connection, TLS already
    /// done) and, if it is accepted, its route's handler to the end.
    pub async fn serve(&self, stream: S, peer: Option<SocketAddr>) {
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
}

type Spawner = Arc<dyn Fn(ConnectionFuture) + Send + Sync>;

/// What a [`Server`] lets unauthenticated peers make it hold, and for how
/// long. Every field has a default meant to be safe on the open Internet
/// (SECURITY.md compares them with other servers'); see
/// [`Server::limits`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Limits {
    /// Connections served at once (default 10,000). Past it a new TCP
    /// connection is closed at once, before TLS or the handshake, and a
    /// warning logged.
    pub max_connections: usize,
    /// Connections served at once from one IP address (default 256; 0:
    /// no limit). Past it, as for `max_connections`.
    pub max_connections_per_ip: usize,
    /// Read inactivity limit of an open connection (default 60 s): a ping
    /// at half of it, close 1001 at the end (the connection's
    /// [`Config::idle_timeout`](hookup_proto::Config::idle_timeout)).
    pub idle_timeout: Option<Duration>,
    /// Time to finish a data message once its first frame header arrived
    /// (default 60 s; close 1008; the connection's
    /// [`Config::message_timeout`](hookup_proto::Config::message_timeout)).
    pub message_timeout: Option<Duration>,
    /// Time queued output may make no progress before the connection is
    /// dropped (default 60 s; [`Config::write_stall_timeout`](crate::Config::write_stall_timeout)).
    pub write_stall_timeout: Option<Duration>,
    /// Bytes of unfinished incoming messages all connections may hold
    /// together (default 256 MiB): past it, the connection whose read went
    /// past it is closed with 1009 (see [`hookup_proto::InputBudget`]).
    /// `None`: no shared budget (each connection is still bounded by its
    /// `max_message_size`).
    pub max_buffered_input: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_ip: 256,
            idle_timeout: Some(Duration::from_secs(60)),
            message_timeout: Some(Duration::from_secs(60)),
            write_stall_timeout: Some(Duration::from_secs(60)),
            max_buffered_input: Some(256 << 20),
        }
    }
}

/// Connections being served, in total and by IP address.
#[derive(Debug, Default)]
struct Census {
    counts: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// A counted connection; uncounted on drop.
struct Admitted {
    census: Arc<Census>,
    ip: Option<IpAddr>,
}

impl Census {
    /// Counts a new connection from `ip`, or says which cap it is over.
    fn admit(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
        limits: &Limits,
    ) -> std::result::Result<Admitted, &'static str> {
        let mut g = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let (total, by_ip) = &mut *g;
        if *total >= limits.max_connections {
            return Err("connection limit reached");
        }
        if let Some(ip) = ip {
            let n = by_ip.entry(ip).or_insert(0);
            if limits.max_connections_per_ip > 0 && *n >= limits.max_connections_per_ip {
                if *n == 0 {
                    by_ip.remove(&ip);
                }
                return Err("per-IP connection limit reached");
            }
            *n += 1;
        }
        *total += 1;
        Ok(Admitted {
            census: self.clone(),
            ip,
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut g = self.census.counts.lock().unwrap_or_else(|e| e.into_inner());
        let (total, by_ip) = &mut *g;
        *total -= 1;
        if let Some(ip) = self.ip
            && let Some(n) = by_ip.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                by_ip.remove(&ip);
            }
        }
    }
}

/// A WebSocket server over the sockets of the runtime `R`: routes upgrade
/// requests by path to handlers and answers plain HTTP requests with a
/// configurable response. Adapters name it with `R` fixed
/// (`hookup_tokio::Server`).
///
/// Each accepted connection (TLS, handshake, handler) runs as a task of
/// `R`'s executor ([`Net::spawn`]; tokio: `tokio::spawn`), or, for a runtime
/// without one, inside [`BoundServer::run`] (concurrently, on the task that
/// awaits it). [`spawn_with`](Self::spawn_with) hands them to a spawner of
/// yours instead.
pub struct Server<R: Net> {
    routes: Routes<R::Stream, R>,
    spawn: Option<Spawner>,
    limits: Limits,
    census: Arc<Census>,
    tls_timeout: Duration,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl<R: Net> Clone for Server<R> {
    fn clone(&self) -> Self {
        Self {
            routes: self.routes.clone(),
            spawn: self.spawn.clone(),
            limits: self.limits.clone(),
            census: self.census.clone(),
            tls_timeout: self.tls_timeout,
            #[cfg(feature = "tls")]
            tls: self.tls.clone(),
        }
    }
}

impl<R: Net> Default for Server<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Net> fmt::Debug for Server<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Server");
        d.field("routes", &self.routes)
            .field("limits", &self.limits)
            .field("spawner", &self.spawn.is_some());
        #[cfg(feature = "tls")]
        d.field("tls", &self.tls.is_some());
        d.finish_non_exhaustive()
    }
}

impl<R: Net> Server<R> {
    /// A server with no routes.
    pub fn new() -> Self {
        Self {
            routes: Routes::default(),
            spawn: None,
            limits: Limits::default(),
            census: Arc::default(),
            tls_timeout: Duration::from_secs(10),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Serves WebSocket upgrades for `path` with `handler`.
    pub fn route<F, Fut>(mut self, path: &str, handler: F) -> Self
    where
        F: Fn(WebSocket<R::Stream, R>, Request) -> Fut + Send + Sync + 'static,
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

    /// Sets the connection configuration. The [`limits`](Self::limits)
    /// take precedence over its idle, message and write-stall timeouts and
    /// its input budget.
    pub fn config(mut self, config: Config) -> Self {
        self.routes.set_config(config);
        self
    }

    /// Sets the limits on what peers can make the server hold (default:
    /// [`Limits::default`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Runs each accepted connection through `spawn` (a task of your
    /// executor) instead of the runtime's default (see [`Server`]): with
    /// async-std `|f| { async_std::task::spawn(f); }`, with smol
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
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Binds a listener (`addr` as the runtime resolves it).
    pub async fn bind<A>(self, addr: A) -> io::Result<BoundServer<R>>
    where
        R: Bind<A>,
    {
        let listener = R::bind(addr).await?;
        let mut server = self;
        let mut config = server.routes.config().clone();
        config.proto.idle_timeout = server.limits.idle_timeout;
        config.proto.message_timeout = server.limits.message_timeout;
        config.write_stall_timeout = server.limits.write_stall_timeout;
        config.proto.input_budget = server
            .limits
            .max_buffered_input
            .map(hookup_proto::InputBudget::new);
        server.routes.set_config(config);
        Ok(BoundServer {
            server: Arc::new(server),
            listener,
        })
    }

    /// Serves one accepted TCP connection to its end.
    pub async fn serve_connection(&self, tcp: R::Tcp) {
        let peer = R::prepare(&tcp);
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
    async fn wrap(&self, tcp: R::Tcp) -> io::Result<R::Stream> {
        match &self.tls {
            None => Ok(R::plain(tcp)),
            Some(config) => {
                let accepting = R::tls_accept(tcp, config.clone());
                crate::net::timeout::<R, _>(self.tls_timeout, accepting)
                    .await
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                    })?
            }
        }
    }

    #[cfg(not(feature = "tls"))]
    async fn wrap(&self, tcp: R::Tcp) -> io::Result<R::Stream> {
        let _ = self.tls_timeout;
        Ok(R::plain(tcp))
    }
}

/// A [`Server`] bound to a listener.
pub struct BoundServer<R: Net> {
    server: Arc<Server<R>>,
    listener: R::Listener,
}

impl<R: Net> fmt::Debug for BoundServer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundServer")
            .field("server", &self.server)
            .field("local_addr", &R::local_addr(&self.listener).ok())
            .finish()
    }
}

impl<R: Net> BoundServer<R>
where
    R::Sleep: Send,
{
    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        R::local_addr(&self.listener)
    }

    /// Accepts connections forever (see [`Server`] on where they run).
    pub async fn run(self) -> io::Result<()> {
        self.run_until(std::future::pending()).await
    }

    /// Accepts connections until `shutdown` completes. Connections handed
    /// to a spawner go on; those driven by this future end with it.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let mut shutdown = pin!(shutdown);
        let mut incoming = pin!(R::incoming(&self.listener));
        let mut local = FuturesUnordered::<ConnectionFuture>::new();
        let mut backoff: Option<R::Sleep> = None;
        poll_fn(|cx| {
            if shutdown.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            loop {
                if let Some(t) = &mut backoff {
                    if R::poll_sleep(t, cx).is_pending() {
                        break;
                    }
                    backoff = None;
                }
                match incoming.as_mut().poll_next(cx) {
                    Poll::Ready(Some(Ok(tcp))) => {
                        let peer = R::prepare(&tcp);
                        let admitted = match self
                            .server
                            .census
                            .admit(peer.map(|p| p.ip()), &self.server.limits)
                        {
                            Ok(a) => a,
                            Err(why) => {
                                tracing::warn!(?peer, "connection refused: {why}");
                                drop(tcp);
                                continue;
                            }
                        };
                        let server = self.server.clone();
                        let conn: ConnectionFuture = Box::pin(async move {
                            server.serve_connection(tcp).await;
                            drop(admitted);
                        });
                        match &self.server.spawn {
                            Some(spawn) => spawn(conn),
                            None => {
                                if let Err(conn) = R::spawn(conn) {
                                    local.push(conn);
                                }
                            }
                        }
                    }
                    Poll::Ready(Some(Err(e))) => {
                        // Out of file descriptors and the like: back off briefly.
                        tracing::warn!("accept failed: {e}");
                        backoff = Some(R::sleep_until(R::now() + Duration::from_millis(50)));
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
