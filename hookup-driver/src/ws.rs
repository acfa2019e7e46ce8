//! The WebSocket type: a `hookup_proto::Connection` wired to a stream and a
//! timer of some runtime `R`.
//!
//! All I/O happens inside `poll_*` calls of the application's own task: no
//! task is spawned per connection. Reading drains every frame of a read
//! before returning; writing takes all queued frames in one (vectored) write.
//! The drive loop is [`Io`](crate::Io) (`drive.rs`), the connection's driver
//! `Core` (`conn.rs`), the split halves `split.rs`.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use hookup_proto::{CloseCode, Closed, Connection, Event, Response};

use crate::conn::Core;
use crate::error::{Error, Result};
use crate::message::Message;
use crate::split::{ReadHalf, WriteHalf};
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
    /// Longest time queued output may make no progress before the
    /// connection is failed (an I/O error of kind `TimedOut`): a peer that
    /// stopped reading (default `None`: wait forever; a [`Server`](crate::Server)
    /// sets its [`Limits::write_stall_timeout`](crate::Limits::write_stall_timeout)).
    pub write_stall_timeout: Option<std::time::Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            proto: hookup_proto::Config::default(),
            write_buffer_size: 128 << 10,
            max_read_size: 64 << 10,
            write_stall_timeout: None,
        }
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
/// * **Sending and coalescing.** [`send`](Self::send) (and `SinkExt::send`)
///   returns once the message was written to the stream (or with the write
///   error), also while more received messages are waiting to be read.
///   [`feed`](Self::feed) (`SinkExt::feed`) only queues: messages fed in a
///   row, and everything the connection queues by itself (pongs, the close
///   frame), leave in one vectored write, made on [`flush`](Self::flush) or
///   `send`, when the application next waits in `recv`, or when
///   `write_buffer_size` is reached. To answer a burst of received messages
///   in one write, `feed` the replies while more are waiting
///   ([`connection`](Self::connection)`().has_events()`) and `send` the
///   last one.
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

    /// Sends a message: queues it and writes it out. When this returns
    /// `Ok`, the message's bytes (and everything queued before them) have
    /// been handed to the stream; a write error is returned here. See the
    /// type docs on coalescing and cancel safety.
    pub async fn send(&mut self, msg: impl Into<Message>) -> Result<()> {
        poll_fn(|cx| self.core.poll_ready(cx)).await?;
        self.core.start_send(msg.into())?;
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

    /// The write-stall timeout this connection was configured with.
    pub(crate) fn write_stall_timeout(&self) -> Option<std::time::Duration> {
        self.core.io.write_stall_timeout()
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
        crate::split::split(self.core)
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
