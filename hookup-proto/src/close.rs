//! Close codes and close-frame payloads (RFC 6455 §5.5.1, §7.4).

use std::fmt;

use crate::error::ProtocolError;

/// A WebSocket close status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the endpoint is going away.
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1005: no status code was present (reported locally, never sent).
    pub const NO_STATUS: Self = Self(1005);
    /// 1006: the connection closed without a close frame (reported locally, never sent).
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: data inconsistent with the message type (e.g. invalid UTF-8).
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: policy violation.
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: a message too big to process.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: Self = Self(1010);
    /// 1011: unexpected condition on the server.
    pub const INTERNAL_ERROR: Self = Self(1011);

    /// Whether a peer may put this code in a close frame: 1000–1003,
    /// 1007–1011 and 3000–4999 (the Autobahn 7.7/7.9 reading of §7.4).
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1011 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(v: u16) -> Self {
        Self(v)
    }
}

impl From<CloseCode> for u16 {
    fn from(c: CloseCode) -> Self {
        c.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A close frame's contents: a code and a UTF-8 reason (at most 123 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason text.
    pub reason: String,
}

impl CloseFrame {
    /// Parses a received close payload. An empty payload is `Ok(None)`
    /// (reported as 1005); one byte is a protocol error; an invalid code is a
    /// protocol error; a reason that is not UTF-8 is 1007.
    pub fn parse(payload: &[u8]) -> Result<Option<Self>, ProtocolError> {
        match payload {
            [] => Ok(None),
            [_] => Err(ProtocolError::CloseFrameTooShort),
            [a, b, reason @ ..] => {
                let code = CloseCode(u16::from_be_bytes([*a, *b]));
                if !code.is_valid_on_wire() {
                    return Err(ProtocolError::InvalidCloseCode(code.0));
                }
                let reason = simdutf8::basic::from_utf8(reason)
                    .map_err(|_| ProtocolError::InvalidUtf8)?
                    .to_owned();
                Ok(Some(Self { code, reason }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_close_payloads() {
        assert_eq!(CloseFrame::parse(&[]), Ok(None));
        assert_eq!(
            CloseFrame::parse(&[3]),
            Err(ProtocolError::CloseFrameTooShort)
        );
        assert_eq!(
            CloseFrame::parse(&[0x03, 0xE8, b'o', b'k']),
            Ok(Some(CloseFrame {
                code: CloseCode::NORMAL,
                reason: "ok".into()
            }))
        );
        for bad in [
            0u16, 999, 1004, 1005, 1006, 1012, 1015, 1016, 2999, 5000, 65535,
        ] {
            assert_eq!(
                CloseFrame::parse(&bad.to_be_bytes()),
                Err(ProtocolError::InvalidCloseCode(bad))
            );
        }
        for good in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(CloseFrame::parse(&good.to_be_bytes()).unwrap().is_some());
        }
        assert_eq!(
            CloseFrame::parse(&[0x03, 0xE8, 0xFF]),
            Err(ProtocolError::InvalidUtf8)
        );
    }
}
