//! Per-worker parker: a worker with nothing to run sleeps either on a condvar or inside the
//! reactor's `mio::Poll` (then it is "the driver"), and an unparker wakes it either way.
//!
//! # State
//!
//! | state            | meaning                                   | `unpark` does           |
//! |------------------|-------------------------------------------|-------------------------|
//! | `EMPTY`          | running, no pending notification          | → `NOTIFIED`            |
//! | `PARKED_CONDVAR` | asleep on the condvar                     | → `NOTIFIED`, notify    |
//! | `PARKED_DRIVER`  | asleep in the reactor                     | → `NOTIFIED`, wake mio  |
//! | `NOTIFIED`       | an unpark is pending; next park returns   | nothing                 |
//!
//! # Invariants
//!
//! * An unpark is never lost: it leaves `NOTIFIED`, which the next `park` consumes without
//!   sleeping, or it wakes the sleeper through the channel the state names.
//! * Only the owning worker parks; any thread unparks.

use std::time::Duration;

use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::loom::sync::{Condvar, Mutex};
use std::sync::Arc;

const EMPTY: usize = 0;
const PARKED_CONDVAR: usize = 1;
const PARKED_DRIVER: usize = 2;
const NOTIFIED: usize = 3;

#[derive(Debug)]
struct Inner {
    /// Written by the parking worker and by unparkers; see the table.
    state: AtomicUsize,
    mutex: Mutex<()>,
    condvar: Condvar,
}

/// The parking side, owned by one worker.
#[derive(Debug)]
pub(crate) struct Parker {
    inner: Arc<Inner>,
}

/// The waking side, shared.
#[derive(Debug, Clone)]
pub(crate) struct Unparker {
    inner: Arc<Inner>,
}

impl Parker {
    pub(crate) fn new() -> (Parker, Unparker) {
        let inner = Arc::new(Inner {
            state: AtomicUsize::new(EMPTY),
            mutex: Mutex::new(()),
            condvar: Condvar::new(),
        });
        (
            Parker {
                inner: inner.clone(),
            },
            Unparker { inner },
        )
    }

    /// Consumes a pending notification without sleeping. Returns `true` if there was one.
    fn take_notification(&self) -> bool {
        self.inner
            .state
            .compare_exchange(NOTIFIED, EMPTY, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Sleeps on the condvar until unparked or until `timeout` passes.
    pub(crate) fn park_condvar(&self, timeout: Option<Duration>) {
        if self.take_notification() {
            return;
        }
        let mut guard = self.inner.mutex.lock().unwrap_or_else(|e| e.into_inner());
        match self.inner.state.compare_exchange(
            EMPTY,
            PARKED_CONDVAR,
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            Ok(_) => {}
            Err(NOTIFIED) => {
                self.inner.state.swap(EMPTY, Ordering::SeqCst);
                return;
            }
            Err(s) => panic!("parker in state {s} at park"),
        }
        loop {
            guard = match timeout {
                None => self
                    .inner
                    .condvar
                    .wait(guard)
                    .unwrap_or_else(|e| e.into_inner()),
                #[cfg(not(loom))]
                Some(t) => {
                    let (g, res) = self
                        .inner
                        .condvar
                        .wait_timeout(guard, t)
                        .unwrap_or_else(|e| e.into_inner());
                    if res.timed_out() {
                        // Whatever the state is (PARKED_CONDVAR, or NOTIFIED by a racing
                        // unpark), we are awake now and any notification is consumed.
                        self.inner.state.swap(EMPTY, Ordering::SeqCst);
                        return;
                    }
                    g
                }
                #[cfg(loom)]
                Some(_) => self
                    .inner
                    .condvar
                    .wait(guard)
                    .unwrap_or_else(|e| e.into_inner()),
            };
            if self.take_notification() {
                return;
            }
            // Spurious wakeup: sleep again.
        }
    }

    /// Sleeps inside the reactor: `turn` is the reactor poll (with its own timeout), which
    /// returns when an unparker wakes the reactor, an I/O event or the timeout arrives.
    pub(crate) fn park_driver(&self, turn: impl FnOnce()) {
        if self.take_notification() {
            return;
        }
        match self.inner.state.compare_exchange(
            EMPTY,
            PARKED_DRIVER,
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            Ok(_) => {}
            Err(NOTIFIED) => {
                self.inner.state.swap(EMPTY, Ordering::SeqCst);
                return;
            }
            Err(s) => panic!("parker in state {s} at park"),
        }
        turn();
        // Consume any notification that raced with the poll.
        self.inner.state.swap(EMPTY, Ordering::SeqCst);
    }
}

impl Unparker {
    /// Wakes the worker; `wake_driver` interrupts the reactor if it sleeps there.
    pub(crate) fn unpark(&self, wake_driver: impl FnOnce()) {
        match self.inner.state.swap(NOTIFIED, Ordering::SeqCst) {
            EMPTY | NOTIFIED => {}
            PARKED_CONDVAR => {
                // Taking the lock orders this notify after the parker's wait began.
                drop(self.inner.mutex.lock().unwrap_or_else(|e| e.into_inner()));
                self.inner.condvar.notify_one();
            }
            PARKED_DRIVER => wake_driver(),
            s => panic!("parker in state {s} at unpark"),
        }
    }
}
