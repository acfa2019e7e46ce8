//! The `hookup.v1` wire format (see PROTOCOL.md at the repository root).
//!
//! Every envelope is one binary WebSocket message whose first byte is its
//! type; integers are big-endian.
//!
//! | type | name | body |
//! |---|---|---|
//! | 0x01 | HELLO (client → server) | version `u8` (2; 1 is still read), id length `u8`, session id, received `u64`, then (version 2) proof length `u8` (0 or 32), proof |
//! | 0x02 | WELCOME (server → client) | flags `u8` (bit 0: resumed, bit 1: key follows), id length `u8`, session id, received `u64`, then (bit 1) resume key (32 bytes) |
//! | 0x03 | DATA (both) | flags `u8` (bit 0: text, bit 1: ack now), sequence `u64`, payload |
//! | 0x04 | ACK (both) | cumulative sequence `u64` |

use std::fmt;

use super::key::RESUME_KEY_LEN;

/// The WebSocket subprotocol name of this wire format.
pub const SUBPROTOCOL: &str = "hookup.v1";

/// Protocol version carried in HELLO: 2 adds the resume proof to HELLO and
/// the resume key to WELCOME(new).
pub const VERSION: u8 = 2;

/// The oldest HELLO version a server still reads: version 1 clients have
/// no resume key, so they always get a new session.
pub const MIN_VERSION: u8 = 1;

/// Longest session id.
pub const MAX_SESSION_ID: usize = 64;

pub(crate) const HELLO: u8 = 0x01;
pub(crate) const WELCOME: u8 = 0x02;
pub(crate) const DATA: u8 = 0x03;
pub(crate) const ACK: u8 = 0x04;

/// Bytes of a DATA envelope before its payload.
pub(crate) const DATA_HEADER_LEN: usize = 10;

pub(crate) const WELCOME_RESUMED: u8 = 0x01;
pub(crate) const WELCOME_KEY: u8 = 0x02;

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
        /// (Version 2) The session's resume key, proving that the client
        /// owns `session`; `None` in version 1 or when it has none.
        proof: Option<&'a [u8; RESUME_KEY_LEN]>,
    },
    /// The server's answer to HELLO.
    Welcome {
        /// Whether the session was resumed (else it is new).
        resumed: bool,
        /// The session id.
        session: &'a [u8],
        /// Highest sequence the server received in order from the client.
        received: u64,
        /// The new session's resume key (WELCOME(new) to a version 2
        /// client; absent otherwise).
        key: Option<&'a [u8; RESUME_KEY_LEN]>,
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

/// The session id and `received` of a greeting, and the rest after them.
fn id_and_received(b: &[u8]) -> Result<(&[u8], u64, &[u8]), WireError> {
    let len = usize::from(*b.get(2).ok_or(WireError::Truncated)?);
    if len > MAX_SESSION_ID {
        return Err(WireError::Unsupported("session id length"));
    }
    let id = b.get(3..3 + len).ok_or(WireError::Truncated)?;
    let received = u64_at(b, 3 + len)?;
    Ok((id, received, &b[3 + len + 8..]))
}

/// A 32-byte key that must be all of `rest`.
fn key_rest(rest: &[u8]) -> Result<&[u8; RESUME_KEY_LEN], WireError> {
    if rest.len() < RESUME_KEY_LEN {
        return Err(WireError::Truncated);
    }
    rest.try_into()
        .map_err(|_| WireError::Unsupported("trailing bytes"))
}

impl<'a> Envelope<'a> {
    /// Decodes one envelope.
    pub fn decode(b: &'a [u8]) -> Result<Self, WireError> {
        match *b.first().ok_or(WireError::Truncated)? {
            HELLO => {
                let version = *b.get(1).ok_or(WireError::Truncated)?;
                if !(MIN_VERSION..=VERSION).contains(&version) {
                    return Err(WireError::Unsupported("protocol version"));
                }
                let (session, received, rest) = id_and_received(b)?;
                let proof = if version == 1 {
                    if !rest.is_empty() {
                        return Err(WireError::Unsupported("trailing bytes"));
                    }
                    None
                } else {
                    match rest.split_first() {
                        None => return Err(WireError::Truncated),
                        Some((0, [])) => None,
                        Some((0, _)) => return Err(WireError::Unsupported("trailing bytes")),
                        Some((&n, proof)) if usize::from(n) == RESUME_KEY_LEN => {
                            Some(key_rest(proof)?)
                        }
                        Some(_) => return Err(WireError::Unsupported("proof length")),
                    }
                };
                Ok(Self::Hello {
                    version,
                    session,
                    received,
                    proof,
                })
            }
            WELCOME => {
                let flags = *b.get(1).ok_or(WireError::Truncated)?;
                if flags & !(WELCOME_RESUMED | WELCOME_KEY) != 0 {
                    return Err(WireError::Unsupported("WELCOME flags"));
                }
                let (session, received, rest) = id_and_received(b)?;
                let key = if flags & WELCOME_KEY != 0 {
                    Some(key_rest(rest)?)
                } else if rest.is_empty() {
                    None
                } else {
                    return Err(WireError::Unsupported("trailing bytes"));
                };
                Ok(Self::Welcome {
                    resumed: flags & WELCOME_RESUMED != 0,
                    session,
                    received,
                    key,
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

fn greeting(kind: u8, second: u8, session: &[u8], received: u64, extra: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(11 + session.len() + extra);
    out.push(kind);
    out.push(second);
    out.push(session.len() as u8);
    out.extend_from_slice(session);
    out.extend_from_slice(&received.to_be_bytes());
    out
}

/// Encodes HELLO: version 2 with a proof field (`proof` only with a
/// session id), version 1 without one (`proof` ignored).
pub(crate) fn encode_hello(
    version: u8,
    session: &[u8],
    received: u64,
    proof: Option<&[u8; RESUME_KEY_LEN]>,
) -> Vec<u8> {
    let mut out = greeting(HELLO, version, session, received, 1 + RESUME_KEY_LEN);
    if version >= 2 {
        match proof {
            Some(p) if !session.is_empty() => {
                out.push(RESUME_KEY_LEN as u8);
                out.extend_from_slice(p);
            }
            _ => out.push(0),
        }
    }
    out
}

/// Encodes WELCOME, with the resume key when there is one.
pub(crate) fn encode_welcome(
    resumed: bool,
    session: &[u8],
    received: u64,
    key: Option<&[u8; RESUME_KEY_LEN]>,
) -> Vec<u8> {
    let flags =
        if resumed { WELCOME_RESUMED } else { 0 } | if key.is_some() { WELCOME_KEY } else { 0 };
    let mut out = greeting(WELCOME, flags, session, received, RESUME_KEY_LEN);
    if let Some(k) = key {
        out.extend_from_slice(k);
    }
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
        let proof = [9u8; 32];
        let h = encode_hello(VERSION, b"abc", 42, Some(&proof));
        assert_eq!(
            Envelope::decode(&h),
            Ok(Envelope::Hello {
                version: 2,
                session: b"abc",
                received: 42,
                proof: Some(&proof),
            })
        );
        // No proof without an id.
        let h0 = encode_hello(VERSION, b"", 0, Some(&proof));
        assert_eq!(h0, [HELLO, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(
            Envelope::decode(&h0),
            Ok(Envelope::Hello { proof: None, .. })
        ));
        // Version 1: no proof field.
        let h1 = encode_hello(1, b"abc", 42, Some(&proof));
        assert_eq!(h1.len(), 3 + 3 + 8);
        assert_eq!(
            Envelope::decode(&h1),
            Ok(Envelope::Hello {
                version: 1,
                session: b"abc",
                received: 42,
                proof: None,
            })
        );
        let w = encode_welcome(true, b"", 7, None);
        assert_eq!(
            Envelope::decode(&w),
            Ok(Envelope::Welcome {
                resumed: true,
                session: b"",
                received: 7,
                key: None,
            })
        );
        let wk = encode_welcome(false, b"id", 0, Some(&proof));
        assert_eq!(wk[1], WELCOME_KEY);
        assert_eq!(
            Envelope::decode(&wk),
            Ok(Envelope::Welcome {
                resumed: false,
                session: b"id",
                received: 0,
                key: Some(&proof),
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
        for g in [&h, &h0, &h1, &wk] {
            for cut in 0..g.len() {
                assert!(Envelope::decode(&g[..cut]).is_err(), "{g:?} cut at {cut}");
            }
            let mut long = g.clone();
            long.push(0);
            assert!(
                Envelope::decode(&long).is_err(),
                "{g:?} with a trailing byte"
            );
        }
        assert_eq!(Envelope::decode(&[0x7f]), Err(WireError::UnknownType(0x7f)));
        assert!(Envelope::decode(&[DATA, 0x80, 0, 0, 0, 0, 0, 0, 0, 1]).is_err());
        assert!(Envelope::decode(&encode_hello(3, b"", 0, None)).is_err());
        assert!(Envelope::decode(&encode_hello(0, b"", 0, None)).is_err());
        // A proof of another length; WELCOME flags beyond bit 1.
        let mut bad = greeting(HELLO, 2, b"a", 0, 0);
        bad.push(16);
        bad.extend_from_slice(&[1; 16]);
        assert_eq!(
            Envelope::decode(&bad),
            Err(WireError::Unsupported("proof length"))
        );
        let mut wf = w.clone();
        wf[1] |= 4;
        assert!(Envelope::decode(&wf).is_err());
    }
}
