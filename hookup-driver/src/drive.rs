//! [`Io`]: the drive loop, written once for every sans-IO [`Endpoint`]
//! (a plain `Connection`, a reliable `Session`).
//!
//! One pass ([`Io::poll_drive`]) writes out everything queued (one
//! vectored write), fires due timers and reads once; at the end,
//! [`Io::poll_finish`] writes out what is left and shuts the stream down.
//! An I/O error is handled in one place, the same way for every endpoint:
//! the transport is over (no more reads), the endpoint is told so through
//! `handle_eof`, and the first error is kept for the driver to report
//! ([`Io::take_error`]). The drivers (the plain WebSocket, the reliable
//! client and peer) differ only in what they do with the endpoint's events.

use std::io::{self, IoSlice};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hookup_proto::Endpoint;

use crate::timer::Timer;
use crate::{Runtime, Transport};

/// The first read size; reads grow from here while the socket fills them.
const MIN_READ: usize = 4 << 10;

/// Where [`Io::poll_finish`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Finish {
    /// Not started (the stream is in use).
    No,
    /// Writing out the last bytes.
    WriteOut,
    /// Shutting the stream's writing side down.
    Shutdown,
    /// Done: the stream is shut.
    Done,
}

/// What a pass of the drive loop ([`Io::poll_drive`]) moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Drove {
    /// Input reached the endpoint, a timer fired or the transport ended:
    /// the endpoint may have events.
    Input,
    /// Only queued output was written (some or all of it): an endpoint with
    /// a write window may have room for more, and outcomes to report. Every
    /// other source is waiting (its waker registered).
    Output,
}

/// The runtime half of a driver: the stream, the timer, the read sizing and
/// the state of the transport (ended, failed, finished). Its methods take
/// the sans-IO [`Endpoint`] they serve (a `Connection` or a reliable
/// `Session`), so one `Io` can outlive a connection.
pub struct Io<S, R: Runtime> {
    stream: S,
    pub(crate) timer: Timer<R>,
    need_flush: bool,
    read_size: usize,
    max_read_size: usize,
    /// The transport ended (end of file or an I/O error): no more reads.
    read_eof: bool,
    /// The first I/O error, until the driver takes it.
    error: Option<io::Error>,
    finish: Finish,
    /// Longest time queued output may make no progress (see
    /// [`set_write_stall_timeout`](Self::set_write_stall_timeout)).
    stall_timeout: Option<Duration>,
    /// Armed while a write waits: the deadline for progress.
    stall: Option<R::Sleep>,
    /// The write stalled past the timeout: no more writes are tried (the
    /// end of the connection does not wait for this peer again).
    stalled: bool,
}

impl<S, R: Transport<S>> Io<S, R> {
    /// Wraps `stream`; reads grow up to `max_read_size` bytes.
    pub fn new(stream: S, max_read_size: usize) -> Self {
        Self {
            stream,
            timer: Timer::default(),
            need_flush: false,
            read_size: MIN_READ,
            max_read_size: max_read_size.max(MIN_READ),
            read_eof: false,
            error: None,
            finish: Finish::No,
            stall_timeout: None,
            stall: None,
            stalled: false,
        }
    }

    /// Fails the transport (an I/O error of kind `TimedOut`) when queued
    /// output makes no progress for `timeout`: the peer stopped reading.
    /// `None` (the default) waits forever.
    pub fn set_write_stall_timeout(&mut self, timeout: Option<Duration>) {
        self.stall_timeout = timeout;
        self.stall = None;
    }

    /// The write-stall timeout (see [`set_write_stall_timeout`](Self::set_write_stall_timeout)).
    pub fn write_stall_timeout(&self) -> Option<Duration> {
        self.stall_timeout
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The stream, taken out.
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// Whether output is queued or a flush is owed.
    pub fn has_output(&self, e: &impl Endpoint) -> bool {
        e.transmit_len() > 0 || self.need_flush
    }

    /// The first I/O error the transport had, if any (taken: it is
    /// reported once).
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    /// One pass of the drive loop over `e`: writes out everything queued
    /// (one vectored write for all of it, then a flush), fires due timers
    /// and, if `read` and the endpoint wants input, reads once and hands
    /// the bytes (or the end of the transport) to it. Every source that has
    /// nothing to do registers `cx`'s waker.
    ///
    /// `Ready` with what moved, `Pending` when every source is waiting. The
    /// caller looks at the endpoint after a `Ready` before the next pass.
    ///
    /// An I/O error ends the transport: see [`take_error`](Self::take_error).
    pub fn poll_drive(
        &mut self,
        e: &mut impl Endpoint,
        read: bool,
        cx: &mut Context<'_>,
    ) -> Poll<Drove> {
        let mut wrote = false;
        if self.has_output(e) {
            let queued = e.transmit_len();
            match self.poll_write_out(e, cx) {
                Poll::Ready(Ok(())) => wrote = true,
                Poll::Ready(Err(err)) => {
                    self.fail(e, err);
                    return Poll::Ready(Drove::Input);
                }
                // Part of it went out: room in the write window.
                Poll::Pending => wrote = e.transmit_len() != queued,
            }
        }
        if self.timer.poll(e, cx) || (read && self.poll_read_once(e, cx).is_ready()) {
            return Poll::Ready(Drove::Input);
        }
        if wrote {
            Poll::Ready(Drove::Output)
        } else {
            Poll::Pending
        }
    }

    /// Reads once, if the endpoint wants input and the transport has not
    /// ended, and hands the bytes (or the end) to the endpoint. `Ready`
    /// when it did.
    pub fn poll_read_once(&mut self, e: &mut impl Endpoint, cx: &mut Context<'_>) -> Poll<()> {
        if self.read_eof || self.finish != Finish::No || !e.wants_read() {
            return Poll::Pending;
        }
        match ready!(self.poll_read(e, cx)) {
            Ok(0) => {
                self.read_eof = true;
                e.handle_eof(R::now());
            }
            Ok(_) => e.handle_read(R::now()),
            Err(err) => self.fail(e, err),
        }
        Poll::Ready(())
    }

    /// Writes out what is queued and flushes, for a caller that waits for
    /// it (`send`, `flush`): an error ends the transport as any other does,
    /// and is returned to the caller as well (its copy is kept for
    /// [`take_error`](Self::take_error)).
    pub fn poll_write(
        &mut self,
        e: &mut impl Endpoint,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        match ready!(self.poll_write_out(e, cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(err) => {
                let copy = match err.raw_os_error() {
                    Some(code) => io::Error::from_raw_os_error(code),
                    None => io::Error::new(err.kind(), err.to_string()),
                };
                self.fail(e, copy);
                Poll::Ready(Err(err))
            }
        }
    }

    /// The transport failed: it is over; the endpoint hears of it as the
    /// end of the transport, and the first error is kept.
    fn fail(&mut self, e: &mut impl Endpoint, err: io::Error) {
        if self.error.is_none() {
            self.error = Some(err);
        }
        if !self.read_eof {
            self.read_eof = true;
            e.handle_eof(R::now());
        }
    }

    /// The end of a connection: writes out what is left (an error changes
    /// nothing: we are closing), then shuts the stream's writing side down
    /// and drops the timer. `Ready` once done (and from then on).
    pub fn poll_finish(&mut self, e: &mut impl Endpoint, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match self.finish {
                Finish::No | Finish::WriteOut => {
                    self.finish = Finish::WriteOut;
                    let _ = ready!(self.poll_write_out(e, cx));
                    self.finish = Finish::Shutdown;
                }
                Finish::Shutdown => {
                    let _ = ready!(self.poll_shutdown(cx));
                    self.finish = Finish::Done;
                }
                Finish::Done => return Poll::Ready(()),
            }
        }
    }

    /// Writes out all queued output (vectored: large payloads are not
    /// copied) and flushes the stream.
    pub fn poll_write_out(
        &mut self,
        e: &mut impl Endpoint,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if self.stalled {
            return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        match self.poll_write_out_inner(e, cx) {
            Poll::Pending => {
                if let Some(t) = self.stall_timeout {
                    let sleep = self
                        .stall
                        .get_or_insert_with(|| R::sleep_until(R::now() + t));
                    if R::poll_sleep(sleep, cx).is_ready() {
                        self.stall = None;
                        self.stalled = true;
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("peer read nothing for {t:?}: write stalled"),
                        )));
                    }
                }
                Poll::Pending
            }
            ready => {
                self.stall = None;
                ready
            }
        }
    }

    fn poll_write_out_inner(
        &mut self,
        e: &mut impl Endpoint,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while e.transmit_len() > 0 {
            let n = if R::is_write_vectored(&self.stream) {
                let mut slices = [IoSlice::new(&[]); 32];
                let k = e.transmit_vectored(&mut slices);
                ready!(R::poll_write_vectored(&mut self.stream, cx, &slices[..k]))?
            } else {
                let mut slices = [IoSlice::new(&[])];
                e.transmit_vectored(&mut slices);
                ready!(R::poll_write_vectored(&mut self.stream, cx, &slices))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            e.advance_transmit(n);
            self.need_flush = true;
            // Progress: the stall deadline starts again.
            self.stall = None;
        }
        if self.need_flush {
            ready!(R::poll_flush(&mut self.stream, cx))?;
            self.need_flush = false;
        }
        Poll::Ready(Ok(()))
    }

    /// Fires due timers; arms the sleep otherwise. Returns whether a timer fired.
    pub fn poll_timer(&mut self, e: &mut impl Endpoint, cx: &mut Context<'_>) -> bool {
        self.timer.poll(e, cx)
    }

    /// Reads once into the endpoint's buffer (reads grow while the socket
    /// fills them and shrink back when it does not).
    pub fn poll_read(
        &mut self,
        e: &mut impl Endpoint,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let want = e.read_hint(self.read_size).min(self.max_read_size);
        let Some(buf) = e.read_buf() else {
            return Poll::Ready(Ok(0));
        };
        if buf.capacity() - buf.len() < MIN_READ {
            buf.reserve(want);
        }
        let room = buf.capacity() - buf.len();
        let len = if R::ZERO_FILL { room.min(want) } else { room };
        let n = ready!(R::poll_read(&mut self.stream, cx, buf, len))?;
        if n == len {
            self.read_size = (self.read_size * 2).min(self.max_read_size);
        } else if n < self.read_size / 4 {
            self.read_size = (self.read_size / 2).max(MIN_READ);
        }
        Poll::Ready(Ok(n))
    }

    /// Shuts the stream's writing side down and drops the timer.
    pub fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.stalled {
            // Shutting TLS down writes (close_notify): not to this peer.
            self.timer = Timer::default();
            return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        let r = ready!(R::poll_close(&mut self.stream, cx));
        self.timer = Timer::default();
        Poll::Ready(r)
    }
}
