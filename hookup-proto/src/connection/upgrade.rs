//! The opening handshake, as the connection drives it: the glue between
//! the connection's states and `crate::handshake` (parsing and encoding
//! the HTTP heads) and `crate::deflate` (negotiating the extension).

use base64::Engine as _;
use bytes::Buf;
use http::StatusCode;
use http::header::HeaderMap;

use super::timers::Timer;
use super::{Connection, Role, State};
use crate::deflate::{self, Deflate};
use crate::error::{Error, HandshakeError, UsageError};
use crate::event::Event;
use crate::handshake::{self, Accept, ClientRequest, Request};

/// Where the handshake stands.
#[derive(Debug)]
pub(super) enum Handshake {
    Client {
        accept: String,
        protocols: Vec<String>,
        /// Whether permessage-deflate was offered.
        deflate: bool,
    },
    Server {
        pending: Option<Box<Request>>,
    },
    Done,
}

impl Connection {
    /// Queues the upgrade request and remembers what the response must
    /// answer (the accept key, the offered subprotocols and extension).
    pub(super) fn start_client_handshake(&mut self, request: &ClientRequest) {
        let key = request.fixed_key().unwrap_or_else(|| {
            let mut k = [0u8; 16];
            self.rng.fill(&mut k);
            k
        });
        let key = base64::engine::general_purpose::STANDARD.encode(key);
        let deflate = request.encode_with(&key, self.config.deflate.as_ref(), &mut self.out.tail);
        self.out.len = self.out.tail.len();
        self.handshake = Handshake::Client {
            accept: handshake::accept_key(key.as_bytes()),
            protocols: request.protocols().to_vec(),
            deflate,
        };
    }

    // ------------------------------------------------------------ commands

    /// (Server) Accepts the request shown in [`Event::Request`].
    pub fn accept(&mut self, accept: Accept) -> Result<(), UsageError> {
        let Handshake::Server { pending } = &mut self.handshake else {
            return Err(UsageError::NoPendingRequest);
        };
        let Some(request) = pending.take() else {
            return Err(UsageError::NoPendingRequest);
        };
        let mut accept = accept;
        let deflate = self
            .config
            .deflate
            .as_ref()
            .filter(|_| {
                !accept
                    .headers
                    .contains_key(http::header::SEC_WEBSOCKET_EXTENSIONS)
            })
            .and_then(|config| deflate::server_accept(request.headers(), config));
        if let Some((_, value)) = &deflate {
            accept
                .headers
                .append(http::header::SEC_WEBSOCKET_EXTENSIONS, value.clone());
        }
        let start = self.out.tail.len();
        if let Err(e) = handshake::encode_accept(&request, &accept, &mut self.out.tail) {
            self.out.tail.truncate(start);
            *pending = Some(request);
            return Err(e);
        }
        self.out.len += self.out.tail.len() - start;
        self.handshake = Handshake::Done;
        self.timers[Timer::Handshake as usize] = None;
        self.state = State::Open;
        self.deflate =
            deflate.map(|(p, _)| Box::new(Deflate::new(p, self.config.deflate.as_ref())));
        self.push_event(Event::Connected(handshake::Response {
            subprotocol: accept.subprotocol,
            headers: accept.headers,
        }));
        // Frames that arrived with the request.
        self.process_frames();
        self.check_limits();
        Ok(())
    }

    /// (Server) Answers the request shown in [`Event::Request`] with a
    /// non-101 response (any status, headers and body), then closes.
    pub fn reject(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), UsageError> {
        match &mut self.handshake {
            Handshake::Server { pending } if pending.is_some() => *pending = None,
            _ => return Err(UsageError::NoPendingRequest),
        }
        let start = self.out.tail.len();
        handshake::encode_response(status, headers, body, &mut self.out.tail);
        self.out.len += self.out.tail.len() - start;
        self.handshake = Handshake::Done;
        self.finish(true, None);
        Ok(())
    }

    // ------------------------------------------------------------ internals

    pub(super) fn process_response(&mut self) {
        let Handshake::Client {
            accept,
            protocols,
            deflate,
        } = &self.handshake
        else {
            return;
        };
        let offered = self.config.deflate.as_ref().filter(|_| *deflate);
        match handshake::parse_response(
            &self.recv,
            accept,
            protocols,
            offered,
            self.config.max_head_size,
        ) {
            Ok(None) => {}
            Ok(Some((response, n, params))) => {
                self.deflate = params.map(|p| Box::new(Deflate::new(p, offered)));
                self.recv.advance(n);
                self.handshake = Handshake::Done;
                self.timers[Timer::Handshake as usize] = None;
                self.state = State::Open;
                self.push_event(Event::Connected(response));
                self.process_frames();
            }
            Err(e) => self.fail_handshake(e),
        }
    }

    pub(super) fn process_request(&mut self) {
        match handshake::parse_request(&self.recv, self.config.max_head_size) {
            Ok(None) => {}
            Ok(Some((request, n))) => {
                self.recv.advance(n);
                self.handshake = Handshake::Server {
                    pending: Some(Box::new(request.clone())),
                };
                self.state = State::AwaitingDecision;
                self.push_event(Event::Request(request));
            }
            Err(e) => self.fail_handshake(e),
        }
    }

    pub(super) fn fail_handshake(&mut self, err: HandshakeError) {
        if self.role == Role::Server && self.state == State::AwaitingRequest {
            let start = self.out.tail.len();
            handshake::encode_error_response(&err, &mut self.out.tail);
            self.out.len += self.out.tail.len() - start;
        }
        self.finish(false, Some(Error::Handshake(err)));
    }
}
