//! tokio-tungstenite, batched idiom: `feed` every message that is ready right now and
//! `flush` once no further message is immediately available. Default `WebSocketConfig`.

use std::future::poll_fn;
use std::task::Poll;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;

use crate::BoxError;

pub(super) async fn serve(stream: TcpStream) -> Result<(), BoxError> {
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
    'conn: while let Some(msg) = ws.next().await {
        let mut msg = msg?;
        loop {
            if msg.is_binary() || msg.is_text() {
                ws.feed(msg).await?;
            }
            // Poll once with the task's real waker: Some(item) if a message is ready now.
            let ready = poll_fn(|cx| {
                Poll::Ready(match ws.poll_next_unpin(cx) {
                    Poll::Ready(item) => Some(item),
                    Poll::Pending => None,
                })
            })
            .await;
            match ready {
                Some(Some(next)) => msg = next?,
                Some(None) => {
                    ws.flush().await?;
                    break 'conn;
                }
                None => break,
            }
        }
        ws.flush().await?;
    }
    Ok(())
}
