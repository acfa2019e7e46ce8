//! Sockets as a runtime has them: the adapter's half of connecting and
//! serving. [`Net`] is TCP (connect, listen, accept), TLS over it and task
//! spawning; [`Bind`] is binding a listener to an address the runtime
//! resolves. With them the driver connects ([`open_transport`](crate::open_transport),
//! [`connect`](crate::connect)) and runs a [`Server`](crate::Server).

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use futures_core::Stream;

use crate::{Runtime, Transport};

/// One connection's work (TLS, handshake and route handler), as a
/// [`Server`](crate::Server) hands it to a spawner.
pub type ConnectionFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// TCP, TLS and tasks as a runtime does them. Implemented by an adapter's
/// marker type, next to [`Runtime`] and [`Transport`] for its stream type
/// [`Stream`](Self::Stream) (TCP in the clear or under TLS).
pub trait Net: Transport<Self::Stream> + Sized {
    /// A connected TCP stream.
    type Tcp: Send + 'static;
    /// A bound TCP listener.
    type Listener: Send + Sync + 'static;
    /// A TCP stream in the clear or under TLS (the adapter's
    /// `MaybeTlsStream`).
    type Stream: Send + 'static;

    /// Connects to `host` (a name to resolve or an address) and `port`.
    fn connect_tcp(host: String, port: u16) -> impl Future<Output = io::Result<Self::Tcp>> + Send;

    /// Turns Nagle's algorithm off on `tcp` (WebSocket frames are written
    /// whole; errors are ignored) and returns the peer's address.
    fn prepare(tcp: &Self::Tcp) -> Option<SocketAddr>;

    /// The stream for `tcp` in the clear.
    fn plain(tcp: Self::Tcp) -> Self::Stream;

    /// The TLS client handshake on `tcp` for `name`. The default (an
    /// adapter built without TLS) fails.
    #[cfg(feature = "tls")]
    fn tls_connect(
        tcp: Self::Tcp,
        name: rustls_pki_types::ServerName<'static>,
        config: std::sync::Arc<rustls::ClientConfig>,
    ) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        let _ = (tcp, name, config);
        std::future::ready(Err(no_tls()))
    }

    /// The TLS server handshake on `tcp`. The default (an adapter built
    /// without TLS) fails.
    #[cfg(feature = "tls")]
    fn tls_accept(
        tcp: Self::Tcp,
        config: std::sync::Arc<rustls::ServerConfig>,
    ) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        let _ = (tcp, config);
        std::future::ready(Err(no_tls()))
    }

    /// The address `listener` is bound to.
    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr>;

    /// The connections `listener` accepts, as they come.
    fn incoming(listener: &Self::Listener)
    -> impl Stream<Item = io::Result<Self::Tcp>> + Send + '_;

    /// Runs `task` on the runtime's executor, or hands it back (`Err`) to
    /// be driven inside [`BoundServer::run`](crate::BoundServer::run) when
    /// the runtime has no executor of its own.
    fn spawn(task: ConnectionFuture) -> Result<(), ConnectionFuture>;
}

/// Binding a listener to addresses of type `A` (what the runtime resolves:
/// `tokio::net::ToSocketAddrs`, `async_net::AsyncToSocketAddrs`).
pub trait Bind<A>: Net {
    /// Binds a TCP listener to `addr`.
    fn bind(addr: A) -> impl Future<Output = io::Result<Self::Listener>>;
}

/// The error of the default TLS methods of [`Net`].
#[cfg(feature = "tls")]
fn no_tls() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "TLS needs the adapter's `tls` feature",
    )
}

/// `f`, or `None` if it has not completed after `d` on `R`'s clock (`f` is
/// then dropped).
pub async fn timeout<R: Runtime, F: Future>(d: Duration, f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    let mut sleep = R::sleep_until(R::now() + d);
    poll_fn(|cx| {
        if let Poll::Ready(v) = f.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        R::poll_sleep(&mut sleep, cx).map(|()| None)
    })
    .await
}
