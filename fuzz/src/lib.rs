//! Oracles shared by the fuzz targets.
//!
//! * [`WireChecker`] re-parses everything a connection transmits (HTTP head,
//!   then frames) and panics on anything a peer could reject: malformed or
//!   non-canonical headers, wrong masking for the role, RSV bits, bad
//!   fragmentation, invalid UTF-8 in a text message, a bad close payload, or
//!   any byte after a close frame or after an HTTP error response.
//! * [`EventChecker`] checks the order and shape of events: `Closed` at most
//!   once and last, `Connected` once and before any data, sizes within the
//!   configured limits, streamed fragments that form a valid message.
//! * [`Ev`] is a comparable summary of an [`Event`] (which has no `PartialEq`).

use std::collections::VecDeque;
use std::time::Duration;

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

/// Re-parses a connection's transmit stream; panics on any violation.
#[derive(Debug)]
pub struct WireChecker {
    role: Role,
    phase: Phase,
    buf: Vec<u8>,
    /// Kind of the fragmented message in progress.
    frag: Option<MessageKind>,
    msg: Vec<u8>,
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
        assert_eq!(h.rsv, 0, "RSV bits set without an extension");
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
        let data = std::mem::take(&mut self.msg);
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

/// A tiny deterministic generator for chunk sizes (not for security).
#[derive(Clone, Debug)]
pub struct Chunker(u64);

impl Chunker {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next chunk length in `1..=max`.
    pub fn next(&mut self, max: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        1 + (self.0 % max.max(1) as u64) as usize
    }

    /// Splits `data` into chunks of at most `max` bytes.
    pub fn split<'a>(&mut self, data: &'a [u8], max: usize) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let n = self.next(max).min(rest.len());
            let (a, b) = rest.split_at(n);
            out.push(a);
            rest = b;
        }
        out
    }
}
