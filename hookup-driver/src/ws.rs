//! The WebSocket type: a `hookup_proto::Connection` wired to a stream and a
//! timer of some runtime `R`.
//!
//! All I/O happens inside `poll_*` calls of the application's own task: no
//! task is spawned per connection. Reading drains every frame of a read
//! before returning; writing takes all queued frames in one (vectored) write.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker, ready};
use std::time::Instant;

use futures_core::Stream;
use futures_sink::Sink;
use hookup_proto::{CloseCode, Closed, Connection, Endpoint, Event, Initiator, Response};

use crate::error::{Error, Result, closed_error};
use crate::message::Message;
use crate::{Runtime, Transport};

/// Adapter configuration.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The protocol state machine's configuration (limits, timeouts, ...).
    pub proto: hookup_proto::Config,
    /// Queued output above which sending waits for the socket
    /// (backpressure; default 128 KiB).
    pub write_buffer_size: usize,
    /// Largest single read from the socket (default 64 KiB). Reads start at
    /// 4 KiB and grow while the socket keeps filling them, so idle
    /// connections hold little memory.
    pub max_read_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            proto: hookup_proto::Config::default(),
            write_buffer_size: 128 << 10,
            max_read_size: 64 << 10,
        }
    }
}

const MIN_READ: usize = 4 << 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    /// `Event::Closed` seen: write out what is left, then shut down.
    Flushing,
    ShuttingDown,
    Done,
}

/// A runtime sleep armed at an endpoint's `poll_timeout`, created only when
/// a timer is first needed and re-armed in place after that.
pub struct Timer<R: Runtime> {
    sleep: Option<R::Sleep>,
    sleep_at: Option<Instant>,
}

impl<R: Runtime> Default for Timer<R> {
    fn default() -> Self {
        Self {
            sleep: None,
            sleep_at: None,
        }
    }
}

impl<R: Runtime> Timer<R> {
    /// Fires due timers of `e`; arms the sleep otherwise. Returns whether a
    /// timer fired.
    pub fn poll(&mut self, e: &mut impl Endpoint, cx: &mut Context<'_>) -> bool {
        let Some(at) = e.poll_timeout() else {
            self.sleep_at = None;
            return false;
        };
        // Check the clock first: a runtime may report an elapsed sleep as
        // pending (tokio's coop budget does).
        let t = R::now();
        if t >= at {
            e.handle_timeout(t);
            return true;
        }
        if self.sleep_at != Some(at) {
            match &mut self.sleep {
                Some(s) => R::reset(s, at),
                None => self.sleep = Some(R::sleep_until(at)),
            }
            self.sleep_at = Some(at);
        }
        let sleep = self.sleep.as_mut().expect("armed above");
        if R::poll_sleep(sleep, cx).is_ready() {
            self.sleep_at = None;
            e.handle_timeout(R::now());
            return true;
        }
        false
    }
}

/// The runtime half of a driver: the stream, the timer and the read sizing.
/// Its methods take the sans-IO [`Endpoint`] they serve (a `Connection` or
/// a reliable `Session`), so one `Io` can outlive a connection.
pub struct Io<S, R: Runtime> {
    stream: S,
    timer: Timer<R>,
    need_flush: bool,
    read_size: usize,
    max_read_size: usize,
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
        }
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

    /// Writes out all queued output (vectored: large payloads are not
    /// copied) and flushes the stream.
    pub fn poll_write_out(
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
        let r = ready!(R::poll_close(&mut self.stream, cx));
        self.timer = Timer::default();
        Poll::Ready(r)
    }
}

/// The driver of a plain WebSocket: a `Connection` on an `Io`.
pub(crate) struct Core<S, R: Runtime> {
    pub(crate) conn: Connection,
    io: Io<S, R>,
    read_eof: bool,
    write_buffer_size: usize,
    phase: Phase,
    io_error: Option<io::Error>,
    closed: Option<Closed>,
    /// The last item the stream yields after `Closed` (a close frame or an error).
    final_item: Option<Result<Message>>,
    /// The subprotocol agreed in the handshake.
    pub(crate) subprotocol: Option<String>,
    /// The application is working through received messages that were
    /// already waiting when `recv` returned: `send` leaves the write to its
    /// next `recv` (coalescing).
    in_burst: bool,
    /// This poll consumed input or advanced the phase. A split socket's
    /// other half may be waiting for exactly that and need not get a wakeup
    /// of its own: a readiness-based reactor (async-io) does not report
    /// data that was read before it looked.
    advanced: bool,
}

impl<S, R: Transport<S>> Core<S, R> {
    pub(crate) fn new(conn: Connection, io: S, config: &Config) -> Self {
        Self {
            conn,
            io: Io::new(io, config.max_read_size),
            read_eof: false,
            write_buffer_size: config.write_buffer_size,
            phase: Phase::Running,
            io_error: None,
            closed: None,
            final_item: None,
            in_burst: false,
            advanced: false,
            subprotocol: None,
        }
    }

    /// The state machine and the stream, for moving the connection into
    /// another driver (the reliable session).
    pub(crate) fn into_parts(self) -> (Connection, S) {
        (self.conn, self.io.into_inner())
    }

    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_write_out(&mut self.conn, cx)
    }

    /// Drives I/O until the state machine has an event; `None` once the
    /// connection is closed and the transport shut down.
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        loop {
            match self.phase {
                Phase::Done => return Poll::Ready(None),
                Phase::Flushing => {
                    // A failed final write changes nothing: we are closing.
                    let _ = ready!(self.poll_write_out(cx));
                    self.phase = Phase::ShuttingDown;
                    self.advanced = true;
                    continue;
                }
                Phase::ShuttingDown => {
                    let _ = ready!(self.io.poll_shutdown(cx));
                    self.phase = Phase::Done;
                    self.advanced = true;
                    continue;
                }
                Phase::Running => {}
            }
            if let Some(ev) = self.conn.poll_event() {
                if let Event::Closed(c) = &ev {
                    self.phase = Phase::Flushing;
                    self.closed = Some(c.clone());
                }
                return Poll::Ready(Some(ev));
            }
            // Nothing left to hand out: the application is about to wait,
            // so this is the moment to write everything queued in one go.
            if self.io.has_output(&self.conn)
                && let Poll::Ready(Err(e)) = self.poll_write_out(cx)
            {
                self.fail_io(e);
                continue;
            }
            if self.io.poll_timer(&mut self.conn, cx) {
                self.advanced = true;
                continue;
            }
            if self.read_eof || !self.conn.wants_read() {
                return Poll::Pending;
            }
            match self.io.poll_read(&mut self.conn, cx) {
                Poll::Ready(Ok(0)) => {
                    self.read_eof = true;
                    self.conn.handle_eof(R::now());
                }
                Poll::Ready(Ok(_)) => self.conn.handle_read(R::now()),
                Poll::Ready(Err(e)) => self.fail_io(e),
                Poll::Pending => return Poll::Pending,
            }
            self.advanced = true;
        }
    }

    fn fail_io(&mut self, e: io::Error) {
        self.read_eof = true;
        // After the close frames were exchanged, a reset is just the end.
        if self.io_error.is_none() && self.conn.state() != hookup_proto::State::ClosingRemote {
            self.io_error = Some(e);
        }
        self.conn.handle_eof(R::now());
    }

    /// The stream: messages (and surfaced control frames) until closed.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        let r = self.poll_next_item(cx);
        self.in_burst = r.is_ready() && self.conn.has_events();
        r
    }

    /// Reads and processes what the socket has ready, without waiting, so
    /// that pings are answered (and a peer's close or EOF is noticed) while
    /// the application only writes. Events stay queued for `poll_next`; the
    /// read stops at `max_buffered_bytes` like any other.
    fn poll_input(&mut self, cx: &mut Context<'_>) {
        let mut progress = false;
        for _ in 0..8 {
            if self.phase != Phase::Running || self.read_eof || !self.conn.wants_read() {
                break;
            }
            match self.io.poll_read(&mut self.conn, cx) {
                Poll::Ready(Ok(0)) => {
                    self.read_eof = true;
                    self.conn.handle_eof(R::now());
                }
                Poll::Ready(Ok(_)) => self.conn.handle_read(R::now()),
                Poll::Ready(Err(e)) => self.fail_io(e),
                Poll::Pending => break,
            }
            progress = true;
        }
        if progress {
            // A reader parked on the socket (split halves) must learn of
            // the events queued here.
            cx.waker().wake_by_ref();
        }
    }

    fn poll_next_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        loop {
            match ready!(self.poll_event(cx)) {
                None => return Poll::Ready(self.final_item.take()),
                Some(Event::Message(m)) => return Poll::Ready(Some(Ok(m.into()))),
                Some(Event::Ping(p)) => return Poll::Ready(Some(Ok(Message::Ping(p)))),
                Some(Event::Pong { payload, rtt }) => {
                    return Poll::Ready(Some(Ok(Message::Pong { payload, rtt })));
                }
                Some(Event::Closed(c)) => {
                    self.final_item = if let Some(e) = self.io_error.take() {
                        Some(Err(Error::Io(e)))
                    } else if let Some(e) = closed_error(&c) {
                        Some(Err(e))
                    } else if c.initiator == Some(Initiator::Remote) {
                        let frame = c
                            .received
                            .clone()
                            .filter(|f| f.code != CloseCode::NO_STATUS);
                        Some(Ok(Message::Close(frame)))
                    } else {
                        None
                    };
                }
                Some(_) => {}
            }
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.phase != Phase::Running || self.conn.is_closed() {
            return Err(Error::Usage(hookup_proto::UsageError::Closed));
        }
        Ok(())
    }

    /// Input is not read here unless sending has to wait: a protocol
    /// error read between the application's decision to send and
    /// `start_send` would fail the connection before the message is queued
    /// (a reply to the last valid message must go out before our close).
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.check_open()?;
        if self.conn.transmit_len() >= self.write_buffer_size {
            // About to wait for the socket: keep answering pings and
            // noticing a close meanwhile (replies queue behind our data).
            self.poll_input(cx);
            ready!(self.poll_write_out(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    pub(crate) fn start_send(&mut self, msg: Message) -> Result<()> {
        self.check_open()?;
        let r = match msg {
            Message::Text(t) => self.conn.send(hookup_proto::Message::Text(t)),
            Message::Binary(b) => self.conn.send(hookup_proto::Message::Binary(b)),
            Message::Ping(p) => self.conn.send_ping(R::now(), &p),
            Message::Pong { payload, .. } => self.conn.send_pong(&payload),
            Message::Close(f) => {
                let (code, reason) =
                    f.map_or((CloseCode::NORMAL, String::new()), |f| (f.code, f.reason));
                self.conn.close(R::now(), code, &reason)
            }
        };
        Ok(r?)
    }

    /// Writes out what is queued, then reads what the socket has, so that
    /// pings are answered (and a close is noticed) while the application
    /// only writes; a reply that came of it is written too.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.phase != Phase::Running {
            return Poll::Ready(Ok(()));
        }
        let written = self.poll_write_out(cx);
        self.poll_input(cx);
        if let Poll::Ready(Ok(())) = written
            && self.conn.transmit_len() > 0
        {
            return Poll::Ready(ready!(self.poll_write_out(cx)).map_err(Error::Io));
        }
        Poll::Ready(ready!(written).map_err(Error::Io))
    }

    /// Starts closing (1000) if open, then drives the connection to its end,
    /// discarding incoming messages.
    pub(crate) fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.conn.is_open() {
            self.conn.close(R::now(), CloseCode::NORMAL, "")?;
        }
        while ready!(self.poll_event(cx)).is_some() {}
        Poll::Ready(Ok(()))
    }

    /// Drives the opening handshake to the first `Connected` or `Request`.
    pub(crate) fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event>> {
        loop {
            match ready!(self.poll_event(cx)) {
                Some(ev @ (Event::Connected(_) | Event::Request(_))) => return Poll::Ready(Ok(ev)),
                Some(Event::Closed(c)) => {
                    let err = self
                        .io_error
                        .take()
                        .map(Error::Io)
                        .or_else(|| closed_error(&c))
                        .unwrap_or(Error::Closed(Box::new(c)));
                    // Write out the HTTP error answer (server) before failing.
                    while ready!(self.poll_event(cx)).is_some() {}
                    return Poll::Ready(Err(err));
                }
                Some(_) => {}
                None => {
                    return Poll::Ready(Err(Error::Handshake(hookup_proto::HandshakeError::Eof)));
                }
            }
        }
    }

    pub(crate) fn get_ref(&self) -> &S {
        self.io.get_ref()
    }
}

/// A WebSocket connection over a stream `S` of the runtime `R` (the
/// adapters name it with `R` fixed: `hookup_tokio::WebSocket<S>`).
///
/// It is a [`Stream`] of incoming [`Message`]s and a [`Sink`] of outgoing
/// ones, and has plain [`recv`](Self::recv)/[`send`](Self::send) methods.
///
/// * **Cancel safety.** [`recv`](Self::recv) (and `StreamExt::next`) is
///   cancel-safe: a message is taken from the connection only in the poll
///   that returns it, so dropping the future (for example in
///   `tokio::select!`) loses nothing. [`send`](Self::send) queues the
///   message on its first poll; once queued it is sent even if the future is
///   dropped.
/// * **Coalescing.** [`send`](Self::send) does not write while more received
///   messages are already waiting to be read: the replies to a burst of
///   messages leave in one write, made when the application next waits in
///   `recv` (or when `write_buffer_size` is reached, or on `flush`).
/// * **Control frames.** Pings are answered automatically while the
///   connection is polled (by reading, sending or flushing). Pings, pongs
///   (with round-trip times) and the peer's close frame are yielded by the
///   stream; data messages are yielded as text or binary.
pub struct WebSocket<S, R: Runtime> {
    core: Core<S, R>,
}

impl<S, R: Transport<S>> WebSocket<S, R> {
    pub(crate) fn from_core(core: Core<S, R>) -> Self {
        Self { core }
    }

    /// Wraps a stream whose opening handshake was done elsewhere (for
    /// example a hyper/axum upgrade).
    pub fn from_upgraded(io: S, role: hookup_proto::Role, config: &Config) -> Self {
        let conn = Connection::new_open(role, config.proto.clone(), R::now());
        Self::from_core(Core::new(conn, io, config))
    }

    /// The next message; `None` once the connection is closed. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        poll_fn(|cx| self.core.poll_next(cx)).await
    }

    /// Sends a message (see the type docs on coalescing and cancel safety).
    pub async fn send(&mut self, msg: impl Into<Message>) -> Result<()> {
        poll_fn(|cx| self.core.poll_ready(cx)).await?;
        self.core.start_send(msg.into())?;
        if self.core.in_burst
            && self.core.conn.has_events()
            && self.core.conn.transmit_len() < self.core.write_buffer_size
        {
            // More input is waiting: the next `recv` flushes.
            return Ok(());
        }
        poll_fn(|cx| self.core.poll_flush(cx)).await
    }

    /// Queues a message without writing (unless the buffer is full).
    pub async fn feed(&mut self, msg: impl Into<Message>) -> Result<()> {
        poll_fn(|cx| self.core.poll_ready(cx)).await?;
        self.core.start_send(msg.into())
    }

    /// Writes out everything queued.
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| self.core.poll_flush(cx)).await
    }

    /// Sends a ping; the matching pong is yielded with its round-trip time.
    pub async fn ping(&mut self, payload: &[u8]) -> Result<()> {
        self.send(Message::Ping(bytes::Bytes::copy_from_slice(payload)))
            .await
    }

    /// Closes with `code` and `reason`, waits for the peer's close frame
    /// (up to the close timeout) and shuts the transport down. Messages that
    /// arrive meanwhile are discarded; returns how the connection ended.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<Closed> {
        if self.core.conn.is_open() {
            self.core.conn.close(R::now(), code, reason)?;
        }
        poll_fn(|cx| self.core.poll_close(cx)).await?;
        self.core
            .closed
            .clone()
            .ok_or(Error::Usage(hookup_proto::UsageError::Closed))
    }

    /// The subprotocol agreed in the opening handshake.
    pub fn subprotocol(&self) -> Option<&str> {
        self.core.subprotocol.as_deref()
    }

    /// The state machine and the stream, to hand the connection to another
    /// driver (the reliable session layer does this).
    pub fn into_parts(self) -> (Connection, S) {
        self.core.into_parts()
    }

    /// How the connection ended, once it has.
    pub fn closed(&self) -> Option<&Closed> {
        self.core.closed.as_ref()
    }

    /// The protocol state machine (for inspection).
    pub fn connection(&self) -> &Connection {
        &self.core.conn
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        self.core.get_ref()
    }

    /// Splits into a reading half and a writing half that can live in
    /// different tasks. Either half drives the connection's I/O when polled;
    /// both are woken by any progress.
    pub fn split(self) -> (ReadHalf<S, R>, WriteHalf<S, R>) {
        let mux = Arc::new(MuxWaker::default());
        let shared = Arc::new(Shared {
            core: Mutex::new(self.core),
            waker: Waker::from(mux.clone()),
            mux,
        });
        (
            ReadHalf {
                shared: shared.clone(),
            },
            WriteHalf { shared },
        )
    }
}

// The driver never pins `S`: it is only reached through `&mut S`.
impl<S, R: Runtime> Unpin for WebSocket<S, R> {}

impl<S, R: Transport<S>> Stream for WebSocket<S, R> {
    type Item = Result<Message>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().core.poll_next(cx)
    }
}

impl<S, R: Transport<S>> Sink<Message> for WebSocket<S, R> {
    type Error = Error;
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().core.poll_ready(cx)
    }
    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        self.get_mut().core.start_send(item)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().core.poll_flush(cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().core.poll_close(cx)
    }
}

/// Wakes every half that registered, so that whichever half drives the
/// shared I/O, the other one learns of progress.
#[derive(Default)]
struct MuxWaker {
    slots: Mutex<[Option<Waker>; 2]>,
}

impl MuxWaker {
    fn register(&self, side: usize, w: &Waker) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        match &slots[side] {
            Some(old) if old.will_wake(w) => {}
            _ => slots[side] = Some(w.clone()),
        }
    }

    /// Wakes the other half, if it is waiting.
    fn wake_other(&self, side: usize) {
        let taken = self.slots.lock().unwrap_or_else(|e| e.into_inner())[1 - side].take();
        if let Some(w) = taken {
            w.wake();
        }
    }
}

impl Wake for MuxWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let taken = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            [slots[0].take(), slots[1].take()]
        };
        for w in taken.into_iter().flatten() {
            w.wake();
        }
    }
}

struct Shared<S, R: Runtime> {
    core: Mutex<Core<S, R>>,
    mux: Arc<MuxWaker>,
    waker: Waker,
}

impl<S, R: Runtime> Shared<S, R> {
    fn with<T>(
        &self,
        side: usize,
        cx: &mut Context<'_>,
        f: impl FnOnce(&mut Core<S, R>, &mut Context<'_>) -> T,
    ) -> T {
        self.mux.register(side, cx.waker());
        let mut cx = Context::from_waker(&self.waker);
        let mut core = self.core.lock().unwrap_or_else(|e| e.into_inner());
        let r = f(&mut core, &mut cx);
        let advanced = std::mem::take(&mut core.advanced);
        drop(core);
        if advanced {
            // What this half read or finished, the other may be waiting for.
            self.mux.wake_other(side);
        }
        r
    }
}

/// The reading half of a split [`WebSocket`].
pub struct ReadHalf<S, R: Runtime> {
    shared: Arc<Shared<S, R>>,
}

/// The writing half of a split [`WebSocket`].
pub struct WriteHalf<S, R: Runtime> {
    shared: Arc<Shared<S, R>>,
}

impl<S, R: Transport<S>> ReadHalf<S, R> {
    /// The next message; `None` once closed. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        poll_fn(|cx| self.shared.with(0, cx, |c, cx| c.poll_next(cx))).await
    }
}

impl<S, R: Transport<S>> Stream for ReadHalf<S, R> {
    type Item = Result<Message>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.shared.with(0, cx, |c, cx| c.poll_next(cx))
    }
}

impl<S, R: Transport<S>> WriteHalf<S, R> {
    /// Sends a message and writes it out.
    pub async fn send(&mut self, msg: impl Into<Message>) -> Result<()> {
        let msg = msg.into();
        poll_fn(|cx| self.shared.with(1, cx, |c, cx| c.poll_ready(cx))).await?;
        self.shared
            .core
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .start_send(msg)?;
        poll_fn(|cx| self.shared.with(1, cx, |c, cx| c.poll_flush(cx))).await
    }

    /// Closes with `code` and `reason` and drives the closing handshake to
    /// its end (messages still unread by the read half are discarded).
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        {
            let mut core = self.shared.core.lock().unwrap_or_else(|e| e.into_inner());
            if core.conn.is_open() {
                core.conn.close(R::now(), code, reason)?;
            }
        }
        poll_fn(|cx| self.shared.with(1, cx, |c, cx| c.poll_close(cx))).await
    }
}

impl<S, R: Transport<S>> Sink<Message> for WriteHalf<S, R> {
    type Error = Error;
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.shared.with(1, cx, |c, cx| c.poll_ready(cx))
    }
    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        self.shared
            .core
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .start_send(item)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.shared.with(1, cx, |c, cx| c.poll_flush(cx))
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.shared.with(1, cx, |c, cx| c.poll_close(cx))
    }
}

/// Runs the client handshake over `io`; returns the socket and the
/// server's response.
pub async fn client_handshake<S, R: Transport<S>>(
    io: S,
    request: &hookup_proto::ClientRequest,
    config: &Config,
) -> Result<(WebSocket<S, R>, Response)> {
    let conn = Connection::client(request, crate::entropy::seeded(&config.proto), R::now());
    let mut core = Core::new(conn, io, config);
    match poll_fn(|cx| core.poll_handshake(cx)).await? {
        Event::Connected(r) => {
            core.subprotocol = r.subprotocol.clone();
            Ok((WebSocket::from_core(core), r))
        }
        _ => Err(Error::Handshake(hookup_proto::HandshakeError::Malformed(
            "unexpected event".into(),
        ))),
    }
}
