//! Negotiating permessage-deflate in the handshake (RFC 7692 §5, §7.1):
//! parsing `Sec-WebSocket-Extensions`, the server's choice among offers,
//! the client's offer and its check of the response.

use std::fmt::Write as _;

use http::header::{HeaderMap, HeaderValue, SEC_WEBSOCKET_EXTENSIONS};

use super::{DeflateConfig, DeflateParams, EXTENSION_NAME};
use crate::error::HandshakeError;

// ---------------------------------------------------------------- parsing

/// One element of a `Sec-WebSocket-Extensions` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Extension {
    pub(super) name: String,
    pub(super) params: Vec<(String, Option<String>)>,
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
pub(super) fn parse_extensions(headers: &HeaderMap) -> Vec<Result<Extension, ()>> {
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
pub(super) fn window_bits(v: &str) -> Option<u8> {
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
