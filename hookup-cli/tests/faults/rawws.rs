//! A hand-written, blocking WebSocket client that speaks `hookup.v1`
//! envelopes byte by byte, to feed a server what no correct peer would.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// HELLO (version 2) without a resume proof.
pub fn hello(id: &[u8], received: u64) -> Vec<u8> {
    hello_with(id, received, None)
}

/// HELLO (version 2) with `proof` (the session's resume key) when given.
pub fn hello_with(id: &[u8], received: u64, proof: Option<&[u8; 32]>) -> Vec<u8> {
    let mut b = vec![0x01, 2, id.len() as u8];
    b.extend_from_slice(id);
    b.extend_from_slice(&received.to_be_bytes());
    match proof {
        Some(p) => {
            b.push(32);
            b.extend_from_slice(p);
        }
        None => b.push(0),
    }
    b
}

pub fn data(flags: u8, seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0x03, flags];
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(payload);
    b
}

pub fn ack(seq: u64) -> Vec<u8> {
    let mut b = vec![0x04];
    b.extend_from_slice(&seq.to_be_bytes());
    b
}

/// A decoded WELCOME.
#[derive(Debug)]
pub struct Welcome {
    pub resumed: bool,
    pub id: Vec<u8>,
    pub received: u64,
    /// The resume key (flag bit 1), in WELCOME(new).
    pub key: Option<[u8; 32]>,
}

pub fn parse_welcome(b: &[u8]) -> Welcome {
    assert!(b.len() >= 11 && b[0] == 0x02, "not a WELCOME: {b:?}");
    assert_eq!(b[1] & !3, 0, "WELCOME flags {:#x}", b[1]);
    let len = usize::from(b[2]);
    let keyed = b[1] & 2 != 0;
    assert_eq!(
        b.len(),
        3 + len + 8 + if keyed { 32 } else { 0 },
        "WELCOME length"
    );
    let end = 3 + len + 8;
    Welcome {
        resumed: b[1] & 1 == 1,
        id: b[3..3 + len].to_vec(),
        received: u64::from_be_bytes(b[3 + len..end].try_into().expect("8 bytes")),
        key: keyed.then(|| b[end..].try_into().expect("32 bytes")),
    }
}

/// What the server ended a connection with.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    Close(u16, String),
    /// The stream ended without a close frame.
    Eof,
}

pub struct RawWs {
    s: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    /// Connects and upgrades to `/echo`, offering `hookup.v1`; asserts the
    /// server selected it.
    pub fn connect(port: u16) -> Self {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("raw connect");
        Self::upgrade(s, port)
    }

    /// [`connect`](Self::connect) from the local address `from` (another
    /// loopback address, 127.0.0.2 say: another client IP to the server).
    #[allow(dead_code)]
    pub fn connect_from(port: u16, from: std::net::Ipv4Addr) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("runtime");
        let s = rt
            .block_on(async {
                let sock = tokio::net::TcpSocket::new_v4()?;
                sock.bind((from, 0).into())?;
                sock.connect(([127, 0, 0, 1], port).into())
                    .await?
                    .into_std()
            })
            .expect("raw connect from another address");
        s.set_nonblocking(false).unwrap();
        Self::upgrade(s, port)
    }

    fn upgrade(s: TcpStream, port: u16) -> Self {
        // Bounds every read: a server that hangs fails the test, not the
        // run (longer than the server's 10 s greeting deadline, so that
        // shows as the end of the stream).
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.set_nodelay(true).unwrap();
        let mut ws = Self { s, buf: Vec::new() };
        let req = format!(
            "GET /echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: hookup.v1\r\n\r\n"
        );
        ws.s.write_all(req.as_bytes()).expect("write upgrade");
        let head = loop {
            if let Some(end) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(ws.buf[..end].to_vec()).expect("ASCII head");
                ws.buf.drain(..end + 4);
                break head;
            }
            assert!(ws.fill(), "connection ended during the upgrade");
        };
        let lower = head.to_ascii_lowercase();
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        assert!(
            lower.contains(&format!(
                "sec-websocket-accept: {}",
                ACCEPT.to_ascii_lowercase()
            )),
            "bad accept: {head}"
        );
        assert!(
            lower.contains("sec-websocket-protocol: hookup.v1"),
            "hookup.v1 not selected: {head}"
        );
        ws
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.s.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                false
            }
            Err(e) => panic!("raw read: {e}"),
        }
    }

    /// Writes one masked frame (errors ignored: the server may be gone).
    pub fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        let key = [0x5a, 0x13, 0xc7, 0x81];
        let mut out = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        let _ = self.s.write_all(&out);
    }

    pub fn send_binary(&mut self, payload: &[u8]) {
        self.send_frame(OP_BINARY, payload);
    }

    /// The next frame `(opcode, payload)`; `None` at the end of the stream.
    pub fn recv(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// The next data message (pings answered, pongs skipped); panics on a
    /// close or the end of the stream.
    pub fn recv_data(&mut self) -> Vec<u8> {
        loop {
            match self.recv() {
                Some((OP_BINARY, p)) => return p,
                Some((OP_PING, p)) => self.send_frame(OP_PONG, &p),
                Some((OP_PONG, _)) => {}
                other => panic!("expected a binary message, got {other:?}"),
            }
        }
    }

    /// Says HELLO and returns the WELCOME.
    pub fn hello(&mut self, id: &[u8], received: u64) -> Welcome {
        self.hello_with(id, received, None)
    }

    /// HELLO with a resume proof; returns the WELCOME.
    pub fn hello_with(&mut self, id: &[u8], received: u64, proof: Option<&[u8; 32]>) -> Welcome {
        self.send_binary(&hello_with(id, received, proof));
        parse_welcome(&self.recv_data())
    }

    /// Reads until the server closes; data messages are skipped and
    /// returned with the ending. A close frame is answered.
    pub fn until_close(&mut self) -> (Ending, Vec<Vec<u8>>) {
        let mut seen = Vec::new();
        loop {
            match self.recv() {
                None => return (Ending::Eof, seen),
                Some((OP_CLOSE, p)) => {
                    let code = if p.len() >= 2 {
                        u16::from_be_bytes([p[0], p[1]])
                    } else {
                        1005
                    };
                    let reason = String::from_utf8_lossy(p.get(2..).unwrap_or(&[])).into_owned();
                    self.send_frame(OP_CLOSE, &p[..p.len().min(2)]);
                    return (Ending::Close(code, reason), seen);
                }
                Some((OP_PING, p)) => self.send_frame(OP_PONG, &p),
                Some((_, p)) => seen.push(p),
            }
        }
    }
}

/// One unmasked server frame at the front of `b`, with its length.
fn parse_frame(b: &[u8]) -> Option<((u8, Vec<u8>), usize)> {
    if b.len() < 2 {
        return None;
    }
    assert_eq!(b[0] & 0x80, 0x80, "fragmented server frame");
    assert_eq!(b[1] & 0x80, 0, "masked server frame");
    let (len, mut at) = match b[1] & 0x7f {
        126 => (
            usize::from(u16::from_be_bytes(b.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (
            u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (usize::from(n), 2),
    };
    let payload = b.get(at..at + len)?.to_vec();
    at += len;
    Some(((b[0] & 0x0f, payload), at))
}
