//! async-net's sockets as the driver uses them: a TCP stream in the clear
//! or under TLS ([`MaybeTlsStream`]), and [`Net`] for [`AsyncIo`] (connect,
//! listen, TLS through futures-rustls; no executor of its own).

use std::future::Future;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::task::{Context, Poll};

use async_net::{AsyncToSocketAddrs, TcpListener, TcpStream};
use futures_io::{AsyncRead, AsyncWrite};
use futures_util::Stream;
#[cfg(feature = "tls")]
use hookup_driver::tls::{ClientConfig, ServerConfig, ServerName};
use hookup_driver::{Bind, ConnectionFuture, Net};

use crate::rt::AsyncIo;

/// A TCP stream (async-net), in the clear or wrapped in TLS (futures-rustls).
#[derive(Debug)]
#[non_exhaustive]
pub enum MaybeTlsStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS, client side.
    #[cfg(feature = "tls")]
    ClientTls(Box<futures_rustls::client::TlsStream<TcpStream>>),
    /// TLS, server side.
    #[cfg(feature = "tls")]
    ServerTls(Box<futures_rustls::server::TlsStream<TcpStream>>),
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
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_read_vectored(cx, bufs))
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
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_close(cx))
    }
}

impl Net for AsyncIo {
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
        let s = futures_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        Ok(MaybeTlsStream::ClientTls(Box::new(s)))
    }
    #[cfg(feature = "tls")]
    async fn tls_accept(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<MaybeTlsStream> {
        let s = futures_rustls::TlsAcceptor::from(config)
            .accept(tcp)
            .await?;
        Ok(MaybeTlsStream::ServerTls(Box::new(s)))
    }
    fn local_addr(listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }
    fn incoming(listener: &TcpListener) -> impl Stream<Item = io::Result<TcpStream>> + Send + '_ {
        listener.incoming()
    }
    /// No executor: connections run inside `BoundServer::run` unless the
    /// server has a spawner (`Server::spawn_with`).
    fn spawn(task: ConnectionFuture) -> Result<(), ConnectionFuture> {
        Err(task)
    }
}

impl<A: AsyncToSocketAddrs> Bind<A> for AsyncIo {
    fn bind(addr: A) -> impl Future<Output = io::Result<TcpListener>> {
        TcpListener::bind(addr)
    }
}
