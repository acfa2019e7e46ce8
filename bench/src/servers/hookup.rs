//! The hookup echo server (compiled only with `--features hookup`): hookup's
//! defaults and its recommended idiom — `recv` then `send`, which leaves the
//! writes of a burst to the next `recv` so they go out in one syscall.

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
