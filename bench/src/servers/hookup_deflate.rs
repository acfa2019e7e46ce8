//! hookup with permessage-deflate (`bench/run.sh deflate`): hookup-tokio's server with
//! `config.proto.deflate = Some(DeflateConfig::default())` (level 1, threshold 128 B,
//! context takeover), as `hookup serve --deflate` sets it; same echo loop as `hookup.rs`.

// The accept callback's signature is hookup-tokio's (an `http::Response` by value).
#![allow(clippy::result_large_err)]

use tokio::net::TcpStream;

use crate::BoxError;

pub(super) async fn serve(stream: TcpStream) -> Result<(), BoxError> {
    let mut config = hookup_tokio::Config::default();
    config.proto.deflate = Some(hookup_tokio::proto::DeflateConfig::default());
    let mut ws =
        hookup_tokio::accept_with(stream, &config, |_| Ok(hookup_tokio::Accept::new())).await?;
    while let Some(msg) = ws.recv().await {
        let msg = msg?;
        if msg.is_data() {
            ws.send(msg).await?;
        }
    }
    Ok(())
}
