//! A WebSocket echo server: every text or binary message sent to `/echo`
//! comes back unchanged. Ctrl-C stops it.
//!
//! ```text
//! cargo run -p hookup-tokio --example echo_server [ADDR]      # default 127.0.0.1:9001
//! cargo run -p hookup-tokio --example client ws://127.0.0.1:9001/echo
//! ```

use hookup_tokio::Server;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let server = Server::new()
        // One task per connection; `recv` yields `None` once it is closed.
        .route("/echo", |mut ws, _request| async move {
            while let Some(Ok(msg)) = ws.recv().await {
                // Pings are answered automatically; echo data only.
                if msg.is_data() && ws.send(msg).await.is_err() {
                    break;
                }
            }
        })
        .bind(&addr)
        .await?;
    println!("echoing on ws://{}/echo", server.local_addr()?);
    server
        .run_until(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
