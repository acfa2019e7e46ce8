//! Accepting connections: the server handshake on one stream, and the
//! routing table of a server (what is left to an adapter is the listener,
//! TLS and spawning).
// The handshake decision returns an `http::Response` by value: it happens
// once per connection, and boxing it would only burden the callback signature.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::fmt;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use hookup_proto::http::{self, HeaderValue, StatusCode, header};
use hookup_proto::{Accept, Connection, Event, Request};

use crate::error::{Error, Result};
use crate::ws::{Config, Core, WebSocket};
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
    let conn = Connection::server(config.proto.clone(), R::now());
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
