//! # hookup-proto
//!
//! A sans-IO implementation of the WebSocket protocol (RFC 6455): the opening
//! handshake for clients and servers, frames, messages, the closing handshake
//! and ping/pong — as a state machine that consumes bytes and timer events
//! and produces bytes and events.
//!
//! ## The contract
//!
//! * **No I/O.** Nothing here opens a socket, spawns a task or blocks. The
//!   caller moves bytes between a [`Connection`] and its transport.
//! * **No clock.** Every `Instant` is passed in (`handle_*(now)`, `close(now, ..)`,
//!   `send_ping(now, ..)`); time only moves forward. Tests run on a fake clock.
//! * **Seeded randomness.** Masking keys and handshake nonces come from a
//!   ChaCha20 CSPRNG seeded with [`Config::rng_seed`]: 32 bytes from the
//!   OS in production (the drivers fill it in), a fixed seed for
//!   reproducible runs. The core never reads OS entropy itself.
//! * **Caller-owned buffers.** Read straight into [`Connection::read_buf`]
//!   (frames are unmasked in place and delivered as [`bytes::Bytes`] views
//!   of it); take output with [`Connection::poll_transmit`] into your own
//!   `Vec<u8>` — all frames queued since the last call in one buffer, for one
//!   write — or with [`Connection::transmit_vectored`] for a vectored write
//!   that sends large payloads without copying them.
//! * **Errors by fault.** [`ProtocolError`] (the peer broke the protocol;
//!   carries the close code), [`HandshakeError`] (carries the HTTP status),
//!   [`UsageError`] (local misuse).
//!
//! ## Drain order
//!
//! After **every** input (`handle_read`, `handle_input`, `handle_eof`,
//! `handle_timeout`) and every command (`send_*`, `close`, `accept`,
//! `reject`):
//!
//! 1. drain [`Connection::poll_event`] until `None` (replies such as pongs
//!    and close echoes are queued while events are produced);
//! 2. write out [`Connection::poll_transmit`];
//! 3. re-arm your timer at [`Connection::poll_timeout`].
//!
//! After [`Event::Closed`] write out what is left to transmit, then close
//! the transport. Stop reading while [`Connection::wants_read`] is false.
//!
//! ## States
//!
//! | state | entered on | left on |
//! |---|---|---|
//! | `AwaitingResponse` (client) | [`Connection::client`] | valid 101 → `Open`; bad response, EOF or timeout → `Closed` |
//! | `AwaitingRequest` (server) | [`Connection::server`] | request head → `AwaitingDecision`; invalid head → HTTP error, `Closed` |
//! | `AwaitingDecision` (server) | [`Event::Request`] | `accept` → `Open`; `reject` → `Closed` |
//! | `Open` | handshake done | `close` → `ClosingLocal`; peer close → `Closed` (server) / `ClosingRemote` (client); protocol error or EOF → `Closed` |
//! | `ClosingLocal` | `close` | peer close → `Closed` / `ClosingRemote`; close timeout → `Closed` |
//! | `ClosingRemote` (client) | close frames exchanged | EOF or close timeout → `Closed` |
//! | `Closed` | | |
//!
//! ## A run loop
//!
//! A client and a server driven in memory; a real adapter does the same with
//! a socket and a timer.
//!
//! ```
//! use std::time::Instant;
//! use hookup_proto::{Accept, ClientRequest, Config, Connection, Event, Message};
//!
//! let now = Instant::now(); // the caller's clock, not the library's
//! let request = ClientRequest::new("ws://example.com/chat").unwrap();
//! let mut client = Connection::client(&request, Config::default(), now);
//! let mut server = Connection::server(Config::default(), now);
//! let (mut wire, mut got) = (Vec::new(), Vec::new());
//!
//! client.send_text("hello").unwrap_err(); // not open yet: a UsageError
//! for _ in 0..4 {
//!     // client → server
//!     wire.clear();
//!     client.poll_transmit(&mut wire);
//!     server.handle_input(now, &wire);
//!     while let Some(ev) = server.poll_event() {
//!         match ev {
//!             Event::Request(req) => {
//!                 assert_eq!(req.path(), "/chat");
//!                 server.accept(Accept::new()).unwrap();
//!             }
//!             Event::Message(m) => server.send(m).unwrap(), // echo
//!             _ => {}
//!         }
//!     }
//!     // server → client
//!     wire.clear();
//!     server.poll_transmit(&mut wire);
//!     client.handle_input(now, &wire);
//!     while let Some(ev) = client.poll_event() {
//!         match ev {
//!             Event::Connected(_) => client.send_text("hello").unwrap(),
//!             Event::Message(m) => got.push(m),
//!             _ => {}
//!         }
//!     }
//! }
//! assert_eq!(got, [Message::text("hello")]);
//! ```
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod close;
mod config;
mod connection;
pub mod deflate;
mod endpoint;
mod error;
mod event;
pub mod frame;
pub mod handshake;
mod limits;
pub mod mask;
mod message;
pub mod reliable;
mod rng;
mod utf8;

pub use bytes;
pub use http;

pub use close::{CloseCode, CloseFrame};
pub use config::Config;
pub use connection::{Connection, Role, State};
pub use deflate::{DeflateConfig, DeflateParams};
pub use endpoint::Endpoint;
pub use error::{Error, HandshakeError, ProtocolError, UsageError};
pub use event::{Closed, Event, Initiator};
pub use handshake::{Accept, ClientRequest, Request, Response};
pub use limits::InputBudget;
pub use message::{Fragment, Message, MessageKind, Utf8Bytes};
