//! soketto (permessage-deflate peer, `bench/run.sh deflate`): its server handshake with
//! the `Deflate` extension (`deflate` feature; soketto compresses at level 1, a fresh
//! compressor per message), over tokio-util's futures-io compat; `receive_data` then
//! `send_text`/`send_binary` + `flush` per message.

use soketto::connection::Mode;
use soketto::extension::deflate::Deflate;
use soketto::handshake::{ClientRequest, Server, server::Response};
use soketto::{Data, connection::Error};
use tokio::net::TcpStream;
use tokio_util::compat::TokioAsyncReadCompatExt;

use crate::BoxError;

pub(super) async fn serve(stream: TcpStream) -> Result<(), BoxError> {
    let mut server = Server::new(stream.compat());
    server.add_extension(Box::new(Deflate::new(Mode::Server)));
    let req: ClientRequest<'_> = server.receive_request().await?;
    let key = req.key();
    server
        .send_response(&Response::Accept {
            key,
            protocol: None,
        })
        .await?;
    let (mut tx, mut rx) = server.into_builder().finish();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match rx.receive_data(&mut buf).await {
            Ok(Data::Text(_)) => tx.send_text(std::str::from_utf8(&buf)?).await?,
            Ok(Data::Binary(_)) => tx.send_binary(&buf).await?,
            Err(Error::Closed) => break,
            Err(e) => return Err(e.into()),
        }
        tx.flush().await?;
    }
    Ok(())
}
