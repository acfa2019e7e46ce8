//! A session's timers, in a fixed table indexed by [`Timer`]: reconnect
//! backoff, keepalive pings and the pong or greeting deadline; and its
//! clock (the latest `now` passed in). A new timer is a variant of
//! `Timer`, a slot in the table (`TIMERS`) and an arm in `handle_timeout`.

use std::time::Instant;

use super::{Action, Phase, Session, WireMode};
use crate::connection::Connection;
use crate::reliable::SessionError;

#[derive(Clone, Copy)]
pub(super) enum Timer {
    Reconnect = 0,
    Ping = 1,
    /// Pong deadline, or the deadline for WELCOME.
    Deadline = 2,
}

pub(super) const TIMERS: usize = 3;

impl Session {
    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance_clock(now);
        let now = self.now;
        if let Some(conn) = &mut self.conn {
            conn.handle_timeout(now);
        }
        self.channel.handle_timeout(now);
        if let WireMode::Legacy(l) = &mut self.wire {
            l.handle_timeout(now);
        }
        if self.timers[Timer::Reconnect as usize].is_some_and(|t| t <= now) {
            self.clear_timer(Timer::Reconnect);
            if self.phase == Phase::Backoff {
                self.phase = Phase::NeedTransport;
                self.actions.push_back(Action::Connect);
            }
        }
        if self.timers[Timer::Deadline as usize].is_some_and(|t| t <= now) {
            self.clear_timer(Timer::Deadline);
            match self.phase {
                Phase::Established => self.drop_transport(SessionError::KeepaliveTimeout),
                Phase::Greeting | Phase::AwaitingAttach => {
                    self.drop_transport(SessionError::Unexpected("silence: no greeting in time"));
                }
                _ => {}
            }
        }
        if self.timers[Timer::Ping as usize].is_some_and(|t| t <= now) {
            self.clear_timer(Timer::Ping);
            if self.phase == Phase::Established
                && let Some(conn) = &mut self.conn
            {
                self.ping_counter += 1;
                if conn
                    .send_ping(now, &self.ping_counter.to_be_bytes())
                    .is_ok()
                {
                    self.timers[Timer::Deadline as usize] = Some(now + self.config.pong_timeout);
                }
            }
        }
        self.pump();
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conn = self.conn.as_ref().and_then(Connection::poll_timeout);
        // Ack deadlines run whether or not a connection is up (an
        // `AckFailed` must not wait for the next reconnect); the delayed-ack
        // timer only while an ACK can be sent, else it stays due for ever
        // and a caller that sleeps until it would spin.
        let chan = if self.is_finished() {
            None
        } else {
            let can_ack = self.phase == Phase::Established
                && self.conn.as_ref().is_some_and(Connection::is_open);
            match &self.wire {
                WireMode::Legacy(l) => l.next_timeout(),
                WireMode::V1 => self.channel.next_timeout(can_ack),
            }
        };
        self.timers
            .iter()
            .flatten()
            .copied()
            .chain(conn)
            .chain(chan)
            .min()
    }

    pub(super) fn set_timer(&mut self, t: Timer, at: Instant) {
        self.timers[t as usize] = Some(at);
    }

    pub(super) fn clear_timer(&mut self, t: Timer) {
        self.timers[t as usize] = None;
    }

    pub(super) fn advance_clock(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    pub(super) fn arm_ping(&mut self) {
        if let Some(i) = self.config.ping_interval {
            self.set_timer(Timer::Ping, self.now + i);
        }
    }
}
