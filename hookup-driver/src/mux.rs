//! [`MuxWaker`]: one waker for the I/O of a split socket that wakes both
//! halves.

use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

/// Wakes every half that registered, so that whichever half drives the
/// shared I/O, the other one learns of progress.
#[derive(Default)]
pub(crate) struct MuxWaker {
    slots: Mutex<[Option<Waker>; 2]>,
}

impl MuxWaker {
    pub(crate) fn register(&self, side: usize, w: &Waker) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        match &slots[side] {
            Some(old) if old.will_wake(w) => {}
            _ => slots[side] = Some(w.clone()),
        }
    }

    /// Wakes the other half, if it is waiting.
    pub(crate) fn wake_other(&self, side: usize) {
        let taken = self.slots.lock().unwrap_or_else(|e| e.into_inner())[1 - side].take();
        if let Some(w) = taken {
            w.wake();
        }
    }
}

impl Wake for MuxWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let taken = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            [slots[0].take(), slots[1].take()]
        };
        for w in taken.into_iter().flatten() {
            w.wake();
        }
    }
}
