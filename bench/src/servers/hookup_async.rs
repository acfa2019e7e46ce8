//! hookup-async-std echo servers (compiled only with `--features hookup`): the same echo
//! loop as `hookup.rs` (`recv` then `send`), on hookup-async-std (futures-io + async-io)
//! instead of tokio, run on two executors:
//!
//! - `hookup-smol`: a `smol::LocalExecutor` driven by `smol::block_on` on the main thread —
//!   one thread that runs the tasks and the async-io reactor, like tokio's `current_thread`.
//! - `hookup-async-std`: async-std's global executor (`async_std::task::spawn`); the driver
//!   sets `ASYNC_STD_THREAD_COUNT=1`, so one worker thread runs the connections (and the
//!   reactor) while the main thread accepts in `block_on`.
//!
//! Same socket setup as the tokio impls: listen backlog 1024, TCP_NODELAY per connection.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite};

use crate::BoxError;

/// Names of the impls in this module.
pub(super) const NAMES: &[&str] = &["hookup-async-std", "hookup-smol"];

/// One accepted connection: handshake, echo every text/binary message, return on close.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> Result<(), BoxError> {
    let mut ws = hookup_async_std::accept(stream).await?;
    while let Some(msg) = ws.recv().await {
        let msg = msg?;
        if msg.is_data() {
            ws.send(msg).await?;
        }
    }
    Ok(())
}

fn report(r: Result<(), BoxError>) {
    if let Err(e) = r
        && super::verbose()
    {
        eprintln!("connection error: {e}");
    }
}

fn std_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(super::BACKLOG as i32)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Runs `impl_name` (one of [`NAMES`]) until the process is killed.
pub(super) fn run(impl_name: &str, addr: SocketAddr) -> Result<(), BoxError> {
    let listener = std_listener(addr)?;
    println!("LISTENING {}", listener.local_addr()?);
    match impl_name {
        "hookup-smol" => run_smol(listener),
        "hookup-async-std" => run_async_std(listener),
        other => Err(format!("not an async-std/smol impl: {other:?}").into()),
    }
}

fn run_smol(listener: std::net::TcpListener) -> Result<(), BoxError> {
    let listener = smol::net::TcpListener::try_from(listener)?;
    let ex = smol::LocalExecutor::new();
    smol::block_on(ex.run(async {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    ex.spawn(async move { report(serve(stream).await) })
                        .detach();
                }
                Err(e) => {
                    eprintln!("accept error: {e}");
                    smol::Timer::after(Duration::from_millis(10)).await;
                }
            }
        }
    }))
}

fn run_async_std(listener: std::net::TcpListener) -> Result<(), BoxError> {
    let listener = async_std::net::TcpListener::from(listener);
    async_std::task::block_on(async {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    async_std::task::spawn(async move { report(serve(stream).await) });
                }
                Err(e) => {
                    eprintln!("accept error: {e}");
                    async_std::task::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    })
}
