//! The tokio side of the driver: [`Tokio`] (clock, timer and stream I/O)
//! and the `hookup-driver` types with the runtime fixed to it.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{BufMut as _, BytesMut};
use hookup_driver::{Runtime, Transport};
use tokio::io::{AsyncRead, AsyncWrite};

pub use hookup_driver::Config;

/// The tokio runtime as `hookup-driver` uses it: tokio's clock and sleep,
/// and I/O on any `tokio::io::AsyncRead + AsyncWrite + Unpin` stream.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tokio;

impl Runtime for Tokio {
    type Sleep = Pin<Box<tokio::time::Sleep>>;

    /// tokio's clock, so that `tokio::time::pause()` drives timers in tests.
    fn now() -> Instant {
        tokio::time::Instant::now().into_std()
    }
    fn sleep_until(deadline: Instant) -> Self::Sleep {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }
    fn reset(sleep: &mut Self::Sleep, deadline: Instant) {
        sleep.as_mut().reset(deadline.into());
    }
    fn poll_sleep(sleep: &mut Self::Sleep, cx: &mut Context<'_>) -> Poll<()> {
        sleep.as_mut().poll(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Transport<S> for Tokio {
    fn poll_read(
        io: &mut S,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        // Straight into the uninitialised spare capacity: nothing is zeroed.
        tokio_util::io::poll_read_buf(Pin::new(io), cx, &mut buf.limit(len))
    }
    fn poll_write_vectored(
        io: &mut S,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(io: &S) -> bool {
        io.is_write_vectored()
    }
    fn poll_flush(io: &mut S, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(io).poll_flush(cx)
    }
    fn poll_close(io: &mut S, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(io).poll_shutdown(cx)
    }
}

/// A WebSocket connection over a tokio stream `S`: a `Stream` of incoming
/// [`Message`](crate::Message)s and a `Sink` of outgoing ones, with
/// `recv`/`send`. See [`hookup_driver::WebSocket`] for cancel safety,
/// coalescing and control frames.
pub type WebSocket<S> = hookup_driver::WebSocket<S, Tokio>;

/// The reading half of a split [`WebSocket`].
pub type ReadHalf<S> = hookup_driver::ReadHalf<S, Tokio>;

/// The writing half of a split [`WebSocket`].
pub type WriteHalf<S> = hookup_driver::WriteHalf<S, Tokio>;
