//! The Autobahn server under test for hookup-async-std, on async-std: a
//! WebSocket echo server on `ADDR`, any request path, messages up to
//! 64 MiB, one task per connection.
//!
//! Usage: `autobahn-server-async-std [--deflate [--deflate-threshold N]]
//! ADDR` (for example `127.0.0.1:9001`). With `--deflate` it accepts
//! permessage-deflate (cases 12.x and 13.x) from clients that offer it and
//! compresses every message of at least N bytes (default 0; kosoku's text
//! cases fail when an echo comes back uncompressed).
// The accept callback answers with an `http::Response` by value (the API's choice).
#![allow(clippy::result_large_err)]

use async_net::TcpListener;
use autobahn::ServerArgs;
use hookup_async_std::{Accept, accept_with};
use hookup_proto::http::HeaderValue;
use hookup_proto::http::header::SERVER;

const USAGE: &str = "usage: autobahn-server-async-std [--deflate [--deflate-threshold N]] ADDR";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = ServerArgs::parse(std::env::args().skip(1)).map_err(|e| format!("{e}\n{USAGE}"))?;
    let config = autobahn::server_config(args.deflate);
    async_std::task::block_on(async {
        let listener = TcpListener::bind(&args.addr).await?;
        eprintln!(
            "echo on ws://{}/ (any path){}",
            listener.local_addr()?,
            if args.deflate.is_some() {
                ", permessage-deflate"
            } else {
                ""
            }
        );
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
