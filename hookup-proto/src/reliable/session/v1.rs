//! The `hookup.v1` envelopes a session receives: the greeting goes to
//! the role's side (`client`, `server`), DATA and ACK to the channel.

use bytes::{Buf as _, Bytes};

use super::{Phase, Session, SessionEvent};
use crate::reliable::SessionError;
use crate::reliable::wire::{self, Envelope};

impl Session {
    /// A binary message on a `hookup.v1` connection: one envelope. While
    /// the connection closes (`open` false) only ACKs are acted on.
    pub(super) fn on_envelope(&mut self, mut bytes: Bytes, open: bool) -> Result<(), SessionError> {
        let envelope = Envelope::decode(&bytes)?;
        if !open && !matches!(envelope, Envelope::Ack { .. }) {
            return Ok(());
        }
        match envelope {
            Envelope::Hello {
                version,
                session,
                received,
                proof,
            } => self.on_hello(version, session, received, proof),
            Envelope::Welcome {
                resumed,
                session,
                received,
                key,
            } => self.on_welcome(resumed, session, received, key),
            Envelope::Data {
                text, ack_now, seq, ..
            } => {
                if self.phase != Phase::Established {
                    return Err(SessionError::Unexpected(
                        "DATA before the session is established",
                    ));
                }
                // The payload is the rest of `bytes`: handed on without
                // taking a new reference.
                bytes.advance(wire::DATA_HEADER_LEN);
                if let Some(m) = self
                    .channel
                    .on_data(text, ack_now, seq, bytes)
                    .inspect_err(|_| self.restore_failed())?
                {
                    self.restored = false;
                    self.events.push_back(SessionEvent::Message(m));
                }
                Ok(())
            }
            Envelope::Ack { seq } => {
                if self.phase != Phase::Established {
                    return Err(SessionError::Unexpected(
                        "ACK before the session is established",
                    ));
                }
                self.channel
                    .on_ack(seq)
                    .inspect_err(|_| self.restore_failed())
            }
        }
    }
}
