//! fastwebsockets, following its own `examples/echo_server.rs`: hyper http1 connection with
//! upgrades, `fastwebsockets::upgrade::upgrade`, the websocket handled in a spawned task via
//! `FragmentCollector` (auto pong / auto close on, the defaults), `write_frame` per frame.

use fastwebsockets::{FragmentCollector, OpCode, WebSocketError, upgrade};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokio::net::TcpStream;

use crate::BoxError;

async fn handle_client(fut: upgrade::UpgradeFut) -> Result<(), BoxError> {
    let mut ws = FragmentCollector::new(fut.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

async fn server_upgrade(
    mut req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;
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
