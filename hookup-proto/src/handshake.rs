//! The opening handshake (RFC 6455 §4): building and validating the HTTP/1.1
//! upgrade request and response, for both roles.
//!
//! Parsing uses `httparse` with a fixed header array and a size limit on the
//! head; "need more bytes" is `Ok(None)`, never an error. The functions here
//! are pure; [`Connection`](crate::Connection) drives them and hands bytes
//! after the head on to the frame layer.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri};
use sha1::{Digest, Sha1};

use crate::deflate::{self, DeflateConfig, DeflateParams};
use crate::error::{HandshakeError, UsageError};

/// The GUID of RFC 6455 §1.3.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Most headers a handshake head may carry.
const MAX_HEADERS: usize = 64;

/// Computes `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §1.3).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    B64.encode(sha.finalize())
}

/// Whether a comma-separated header (possibly repeated) contains `token`,
/// compared case-insensitively.
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// All tokens of a comma-separated header (possibly repeated).
fn tokens(headers: &HeaderMap, name: HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter_map(|t| std::str::from_utf8(t.trim_ascii()).ok())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn header_map(raw: &[httparse::Header<'_>]) -> Result<HeaderMap, HandshakeError> {
    let mut map = HeaderMap::with_capacity(raw.len());
    for h in raw {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| HandshakeError::Malformed(format!("header name {:?}", h.name)))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| HandshakeError::Malformed(format!("value of header {:?}", h.name)))?;
        map.append(name, value);
    }
    Ok(map)
}

fn parse_error(e: httparse::Error) -> HandshakeError {
    match e {
        httparse::Error::TooManyHeaders => HandshakeError::HeaderTooLarge { max: 0 },
        e => HandshakeError::Malformed(e.to_string()),
    }
}

fn check_head_size(buf: &[u8], max: usize) -> Result<(), HandshakeError> {
    if buf.len() > max {
        Err(HandshakeError::HeaderTooLarge { max })
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------- client

/// What a client asks for: the URL, offered subprotocols and extra headers.
#[derive(Clone, Debug)]
pub struct ClientRequest {
    uri: Uri,
    host: String,
    port: u16,
    tls: bool,
    protocols: Vec<String>,
    headers: HeaderMap,
    key: Option<[u8; 16]>,
}

impl ClientRequest {
    /// A request for a `ws://` or `wss://` URL.
    pub fn new(url: &str) -> Result<Self, UsageError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| UsageError::InvalidUrl(format!("{url}: {e}")))?;
        Self::from_uri(uri)
    }

    /// A request for a parsed `ws://` or `wss://` URI.
    pub fn from_uri(uri: Uri) -> Result<Self, UsageError> {
        let bad = |why: &str| UsageError::InvalidUrl(format!("{uri}: {why}"));
        let tls = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("ws") => false,
            Some(s) if s.eq_ignore_ascii_case("wss") => true,
            _ => return Err(bad("scheme must be ws or wss")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("user information is not supported"));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Self {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            tls,
            protocols: Vec::new(),
            headers: HeaderMap::new(),
            key: None,
            uri,
        })
    }

    /// Offers a subprotocol (in order of preference).
    pub fn protocol(mut self, protocol: impl Into<String>) -> Result<Self, UsageError> {
        let p = protocol.into();
        if p.is_empty() || !p.bytes().all(is_token_char) {
            return Err(UsageError::InvalidHeader(format!("subprotocol {p:?}")));
        }
        self.protocols.push(p);
        Ok(self)
    }

    /// Adds an extra header (for example `Authorization` or `Origin`).
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, UsageError> {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| UsageError::InvalidHeader(name.to_owned()))?;
        let v = HeaderValue::from_str(value)
            .map_err(|_| UsageError::InvalidHeader(value.to_owned()))?;
        self.headers.append(n, v);
        Ok(self)
    }

    /// Uses a fixed 16-byte key instead of a random one (for tests).
    pub fn with_key(mut self, key: [u8; 16]) -> Self {
        self.key = Some(key);
        self
    }

    /// The host to connect to (without brackets for IPv6).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port to connect to (80/443 when the URL has none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the URL is `wss://`.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The URL.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The offered subprotocols.
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    pub(crate) fn fixed_key(&self) -> Option<[u8; 16]> {
        self.key
    }

    /// Writes the upgrade request for the base64 `key` to `out`.
    #[cfg(test)]
    pub(crate) fn encode(&self, key: &str, out: &mut Vec<u8>) {
        self.encode_with(key, None, out);
    }

    /// Writes the upgrade request for the base64 `key` to `out`, offering
    /// permessage-deflate as `deflate` asks unless the application set its
    /// own `Sec-WebSocket-Extensions`. Returns whether it was offered.
    pub(crate) fn encode_with(
        &self,
        key: &str,
        deflate: Option<&DeflateConfig>,
        out: &mut Vec<u8>,
    ) -> bool {
        let path = self.uri.path_and_query().map_or("/", |p| p.as_str());
        let authority = self.uri.authority().map_or("", |a| a.as_str());
        out.extend_from_slice(b"GET ");
        // Origin form: "ws://host?q" has an empty path, sent as "/?q".
        if !path.starts_with('/') {
            out.push(b'/');
        }
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(authority.as_bytes());
        out.extend_from_slice(
            b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ",
        );
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\r\n");
        if !self.protocols.is_empty() {
            out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
            out.extend_from_slice(self.protocols.join(", ").as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let offer =
            deflate.filter(|_| !self.headers.contains_key(header::SEC_WEBSOCKET_EXTENSIONS));
        if let Some(config) = offer {
            out.extend_from_slice(b"Sec-WebSocket-Extensions: ");
            out.extend_from_slice(deflate::client_offer(config).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        write_headers(&self.headers, out);
        out.extend_from_slice(b"\r\n");
        offer.is_some()
    }
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn write_headers(headers: &HeaderMap, out: &mut Vec<u8>) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// The server's accepted handshake, as the client saw it.
#[derive(Clone, Debug)]
pub struct Response {
    /// The subprotocol the server chose, if any.
    pub subprotocol: Option<String>,
    /// All response headers.
    pub headers: HeaderMap,
}

/// Parses and validates the server's response from the front of `buf`.
/// `Ok(None)`: need more bytes. `Ok(Some((response, n, deflate)))`: the head
/// was `n` bytes; what follows belongs to the frame layer. `deflate` is the
/// configuration permessage-deflate was offered with, if it was; the result
/// has the agreed parameters when the server accepted it.
pub(crate) fn parse_response(
    buf: &[u8],
    expected_accept: &str,
    offered: &[String],
    deflate: Option<&DeflateConfig>,
    max_head: usize,
) -> Result<Option<(Response, usize, Option<DeflateParams>)>, HandshakeError> {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut raw);
    // Parse no more than the limit, so that a head too large is refused
    // the same way however it was split into reads.
    let n = match resp
        .parse(&buf[..buf.len().min(max_head)])
        .map_err(parse_error)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            check_head_size(buf, max_head)?;
            return Ok(None);
        }
        Err(HandshakeError::HeaderTooLarge { .. }) => {
            return Err(HandshakeError::HeaderTooLarge { max: max_head });
        }
        Err(e) => return Err(e),
    };
    check_head_size(&buf[..n], max_head)?;
    if resp.version != Some(1) {
        return Err(HandshakeError::HttpVersion);
    }
    let status = resp.code.unwrap_or(0);
    if status != 101 {
        return Err(HandshakeError::Status(status));
    }
    let headers = header_map(resp.headers)?;
    if !has_token(&headers, header::UPGRADE, "websocket") {
        return Err(HandshakeError::NotWebSocketUpgrade);
    }
    if !has_token(&headers, header::CONNECTION, "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    match headers.get(header::SEC_WEBSOCKET_ACCEPT) {
        Some(v) if v.as_bytes() == expected_accept.as_bytes() => {}
        _ => return Err(HandshakeError::InvalidAccept),
    }
    let deflate = match deflate {
        Some(config) => deflate::client_check_response(&headers, config)?,
        None => {
            if let Some(ext) = tokens(&headers, header::SEC_WEBSOCKET_EXTENSIONS)
                .into_iter()
                .next()
            {
                return Err(HandshakeError::UnrequestedExtension(ext));
            }
            None
        }
    };
    let chosen = tokens(&headers, header::SEC_WEBSOCKET_PROTOCOL);
    let subprotocol = match chosen.as_slice() {
        [] => None,
        [one] if offered.iter().any(|o| o == one) => Some(one.clone()),
        [one, ..] => return Err(HandshakeError::UnofferedSubprotocol(one.clone())),
    };
    Ok(Some((
        Response {
            subprotocol,
            headers,
        },
        n,
        deflate,
    )))
}

// ---------------------------------------------------------------- server

/// A request received by a server, shown to the application so it can accept
/// or reject it.
#[derive(Clone, Debug)]
pub struct Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    protocols: Vec<String>,
    accept: Option<String>,
}

impl Request {
    /// The request method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The request target as sent (path and query).
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The path of the request target.
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The query of the request target, without `?`.
    pub fn query(&self) -> Option<&str> {
        self.uri.query()
    }

    /// All request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The subprotocols offered by the client, in its order of preference.
    pub fn subprotocols(&self) -> &[String] {
        &self.protocols
    }

    /// The `Origin` header (sent by browsers).
    pub fn origin(&self) -> Option<&str> {
        self.headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
    }

    /// Whether this is a valid WebSocket upgrade request. A plain HTTP
    /// request (no `Upgrade` header) is also shown to the application, which
    /// may answer it with [`Connection::reject`](crate::Connection::reject).
    pub fn is_websocket(&self) -> bool {
        self.accept.is_some()
    }

    pub(crate) fn accept_value(&self) -> Option<&str> {
        self.accept.as_deref()
    }
}

/// How a server accepts a request.
#[derive(Clone, Debug, Default)]
pub struct Accept {
    /// The chosen subprotocol; must be one the client offered.
    pub subprotocol: Option<String>,
    /// Extra response headers.
    pub headers: HeaderMap,
}

impl Accept {
    /// Accepts with no subprotocol and no extra headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Chooses a subprotocol.
    pub fn subprotocol(mut self, p: impl Into<String>) -> Self {
        self.subprotocol = Some(p.into());
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }
}

/// Parses a request from the front of `buf`. `Ok(None)`: need more bytes.
/// A request without `Upgrade: websocket` is returned (not an error) so that
/// the application may answer it as plain HTTP; an attempted upgrade that is
/// invalid is an error whose [`HandshakeError::status`] is the answer.
pub(crate) fn parse_request(
    buf: &[u8],
    max_head: usize,
) -> Result<Option<(Request, usize)>, HandshakeError> {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut raw);
    // Parse no more than the limit, so that a head too large is refused
    // the same way however it was split into reads.
    let n = match req
        .parse(&buf[..buf.len().min(max_head)])
        .map_err(parse_error)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            check_head_size(buf, max_head)?;
            return Ok(None);
        }
        Err(HandshakeError::HeaderTooLarge { .. }) => {
            return Err(HandshakeError::HeaderTooLarge { max: max_head });
        }
        Err(e) => return Err(e),
    };
    check_head_size(&buf[..n], max_head)?;
    let method = Method::from_bytes(req.method.unwrap_or("").as_bytes())
        .map_err(|_| HandshakeError::Malformed("method".into()))?;
    let uri: Uri = req
        .path
        .unwrap_or("")
        .parse()
        .map_err(|_| HandshakeError::Malformed("request target".into()))?;
    if req.version != Some(1) {
        return Err(HandshakeError::HttpVersion);
    }
    let headers = header_map(req.headers)?;
    if headers.get_all(header::HOST).iter().count() != 1 {
        return Err(HandshakeError::MissingHost);
    }
    let protocols = tokens(&headers, header::SEC_WEBSOCKET_PROTOCOL);
    let mut request = Request {
        method,
        uri,
        headers,
        protocols,
        accept: None,
    };
    if !request.headers.contains_key(header::UPGRADE) {
        // Plain HTTP: the application decides how to answer.
        return Ok(Some((request, n)));
    }
    let h = &request.headers;
    if !has_token(h, header::UPGRADE, "websocket") {
        return Err(HandshakeError::NotWebSocketUpgrade);
    }
    if request.method != Method::GET {
        return Err(HandshakeError::MethodNotGet);
    }
    if !has_token(h, header::CONNECTION, "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    match h.get(header::SEC_WEBSOCKET_VERSION) {
        Some(v) if v.as_bytes().trim_ascii() == b"13" => {}
        _ => return Err(HandshakeError::UnsupportedVersion),
    }
    let mut keys = h.get_all(header::SEC_WEBSOCKET_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (Some(k), None) => k.as_bytes().trim_ascii(),
        _ => return Err(HandshakeError::InvalidKey),
    };
    match B64.decode(key) {
        Ok(raw) if raw.len() == 16 => {}
        _ => return Err(HandshakeError::InvalidKey),
    }
    request.accept = Some(accept_key(key));
    Ok(Some((request, n)))
}

/// Writes the 101 response for `request` to `out`.
pub(crate) fn encode_accept(
    request: &Request,
    accept: &Accept,
    out: &mut Vec<u8>,
) -> Result<(), UsageError> {
    let key = request.accept_value().ok_or(UsageError::NotAnUpgrade)?;
    if let Some(p) = &accept.subprotocol
        && !request.protocols.iter().any(|o| o == p)
    {
        return Err(UsageError::InvalidHeader(format!(
            "subprotocol {p:?} was not offered"
        )));
    }
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(p) = &accept.subprotocol {
        out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
        out.extend_from_slice(p.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    write_headers(&accept.headers, out);
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Writes a complete non-101 response (with `Content-Length` and
/// `Connection: close`) to `out`.
pub(crate) fn encode_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH || name == header::CONNECTION {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
}

/// The automatic answer to a failed handshake.
pub(crate) fn encode_error_response(err: &HandshakeError, out: &mut Vec<u8>) {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut headers = HeaderMap::new();
    if status == StatusCode::UPGRADE_REQUIRED {
        headers.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    let body = format!("{err}\n");
    encode_response(status, &headers, body.as_bytes(), out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_accept_key() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    const REQ: &str = "GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
        Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn parses_rfc_request_whole_bytewise_and_with_trailing_data() {
        let (req, n) = parse_request(REQ.as_bytes(), 16 * 1024).unwrap().unwrap();
        assert_eq!(n, REQ.len());
        assert_eq!(req.path(), "/chat");
        assert_eq!(req.query(), Some("room=1"));
        assert_eq!(req.origin(), Some("http://example.com"));
        assert_eq!(req.subprotocols(), ["chat", "superchat"]);
        assert_eq!(req.accept_value(), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        for cut in 0..REQ.len() {
            assert!(
                parse_request(&REQ.as_bytes()[..cut], 16 * 1024)
                    .unwrap()
                    .is_none()
            );
        }
        let mut with_tail = REQ.as_bytes().to_vec();
        with_tail.extend_from_slice(&[0x81, 0x80, 1, 2, 3, 4]);
        let (_, n) = parse_request(&with_tail, 16 * 1024).unwrap().unwrap();
        assert_eq!(n, REQ.len());
    }

    #[test]
    fn rejects_bad_requests_with_the_right_status() {
        let cases: &[(&str, &str, u16)] = &[
            ("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8", 426),
            (
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Key: c2hvcnQ=",
                400,
            ),
            ("Host: server.example.com\r\n", "", 400),
            ("GET /chat", "POST /chat", 405),
            ("HTTP/1.1", "HTTP/1.0", 400),
            (
                "Connection: keep-alive, Upgrade",
                "Connection: keep-alive",
                400,
            ),
            ("Upgrade: websocket", "Upgrade: h2c", 426),
        ];
        for (from, to, status) in cases {
            let req = REQ.replacen(from, to, 1);
            let err = parse_request(req.as_bytes(), 16 * 1024).unwrap_err();
            assert_eq!(err.status(), *status, "{from} -> {to}: {err}");
        }
        let big = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(20_000)
        );
        assert_eq!(
            parse_request(big.as_bytes(), 16 * 1024)
                .unwrap_err()
                .status(),
            431
        );
        // A partial head that is already too big is refused without waiting.
        assert_eq!(
            parse_request(&big.as_bytes()[..17_000], 16 * 1024)
                .unwrap_err()
                .status(),
            431
        );
        assert_eq!(
            parse_request(b"\x00\x01garbage\r\n\r\n", 16 * 1024)
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn plain_http_request_is_not_an_error() {
        let (req, _) = parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1024)
            .unwrap()
            .unwrap();
        assert!(!req.is_websocket());
    }

    #[test]
    fn client_request_and_response_validation() {
        let r = ClientRequest::new("ws://[::1]:9001/a/b?c=d")
            .unwrap()
            .protocol("chat")
            .unwrap();
        assert_eq!((r.host(), r.port(), r.is_tls()), ("::1", 9001, false));
        let mut out = Vec::new();
        r.encode("dGhlIHNhbXBsZSBub25jZQ==", &mut out);
        let (req, _) = parse_request(&out, 1024).unwrap().unwrap();
        assert_eq!(req.uri().to_string(), "/a/b?c=d");
        assert_eq!(req.subprotocols(), ["chat"]);
        let mut resp = Vec::new();
        encode_accept(&req, &Accept::new().subprotocol("chat"), &mut resp).unwrap();
        let offered = vec!["chat".to_owned()];
        let accept = accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
        let (parsed, n, _) = parse_response(&resp, &accept, &offered, None, 1024)
            .unwrap()
            .unwrap();
        assert_eq!(n, resp.len());
        assert_eq!(parsed.subprotocol.as_deref(), Some("chat"));
        assert_eq!(
            parse_response(&resp, "wrong", &offered, None, 1024).unwrap_err(),
            HandshakeError::InvalidAccept
        );
        assert_eq!(
            parse_response(&resp, &accept, &[], None, 1024).unwrap_err(),
            HandshakeError::UnofferedSubprotocol("chat".into())
        );
        assert!(ClientRequest::new("http://x/").is_err());
        assert!(ClientRequest::new("wss://h").unwrap().port() == 443);
    }
}
