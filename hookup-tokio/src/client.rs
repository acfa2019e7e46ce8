//! Connecting as a client.

use hookup_driver::{Error, Result, client_handshake};
use hookup_proto::{ClientRequest, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub use hookup_driver::ClientConfig;

use crate::stream::MaybeTlsStream;
use crate::ws::{Config, WebSocket};

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
    let stream = open_transport(&request, config).await?;
    client(stream, &request, &config.ws).await
}

/// Opens the TCP (and TLS) transport for a request.
pub(crate) async fn open_transport(
    request: &ClientRequest,
    config: &ClientConfig,
) -> Result<MaybeTlsStream> {
    let addr = (request.host().to_owned(), request.port());
    let tcp = tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| Error::Connect(format!("timed out connecting to {}", request.uri())))?
        .map_err(|e| Error::Connect(format!("{}: {e}", request.uri())))?;
    let _ = tcp.set_nodelay(true);
    if request.is_tls() {
        tls_connect(tcp, request, config).await
    } else {
        Ok(MaybeTlsStream::Plain(tcp))
    }
}

#[cfg(feature = "tls")]
async fn tls_connect(
    tcp: TcpStream,
    request: &ClientRequest,
    config: &ClientConfig,
) -> Result<MaybeTlsStream> {
    use rustls_pki_types::ServerName;
    let tls = config
        .tls
        .clone()
        .unwrap_or_else(crate::tls::default_client_config);
    let name = ServerName::try_from(request.host().to_owned())
        .map_err(|e| Error::Connect(format!("invalid TLS server name {}: {e}", request.host())))?;
    let connector = tokio_rustls::TlsConnector::from(tls);
    let s = tokio::time::timeout(config.connect_timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| Error::Connect("TLS handshake timed out".into()))?
        .map_err(|e| Error::Connect(format!("TLS handshake failed: {e}")))?;
    Ok(MaybeTlsStream::ClientTls(Box::new(s)))
}

#[cfg(not(feature = "tls"))]
async fn tls_connect(_: TcpStream, _: &ClientRequest, _: &ClientConfig) -> Result<MaybeTlsStream> {
    Err(Error::Connect("wss:// needs the `tls` feature".into()))
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
