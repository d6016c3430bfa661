//! Runtime counters for benchmarks and the dashboard: spawned, finished, steals, parks,
//! stacks, and per-worker busy time.
//!
//! Each worker writes its own cache-padded slot (one more slot takes writes from threads
//! outside the runtime), so counting costs one uncontended relaxed add.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

/// Adds to a counter of a slot. A worker's own slot has one writer (that worker), so a
/// relaxed load and store suffice and avoid a locked instruction on the hot path; the
/// outside slot has many writers and uses a real `fetch_add`.
#[inline]
pub(crate) fn bump(c: &AtomicU64, n: u64, single_writer: bool) {
    if single_writer {
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    } else {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub(crate) spawned: AtomicU64,
    pub(crate) finished: AtomicU64,
    pub(crate) polls: AtomicU64,
    pub(crate) steals: AtomicU64,
    pub(crate) parks: AtomicU64,
    pub(crate) parked_ns: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct Counters {
    slots: Box<[CachePadded<Slot>]>,
    started: Instant,
}

impl Counters {
    pub(crate) fn new(workers: usize) -> Counters {
        Counters {
            slots: (0..=workers).map(|_| CachePadded::new(Slot::default())).collect(),
            started: Instant::now(),
        }
    }

    /// The slot of `worker`, or the shared outside slot for `None`.
    pub(crate) fn slot(&self, worker: Option<usize>) -> &Slot {
        &self.slots[worker.unwrap_or(self.slots.len() - 1)]
    }

    pub(crate) fn snapshot(&self, stacks_mapped: usize, live_tasks: usize) -> RuntimeCounters {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let sum = |f: fn(&Slot) -> &AtomicU64| self.slots.iter().map(|s| get(f(s))).sum::<u64>();
        let up = self.started.elapsed();
        let n = self.slots.len() - 1;
        RuntimeCounters {
            spawned: sum(|s| &s.spawned),
            finished: sum(|s| &s.finished),
            steals: sum(|s| &s.steals),
            parks: sum(|s| &s.parks),
            stacks_mapped: stacks_mapped as u64,
            live_tasks: live_tasks as u64,
            uptime: up,
            workers: self.slots[..n]
                .iter()
                .map(|s| {
                    let parked = Duration::from_nanos(get(&s.parked_ns));
                    WorkerCounters {
                        polls: get(&s.polls),
                        steals: get(&s.steals),
                        parks: get(&s.parks),
                        busy: up.saturating_sub(parked),
                    }
                })
                .collect(),
        }
    }
}

/// A snapshot of a runtime's counters ([`Handle::counters`](crate::Handle::counters)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RuntimeCounters {
    /// Tasks spawned (fibers and futures).
    pub spawned: u64,
    /// Tasks whose body returned or panicked (cancelled ones are not counted).
    pub finished: u64,
    /// Successful steals from other workers' queues.
    pub steals: u64,
    /// Times a worker went to sleep.
    pub parks: u64,
    /// Fiber stacks ever mapped; far below `spawned` when stacks are reused.
    pub stacks_mapped: u64,
    /// Tasks alive right now (running, queued or parked).
    pub live_tasks: u64,
    /// Time since the runtime started.
    pub uptime: Duration,
    /// One entry per worker.
    pub workers: Vec<WorkerCounters>,
}

/// Per-worker counters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerCounters {
    /// Tasks run (resumes and polls).
    pub polls: u64,
    /// Successful steals by this worker.
    pub steals: u64,
    /// Times this worker went to sleep.
    pub parks: u64,
    /// Time not spent asleep.
    pub busy: Duration,
}
