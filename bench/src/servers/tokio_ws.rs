//! tokio-websockets (server feature, sha1_smol): default `Config` and `Limits`,
//! per-message `send().await` as in its own echo example.

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;

use crate::BoxError;

pub(super) async fn serve(stream: TcpStream) -> Result<(), BoxError> {
    let (_request, mut ws) = tokio_websockets::ServerBuilder::new().accept(stream).await?;
    while let Some(item) = ws.next().await {
        let item = item?;
        if item.is_text() || item.is_binary() {
            ws.send(item).await?;
        }
        // Pong and Close replies are sent by tokio-websockets itself.
    }
    Ok(())
}
