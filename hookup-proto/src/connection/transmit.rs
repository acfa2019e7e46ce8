//! The transmit path: the output queue, the send commands and the one
//! frame encoder.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::time::Instant;

use bytes::{Buf, Bytes};

use super::{Connection, RSV1, Role, State};
use crate::close::{CloseCode, CloseFrame};
use crate::error::UsageError;
use crate::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};
use crate::mask::apply_mask;
use crate::message::{Message, MessageKind};

/// Pings remembered for round-trip times.
const MAX_PENDING_PINGS: usize = 16;

/// Longest payload prefix (an envelope header) assembled on the stack with
/// a frame header.
const MAX_PREFIX: usize = 16;

/// Outgoing bytes: whole segments (zero-copy payloads, or sealed copies)
/// followed by a tail that small frames are appended to.
#[derive(Debug, Default)]
pub(super) struct Outgoing {
    pub(super) segments: VecDeque<Bytes>,
    pub(super) tail: Vec<u8>,
    /// Bytes of `tail` already handed out.
    pub(super) tail_pos: usize,
    pub(super) len: usize,
}

impl Outgoing {
    #[inline]
    fn seal_tail(&mut self) {
        if self.tail.len() > self.tail_pos {
            let mut tail = std::mem::take(&mut self.tail);
            let rest = if self.tail_pos == 0 {
                Bytes::from(tail)
            } else {
                tail.drain(..self.tail_pos);
                Bytes::from(tail)
            };
            self.segments.push_back(rest);
        } else {
            self.tail.clear();
        }
        self.tail_pos = 0;
    }

    // Inlined, as when this lived in one module with its callers.
    #[inline]
    fn push_segment(&mut self, b: Bytes) {
        // An empty segment would show up as an empty slice in
        // `transmit_vectored` (and stay at the front once the bytes before
        // it are written): a writer of the first slice would write 0 bytes.
        if b.is_empty() {
            return;
        }
        self.seal_tail();
        self.len += b.len();
        self.segments.push_back(b);
    }

    // Inlined, as when this lived in one module with its callers.
    #[inline]
    fn advance(&mut self, mut n: usize) {
        assert!(n <= self.len, "advance_transmit past the queued bytes");
        self.len -= n;
        while n > 0 {
            if let Some(front) = self.segments.front_mut() {
                if n >= front.len() {
                    n -= front.len();
                    self.segments.pop_front();
                } else {
                    front.advance(n);
                    n = 0;
                }
            } else {
                self.tail_pos += n;
                n = 0;
            }
        }
        if self.tail_pos == self.tail.len() {
            self.tail.clear();
            self.tail_pos = 0;
        }
    }
}

impl Connection {
    // ------------------------------------------------------------ output

    /// Appends every queued output byte to `buf` (moving the buffer without
    /// copying when `buf` is empty). Returns whether anything was added.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        if self.out.len == 0 {
            return false;
        }
        if buf.is_empty() && self.out.segments.is_empty() && self.out.tail_pos == 0 {
            std::mem::swap(buf, &mut self.out.tail);
            if self.out.tail.capacity() < buf.capacity() / 2 {
                self.out.tail = Vec::with_capacity(buf.capacity().min(64 << 10));
            }
        } else {
            buf.reserve(self.out.len);
            for s in &self.out.segments {
                buf.extend_from_slice(s);
            }
            buf.extend_from_slice(&self.out.tail[self.out.tail_pos..]);
            self.out.segments.clear();
            self.out.tail.clear();
            self.out.tail_pos = 0;
        }
        self.out.len = 0;
        true
    }

    /// Fills `dst` with slices of the queued output, in order, for a
    /// vectored write; returns how many were filled. Follow with
    /// [`advance_transmit`](Self::advance_transmit) by the bytes written.
    pub fn transmit_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for s in &self.out.segments {
            if n == dst.len() {
                return n;
            }
            dst[n] = IoSlice::new(s);
            n += 1;
        }
        if n < dst.len() && self.out.tail.len() > self.out.tail_pos {
            dst[n] = IoSlice::new(&self.out.tail[self.out.tail_pos..]);
            n += 1;
        }
        n
    }

    /// Marks `n` bytes of queued output as written.
    ///
    /// # Panics
    /// If `n` exceeds [`transmit_len`](Self::transmit_len).
    pub fn advance_transmit(&mut self, n: usize) {
        self.out.advance(n);
    }

    // ------------------------------------------------------------ commands

    /// Queues a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), UsageError> {
        self.send_frame(OpCode::Text, true, text.as_bytes())
    }

    /// Queues a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), UsageError> {
        self.send_frame(OpCode::Binary, true, data)
    }

    /// Queues a message. A server queues a large payload (at least
    /// [`Config::zero_copy_threshold`](crate::Config::zero_copy_threshold)) without copying it.
    pub fn send(&mut self, message: Message) -> Result<(), UsageError> {
        let opcode = if message.is_text() {
            OpCode::Text
        } else {
            OpCode::Binary
        };
        let payload = message.into_bytes();
        if self.role == Role::Server
            && payload.len() >= self.config.zero_copy_threshold
            && self.deflate.is_none()
        {
            self.check_can_send_data(opcode)?;
            let header = FrameHeader {
                fin: true,
                rsv: 0,
                opcode,
                mask: None,
                payload_len: payload.len() as u64,
            };
            header.encode(&mut self.out.tail);
            self.out.len += header.encoded_len();
            self.out.push_segment(payload);
            return Ok(());
        }
        self.send_frame(opcode, true, &payload)
    }

    /// Queues one message whose payload is the concatenation of `parts`
    /// (for example a protocol header and an application payload), copied
    /// once into the output queue.
    pub fn send_parts(&mut self, kind: MessageKind, parts: &[&[u8]]) -> Result<(), UsageError> {
        let opcode = match kind {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        };
        self.check_can_send_data(opcode)?;
        if self.deflate.is_some() {
            self.write_data_frame(opcode, true, parts);
            return Ok(());
        }
        self.encode_frame(opcode, true, 0, &[], parts);
        Ok(())
    }

    /// Queues one message whose payload is `prefix` (a protocol header of
    /// a few bytes) followed by `payload`, copied once into the output queue.
    pub(crate) fn send_prefixed<const N: usize>(
        &mut self,
        kind: MessageKind,
        prefix: &[u8; N],
        payload: &[u8],
    ) -> Result<(), UsageError> {
        let opcode = match kind {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        };
        self.check_can_send_data(opcode)?;
        if self.deflate.is_some() {
            self.write_data_frame(opcode, true, &[prefix, payload]);
            return Ok(());
        }
        self.encode_frame(opcode, true, 0, prefix, &[payload]);
        Ok(())
    }

    /// Queues one frame of a fragmented message. The first call gives the
    /// message's kind; later calls continue it (their `kind` is ignored);
    /// `fin` ends it. Text fragments together must form valid UTF-8.
    pub fn send_fragment(
        &mut self,
        kind: MessageKind,
        data: &[u8],
        fin: bool,
    ) -> Result<(), UsageError> {
        let opcode = match (self.sending_fragmented, kind) {
            (Some(_), _) => OpCode::Continuation,
            (None, MessageKind::Text) => OpCode::Text,
            (None, MessageKind::Binary) => OpCode::Binary,
        };
        self.send_frame(opcode, fin, data)?;
        self.sending_fragmented = if fin { None } else { Some(kind) };
        Ok(())
    }

    /// Sends a ping; its pong will report a round-trip time measured from `now`.
    pub fn send_ping(&mut self, now: Instant, payload: &[u8]) -> Result<(), UsageError> {
        self.advance_clock(now);
        self.send_control(OpCode::Ping, payload)?;
        if self.pings.len() == MAX_PENDING_PINGS {
            self.pings.pop_front();
        }
        self.pings.push_back((Bytes::copy_from_slice(payload), now));
        Ok(())
    }

    /// Sends an unsolicited pong (or a reply when `auto_pong` is off).
    pub fn send_pong(&mut self, payload: &[u8]) -> Result<(), UsageError> {
        self.send_control(OpCode::Pong, payload)
    }

    // ------------------------------------------------------------ internals

    fn check_can_send_data(&self, opcode: OpCode) -> Result<(), UsageError> {
        match self.state {
            State::Open => {}
            State::Closed => return Err(UsageError::Closed),
            _ => return Err(UsageError::NotOpen),
        }
        match (self.sending_fragmented.is_some(), opcode) {
            (true, OpCode::Text | OpCode::Binary) | (false, OpCode::Continuation) => {
                Err(UsageError::NotOpen)
            }
            _ => Ok(()),
        }
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), UsageError> {
        match self.state {
            State::Open => {}
            State::Closed => return Err(UsageError::Closed),
            _ => return Err(UsageError::NotOpen),
        }
        if payload.len() > 125 {
            return Err(UsageError::ControlPayloadTooLong);
        }
        self.encode_frame(opcode, true, 0, &[], &[payload]);
        Ok(())
    }

    fn send_frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) -> Result<(), UsageError> {
        self.check_can_send_data(opcode)?;
        if self.deflate.is_some() {
            self.write_data_frame(opcode, fin, &[payload]);
            return Ok(());
        }
        self.encode_frame(opcode, fin, 0, &[], &[payload]);
        Ok(())
    }

    /// Writes a data frame with permessage-deflate negotiated: compressed
    /// (RSV1 on a message's first frame) when the message qualifies.
    #[cold]
    #[inline(never)]
    fn write_data_frame(&mut self, opcode: OpCode, fin: bool, parts: &[&[u8]]) {
        let Some(d) = self.deflate.as_mut() else {
            return self.encode_frame(opcode, fin, 0, &[], parts);
        };
        let len = parts.iter().map(|p| p.len()).sum();
        let first = opcode != OpCode::Continuation;
        if !d.compress_frame(first, fin, len) {
            return self.encode_frame(opcode, fin, 0, &[], parts);
        }
        let Some(compressed) = d.compress(parts, fin) else {
            return self.encode_frame(opcode, fin, 0, &[], parts);
        };
        let rsv = if first { RSV1 } else { 0 };
        self.encode_frame(opcode, fin, rsv, &[], &[&compressed]);
        if let Some(d) = self.deflate.as_mut() {
            d.put_scratch(compressed);
        }
    }

    /// The frame encoder: appends one frame to the output tail — the
    /// header, then the payload, which is `prefix` (a few bytes such as an
    /// envelope header, assembled on the stack with the frame header)
    /// followed by `parts` — masked for a client. Every frame goes through
    /// here but a zero-copy payload's header (see [`send`](Self::send)).
    /// Inlined: each call site gets its own copy, with the number of parts
    /// and the prefix length known.
    #[inline]
    pub(super) fn encode_frame<const N: usize>(
        &mut self,
        opcode: OpCode,
        fin: bool,
        rsv: u8,
        prefix: &[u8; N],
        parts: &[&[u8]],
    ) {
        const { assert!(N <= MAX_PREFIX) };
        let len = N + parts.iter().map(|p| p.len()).sum::<usize>();
        let mask = match self.role {
            Role::Client => Some((self.rng.next_u64() as u32).to_ne_bytes()),
            Role::Server => None,
        };
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len: len as u64,
        };
        let mut h = [0u8; MAX_HEADER_LEN + MAX_PREFIX];
        let hl = header.encode_to(h.first_chunk_mut().expect("room for a header"));
        h[hl..hl + N].copy_from_slice(prefix);
        let tail = &mut self.out.tail;
        tail.reserve(h.len() + len);
        let start = tail.len() + hl;
        // The whole stack buffer (a copy of fixed size, no call), then cut
        // back to what was encoded.
        tail.extend_from_slice(&h);
        tail.truncate(start + N);
        // Counted before the payload is copied: `hl` and `len` need not
        // live across the copy (one spill fewer per frame).
        self.out.len += hl + len;
        let tail = &mut self.out.tail;
        for p in parts {
            tail.extend_from_slice(p);
        }
        if let Some(key) = mask {
            apply_mask(&mut tail[start..], key, 0);
        }
    }

    /// Queues a close frame with `frame`'s code and reason (none: an empty
    /// payload) and remembers it as sent.
    pub(super) fn queue_close(&mut self, frame: Option<CloseFrame>) {
        let mut payload = Vec::with_capacity(125);
        if let Some(f) = &frame {
            payload.extend_from_slice(&f.code.0.to_be_bytes());
            payload.extend_from_slice(f.reason.as_bytes());
        }
        self.encode_frame(OpCode::Close, true, 0, &[], &[&payload]);
        self.close_sent = frame.or(Some(CloseFrame {
            code: CloseCode::NO_STATUS,
            reason: String::new(),
        }));
    }
}
