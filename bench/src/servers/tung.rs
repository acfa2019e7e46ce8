//! tokio-tungstenite, per-message idiom: read a message, `ws.send(msg).await`
//! (send = feed + flush for every message). Default `WebSocketConfig`.

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;

use crate::BoxError;

pub(super) async fn serve(stream: TcpStream) -> Result<(), BoxError> {
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
    while let Some(msg) = ws.next().await {
        let msg = msg?;
        if msg.is_binary() || msg.is_text() {
            ws.send(msg).await?;
        }
        // Ping/Pong/Close replies are queued by tungstenite itself.
    }
    Ok(())
}
