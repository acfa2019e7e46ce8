//! What the stream yields and the sink takes.

use std::time::Duration;

use bytes::Bytes;
use hookup_proto::{CloseCode, CloseFrame, Utf8Bytes};

/// A WebSocket message, or a control frame surfaced to the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// A text message.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping from the peer (already answered unless auto-pong is off).
    /// Sending one sends a ping.
    Ping(Bytes),
    /// A pong from the peer; `rtt` is the round-trip time when it answers one
    /// of our pings. Sending one sends an unsolicited pong (`rtt` is ignored).
    Pong {
        /// The payload.
        payload: Bytes,
        /// Round-trip time to the matching ping.
        rtt: Option<Duration>,
    },
    /// The peer closed the connection with this frame (the stream ends after
    /// it). Sending one starts the closing handshake (`None` sends 1000).
    Close(Option<CloseFrame>),
}

impl Message {
    /// A text message.
    pub fn text(s: impl Into<Utf8Bytes>) -> Self {
        Self::Text(s.into())
    }

    /// A binary message.
    pub fn binary(b: impl Into<Bytes>) -> Self {
        Self::Binary(b.into())
    }

    /// A close message with a code and reason.
    pub fn close(code: CloseCode, reason: impl Into<String>) -> Self {
        Self::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    }

    /// Whether this is a text or binary message.
    pub fn is_data(&self) -> bool {
        matches!(self, Self::Text(_) | Self::Binary(_))
    }

    /// The text of a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The payload bytes (empty for `Close`).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Text(t) => t.as_bytes(),
            Self::Binary(b) | Self::Ping(b) | Self::Pong { payload: b, .. } => b,
            Self::Close(_) => &[],
        }
    }
}

impl Message {
    /// The data message for the protocol layer (control variants become a
    /// binary message of their payload; the reliable layer carries data only).
    pub fn to_proto(&self) -> hookup_proto::Message {
        match self {
            Self::Text(t) => hookup_proto::Message::Text(t.clone()),
            Self::Binary(b) => hookup_proto::Message::Binary(b.clone()),
            other => hookup_proto::Message::Binary(Bytes::copy_from_slice(other.as_bytes())),
        }
    }
}

impl Message {
    /// [`to_proto`](Self::to_proto), by value (no reference count taken).
    #[inline]
    pub(crate) fn into_proto(self) -> hookup_proto::Message {
        match self {
            Self::Text(t) => hookup_proto::Message::Text(t),
            Self::Binary(b) => hookup_proto::Message::Binary(b),
            other => other.to_proto(),
        }
    }
}

impl From<hookup_proto::Message> for Message {
    fn from(m: hookup_proto::Message) -> Self {
        match m {
            hookup_proto::Message::Text(t) => Self::Text(t),
            hookup_proto::Message::Binary(b) => Self::Binary(b),
            other => Self::Binary(other.into_bytes()),
        }
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Self::text(s)
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Self::text(s)
    }
}

impl From<Vec<u8>> for Message {
    fn from(v: Vec<u8>) -> Self {
        Self::binary(v)
    }
}
