//! The async-io side of the driver: [`AsyncIo`] (clock, timer and I/O on
//! `futures-io` streams) and the `hookup-driver` types with the runtime
//! fixed to it.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use async_io::Timer;
use bytes::BytesMut;
use futures_io::{AsyncRead, AsyncWrite};
use hookup_driver::{Runtime, Transport};

pub use hookup_driver::Config;

/// async-io as `hookup-driver` uses it: the system clock, `async_io::Timer`
/// and I/O on any `futures_io::AsyncRead + AsyncWrite + Unpin` stream.
/// Independent of the executor: async-io runs its reactor on whichever
/// thread blocks on it, or on its own thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncIo;

impl Runtime for AsyncIo {
    type Sleep = Timer;

    fn now() -> Instant {
        Instant::now()
    }
    fn sleep_until(deadline: Instant) -> Timer {
        Timer::at(deadline)
    }
    fn reset(sleep: &mut Timer, deadline: Instant) {
        sleep.set_at(deadline);
    }
    fn poll_sleep(sleep: &mut Timer, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(sleep).poll(cx).map(drop)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Transport<S> for AsyncIo {
    /// `futures-io` reads into initialised memory: the driver offers only
    /// the read size it wants, and that much is zeroed per read.
    const ZERO_FILL: bool = true;

    fn poll_read(
        io: &mut S,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let start = buf.len();
        buf.resize(start + len, 0);
        let r = Pin::new(io).poll_read(cx, &mut buf[start..]);
        let n = match &r {
            Poll::Ready(Ok(n)) => *n,
            _ => 0,
        };
        buf.truncate(start + n);
        r
    }
    fn poll_write_vectored(
        io: &mut S,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(io).poll_write_vectored(cx, bufs)
    }
    /// `futures-io` has no way to ask; its default `poll_write_vectored`
    /// writes the first slice, which is what a non-vectored write does.
    fn is_write_vectored(_: &S) -> bool {
        true
    }
    fn poll_flush(io: &mut S, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(io).poll_flush(cx)
    }
    fn poll_close(io: &mut S, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(io).poll_close(cx)
    }
}

/// A WebSocket connection over a `futures-io` stream `S`: a `Stream` of
/// incoming [`Message`](crate::Message)s and a `Sink` of outgoing ones,
/// with `recv`/`send`. See [`hookup_driver::WebSocket`] for cancel safety,
/// coalescing and control frames.
pub type WebSocket<S> = hookup_driver::WebSocket<S, AsyncIo>;

/// The reading half of a split [`WebSocket`].
pub type ReadHalf<S> = hookup_driver::ReadHalf<S, AsyncIo>;

/// The writing half of a split [`WebSocket`].
pub type WriteHalf<S> = hookup_driver::WriteHalf<S, AsyncIo>;
