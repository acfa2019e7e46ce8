//! Oracles shared by the fuzz targets.
//!
//! * [`WireChecker`] re-parses everything a connection transmits (HTTP head,
//!   then frames) and panics on anything a peer could reject: malformed or
//!   non-canonical headers, wrong masking for the role, RSV bits, bad
//!   fragmentation, invalid UTF-8 in a text message, a bad close payload, or
//!   any byte after a close frame or after an HTTP error response. Once told
//!   that permessage-deflate was negotiated ([`WireChecker::set_deflate`]),
//!   it accepts RSV1 on a message's first frame only and inflates compressed
//!   messages with the sender's negotiated window (so a back-reference past
//!   the window, a missing reset without context takeover, or data that
//!   does not decompress exactly, fails).
//! * [`EventChecker`] checks the order and shape of events: `Closed` at most
//!   once and last, `Connected` once and before any data, sizes within the
//!   configured limits, streamed fragments that form a valid message.
//! * [`Ev`] is a comparable summary of an [`Event`] (which has no `PartialEq`).

use std::collections::VecDeque;
use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use hookup_proto::frame::{FrameHeader, OpCode};
use hookup_proto::{CloseFrame, Closed, Config, Event, Fragment, Message, MessageKind, Role};

/// Most headers the library accepts in a head (mirrors `handshake.rs`).
pub const MAX_HEADERS: usize = 64;

/// A comparable summary of an [`Event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Request {
        method: String,
        uri: String,
        websocket: bool,
    },
    Connected {
        subprotocol: Option<String>,
    },
    Message(Message),
    Fragment(Fragment),
    Ping(Vec<u8>),
    Pong {
        payload: Vec<u8>,
        rtt: Option<Duration>,
    },
    Closed(Closed),
    Other(String),
}

/// Summarises an event for comparisons.
pub fn summarize(ev: &Event) -> Ev {
    match ev {
        Event::Request(r) => Ev::Request {
            method: r.method().to_string(),
            uri: r.uri().to_string(),
            websocket: r.is_websocket(),
        },
        Event::Connected(r) => Ev::Connected {
            subprotocol: r.subprotocol.clone(),
        },
        Event::Message(m) => Ev::Message(m.clone()),
        Event::Fragment(f) => Ev::Fragment(f.clone()),
        Event::Ping(p) => Ev::Ping(p.to_vec()),
        Event::Pong { payload, rtt } => Ev::Pong {
            payload: payload.to_vec(),
            rtt: *rtt,
        },
        Event::Closed(c) => Ev::Closed(c.clone()),
        other => Ev::Other(format!("{other:?}")),
    }
}

/// Whether `b` is a prefix of valid UTF-8 (possibly ending inside a code point).
pub fn is_utf8_prefix(b: &[u8]) -> bool {
    match std::str::from_utf8(b) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

/// What the wire checker expects next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// A client's upgrade request head.
    RequestHead,
    /// A server's response head: 101 (then frames) or an error response.
    ResponseHead,
    /// WebSocket frames.
    Frames,
    /// The body of a non-101 response (bytes left).
    HttpBody(usize),
    /// Nothing may follow.
    Done,
}

/// The sync-flush tail that permessage-deflate strips from every message.
pub const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// What the sender agreed to in the permessage-deflate handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderDeflate {
    /// The sender's LZ77 window (8–15; with 8 it may not compress at all).
    pub window_bits: u8,
    /// The sender resets its compressor after every message.
    pub no_context_takeover: bool,
}

/// Inflates one direction of a permessage-deflate connection.
struct Inflater {
    params: SenderDeflate,
    d: Option<Decompress>,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("params", &self.params)
            .finish()
    }
}

impl Inflater {
    /// Inflates one whole message (its frames' payloads concatenated).
    fn message(&mut self, compressed: &[u8]) -> Vec<u8> {
        let bits = self.params.window_bits;
        assert!(bits >= 9, "compressed with an 8-bit window");
        // A sender that resets its compressor must not refer to earlier
        // messages: inflate each message on its own to check that.
        if self.params.no_context_takeover {
            self.d = None;
        }
        let d = self
            .d
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
        let mut input = compressed.to_vec();
        input.extend_from_slice(&TRAILER);
        let mut out = Vec::new();
        // zlib accepts a distance back into the output of the current call
        // whatever the window: small output chunks make the window check
        // nearly exact (a distance may pass the window by under CHUNK bytes;
        // a compressor's window limit is far coarser than that).
        const CHUNK: usize = 32;
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut rest = &input[..];
        loop {
            chunk.clear();
            let i0 = d.total_in();
            let status = d
                .decompress_vec(rest, &mut chunk, FlushDecompress::Sync)
                .unwrap_or_else(|e| panic!("transmitted invalid deflate data: {e}"));
            let consumed = (d.total_in() - i0) as usize;
            rest = &rest[consumed..];
            out.extend_from_slice(&chunk);
            if status == Status::StreamEnd {
                // BFINAL ended the stream (allowed): the next one is new.
                self.d = None;
                break;
            }
            if rest.is_empty() && chunk.len() < CHUNK {
                break;
            }
            assert!(
                consumed > 0 || !chunk.is_empty(),
                "inflate made no progress"
            );
        }
        out
    }
}

/// Compresses `data` as a peer would for one permessage-deflate frame: a raw
/// deflate stream of its own (no references to earlier frames), sync-flushed
/// with the trailer removed, or (`finish`) ended by a final block.
pub fn deflate_payload(data: &[u8], level: u32, window_bits: u8, finish: bool) -> Vec<u8> {
    let mut c = Compress::new_with_window_bits(
        Compression::new(level.min(9)),
        false,
        window_bits.clamp(9, 15),
    );
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    let flush = if finish {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut rest = data;
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        let i0 = c.total_in();
        let status = c.compress_vec(rest, &mut out, flush).expect("deflate");
        rest = &rest[(c.total_in() - i0) as usize..];
        if status == Status::StreamEnd || (rest.is_empty() && out.len() < out.capacity()) {
            break;
        }
    }
    if !finish && out.ends_with(&TRAILER) {
        out.truncate(out.len() - TRAILER.len());
    }
    out
}

/// Re-parses a connection's transmit stream; panics on any violation.
#[derive(Debug)]
pub struct WireChecker {
    role: Role,
    phase: Phase,
    buf: Vec<u8>,
    /// Kind of the fragmented message in progress.
    frag: Option<MessageKind>,
    msg: Vec<u8>,
    /// Whether the message in progress is compressed (RSV1 on its first frame).
    compressed: bool,
    /// Set once permessage-deflate is known to be negotiated.
    inflater: Option<Inflater>,
    /// The `Sec-WebSocket-Extensions` values of the head, comma-joined
    /// (`None` if it had none).
    pub extensions: Option<String>,
    /// Whether a close frame was sent (nothing may follow it).
    pub close_sent: bool,
    /// The HTTP status of the response head, for a server.
    pub status: Option<u16>,
    /// Complete data messages seen on the wire, oldest first.
    pub messages: VecDeque<Message>,
    /// Frames seen.
    pub frame_count: usize,
    /// Close payload sent, if any.
    pub close: Option<Option<CloseFrame>>,
    /// Total bytes fed.
    pub total: usize,
}

impl WireChecker {
    /// A checker for the output of a connection with `role` that starts with
    /// its HTTP head (`handshake = true`) or directly with frames.
    pub fn new(role: Role, handshake: bool) -> Self {
        let phase = match (handshake, role) {
            (false, _) => Phase::Frames,
            (true, Role::Client) => Phase::RequestHead,
            (true, _) => Phase::ResponseHead,
        };
        Self {
            role,
            phase,
            buf: Vec::new(),
            frag: None,
            msg: Vec::new(),
            compressed: false,
            inflater: None,
            extensions: None,
            close_sent: false,
            status: None,
            messages: VecDeque::new(),
            frame_count: 0,
            close: None,
            total: 0,
        }
    }

    /// Whether everything fed so far ended on a unit boundary (complete head,
    /// body or frame), as it must after a full `poll_transmit`.
    pub fn at_boundary(&self) -> bool {
        self.buf.is_empty() && !matches!(self.phase, Phase::HttpBody(n) if n > 0)
    }

    /// Declares permessage-deflate negotiated, with the sender's side of the
    /// agreement; from now on RSV1 marks a compressed message. Frames must
    /// not have been sent yet with a different setting.
    pub fn set_deflate(&mut self, params: SenderDeflate) {
        match &self.inflater {
            Some(i) => assert_eq!(i.params, params, "deflate parameters changed"),
            None => {
                assert!(
                    self.frame_count == 0,
                    "deflate negotiated after frames were sent"
                );
                self.inflater = Some(Inflater { params, d: None });
            }
        }
    }

    /// Whether permessage-deflate has been declared (see [`set_deflate`](Self::set_deflate)).
    pub fn deflate(&self) -> Option<SenderDeflate> {
        self.inflater.as_ref().map(|i| i.params)
    }

    /// Whether the head has been seen and frames follow.
    pub fn in_frames(&self) -> bool {
        self.phase == Phase::Frames
    }

    /// Feeds transmitted bytes and checks every complete unit.
    pub fn feed(&mut self, data: &[u8]) {
        self.total += data.len();
        self.buf.extend_from_slice(data);
        loop {
            match self.phase {
                Phase::RequestHead => {
                    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let mut req = httparse::Request::new(&mut raw);
                    match req.parse(&self.buf) {
                        Ok(httparse::Status::Complete(n)) => {
                            assert_eq!(req.method, Some("GET"), "request method");
                            assert_eq!(req.version, Some(1), "request version");
                            let key = req
                                .headers
                                .iter()
                                .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
                                .count();
                            assert_eq!(key, 1, "exactly one Sec-WebSocket-Key");
                            self.extensions = extensions(req.headers);
                            self.buf.drain(..n);
                            self.phase = Phase::Frames;
                        }
                        Ok(httparse::Status::Partial) => return,
                        Err(e) => panic!("client sent a malformed request head: {e}"),
                    }
                }
                Phase::ResponseHead => {
                    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let mut resp = httparse::Response::new(&mut raw);
                    match resp.parse(&self.buf) {
                        Ok(httparse::Status::Complete(n)) => {
                            assert_eq!(resp.version, Some(1), "response version");
                            let code = resp.code.expect("status code");
                            self.status = Some(code);
                            if code == 101 {
                                self.extensions = extensions(resp.headers);
                                assert!(has_header_token(resp.headers, "upgrade", "websocket"));
                                assert!(has_header_token(resp.headers, "connection", "upgrade"));
                                self.phase = Phase::Frames;
                            } else {
                                let len = content_length(resp.headers)
                                    .expect("error response without Content-Length");
                                self.phase = Phase::HttpBody(len);
                            }
                            self.buf.drain(..n);
                        }
                        Ok(httparse::Status::Partial) => return,
                        Err(e) => panic!("server sent a malformed response head: {e}"),
                    }
                }
                Phase::HttpBody(left) => {
                    let n = left.min(self.buf.len());
                    self.buf.drain(..n);
                    if left == n {
                        self.phase = Phase::Done;
                    } else {
                        self.phase = Phase::HttpBody(left - n);
                        return;
                    }
                }
                Phase::Done => {
                    assert!(
                        self.buf.is_empty(),
                        "{} bytes transmitted after a complete HTTP error response",
                        self.buf.len()
                    );
                    return;
                }
                Phase::Frames => {
                    if !self.frame() {
                        return;
                    }
                }
            }
        }
    }

    /// Checks one frame at the front of the buffer; false if incomplete.
    fn frame(&mut self) -> bool {
        let (h, n) = match FrameHeader::decode(&self.buf) {
            Ok(Some(x)) => x,
            Ok(None) => return false,
            Err(e) => panic!("transmitted a malformed frame header: {e}"),
        };
        let Some(end) = (n as u64)
            .checked_add(h.payload_len)
            .filter(|&e| e <= self.buf.len() as u64)
        else {
            return false;
        };
        let end = end as usize;
        assert!(
            !self.close_sent,
            "frame {h:?} transmitted after a close frame"
        );
        let first_data = matches!(h.opcode, OpCode::Text | OpCode::Binary);
        match (h.rsv, &self.inflater) {
            (0, _) => {}
            (0b100, Some(i)) if first_data => assert!(
                i.params.window_bits >= 9,
                "compressed a message with an 8-bit window"
            ),
            (rsv, Some(_)) => panic!("RSV bits {rsv:#05b} on a {:?} frame", h.opcode),
            (rsv, None) => panic!("RSV bits {rsv:#05b} set without an extension"),
        }
        match self.role {
            Role::Client => assert!(h.mask.is_some(), "client frame not masked"),
            _ => assert!(h.mask.is_none(), "server frame masked"),
        }
        let mut enc = Vec::new();
        h.encode(&mut enc);
        assert_eq!(enc, self.buf[..n], "non-canonical frame header");
        let mut payload = self.buf[n..end].to_vec();
        if let Some(key) = h.mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= key[i % 4];
            }
        }
        self.buf.drain(..end);
        match h.opcode {
            OpCode::Text | OpCode::Binary => {
                assert!(
                    self.frag.is_none(),
                    "new data frame inside a fragmented message"
                );
                let kind = if h.opcode == OpCode::Text {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                self.msg.clear();
                self.msg.extend_from_slice(&payload);
                self.compressed = h.rsv != 0;
                if h.fin {
                    self.complete(kind);
                } else {
                    self.frag = Some(kind);
                }
            }
            OpCode::Continuation => {
                let kind = self
                    .frag
                    .expect("continuation without a message in progress");
                self.msg.extend_from_slice(&payload);
                if h.fin {
                    self.frag = None;
                    self.complete(kind);
                }
            }
            OpCode::Close => {
                let parsed = CloseFrame::parse(&payload)
                    .unwrap_or_else(|e| panic!("transmitted an invalid close payload: {e}"));
                self.close = Some(parsed);
                self.close_sent = true;
            }
            OpCode::Ping | OpCode::Pong => assert!(payload.len() <= 125),
            _ => panic!("unknown opcode {:?}", h.opcode),
        }
        self.frame_count += 1;
        true
    }

    fn complete(&mut self, kind: MessageKind) {
        let mut data = std::mem::take(&mut self.msg);
        if std::mem::take(&mut self.compressed) {
            data = self.inflater.as_mut().expect("RSV1 checked").message(&data);
        }
        let m = match kind {
            MessageKind::Text => Message::text(
                String::from_utf8(data).expect("transmitted a text message that is not UTF-8"),
            ),
            _ => Message::binary(data),
        };
        self.messages.push_back(m);
    }
}

fn has_header_token(headers: &[httparse::Header<'_>], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .any(|h| {
            h.value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
}

fn extensions(headers: &[httparse::Header<'_>]) -> Option<String> {
    let values: Vec<_> = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|h| String::from_utf8_lossy(h.value).into_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

fn content_length(headers: &[httparse::Header<'_>]) -> Option<usize> {
    let mut it = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"));
    let h = it.next()?;
    assert!(it.next().is_none(), "two Content-Length headers");
    std::str::from_utf8(h.value).ok()?.trim().parse().ok()
}

/// Parses a complete non-101 HTTP response (head and `Content-Length` body)
/// that must make up all of `bytes`; returns the status.
pub fn parse_error_response(bytes: &[u8]) -> u16 {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut raw);
    let n = match resp.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("error response does not parse: {other:?}: {bytes:?}"),
    };
    assert_eq!(resp.version, Some(1));
    let code = resp.code.expect("status");
    assert_ne!(code, 101);
    let len = content_length(resp.headers).expect("Content-Length");
    assert_eq!(
        n + len,
        bytes.len(),
        "body length differs from Content-Length"
    );
    code
}

/// Checks the order and shape of one connection's events.
#[derive(Debug)]
pub struct EventChecker {
    role: Role,
    max_frame: usize,
    max_message: usize,
    pub closed: Option<Closed>,
    pub connected: bool,
    pub requested: bool,
    /// A streamed fragmented message in progress.
    fragment: Option<(MessageKind, Vec<u8>)>,
    /// Number of events seen.
    pub count: usize,
}

impl EventChecker {
    /// `open`: the connection starts open (no handshake events).
    pub fn new(role: Role, config: &Config, open: bool) -> Self {
        Self {
            role,
            max_frame: config.max_frame_size,
            max_message: config.max_message_size,
            closed: None,
            connected: open,
            requested: false,
            fragment: None,
            count: 0,
        }
    }

    /// Checks one event; returns the data message it completes, if any
    /// (a `Message`, or the last of a run of streamed fragments).
    pub fn on_event(&mut self, ev: &Event) -> Option<Message> {
        self.count += 1;
        assert!(self.closed.is_none(), "event {ev:?} after Closed");
        match ev {
            Event::Request(_) => {
                assert_eq!(self.role, Role::Server, "Request on a client");
                assert!(!self.requested && !self.connected, "second Request");
                self.requested = true;
                None
            }
            Event::Connected(_) => {
                assert!(!self.connected, "second Connected");
                if self.role == Role::Server {
                    assert!(self.requested, "Connected before Request");
                }
                self.connected = true;
                None
            }
            Event::Message(m) => {
                assert!(self.connected, "Message before Connected");
                assert!(self.fragment.is_none(), "Message inside a streamed message");
                assert!(m.len() <= self.max_message, "message over max_message_size");
                if let Message::Text(t) = m {
                    assert!(std::str::from_utf8(t.as_bytes()).is_ok(), "text not UTF-8");
                }
                Some(m.clone())
            }
            Event::Fragment(f) => {
                assert!(self.connected, "Fragment before Connected");
                assert!(
                    f.data.len() <= self.max_frame,
                    "fragment over max_frame_size"
                );
                let (kind, buf) = self.fragment.get_or_insert_with(|| (f.kind, Vec::new()));
                assert_eq!(*kind, f.kind, "fragment kind changed");
                buf.extend_from_slice(&f.data);
                assert!(
                    buf.len() <= self.max_message,
                    "streamed message over max_message_size"
                );
                if *kind == MessageKind::Text {
                    assert!(is_utf8_prefix(buf), "streamed text is not a UTF-8 prefix");
                }
                if f.fin {
                    let (kind, buf) = self.fragment.take().expect("fragment");
                    Some(match kind {
                        MessageKind::Text => Message::text(
                            String::from_utf8(buf).expect("streamed text not UTF-8 at fin"),
                        ),
                        _ => Message::binary(buf),
                    })
                } else {
                    None
                }
            }
            Event::Ping(p) => {
                assert!(self.connected, "Ping before Connected");
                assert!(p.len() <= 125);
                None
            }
            Event::Pong { payload, .. } => {
                assert!(self.connected, "Pong before Connected");
                assert!(payload.len() <= 125);
                None
            }
            Event::Closed(c) => {
                self.closed = Some(c.clone());
                None
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
}
