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
//! [`LegacyError`]. A field known here (`type`, `id`, `content`,
//! `message`, `timeout`) given twice is [`LegacyError::DuplicateField`];
//! `id` and `timeout` are integers written with digits only (no sign,
//! fraction or exponent) up to 2^64-1. Parsing is linear in the input,
//! never panics, and nesting is bounded by [`MAX_DEPTH`]. JSON content is
//! kept as the raw JSON text ([`RawJson`]), validated but not converted.
//!
//! The JSON is read by serde_json (its `RawValue` keeps content as it was
//! written): what it accepts, with every string's escapes decoded (so an
//! unpaired surrogate escape is an error) and every number read (so one
//! beyond the range of an `f64`, such as `1e999`, is an error), is valid
//! JSON here. Nesting is bounded here, below serde_json's own limit (128).
//! Rendering is written out below; the tests hold it to serde_json's
//! reading.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

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
    /// Not valid JSON (by serde_json's reading): the problem is at this
    /// byte offset.
    Syntax {
        /// Byte offset in the input: where serde_json saw the problem (for
        /// a bad escape or literal, the byte after or at its end), or the
        /// input's length if it ended too early.
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

/// Text known to be one valid JSON value (RFC 8259 as serde_json reads it:
/// nesting at most [`MAX_DEPTH`], no unpaired surrogate escapes, numbers
/// within the range of an `f64`), kept as it was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RawJson<'a>(&'a str);

impl<'a> RawJson<'a> {
    /// Checks that `text` is exactly one JSON value (surrounding whitespace
    /// is trimmed).
    pub fn new(text: &'a str) -> Result<Self, LegacyError> {
        validate(text)?;
        Ok(Self(text.trim_matches(WHITESPACE)))
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
        let id = |f: &Fields<'a>| integer(f.get(f.id, "id")?, "id");
        if kind.eq_ignore_ascii_case("text") || kind.eq_ignore_ascii_case("json") {
            let content = fields.get(fields.content, "content")?;
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
                timeout_ms: integer(fields.get(fields.timeout, "timeout")?, "timeout")?,
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
fn typed_payload<'a>(kind: &str, content: &'a RawValue) -> Result<Payload<'a>, LegacyError> {
    if kind.eq_ignore_ascii_case("text") {
        if content.get().starts_with('"') {
            Ok(Payload::Text(decode_string(content)?))
        } else {
            Err(LegacyError::WrongType {
                field: "content",
                expected: "a string",
            })
        }
    } else {
        Ok(Payload::Json(RawJson(content.get())))
    }
}

/// The message of an `ack_request`/`needs_ack`.
fn inner(v: &RawValue) -> Result<Payload<'_>, LegacyError> {
    let text = v.get();
    if text.starts_with('"') {
        Ok(Payload::Text(decode_string(v)?))
    } else if text.starts_with('{') {
        let fields = Fields::read(text)?;
        if fields.kind.is_none() {
            return Ok(Payload::Json(RawJson(text)));
        }
        let kind = fields.kind()?;
        if kind.eq_ignore_ascii_case("text") || kind.eq_ignore_ascii_case("json") {
            typed_payload(&kind, fields.get(fields.content, "content")?)
        } else {
            Err(unknown_type(&kind))
        }
    } else {
        Ok(Payload::Json(RawJson(text)))
    }
}

/// A JSON integer written with digits only (no sign, fraction or
/// exponent) that fits a `u64`.
fn integer(v: &RawValue, field: &'static str) -> Result<u64, LegacyError> {
    let bad = LegacyError::WrongType {
        field,
        expected: "an integer from 0 to 2^64-1",
    };
    let text = v.get();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    text.parse().map_err(|_| bad)
}

/// JSON's whitespace (RFC 8259 `ws`).
const WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// Checks that `text` is exactly one JSON value by serde_json's reading,
/// arrays and objects nested at most [`MAX_DEPTH`] deep.
///
/// serde_json reads every string (escapes decoded, so an unpaired
/// surrogate escape is an error), every number (one beyond `f64` is an
/// error) and every literal, and stops at the first array or object
/// nested deeper than the bound, before reading it: linear in the input.
fn validate(text: &str) -> Result<(), LegacyError> {
    check(text, 1)
}

/// [`validate`], for a value at nesting `depth` (1: the outermost).
fn check(text: &str, depth: usize) -> Result<(), LegacyError> {
    let too_deep = Cell::new(false);
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = Check {
        depth,
        too_deep: &too_deep,
    };
    seed.deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| {
            if too_deep.get() {
                LegacyError::TooDeep
            } else {
                syntax(text, &e)
            }
        })
}

/// serde_json's position of `e` (line, column) as a byte offset in `text`:
/// the end of the input if it ended too early, else the byte at which
/// serde_json saw the problem (for an escape or literal: its last byte
/// read).
fn syntax(text: &str, e: &serde_json::Error) -> LegacyError {
    if e.is_eof() {
        return LegacyError::Syntax { offset: text.len() };
    }
    let line_start = match e.line() {
        0 | 1 => 0,
        n => text
            .match_indices('\n')
            .nth(n - 2)
            .map_or(0, |(i, _)| i + 1),
    };
    LegacyError::Syntax {
        offset: (line_start + e.column()).saturating_sub(1).min(text.len()),
    }
}

/// Reads one JSON value and all inside it through serde_json, keeping
/// nothing; fails (setting `too_deep`) on an array or object at a depth
/// beyond [`MAX_DEPTH`].
#[derive(Clone, Copy)]
struct Check<'c> {
    /// The value's depth: 1 for the outermost.
    depth: usize,
    too_deep: &'c Cell<bool>,
}

impl<'c> Check<'c> {
    /// The seed for the members of an array or object read by `self`.
    fn members<E: de::Error>(self) -> Result<Self, E> {
        if self.depth > MAX_DEPTH {
            self.too_deep.set(true);
            return Err(E::custom("nested too deep"));
        }
        Ok(Self {
            depth: self.depth + 1,
            ..self
        })
    }
}

impl<'de> DeserializeSeed<'de> for Check<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let member = self.members()?;
        while seq.next_element_seed(member)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let member = self.members()?;
        while map.next_key_seed(member)?.is_some() {
            map.next_value_seed(member)?;
        }
        Ok(())
    }
}

/// A string value, decoded (borrowed when it has no escapes).
fn decode_string(v: &RawValue) -> Result<Cow<'_, str>, LegacyError> {
    struct Text<'a>(Cow<'a, str>);

    impl<'de> Deserialize<'de> for Text<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_str(TextVisitor)
        }
    }

    struct TextVisitor;

    impl<'de> Visitor<'de> for TextVisitor {
        type Value = Text<'de>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
            Ok(Text(Cow::Borrowed(v)))
        }

        fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
            Ok(Text(Cow::Owned(v.to_owned())))
        }
    }

    let text = v.get();
    if let Some(inside) = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .filter(|t| !t.contains('\\'))
    {
        // Checked by serde_json, and nothing to decode.
        return Ok(Cow::Borrowed(inside));
    }
    serde_json::from_str::<Text<'_>>(text)
        .map(|t| t.0)
        .map_err(|e| syntax(text, &e))
}

/// The fields of an envelope object this format knows, as their JSON text.
#[derive(Default)]
struct Fields<'a> {
    kind: Option<&'a RawValue>,
    id: Option<&'a RawValue>,
    content: Option<&'a RawValue>,
    message: Option<&'a RawValue>,
    timeout: Option<&'a RawValue>,
    /// The first known field that appeared twice.
    duplicate: Option<&'static str>,
}

impl<'a> Fields<'a> {
    /// Validates `text` as one JSON value, which must be an object, and
    /// picks out its known fields.
    ///
    /// One pass of serde_json over the object reads its keys and unknown
    /// values ([`Check`]) and skips over the known values, kept as their
    /// text (serde_json checks their syntax but not their strings' escapes
    /// nor their depth); those are checked afterwards, unless they are
    /// digits or a string without escapes, which need nothing more.
    fn scan(text: &'a str) -> Result<Self, LegacyError> {
        if !text.trim_start_matches(WHITESPACE).starts_with('{') {
            // Valid JSON of another kind, or not JSON at all.
            validate(text)?;
            return Err(LegacyError::NotAnObject);
        }
        // On invalid JSON, the reading that checks everything in order
        // reports the first problem (as for any other input).
        let f = Self::read(text).map_err(|e| validate(text).err().unwrap_or(e))?;
        for v in [f.kind, f.id, f.content, f.message, f.timeout] {
            let Some(v) = v else { continue };
            let member = v.get();
            let simple = (!member.is_empty() && member.bytes().all(|b| b.is_ascii_digit()))
                || (member.starts_with('"') && !member.contains('\\'));
            if !simple {
                let at = (member.as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
                check(member, 2).map_err(|e| match e {
                    LegacyError::Syntax { offset } => LegacyError::Syntax {
                        offset: at + offset,
                    },
                    e => e,
                })?;
            }
        }
        Ok(f)
    }

    /// Picks out the known fields of `text`, a JSON object, without
    /// checking their values (see [`scan`](Self::scan)).
    fn read(text: &'a str) -> Result<Self, LegacyError> {
        let too_deep = Cell::new(false);
        let mut de = serde_json::Deserializer::from_str(text);
        let f = FieldsSeed {
            too_deep: &too_deep,
        }
        .deserialize(&mut de)
        .and_then(|f| de.end().map(|()| f))
        .map_err(|e| {
            if too_deep.get() {
                LegacyError::TooDeep
            } else {
                syntax(text, &e)
            }
        })?;
        match f.duplicate {
            Some(name) => Err(LegacyError::DuplicateField(name)),
            None => Ok(f),
        }
    }

    fn get(
        &self,
        v: Option<&'a RawValue>,
        name: &'static str,
    ) -> Result<&'a RawValue, LegacyError> {
        v.ok_or(LegacyError::MissingField(name))
    }

    /// The `type`, decoded.
    fn kind(&self) -> Result<Cow<'a, str>, LegacyError> {
        let v = self.get(self.kind, "type")?;
        if !v.get().starts_with('"') {
            return Err(LegacyError::WrongType {
                field: "type",
                expected: "a string",
            });
        }
        decode_string(v)
    }

    /// An ack request's message: under `content`, or `message` as the
    /// original Scala sender wrote it, not both.
    fn inner(&self) -> Result<&'a RawValue, LegacyError> {
        match (self.content, self.message) {
            (Some(c), None) => Ok(c),
            (None, Some(m)) => Ok(m),
            (Some(_), Some(_)) => Err(LegacyError::DuplicateField("content")),
            (None, None) => Err(LegacyError::MissingField("content")),
        }
    }
}

/// Reads an envelope object into [`Fields`]; unknown values are checked
/// as members of the envelope (depth 2).
struct FieldsSeed<'c> {
    too_deep: &'c Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for FieldsSeed<'_> {
    type Value = Fields<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Fields<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldsSeed<'_> {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut f = Fields::default();
        while let Some(key) = map.next_key::<Key>()? {
            let (slot, name) = match key {
                Key::Type => (&mut f.kind, "type"),
                Key::Id => (&mut f.id, "id"),
                Key::Content => (&mut f.content, "content"),
                Key::Message => (&mut f.message, "message"),
                Key::Timeout => (&mut f.timeout, "timeout"),
                Key::Other => {
                    map.next_value_seed(Check {
                        depth: 2,
                        too_deep: self.too_deep,
                    })?;
                    continue;
                }
            };
            let value = map.next_value::<&RawValue>()?;
            if slot.is_some() {
                f.duplicate.get_or_insert(name);
            } else {
                *slot = Some(value);
            }
        }
        Ok(f)
    }
}

/// An envelope field name (escapes decoded).
enum Key {
    Type,
    Id,
    Content,
    Message,
    Timeout,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_identifier(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E>(self, v: &str) -> Result<Key, E> {
        Ok(match v {
            "type" => Key::Type,
            "id" => Key::Id,
            "content" => Key::Content,
            "message" => Key::Message,
            "timeout" => Key::Timeout,
            _ => Key::Other,
        })
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
    fn numbers_beyond_f64_are_refused() {
        // serde_json's reading (the hand-written scanner before it took any
        // number JSON's grammar allows).
        for bad in ["9e999", "-1e400", "[1,1e309]"] {
            assert!(
                matches!(RawJson::new(bad), Err(LegacyError::Syntax { .. })),
                "{bad}"
            );
        }
        assert!(RawJson::new("1e308").is_ok());
        // An id beyond u64 is still a number: the wrong type, not bad JSON.
        assert_eq!(
            Envelope::parse(r#"{"type":"ack","id":99999999999999999999999}"#),
            Err(LegacyError::WrongType {
                field: "id",
                expected: "an integer from 0 to 2^64-1"
            })
        );
    }

    #[test]
    fn members_are_checked_where_they_are() {
        // Known fields are kept raw first, then checked; errors point into
        // the envelope.
        let e = Envelope::parse(r#"{"type":"ack","id":[1,"\ud800"]}"#);
        assert_eq!(e, Err(LegacyError::Syntax { offset: 29 }));
        let deep = format!(
            r#"{{"type":"ack","id":1,"content":{}{}}}"#,
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        assert_eq!(Envelope::parse(&deep), Err(LegacyError::TooDeep));
        // Duplicates of unknown fields are not errors; of known ones are.
        assert!(Envelope::parse(r#"{"type":"ack","id":1,"x":1,"x":2}"#).is_ok());
        assert_eq!(
            Envelope::parse(r#"{"type":"ack","id":1,"timeout":1,"timeout":2}"#),
            Err(LegacyError::DuplicateField("timeout"))
        );
        // Invalid JSON is reported as such before a duplicate.
        let cut = r#"{"type":"ack","type":"ack","id":1"#;
        assert_eq!(
            Envelope::parse(cut),
            Err(LegacyError::Syntax { offset: cut.len() })
        );
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
