//! A session in legacy `jsonProtocol` mode: rendering what is sent as
//! envelopes, and the envelopes received.

use std::time::Duration;

use super::{Session, SessionEvent, WireMode};
use crate::connection::Connection;
use crate::message::{Message, Utf8Bytes};
use crate::reliable::legacy::{self, Payload};
use crate::reliable::{MessageId, SendError, SessionError};

impl Session {
    pub(super) fn send_legacy(
        &mut self,
        payload: &Payload<'_>,
        ack: Option<Duration>,
    ) -> Result<MessageId, SendError> {
        let limits = self
            .conn
            .as_ref()
            .map_or(&self.connection, Connection::config);
        let max = limits.max_frame_size.min(limits.max_message_size);
        let mut inner = String::new();
        legacy::render_payload(payload, &mut inner);
        if inner.len().saturating_add(legacy::ACK_REQUEST_OVERHEAD) > max {
            return Err(SendError::TooLarge);
        }
        let WireMode::Legacy(l) = &mut self.wire else {
            return Err(SendError::Unsupported);
        };
        let id = l.push(&self.config, inner, ack)?;
        self.pump();
        Ok(id)
    }

    /// A message in legacy mode. Everything is acted on, even while the
    /// connection closes: nothing is ever sent again, so a message skipped
    /// here would be lost (an ack that can no longer be written leaves the
    /// sender with `AckFailed` or a drop: at-least-once).
    pub(super) fn on_legacy_message(&mut self, m: Message) {
        let WireMode::Legacy(l) = &mut self.wire else {
            return;
        };
        let text = match m {
            Message::Text(t) => t,
            other => {
                // The original sends binary messages as they are.
                self.events.push_back(SessionEvent::Message(other));
                return;
            }
        };
        let deliver = |payload: Payload<'_>| match payload {
            Payload::Text(std::borrow::Cow::Owned(s)) => Message::Text(Utf8Bytes::from(s)),
            Payload::Text(std::borrow::Cow::Borrowed(s)) => Message::Text(
                Utf8Bytes::from_validated(text.as_bytes().slice_ref(s.as_bytes())),
            ),
            Payload::Json(j) => Message::Text(Utf8Bytes::from_validated(
                text.as_bytes().slice_ref(j.as_str().as_bytes()),
            )),
        };
        match legacy::Envelope::parse(text.as_str()) {
            Ok(legacy::Envelope::Message(p)) => {
                self.events.push_back(SessionEvent::Message(deliver(p)));
            }
            Ok(legacy::Envelope::AckRequest { id, payload }) => {
                // Ack first (as the original): a failed write means the
                // connection is closing; the sender then sees no ack.
                if let Some(conn) = &mut self.conn {
                    let _ = conn.send_text(&legacy::render_ack(id));
                }
                if l.on_request(id) {
                    self.events
                        .push_back(SessionEvent::Message(deliver(payload)));
                }
            }
            Ok(legacy::Envelope::Ack { id }) => {
                if !l.on_ack(id) {
                    self.events
                        .push_back(SessionEvent::Error(SessionError::AckForUnsent(id)));
                }
            }
            Ok(legacy::Envelope::NeedsAck { .. }) => {
                self.events
                    .push_back(SessionEvent::Error(SessionError::Unexpected(
                        "needs_ack on the wire (a buffer-file envelope)",
                    )));
            }
            Err(e) => self
                .events
                .push_back(SessionEvent::Error(SessionError::Legacy(e))),
        }
    }
}
