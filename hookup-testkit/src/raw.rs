//! A hand-written WebSocket/HTTP client for poking a server below any
//! adapter API: raw HTTP heads, hand-encoded (masked or not) frames, and
//! reads until end of file. Works over TCP or TLS, under any runtime (TCP
//! through async-io, seen as a tokio stream through `tokio_util::compat`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use async_io::Async;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_util::compat::FuturesAsyncReadCompatExt as _;

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// A fixed client key and the accept value the server must answer with.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How to reach a server for raw connections.
#[derive(Clone)]
pub struct RawConnector {
    pub addr: SocketAddr,
    /// TLS client configuration and server name, for `wss://` servers.
    pub tls: Option<(Arc<rustls::ClientConfig>, String)>,
}

impl RawConnector {
    pub async fn connect(&self) -> RawConn {
        let tcp = Async::<std::net::TcpStream>::connect(self.addr)
            .await
            .expect("raw TCP connect");
        tcp.get_ref().set_nodelay(true).unwrap();
        let tcp = tcp.compat();
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some((config, name)) => {
                let name = rustls::pki_types::ServerName::try_from(name.clone()).unwrap();
                let s = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .expect("raw TLS handshake");
                Box::new(s)
            }
        };
        RawConn {
            io,
            buf: Vec::new(),
        }
    }

    /// Connects and completes a valid upgrade to `path`.
    pub async fn upgrade(&self, path: &str) -> RawConn {
        let mut c = self.connect().await;
        c.write(upgrade_request(path, 13).as_bytes()).await;
        let head = c.read_head().await.expect("upgrade response");
        assert_eq!(head.status, 101, "upgrade to {path} refused: {head:?}");
        assert_eq!(head.header("sec-websocket-accept"), Some(ACCEPT));
        c
    }
}

/// A valid upgrade request (with the given `Sec-WebSocket-Version`).
pub fn upgrade_request(path: &str, version: u32) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n\
         Sec-WebSocket-Version: {version}\r\n\r\n"
    )
}

/// A parsed HTTP response head (plus whatever body followed before EOF).
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A frame as read from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The close code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == OP_CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// Encodes one frame; `mask` masks it (as a client must).
pub fn encode_frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(if fin { 0x80 } else { 0 } | opcode);
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xFFFF => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A masked client frame (with a fixed, non-trivial key).
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    encode_frame(fin, opcode, payload, Some([0x37, 0xfa, 0x21, 0x3d]))
}

fn is_eof(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

pub struct RawConn {
    io: Box<dyn Io>,
    buf: Vec<u8>,
}

impl RawConn {
    pub async fn write(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.expect("raw write");
        self.io.flush().await.expect("raw flush");
    }

    /// Writes a masked frame.
    pub async fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.write(&client_frame(fin, opcode, payload)).await;
    }

    /// Reads more bytes into the buffer; false at EOF (or reset).
    async fn fill(&mut self) -> bool {
        // On the heap: a 16 KiB array would sit in every future that reads.
        let mut chunk = vec![0u8; 16 << 10];
        match self.io.read(&mut chunk).await {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if is_eof(&e) => false,
            Err(e) => panic!("raw read: {e}"),
        }
    }

    /// Reads an HTTP response head; `None` if the stream ended first.
    pub async fn read_head(&mut self) -> Option<Head> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(self.buf[..end].to_vec()).expect("ASCII head");
                self.buf.drain(..end + 4);
                let mut lines = head.split("\r\n");
                let status_line = lines.next().unwrap();
                let status = status_line
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                return Some(Head { status, headers });
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Everything until the peer closes the stream (buffered bytes included).
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        while self.fill().await {}
        std::mem::take(&mut self.buf)
    }

    /// The next frame; `None` at EOF.
    pub async fn read_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, n)) = decode_frame(&self.buf) {
                self.buf.drain(..n);
                return Some(frame);
            }
            if !self.fill().await {
                assert!(self.buf.is_empty(), "EOF inside a frame");
                return None;
            }
        }
    }

    /// Discards buffered bytes and reads (and drops) up to `n` more bytes.
    pub async fn drain(&mut self, n: usize) {
        let mut got = self.buf.len();
        self.buf.clear();
        while got < n && self.fill().await {
            got += self.buf.len();
            self.buf.clear();
        }
    }
}

fn decode_frame(b: &[u8]) -> Option<(Frame, usize)> {
    if b.len() < 2 {
        return None;
    }
    let fin = b[0] & 0x80 != 0;
    let opcode = b[0] & 0x0F;
    let masked = b[1] & 0x80 != 0;
    let (len, mut pos) = match b[1] & 0x7F {
        126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
        127 if b.len() >= 10 => (
            u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
            10,
        ),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    let mut key = None;
    if masked {
        if b.len() < pos + 4 {
            return None;
        }
        key = Some([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]]);
        pos += 4;
    }
    if b.len() < pos + len {
        return None;
    }
    let mut payload = b[pos..pos + len].to_vec();
    if let Some(k) = key {
        for (i, x) in payload.iter_mut().enumerate() {
            *x ^= k[i % 4];
        }
    }
    Some((
        Frame {
            fin,
            opcode,
            masked,
            payload,
        },
        pos + len,
    ))
}

/// Splits a raw HTTP answer into its head and body.
pub fn split_response(bytes: &[u8]) -> (Head, Vec<u8>) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(bytes)));
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (Head { status, headers }, bytes[end + 4..].to_vec())
}
