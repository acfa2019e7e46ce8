//! Reliable messaging over WebSocket: sessions that survive reconnects.
//!
//! A [`Session`] runs the `hookup.v1` subprotocol ([`wire`]) over a
//! [`Connection`](crate::Connection): every application message carries a
//! sequence number; the receiver delivers in order, drops duplicates and
//! acknowledges cumulatively; the sender keeps what is unacknowledged in a
//! bounded outbox and replays it after a reconnect, before anything new.
//! Each [`Session::send`] resolves exactly once, as an [`DeliveryOutcome`] from
//! [`Session::poll_outcome`]: written, acked, ack-failed (its deadline,
//! counted from when it was written, passed) or dropped (with the reason).
//!
//! Clients reconnect by themselves on a [`Reconnect`] policy with full-jitter
//! exponential backoff; servers keep a disconnected client's session in a
//! [`SessionStore`] for a while so it can resume. Keepalive pings with a pong
//! deadline detect dead peers on both sides.
//!
//! A session can also speak the original hookup's `jsonProtocol` ([`legacy`],
//! [`Session::legacy_server`], [`Session::legacy_client`]): per-message acks
//! within one connection, no sequence numbers and no resume.
//!
//! Like the rest of this crate it is sans-IO: the caller opens transports
//! when asked ([`Action::Connect`]), moves bytes, and passes `now` in.

mod channel;
mod journal;
mod key;
pub mod legacy;
mod legacy_channel;
mod session;
mod store;
pub mod wire;

use std::fmt;
use std::time::Duration;

pub use journal::{Journal, JournalError, JournalRecord, Recovery};
pub use key::{RESUME_KEY_LEN, ResumeKey};
pub use legacy::{LEGACY_SUBPROTOCOL, LegacyError};
pub use session::{Action, Session, SessionEvent};
pub use store::{SessionState, SessionStore, StoreConfig};
pub use wire::SUBPROTOCOL;

/// The close code a server sends when a client that proved it owns its
/// session (its HELLO carried the session's resume key) finds that session
/// attached to another live connection: 4013, the application-range twin of 1013 ("try
/// again later", which RFC 6455 peers and Autobahn treat as reserved).
pub const SESSION_BUSY: crate::CloseCode = crate::CloseCode(4013);

/// The close code a server sends when it refuses a HELLO that would create
/// a new session because the client's IP address has as many sessions as
/// [`StoreConfig::max_sessions_per_ip`] allows (4029, after HTTP's 429
/// "too many requests"). Sessions the client resumes are not refused.
pub const SESSION_QUOTA: crate::CloseCode = crate::CloseCode(4029);

/// Identifies a message given to [`Session::send`], unique per session
/// object (it does not change when a message is sent again).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u64);

/// How a sent message ended up. Each message gets exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryOutcome {
    /// Written to a connection (messages sent without an ack deadline). It
    /// stays in the outbox until acknowledged and is replayed after a
    /// reconnect.
    Written,
    /// The peer acknowledged it.
    Acked,
    /// Its ack deadline passed. The message is not withdrawn: it may still
    /// arrive, and is still replayed after a reconnect.
    AckFailed,
    /// It will not be sent (again). A message dropped before it was ever
    /// written (always the case for [`DropReason::Overflow`]) never reaches
    /// the peer; one written before the client gave up, the session was
    /// aborted or it expired may have reached it, unacknowledged.
    Dropped(DropReason),
}

/// Why a message was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// The outbox was full and the policy drops the oldest unwritten message.
    Overflow,
    /// The client gave up reconnecting.
    GaveUp,
    /// The session was shut down before the peer acknowledged it.
    Shutdown,
    /// (Server) The disconnected session expired before its client came back.
    Expired,
    /// (Legacy `jsonProtocol` mode) The connection ended: the protocol has no
    /// resume, so an ack request in flight (it may have arrived) or, on a
    /// server, a message not yet written is given up.
    Disconnected,
}

/// What to do when the outbox is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Refuse the new message with [`SendError::Full`].
    Reject,
    /// Drop the oldest message that has not been written yet (reported as
    /// [`DropReason::Overflow`]); messages already written wait for their
    /// ack. When every queued message was written, refuse as `Reject` does.
    DropOldest,
}

/// When a client reconnects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reconnect {
    /// Never: the first failure ends the session ([`SessionEvent::GaveUp`]).
    Never,
    /// At most this many consecutive failed attempts.
    AtMost(u32),
    /// Indefinitely.
    Forever,
}

/// Session settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Longest a received message waits before it is acknowledged (default 20 ms).
    pub ack_delay: Duration,
    /// Acknowledge at the latest every this many messages (default 32).
    pub ack_every: u32,
    /// Most unacknowledged messages kept (default 10,000).
    pub max_outbox_messages: usize,
    /// Most unacknowledged payload bytes kept (default 64 MiB).
    pub max_outbox_bytes: usize,
    /// What to do when the outbox is full (default [`Overflow::Reject`]).
    pub overflow: Overflow,
    /// Interval between keepalive pings (default 15 s; `None`: no pings).
    pub ping_interval: Option<Duration>,
    /// Time for the pong to arrive before the peer is declared dead (default 10 s).
    pub pong_timeout: Duration,
    /// Reconnect policy of a client (default [`Reconnect::Forever`]).
    pub reconnect: Reconnect,
    /// Smallest reconnect delay (default 100 ms).
    pub backoff_min: Duration,
    /// Largest reconnect delay (default 30 s).
    pub backoff_max: Duration,
    /// Output queued in the connection beyond which the outbox waits
    /// (default 1 MiB). A sender that waits for room (as `ReliableClient`'s
    /// `send` does, see [`Session::is_write_blocked`]) hands the transport
    /// up to this much per write: a larger window means fewer, larger
    /// writes (at 256 KiB a 1 KiB stream ran at about two thirds of the
    /// rate it reaches at 1 MiB, from the cost per write and per wakeup of
    /// the peer), at the price of that much memory per busy connection.
    pub write_window: usize,
    /// Report [`SessionEvent::Released`] when the peer acknowledges a
    /// message (default off): what a journal needs to delete its records.
    pub report_releases: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            ack_delay: Duration::from_millis(20),
            ack_every: 32,
            max_outbox_messages: 10_000,
            max_outbox_bytes: 64 << 20,
            overflow: Overflow::Reject,
            ping_interval: Some(Duration::from_secs(15)),
            pong_timeout: Duration::from_secs(10),
            reconnect: Reconnect::Forever,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            write_window: 1 << 20,
            report_releases: false,
        }
    }
}

/// Why a message could not be queued.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The outbox is at its bound (and the policy does not make room).
    Full,
    /// The message alone exceeds the outbox byte bound, or with its
    /// envelope header it would exceed this side's
    /// [`Config::max_frame_size`](crate::Config::max_frame_size) or
    /// [`Config::max_message_size`](crate::Config::max_message_size) (a
    /// message goes out as one frame): a peer configured alike would close
    /// the connection on it every time it is replayed, and nothing queued
    /// behind it would ever get through.
    TooLarge,
    /// The session is closed, shutting down, or gave up.
    Closed,
    /// The negotiated wire format cannot carry this message: a binary
    /// message in legacy `jsonProtocol` mode.
    Unsupported,
    /// [`Session::send_json`] was given text that is not one JSON value.
    InvalidJson(LegacyError),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("outbox full"),
            Self::TooLarge => f.write_str("message larger than the outbox or a frame"),
            Self::Closed => f.write_str("session closed"),
            Self::Unsupported => {
                write!(
                    f,
                    "binary messages cannot be sent over {LEGACY_SUBPROTOCOL}"
                )
            }
            Self::InvalidJson(e) => write!(f, "not a JSON value: {e}"),
        }
    }
}

impl std::error::Error for SendError {}

/// A peer's violation of the session protocol. The connection is closed
/// (and a client reconnects); nothing queued is lost.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionError {
    /// A malformed envelope.
    Wire(wire::WireError),
    /// (Legacy `jsonProtocol` mode) A malformed envelope. Unlike the other
    /// errors it does not close the connection: the message is skipped.
    Legacy(LegacyError),
    /// The server did not select the `hookup.v1` subprotocol (or, for a
    /// [`Session::legacy_client`], `jsonProtocol`).
    NotNegotiated,
    /// An envelope that does not belong in this state (e.g. DATA before WELCOME).
    Unexpected(&'static str),
    /// An ack for a sequence number never sent (in legacy mode: an ack
    /// request id never used on this connection; the connection stays open).
    AckForUnsent(u64),
    /// The peer resumed the session claiming to have received fewer
    /// messages than it had acknowledged (its journal lost records): the
    /// session starts over.
    ResumedBehind {
        /// What the peer says it received.
        received: u64,
        /// What it had acknowledged.
        acked: u64,
    },
    /// A sequence number that skips ahead.
    Gap {
        /// The sequence expected.
        expected: u64,
        /// The sequence received.
        got: u64,
    },
    /// A text message that is not UTF-8.
    InvalidUtf8,
    /// The session id is in use by another connection, and the HELLO
    /// proved ownership of it (server; the client retries after its
    /// backoff). A HELLO without a valid proof never gets this: it gets a
    /// new session.
    Busy,
    /// (Server) A HELLO would create a session beyond the client IP
    /// address's quota ([`StoreConfig::max_sessions_per_ip`]).
    TooManySessions,
    /// (Server) The HELLO was refused and the connection closed with this
    /// code ([`Session::refuse`]).
    Refused(crate::CloseCode),
    /// The peer did not answer a keepalive ping in time.
    KeepaliveTimeout,
    /// The transport failed or could not be opened.
    Transport(String),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wire(e) => write!(f, "malformed envelope: {e}"),
            Self::Legacy(e) => write!(f, "malformed {LEGACY_SUBPROTOCOL} envelope: {e}"),
            Self::NotNegotiated => f.write_str("the server did not select the subprotocol offered"),
            Self::Unexpected(what) => write!(f, "unexpected {what}"),
            Self::AckForUnsent(s) => write!(f, "ack for sequence {s}, which was never sent"),
            Self::ResumedBehind { received, acked } => write!(
                f,
                "resumed having received {received} messages, {acked} acknowledged before"
            ),
            Self::Gap { expected, got } => {
                write!(f, "sequence {got} received, {expected} expected")
            }
            Self::InvalidUtf8 => f.write_str("text message is not UTF-8"),
            Self::Busy => f.write_str("session in use by another connection"),
            Self::TooManySessions => f.write_str("too many sessions from this address"),
            Self::Refused(code) => write!(f, "session refused (close code {})", code.0),
            Self::KeepaliveTimeout => f.write_str("no pong within the keepalive deadline"),
            Self::Transport(e) => write!(f, "transport: {e}"),
        }
    }
}

impl std::error::Error for SessionError {}

impl From<wire::WireError> for SessionError {
    fn from(e: wire::WireError) -> Self {
        Self::Wire(e)
    }
}
