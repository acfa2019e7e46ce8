//! Raw TCP echo: the reference ceiling (no framing, no handshake): read into a buffer,
//! write it back. The buffer starts at 8 KiB and doubles (up to 256 KiB) whenever a read
//! fills it, so idle connections stay small and bulk transfers need few syscalls.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::BoxError;

const MIN_BUF: usize = 8 * 1024;
const MAX_BUF: usize = 256 * 1024;

pub(super) async fn serve(mut stream: TcpStream) -> Result<(), BoxError> {
    let mut buf = vec![0u8; MIN_BUF];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
        if n == buf.len() && buf.len() < MAX_BUF {
            buf.resize(buf.len() * 2, 0);
        }
    }
}
