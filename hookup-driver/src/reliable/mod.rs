//! Reliable messaging on any runtime: a client that reconnects and resumes
//! its session by itself, with an optional crash-safe journal, and the
//! server side of sessions. All protocol logic is `hookup_proto::reliable`;
//! this module moves bytes, time and files, through the adapter's
//! [`Runtime`](crate::Runtime), [`Transport`](crate::Transport) and
//! [`Net`].
//!
//! The adapters re-export these types with the runtime fixed
//! (`hookup_tokio::reliable::ReliableClient` is
//! `ReliableClient<hookup_tokio::Tokio>`, `hookup_async_std::reliable::ReliableClient`
//! is `ReliableClient<hookup_async_std::AsyncIo>`); applications use those.
//!
//! * [`ReliableClient`] runs in a task of its own, started with
//!   [`Net::spawn`]. A runtime without an executor of
//!   its own (async-io: `hookup-async-std`) hands the task back; it then
//!   runs on a thread of its own, one per client.
//! * [`SharedStore`] reaps expired sessions in a background task, started
//!   the same way (a thread per store on async-io).
//! * [`ReliablePeer`] is driven in the caller's task.
//! * The journal is written with blocking `std::fs` calls: a message's
//!   record by [`ReliableClient::send`] (in the caller's task), the others
//!   from the client's task; appends of one record each (plus an
//!   `fdatasync` per [`Fsync`] policy), and a rewrite when it is compacted.
//!
//! A client handle and its task share the session behind a mutex: `send`
//! queues into it and wakes the task, which writes out everything queued
//! since its last pass at once. Events and outcomes reach the application
//! through `futures-channel`'s channels (runtime-neutral).

mod client;
mod journal_file;
mod peer;
mod server_journal;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker, ready};
use std::time::Duration;

use futures_channel::oneshot;
use hookup_proto::CloseCode;
use hookup_proto::reliable::{DropReason, SessionConfig, SessionEvent};

use crate::net::{ConnectionFuture, Net};
use crate::{ClientConfig, Message};

pub use client::{ReliableClient, Sending};
pub use hookup_proto::reliable::{DeliveryOutcome, LEGACY_SUBPROTOCOL, Reconnect, SUBPROTOCOL};
pub use peer::{ReliablePeer, SharedStore};

/// When the journal is flushed to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fsync {
    /// After every record (safest, slowest).
    Always,
    /// At most this long after a record.
    Interval(Duration),
    /// Never explicitly, not even when the file is compacted (the OS
    /// decides; survives a process crash, not a power loss).
    Never,
}

/// Settings of a [`ReliableClient`].
///
/// Each setting has one place: the session protocol (acks, bounds,
/// keepalive, reconnect) in [`session`](Self::session); everything about
/// the connections the client makes in [`client`](Self::client) — the
/// WebSocket settings of every connection (limits, timeouts, compression,
/// the random seed) in `client.ws.proto`, the I/O buffers in `client.ws`,
/// the connect timeout and TLS in `client`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ReliableConfig {
    /// The session protocol settings (acks, bounds, keepalive, reconnect).
    pub session: SessionConfig,
    /// The connections' settings: WebSocket (`ws.proto`, used for every
    /// connection), buffers (`ws`), connect timeout and TLS.
    pub client: ClientConfig,
    /// A journal file that keeps unacknowledged messages and the session
    /// (its id, what the server acknowledged, what the client took) across
    /// process crashes: after a restart the client resumes that session and
    /// sends the messages again; the server drops what it already had.
    /// Written with blocking `std::fs` calls (small appends) from the
    /// client's task, and by [`ReliableClient::send`] for the message it
    /// queues (before the message can reach the socket).
    pub journal: Option<std::path::PathBuf>,
    /// When the journal is flushed to disk (default every 10 ms).
    pub fsync: Fsync,
    /// Events buffered for the application before the client stops reading
    /// from the network (default 1024).
    pub event_capacity: usize,
}

impl Default for ReliableConfig {
    fn default() -> Self {
        Self {
            session: SessionConfig::default(),
            client: ClientConfig::default(),
            journal: None,
            fsync: Fsync::Interval(Duration::from_millis(10)),
            event_capacity: 1024,
        }
    }
}

/// What a reliable client or server connection reports.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ReliableEvent {
    /// The session is (re-)established.
    Connected {
        /// Whether the server still had the session.
        resumed: bool,
    },
    /// A reconnect attempt comes after `delay`.
    Reconnecting {
        /// Consecutive attempt, from 1.
        attempt: u32,
        /// Backoff delay.
        delay: Duration,
    },
    /// The connection ended (the session goes on unless `GaveUp` follows).
    Disconnected {
        /// Close code (1006 when the transport just ended).
        code: CloseCode,
        /// Reason.
        reason: String,
    },
    /// The client stopped reconnecting; unacknowledged messages were dropped.
    GaveUp,
    /// An application message, exactly once and in order.
    Message(Message),
    /// Keepalive round-trip time.
    Rtt(Duration),
    /// Something went wrong (the session recovers by reconnecting).
    Error(String),
}

impl ReliableEvent {
    /// The application's view of a session event (the one mapping, for the
    /// client and the peer alike); `None` for the events the driver handles
    /// itself (`Hello`, `Released`, `Closed`).
    fn from_session(ev: SessionEvent) -> Option<Self> {
        Some(match ev {
            SessionEvent::Connected { resumed, .. } => Self::Connected { resumed },
            SessionEvent::Reconnecting { attempt, delay } => Self::Reconnecting { attempt, delay },
            SessionEvent::Disconnected { code, reason } => Self::Disconnected { code, reason },
            SessionEvent::GaveUp => Self::GaveUp,
            SessionEvent::Message(m) => Self::Message(m.into()),
            SessionEvent::Rtt(r) => Self::Rtt(r),
            SessionEvent::Error(e) => Self::Error(e.to_string()),
            _ => return None,
        })
    }
}

/// Resolves to the one outcome of a reliable send.
///
/// A message written at once without an ack deadline (the common case) is
/// resolved when `send` returns: its `Delivery` holds the outcome and costs
/// no allocation; the others wait on a one-shot channel the driver resolves.
#[must_use = "a Delivery tells whether the message arrived"]
pub struct Delivery(DeliveryState);

enum DeliveryState {
    Ready(DeliveryOutcome),
    Waiting(oneshot::Receiver<DeliveryOutcome>),
}

impl Delivery {
    fn ready(outcome: DeliveryOutcome) -> Self {
        Self(DeliveryState::Ready(outcome))
    }

    fn waiting() -> (oneshot::Sender<DeliveryOutcome>, Self) {
        let (tx, rx) = oneshot::channel();
        (tx, Self(DeliveryState::Waiting(rx)))
    }

    /// The outcome if it is known already (a message written at once
    /// without an ack deadline has it when `send` returns), without waiting.
    pub fn try_outcome(&mut self) -> Option<DeliveryOutcome> {
        match &mut self.0 {
            DeliveryState::Ready(o) => Some(*o),
            DeliveryState::Waiting(rx) => match rx.try_recv() {
                Ok(Some(o)) => {
                    self.0 = DeliveryState::Ready(o);
                    Some(o)
                }
                Ok(None) => None,
                Err(_) => {
                    let o = DeliveryOutcome::Dropped(DropReason::Shutdown);
                    self.0 = DeliveryState::Ready(o);
                    Some(o)
                }
            },
        }
    }
}

impl Future for Delivery {
    type Output = DeliveryOutcome;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<DeliveryOutcome> {
        match &mut self.0 {
            DeliveryState::Ready(o) => Poll::Ready(*o),
            DeliveryState::Waiting(rx) => {
                // A driver that went away without resolving: nothing more
                // can happen.
                let o = ready!(Pin::new(rx).poll(cx))
                    .unwrap_or(DeliveryOutcome::Dropped(DropReason::Shutdown));
                self.0 = DeliveryState::Ready(o);
                Poll::Ready(o)
            }
        }
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            DeliveryState::Ready(o) => f.debug_tuple("Delivery").field(o).finish(),
            DeliveryState::Waiting(_) => f.write_str("Delivery(waiting)"),
        }
    }
}

/// How a client's session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// Messages never acknowledged by the server.
    pub unacked: usize,
    /// Whether the client gave up reconnecting.
    pub gave_up: bool,
}

/// Runs `task` with [`Net::spawn`], or, when the runtime has no executor
/// of its own, on a new thread named `name` that polls it to completion.
fn spawn<R: Net>(name: &str, task: ConnectionFuture) {
    let Err(task) = R::spawn(task) else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || block_on(task));
    if let Err(e) = spawned {
        // The task is dropped with the closure: its handle sees it ended.
        tracing::error!("{name}: cannot start a thread: {e}");
    }
}

/// Polls `task` on this thread until it completes, parking in between.
/// Enough for async-io's timers and sockets, whose reactor runs on its own
/// thread when no thread blocks on it.
fn block_on(mut task: ConnectionFuture) {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    while task.as_mut().poll(&mut cx).is_pending() {
        std::thread::park();
    }
}
