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

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::error::ProtocolError;
use crate::message::MessageKind;
use crate::utf8::Utf8Validator;

mod negotiate;

pub use negotiate::{client_check_response, client_offer, server_accept};
#[cfg(test)]
use negotiate::{parse_extensions, window_bits};

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
