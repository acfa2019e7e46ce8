//! A blocking WebSocket client on `std::net`: connects, sends each message
//! (the arguments after the URL, or else the lines of standard input),
//! prints the replies and closes cleanly.
//!
//! ```text
//! cargo run -p hookup-proto --example blocking_client -- [URL] [MESSAGE...]
//! ```
//!
//! `URL` defaults to `ws://127.0.0.1:9001/` (where the echo server examples
//! listen). After each message it waits for one reply, as an echo server
//! sends. While it waits for a line of input it does not read the socket;
//! a client that must do both at once wants an event loop (see
//! `mio_echo_server`) or a second thread.

use std::error::Error;
use std::io::ErrorKind::{Interrupted, TimedOut, WouldBlock};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Instant;

use hookup_proto::{ClientRequest, CloseCode, Config, Connection, Event};

/// Bytes read per `read` call (at least; more when a frame needs more).
const READ_SIZE: usize = 64 << 10;

struct Client {
    tcp: TcpStream,
    conn: Connection,
    out: Vec<u8>,
}

impl Client {
    /// Drives the connection until `until` is true of an event, or it closes.
    fn run_until(&mut self, mut until: impl FnMut(&Event) -> bool) -> io::Result<()> {
        loop {
            // 1. Every event, until `None`.
            let mut done = false;
            while let Some(event) = self.conn.poll_event() {
                match &event {
                    Event::Message(m) => match m.as_text() {
                        Some(text) => println!("< {text}"),
                        None => println!("< ({} bytes of binary)", m.len()),
                    },
                    Event::Closed(c) => eprintln!("closed: code {}, clean: {}", c.code(), c.clean),
                    _ => {}
                }
                done |= until(&event);
            }
            // 2. Everything queued, in one blocking write.
            self.out.clear();
            if self.conn.poll_transmit(&mut self.out) {
                self.tcp.write_all(&self.out)?;
            }
            if done || self.conn.is_closed() {
                return Ok(());
            }
            // 3. Wait for input, no longer than the next timer.
            let now = Instant::now();
            match self.conn.poll_timeout() {
                Some(deadline) if deadline <= now => {
                    self.conn.handle_timeout(now);
                    continue;
                }
                deadline => self.tcp.set_read_timeout(deadline.map(|d| d - now))?,
            }
            match read_into(&mut self.conn, &mut self.tcp) {
                Ok(0) => self.conn.handle_eof(Instant::now()),
                Ok(_) => self.conn.handle_read(Instant::now()),
                Err(e) if matches!(e.kind(), WouldBlock | TimedOut) => {
                    self.conn.handle_timeout(Instant::now());
                }
                Err(e) if e.kind() == Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:9001/".to_owned());
    let messages: Vec<String> = args.collect();
    let request = ClientRequest::new(&url)?;
    if request.is_tls() {
        return Err("wss:// needs TLS, which this example does not do".into());
    }
    let tcp = TcpStream::connect((request.host(), request.port()))?;
    tcp.set_nodelay(true)?;
    let mut config = Config::default();
    // Masking keys and the handshake nonce come from a seed: one from the OS.
    config.rng_seed = Some(os_seed());
    // The client starts with its upgrade request queued.
    let conn = Connection::client(&request, config, Instant::now());
    let mut client = Client {
        tcp,
        conn,
        out: Vec::new(),
    };
    client.run_until(|e| matches!(e, Event::Connected(_)))?;

    let lines: Box<dyn Iterator<Item = io::Result<String>>> = if messages.is_empty() {
        Box::new(io::stdin().lines())
    } else {
        Box::new(messages.into_iter().map(Ok))
    };
    for line in lines {
        if !client.conn.is_open() {
            break;
        }
        client.conn.send_text(&line?)?;
        client.run_until(|e| matches!(e, Event::Message(_)))?;
    }
    if client.conn.is_open() {
        client.conn.close(Instant::now(), CloseCode::NORMAL, "")?;
    }
    // Until the server's close frame and its end of the TCP connection.
    client.run_until(|_| false)?;
    let _ = client.tcp.shutdown(Shutdown::Both);
    Ok(())
}

/// Reads once into the connection's receive buffer, appending only (as
/// `read_buf` requires). The room is zeroed first to stay in safe code.
fn read_into(conn: &mut Connection, src: &mut impl Read) -> io::Result<usize> {
    let room = conn.read_hint(READ_SIZE).min(4 * READ_SIZE);
    let buf = conn.read_buf();
    let start = buf.len();
    buf.resize(start + room, 0);
    let result = src.read(&mut buf[start..]);
    buf.truncate(start + *result.as_ref().unwrap_or(&0));
    result
}

fn os_seed() -> [u8; 32] {
    let mut seed = [0; 32];
    getrandom::fill(&mut seed).expect("the OS random source");
    seed
}
