//! Connecting as a client: TCP, TLS for `wss://`, then the handshake.

use hookup_proto::{ClientRequest, Response};

use crate::ClientConfig;
use crate::error::{Error, Result};
use crate::net::{Net, timeout};
use crate::ws::{WebSocket, client_handshake};

/// Connects to `request`'s URL over `R`'s sockets (TLS for `wss://`) and
/// runs the handshake; returns the socket and the server's response.
pub async fn connect<R: Net>(
    request: &ClientRequest,
    config: &ClientConfig,
) -> Result<(WebSocket<R::Stream, R>, Response)> {
    let stream = open_transport::<R>(request, config).await?;
    client_handshake(stream, request, &config.ws).await
}

/// Opens the TCP (and, for `wss://`, TLS) transport for `request`. TCP
/// connect and TLS handshake each have `config.connect_timeout`.
pub async fn open_transport<R: Net>(
    request: &ClientRequest,
    config: &ClientConfig,
) -> Result<R::Stream> {
    let connecting = R::connect_tcp(request.host().to_owned(), request.port());
    let tcp = timeout::<R, _>(config.connect_timeout, connecting)
        .await
        .ok_or_else(|| Error::Connect(format!("timed out connecting to {}", request.uri())))?
        .map_err(|e| Error::Connect(format!("{}: {e}", request.uri())))?;
    R::prepare(&tcp);
    if request.is_tls() {
        tls_connect::<R>(tcp, request, config).await
    } else {
        Ok(R::plain(tcp))
    }
}

#[cfg(feature = "tls")]
async fn tls_connect<R: Net>(
    tcp: R::Tcp,
    request: &ClientRequest,
    config: &ClientConfig,
) -> Result<R::Stream> {
    use rustls_pki_types::ServerName;
    let tls = config
        .tls
        .clone()
        .unwrap_or_else(crate::tls::default_client_config);
    let name = ServerName::try_from(request.host().to_owned())
        .map_err(|e| Error::Connect(format!("invalid TLS server name {}: {e}", request.host())))?;
    timeout::<R, _>(config.connect_timeout, R::tls_connect(tcp, name, tls))
        .await
        .ok_or_else(|| Error::Connect("TLS handshake timed out".into()))?
        .map_err(|e| Error::Connect(format!("TLS handshake failed: {e}")))
}

#[cfg(not(feature = "tls"))]
async fn tls_connect<R: Net>(_: R::Tcp, _: &ClientRequest, _: &ClientConfig) -> Result<R::Stream> {
    Err(Error::Connect("wss:// needs the `tls` feature".into()))
}
