//! yawc (permessage-deflate peer, `bench/run.sh deflate`): hyper http1 upgrade like its
//! docs, `Options::default().with_low_latency_compression()` (deflate level 1, the level
//! hookup uses by default; context takeover both ways), `next` then `send` per message.
//! Built with yawc's `zlib` feature: flate2 on zlib-rs, the backend hookup uses.

use futures::{SinkExt, StreamExt};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokio::net::TcpStream;
use yawc::{Frame, OpCode, Options, UpgradeFut, WebSocket};

use crate::BoxError;

async fn handle_client(fut: UpgradeFut) -> Result<(), BoxError> {
    let mut ws = fut.await?;
    while let Some(frame) = ws.next().await {
        match frame.opcode() {
            OpCode::Text => ws.send(Frame::text(frame.into_payload())).await?,
            OpCode::Binary => ws.send(Frame::binary(frame.into_payload())).await?,
            OpCode::Close => break,
            _ => {}
        }
    }
    Ok(())
}

async fn server_upgrade(mut req: Request<Incoming>) -> yawc::Result<Response<Empty<Bytes>>> {
    let options = Options::default().with_low_latency_compression();
    let (response, fut) = WebSocket::upgrade_with_options(&mut req, options)?;
    super::spawn_conn(handle_client(fut));
    Ok(response)
}

pub(super) async fn serve(stream: TcpStream) -> Result<(), BoxError> {
    let io = hyper_util::rt::TokioIo::new(stream);
    http1::Builder::new()
        .serve_connection(io, service_fn(server_upgrade))
        .with_upgrades()
        .await?;
    Ok(())
}
