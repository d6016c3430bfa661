//! Which workers are parked and which are searching for work, so that a push wakes at
//! most one sleeper and only when no worker is already looking (no thundering herd).
//!
//! # State
//!
//! `state` packs two counts: the low 16 bits count *searching* workers (looking for work
//! to steal), the rest count *unparked* workers. `sleepers` lists the parked ones.
//!
//! # Invariants
//!
//! * At most half the workers search at once (`2 * searching < workers` to start).
//! * A push followed by `worker_to_notify` and a worker's `transition_to_parked` followed by
//!   its re-check of every queue form a Dekker pair: both sides do a read-modify-write of
//!   `state`, so one of them comes second in its modification order and sees the other:
//!   either the pusher sees the parking worker and wakes someone, or the parking worker
//!   (synchronised with the pusher's RMW) sees the task. Model-checked in
//!   `tests/loom_models.rs`.

use crate::loom::sync::Mutex;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};

const UNPARK_SHIFT: usize = 16;
const SEARCH_MASK: usize = (1 << UNPARK_SHIFT) - 1;

#[derive(Debug)]
pub(crate) struct Idle {
    /// Read by everyone; written by workers changing state and by notifiers.
    state: AtomicUsize,
    /// Parked workers' indices; written under its own lock.
    sleepers: Mutex<Vec<usize>>,
    workers: usize,
}

fn searching(s: usize) -> usize {
    s & SEARCH_MASK
}

fn unparked(s: usize) -> usize {
    s >> UNPARK_SHIFT
}

impl Idle {
    pub(crate) fn new(workers: usize) -> Idle {
        Idle {
            state: AtomicUsize::new(workers << UNPARK_SHIFT),
            sleepers: Mutex::new(Vec::with_capacity(workers)),
            workers,
        }
    }

    /// Picks a parked worker to wake for new work, counting it as unparked and searching.
    /// `None` if a worker is already searching or none is parked.
    pub(crate) fn worker_to_notify(&self) -> Option<usize> {
        if !self.should_notify() {
            return None;
        }
        let mut sleepers = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
        if !self.should_notify() {
            return None;
        }
        let w = sleepers.pop()?;
        self.state
            .fetch_add((1 << UNPARK_SHIFT) | 1, Ordering::SeqCst);
        Some(w)
    }

    fn should_notify(&self) -> bool {
        // An RMW, not a load: it reads the newest value in `state`'s modification order and
        // synchronises with the parking worker's `fetch_sub`, so the push that came before
        // it is visible to that worker's re-check. A plain load would rely on SeqCst's total
        // order alone, which loom does not model, and which this protocol need not depend on.
        let s = self.state.fetch_add(0, Ordering::SeqCst);
        searching(s) == 0 && unparked(s) < self.workers
    }

    /// A worker with nothing local wants to steal. Returns whether it may.
    pub(crate) fn transition_to_searching(&self) -> bool {
        let s = self.state.load(Ordering::SeqCst);
        if 2 * searching(s) >= self.workers {
            return false;
        }
        self.state.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// A searching worker found work. Returns `true` if it was the last searcher (it
    /// should then wake another, so that work keeps spreading).
    pub(crate) fn transition_from_searching(&self) -> bool {
        let prev = self.state.fetch_sub(1, Ordering::SeqCst);
        searching(prev) == 1
    }

    /// The worker is about to park. Returns `true` if it was the last searcher.
    pub(crate) fn transition_to_parked(&self, worker: usize, is_searching: bool) -> bool {
        let mut sleepers = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
        let dec = (1 << UNPARK_SHIFT) | usize::from(is_searching);
        let prev = self.state.fetch_sub(dec, Ordering::SeqCst);
        sleepers.push(worker);
        is_searching && searching(prev) == 1
    }

    /// The worker woke. Returns `true` if it removed itself from the sleepers (it woke on
    /// its own: timeout or I/O); `false` if a notifier had already taken it out and counted
    /// it as searching.
    pub(crate) fn unpark_self(&self, worker: usize) -> bool {
        let mut sleepers = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = sleepers.iter().position(|&w| w == worker) {
            sleepers.swap_remove(i);
            self.state.fetch_add(1 << UNPARK_SHIFT, Ordering::SeqCst);
            true
        } else {
            false
        }
    }
}
