//! # hookup-tokio
//!
//! WebSocket client and server for [tokio], built on the sans-IO state
//! machine [`hookup_proto`]. This crate connects, listens and does TLS; the
//! runtime-independent driver in [`hookup_driver`] moves bytes between the
//! sockets and the state machine with tokio's I/O and timers (through
//! [`Tokio`]), and every protocol decision is made in `hookup-proto`.
//!
//! ```no_run
//! # async fn run() -> hookup_tokio::Result<()> {
//! let mut ws = hookup_tokio::connect("ws://127.0.0.1:9001/echo").await?;
//! ws.send("hello").await?;
//! if let Some(msg) = ws.recv().await {
//!     println!("{:?}", msg?);
//! }
//! ws.close(hookup_tokio::CloseCode::NORMAL, "bye").await?;
//! # Ok(()) }
//! ```
//!
//! * [`connect`]/[`connect_with`] for `ws://` and `wss://` (feature `tls`,
//!   on by default, rustls).
//! * [`accept`]/[`accept_with`] for any `AsyncRead + AsyncWrite` stream, and
//!   [`Server`] to bind a listener, route by path and answer plain HTTP.
//! * [`WebSocket`] is a `Stream` of [`Message`]s and a `Sink` of them, with
//!   `recv`/`send`, and [`WebSocket::split`] into halves for two tasks.
//! * Hyper/axum upgrades: [`WebSocket::from_upgraded`] (see the
//!   `hyper_upgrade` example).
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
pub use rt::{Config, ReadHalf, Tokio, WebSocket, WriteHalf};
pub use server::{
    BoundServer, ConnectionFuture, HttpResponse, Server, accept, accept_request, accept_with,
    text_response,
};
pub use stream::MaybeTlsStream;

/// The README's code, compiled as a doc test.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
