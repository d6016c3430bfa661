use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Waker;
use std::time::Duration;

use parking_lot::Mutex;

use crate::rt;

/// A one-slot handoff: `put` sets the flag and wakes the parked taker; `take` parks until
/// the flag is set. The building block a mailbox is made of.
#[derive(Default)]
struct Slot {
    inner: Mutex<(bool, Option<Waker>)>,
}

impl Slot {
    fn put(&self) {
        let w = {
            let mut g = self.inner.lock();
            assert!(!g.0, "token put twice: a handoff was lost or duplicated");
            g.0 = true;
            g.1.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    fn take(&self) {
        loop {
            {
                let mut g = self.inner.lock();
                if g.0 {
                    g.0 = false;
                    return;
                }
                g.1 = Some(rusm_sched::current_waker().unwrap());
            }
            rusm_sched::park();
        }
    }
}

#[test]
fn park_returns_at_once_if_woken_before() {
    let rt = rt(1);
    let h = rt
        .handle()
        .spawn(|| {
            rusm_sched::current_waker().unwrap().wake();
            rusm_sched::park(); // must not hang: the token is already there
            true
        })
        .unwrap();
    assert!(h.join().unwrap());
}

#[test]
fn park_timeout_returns() {
    let rt = rt(2);
    let h = rt
        .handle()
        .spawn(|| {
            let t0 = std::time::Instant::now();
            rusm_sched::park_timeout(Duration::from_millis(10));
            t0.elapsed()
        })
        .unwrap();
    assert!(h.join().unwrap() >= Duration::from_millis(10));
    assert_eq!(rt.handle().pending_timers(), 0, "park_timeout left its timer behind");
}

#[test]
fn million_handoffs_between_fibers_on_two_workers_lose_no_wakeup() {
    const N: u64 = if cfg!(debug_assertions) { 200_000 } else { 1_000_000 };
    let rt = rt(2);
    let ab = Arc::new(Slot::default());
    let ba = Arc::new(Slot::default());
    let threads_a = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let count = Arc::new(AtomicU64::new(0));
    let (ab2, ba2, count2) = (ab.clone(), ba.clone(), count.clone());
    let b = rt
        .handle()
        .spawn(move || {
            for _ in 0..N {
                ab2.take();
                count2.fetch_add(1, Ordering::Relaxed);
                ba2.put();
            }
        })
        .unwrap();
    let t = threads_a.clone();
    let a = rt
        .handle()
        .spawn(move || {
            for i in 0..N {
                ab.put();
                ba.take();
                if i % 1024 == 0 {
                    t.lock().insert(std::thread::current().id());
                    // Push the pair apart now and then so the handoffs cross workers.
                    let _ = rusm_sched::spawn(|| {
                        for _ in 0..50 {
                            rusm_sched::coop::spend(100);
                        }
                    });
                }
            }
        })
        .unwrap();
    a.join().unwrap();
    b.join().unwrap();
    assert_eq!(count.load(Ordering::Relaxed), N);
}

#[test]
fn wakes_from_many_threads_at_once() {
    // A fiber woken concurrently by several OS threads: never queued twice (the worker
    // would panic "queued twice"), never stuck, and it sees the final stop flag.
    let rt = rt(2);
    let stop = Arc::new(AtomicBool::new(false));
    let waker: Arc<Mutex<Option<Waker>>> = Arc::default();
    let (s, w) = (stop.clone(), waker.clone());
    let h = rt
        .handle()
        .spawn(move || {
            *w.lock() = Some(rusm_sched::current_waker().unwrap());
            let mut parks = 0u64;
            while !s.load(Ordering::SeqCst) {
                rusm_sched::park();
                parks += 1;
            }
            parks
        })
        .unwrap();
    assert!(crate::wait_until(Duration::from_secs(5), || waker.lock().is_some()));
    let w = waker.lock().clone().unwrap();
    let hammers: Vec<_> = (0..4)
        .map(|_| {
            let w = w.clone();
            std::thread::spawn(move || {
                for _ in 0..20_000 {
                    w.wake_by_ref();
                }
            })
        })
        .collect();
    for t in hammers {
        t.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    w.wake();
    let parks = h.join().unwrap();
    assert!(parks >= 1);
}
