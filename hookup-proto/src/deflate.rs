//! The permessage-deflate extension (RFC 7692): negotiation in both
//! handshake roles, compression of outgoing messages and bounded, streaming
//! decompression of incoming ones.
//!
//! Turn it on with [`Config::deflate`](crate::Config::deflate). A client then
//! offers the extension and a server accepts offers; [`Connection`] does the
//! rest. The functions here are public for adapters whose handshake is done
//! elsewhere (for example by hyper): negotiate with [`server_accept`] or
//! [`client_offer`] and [`client_check_response`], then hand the result to
//! [`Connection::new_open_with_deflate`].
//!
//! * Messages shorter than [`DeflateConfig::threshold`] are sent
//!   uncompressed (RSV1 clear), as the RFC allows for any message.
//! * Compression uses a sync flush; the trailing `00 00 ff ff` is stripped
//!   before sending and appended again before inflating (RFC 7692 §7.2.1,
//!   §7.2.2).
//! * Inflating happens as compressed bytes arrive, in bounded chunks, with
//!   [`Config::max_message_size`](crate::Config::max_message_size) applied to
//!   the **decompressed** size (a small message that inflates past it fails
//!   with 1009 before the memory is spent) and text validated as UTF-8 as it
//!   is inflated (1007 as soon as the bad bytes come out).
//! * zlib cannot compress raw deflate with a 256-byte window: when the peer
//!   limits this endpoint to `max_window_bits=8`, messages are sent
//!   uncompressed (receiving compressed messages still works).
//!
//! [`Connection`]: crate::Connection
//! [`Connection::new_open_with_deflate`]: crate::Connection::new_open_with_deflate

use std::fmt::Write as _;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use http::header::{HeaderMap, HeaderValue, SEC_WEBSOCKET_EXTENSIONS};

use crate::error::{HandshakeError, ProtocolError};
use crate::message::MessageKind;
use crate::utf8::Utf8Validator;

/// The extension token.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The bytes a sync flush ends with, stripped from sent messages and
/// appended to received ones.
const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The first allocation for an inflated message; it then doubles, never
/// past the message size limit (plus one byte, to see it passed).
const INFLATE_CHUNK: usize = 16 << 10;

/// Memory above which the compression scratch buffer is given back.
const MAX_KEPT_SCRATCH: usize = 256 << 10;

/// What this endpoint wants from permessage-deflate.
///
/// "Local" is what this endpoint compresses, "remote" what the peer
/// compresses; the handshake maps them onto the RFC's `client_*`/`server_*`
/// parameters for the role.
///
/// ```
/// use hookup_proto::{Config, deflate::DeflateConfig};
/// let mut deflate = DeflateConfig::default();
/// deflate.threshold = 256;
/// deflate.local_no_context_takeover = true;
/// let mut config = Config::default();
/// config.deflate = Some(deflate);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Messages (or the first fragment of a fragmented message) shorter than
    /// this many bytes are sent uncompressed (default 128).
    pub threshold: usize,
    /// zlib compression level, 0–9 (default 1: the fastest; 6 is zlib's
    /// default and compresses JSON about a third smaller at a quarter of the
    /// speed). 0 never compresses outgoing messages but still receives
    /// compressed ones.
    pub level: u32,
    /// The largest LZ77 window, as a power of two (9–15, default 15), that
    /// this endpoint compresses with. Values outside are clamped.
    pub local_max_window_bits: u8,
    /// The largest window (8–15, default 15) to ask the peer to compress
    /// with. A server can only ask a client that offered
    /// `client_max_window_bits`; otherwise the limit is not enforced.
    pub remote_max_window_bits: u8,
    /// Reset this endpoint's compressor after every message (default off).
    /// It costs compression ratio between similar messages. The client
    /// offers it as a hint (`client_no_context_takeover`), which Autobahn's
    /// servers require before they ask for it; the server announces it
    /// (`server_no_context_takeover`).
    pub local_no_context_takeover: bool,
    /// Ask the peer to reset its compressor after every message (default
    /// off).
    pub remote_no_context_takeover: bool,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            threshold: 128,
            level: 1,
            local_max_window_bits: 15,
            remote_max_window_bits: 15,
            local_no_context_takeover: false,
            remote_no_context_takeover: false,
        }
    }
}

impl DeflateConfig {
    fn local_bits(&self) -> u8 {
        self.local_max_window_bits.clamp(9, 15)
    }

    fn remote_bits(&self) -> u8 {
        self.remote_max_window_bits.clamp(8, 15)
    }
}

/// The parameters agreed in the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateParams {
    /// This endpoint resets its compressor after every message.
    pub local_no_context_takeover: bool,
    /// The peer resets its compressor after every message.
    pub remote_no_context_takeover: bool,
    /// The largest window this endpoint compresses with (8–15; with 8 it
    /// sends every message uncompressed).
    pub local_max_window_bits: u8,
    /// The largest window the peer compresses with (8–15).
    pub remote_max_window_bits: u8,
}

impl Default for DeflateParams {
    fn default() -> Self {
        Self {
            local_no_context_takeover: false,
            remote_no_context_takeover: false,
            local_max_window_bits: 15,
            remote_max_window_bits: 15,
        }
    }
}

// ---------------------------------------------------------------- parsing

/// One element of a `Sec-WebSocket-Extensions` list.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Extension {
    name: String,
    params: Vec<(String, Option<String>)>,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A cursor over one header value.
struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn skip_ows(&mut self) {
        while self
            .s
            .get(self.pos)
            .is_some_and(|&b| b == b' ' || b == b'\t')
        {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn token(&mut self) -> Option<String> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        (self.pos > start).then(|| String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    /// A quoted-string, unescaped; its content must be a token (RFC 6455 §9.1).
    fn quoted(&mut self) -> Option<String> {
        self.pos += 1; // opening quote
        let mut v = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    break;
                }
                b'\\' => {
                    self.pos += 1;
                    v.push(self.peek()?);
                    self.pos += 1;
                }
                b => {
                    v.push(b);
                    self.pos += 1;
                }
            }
        }
        (!v.is_empty() && v.iter().all(|&b| is_tchar(b)))
            .then(|| String::from_utf8_lossy(&v).into_owned())
    }

    /// One extension, up to (not including) the next top-level comma.
    fn extension(&mut self) -> Option<Extension> {
        let name = self.token()?;
        let mut params = Vec::new();
        loop {
            self.skip_ows();
            match self.peek() {
                None | Some(b',') => return Some(Extension { name, params }),
                Some(b';') => self.pos += 1,
                Some(_) => return None,
            }
            self.skip_ows();
            let pname = self.token()?;
            self.skip_ows();
            let value = if self.peek() == Some(b'=') {
                self.pos += 1;
                self.skip_ows();
                Some(if self.peek() == Some(b'"') {
                    self.quoted()?
                } else {
                    self.token()?
                })
            } else {
                None
            };
            params.push((pname, value));
        }
    }

    /// Skips to the next top-level comma (after a malformed element).
    fn recover(&mut self) {
        let mut quoted = false;
        while let Some(b) = self.peek() {
            match b {
                b'\\' if quoted => self.pos += 1,
                b'"' => quoted = !quoted,
                b',' if !quoted => return,
                _ => {}
            }
            self.pos += 1;
        }
    }
}

/// Every element of every `Sec-WebSocket-Extensions` header, in order;
/// `Err(())` for a malformed element. Empty list elements are skipped.
fn parse_extensions(headers: &HeaderMap) -> Vec<Result<Extension, ()>> {
    let mut out = Vec::new();
    for value in headers.get_all(SEC_WEBSOCKET_EXTENSIONS) {
        let mut lx = Lexer {
            s: value.as_bytes(),
            pos: 0,
        };
        loop {
            lx.skip_ows();
            match lx.peek() {
                None => break,
                Some(b',') => {
                    lx.pos += 1;
                    continue;
                }
                Some(_) => {}
            }
            match lx.extension() {
                Some(e) => out.push(Ok(e)),
                None => {
                    lx.recover();
                    out.push(Err(()));
                }
            }
        }
    }
    out
}

/// A window size: a decimal 8–15 without leading zeros (RFC 7692 §7.1.2).
fn window_bits(v: &str) -> Option<u8> {
    match v {
        "8" => Some(8),
        "9" => Some(9),
        "10" => Some(10),
        "11" => Some(11),
        "12" => Some(12),
        "13" => Some(13),
        "14" => Some(14),
        "15" => Some(15),
        _ => None,
    }
}

/// The four parameters of an offer or a response, each at most once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    /// `Some(None)`: present without a value.
    server_max_window_bits: Option<Option<u8>>,
    client_max_window_bits: Option<Option<u8>>,
}

impl Params {
    /// Reads the parameters; `Err` names the first one that is unknown,
    /// repeated or has a value that is not allowed.
    fn parse(ext: &Extension) -> Result<Self, String> {
        let mut p = Self::default();
        for (name, value) in &ext.params {
            let bad = || {
                Err(format!(
                    "{name}{}",
                    value.as_ref().map_or(String::new(), |v| format!("={v}"))
                ))
            };
            let name_lc = name.to_ascii_lowercase();
            match name_lc.as_str() {
                "server_no_context_takeover" | "client_no_context_takeover" => {
                    let flag = if name_lc.starts_with("server") {
                        &mut p.server_no_context_takeover
                    } else {
                        &mut p.client_no_context_takeover
                    };
                    if *flag || value.is_some() {
                        return bad();
                    }
                    *flag = true;
                }
                "server_max_window_bits" | "client_max_window_bits" => {
                    let slot = if name_lc.starts_with("server") {
                        &mut p.server_max_window_bits
                    } else {
                        &mut p.client_max_window_bits
                    };
                    if slot.is_some() {
                        return bad();
                    }
                    *slot = Some(match value {
                        None => None,
                        Some(v) => match window_bits(v) {
                            Some(b) => Some(b),
                            None => return bad(),
                        },
                    });
                }
                _ => return bad(),
            }
        }
        Ok(p)
    }
}

// ---------------------------------------------------------------- server

/// (Server) Picks the first acceptable permessage-deflate offer among the
/// request's `Sec-WebSocket-Extensions` (the client's order of preference)
/// and returns the agreed parameters and the response header value.
///
/// Offers with unknown or repeated parameters or invalid values are
/// declined (RFC 7692 §5); other extensions are ignored. `None`: nothing to
/// accept.
pub fn server_accept(
    request_headers: &HeaderMap,
    config: &DeflateConfig,
) -> Option<(DeflateParams, HeaderValue)> {
    parse_extensions(request_headers)
        .into_iter()
        .flatten()
        .filter(|e| e.name.eq_ignore_ascii_case(EXTENSION_NAME))
        .find_map(|e| {
            let offer = Params::parse(&e).ok()?;
            // In an offer, server_max_window_bits needs a value.
            if offer.server_max_window_bits == Some(None) {
                return None;
            }
            Some(server_response(&offer, config))
        })
}

fn server_response(offer: &Params, config: &DeflateConfig) -> (DeflateParams, HeaderValue) {
    let mut resp = String::from(EXTENSION_NAME);
    let local_no_context_takeover =
        offer.server_no_context_takeover || config.local_no_context_takeover;
    if local_no_context_takeover {
        resp.push_str("; server_no_context_takeover");
    }
    if config.remote_no_context_takeover {
        resp.push_str("; client_no_context_takeover");
    }
    // Our window: at most what the client allows; announced when limited
    // (required when the client asked).
    let mut local_bits = config.local_bits();
    if let Some(Some(n)) = offer.server_max_window_bits {
        local_bits = local_bits.min(n);
        let _ = write!(resp, "; server_max_window_bits={local_bits}");
    } else if local_bits < 15 {
        let _ = write!(resp, "; server_max_window_bits={local_bits}");
    }
    // The client's window: only limited when it offered the parameter.
    let remote_bits = match offer.client_max_window_bits {
        None => 15,
        Some(hint) => {
            let bits = config.remote_bits().min(hint.unwrap_or(15));
            if bits < 15 {
                let _ = write!(resp, "; client_max_window_bits={bits}");
            }
            bits
        }
    };
    let params = DeflateParams {
        local_no_context_takeover,
        remote_no_context_takeover: config.remote_no_context_takeover,
        local_max_window_bits: local_bits,
        remote_max_window_bits: remote_bits,
    };
    let value = HeaderValue::from_str(&resp).expect("extension header is ASCII");
    (params, value)
}

// ---------------------------------------------------------------- client

/// (Client) The `Sec-WebSocket-Extensions` value offering permessage-deflate
/// as `config` asks.
pub fn client_offer(config: &DeflateConfig) -> HeaderValue {
    let mut s = String::from(EXTENSION_NAME);
    if config.local_no_context_takeover {
        s.push_str("; client_no_context_takeover");
    }
    if config.remote_no_context_takeover {
        s.push_str("; server_no_context_takeover");
    }
    // Always offered, so that the server may limit our window.
    match config.local_bits() {
        15 => s.push_str("; client_max_window_bits"),
        n => {
            let _ = write!(s, "; client_max_window_bits={n}");
        }
    }
    if config.remote_bits() < 15 {
        let _ = write!(s, "; server_max_window_bits={}", config.remote_bits());
    }
    HeaderValue::from_str(&s).expect("extension header is ASCII")
}

/// (Client) Validates the server's `Sec-WebSocket-Extensions` against the
/// offer made from `config` (by [`client_offer`]). `Ok(None)`: the server
/// declined. Anything the offer did not allow fails the handshake (RFC 7692
/// §5, §7.1).
pub fn client_check_response(
    response_headers: &HeaderMap,
    config: &DeflateConfig,
) -> Result<Option<DeflateParams>, HandshakeError> {
    let exts = parse_extensions(response_headers);
    let ext = match exts.as_slice() {
        [] => return Ok(None),
        [Ok(e)] if e.name.eq_ignore_ascii_case(EXTENSION_NAME) => e,
        [Ok(e)] => return Err(HandshakeError::UnrequestedExtension(e.name.clone())),
        [Err(())] => {
            return Err(HandshakeError::InvalidExtension(
                "malformed Sec-WebSocket-Extensions".into(),
            ));
        }
        [_, ..] => {
            return Err(HandshakeError::InvalidExtension(
                "more than one extension selected".into(),
            ));
        }
    };
    let resp = Params::parse(ext)
        .map_err(|p| HandshakeError::InvalidExtension(format!("parameter {p}")))?;
    let invalid = |why: &str| Err(HandshakeError::InvalidExtension(why.to_owned()));
    // What we asked of the server must be granted.
    if config.remote_no_context_takeover && !resp.server_no_context_takeover {
        return invalid("server_no_context_takeover was requested but not granted");
    }
    let offered_server_bits = config.remote_bits();
    let remote_bits = match resp.server_max_window_bits {
        None if offered_server_bits < 15 => {
            return invalid("server_max_window_bits was requested but not granted");
        }
        None => 15,
        Some(None) => return invalid("server_max_window_bits without a value"),
        Some(Some(n)) if n > offered_server_bits => {
            return invalid("server_max_window_bits larger than requested");
        }
        Some(Some(n)) => n,
    };
    let offered_client_bits = config.local_bits();
    let local_bits = match resp.client_max_window_bits {
        None => offered_client_bits,
        Some(None) => return invalid("client_max_window_bits without a value"),
        Some(Some(n)) if n > offered_client_bits => {
            return invalid("client_max_window_bits larger than offered");
        }
        Some(Some(n)) => n,
    };
    Ok(Some(DeflateParams {
        // A hint in our offer is a promise kept whether or not it is echoed.
        local_no_context_takeover: resp.client_no_context_takeover
            || config.local_no_context_takeover,
        remote_no_context_takeover: resp.server_no_context_takeover,
        local_max_window_bits: local_bits,
        remote_max_window_bits: remote_bits,
    }))
}

// ---------------------------------------------------------------- codec

/// The compression state of a connection that negotiated the extension.
pub(crate) struct Deflate {
    params: DeflateParams,
    threshold: usize,
    level: u32,
    /// Created on the first compressed message sent.
    compress: Option<Compress>,
    /// Created on the first compressed message received.
    decompress: Option<Decompress>,
    /// Compressed output before it is framed.
    scratch: Vec<u8>,
    /// Whether the fragmented message being sent is compressed.
    sending_compressed: bool,
    /// The compressed message being received, if any.
    rx: Option<Inflating>,
}

impl std::fmt::Debug for Deflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflate")
            .field("params", &self.params)
            .field("threshold", &self.threshold)
            .field("level", &self.level)
            .field("receiving", &self.rx.is_some())
            .finish_non_exhaustive()
    }
}

/// A compressed message being received.
#[derive(Debug)]
struct Inflating {
    kind: MessageKind,
    /// Decompressed bytes not delivered yet.
    out: Vec<u8>,
    /// Decompressed bytes of the message so far (delivered or not).
    total: u64,
    /// A block with BFINAL set ended the deflate stream: the rest of the
    /// message (at least the appended trailer) is ignored.
    ended: bool,
}

impl Deflate {
    pub(crate) fn new(params: DeflateParams, config: Option<&DeflateConfig>) -> Self {
        let d = DeflateConfig::default();
        let config = config.unwrap_or(&d);
        Self {
            params,
            threshold: config.threshold,
            level: config.level.min(9),
            compress: None,
            decompress: None,
            scratch: Vec::new(),
            sending_compressed: false,
            rx: None,
        }
    }

    pub(crate) fn params(&self) -> &DeflateParams {
        &self.params
    }

    /// Whether outgoing messages can be compressed at all.
    fn can_compress(&self) -> bool {
        self.level > 0 && self.params.local_max_window_bits >= 9
    }

    /// Decides whether the frame being sent is compressed: for a first
    /// frame by its size, for a continuation by its message's first frame.
    pub(crate) fn compress_frame(&mut self, first: bool, fin: bool, len: usize) -> bool {
        let compress = if first {
            self.can_compress() && len >= self.threshold
        } else {
            self.sending_compressed
        };
        self.sending_compressed = compress && !fin;
        compress
    }

    /// Compresses the concatenation of `parts` (one message, or one
    /// fragment of it; `fin` for the last) and returns the bytes to send.
    /// Hand the buffer back with [`put_scratch`](Self::put_scratch).
    /// `None`: compression failed (never expected); send uncompressed.
    pub(crate) fn compress(&mut self, parts: &[&[u8]], fin: bool) -> Option<Vec<u8>> {
        let level = self.level;
        let bits = self.params.local_max_window_bits;
        let c = self.compress.get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::new(level), false, bits.clamp(9, 15))
        });
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        let len: usize = parts.iter().map(|p| p.len()).sum();
        out.reserve(len / 2 + 64);
        let ok = parts
            .iter()
            .all(|p| compress_into(c, p, &mut out, FlushCompress::None))
            && compress_into(c, &[], &mut out, FlushCompress::Sync);
        if !ok {
            c.reset();
            self.sending_compressed = false;
            self.put_scratch(out);
            return None;
        }
        if fin {
            if out.ends_with(&TRAILER) {
                out.truncate(out.len() - TRAILER.len());
            }
            if self.params.local_no_context_takeover {
                c.reset();
            }
        }
        Some(out)
    }

    /// Returns the buffer from [`compress`](Self::compress) for reuse.
    pub(crate) fn put_scratch(&mut self, buf: Vec<u8>) {
        if buf.capacity() <= MAX_KEPT_SCRATCH {
            self.scratch = buf;
        }
    }

    /// Whether a compressed message is being received (its continuations
    /// are compressed too).
    pub(crate) fn receiving(&self) -> bool {
        self.rx.is_some()
    }

    /// The kind of the compressed message being received.
    pub(crate) fn receiving_kind(&self) -> Option<MessageKind> {
        self.rx.as_ref().map(|m| m.kind)
    }

    /// Memory held by decompressed bytes of the message being received that
    /// were not delivered yet (counted against an input budget).
    pub(crate) fn pending_output(&self) -> usize {
        self.rx.as_ref().map_or(0, |m| m.out.capacity())
    }

    /// Starts receiving a compressed message (its first frame had RSV1).
    pub(crate) fn begin(&mut self, kind: MessageKind) {
        self.rx = Some(Inflating {
            kind,
            out: Vec::new(),
            total: 0,
            ended: false,
        });
    }

    /// Inflates the next compressed bytes of the message being received,
    /// into memory that grows in steps bounded by the size limit, failing as soon as
    /// the decompressed size passes `max` or (for text, with `utf8`) the
    /// output stops being valid UTF-8. With `last`, the message ends here:
    /// the sync-flush trailer is appended and the text must be complete.
    pub(crate) fn inflate(
        &mut self,
        mut input: &[u8],
        last: bool,
        max: usize,
        utf8: &mut Utf8Validator,
    ) -> Result<(), ProtocolError> {
        let Some(m) = self.rx.as_mut() else {
            return Ok(());
        };
        let d = self
            .decompress
            .get_or_insert_with(|| Decompress::new(false));
        let text = m.kind == MessageKind::Text;
        let mut trailer: &[u8] = if last { &TRAILER } else { &[] };
        while !m.ended {
            if input.is_empty() {
                if trailer.is_empty() {
                    break;
                }
                input = std::mem::take(&mut trailer);
            }
            inflate_into(d, &mut input, m, max, text.then_some(&mut *utf8))?;
        }
        // Drain output still held by the inflater.
        while !m.ended && m.out.len() == m.out.capacity() {
            let mut none: &[u8] = &[];
            if !inflate_into(d, &mut none, m, max, text.then_some(&mut *utf8))? {
                break;
            }
        }
        if last && text && utf8.feed(&[], true).is_err() {
            return Err(ProtocolError::InvalidUtf8);
        }
        Ok(())
    }

    /// Takes the decompressed bytes not delivered yet (for a fragment).
    pub(crate) fn take_output(&mut self) -> Vec<u8> {
        self.rx
            .as_mut()
            .map(|m| std::mem::take(&mut m.out))
            .unwrap_or_default()
    }

    /// Ends the message being received: its kind and remaining output.
    pub(crate) fn end(&mut self) -> Option<(MessageKind, Vec<u8>)> {
        let m = self.rx.take()?;
        if self.params.remote_no_context_takeover
            && let Some(d) = &mut self.decompress
        {
            d.reset(false);
        }
        Some((m.kind, m.out))
    }
}

/// One compression call sequence: feeds all of `input`, growing `out`
/// until the flush is complete. False on a zlib error.
fn compress_into(
    c: &mut Compress,
    mut input: &[u8],
    out: &mut Vec<u8>,
    flush: FlushCompress,
) -> bool {
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve((input.len() / 2).max(4096));
        }
        let before = c.total_in();
        if c.compress_vec(input, out, flush).is_err() {
            return false;
        }
        let consumed = (c.total_in() - before) as usize;
        input = &input[consumed..];
        // Done once everything is consumed and zlib had room to spare
        // (then a flush is complete too).
        if input.is_empty() && out.len() < out.capacity() {
            return true;
        }
    }
}

/// One inflate call into the message's buffer, which grows in bounded
/// steps and never past `max + 1` bytes of message. Returns whether any
/// progress was made.
fn inflate_into(
    d: &mut Decompress,
    input: &mut &[u8],
    m: &mut Inflating,
    max: usize,
    utf8: Option<&mut Utf8Validator>,
) -> Result<bool, ProtocolError> {
    if m.out.len() == m.out.capacity() {
        // Room for the next chunk, but no more than one byte past the limit
        // (so that going past it is seen without spending more memory).
        let allowed = (max as u64 + 1).saturating_sub(m.total) as usize;
        let grow = m.out.len().max(INFLATE_CHUNK).min(allowed).max(1);
        m.out.reserve_exact(grow);
    }
    let start = m.out.len();
    let (in_before, out_before) = (d.total_in(), d.total_out());
    let status = d
        .decompress_vec(input, &mut m.out, FlushDecompress::Sync)
        .map_err(|e| {
            ProtocolError::InvalidCompressedData(
                e.message().unwrap_or("invalid deflate data").to_owned(),
            )
        })?;
    let consumed = (d.total_in() - in_before) as usize;
    let produced = (d.total_out() - out_before) as usize;
    *input = &input[consumed..];
    m.total += produced as u64;
    if m.total > max as u64 {
        return Err(ProtocolError::MessageTooLarge { size: m.total, max });
    }
    if let Some(v) = utf8
        && v.feed(&m.out[start..], false).is_err()
    {
        return Err(ProtocolError::InvalidUtf8);
    }
    if status == Status::StreamEnd {
        // A block with BFINAL set ends the deflate stream (RFC 7692
        // §7.2.3.4); the next message starts a new one.
        d.reset(false);
        m.ended = true;
        *input = &[];
        return Ok(true);
    }
    if consumed == 0 && produced == 0 && !input.is_empty() {
        return Err(ProtocolError::InvalidCompressedData("no progress".into()));
    }
    Ok(consumed > 0 || produced > 0)
}

#[cfg(test)]
mod tests;
