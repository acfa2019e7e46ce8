//! Accepting connections: a single stream, or a whole server with routes.
// The handshake decision returns an `http::Response` by value: it happens
// once per connection, and boxing it would only burden the callback signature.
#![allow(clippy::result_large_err)]

use futures_io::{AsyncRead, AsyncWrite};
use hookup_driver::Result;
use hookup_proto::{Accept, Request};

pub use hookup_driver::{ConnectionFuture, HttpResponse, text_response};

use crate::rt::{AsyncIo, Config, WebSocket};

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
/// It needs no executor of its own: by default [`BoundServer::run`] drives
/// every connection inside its own future (concurrently, on the task that
/// awaits it). To run each connection as a task of your executor — in
/// parallel on a multi-threaded one — pass a spawner with
/// [`spawn_with`](hookup_driver::Server::spawn_with):
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
pub type Server = hookup_driver::Server<AsyncIo>;

/// A [`Server`] bound to a listener.
pub type BoundServer = hookup_driver::BoundServer<AsyncIo>;
