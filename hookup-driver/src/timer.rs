//! [`Timer`]: a runtime sleep armed at an endpoint's next deadline.

use std::task::Context;
use std::time::Instant;

use hookup_proto::Endpoint;

use crate::Runtime;

/// A runtime sleep armed at an endpoint's `poll_timeout`, created only when
/// a timer is first needed and re-armed in place after that.
pub struct Timer<R: Runtime> {
    sleep: Option<R::Sleep>,
    sleep_at: Option<Instant>,
}

impl<R: Runtime> Default for Timer<R> {
    fn default() -> Self {
        Self {
            sleep: None,
            sleep_at: None,
        }
    }
}

impl<R: Runtime> Timer<R> {
    /// Fires due timers of `e`; arms the sleep otherwise. Returns whether a
    /// timer fired.
    pub fn poll(&mut self, e: &mut impl Endpoint, cx: &mut Context<'_>) -> bool {
        let Some(at) = e.poll_timeout() else {
            self.sleep_at = None;
            return false;
        };
        // Check the clock first: a runtime may report an elapsed sleep as
        // pending (tokio's coop budget does).
        let t = R::now();
        if t >= at {
            e.handle_timeout(t);
            return true;
        }
        if self.sleep_at != Some(at) {
            match &mut self.sleep {
                Some(s) => R::reset(s, at),
                None => self.sleep = Some(R::sleep_until(at)),
            }
            self.sleep_at = Some(at);
        }
        let sleep = self.sleep.as_mut().expect("armed above");
        if R::poll_sleep(sleep, cx).is_ready() {
            self.sleep_at = None;
            e.handle_timeout(R::now());
            return true;
        }
        false
    }
}
