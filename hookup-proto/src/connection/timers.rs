//! The connection's timers, in a fixed table indexed by [`Timer`], and
//! its clock (the latest `now` passed in). A new timer is a variant of
//! `Timer`, a slot in the table (`TIMER_COUNT`) and an arm in
//! `handle_timeout`.

use std::time::Instant;

use super::{Connection, State};
use crate::error::{Error, HandshakeError};

/// The timers a connection keeps, in a fixed table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Timer {
    Handshake = 0,
    Close = 1,
    /// `Config::idle_timeout`: ping at half, fail at the end.
    Idle = 2,
    /// `Config::message_timeout`.
    Message = 3,
}

pub(super) const TIMER_COUNT: usize = 4;

impl Connection {
    /// Fires the timers that are due at `now`. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance_clock(now);
        if self.timer_due(Timer::Handshake, now) {
            self.timers[Timer::Handshake as usize] = None;
            if matches!(
                self.state,
                State::AwaitingResponse | State::AwaitingRequest | State::AwaitingDecision
            ) {
                self.fail_handshake(HandshakeError::Timeout);
            }
        }
        if self.timer_due(Timer::Close, now) {
            self.timers[Timer::Close as usize] = None;
            match self.state {
                State::ClosingLocal => {
                    self.finish(false, Some(Error::CloseTimeout(self.config.close_timeout)));
                }
                // The close frames were exchanged; the server was just slow to
                // drop the transport.
                State::ClosingRemote => self.finish(true, None),
                _ => {}
            }
        }
        self.limit_timeouts(now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }

    pub(super) fn set_timer(&mut self, t: Timer, at: Instant) {
        self.timers[t as usize] = Some(at);
    }

    pub(super) fn timer_due(&self, t: Timer, now: Instant) -> bool {
        self.timers[t as usize].is_some_and(|at| at <= now)
    }

    pub(super) fn advance_clock(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }
}
