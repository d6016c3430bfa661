//! Runtime timers: a millisecond [`wheel`](wheel::Wheel) behind a lock, plus the earliest
//! deadline in an atomic so that workers can check "anything due?" without locking.
//!
//! # Who fires timers
//!
//! Whichever worker notices first: a running worker every `TIMER_CHECK_INTERVAL` ticks, an
//! idle worker when its park times out (every park uses the next deadline as its
//! timeout). A timer inserted earlier than the deadline the reactor sleeps toward wakes the
//! reactor (`Shared::timer_inserted`).
//!
//! # Invariants
//!
//! * `next_deadline` is never later than the wheel's earliest expiration; it is only
//!   written under the wheel's lock.
//! * Timer actions run outside the lock.

pub(crate) mod wheel;

use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub use wheel::TimerKey;
use wheel::Wheel;

/// What a timer does when it fires.
pub(crate) enum TimerAction {
    /// Wake a task.
    Wake(Waker),
    /// Run a short callback on the worker that fires the timer.
    Call(Box<dyn FnOnce() + Send + 'static>),
}

impl std::fmt::Debug for TimerAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TimerAction::Wake(_) => f.write_str("Wake"),
            TimerAction::Call(_) => f.write_str("Call"),
        }
    }
}

impl TimerAction {
    fn run(self) {
        match self {
            TimerAction::Wake(w) => w.wake(),
            TimerAction::Call(f) => f(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Timers {
    start: Instant,
    wheel: Mutex<Wheel<TimerAction>>,
    /// Earliest expiration in ms since `start` (`u64::MAX`: none). Written under `wheel`'s
    /// lock; read lock-free by every worker.
    next_deadline: AtomicU64,
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            start: Instant::now(),
            wheel: Mutex::new(Wheel::new()),
            next_deadline: AtomicU64::new(u64::MAX),
        }
    }

    /// `d` from now, saturating: a `d` past what `Instant` holds is 100 years (past the
    /// wheel's horizon, so never).
    pub(crate) fn deadline_after(d: Duration) -> Instant {
        let now = Instant::now();
        now.checked_add(d).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
    }

    /// Milliseconds since the runtime started, rounded down.
    pub(crate) fn now_ms(&self) -> u64 {
        self.to_ms_floor(Instant::now())
    }

    fn to_ms_floor(&self, t: Instant) -> u64 {
        // Saturating: `as u64` would wrap a far deadline round to one near now.
        u64::try_from(t.saturating_duration_since(self.start).as_millis()).unwrap_or(u64::MAX)
    }

    /// Deadlines round up, so a timer never fires before its instant.
    fn to_ms_ceil(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.start);
        let Ok(ms) = u64::try_from(d.as_millis()) else { return u64::MAX };
        if d > Duration::from_millis(ms) {
            ms.saturating_add(1)
        } else {
            ms
        }
    }

    /// Inserts a timer. Returns its key and its deadline in ms (for the reactor check).
    ///
    /// A deadline beyond the wheel's horizon (`MAX_DURATION_MS`, about two years) is
    /// never: nothing is inserted, the action is dropped, and the key is
    /// `TimerKey::NEVER`, always pending (a sleep on it waits for ever at no cost, and
    /// nothing re-arms it).
    pub(crate) fn insert(&self, at: Instant, action: TimerAction) -> (TimerKey, u64) {
        let ms = self.to_ms_ceil(at);
        if ms > self.now_ms().saturating_add(wheel::MAX_DURATION_MS) {
            drop(action);
            return (TimerKey::NEVER, u64::MAX);
        }
        let mut w = self.wheel.lock();
        let key = w.insert(ms, action);
        let next = w.next_expiration().unwrap_or(u64::MAX);
        self.next_deadline.store(next, Ordering::SeqCst);
        (key, ms)
    }

    /// Cancels a timer; `true` if it had not fired. The action is dropped outside the lock.
    pub(crate) fn cancel(&self, key: TimerKey) -> bool {
        let action = {
            let mut w = self.wheel.lock();
            let a = w.cancel(key);
            if a.is_some() {
                let next = w.next_expiration().unwrap_or(u64::MAX);
                self.next_deadline.store(next, Ordering::SeqCst);
            }
            a
        };
        action.is_some()
    }

    /// Is this timer still pending?
    pub(crate) fn is_pending(&self, key: TimerKey) -> bool {
        self.wheel.lock().contains(key)
    }

    /// Earliest expiration in ms since start (`u64::MAX`: none).
    pub(crate) fn next_deadline_ms(&self) -> u64 {
        self.next_deadline.load(Ordering::SeqCst)
    }

    /// Time from now until the next expiration; `None` if no timer is set.
    pub(crate) fn next_timeout(&self) -> Option<Duration> {
        self.timeout_until(self.next_deadline_ms())
    }

    /// Time from now until `ms` (since start); `None` for `u64::MAX`.
    pub(crate) fn timeout_until(&self, ms: u64) -> Option<Duration> {
        if ms == u64::MAX {
            return None;
        }
        let at = self.start + Duration::from_millis(ms);
        Some(at.saturating_duration_since(Instant::now()))
    }

    /// Fires every due timer. Cheap (one atomic load) when nothing is due.
    pub(crate) fn fire_due(&self) -> usize {
        let now = self.now_ms();
        if now < self.next_deadline.load(Ordering::Acquire) {
            return 0;
        }
        let mut due = Vec::new();
        {
            let mut w = match self.wheel.try_lock() {
                Some(w) => w,
                // Another thread holds the wheel (firing, inserting or cancelling); the due
                // timers fire at the next check.
                None => return 0,
            };
            w.advance(now, |a| due.push(a));
            let next = w.next_expiration().unwrap_or(u64::MAX);
            self.next_deadline.store(next, Ordering::SeqCst);
        }
        let n = due.len();
        for a in due {
            // A panicking callback or waker must not kill the worker or drop the rest of
            // the batch; the panic hook has reported it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.run()));
        }
        n
    }

    /// Pending timers.
    pub(crate) fn len(&self) -> usize {
        self.wheel.lock().len()
    }

    /// Drops every pending timer (shutdown). Actions are dropped, not run.
    pub(crate) fn clear(&self) {
        let mut w = self.wheel.lock();
        let old = std::mem::replace(&mut *w, Wheel::new());
        self.next_deadline.store(u64::MAX, Ordering::SeqCst);
        drop(w);
        drop(old);
    }
}
