//! The adapters' error type.

use std::fmt;
use std::io;

use hookup_proto::{Closed, HandshakeError, ProtocolError, UsageError};

/// Errors of the hookup adapters.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed.
    Io(io::Error),
    /// The peer violated the WebSocket protocol; our close frame carried
    /// [`ProtocolError::close_code`].
    Protocol(ProtocolError),
    /// The opening handshake failed.
    Handshake(HandshakeError),
    /// The application used the API wrongly (for example sent after close).
    Usage(UsageError),
    /// The connection ended abnormally: no closing handshake (code 1006) or
    /// the peer did not answer our close in time.
    Closed(Box<Closed>),
    /// Connecting or the TLS handshake failed or timed out.
    Connect(String),
    /// (Server) The request was answered with this HTTP status instead of
    /// being upgraded.
    Rejected {
        /// The status sent.
        status: u16,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::Protocol(e) => write!(f, "protocol error: {e}"),
            Self::Handshake(e) => write!(f, "handshake failed: {e}"),
            Self::Usage(e) => write!(f, "{e}"),
            Self::Closed(c) => match &c.error {
                Some(e) => write!(f, "connection closed abnormally: {e}"),
                None => write!(f, "connection closed (code {})", c.code()),
            },
            Self::Connect(e) => write!(f, "cannot connect: {e}"),
            Self::Rejected { status } => write!(f, "request answered with HTTP {status}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Protocol(e) => Some(e),
            Self::Handshake(e) => Some(e),
            Self::Usage(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<UsageError> for Error {
    fn from(e: UsageError) -> Self {
        Self::Usage(e)
    }
}

impl From<Error> for io::Error {
    /// For compatibility with APIs that speak `io::Error`.
    fn from(e: Error) -> Self {
        match e {
            Error::Io(e) => e,
            other => Self::other(other),
        }
    }
}

/// The adapters' result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error that ends a stream for a [`Closed`] report, if it is one.
pub(crate) fn closed_error(c: &Closed) -> Option<Error> {
    use hookup_proto::Error as E;
    match &c.error {
        None => None,
        Some(E::Protocol(p)) => Some(Error::Protocol(p.clone())),
        Some(E::Handshake(h)) => Some(Error::Handshake(h.clone())),
        Some(_) => Some(Error::Closed(Box::new(c.clone()))),
    }
}
