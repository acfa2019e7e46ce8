//! The legacy `jsonProtocol` wire format of the original (Scala) hookup,
//! for talking to its clients and servers (see PROTOCOL.md, "Legacy
//! `jsonProtocol` mode").
//!
//! Every envelope is one WebSocket **text** message holding a JSON object
//! with a `type` field (its value compared ASCII-case-insensitively; other
//! fields in any order; unknown fields ignored):
//!
//! | `type` | shape |
//! |---|---|
//! | `text` | `{"type":"text","content":"<string>"}` |
//! | `json` | `{"type":"json","content":<any JSON value>}` |
//! | `ack_request` | `{"type":"ack_request","id":<n>,"content":<inner>}` — the original Scala sender put `<inner>` under `"message"`, which is accepted too |
//! | `ack` | `{"type":"ack","id":<n>}` |
//! | `needs_ack` | `{"type":"needs_ack","timeout":<ms>,"content":<inner>}` (the original's offline-buffer format, never sent on the wire) |
//!
//! `<inner>` is a `text` or `json` envelope, a bare JSON string (text), or
//! any other JSON value without a `type` field (json).
//!
//! The parser is strict where the original guessed: input that is not a
//! JSON object with a known `type` and the fields it needs is a
//! [`LegacyError`]. Parsing is linear in the input, never panics, and
//! nesting is bounded by [`MAX_DEPTH`]. JSON content is kept as the raw
//! JSON text ([`RawJson`]), validated but not converted.

use std::borrow::Cow;
use std::fmt;

/// The WebSocket subprotocol name of this wire format.
pub const LEGACY_SUBPROTOCOL: &str = "jsonProtocol";

/// Deepest nesting of JSON arrays and objects accepted, the envelope's own
/// object included.
pub const MAX_DEPTH: usize = 64;

/// Longest `type` value quoted in [`LegacyError::UnknownType`].
const MAX_QUOTED: usize = 32;

/// A malformed legacy envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LegacyError {
    /// Not valid JSON: the problem is at this byte offset.
    Syntax {
        /// Byte offset in the input.
        offset: usize,
    },
    /// Arrays and objects nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Valid JSON, but not an object (an envelope, or an inner envelope
    /// with a `type`, must be one).
    NotAnObject,
    /// A required field is missing.
    MissingField(&'static str),
    /// A field appears twice, or both `content` and `message` are present.
    DuplicateField(&'static str),
    /// A field has the wrong kind of value.
    WrongType {
        /// The field.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A `type` this format does not know (quoted, at most 32 bytes), or
    /// an inner envelope that is not `text` or `json`.
    UnknownType(String),
}

impl fmt::Display for LegacyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax { offset } => write!(f, "invalid JSON at byte {offset}"),
            Self::TooDeep => write!(f, "JSON nested deeper than {MAX_DEPTH}"),
            Self::NotAnObject => f.write_str("envelope is not a JSON object"),
            Self::MissingField(name) => write!(f, "missing field {name:?}"),
            Self::DuplicateField(name) => write!(f, "duplicate field {name:?}"),
            Self::WrongType { field, expected } => write!(f, "field {field:?} must be {expected}"),
            Self::UnknownType(t) => write!(f, "unknown envelope type {t:?}"),
        }
    }
}

impl std::error::Error for LegacyError {}

/// Text known to be one valid JSON value (RFC 8259, nesting at most
/// [`MAX_DEPTH`], no unpaired surrogate escapes), kept as it was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RawJson<'a>(&'a str);

impl<'a> RawJson<'a> {
    /// Checks that `text` is exactly one JSON value (surrounding whitespace
    /// is trimmed).
    pub fn new(text: &'a str) -> Result<Self, LegacyError> {
        let mut s = Scanner::new(text);
        s.ws();
        let start = s.pos;
        s.value(1)?;
        let end = s.pos;
        s.ws();
        if s.pos != s.b.len() {
            return Err(LegacyError::Syntax { offset: s.pos });
        }
        Ok(Self(&text[start..end]))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

/// An application message carried by an envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// Text (the JSON string decoded; borrowed when it had no escapes).
    Text(Cow<'a, str>),
    /// A JSON value.
    Json(RawJson<'a>),
}

/// A decoded legacy envelope. Text borrows from the input when it can.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Envelope<'a> {
    /// `text` or `json`: a message without an ack request.
    Message(Payload<'a>),
    /// `ack_request`: the receiver must answer `{"type":"ack","id":id}`.
    AckRequest {
        /// The sender's id (per connection and direction).
        id: u64,
        /// The message.
        payload: Payload<'a>,
    },
    /// `ack`: the message sent with this ack request id arrived.
    Ack {
        /// The id of the acknowledged `ack_request`.
        id: u64,
    },
    /// `needs_ack`: the original's buffer-file form of a message to send
    /// with an ack request; not expected on the wire.
    NeedsAck {
        /// The ack timeout in milliseconds.
        timeout_ms: u64,
        /// The message.
        payload: Payload<'a>,
    },
}

impl<'a> Envelope<'a> {
    /// Parses one envelope (leading and trailing JSON whitespace allowed).
    pub fn parse(text: &'a str) -> Result<Self, LegacyError> {
        let fields = Fields::scan(text)?;
        let kind = fields.kind()?;
        let id = |f: &Fields<'a>| integer(f.get(&f.id, "id")?, "id");
        if kind.eq_ignore_ascii_case("text") || kind.eq_ignore_ascii_case("json") {
            let content = fields.get(&fields.content, "content")?;
            Ok(Self::Message(typed_payload(&kind, content)?))
        } else if kind.eq_ignore_ascii_case("ack_request") {
            Ok(Self::AckRequest {
                id: id(&fields)?,
                payload: inner(fields.inner()?)?,
            })
        } else if kind.eq_ignore_ascii_case("ack") {
            Ok(Self::Ack { id: id(&fields)? })
        } else if kind.eq_ignore_ascii_case("needs_ack") {
            Ok(Self::NeedsAck {
                timeout_ms: integer(fields.get(&fields.timeout, "timeout")?, "timeout")?,
                payload: inner(fields.inner()?)?,
            })
        } else {
            Err(unknown_type(&kind))
        }
    }
}

/// Renders the envelope as compact JSON, with the message under `content`
/// (an inner `text`/`json` envelope for `ack_request` and `needs_ack`).
impl fmt::Display for Envelope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        match self {
            Self::Message(p) => render_payload(p, &mut out),
            Self::AckRequest { id, payload } => {
                out.push_str(&ack_request_prefix(*id));
                render_payload(payload, &mut out);
                out.push('}');
            }
            Self::Ack { id } => out.push_str(&render_ack(*id)),
            Self::NeedsAck {
                timeout_ms,
                payload,
            } => {
                out.push_str(&format!(
                    "{{\"type\":\"needs_ack\",\"timeout\":{timeout_ms},\"content\":"
                ));
                render_payload(payload, &mut out);
                out.push('}');
            }
        }
        f.write_str(&out)
    }
}

/// Appends the `text` or `json` envelope of `p` to `out`.
pub(crate) fn render_payload(p: &Payload<'_>, out: &mut String) {
    match p {
        Payload::Text(t) => {
            out.push_str("{\"type\":\"text\",\"content\":");
            push_json_string(t, out);
        }
        Payload::Json(j) => {
            out.push_str("{\"type\":\"json\",\"content\":");
            out.push_str(j.as_str());
        }
    }
    out.push('}');
}

/// `{"type":"ack_request","id":N,"content":` — the inner envelope and `}`
/// follow.
pub(crate) fn ack_request_prefix(id: u64) -> String {
    format!("{{\"type\":\"ack_request\",\"id\":{id},\"content\":")
}

/// Bytes an `ack_request` adds around its inner envelope, at most.
pub(crate) const ACK_REQUEST_OVERHEAD: usize = 60;

/// `{"type":"ack","id":N}`.
pub(crate) fn render_ack(id: u64) -> String {
    format!("{{\"type\":\"ack\",\"id\":{id}}}")
}

/// Appends `s` as a JSON string literal.
fn push_json_string(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0x08 => Some("\\b"),
            0x0c => Some("\\f"),
            0..=0x1f => None,
            _ => continue,
        };
        out.push_str(&s[run..i]);
        run = i + 1;
        match esc {
            Some(e) => out.push_str(e),
            None => out.push_str(&format!("\\u{b:04x}")),
        }
    }
    out.push_str(&s[run..]);
    out.push('"');
}

fn unknown_type(kind: &str) -> LegacyError {
    let mut end = kind.len().min(MAX_QUOTED);
    while !kind.is_char_boundary(end) {
        end -= 1;
    }
    LegacyError::UnknownType(kind[..end].to_owned())
}

/// A `text`/`json` content value.
fn typed_payload<'a>(kind: &str, content: Value<'a>) -> Result<Payload<'a>, LegacyError> {
    if kind.eq_ignore_ascii_case("text") {
        match content.kind {
            Kind::String => Ok(Payload::Text(content.decoded())),
            _ => Err(LegacyError::WrongType {
                field: "content",
                expected: "a string",
            }),
        }
    } else {
        Ok(Payload::Json(RawJson(content.text)))
    }
}

/// The message of an `ack_request`/`needs_ack`.
fn inner(v: Value<'_>) -> Result<Payload<'_>, LegacyError> {
    match v.kind {
        Kind::String => Ok(Payload::Text(v.decoded())),
        Kind::Object => {
            let fields = Fields::scan(v.text)?;
            if fields.kind.is_none() {
                return Ok(Payload::Json(RawJson(v.text)));
            }
            let kind = fields.kind()?;
            if kind.eq_ignore_ascii_case("text") || kind.eq_ignore_ascii_case("json") {
                typed_payload(&kind, fields.get(&fields.content, "content")?)
            } else {
                Err(unknown_type(&kind))
            }
        }
        Kind::Other => Ok(Payload::Json(RawJson(v.text))),
    }
}

fn integer(v: Value<'_>, field: &'static str) -> Result<u64, LegacyError> {
    let bad = LegacyError::WrongType {
        field,
        expected: "an integer from 0 to 2^64-1",
    };
    if v.kind != Kind::Other || v.text.is_empty() || !v.text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    v.text.parse().map_err(|_| bad)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    String,
    Object,
    Other,
}

/// A validated JSON value and its text.
#[derive(Clone, Copy, Debug)]
struct Value<'a> {
    kind: Kind,
    text: &'a str,
}

impl<'a> Value<'a> {
    /// A string value, decoded.
    fn decoded(&self) -> Cow<'a, str> {
        // A validated string starts and ends with an ASCII quote.
        decode_string(
            self.text
                .get(1..self.text.len().saturating_sub(1))
                .unwrap_or_default(),
        )
    }
}

/// The fields of an envelope object this format knows.
#[derive(Default)]
struct Fields<'a> {
    kind: Option<Value<'a>>,
    id: Option<Value<'a>>,
    content: Option<Value<'a>>,
    message: Option<Value<'a>>,
    timeout: Option<Value<'a>>,
}

impl<'a> Fields<'a> {
    /// Validates `text` as one JSON object and picks out its known fields.
    fn scan(text: &'a str) -> Result<Self, LegacyError> {
        let mut s = Scanner::new(text);
        s.ws();
        if s.peek() != Some(b'{') {
            // Valid JSON of another kind, or not JSON at all.
            RawJson::new(text)?;
            return Err(LegacyError::NotAnObject);
        }
        s.pos += 1;
        let mut f = Self::default();
        s.ws();
        if s.peek() == Some(b'}') {
            s.pos += 1;
        } else {
            loop {
                s.ws();
                let key = s.string()?;
                s.ws();
                s.expect(b':')?;
                s.ws();
                let start = s.pos;
                let kind = match s.peek() {
                    Some(b'"') => Kind::String,
                    Some(b'{') => Kind::Object,
                    _ => Kind::Other,
                };
                s.value(2)?;
                let value = Value {
                    kind,
                    text: &text[start..s.pos],
                };
                let known = match &*decode_string(key) {
                    "type" => Some((&mut f.kind, "type")),
                    "id" => Some((&mut f.id, "id")),
                    "content" => Some((&mut f.content, "content")),
                    "message" => Some((&mut f.message, "message")),
                    "timeout" => Some((&mut f.timeout, "timeout")),
                    _ => None,
                };
                if let Some((slot, name)) = known {
                    if slot.is_some() {
                        return Err(LegacyError::DuplicateField(name));
                    }
                    *slot = Some(value);
                }
                s.ws();
                if !s.separator(b'}')? {
                    break;
                }
            }
        }
        s.ws();
        if s.pos != s.b.len() {
            return Err(LegacyError::Syntax { offset: s.pos });
        }
        Ok(f)
    }

    fn get(&self, v: &Option<Value<'a>>, name: &'static str) -> Result<Value<'a>, LegacyError> {
        v.ok_or(LegacyError::MissingField(name))
    }

    /// The `type`, decoded.
    fn kind(&self) -> Result<Cow<'a, str>, LegacyError> {
        let v = self.get(&self.kind, "type")?;
        if v.kind != Kind::String {
            return Err(LegacyError::WrongType {
                field: "type",
                expected: "a string",
            });
        }
        Ok(v.decoded())
    }

    /// An ack request's message: under `content`, or `message` as the
    /// original Scala sender wrote it, not both.
    fn inner(&self) -> Result<Value<'a>, LegacyError> {
        match (self.content, self.message) {
            (Some(c), None) => Ok(c),
            (None, Some(m)) => Ok(m),
            (Some(_), Some(_)) => Err(LegacyError::DuplicateField("content")),
            (None, None) => Err(LegacyError::MissingField("content")),
        }
    }
}

/// Decodes the inside of a string the scanner validated (escapes valid,
/// surrogates paired).
fn decode_string(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hi = hex4(&mut chars);
                let code = if (0xd800..0xdc00).contains(&hi) {
                    // Validated: a low surrogate escape follows.
                    chars.next();
                    chars.next();
                    let lo = hex4(&mut chars);
                    0x10000 + ((hi - 0xd800) << 10) + (lo.wrapping_sub(0xdc00) & 0x3ff)
                } else {
                    hi
                };
                out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Cow::Owned(out)
}

fn hex4(chars: &mut std::str::Chars<'_>) -> u32 {
    let mut v = 0;
    for _ in 0..4 {
        v = v * 16 + chars.next().and_then(|c| c.to_digit(16)).unwrap_or(0);
    }
    v
}

/// A strict RFC 8259 validator over bytes (the input is `str`, so UTF-8).
struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            b: text.as_bytes(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn err(&self) -> LegacyError {
        LegacyError::Syntax { offset: self.pos }
    }

    fn expect(&mut self, c: u8) -> Result<(), LegacyError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err())
        }
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// One value at nesting `depth` (an array or object here is at `depth`).
    fn value(&mut self, depth: usize) -> Result<(), LegacyError> {
        match self.peek() {
            Some(b'{') | Some(b'[') if depth > MAX_DEPTH => Err(LegacyError::TooDeep),
            Some(b'{') => self.container(b'}', depth, true),
            Some(b'[') => self.container(b']', depth, false),
            Some(b'"') => self.string().map(drop),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.err()),
        }
    }

    fn container(&mut self, close: u8, depth: usize, object: bool) -> Result<(), LegacyError> {
        self.pos += 1;
        self.ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if object {
                self.string()?;
                self.ws();
                self.expect(b':')?;
                self.ws();
            }
            self.value(depth + 1)?;
            self.ws();
            if !self.separator(close)? {
                return Ok(());
            }
        }
    }

    /// After a member: `,` (true: another follows) or `close` (false).
    fn separator(&mut self, close: u8) -> Result<bool, LegacyError> {
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(self.err()),
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Result<(), LegacyError> {
        if self.b[self.pos..].starts_with(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(self.err())
        }
    }

    fn digits(&mut self) -> Result<(), LegacyError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.pos == start {
            Err(self.err())
        } else {
            Ok(())
        }
    }

    fn number(&mut self) -> Result<(), LegacyError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits()?,
            _ => return Err(self.err()),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.digits()?;
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, LegacyError> {
        let mut v = 0;
        for _ in 0..4 {
            let d = self
                .peek()
                .and_then(|c| char::from(c).to_digit(16))
                .ok_or_else(|| self.err())?;
            v = v * 16 + d;
            self.pos += 1;
        }
        Ok(v)
    }

    /// A string; returns its inside, raw (escapes not decoded).
    fn string(&mut self) -> Result<&'a str, LegacyError> {
        self.expect(b'"')?;
        let start = self.pos;
        loop {
            match self.bump() {
                None => return Err(self.err()),
                Some(b'"') => {
                    // Cut at ASCII quotes: on character boundaries.
                    return self.text.get(start..self.pos - 1).ok_or_else(|| self.err());
                }
                Some(b'\\') => match self.bump() {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {}
                    Some(b'u') => {
                        let at = self.pos - 2;
                        let hi = self.hex4()?;
                        if (0xdc00..0xe000).contains(&hi) {
                            return Err(LegacyError::Syntax { offset: at });
                        }
                        if (0xd800..0xdc00).contains(&hi) {
                            if !self.b[self.pos..].starts_with(b"\\u") {
                                return Err(LegacyError::Syntax { offset: at });
                            }
                            self.pos += 2;
                            let lo = self.hex4()?;
                            if !(0xdc00..0xe000).contains(&lo) {
                                return Err(LegacyError::Syntax { offset: at });
                            }
                        }
                    }
                    _ => {
                        return Err(LegacyError::Syntax {
                            offset: self.pos - 1,
                        });
                    }
                },
                Some(0..=0x1f) => {
                    return Err(LegacyError::Syntax {
                        offset: self.pos - 1,
                    });
                }
                Some(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let text = Envelope::Message(Payload::Text("a \"q\" \\ \n\u{1}é".into()));
        let s = text.to_string();
        assert_eq!(s, r#"{"type":"text","content":"a \"q\" \\ \n\u0001é"}"#);
        assert_eq!(Envelope::parse(&s), Ok(text));
        let req = Envelope::AckRequest {
            id: 7,
            payload: Payload::Json(RawJson::new(" [1,{\"a\":null}] ").unwrap()),
        };
        let s = req.to_string();
        assert_eq!(
            s,
            r#"{"type":"ack_request","id":7,"content":{"type":"json","content":[1,{"a":null}]}}"#
        );
        assert_eq!(Envelope::parse(&s), Ok(req));
        assert!(ack_request_prefix(u64::MAX).len() < ACK_REQUEST_OVERHEAD);
    }

    #[test]
    fn surrogates() {
        let e = Envelope::parse(r#"{"type":"text","content":"\ud83d\ude00\u00e9"}"#).unwrap();
        assert_eq!(e, Envelope::Message(Payload::Text("😀é".into())));
        for bad in [
            r#""\ud83d""#,
            r#""\ude00""#,
            r#""\ud83d\u0041""#,
            r#""\ud83dx""#,
        ] {
            assert!(RawJson::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn depth_is_bounded() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(RawJson::new(&ok).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(RawJson::new(&deep), Err(LegacyError::TooDeep));
        let huge = "[".repeat(1 << 20);
        assert_eq!(RawJson::new(&huge), Err(LegacyError::TooDeep));
    }
}
