//! # hookup-driver
//!
//! The async half of the hookup adapters that does not depend on a runtime:
//! it drives a sans-IO [`hookup_proto::Connection`] over a byte stream and a
//! timer, and provides the [`WebSocket`] type (a `Stream` + `Sink` of
//! [`Message`]s, split into [`ReadHalf`]/[`WriteHalf`]), the handshakes
//! ([`client_handshake`], [`accept_request`]), connecting ([`connect`],
//! [`open_transport`]: TCP, TLS for `wss://`, timeouts) and the server
//! ([`Server`]: routes, upgrade decision, plain HTTP answers, TLS accept,
//! accept loop with back-off, one task per connection), and the
//! reliability layer ([`reliable`]: `hookup.v1` sessions on a runtime).
//!
//! An adapter (`hookup-tokio`, `hookup-async-std`) supplies the rest
//! through a zero-sized marker type `R`:
//!
//! * [`Runtime`]: its clock and a resettable sleep;
//! * [`Transport<S>`]: reading into a `BytesMut`, vectored writes, flush and
//!   close for its stream types `S`;
//! * [`Net`] and [`Bind`]: its TCP socket and listener types, TLS over them,
//!   and spawning a task (or none: then [`BoundServer::run`] drives the
//!   connections itself).
//!
//! Everything is static dispatch: `WebSocket<S, R>` holds the adapter's own
//! stream `S` (so `get_ref` returns it) and `R` only selects functions, so
//! nothing is boxed or called through `dyn` on the hot path. The adapters
//! re-export these types with `R` fixed (`hookup_tokio::WebSocket<S>` is
//! `WebSocket<S, hookup_tokio::Tokio>`, `hookup_tokio::Server` is
//! `Server<hookup_tokio::Tokio>`). Applications use an adapter, not this
//! crate.
#![deny(missing_docs)]

mod client;
mod conn;
mod drive;
mod entropy;
mod error;
mod message;
mod mux;
mod net;
pub mod reliable;
mod server;
mod split;
mod timer;
#[cfg(feature = "tls")]
pub mod tls;
mod ws;

use std::io::{self, IoSlice};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;

pub use hookup_proto as proto;

pub use client::{connect, open_transport};
pub use drive::{Drove, Io};
pub use error::{Error, Result};
pub use message::Message;
pub use net::{Bind, ConnectionFuture, Net, timeout};
pub use server::{
    BoundServer, HttpResponse, Limits, Routes, Server, accept, accept_request, accept_with,
    text_response,
};
pub use split::{ReadHalf, WriteHalf};
pub use timer::Timer;
pub use ws::{Config, WebSocket, client_handshake};

/// A runtime's clock and timer, as the driver needs them. Implemented by an
/// adapter's zero-sized marker type; all functions are associated (no
/// runtime handle is stored).
pub trait Runtime: 'static {
    /// A sleep that can be re-armed without being rebuilt.
    type Sleep: Unpin;

    /// The current time on the runtime's clock (tokio's, so that a paused
    /// test clock drives the protocol's timers too).
    fn now() -> Instant;

    /// A sleep until `deadline`. Called once per connection, when a timer is
    /// first needed.
    fn sleep_until(deadline: Instant) -> Self::Sleep;

    /// Re-arms `sleep` for `deadline`.
    fn reset(sleep: &mut Self::Sleep, deadline: Instant);

    /// Polls `sleep`: `Ready` once its deadline has passed.
    fn poll_sleep(sleep: &mut Self::Sleep, cx: &mut Context<'_>) -> Poll<()>;
}

/// Byte I/O on streams of type `S`, as the runtime `Self` does it.
///
/// Implemented by the adapter's marker type for every stream of its I/O
/// traits (`impl<S: tokio::io::AsyncRead + ..> Transport<S> for Tokio`), so
/// that the application's stream type appears as is in `WebSocket<S, R>`.
pub trait Transport<S>: Runtime {
    /// Whether [`poll_read`](Self::poll_read) must zero the space it reads
    /// into (true for `futures-io` streams, which read into `&mut [u8]`).
    /// The driver then offers a read only the size it wants instead of all
    /// of the buffer's spare capacity.
    const ZERO_FILL: bool = false;

    /// Reads what `io` has ready into the spare capacity of `buf` (at most
    /// `len` bytes) and appends it; `Ok(0)` is end of file.
    fn poll_read(
        io: &mut S,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
        len: usize,
    ) -> Poll<io::Result<usize>>;

    /// Writes from `bufs` in order (one write); returns how much was written.
    fn poll_write_vectored(
        io: &mut S,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>>;

    /// Whether vectored writes reach the stream as such. When false, the
    /// driver passes one slice per write.
    fn is_write_vectored(io: &S) -> bool;

    /// Flushes `io`.
    fn poll_flush(io: &mut S, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Shuts the writing side of `io` down (TLS: sends `close_notify`).
    fn poll_close(io: &mut S, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// Client settings: the adapter configuration plus connect options. The
/// adapters' `connect_with` take it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Connection configuration.
    pub ws: Config,
    /// Time allowed for TCP connect and TLS handshake (default 10 s). The
    /// WebSocket handshake has its own `ws.proto.handshake_timeout`.
    pub connect_timeout: Duration,
    /// TLS settings for `wss://` (default: Mozilla roots from `webpki-roots`).
    #[cfg(feature = "tls")]
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            ws: Config::default(),
            connect_timeout: Duration::from_secs(10),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}
