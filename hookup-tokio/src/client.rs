//! Connecting as a client.

use hookup_driver::{ClientConfig, Result, client_handshake};
use hookup_proto::{ClientRequest, Response};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::rt::{Config, Tokio, WebSocket};
use crate::stream::MaybeTlsStream;

/// Connects to a `ws://` or `wss://` URL with default settings.
pub async fn connect(url: &str) -> Result<WebSocket<MaybeTlsStream>> {
    let request = ClientRequest::new(url)?;
    Ok(connect_with(request, &ClientConfig::default()).await?.0)
}

/// Connects with a full request (subprotocols, headers) and settings;
/// returns the socket and the server's handshake response.
pub async fn connect_with(
    request: ClientRequest,
    config: &ClientConfig,
) -> Result<(WebSocket<MaybeTlsStream>, Response)> {
    hookup_driver::connect::<Tokio>(&request, config).await
}

/// Runs the client handshake over any stream (for example one that is
/// already connected, or an in-memory duplex).
pub async fn client<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    request: &ClientRequest,
    config: &Config,
) -> Result<(WebSocket<S>, Response)> {
    client_handshake(io, request, config).await
}
