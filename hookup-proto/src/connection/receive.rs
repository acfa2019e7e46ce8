//! The receive path: frame headers checked against the role, extensions
//! and limits; payloads unmasked in place, validated, inflated and
//! reassembled; control frames answered.

use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};

use super::timers::Timer;
use super::{Connection, Queued, RSV1, Role, State};
use crate::close::{CloseCode, CloseFrame};
use crate::error::ProtocolError;
use crate::event::{Event, Initiator};
use crate::frame::{FrameHeader, OpCode};
use crate::mask::apply_mask;
use crate::message::{Fragment, MessageKind};

/// A frame whose header was decoded but whose payload is not complete yet.
#[derive(Clone, Copy, Debug)]
pub(super) struct PartialFrame {
    pub(super) header: FrameHeader,
    pub(super) header_len: usize,
    /// Payload bytes already unmasked (and, for text, validated; when
    /// compressed, inflated).
    pub(super) done: usize,
    /// Part of a permessage-deflate compressed message.
    pub(super) compressed: bool,
}

/// A fragmented message being received.
#[derive(Debug)]
pub(super) struct Incoming {
    kind: MessageKind,
    /// The first frame's payload, a view of the receive buffer, until the
    /// second frame arrives and `buf` is allocated.
    first: Option<Bytes>,
    buf: BytesMut,
    size: u64,
}

impl Incoming {
    /// Bytes of the message held so far (charged to the input budget).
    pub(super) fn held(&self) -> usize {
        self.first.as_ref().map_or(0, Bytes::len) + self.buf.len()
    }
}

impl Connection {
    pub(super) fn process(&mut self, now: Instant) {
        self.advance_clock(now);
        if self.pending_fail.is_some() || self.pending_close.is_some() {
            return;
        }
        match self.state {
            State::AwaitingResponse => self.process_response(),
            State::AwaitingRequest => self.process_request(),
            State::Open | State::ClosingLocal => self.process_frames(),
            // Bytes after the close handshake, or while waiting for the
            // application's decision, are kept (decision) or ignored.
            State::ClosingRemote => self.recv.clear(),
            State::AwaitingDecision | State::Closed => {}
        }
    }

    /// Validates a header against the role, extensions, limits and the
    /// fragmentation state, before any payload is buffered.
    fn check_header(&self, h: &FrameHeader) -> Result<(), ProtocolError> {
        if h.rsv != 0 {
            self.check_rsv(h)?;
        }
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if h.payload_len > self.config.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooLarge {
                size: h.payload_len,
                max: self.config.max_frame_size,
            });
        }
        match (h.opcode, &self.incoming) {
            (OpCode::Continuation, None) => Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, Some(_)) => Err(ProtocolError::ExpectedContinuation),
            (OpCode::Continuation, Some(m)) => {
                let size = m.size + h.payload_len;
                if size > self.config.max_message_size as u64 {
                    Err(ProtocolError::MessageTooLarge {
                        size,
                        max: self.config.max_message_size,
                    })
                } else {
                    Ok(())
                }
            }
            (OpCode::Text | OpCode::Binary, None)
                if h.payload_len > self.config.max_message_size as u64 =>
            {
                Err(ProtocolError::MessageTooLarge {
                    size: h.payload_len,
                    max: self.config.max_message_size,
                })
            }
            _ => Ok(()),
        }
    }

    /// Whether the payload of `h` is text that must be validated.
    fn is_text_frame(&self, h: &FrameHeader) -> bool {
        match h.opcode {
            OpCode::Text => true,
            OpCode::Continuation => self
                .incoming
                .as_ref()
                .is_some_and(|m| m.kind == MessageKind::Text),
            _ => false,
        }
    }

    pub(super) fn process_frames(&mut self) {
        while matches!(self.state, State::Open | State::ClosingLocal) {
            let p = match self.partial {
                Some(p) => p,
                None => match FrameHeader::decode(&self.recv) {
                    Ok(None) => return,
                    Ok(Some((header, header_len))) => {
                        if let Err(e) = self.check_header(&header) {
                            return self.defer_fail(e);
                        }
                        if header.opcode == OpCode::Text {
                            self.utf8.reset();
                        }
                        self.message_started |=
                            matches!(header.opcode, OpCode::Text | OpCode::Binary);
                        let compressed = (header.rsv != 0 || header.opcode == OpCode::Continuation)
                            && self.begin_compressed(&header);
                        PartialFrame {
                            header,
                            header_len,
                            done: 0,
                            compressed,
                        }
                    }
                    Err(e) => return self.defer_fail(e),
                },
            };
            // Checked against max_frame_size, so it fits in usize.
            let len = p.header.payload_len as usize;
            let avail = self.recv.len() - p.header_len;
            if avail < len {
                // Incomplete: unmask and validate what has arrived, so that
                // invalid text fails fast (Autobahn 6.4.x).
                let mut p = p;
                if avail > p.done && (p.compressed || self.is_text_frame(&p.header)) {
                    let range = p.header_len + p.done..p.header_len + avail;
                    if let Some(key) = p.header.mask {
                        apply_mask(&mut self.recv[range.clone()], key, p.done);
                    }
                    if p.compressed {
                        // Inflate as the bytes arrive: the size limit and
                        // UTF-8 apply to the output as it comes.
                        if let Err(e) = self.inflate_range(range, false) {
                            return self.defer_fail(e);
                        }
                    } else if self.utf8.feed(&self.recv[range], false).is_err() {
                        return self.defer_fail(ProtocolError::InvalidUtf8);
                    }
                    p.done = avail;
                }
                self.partial = Some(p);
                return;
            }
            self.partial = None;
            let range = p.header_len + p.done..p.header_len + len;
            if let Some(key) = p.header.mask {
                apply_mask(&mut self.recv[range.clone()], key, p.done);
            }
            if p.compressed {
                if let Err(e) = self.compressed_frame(p.header, range) {
                    return self.defer_fail(e);
                }
                continue;
            }
            let text = self.is_text_frame(&p.header);
            if text && self.utf8.feed(&self.recv[range], p.header.fin).is_err() {
                return self.defer_fail(ProtocolError::InvalidUtf8);
            }
            // One split for header and payload (each split costs an atomic
            // reference count increment); skipping the header on the frozen
            // view is pointer arithmetic.
            let mut payload = self.recv.split_to(p.header_len + len).freeze();
            payload.advance(p.header_len);
            if p.header.fin && matches!(p.header.opcode, OpCode::Text | OpCode::Binary) {
                // The common case, here rather than in `handle_frame` or
                // `deliver` (not inlined), with the queue's growth out of
                // line: the message is then stored straight into the queue,
                // not built on the stack and copied with wide reloads of
                // narrow stores (which stall store forwarding).
                self.buffered += payload.len();
                let ev = Queued::Message {
                    text,
                    data: payload,
                };
                if self.events.len() < self.events.capacity() {
                    self.events.push_back(ev);
                } else {
                    self.push_grow(ev);
                }
                continue;
            }
            if p.header.opcode == OpCode::Close && !self.events.is_empty() {
                self.pending_close = Some((p.header, payload));
                return;
            }
            if let Err(e) = self.handle_frame(p.header, payload) {
                return self.defer_fail(e);
            }
        }
    }

    /// RSV bits are set: only RSV1 on the first frame of a message, with
    /// permessage-deflate negotiated (RFC 7692 §6.1).
    #[cold]
    #[inline(never)]
    fn check_rsv(&self, h: &FrameHeader) -> Result<(), ProtocolError> {
        if h.rsv != RSV1 || self.deflate.is_none() {
            return Err(ProtocolError::ReservedBits(h.rsv));
        }
        match h.opcode {
            OpCode::Text | OpCode::Binary => Ok(()),
            OpCode::Continuation => Err(ProtocolError::CompressedContinuation),
            _ => Err(ProtocolError::CompressedControlFrame),
        }
    }

    /// Whether a frame (RSV1 set, or a continuation) belongs to a compressed
    /// message; starts receiving one on its first frame.
    #[inline]
    fn begin_compressed(&mut self, h: &FrameHeader) -> bool {
        let Some(d) = self.deflate.as_mut() else {
            return false;
        };
        match h.opcode {
            OpCode::Continuation => d.receiving(),
            OpCode::Text => {
                d.begin(MessageKind::Text);
                true
            }
            _ => {
                d.begin(MessageKind::Binary);
                true
            }
        }
    }

    /// Inflates payload bytes of a compressed message that are unmasked in
    /// the receive buffer.
    fn inflate_range(
        &mut self,
        range: std::ops::Range<usize>,
        last: bool,
    ) -> Result<(), ProtocolError> {
        let max = self.config.max_message_size;
        match self.deflate.as_mut() {
            Some(d) => d.inflate(&self.recv[range], last, max, &mut self.utf8),
            None => Ok(()),
        }
    }

    /// Handles the end of a frame of a compressed message whose bytes up to
    /// `range` are inflated: inflates the rest, drops the frame from the
    /// receive buffer and delivers the message (or, with
    /// `stream_fragments`, the frame's output) like an uncompressed one.
    fn compressed_frame(
        &mut self,
        h: FrameHeader,
        range: std::ops::Range<usize>,
    ) -> Result<(), ProtocolError> {
        let frame_len = range.end;
        let payload_len = h.payload_len;
        self.inflate_range(range, h.fin)?;
        self.recv.advance(frame_len);
        let Some(d) = self.deflate.as_mut() else {
            return Ok(());
        };
        let kind = d.receiving_kind().unwrap_or(MessageKind::Binary);
        let fragmented = self.incoming.is_some();
        if h.fin {
            self.incoming = None;
            let data = d.end().map(|(_, data)| data).unwrap_or_default();
            if fragmented && self.config.stream_fragments {
                self.push_queued(Queued::Fragment(Fragment {
                    kind,
                    data: Bytes::from(data),
                    fin: true,
                }));
            } else {
                self.deliver(kind, Bytes::from(data));
            }
            return Ok(());
        }
        let data = if self.config.stream_fragments {
            Some(d.take_output())
        } else {
            None
        };
        match self.incoming.as_mut() {
            Some(m) => m.size += payload_len,
            None => {
                self.incoming = Some(Incoming {
                    kind,
                    first: None,
                    buf: BytesMut::new(),
                    size: payload_len,
                });
            }
        }
        if let Some(data) = data {
            self.push_queued(Queued::Fragment(Fragment {
                kind,
                data: Bytes::from(data),
                fin: false,
            }));
        }
        Ok(())
    }

    /// Handles one complete, unmasked (and, for text, validated) frame.
    #[inline(never)]
    pub(super) fn handle_frame(
        &mut self,
        h: FrameHeader,
        payload: Bytes,
    ) -> Result<(), ProtocolError> {
        match h.opcode {
            OpCode::Text | OpCode::Binary => {
                let kind = if h.opcode == OpCode::Text {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                if h.fin {
                    self.deliver(kind, payload);
                } else if self.config.stream_fragments {
                    self.incoming = Some(Incoming {
                        kind,
                        first: None,
                        buf: BytesMut::new(),
                        size: payload.len() as u64,
                    });
                    self.push_queued(Queued::Fragment(Fragment {
                        kind,
                        data: payload,
                        fin: false,
                    }));
                } else {
                    self.incoming = Some(Incoming {
                        kind,
                        size: payload.len() as u64,
                        first: Some(payload),
                        buf: BytesMut::new(),
                    });
                }
            }
            OpCode::Continuation => {
                let Some(m) = self.incoming.as_mut() else {
                    return Err(ProtocolError::UnexpectedContinuation);
                };
                m.size += payload.len() as u64;
                if self.config.stream_fragments {
                    let kind = m.kind;
                    if h.fin {
                        self.incoming = None;
                    }
                    self.push_queued(Queued::Fragment(Fragment {
                        kind,
                        data: payload,
                        fin: h.fin,
                    }));
                } else {
                    if let Some(first) = m.first.take() {
                        // The second frame: allocate once for twice the
                        // message so far (four equal frames copy each byte
                        // once), within the message size limit.
                        let cap = (first.len() + payload.len())
                            .saturating_mul(2)
                            .min(self.config.max_message_size);
                        m.buf = BytesMut::with_capacity(cap);
                        m.buf.extend_from_slice(&first);
                    }
                    m.buf.extend_from_slice(&payload);
                    if h.fin {
                        let m = self.incoming.take().expect("message in progress");
                        self.deliver(m.kind, m.buf.freeze());
                    }
                }
            }
            OpCode::Ping => {
                if self.config.auto_pong && self.state == State::Open {
                    self.encode_frame(OpCode::Pong, true, 0, &[], &[&payload]);
                }
                self.push_event(Event::Ping(payload));
            }
            OpCode::Pong => {
                let rtt = self.match_pong(&payload);
                self.push_event(Event::Pong { payload, rtt });
            }
            OpCode::Close => {
                let frame = CloseFrame::parse(&payload)?;
                self.close_received = Some(frame.clone().unwrap_or(CloseFrame {
                    code: CloseCode::NO_STATUS,
                    reason: String::new(),
                }));
                if self.state == State::Open {
                    // Echo the peer's code (RFC 6455 §5.5.1).
                    self.close_initiator = Some(Initiator::Remote);
                    self.queue_close(frame.map(|f| CloseFrame {
                        code: f.code,
                        reason: String::new(),
                    }));
                }
                match self.role {
                    // The server closes the transport first (§7.1.1).
                    Role::Server => self.finish(true, None),
                    Role::Client => {
                        self.state = State::ClosingRemote;
                        self.recv.clear();
                        if self.timers[Timer::Close as usize].is_none() {
                            self.set_timer(Timer::Close, self.now + self.config.close_timeout);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Queues a complete message (text already validated). Single-frame
    /// messages take the inlined copy of this in `process_frames`.
    #[inline(never)]
    fn deliver(&mut self, kind: MessageKind, data: Bytes) {
        self.buffered += data.len();
        self.events.push_back(Queued::Message {
            text: kind == MessageKind::Text,
            data,
        });
    }

    fn match_pong(&mut self, payload: &Bytes) -> Option<Duration> {
        let i = self.pings.iter().position(|(p, _)| p == payload)?;
        let (_, sent) = self.pings.drain(..=i).last()?;
        Some(self.now.saturating_duration_since(sent))
    }
}

// Defined here rather than in `close`, so that `close` needs no error
// type (see its module docs).
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
    use crate::close::{CloseCode, CloseFrame};
    use crate::error::ProtocolError;

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
