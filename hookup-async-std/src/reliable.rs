//! Reliable messaging on async-io (async-std, smol, any executor): a client
//! that reconnects and resumes its session by itself, with an optional
//! crash-safe journal, and the server side of sessions. The same types and
//! behaviour as `hookup_tokio::reliable`.
//!
//! These are the runtime-independent types of [`hookup_driver::reliable`]
//! with the runtime fixed to [`AsyncIo`]. async-io has no executor, so a
//! [`ReliableClient`] runs its task on a thread of its own (one per client,
//! named `hookup-reliable`, ending with the client), and a [`SharedStore`]
//! reaps expired sessions on one thread per store (`hookup-store-reaper`,
//! ending within a second of the store's last clone being dropped).
//! Timers are async-io's, which need no executor either. A
//! [`ReliablePeer`] is driven in the caller's task. The journal is written
//! with blocking `std::fs` calls (one small append per record) from the
//! client's thread, and from `send` for the message it queues. All protocol logic is `hookup_proto::reliable`.
//!
//! ```no_run
//! # async fn run() -> hookup_async_std::Result<()> {
//! use std::time::Duration;
//! use hookup_async_std::reliable::{DeliveryOutcome, ReliableClient, ReliableConfig};
//!
//! let client = ReliableClient::connect("ws://127.0.0.1:9001/events", ReliableConfig::default())?;
//! let delivery = client.send("hello", Some(Duration::from_secs(5))).await.expect("queued");
//! assert_eq!(delivery.await, DeliveryOutcome::Acked);
//! client.shutdown(Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```

use crate::AsyncIo;

pub use hookup_driver::reliable::{
    Delivery, DeliveryOutcome, Finished, Fsync, LEGACY_SUBPROTOCOL, Reconnect, ReliableConfig,
    ReliableEvent, SUBPROTOCOL,
};

/// A client that keeps its session across network failures: it reconnects
/// with backoff, resumes, replays what the server has not acknowledged, and
/// drops duplicates. Runs on a thread of its own; this is its handle. See
/// [`hookup_driver::reliable::ReliableClient`].
pub type ReliableClient = hookup_driver::reliable::ReliableClient<AsyncIo>;

/// The future of [`ReliableClient::send`]. See
/// [`hookup_driver::reliable::Sending`].
pub type Sending<'a> = hookup_driver::reliable::Sending<'a, AsyncIo>;

/// The server side of one reliable client connection, driven in the
/// caller's task. See [`hookup_driver::reliable::ReliablePeer`].
pub type ReliablePeer<S> = hookup_driver::reliable::ReliablePeer<S, AsyncIo>;

/// A store of server sessions shared by a server's connections; its reaper
/// runs on a thread of its own. See [`hookup_driver::reliable::SharedStore`].
pub type SharedStore = hookup_driver::reliable::SharedStore<AsyncIo>;
