//! Read inactivity, message completion and the shared input budget
//! (`Config::{idle_timeout, message_timeout, input_budget}`).

use std::time::Instant;

use super::timers::Timer;
use super::{Connection, State};
use crate::error::ProtocolError;
use crate::frame::OpCode;

impl Connection {
    /// After input was processed (and on opening): re-arms the idle timer,
    /// arms or clears the message timer and charges the unfinished input.
    pub(super) fn check_limits(&mut self) {
        if !matches!(self.state, State::Open | State::ClosingLocal) {
            return;
        }
        let now = self.now;
        if let Some(t) = self.config.idle_timeout {
            self.idle_pinged = false;
            self.set_timer(Timer::Idle, now + t / 2);
        }
        let started = std::mem::take(&mut self.message_started);
        if let Some(t) = self.config.message_timeout {
            let in_progress =
                self.partial.is_some() || self.incoming.is_some() || !self.recv.is_empty();
            if !in_progress {
                self.timers[Timer::Message as usize] = None;
            } else if started || self.timers[Timer::Message as usize].is_none() {
                self.set_timer(Timer::Message, now + t);
            }
        }
        if self.charge.active() {
            let incoming = self.incoming.as_ref().map_or(0, |m| m.held());
            let inflating = self.deflate.as_ref().map_or(0, |d| d.pending_output());
            let held = self.recv.len() + incoming + inflating;
            if !self.charge.set(held) {
                let limit = self.config.input_budget.as_ref().map_or(0, |b| b.limit());
                self.defer_fail(ProtocolError::InputBudgetExhausted { limit });
            }
        }
    }

    /// Fires the idle and message timers if due. Neither counts time in
    /// which this side does not read (the application has not taken what
    /// was received): they are re-armed instead.
    pub(super) fn limit_timeouts(&mut self, now: Instant) {
        if !matches!(self.state, State::Open | State::ClosingLocal) {
            return;
        }
        if self.timer_due(Timer::Idle, now) {
            self.timers[Timer::Idle as usize] = None;
            if let Some(t) = self.config.idle_timeout {
                let half = t / 2;
                if !self.wants_read() {
                    self.idle_pinged = false;
                    self.set_timer(Timer::Idle, now + half);
                } else if !self.idle_pinged {
                    self.idle_pinged = true;
                    if self.state == State::Open {
                        self.encode_frame(OpCode::Ping, true, 0, &[], &[]);
                    }
                    self.set_timer(Timer::Idle, now + (t - half));
                } else {
                    return self.fail(ProtocolError::IdleTimeout(t));
                }
            }
        }
        if self.timer_due(Timer::Message, now) {
            self.timers[Timer::Message as usize] = None;
            if let Some(t) = self.config.message_timeout {
                if self.wants_read() {
                    return self.fail(ProtocolError::MessageTimeout(t));
                }
                self.set_timer(Timer::Message, now + t);
            }
        }
    }
}
