//! Frame headers (RFC 6455 §5.2): decoding with "need more data" distinct
//! from errors, and encoding into a caller's buffer.

use crate::error::ProtocolError;

/// A frame opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpCode {
    /// 0x0: continuation of a fragmented message.
    Continuation,
    /// 0x1: first frame of a text message.
    Text,
    /// 0x2: first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// The opcode for a 4-bit value, or `None` for reserved values.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    /// The 4-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Close, ping and pong are control opcodes.
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN bit: last frame of a message.
    pub fin: bool,
    /// RSV1..RSV3 as the low three bits (RSV1 = 0b100).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on client-to-server frames.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
}

/// The largest header: 2 + 8 (64-bit length) + 4 (mask).
pub const MAX_HEADER_LEN: usize = 14;

impl FrameHeader {
    /// Decodes a header from the front of `buf`.
    ///
    /// `Ok(None)` means more bytes are needed (not an error). `Ok(Some((h, n)))`
    /// gives the header and its length `n`. Errors are the peer's protocol
    /// violations that can be seen in the header alone: reserved opcodes,
    /// fragmented or oversized control frames, a 64-bit length with its
    /// high bit set, and a length not in its shortest encoding (RFC 6455
    /// §5.2: "the minimal number of bytes MUST be used"). RSV bits and masking are checked by the connection, which
    /// knows the role and the negotiated extensions.
    #[inline]
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, ProtocolError> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        let fin = b0 & 0x80 != 0;
        let rsv = (b0 >> 4) & 0x07;
        let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(ProtocolError::ReservedOpcode(b0 & 0x0F))?;
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7F;
        if opcode.is_control() {
            if !fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if len7 > 125 {
                return Err(ProtocolError::ControlFrameTooLong);
            }
        }
        let (payload_len, mut pos) = match len7 {
            126 => {
                let Some(b) = buf.get(2..4) else {
                    return Ok(None);
                };
                let len = u16::from_be_bytes([b[0], b[1]]);
                if len < 126 {
                    return Err(ProtocolError::NonMinimalLength);
                }
                (u64::from(len), 4)
            }
            127 => {
                let Some(b) = buf.get(2..10) else {
                    return Ok(None);
                };
                let mut w = [0u8; 8];
                w.copy_from_slice(b);
                let len = u64::from_be_bytes(w);
                if len >> 63 != 0 {
                    return Err(ProtocolError::InvalidLength);
                }
                if len <= 0xFFFF {
                    return Err(ProtocolError::NonMinimalLength);
                }
                (len, 10)
            }
            n => (u64::from(n), 2),
        };
        let mask = if masked {
            let Some(b) = buf.get(pos..pos + 4) else {
                return Ok(None);
            };
            pos += 4;
            Some([b[0], b[1], b[2], b[3]])
        } else {
            None
        };
        Ok(Some((
            Self {
                fin,
                rsv,
                opcode,
                mask,
                payload_len,
            },
            pos,
        )))
    }

    /// Encoded length of this header.
    pub fn encoded_len(&self) -> usize {
        let len = match self.payload_len {
            0..=125 => 2,
            126..=0xFFFF => 4,
            _ => 10,
        };
        len + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Appends the encoded header to `out` (shortest length encoding).
    #[inline]
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut tmp = [0u8; MAX_HEADER_LEN];
        let n = self.encode_to(&mut tmp);
        out.extend_from_slice(&tmp[..n]);
    }

    /// Writes the encoded header into `out`, returning its length.
    #[inline]
    pub fn encode_to(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = (u8::from(self.fin) << 7) | ((self.rsv & 7) << 4) | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut pos = match self.payload_len {
            n @ 0..=125 => {
                out[1] = mask_bit | n as u8;
                2
            }
            n @ 126..=0xFFFF => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                4
            }
            n => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&n.to_be_bytes());
                10
            }
        };
        if let Some(m) = self.mask {
            out[pos..pos + 4].copy_from_slice(&m);
            pos += 4;
        }
        pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn opcode() -> impl Strategy<Value = OpCode> {
        prop_oneof![
            Just(OpCode::Continuation),
            Just(OpCode::Text),
            Just(OpCode::Binary),
            Just(OpCode::Close),
            Just(OpCode::Ping),
            Just(OpCode::Pong),
        ]
    }

    proptest! {
        #[test]
        fn header_round_trip(op in opcode(), fin in any::<bool>(), rsv in 0u8..8,
                             mask in any::<Option<[u8; 4]>>(), len in prop_oneof![0u64..200, 0u64..70_000, 0u64..(1 << 63)]) {
            let (fin, len) = if op.is_control() { (true, len % 126) } else { (fin, len) };
            let h = FrameHeader { fin, rsv, opcode: op, mask, payload_len: len };
            let mut out = Vec::new();
            h.encode(&mut out);
            prop_assert_eq!(out.len(), h.encoded_len());
            // Every strict prefix needs more data; the whole decodes, with trailing bytes ignored.
            for cut in 0..out.len() {
                prop_assert_eq!(FrameHeader::decode(&out[..cut]), Ok(None));
            }
            out.extend_from_slice(b"trailing");
            prop_assert_eq!(FrameHeader::decode(&out), Ok(Some((h, h.encoded_len()))));
        }
    }

    #[test]
    fn rejects_reserved_and_bad_control() {
        assert_eq!(
            FrameHeader::decode(&[0x83, 0]),
            Err(ProtocolError::ReservedOpcode(3))
        );
        assert_eq!(
            FrameHeader::decode(&[0x8B, 0]),
            Err(ProtocolError::ReservedOpcode(0xB))
        );
        assert_eq!(
            FrameHeader::decode(&[0x09, 0]),
            Err(ProtocolError::FragmentedControlFrame)
        );
        assert_eq!(
            FrameHeader::decode(&[0x89, 126]),
            Err(ProtocolError::ControlFrameTooLong)
        );
        let mut big = vec![0x82, 127];
        big.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(FrameHeader::decode(&big), Err(ProtocolError::InvalidLength));
    }

    #[test]
    fn rejects_non_minimal_lengths() {
        for len in [0u16, 1, 125] {
            let mut h = vec![0x82, 126];
            h.extend_from_slice(&len.to_be_bytes());
            assert_eq!(
                FrameHeader::decode(&h),
                Err(ProtocolError::NonMinimalLength)
            );
        }
        for len in [0u64, 125, 126, 0xFFFF] {
            let mut h = vec![0x82, 127];
            h.extend_from_slice(&len.to_be_bytes());
            assert_eq!(
                FrameHeader::decode(&h),
                Err(ProtocolError::NonMinimalLength)
            );
        }
        // The shortest encodings of the boundary values still decode.
        assert!(FrameHeader::decode(&[0x82, 126, 0, 126]).unwrap().is_some());
        let mut h = vec![0x82, 127];
        h.extend_from_slice(&0x1_0000u64.to_be_bytes());
        assert!(FrameHeader::decode(&h).unwrap().is_some());
    }
}
