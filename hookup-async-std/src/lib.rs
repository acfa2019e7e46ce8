//! # hookup-async-std
//!
//! WebSocket client and server for [async-std] and [smol] — for any
//! executor, in fact — built on the sans-IO state machine [`hookup_proto`].
//!
//! It is written on the runtime-neutral crates underneath both: the
//! [`futures-io`] traits, [async-io] for the reactor and timers, and
//! [async-net] for TCP (TLS through [futures-rustls]), **not** on
//! async-std's own types. So the same code runs unchanged under async-std,
//! under smol, or under any executor that polls its futures (async-io
//! drives its reactor on its own thread when nothing blocks on it). The
//! runtime-independent driver is [`hookup_driver`], shared with
//! `hookup-tokio`: the API is the same as there.
//!
//! **async-std's status.** async-std has been discontinued upstream in
//! favour of smol, and [RUSTSEC-2025-0052] marks it unmaintained. This crate
//! does not depend on it (only its tests do, to prove it still works there):
//! applications on async-std can use it today and move to smol without
//! changing any of this crate's calls.
//!
//! ```no_run
//! # async fn run() -> hookup_async_std::Result<()> {
//! let mut ws = hookup_async_std::connect("ws://127.0.0.1:9001/echo").await?;
//! ws.send("hello").await?;
//! if let Some(msg) = ws.recv().await {
//!     println!("{:?}", msg?);
//! }
//! ws.close(hookup_async_std::CloseCode::NORMAL, "bye").await?;
//! # Ok(()) }
//! // smol::block_on(run()) or async_std::task::block_on(run())
//! ```
//!
//! * [`connect`]/[`connect_with`] for `ws://` and `wss://` (feature `tls`,
//!   on by default, rustls with ring).
//! * [`accept`]/[`accept_with`] for any `futures-io` stream, and [`Server`]
//!   to bind a listener, route by path and answer plain HTTP. It needs no
//!   executor: connections run inside [`BoundServer::run`], or as tasks of
//!   yours with [`Server::spawn_with`].
//! * [`WebSocket`] is a `Stream` of [`Message`]s and a `Sink` of them, with
//!   `recv`/`send` (cancel-safe `recv`, automatic pongs), and
//!   [`WebSocket::split`](hookup_driver::WebSocket::split) into halves for
//!   two tasks.
//! * [`reliable`]: reliable messaging (`hookup.v1`) — a client that
//!   reconnects and resumes by itself, with an optional journal, and the
//!   server side of sessions; the same API as `hookup_tokio::reliable`.
//! * permessage-deflate (RFC 7692), opt-in: set `proto.deflate` of the
//!   [`Config`] (a server accepts clients' offers) or of
//!   [`ClientConfig`]'s `ws` (a client offers it) to a
//!   [`DeflateConfig`](proto::DeflateConfig). The Autobahn compression cases
//!   (12.\*, 13.\*) pass for both roles.
//!
//! [async-std]: https://docs.rs/async-std
//! [smol]: https://docs.rs/smol
//! [`futures-io`]: https://docs.rs/futures-io
//! [async-io]: https://docs.rs/async-io
//! [async-net]: https://docs.rs/async-net
//! [futures-rustls]: https://docs.rs/futures-rustls
//! [RUSTSEC-2025-0052]: https://rustsec.org/advisories/RUSTSEC-2025-0052.html
#![deny(missing_docs)]

mod client;
pub mod reliable;
mod rt;
mod server;
mod stream;
#[cfg(feature = "tls")]
pub mod tls;

pub use hookup_driver;
pub use hookup_proto as proto;
pub use hookup_proto::{
    Accept, ClientRequest, CloseCode, CloseFrame, Closed, Request, Response, Role,
};

pub use client::{client, connect, connect_with};
pub use hookup_driver::{ClientConfig, Error, Limits, Message, Result};
pub use rt::{AsyncIo, Config, ReadHalf, WebSocket, WriteHalf};
pub use server::{
    BoundServer, ConnectionFuture, HttpResponse, Server, accept, accept_request, accept_with,
    text_response,
};
pub use stream::MaybeTlsStream;
