//! The message engine of a session in legacy `jsonProtocol` mode: outgoing
//! messages with their ack requests and deadlines, and the receive side's
//! acks and per-connection duplicate suppression. Nothing is replayed:
//! the original protocol has no resume.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use super::legacy;
use super::{DeliveryOutcome, DropReason, MessageId, Overflow, SendError, SessionConfig};
use crate::connection::Connection;
use crate::message::MessageKind;

/// Ack request ids remembered per connection for duplicate suppression.
pub(crate) const DEDUP_WINDOW: usize = 4096;

#[derive(Debug)]
struct Out {
    id: MessageId,
    /// The rendered `text`/`json` envelope.
    inner: String,
    ack: Option<Duration>,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct LegacyChannel {
    /// Messages not written yet.
    queue: VecDeque<Out>,
    queued_bytes: usize,
    next_id: u64,
    /// The last ack request id used on this connection (ids start at 1 on
    /// every connection, as the original's).
    last_wire_id: u64,
    /// Ack requests written and not resolved: wire id → (message, deadline;
    /// none when it lies beyond what `Instant` can represent).
    awaiting: BTreeMap<u64, (MessageId, Option<Instant>)>,
    deadlines: BTreeSet<(Instant, u64)>,
    /// Ack request ids delivered on this connection (the newest
    /// `DEDUP_WINDOW`), and the highest id forgotten since.
    delivered: BTreeSet<u64>,
    forgotten: Option<u64>,
    outcomes: VecDeque<(MessageId, DeliveryOutcome)>,
}

impl LegacyChannel {
    pub(crate) fn new() -> Self {
        Self {
            queue: VecDeque::new(),
            queued_bytes: 0,
            next_id: 1,
            last_wire_id: 0,
            awaiting: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            delivered: BTreeSet::new(),
            forgotten: None,
            outcomes: VecDeque::new(),
        }
    }

    /// Messages without an outcome yet: queued or awaiting their ack.
    pub(crate) fn unresolved(&self) -> usize {
        self.queue.len() + self.awaiting.len()
    }

    /// Whether messages wait to be written.
    pub(crate) fn has_unwritten(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Payload bytes of queued messages.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    pub(crate) fn poll_outcome(&mut self) -> Option<(MessageId, DeliveryOutcome)> {
        self.outcomes.pop_front()
    }

    /// Queues a rendered `text`/`json` envelope, applying the bounds.
    pub(crate) fn push(
        &mut self,
        config: &SessionConfig,
        inner: String,
        ack: Option<Duration>,
    ) -> Result<MessageId, SendError> {
        if inner.len() > config.max_outbox_bytes {
            return Err(SendError::TooLarge);
        }
        while self.unresolved() >= config.max_outbox_messages
            || self.queued_bytes + inner.len() > config.max_outbox_bytes
        {
            if config.overflow != Overflow::DropOldest || self.queue.is_empty() {
                return Err(SendError::Full);
            }
            let o = self.queue.pop_front().expect("not empty");
            self.queued_bytes -= o.inner.len();
            self.outcomes
                .push_back((o.id, DeliveryOutcome::Dropped(DropReason::Overflow)));
        }
        let id = MessageId(self.next_id);
        self.next_id += 1;
        self.queued_bytes += inner.len();
        self.queue.push_back(Out { id, inner, ack });
        Ok(id)
    }

    /// Writes queued messages while the connection's output stays under
    /// `window` bytes (one message at least when nothing is queued).
    pub(crate) fn write(&mut self, conn: &mut Connection, now: Instant, window: usize) {
        let window = window.max(1);
        while conn.is_open() && conn.transmit_len() < window {
            let Some(out) = self.queue.front() else {
                return;
            };
            let sent = match out.ack {
                None => conn.send_text(&out.inner),
                Some(_) => {
                    let prefix = legacy::ack_request_prefix(self.last_wire_id + 1);
                    conn.send_parts(
                        MessageKind::Text,
                        &[prefix.as_bytes(), out.inner.as_bytes(), b"}"],
                    )
                }
            };
            if sent.is_err() {
                return;
            }
            let out = self.queue.pop_front().expect("front exists");
            self.queued_bytes -= out.inner.len();
            match out.ack {
                None => self.outcomes.push_back((out.id, DeliveryOutcome::Written)),
                Some(d) => {
                    self.last_wire_id += 1;
                    let deadline = now.checked_add(d);
                    self.awaiting.insert(self.last_wire_id, (out.id, deadline));
                    if let Some(t) = deadline {
                        self.deadlines.insert((t, self.last_wire_id));
                    }
                }
            }
        }
    }

    /// An ack for `wire_id`: `false` when no ack request with that id was
    /// ever written on this connection.
    pub(crate) fn on_ack(&mut self, wire_id: u64) -> bool {
        if wire_id == 0 || wire_id > self.last_wire_id {
            return false;
        }
        // Absent: already resolved (a late ack after its deadline, or a
        // duplicate ack): nothing to do.
        if let Some((id, deadline)) = self.awaiting.remove(&wire_id) {
            if let Some(t) = deadline {
                self.deadlines.remove(&(t, wire_id));
            }
            self.outcomes.push_back((id, DeliveryOutcome::Acked));
        }
        true
    }

    /// An ack request `wire_id` arrived: whether to deliver it (`false` for
    /// a duplicate of one delivered on this connection).
    pub(crate) fn on_request(&mut self, wire_id: u64) -> bool {
        if self.forgotten.is_some_and(|f| wire_id <= f) || !self.delivered.insert(wire_id) {
            return false;
        }
        if self.delivered.len() > DEDUP_WINDOW
            && let Some(old) = self.delivered.pop_first()
        {
            self.forgotten = Some(self.forgotten.map_or(old, |f| f.max(old)));
        }
        true
    }

    /// The connection ended: ack requests in flight are dropped (the
    /// protocol cannot resume them), ids start again. Queued messages stay
    /// for the next connection.
    pub(crate) fn on_disconnect(&mut self) {
        self.drop_awaiting(DropReason::Disconnected);
    }

    fn drop_awaiting(&mut self, reason: DropReason) {
        for (_, (id, _)) in std::mem::take(&mut self.awaiting) {
            self.outcomes
                .push_back((id, DeliveryOutcome::Dropped(reason)));
        }
        self.deadlines.clear();
        self.last_wire_id = 0;
        self.delivered.clear();
        self.forgotten = None;
    }

    /// Resolves everything without an outcome as dropped.
    pub(crate) fn drop_all(&mut self, reason: DropReason) {
        self.drop_awaiting(reason);
        for o in self.queue.drain(..) {
            self.outcomes
                .push_back((o.id, DeliveryOutcome::Dropped(reason)));
        }
        self.queued_bytes = 0;
    }

    /// The next ack deadline.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    /// Fires ack deadlines that passed.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(t, wire_id)) = self.deadlines.first() {
            if t > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some((id, _)) = self.awaiting.remove(&wire_id) {
                self.outcomes.push_back((id, DeliveryOutcome::AckFailed));
            }
        }
    }
}
