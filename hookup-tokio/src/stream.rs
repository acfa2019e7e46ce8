//! tokio's sockets as the driver uses them: a TCP stream in the clear or
//! under TLS ([`MaybeTlsStream`]), and [`Net`] for [`Tokio`] (connect,
//! listen, TLS through tokio-rustls, `tokio::spawn`).

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
#[cfg(feature = "tls")]
use hookup_driver::tls::{ClientConfig, ServerConfig, ServerName};
use hookup_driver::{Bind, ConnectionFuture, Net};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

use crate::rt::Tokio;

/// A TCP stream, in the clear or wrapped in TLS.
#[derive(Debug)]
#[non_exhaustive]
pub enum MaybeTlsStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS, client side.
    #[cfg(feature = "tls")]
    ClientTls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// TLS, server side.
    #[cfg(feature = "tls")]
    ServerTls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl MaybeTlsStream {
    /// The TCP stream underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(s) => s,
            #[cfg(feature = "tls")]
            Self::ClientTls(s) => s.get_ref().0,
            #[cfg(feature = "tls")]
            Self::ServerTls(s) => s.get_ref().0,
        }
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            MaybeTlsStream::Plain($s) => $e,
            #[cfg(feature = "tls")]
            MaybeTlsStream::ClientTls($s) => $e,
            #[cfg(feature = "tls")]
            MaybeTlsStream::ServerTls($s) => $e,
        }
    };
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, buf))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            Self::ClientTls(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            Self::ServerTls(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

impl Net for Tokio {
    type Tcp = TcpStream;
    type Listener = TcpListener;
    type Stream = MaybeTlsStream;

    fn connect_tcp(host: String, port: u16) -> impl Future<Output = io::Result<TcpStream>> + Send {
        TcpStream::connect((host, port))
    }
    fn prepare(tcp: &TcpStream) -> Option<SocketAddr> {
        let _ = tcp.set_nodelay(true);
        tcp.peer_addr().ok()
    }
    fn plain(tcp: TcpStream) -> MaybeTlsStream {
        MaybeTlsStream::Plain(tcp)
    }
    #[cfg(feature = "tls")]
    async fn tls_connect(
        tcp: TcpStream,
        name: ServerName<'static>,
        config: Arc<ClientConfig>,
    ) -> io::Result<MaybeTlsStream> {
        let s = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        Ok(MaybeTlsStream::ClientTls(Box::new(s)))
    }
    #[cfg(feature = "tls")]
    async fn tls_accept(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<MaybeTlsStream> {
        let s = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await?;
        Ok(MaybeTlsStream::ServerTls(Box::new(s)))
    }
    fn local_addr(listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }
    fn incoming(listener: &TcpListener) -> impl Stream<Item = io::Result<TcpStream>> + Send + '_ {
        futures_util::stream::poll_fn(|cx| {
            listener
                .poll_accept(cx)
                .map(|r| Some(r.map(|(tcp, _)| tcp)))
        })
    }
    /// `tokio::spawn`.
    fn spawn(task: ConnectionFuture) -> Result<(), ConnectionFuture> {
        tokio::spawn(task);
        Ok(())
    }
}

impl<A: ToSocketAddrs> Bind<A> for Tokio {
    fn bind(addr: A) -> impl Future<Output = io::Result<TcpListener>> {
        TcpListener::bind(addr)
    }
}
