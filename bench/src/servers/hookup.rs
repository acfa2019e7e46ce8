//! HOOKUP SLOT — the hookup echo server (compiled only with `--features hookup`).
//!
//! To be written by the hookup authors. Contract (called by the shared accept loop in
//! `servers/mod.rs`, once per accepted connection, in its own task on a `current_thread`
//! tokio runtime; TCP_NODELAY is already set on `stream`):
//!
//! 1. perform the server handshake on `stream` with hookup's defaults;
//! 2. echo every text/binary message back as it arrives (let hookup answer pings and
//!    closes itself), using whatever write/flush idiom hookup recommends;
//! 3. return `Ok(())` when the peer closes, `Err(..)` on a protocol or I/O error.

use tokio::net::TcpStream;

use crate::BoxError;

// Keep the dependency referenced until the real server is written.
use hookup_tokio as _;

pub(super) async fn serve(stream: TcpStream) -> Result<(), BoxError> {
    drop(stream);
    Err("hookup echo server not written yet (bench/src/servers/hookup.rs)".into())
}
