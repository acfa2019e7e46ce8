//! The hookup echo servers (compiled only with `--features hookup`), on
//! hookup's defaults:
//!
//! - `hookup`: `recv` then `send`, the idiom of every Rust WebSocket crate;
//!   `send` writes before it returns, so a burst of N messages is answered
//!   with N writes.
//! - `hookup-feed`: `feed` the reply while more received messages are
//!   waiting (`connection().has_events()`), `send` the last one: a burst is
//!   answered with one write.

use tokio::net::TcpStream;

use crate::BoxError;

pub(super) async fn serve(stream: TcpStream) -> Result<(), BoxError> {
    let mut ws = hookup_tokio::accept(stream).await?;
    while let Some(msg) = ws.recv().await {
        let msg = msg?;
        if msg.is_data() {
            ws.send(msg).await?;
        }
    }
    Ok(())
}

pub(super) async fn serve_feed(stream: TcpStream) -> Result<(), BoxError> {
    let mut ws = hookup_tokio::accept(stream).await?;
    while let Some(msg) = ws.recv().await {
        let msg = msg?;
        if msg.is_data() {
            if ws.connection().has_events() {
                ws.feed(msg).await?;
            } else {
                ws.send(msg).await?;
            }
        }
    }
    Ok(())
}
