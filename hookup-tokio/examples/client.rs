//! A client that sends a text message, a binary message and a ping, prints
//! every event it receives, and closes once the three answers are in.
//!
//! ```text
//! cargo run -p hookup-tokio --example echo_server &
//! cargo run -p hookup-tokio --example client [URL]   # default ws://127.0.0.1:9001/echo
//! ```

use hookup_tokio::{ClientConfig, ClientRequest, CloseCode, Message, connect_with};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001/echo".to_owned());
    // `connect(url)` is enough; `connect_with` also returns the response.
    let request = ClientRequest::new(&url)?;
    let (mut ws, response) = connect_with(request, &ClientConfig::default()).await?;
    println!(
        "connected to {url} (subprotocol {:?})",
        response.subprotocol
    );

    ws.send("hello").await?;
    ws.send(Message::binary(vec![1, 2, 3])).await?;
    ws.ping(b"are you there?").await?;

    let mut answers = 0;
    while let Some(item) = ws.recv().await {
        match item? {
            Message::Text(text) => println!("text: {text}"),
            Message::Binary(bytes) => println!("binary: {bytes:?}"),
            Message::Ping(payload) => println!("ping: {payload:?} (answered)"),
            Message::Pong { payload, rtt } => println!("pong: {payload:?}, round trip {rtt:?}"),
            Message::Close(frame) => println!("closed by the server: {frame:?}"),
            other => println!("other: {other:?}"),
        }
        answers += 1;
        if answers == 3 {
            // Sends our close frame and waits for the server's.
            let closed = ws.close(CloseCode::NORMAL, "bye").await?;
            println!("closed: code {}, clean {}", closed.code(), closed.clean);
        }
    }
    Ok(())
}
