//! [`InputBudget`]: a bound on the unfinished input of many connections
//! together, and the per-connection charge against it.
//!
//! Plain memory accounting (an atomic counter): no clock, no I/O.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A budget of bytes of unfinished incoming input — partial frames in the
/// receive buffer, fragments of messages not complete yet, decompressed
/// output of a compressed message in progress — shared by every
/// [`Connection`](crate::Connection) whose [`Config::input_budget`](crate::Config::input_budget)
/// holds a clone of it (a server gives all of its connections one).
///
/// Each connection charges what it holds after every read; a read that
/// takes the total past the limit fails that connection with
/// [`ProtocolError::InputBudgetExhausted`](crate::ProtocolError::InputBudgetExhausted)
/// (close 1009). The total may pass the limit by at most one read (and
/// its inflation) per connection. A connection's charge is returned when
/// its message completes, when it closes and when it is dropped.
#[derive(Clone)]
pub struct InputBudget {
    inner: Arc<Inner>,
}

struct Inner {
    used: AtomicUsize,
    limit: usize,
}

impl InputBudget {
    /// A budget of `limit` bytes, none used.
    pub fn new(limit: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                used: AtomicUsize::new(0),
                limit,
            }),
        }
    }

    /// Bytes charged now, by all connections.
    pub fn used(&self) -> usize {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }
}

impl fmt::Debug for InputBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InputBudget")
            .field("used", &self.used())
            .field("limit", &self.limit())
            .finish()
    }
}

/// One connection's charge against an [`InputBudget`], returned on drop.
#[derive(Debug, Default)]
pub(crate) struct Charge {
    budget: Option<InputBudget>,
    held: usize,
}

impl Charge {
    pub(crate) fn new(budget: Option<InputBudget>) -> Self {
        Self { budget, held: 0 }
    }

    /// Whether there is a budget to charge.
    pub(crate) fn active(&self) -> bool {
        self.budget.is_some()
    }

    /// Charges `n` bytes in place of what was held. `false` when this grew
    /// the charge and the total is now past the limit.
    pub(crate) fn set(&mut self, n: usize) -> bool {
        let Some(b) = &self.budget else { return true };
        let old = std::mem::replace(&mut self.held, n);
        if n > old {
            let total = b.inner.used.fetch_add(n - old, Ordering::Relaxed) + (n - old);
            total <= b.inner.limit
        } else {
            b.inner.used.fetch_sub(old - n, Ordering::Relaxed);
            true
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.set(0);
    }
}
