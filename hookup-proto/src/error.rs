//! Errors, split by who is at fault.
//!
//! * [`ProtocolError`]: the peer broke RFC 6455 after the handshake; each
//!   variant carries the [`CloseCode`] to send.
//! * [`HandshakeError`]: the peer's opening handshake was unacceptable; on the
//!   server side each variant carries the HTTP status to answer with.
//! * [`UsageError`]: the local application called something at the wrong
//!   time or with bad arguments. These depend only on the order and values of
//!   calls, never on data from the network.
//! * [`Error`]: what ends a connection, reported in
//!   [`Closed::error`](crate::Closed::error).

use std::fmt;
use std::time::Duration;

use crate::close::CloseCode;

/// A violation of RFC 6455 by the peer, after the opening handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// An opcode reserved for future use (0x3–0x7, 0xB–0xF).
    ReservedOpcode(u8),
    /// RSV bits set with no extension negotiated that defines them.
    ReservedBits(u8),
    /// A control frame with FIN clear.
    FragmentedControlFrame,
    /// A control frame with more than 125 bytes of payload.
    ControlFrameTooLong,
    /// A 64-bit payload length with its most significant bit set.
    InvalidLength,
    /// A payload length not in its shortest encoding (RFC 6455 §5.2: a
    /// 16-bit length below 126, or a 64-bit length that fits in 16 bits).
    NonMinimalLength,
    /// A client frame that was not masked.
    UnmaskedFrame,
    /// A server frame that was masked.
    MaskedFrame,
    /// A continuation frame with no message in progress.
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is in progress.
    ExpectedContinuation,
    /// A text message (or close reason) that is not valid UTF-8.
    InvalidUtf8,
    /// A close frame with a one-byte payload.
    CloseFrameTooShort,
    /// A close code that may not appear on the wire.
    InvalidCloseCode(u16),
    /// A frame larger than the configured maximum.
    FrameTooLarge {
        /// The frame's payload length.
        size: u64,
        /// The configured maximum.
        max: usize,
    },
    /// A message larger than the configured maximum.
    MessageTooLarge {
        /// The size the message reached.
        size: u64,
        /// The configured maximum.
        max: usize,
    },
    /// RSV1 (compressed) set on a continuation frame (RFC 7692 §6.1).
    CompressedContinuation,
    /// RSV1 (compressed) set on a control frame (RFC 7692 §6.1).
    CompressedControlFrame,
    /// A compressed message that is not valid deflate data.
    InvalidCompressedData(String),
    /// Nothing was read for [`Config::idle_timeout`](crate::Config::idle_timeout),
    /// not even the answer to the ping sent halfway through (close 1001).
    IdleTimeout(Duration),
    /// A data message was started but not finished within
    /// [`Config::message_timeout`](crate::Config::message_timeout) (close 1008).
    MessageTimeout(Duration),
    /// The unfinished input of all connections sharing an
    /// [`InputBudget`](crate::InputBudget) passed its limit after a read of
    /// this connection: the message in progress is refused with close 1009
    /// (1013, "try again later", would fit better, but RFC 6455 §7.4.1 does
    /// not define it and strict peers, this crate included, reject it).
    InputBudgetExhausted {
        /// The budget's limit in bytes.
        limit: usize,
    },
}

impl ProtocolError {
    /// The close code to send for this error.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::InvalidUtf8 | Self::InvalidCompressedData(_) => CloseCode::INVALID_PAYLOAD,
            Self::FrameTooLarge { .. } | Self::MessageTooLarge { .. } => CloseCode::MESSAGE_TOO_BIG,
            Self::IdleTimeout(_) => CloseCode::GOING_AWAY,
            Self::MessageTimeout(_) => CloseCode::POLICY_VIOLATION,
            Self::InputBudgetExhausted { .. } => CloseCode::MESSAGE_TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            Self::ReservedBits(b) => write!(f, "reserved bits {b:#05b} set without an extension"),
            Self::FragmentedControlFrame => f.write_str("fragmented control frame"),
            Self::ControlFrameTooLong => f.write_str("control frame payload longer than 125 bytes"),
            Self::InvalidLength => f.write_str("64-bit payload length with the high bit set"),
            Self::NonMinimalLength => f.write_str("payload length not in its shortest encoding"),
            Self::UnmaskedFrame => f.write_str("client frame is not masked"),
            Self::MaskedFrame => f.write_str("server frame is masked"),
            Self::UnexpectedContinuation => {
                f.write_str("continuation frame without a message in progress")
            }
            Self::ExpectedContinuation => f.write_str("new data frame inside a fragmented message"),
            Self::InvalidUtf8 => f.write_str("invalid UTF-8 in text"),
            Self::CloseFrameTooShort => f.write_str("close frame with a 1-byte payload"),
            Self::InvalidCloseCode(c) => write!(f, "close code {c} may not be sent"),
            Self::FrameTooLarge { size, max } => {
                write!(f, "frame of {size} bytes exceeds the limit of {max}")
            }
            Self::MessageTooLarge { size, max } => {
                write!(f, "message of {size} bytes exceeds the limit of {max}")
            }
            Self::CompressedContinuation => f.write_str("RSV1 set on a continuation frame"),
            Self::CompressedControlFrame => f.write_str("RSV1 set on a control frame"),
            Self::InvalidCompressedData(e) => write!(f, "invalid compressed data: {e}"),
            Self::IdleTimeout(d) => write!(f, "nothing received for {d:?}"),
            Self::MessageTimeout(d) => write!(f, "message not completed within {d:?}"),
            Self::InputBudgetExhausted { limit } => write!(
                f,
                "unfinished input of all connections exceeds the budget of {limit} bytes"
            ),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// An unacceptable opening handshake from the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The HTTP head could not be parsed.
    Malformed(String),
    /// The HTTP head exceeds the configured limit.
    HeaderTooLarge {
        /// The configured limit in bytes.
        max: usize,
    },
    /// (Server) The request method is not GET.
    MethodNotGet,
    /// The HTTP version is not 1.1.
    HttpVersion,
    /// (Server) No Host header.
    MissingHost,
    /// `Upgrade: websocket` is missing.
    NotWebSocketUpgrade,
    /// `Connection: Upgrade` is missing.
    MissingConnectionUpgrade,
    /// (Server) `Sec-WebSocket-Version` is not 13.
    UnsupportedVersion,
    /// (Server) `Sec-WebSocket-Key` is missing or not 16 base64-encoded bytes.
    InvalidKey,
    /// (Client) The server answered with a status other than 101.
    Status(u16),
    /// (Client) `Sec-WebSocket-Accept` is missing or wrong.
    InvalidAccept,
    /// (Client) The server chose a subprotocol the client did not offer.
    UnofferedSubprotocol(String),
    /// (Client) The server selected an extension the client did not request.
    UnrequestedExtension(String),
    /// (Client) The server's permessage-deflate response is not one the
    /// offer allowed (RFC 7692 §7.1).
    InvalidExtension(String),
    /// The handshake did not complete within the configured time.
    Timeout,
    /// The transport closed before the handshake completed.
    Eof,
}

impl HandshakeError {
    /// The HTTP status a server answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::HeaderTooLarge { .. } => 431,
            Self::MethodNotGet => 405,
            Self::UnsupportedVersion | Self::NotWebSocketUpgrade => 426,
            Self::Timeout => 408,
            _ => 400,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(e) => write!(f, "malformed HTTP head: {e}"),
            Self::HeaderTooLarge { max } => write!(f, "HTTP head larger than {max} bytes"),
            Self::MethodNotGet => f.write_str("method is not GET"),
            Self::HttpVersion => f.write_str("HTTP version is not 1.1"),
            Self::MissingHost => f.write_str("missing Host header"),
            Self::NotWebSocketUpgrade => f.write_str("missing `Upgrade: websocket`"),
            Self::MissingConnectionUpgrade => f.write_str("missing `Connection: Upgrade`"),
            Self::UnsupportedVersion => f.write_str("Sec-WebSocket-Version is not 13"),
            Self::InvalidKey => f.write_str("missing or invalid Sec-WebSocket-Key"),
            Self::Status(s) => write!(f, "server answered with status {s}, not 101"),
            Self::InvalidAccept => f.write_str("missing or wrong Sec-WebSocket-Accept"),
            Self::UnofferedSubprotocol(p) => {
                write!(f, "server chose subprotocol {p:?} that was not offered")
            }
            Self::UnrequestedExtension(e) => {
                write!(f, "server selected extension {e:?} that was not requested")
            }
            Self::InvalidExtension(e) => write!(f, "invalid permessage-deflate response: {e}"),
            Self::Timeout => f.write_str("opening handshake timed out"),
            Self::Eof => f.write_str("connection closed during the opening handshake"),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// A local misuse of the API. Never caused by data from the network.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsageError {
    /// The connection is not open for sending data (handshake pending, or
    /// closing/closed).
    NotOpen,
    /// The connection is closed.
    Closed,
    /// A control frame payload (ping, pong, close reason + 2) over 125 bytes.
    ControlPayloadTooLong,
    /// A close code that may not be sent (1005, 1006, 1015, out of range).
    InvalidCloseCode(u16),
    /// No request is waiting for `accept`/`reject`.
    NoPendingRequest,
    /// `accept` on a request that is not a WebSocket upgrade.
    NotAnUpgrade,
    /// A subprotocol, header name or value that is not valid in HTTP.
    InvalidHeader(String),
    /// The URL is not a valid `ws://` or `wss://` URL.
    InvalidUrl(String),
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotOpen => f.write_str("connection is not open"),
            Self::Closed => f.write_str("connection is closed"),
            Self::ControlPayloadTooLong => {
                f.write_str("control frame payload longer than 125 bytes")
            }
            Self::InvalidCloseCode(c) => write!(f, "close code {c} may not be sent"),
            Self::NoPendingRequest => f.write_str("no handshake request is waiting for a decision"),
            Self::NotAnUpgrade => f.write_str("the request is not a WebSocket upgrade"),
            Self::InvalidHeader(h) => write!(f, "invalid header: {h}"),
            Self::InvalidUrl(u) => write!(f, "invalid WebSocket URL: {u}"),
        }
    }
}

impl std::error::Error for UsageError {}

/// Why a connection ended abnormally.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The peer violated the protocol.
    Protocol(ProtocolError),
    /// The opening handshake failed.
    Handshake(HandshakeError),
    /// The peer did not answer our close frame in time.
    CloseTimeout(Duration),
    /// The transport ended without a closing handshake.
    Eof,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(e) => write!(f, "protocol error: {e}"),
            Self::Handshake(e) => write!(f, "handshake failed: {e}"),
            Self::CloseTimeout(d) => write!(f, "no close reply within {d:?}"),
            Self::Eof => f.write_str("connection closed without a closing handshake"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Protocol(e) => Some(e),
            Self::Handshake(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Self::Handshake(e)
    }
}
