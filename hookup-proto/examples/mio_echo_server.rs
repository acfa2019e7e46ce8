//! A WebSocket echo server on `mio`: one thread, one event loop, any number
//! of connections, each a [`Connection`] driven by hand: no async runtime.
//!
//! ```text
//! cargo run -p hookup-proto --example mio_echo_server -- [ADDR] [--deflate]
//! ```
//!
//! `ADDR` defaults to `127.0.0.1:9001`. Every text and binary message is
//! echoed on any path; `--deflate` accepts permessage-deflate offers (and then
//! compresses every echo). This is the server `autobahn/run.sh` checks as
//! `hookup-proto-mio`.
//!
//! The loop, per the crate docs' drain order: read what the socket has into
//! `read_buf()` and `handle_read`, drain `poll_event` (echoing), write out
//! (vectored; partial writes keep the rest queued, and only then is the
//! socket registered for WRITABLE), and sleep in `poll` until a socket is
//! ready or the earliest `poll_timeout` of any connection.

use std::collections::HashMap;
use std::io::ErrorKind::{ConnectionAborted, Interrupted, WouldBlock};
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Instant;

use hookup_proto::http::{HeaderValue, header::SERVER};
use hookup_proto::{Accept, Config, Connection, DeflateConfig, Event};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(0);
/// Bytes read per `read` call (at least; more when a frame needs more).
const READ_SIZE: usize = 64 << 10;

/// One client: the socket, the protocol state and what `mio` last said.
struct Client {
    tcp: TcpStream,
    conn: Connection,
    /// The socket may have bytes to read / room to write: set by `mio`'s
    /// (edge-triggered) events, cleared when a call returns `WouldBlock`.
    readable: bool,
    writable: bool,
    /// No more reads: the peer closed its side or the socket failed.
    read_eof: bool,
    /// Writes failed: queued output can never go out.
    broken: bool,
    /// Whether WRITABLE is part of the registered interest.
    want_write: bool,
}

impl Client {
    /// Moves bytes until the socket would block or the connection is done;
    /// returns whether the client is finished (then close the socket).
    fn drive(&mut self, now: Instant) -> bool {
        loop {
            let mut progress = false;
            // Input, while the socket has some and the connection wants it
            // (`wants_read` is false once closed, or while a peer that does
            // not read our replies has us owing too much: backpressure).
            if self.readable && !self.read_eof && self.conn.wants_read() {
                progress = true;
                match read_into(&mut self.conn, &mut self.tcp) {
                    Ok(0) => self.eof(now),
                    Ok(_) => self.conn.handle_read(now),
                    Err(e) if e.kind() == WouldBlock => {
                        self.readable = false;
                        progress = false;
                    }
                    Err(e) if e.kind() == Interrupted => {}
                    Err(_) => self.eof(now),
                }
            }
            // 1. Every event, until `None`.
            while let Some(event) = self.conn.poll_event() {
                match event {
                    Event::Request(_) => {
                        let accept = Accept::new()
                            .header(SERVER, HeaderValue::from_static("hookup-proto-mio"));
                        self.conn.accept(accept).expect("a request is pending");
                    }
                    Event::Message(m) => {
                        // Refused only once we started closing: nothing to echo then.
                        let _ = self.conn.send(m);
                    }
                    Event::Closed(c) if c.error.is_some() => {
                        eprintln!("closed: {:?}", c.error);
                    }
                    _ => {} // pings are answered, pongs ignored
                }
            }
            // 2. Output: as much as the socket takes.
            while self.writable && !self.broken && self.conn.transmit_len() > 0 {
                let mut slices = [IoSlice::new(&[]); 16];
                let n = self.conn.transmit_vectored(&mut slices);
                match self.tcp.write_vectored(&slices[..n]) {
                    // Room freed: `wants_read` may be true again.
                    Ok(n) if n > 0 => self.conn.advance_transmit(n),
                    Err(e) if e.kind() == WouldBlock => {
                        self.writable = false;
                        break;
                    }
                    Err(e) if e.kind() == Interrupted => continue,
                    // The connection hears of it: go round to drain its `Closed`.
                    _ => self.fail_write(now),
                }
                progress = true;
            }
            if !progress {
                // 3. (Timers: the main loop reads `poll_timeout` before it sleeps.)
                return self.conn.is_closed() && (self.conn.transmit_len() == 0 || self.broken);
            }
        }
    }

    /// The transport ended (EOF or an error): the connection hears it as EOF.
    fn eof(&mut self, now: Instant) {
        self.read_eof = true;
        self.conn.handle_eof(now);
    }

    fn fail_write(&mut self, now: Instant) {
        self.broken = true;
        if !self.read_eof {
            self.eof(now);
        }
    }

    /// Asks `mio` for WRITABLE only while output waits for room.
    fn update_interest(&mut self, poll: &Poll, token: Token) -> io::Result<()> {
        let want_write = !self.writable && !self.broken && self.conn.transmit_len() > 0;
        if want_write != self.want_write {
            self.want_write = want_write;
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            poll.registry().reregister(&mut self.tcp, token, interest)?;
        }
        Ok(())
    }
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

fn main() -> io::Result<()> {
    let mut addr: SocketAddr = "127.0.0.1:9001".parse().expect("a valid address");
    let mut config = Config::default();
    config.max_frame_size = 64 << 20;
    for arg in std::env::args().skip(1) {
        if arg == "--deflate" {
            let mut deflate = DeflateConfig::default();
            deflate.threshold = 0; // compress every echo (Autobahn's 12.x/13.x want that)
            config.deflate = Some(deflate);
        } else {
            addr = arg
                .parse()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        }
    }
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    eprintln!("echo on ws://{}/ (any path)", listener.local_addr()?);

    let mut clients: HashMap<Token, Client> = HashMap::new();
    let mut next_token = 1;
    let mut ready = Vec::new();
    loop {
        // Sleep until a socket is ready or the earliest timer is due. (A
        // scan of every connection; a large server would keep a timer heap.)
        let deadline = clients.values().filter_map(|c| c.conn.poll_timeout()).min();
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() == Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in &events {
            if event.token() == LISTENER {
                accept_all(&listener, &poll, &mut clients, &mut next_token, &config)?;
            } else if let Some(client) = clients.get_mut(&event.token()) {
                client.readable |=
                    event.is_readable() || event.is_read_closed() || event.is_error();
                client.writable |= event.is_writable() || event.is_error();
                ready.push(event.token());
            }
        }
        // Fire due timers, then drive whatever moved.
        let now = Instant::now();
        for (&token, client) in &mut clients {
            if client.conn.poll_timeout().is_some_and(|t| t <= now) {
                client.conn.handle_timeout(now);
                ready.push(token);
            }
        }
        ready.sort_unstable();
        ready.dedup();
        for token in ready.drain(..) {
            let Some(client) = clients.get_mut(&token) else {
                continue;
            };
            if client.drive(now) {
                // Closed and written out: shut the socket and forget it.
                let mut client = clients.remove(&token).expect("just found");
                let _ = client.tcp.shutdown(Shutdown::Write);
                let _ = poll.registry().deregister(&mut client.tcp);
            } else {
                client.update_interest(&poll, token)?;
            }
        }
    }
}

/// Accepts every pending connection (the listener is edge-triggered too).
fn accept_all(
    listener: &TcpListener,
    poll: &Poll,
    clients: &mut HashMap<Token, Client>,
    next_token: &mut usize,
    config: &Config,
) -> io::Result<()> {
    loop {
        let mut tcp = match listener.accept() {
            Ok((tcp, _)) => tcp,
            Err(e) if e.kind() == WouldBlock => return Ok(()),
            Err(e) if matches!(e.kind(), Interrupted | ConnectionAborted) => continue,
            Err(e) => {
                // Out of descriptors, say: the rest wait for the next event.
                eprintln!("accept: {e}");
                return Ok(());
            }
        };
        let _ = tcp.set_nodelay(true);
        let token = Token(*next_token);
        *next_token += 1;
        poll.registry()
            .register(&mut tcp, token, Interest::READABLE)?;
        let mut config = config.clone();
        // Masking keys and nonces come from a seed: give it one from the OS.
        config.rng_seed = Some(os_seed());
        let conn = Connection::server(config, Instant::now());
        let client = Client {
            tcp,
            conn,
            readable: false,
            writable: true,
            read_eof: false,
            broken: false,
            want_write: false,
        };
        clients.insert(token, client);
    }
}

fn os_seed() -> [u8; 32] {
    let mut seed = [0; 32];
    getrandom::fill(&mut seed).expect("the OS random source");
    seed
}
