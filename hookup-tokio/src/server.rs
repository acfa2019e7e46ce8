//! Accepting connections: a single stream, or a whole server with routes.
// The handshake decision returns an `http::Response` by value: it happens
// once per connection, and boxing it would only burden the callback signature.
#![allow(clippy::result_large_err)]

use hookup_driver::Result;
use hookup_proto::{Accept, Request};
use tokio::io::{AsyncRead, AsyncWrite};

pub use hookup_driver::{ConnectionFuture, HttpResponse, text_response};

use crate::rt::{Config, Tokio, WebSocket};

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
/// answers plain HTTP requests with a configurable response. Each accepted
/// connection runs as a `tokio::spawn` task (or goes to
/// [`spawn_with`](hookup_driver::Server::spawn_with)'s spawner).
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
pub type Server = hookup_driver::Server<Tokio>;

/// A [`Server`] bound to a listener.
pub type BoundServer = hookup_driver::BoundServer<Tokio>;
