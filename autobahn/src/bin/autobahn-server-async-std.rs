//! The Autobahn server under test for hookup-async-std, on async-std: a
//! WebSocket echo server on `ADDR`, any request path, messages up to
//! 64 MiB, one task per connection.
//!
//! Usage: `autobahn-server-async-std ADDR` (for example `127.0.0.1:9001`).
// The accept callback answers with an `http::Response` by value (the API's choice).
#![allow(clippy::result_large_err)]

use async_net::TcpListener;
use hookup_async_std::{Accept, Config, accept_with};
use hookup_proto::http::HeaderValue;
use hookup_proto::http::header::SERVER;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .ok_or("usage: autobahn-server-async-std ADDR")?;
    let mut config = Config::default();
    config.proto.max_message_size = 64 << 20;
    config.proto.max_frame_size = 64 << 20;
    async_std::task::block_on(async {
        let listener = TcpListener::bind(&addr).await?;
        eprintln!("echo on ws://{}/ (any path)", listener.local_addr()?);
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("accept: {e}");
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let config = config.clone();
            async_std::task::spawn(async move {
                let accepted = accept_with(tcp, &config, |_| {
                    Ok(Accept::new().header(SERVER, HeaderValue::from_static("hookup-async-std")))
                })
                .await;
                if let Ok(mut ws) = accepted {
                    autobahn::echo(&mut ws).await;
                }
            });
        }
    })
}
