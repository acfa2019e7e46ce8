//! The events a connection emits, and how it ended.
//!
//! Kept apart from [`message`](crate::message) so that the layers below
//! the connection (handshake, permessage-deflate) can use message kinds
//! without depending on the handshake types an [`Event`] carries.

use std::time::Duration;

use bytes::Bytes;

use crate::close::{CloseCode, CloseFrame};
use crate::error::Error;
use crate::handshake::{Request, Response};
use crate::message::{Fragment, Message};

/// Which side started the closing handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Initiator {
    /// This endpoint (by [`Connection::close`](crate::Connection::close),
    /// a timeout or a protocol error).
    Local,
    /// The peer.
    Remote,
}

/// How a connection ended. The last event a connection emits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    /// The close frame received from the peer, if any.
    pub received: Option<CloseFrame>,
    /// The close frame this endpoint sent, if any.
    pub sent: Option<CloseFrame>,
    /// Who started closing; `None` when the handshake never completed.
    pub initiator: Option<Initiator>,
    /// Whether both close frames were exchanged (or a handshake was answered)
    /// before the transport closed.
    pub clean: bool,
    /// What went wrong, if anything did.
    pub error: Option<Error>,
}

impl Closed {
    /// The close code to report to an application: the peer's, else ours,
    /// else 1006 (abnormal) or 1005 (no status).
    pub fn code(&self) -> CloseCode {
        if let Some(f) = self.received.as_ref().or(self.sent.as_ref()) {
            return f.code;
        }
        if self.clean {
            CloseCode::NO_STATUS
        } else {
            CloseCode::ABNORMAL
        }
    }
}

/// What a connection reports to the application, from
/// [`Connection::poll_event`](crate::Connection::poll_event).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// (Server) A request arrived: answer with
    /// [`Connection::accept`](crate::Connection::accept) or
    /// [`Connection::reject`](crate::Connection::reject).
    Request(Request),
    /// The opening handshake completed.
    Connected(Response),
    /// A complete message.
    Message(Message),
    /// A frame of a fragmented message (with `stream_fragments`).
    Fragment(Fragment),
    /// A ping arrived (already answered when `auto_pong` is on).
    Ping(Bytes),
    /// A pong arrived; `rtt` is set when it answers one of our pings.
    Pong {
        /// The pong's payload.
        payload: Bytes,
        /// Round-trip time to the matching ping.
        rtt: Option<Duration>,
    },
    /// The connection ended. No event follows; write out any remaining
    /// transmit bytes, then close the transport.
    Closed(Closed),
}
