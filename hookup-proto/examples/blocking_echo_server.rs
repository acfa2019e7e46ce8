//! A WebSocket echo server on blocking `std::net`: a thread per connection,
//! each driving its own [`Connection`] with plain reads and writes.
//!
//! ```text
//! cargo run -p hookup-proto --example blocking_echo_server -- [ADDR]
//! ```
//!
//! `ADDR` defaults to `127.0.0.1:9001`. Every text and binary message is
//! echoed back, on any path. Try it with the `blocking_client` example.
//!
//! The loop follows the crate docs' drain order: after every input, drain
//! `poll_event`, write out `poll_transmit`, then wait for the next input no
//! longer than `poll_timeout` (a read timeout), and call `handle_timeout`
//! when it expires.

use std::io::ErrorKind::{Interrupted, TimedOut, WouldBlock};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Instant;

use hookup_proto::{Accept, Config, Connection, Event};

/// Bytes read per `read` call (at least; more when a frame needs more).
const READ_SIZE: usize = 64 << 10;

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let listener = TcpListener::bind(&addr)?;
    eprintln!("echo on ws://{}/ (any path)", listener.local_addr()?);
    for tcp in listener.incoming() {
        match tcp {
            Ok(tcp) => {
                std::thread::spawn(move || {
                    if let Err(e) = serve(tcp) {
                        eprintln!("connection failed: {e}");
                    }
                });
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
    Ok(())
}

/// Serves one connection until it is closed.
fn serve(mut tcp: TcpStream) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    let mut config = Config::default();
    // Masking keys and nonces come from a seed: give it one from the OS.
    config.rng_seed = Some(os_seed());
    let mut conn = Connection::server(config, Instant::now());
    let mut out = Vec::new();
    loop {
        // 1. Every event, until `None`.
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Request(request) => {
                    eprintln!("{} {}", tcp.peer_addr()?, request.path());
                    conn.accept(Accept::new()).expect("a request is pending");
                }
                Event::Message(message) => {
                    // Refused only once we started closing: nothing to echo then.
                    let _ = conn.send(message);
                }
                Event::Closed(closed) => {
                    eprintln!("closed: code {}, clean: {}", closed.code(), closed.clean);
                }
                _ => {} // pings are answered for us; pongs ignored
            }
        }
        // 2. Everything queued, in one blocking write.
        out.clear();
        if conn.poll_transmit(&mut out) {
            tcp.write_all(&out)?;
        }
        if conn.is_closed() {
            // After `Closed` and its last bytes: close the transport.
            let _ = tcp.shutdown(Shutdown::Write);
            return Ok(());
        }
        // 3. Wait for input, no longer than the next timer. (With every
        // event handled and all output written, `wants_read` is true here.)
        let now = Instant::now();
        match conn.poll_timeout() {
            Some(deadline) if deadline <= now => {
                conn.handle_timeout(now);
                continue;
            }
            deadline => tcp.set_read_timeout(deadline.map(|d| d - now))?,
        }
        match read_into(&mut conn, &mut tcp) {
            Ok(0) => conn.handle_eof(Instant::now()),
            Ok(_) => conn.handle_read(Instant::now()),
            // The read timeout: a timer is due.
            Err(e) if matches!(e.kind(), WouldBlock | TimedOut) => {
                conn.handle_timeout(Instant::now());
            }
            Err(e) if e.kind() == Interrupted => {}
            Err(e) => return Err(e),
        }
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

fn os_seed() -> [u8; 32] {
    let mut seed = [0; 32];
    getrandom::fill(&mut seed).expect("the OS random source");
    seed
}
