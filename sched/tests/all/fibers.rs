use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::rt;

#[test]
fn spawn_join_returns_value() {
    let rt = rt(2);
    let h = rt.handle().spawn(|| 40 + 2).unwrap();
    assert_eq!(h.join().unwrap(), 42);
}

#[test]
fn fibers_spawn_fibers_and_join_them() {
    let rt = rt(2);
    let h = rt
        .handle()
        .spawn(|| {
            let kids: Vec<_> = (0..100u64)
                .map(|i| rusm_sched::spawn(move || i * 2).unwrap())
                .collect();
            kids.into_iter().map(|k| k.join().unwrap()).sum::<u64>()
        })
        .unwrap();
    assert_eq!(h.join().unwrap(), 9900);
}

#[test]
fn panic_is_isolated_and_reported() {
    let rt = rt(2);
    let bad = rt
        .handle()
        .spawn(|| -> u32 { panic!("boom in a fiber") })
        .unwrap();
    let err = bad.join().unwrap_err();
    assert!(err.is_panic());
    assert_eq!(
        rusm_sched::panic_message(&*err.try_into_panic().unwrap()),
        "boom in a fiber"
    );
    // The runtime and its workers are unaffected.
    let good: Vec<_> = (0..50)
        .map(|i| rt.handle().spawn(move || i).unwrap())
        .collect();
    let sum: i32 = good.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, (0..50).sum());
}

#[test]
fn panic_after_park_is_isolated() {
    let rt = rt(2);
    let h = rt
        .handle()
        .spawn(|| {
            rusm_sched::sleep(Duration::from_millis(2));
            panic!("late boom");
        })
        .unwrap();
    let e: rusm_sched::JoinError = h.join().unwrap_err();
    assert!(e.is_panic());
    assert_eq!(rt.handle().spawn(|| 1).unwrap().join().unwrap(), 1);
}

/// Spawns `a` then `b` from one fiber and joins both: on a one-worker runtime both are
/// queued before either runs, whatever the OS does to the test thread.
fn run_pair(
    rt: &rusm_sched::Runtime,
    a: impl FnOnce() + Send + 'static,
    b: impl FnOnce() + Send + 'static,
) {
    rt.handle()
        .spawn(move || {
            let a = rusm_sched::spawn(a).unwrap();
            let b = rusm_sched::spawn(b).unwrap();
            a.join().unwrap();
            b.join().unwrap();
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn yield_now_lets_others_run_on_one_worker() {
    let rt = rt(1);
    let turns = Arc::new(AtomicUsize::new(0));
    let log = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mk = |name: &'static str| {
        let log = log.clone();
        let turns = turns.clone();
        move || {
            for _ in 0..3 {
                log.lock().push(name);
                turns.fetch_add(1, Ordering::SeqCst);
                rusm_sched::yield_now();
            }
        }
    };
    run_pair(&rt, mk("a"), mk("b"));
    assert_eq!(*log.lock(), ["a", "b", "a", "b", "a", "b"]);
}

#[test]
fn reductions_make_busy_fibers_take_turns() {
    // One worker, two fibers that only spend reductions: neither may run to completion
    // before the other has started.
    let rt = rt(1);
    let started = Arc::new(AtomicUsize::new(0));
    let overlap = Arc::new(AtomicUsize::new(0));
    let mk = || {
        let started = started.clone();
        let overlap = overlap.clone();
        move || {
            started.fetch_add(1, Ordering::SeqCst);
            for _ in 0..50_000 {
                rusm_sched::coop::spend(1);
            }
            // When I finish, has the other one started?
            if started.load(Ordering::SeqCst) == 2 {
                overlap.fetch_add(1, Ordering::SeqCst);
            }
        }
    };
    run_pair(&rt, mk(), mk());
    assert_eq!(overlap.load(Ordering::SeqCst), 2);
}

#[test]
fn spawn_outside_runtime_is_an_error() {
    let r = rusm_sched::spawn(|| ());
    assert!(matches!(r, Err(rusm_sched::SpawnError::NoRuntime)));
}

#[test]
fn fiber_migrates_while_suspended_and_resumes_correctly() {
    // Keep parking a fiber and waking it from another thread until it has resumed on both
    // workers; its stack (locals, a borrowed slice) must come through intact.
    let rt = rt(2);
    let h = rt
        .handle()
        .spawn(|| {
            let data: Vec<u64> = (0..1000).collect();
            let view = &data[10..20];
            let mut threads = std::collections::HashSet::new();
            let mut rounds = 0;
            while threads.len() < 2 && rounds < 20_000 {
                threads.insert(std::thread::current().id());
                // Park and get woken from a fresh OS thread: the wake goes to the injector,
                // and whichever worker is free takes us.
                let w = rusm_sched::current_waker().unwrap();
                std::thread::spawn(move || w.wake());
                rusm_sched::park();
                // Burn a bit so the other worker is the idle one sometimes.
                if rounds % 2 == 0 {
                    let _ = rusm_sched::spawn(|| std::thread::sleep(Duration::from_micros(200)));
                }
                rounds += 1;
            }
            threads.insert(std::thread::current().id());
            (threads.len(), view.iter().sum::<u64>())
        })
        .unwrap();
    let (threads, sum) = h.join().unwrap();
    assert_eq!(sum, (10..20).sum::<u64>());
    assert_eq!(threads, 2, "the fiber never moved to the other worker");
}

#[test]
fn thread_locals_follow_the_worker_not_the_fiber() {
    // Documented rule: a fiber may resume on another thread. Check the runtime's own
    // notion of the current task survives a migration.
    let rt = rt(2);
    let h = rt
        .handle()
        .spawn(|| {
            let before = rusm_sched::current_waker().unwrap();
            for _ in 0..200 {
                let w = rusm_sched::current_waker().unwrap();
                std::thread::spawn(move || w.wake());
                rusm_sched::park();
            }
            let after = rusm_sched::current_waker().unwrap();
            before.will_wake(&after) || before.data() == after.data()
        })
        .unwrap();
    assert!(h.join().unwrap());
}

#[test]
fn a_body_capturing_a_large_value_spawns() {
    let rt = rt(1);
    let big = [7u8; 8192];
    let h = rt
        .handle()
        .spawn(move || big.iter().map(|&b| u64::from(b)).sum::<u64>())
        .unwrap();
    assert_eq!(h.join().unwrap(), 7 * 8192);
}
