//! A chat room: the server broadcasts every text message to all clients;
//! the client sends lines from standard input and prints what others say.
//!
//! ```text
//! cargo run -p hookup-tokio --example chat server [ADDR]          # default 127.0.0.1:9002
//! cargo run -p hookup-tokio --example chat client [URL] [NAME]    # default ws://127.0.0.1:9002/chat
//! ```

use hookup_tokio::{CloseCode, MaybeTlsStream, Message, Server, WebSocket};
use tokio::io::AsyncBufReadExt;
use tokio::sync::broadcast;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("server") => server(args.get(1).map_or("127.0.0.1:9002", |s| s)).await,
        Some("client") => {
            let url = args.get(1).map_or("ws://127.0.0.1:9002/chat", |s| s);
            client(url, args.get(2).map_or("anonymous", |s| s)).await
        }
        _ => Err("usage: chat server [ADDR] | chat client [URL] [NAME]".into()),
    }
}

async fn server(addr: &str) -> Result<(), Box<dyn std::error::Error>> {
    let (room, _) = broadcast::channel::<Message>(256);
    let server = Server::new()
        .route("/chat", move |ws, _request| member(ws, room.clone()))
        .bind(addr)
        .await?;
    println!("chat room on ws://{}/chat", server.local_addr()?);
    server
        .run_until(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// One member: a task half forwards the room to the socket, the other
/// forwards the socket's text messages to the room.
async fn member(ws: WebSocket<MaybeTlsStream>, room: broadcast::Sender<Message>) {
    let mut from_room = room.subscribe();
    let (mut read, mut write) = ws.split();
    let outgoing = async move {
        // A member too slow to keep up skips messages (`Lagged`) instead of
        // holding the room back.
        loop {
            let msg = match from_room.recv().await {
                Ok(msg) => msg,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            };
            if write.send(msg).await.is_err() {
                break;
            }
        }
    };
    let incoming = async move {
        while let Some(Ok(msg)) = read.recv().await {
            if let Message::Text(_) = msg {
                let _ = room.send(msg);
            }
        }
    };
    // Whichever side ends first ends the member.
    tokio::select! {
        _ = outgoing => {}
        _ = incoming => {}
    }
}

async fn client(url: &str, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let ws = hookup_tokio::connect(url).await?;
    let (mut read, mut write) = ws.split();
    println!("joined {url} as {name}; type lines, Ctrl-D to leave");
    let printer = tokio::spawn(async move {
        while let Some(Ok(msg)) = read.recv().await {
            if let Some(text) = msg.as_text() {
                println!("{text}");
            }
        }
    });
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        write.send(format!("{name}: {line}")).await?;
    }
    write.close(CloseCode::NORMAL, "bye").await?;
    printer.await?;
    Ok(())
}
