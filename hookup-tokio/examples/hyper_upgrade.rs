//! Serving WebSockets from a hyper (or axum) HTTP server: hyper parses the
//! request and performs the upgrade; hookup takes over the upgraded stream.
//!
//! ```sh
//! cargo run -p hookup-tokio --example hyper_upgrade      # listens on 127.0.0.1:9002
//! hookup connect ws://127.0.0.1:9002/ws
//! ```
//!
//! With axum the same applies: take the `Request`, call
//! `hyper::upgrade::on(&mut req)`, answer with the 101 built below, and wrap
//! the `Upgraded` stream in `TokioIo` and `WebSocket::from_upgraded`.

use std::convert::Infallible;

use hookup_tokio::proto::bytes::Bytes;
use hookup_tokio::proto::handshake::accept_key;
use hookup_tokio::proto::http::{Request, Response, StatusCode, header};
use hookup_tokio::{Config, Role, WebSocket};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

async fn handle(mut req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
    let is_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let (Some(key), true, "/ws") = (key, is_upgrade, req.uri().path()) else {
        let mut r = Response::new(Full::from("try a WebSocket at /ws\n"));
        *r.status_mut() = StatusCode::NOT_FOUND;
        return Ok(r);
    };
    // Once hyper has sent the 101, it hands over the raw connection.
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let mut ws = WebSocket::from_upgraded(
                    TokioIo::new(upgraded),
                    Role::Server,
                    &Config::default(),
                );
                while let Some(Ok(m)) = ws.recv().await {
                    if m.is_data() && ws.send(m).await.is_err() {
                        break;
                    }
                }
            }
            Err(e) => eprintln!("upgrade failed: {e}"),
        }
    });
    let response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept_key(key.as_bytes()))
        .body(Full::default())
        .expect("valid response");
    Ok(response)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:9002").await?;
    println!("listening on ws://127.0.0.1:9002/ws");
    loop {
        let (tcp, _) = listener.accept().await?;
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service_fn(handle))
                .with_upgrades();
            if let Err(e) = conn.await {
                eprintln!("connection error: {e}");
            }
        });
    }
}
