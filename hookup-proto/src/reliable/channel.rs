//! The sequencing engine shared by both ends of a session: the outbox of
//! unacknowledged messages with their outcomes and deadlines, and the
//! receive side's in-order delivery, duplicate suppression and acks.
//!
//! A `Channel` outlives connections: a session moves it from one
//! [`Connection`] to the next and replays what the peer has not
//! acknowledged.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::wire;
use super::{
    DeliveryOutcome, DropReason, MessageId, Overflow, SendError, SessionConfig, SessionError,
};
use crate::connection::Connection;
use crate::message::{Message, MessageKind, Utf8Bytes};

#[derive(Debug)]
struct Out {
    id: MessageId,
    /// Assigned when first written, so dropping an unwritten message never
    /// leaves a hole in the sequence.
    seq: Option<u64>,
    /// Written to some connection at least once. Unlike `seq` this survives
    /// a session reset: it decides whether the message may still be dropped
    /// for overflow and whether its ack deadline is armed.
    written: bool,
    text: bool,
    payload: Bytes,
    ack: Option<Duration>,
    resolved: bool,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Channel {
    outbox: VecDeque<Out>,
    out_bytes: usize,
    /// Index in `outbox` of the next message to write on this connection.
    replay_pos: usize,
    next_id: u64,
    /// The last sequence number assigned.
    last_seq: u64,
    peer_acked: u64,
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Highest sequence read in order: what is beyond it is new, what is
    /// not is a duplicate. Ahead of `delivered` by the messages waiting in
    /// the session's event queue.
    recv_seq: u64,
    /// Highest sequence the application has taken from the session: only
    /// this much counts as received (ACKs, greetings, parked state), so a
    /// message read but never taken is sent again by the peer.
    delivered: u64,
    /// Sequences in `delivered + 1..=recv_seq` whose DATA asked for an
    /// immediate ACK, in order.
    ack_now_seqs: VecDeque<u64>,
    /// Highest sequence covered by an ACK or greeting we sent.
    acked_upto: u64,
    recv_since_ack: u32,
    /// An ACK was queued on the connection and may not be written out yet.
    pub(crate) ack_queued: bool,
    ack_due: Option<Instant>,
    ack_now: bool,
    outcomes: VecDeque<(MessageId, DeliveryOutcome)>,
    /// Ids removed from the outbox by acks, when someone listens for them.
    pub(crate) released: Option<VecDeque<MessageId>>,
    /// Messages removed from the outbox by acks, in all (never reset).
    pub(crate) released_count: u64,
    /// The peer resumed with a view of the session that contradicts this
    /// side's (see [`on_resume`](Self::on_resume)): resuming it again would
    /// fail the same way, so it starts over (see `Session` and
    /// `SessionStore::open`).
    pub(crate) conflicted: bool,
}

impl Channel {
    pub(crate) fn new() -> Self {
        Self {
            outbox: VecDeque::new(),
            out_bytes: 0,
            replay_pos: 0,
            next_id: 1,
            last_seq: 0,
            peer_acked: 0,
            deadlines: BinaryHeap::new(),
            recv_seq: 0,
            delivered: 0,
            ack_now_seqs: VecDeque::new(),
            acked_upto: 0,
            recv_since_ack: 0,
            ack_queued: false,
            ack_due: None,
            ack_now: false,
            outcomes: VecDeque::new(),
            released: None,
            released_count: 0,
            conflicted: false,
        }
    }

    /// Messages not yet acknowledged by the peer.
    pub(crate) fn unacked(&self) -> usize {
        self.outbox.len()
    }

    /// Whether messages wait to be written on this connection.
    pub(crate) fn has_unwritten(&self) -> bool {
        self.replay_pos < self.outbox.len()
    }

    /// Payload bytes not yet acknowledged.
    pub(crate) fn unacked_bytes(&self) -> usize {
        self.out_bytes
    }

    /// Highest sequence received in order and taken by the application:
    /// what the session counts as received.
    pub(crate) fn received(&self) -> u64 {
        self.delivered
    }

    /// What to tell the peer in a greeting (HELLO, WELCOME): what was
    /// received. The greeting acknowledges it.
    pub(crate) fn greeting(&mut self) -> u64 {
        self.acked_upto = self.delivered;
        self.delivered
    }

    /// Messages read but not yet taken by the application.
    pub(crate) fn undelivered(&self) -> u64 {
        self.recv_seq - self.delivered
    }

    /// The application took the next message read: it now counts as
    /// received. Returns whether an ACK is due at once.
    pub(crate) fn on_delivered(&mut self, config: &SessionConfig, now: Instant) -> bool {
        if self.delivered >= self.recv_seq {
            return false;
        }
        self.delivered += 1;
        let flagged = self.ack_now_seqs.front() == Some(&self.delivered);
        if flagged {
            self.ack_now_seqs.pop_front();
        }
        self.recv_since_ack = self.recv_since_ack.saturating_add(1);
        if flagged || self.recv_since_ack >= config.ack_every {
            self.ack_now = true;
        } else if self.ack_due.is_none() {
            self.ack_due = now.checked_add(config.ack_delay);
        }
        self.ack_now
    }

    /// Messages taken by the application since the last ACK was written.
    pub(crate) fn taken_since_ack(&self) -> u32 {
        self.recv_since_ack
    }

    /// Forgets the messages read but not taken by the application (their
    /// events are discarded with the session): the peer, never told they
    /// arrived, sends them again. Returns how many there were.
    pub(crate) fn undeliver(&mut self) -> u64 {
        let n = self.undelivered();
        self.recv_seq = self.delivered;
        self.ack_now_seqs.clear();
        n
    }

    pub(crate) fn poll_outcome(&mut self) -> Option<(MessageId, DeliveryOutcome)> {
        self.outcomes.pop_front()
    }

    fn resolve(&mut self, idx: usize, outcome: DeliveryOutcome) {
        let out = &mut self.outbox[idx];
        if !out.resolved {
            out.resolved = true;
            self.outcomes.push_back((out.id, outcome));
        }
    }

    /// Queues a message, applying the bounds.
    #[inline]
    pub(crate) fn push(
        &mut self,
        config: &SessionConfig,
        kind: MessageKind,
        payload: Bytes,
        ack: Option<Duration>,
    ) -> Result<MessageId, SendError> {
        if payload.len() > config.max_outbox_bytes {
            return Err(SendError::TooLarge);
        }
        while self.outbox.len() >= config.max_outbox_messages
            || self.out_bytes + payload.len() > config.max_outbox_bytes
        {
            // Only a message that was never written can be dropped without
            // leaving a hole in the sequence the peer expects (or, after a
            // session reset, without silently losing a message that was
            // already reported `Written`).
            let victim = match config.overflow {
                Overflow::Reject => None,
                Overflow::DropOldest => self.outbox.iter().position(|o| !o.written),
            };
            let Some(i) = victim else {
                return Err(SendError::Full);
            };
            self.resolve(i, DeliveryOutcome::Dropped(DropReason::Overflow));
            let o = self.outbox.remove(i).expect("index from position");
            self.out_bytes -= o.payload.len();
        }
        let id = MessageId(self.next_id);
        self.next_id += 1;
        self.out_bytes += payload.len();
        self.outbox.push_back(Out {
            id,
            seq: None,
            written: false,
            text: kind == MessageKind::Text,
            payload,
            ack,
            resolved: false,
        });
        Ok(id)
    }

    /// Writes pending acks, then messages not yet written on this
    /// connection, while the connection's output stays under `window` bytes
    /// (one message at least when nothing is queued, whatever the window).
    pub(crate) fn write(&mut self, conn: &mut Connection, now: Instant, window: usize) {
        let window = window.max(1);
        if !conn.is_open() {
            return;
        }
        let ack_due = self.ack_now || self.ack_due.is_some_and(|t| t <= now);
        if ack_due && self.delivered > self.acked_upto {
            if conn.send_binary(&wire::ack(self.delivered)).is_err() {
                return;
            }
            self.acked_upto = self.delivered;
            self.ack_queued = true;
        }
        if ack_due {
            self.ack_now = false;
            self.ack_due = None;
            self.recv_since_ack = 0;
        }
        while self.replay_pos < self.outbox.len() && conn.transmit_len() < window {
            let out = &mut self.outbox[self.replay_pos];
            let seq = match out.seq {
                Some(s) => s,
                None => {
                    self.last_seq += 1;
                    out.seq = Some(self.last_seq);
                    self.last_seq
                }
            };
            let header = wire::data_header(out.text, out.ack.is_some(), seq);
            if conn
                .send_prefixed(MessageKind::Binary, &header, &out.payload)
                .is_err()
            {
                return;
            }
            self.replay_pos += 1;
            // The outcome and the ack deadline count from the first write
            // only: a replay after a reconnect must not re-arm the deadline.
            if !out.written {
                out.written = true;
                match out.ack {
                    None => {
                        if !out.resolved {
                            out.resolved = true;
                            self.outcomes.push_back((out.id, DeliveryOutcome::Written));
                        }
                    }
                    // A deadline past what `Instant` holds never comes.
                    Some(d) => {
                        if let Some(t) = now.checked_add(d) {
                            self.deadlines.push(Reverse((t, out.id.0)));
                        }
                    }
                }
            }
        }
    }

    /// Handles a DATA envelope; returns the message to deliver, if new.
    /// It counts as received only once the application has taken it
    /// ([`on_delivered`](Self::on_delivered)); acks follow from there.
    pub(crate) fn on_data(
        &mut self,
        text: bool,
        ack_now: bool,
        seq: u64,
        data: Bytes,
    ) -> Result<Option<Message>, SessionError> {
        if seq <= self.recv_seq {
            if seq <= self.delivered {
                // A replay of something the application has: our ack was
                // lost. (One still waiting to be taken is acknowledged when
                // it is.)
                self.ack_now = true;
                self.acked_upto = 0;
            }
            return Ok(None);
        }
        if seq != self.recv_seq + 1 {
            return Err(SessionError::Gap {
                expected: self.recv_seq + 1,
                got: seq,
            });
        }
        let msg = if text {
            Message::Text(Utf8Bytes::try_from_bytes(data).map_err(|_| SessionError::InvalidUtf8)?)
        } else {
            Message::Binary(data)
        };
        self.recv_seq = seq;
        if ack_now {
            self.ack_now_seqs.push_back(seq);
        }
        Ok(Some(msg))
    }

    /// Handles a cumulative ACK.
    pub(crate) fn on_ack(&mut self, seq: u64) -> Result<(), SessionError> {
        if seq > self.last_seq {
            return Err(SessionError::AckForUnsent(seq));
        }
        if seq <= self.peer_acked {
            return Ok(());
        }
        self.peer_acked = seq;
        while let Some(front) = self.outbox.front() {
            match front.seq {
                Some(s) if s <= seq => {
                    self.resolve(0, DeliveryOutcome::Acked);
                    let o = self.outbox.pop_front().expect("front exists");
                    self.out_bytes -= o.payload.len();
                    self.replay_pos = self.replay_pos.saturating_sub(1);
                    self.released_count += 1;
                    if let Some(r) = &mut self.released {
                        r.push_back(o.id);
                    }
                }
                _ => break,
            }
        }
        // The deadlines of acknowledged messages are not looked for in the
        // heap (they are skipped when they come due): once they outnumber
        // the messages still kept, drop them, so that the heap stays within
        // the outbox's bound rather than grow with rate × deadline.
        if self.deadlines.len() > 2 * self.outbox.len() + 16 {
            let oldest = self.outbox.front().map_or(u64::MAX, |o| o.id.0);
            self.deadlines.retain(|Reverse((_, id))| *id >= oldest);
        }
        Ok(())
    }

    /// The connection ended: everything unacknowledged is written again on
    /// the next one.
    pub(crate) fn on_disconnect(&mut self) {
        self.replay_pos = 0;
        self.ack_queued = false;
        self.ack_now = false;
        self.ack_due = None;
        self.recv_since_ack = 0;
    }

    /// The peer resumed the session having received up to `peer_received`.
    ///
    /// Its greeting contradicts this side when it claims more than was ever
    /// sent, or less than it acknowledged before (it could then only get a
    /// replay of messages no longer kept): a peer whose journal lost
    /// records. Every resume would fail the same way, so the session is
    /// marked [`conflicted`](Self::conflicted).
    pub(crate) fn on_resume(&mut self, peer_received: u64) -> Result<(), SessionError> {
        if peer_received < self.peer_acked {
            self.conflicted = true;
            return Err(SessionError::ResumedBehind {
                received: peer_received,
                acked: self.peer_acked,
            });
        }
        self.on_ack(peer_received)
            .inspect_err(|_| self.conflicted = true)?;
        self.replay_pos = 0;
        Ok(())
    }

    /// The session could not be resumed: start a new one, numbering every
    /// unacknowledged message afresh (they are sent again: at-least-once).
    pub(crate) fn reset(&mut self) {
        for o in &mut self.outbox {
            o.seq = None;
        }
        self.conflicted = false;
        self.replay_pos = 0;
        self.last_seq = 0;
        self.peer_acked = 0;
        self.recv_seq = 0;
        self.delivered = 0;
        self.ack_now_seqs.clear();
        self.acked_upto = 0;
        self.recv_since_ack = 0;
        self.ack_due = None;
        self.ack_now = false;
    }

    /// Resolves every unresolved message as dropped and empties the outbox.
    pub(crate) fn drop_all(&mut self, reason: DropReason) {
        for i in 0..self.outbox.len() {
            self.resolve(i, DeliveryOutcome::Dropped(reason));
        }
        self.outbox.clear();
        self.out_bytes = 0;
        self.replay_pos = 0;
        self.deadlines.clear();
    }

    /// The next ack deadline, and (with `ack_timer`, when a connection can
    /// carry an ACK) the delayed-ack timer.
    pub(crate) fn next_timeout(&self, ack_timer: bool) -> Option<Instant> {
        let ack = if ack_timer && self.delivered > self.acked_upto {
            self.ack_due
        } else {
            None
        };
        let deadline = self.deadlines.peek().map(|Reverse((t, _))| *t);
        match (ack, deadline) {
            (Some(a), Some(d)) => Some(a.min(d)),
            (a, d) => a.or(d),
        }
    }

    /// Restores a session kept in a journal: the peer acknowledged `acked`
    /// messages and this side received `received`. Every message in the
    /// outbox is numbered from `acked + 1` on, in order (the journal keeps
    /// them in the order they were numbered; the ones never written before
    /// the crash simply get the next numbers). They count as written: a
    /// numbered message must not be dropped for overflow (a hole), and it
    /// may have reached the peer already.
    pub(crate) fn restore(&mut self, acked: u64, received: u64) {
        let mut seq = acked;
        for o in &mut self.outbox {
            seq += 1;
            o.seq = Some(seq);
            o.written = true;
        }
        self.last_seq = seq;
        self.peer_acked = acked;
        self.recv_seq = received;
        self.delivered = received;
        self.ack_now_seqs.clear();
        self.acked_upto = received;
        self.replay_pos = 0;
    }

    /// Fires ack deadlines that passed.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((t, id))) = self.deadlines.peek().copied() {
            if t > now {
                break;
            }
            self.deadlines.pop();
            // Ids increase along the outbox: binary search.
            if let Ok(i) = self.outbox.binary_search_by_key(&id, |o| o.id.0) {
                self.resolve(i, DeliveryOutcome::AckFailed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;
    use crate::config::Config;

    /// Acknowledged messages do not leave their ack deadlines behind: with
    /// a deadline far away and a steady stream, the heap stays within the
    /// outbox's size instead of growing with every message.
    #[test]
    fn acked_deadlines_do_not_accumulate() {
        let now = Instant::now();
        let config = SessionConfig::default();
        let mut conn = Connection::new_open(Role::Client, Config::default(), now);
        let mut ch = Channel::new();
        let mut out = Vec::new();
        for round in 0..100u64 {
            for _ in 0..100 {
                ch.push(
                    &config,
                    MessageKind::Binary,
                    Bytes::from_static(b"x"),
                    Some(Duration::from_secs(3600)),
                )
                .unwrap();
            }
            ch.write(&mut conn, now, usize::MAX);
            while conn.poll_transmit(&mut out) {}
            out.clear();
            ch.on_ack((round + 1) * 100).unwrap();
            assert_eq!(ch.unacked(), 0);
            assert!(ch.deadlines.len() <= 116, "{}", ch.deadlines.len());
        }
        // Every message resolved once, as acked.
        let mut acked = 0;
        while let Some((_, o)) = ch.poll_outcome() {
            assert_eq!(o, DeliveryOutcome::Acked);
            acked += 1;
        }
        assert_eq!(acked, 10_000);
    }
}
