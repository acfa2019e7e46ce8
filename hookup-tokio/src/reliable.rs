//! Reliable messaging on tokio: a client that reconnects and resumes its
//! session by itself, with an optional crash-safe journal, and the server
//! side of sessions.
//!
//! These are the runtime-independent types of
//! [`hookup_driver::reliable`] with the runtime fixed to [`Tokio`]: the
//! client's task and the store's reaper are `tokio::spawn`ed (so they are
//! created inside a tokio runtime), timers are tokio's. The journal is
//! written with blocking `std::fs` calls (one small append per record) from
//! the client's task, and from `send` for the message it queues. All protocol logic is `hookup_proto::reliable`.

use crate::Tokio;

pub use hookup_driver::reliable::{
    Delivery, DeliveryOutcome, Finished, Fsync, LEGACY_SUBPROTOCOL, Reconnect, ReliableConfig,
    ReliableEvent, SUBPROTOCOL,
};

/// A client that keeps its session across network failures: it reconnects
/// with backoff, resumes, replays what the server has not acknowledged, and
/// drops duplicates. Runs in its own tokio task; this is its handle. See
/// [`hookup_driver::reliable::ReliableClient`].
pub type ReliableClient = hookup_driver::reliable::ReliableClient<Tokio>;

/// The future of [`ReliableClient::send`]. See
/// [`hookup_driver::reliable::Sending`].
pub type Sending<'a> = hookup_driver::reliable::Sending<'a, Tokio>;

/// The server side of one reliable client connection, driven in the
/// caller's task. See [`hookup_driver::reliable::ReliablePeer`].
pub type ReliablePeer<S> = hookup_driver::reliable::ReliablePeer<S, Tokio>;

/// A store of server sessions shared by a server's connections; its reaper
/// is a tokio task. See [`hookup_driver::reliable::SharedStore`].
pub type SharedStore = hookup_driver::reliable::SharedStore<Tokio>;
