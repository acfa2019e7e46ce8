//! The `hookup.v1` wire format (see PROTOCOL.md at the repository root).
//!
//! Every envelope is one binary WebSocket message whose first byte is its
//! type; integers are big-endian.
//!
//! | type | name | body |
//! |---|---|---|
//! | 0x01 | HELLO (client → server) | version `u8` (= 1), id length `u8`, session id, received `u64` |
//! | 0x02 | WELCOME (server → client) | flags `u8` (bit 0: resumed), id length `u8`, session id, received `u64` |
//! | 0x03 | DATA (both) | flags `u8` (bit 0: text, bit 1: ack now), sequence `u64`, payload |
//! | 0x04 | ACK (both) | cumulative sequence `u64` |

use std::fmt;

/// The WebSocket subprotocol name of this wire format.
pub const SUBPROTOCOL: &str = "hookup.v1";

/// Protocol version carried in HELLO.
pub const VERSION: u8 = 1;

/// Longest session id.
pub const MAX_SESSION_ID: usize = 64;

pub(crate) const HELLO: u8 = 0x01;
pub(crate) const WELCOME: u8 = 0x02;
pub(crate) const DATA: u8 = 0x03;
pub(crate) const ACK: u8 = 0x04;

/// Bytes of a DATA envelope before its payload.
pub(crate) const DATA_HEADER_LEN: usize = 10;

pub(crate) const DATA_TEXT: u8 = 0x01;
pub(crate) const DATA_ACK_NOW: u8 = 0x02;

/// A decoded envelope. `Data` borrows its payload from the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Envelope<'a> {
    /// The client opens or resumes a session.
    Hello {
        /// Protocol version.
        version: u8,
        /// Session to resume; empty for a new one.
        session: &'a [u8],
        /// Highest sequence the client received in order from the server.
        received: u64,
    },
    /// The server's answer to HELLO.
    Welcome {
        /// Whether the session was resumed (else it is new).
        resumed: bool,
        /// The session id.
        session: &'a [u8],
        /// Highest sequence the server received in order from the client.
        received: u64,
    },
    /// An application message.
    Data {
        /// Text (else binary).
        text: bool,
        /// The sender asks for an immediate acknowledgement.
        ack_now: bool,
        /// Sequence number, from 1, per session and direction.
        seq: u64,
        /// The application payload.
        payload: &'a [u8],
    },
    /// Everything up to and including `seq` was received.
    Ack {
        /// Cumulative sequence number.
        seq: u64,
    },
}

/// A malformed envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// The message is shorter than its type requires.
    Truncated,
    /// An unknown envelope type.
    UnknownType(u8),
    /// Unknown flag bits, or a version this implementation does not speak.
    Unsupported(&'static str),
    /// A text message on a `hookup.v1` connection (envelopes are binary).
    TextMessage,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("truncated envelope"),
            Self::UnknownType(t) => write!(f, "unknown envelope type {t:#04x}"),
            Self::Unsupported(what) => write!(f, "unsupported {what}"),
            Self::TextMessage => f.write_str("text message where a binary envelope was expected"),
        }
    }
}

impl std::error::Error for WireError {}

fn u64_at(b: &[u8], at: usize) -> Result<u64, WireError> {
    let s = b.get(at..at + 8).ok_or(WireError::Truncated)?;
    let mut w = [0u8; 8];
    w.copy_from_slice(s);
    Ok(u64::from_be_bytes(w))
}

fn id_and_received(b: &[u8]) -> Result<(&[u8], u64), WireError> {
    let len = usize::from(*b.get(2).ok_or(WireError::Truncated)?);
    if len > MAX_SESSION_ID {
        return Err(WireError::Unsupported("session id length"));
    }
    let id = b.get(3..3 + len).ok_or(WireError::Truncated)?;
    let received = u64_at(b, 3 + len)?;
    if b.len() != 3 + len + 8 {
        return Err(WireError::Unsupported("trailing bytes"));
    }
    Ok((id, received))
}

impl<'a> Envelope<'a> {
    /// Decodes one envelope.
    pub fn decode(b: &'a [u8]) -> Result<Self, WireError> {
        match *b.first().ok_or(WireError::Truncated)? {
            HELLO => {
                let version = *b.get(1).ok_or(WireError::Truncated)?;
                if version != VERSION {
                    return Err(WireError::Unsupported("protocol version"));
                }
                let (session, received) = id_and_received(b)?;
                Ok(Self::Hello {
                    version,
                    session,
                    received,
                })
            }
            WELCOME => {
                let flags = *b.get(1).ok_or(WireError::Truncated)?;
                if flags & !1 != 0 {
                    return Err(WireError::Unsupported("WELCOME flags"));
                }
                let (session, received) = id_and_received(b)?;
                Ok(Self::Welcome {
                    resumed: flags & 1 != 0,
                    session,
                    received,
                })
            }
            DATA => {
                let flags = *b.get(1).ok_or(WireError::Truncated)?;
                if flags & !(DATA_TEXT | DATA_ACK_NOW) != 0 {
                    return Err(WireError::Unsupported("DATA flags"));
                }
                let seq = u64_at(b, 2)?;
                Ok(Self::Data {
                    text: flags & DATA_TEXT != 0,
                    ack_now: flags & DATA_ACK_NOW != 0,
                    seq,
                    payload: &b[10..],
                })
            }
            ACK => {
                if b.len() != 9 {
                    return Err(WireError::Truncated);
                }
                Ok(Self::Ack { seq: u64_at(b, 1)? })
            }
            t => Err(WireError::UnknownType(t)),
        }
    }
}

/// Encodes HELLO or WELCOME.
pub(crate) fn encode_greeting(kind: u8, second: u8, session: &[u8], received: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(11 + session.len());
    out.push(kind);
    out.push(second);
    out.push(session.len() as u8);
    out.extend_from_slice(session);
    out.extend_from_slice(&received.to_be_bytes());
    out
}

/// The 10-byte header of a DATA envelope.
pub(crate) fn data_header(text: bool, ack_now: bool, seq: u64) -> [u8; 10] {
    let mut h = [0u8; 10];
    h[0] = DATA;
    h[1] = if text { DATA_TEXT } else { 0 } | if ack_now { DATA_ACK_NOW } else { 0 };
    h[2..].copy_from_slice(&seq.to_be_bytes());
    h
}

/// An ACK envelope.
pub(crate) fn ack(seq: u64) -> [u8; 9] {
    let mut a = [0u8; 9];
    a[0] = ACK;
    a[1..].copy_from_slice(&seq.to_be_bytes());
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects() {
        let h = encode_greeting(HELLO, VERSION, b"abc", 42);
        assert_eq!(
            Envelope::decode(&h),
            Ok(Envelope::Hello {
                version: 1,
                session: b"abc",
                received: 42
            })
        );
        let w = encode_greeting(WELCOME, 1, b"", 7);
        assert_eq!(
            Envelope::decode(&w),
            Ok(Envelope::Welcome {
                resumed: true,
                session: b"",
                received: 7
            })
        );
        let mut d = data_header(true, true, 9).to_vec();
        d.extend_from_slice(b"hi");
        assert_eq!(
            Envelope::decode(&d),
            Ok(Envelope::Data {
                text: true,
                ack_now: true,
                seq: 9,
                payload: b"hi"
            })
        );
        assert_eq!(Envelope::decode(&ack(5)), Ok(Envelope::Ack { seq: 5 }));
        for cut in 0..h.len() {
            assert!(Envelope::decode(&h[..cut]).is_err());
        }
        assert_eq!(Envelope::decode(&[0x7f]), Err(WireError::UnknownType(0x7f)));
        assert!(Envelope::decode(&[DATA, 0x80, 0, 0, 0, 0, 0, 0, 0, 1]).is_err());
        assert!(Envelope::decode(&encode_greeting(HELLO, 2, b"", 0)).is_err());
    }
}
