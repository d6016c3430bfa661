//! Fiber stacks: reuse, guard pages, and the kernel's mapping limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rusm_sched::{Builder, GuardMode};

use crate::{is_child, run_child};

#[test]
fn stacks_are_reused_observably() {
    let rt = crate::rt(2);
    for _ in 0..20 {
        let hs: Vec<_> = (0..500).map(|_| rt.handle().spawn(|| ()).unwrap()).collect();
        for h in hs {
            h.join().unwrap();
        }
    }
    let c = rt.handle().counters();
    assert!(c.spawned >= 10_000);
    // At most ~500 alive at once, so at most a few chunks' worth of stacks were mapped.
    assert!(c.stacks_mapped <= 1024, "stacks not reused: {c:?}");
}

fn recurse(n: u64) -> u64 {
    let pad = std::hint::black_box([n; 64]);
    if n == 0 { pad[3] } else { recurse(n - 1) + pad[7] }
}

fn overflow_in_a_fiber(mode: GuardMode) {
    let rt = Builder::default()
        .workers(1)
        .stack_size(64 * 1024)
        .guard_mode(mode)
        .build()
        .unwrap();
    let h = rt.handle().spawn(|| recurse(u64::MAX)).unwrap();
    let _ = h.join();
    unreachable!("a fiber overflowed its stack and the process went on");
}

#[test]
fn stack_overflow_hits_the_permanent_guard_page() {
    if is_child() {
        overflow_in_a_fiber(GuardMode::Permanent);
    }
    let (status, stderr) = run_child("stacks::stack_overflow_hits_the_permanent_guard_page");
    assert_overflow_caught(status, &stderr);
}

#[test]
fn stack_overflow_hits_the_while_running_guard_page() {
    if is_child() {
        overflow_in_a_fiber(GuardMode::WhileRunning);
    }
    let (status, stderr) = run_child("stacks::stack_overflow_hits_the_while_running_guard_page");
    assert_overflow_caught(status, &stderr);
}

fn assert_overflow_caught(status: std::process::ExitStatus, stderr: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert!(!stderr.contains("process went on"), "{stderr}");
    // The guard page stopped it and the overflow handler said so before aborting.
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}\n{stderr}");
    assert!(stderr.contains("a fiber overflowed its stack"), "{stderr}");
}

#[test]
fn while_running_guards_let_many_fibers_park_under_the_default_map_limit() {
    // 100k parked fibers with one kernel mapping per 64 stacks. With a permanent guard per
    // stack this would need 200k mappings, three times the default vm.max_map_count.
    const N: usize = if cfg!(debug_assertions) { 40_000 } else { 100_000 };
    if !is_child() {
        let (status, stderr) = run_child(
            "stacks::while_running_guards_let_many_fibers_park_under_the_default_map_limit",
        );
        assert!(status.success(), "{stderr}");
        return;
    }
    let rt = Builder::default()
        .workers(2)
        .stack_size(32 * 1024)
        .guard_mode(GuardMode::WhileRunning)
        .build()
        .unwrap();
    let parked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let wakers = Arc::new(parking_lot::Mutex::new(Vec::with_capacity(N)));
    let hs: Vec<_> = (0..N)
        .map(|_| {
            let (p, s, w) = (parked.clone(), stop.clone(), wakers.clone());
            rt.handle()
                .spawn(move || {
                    w.lock().push(rusm_sched::current_waker().unwrap());
                    p.fetch_add(1, Ordering::SeqCst);
                    while !s.load(Ordering::SeqCst) {
                        rusm_sched::park();
                    }
                })
                .unwrap()
        })
        .collect();
    assert!(crate::wait_until(Duration::from_secs(120), || {
        parked.load(Ordering::SeqCst) == N
    }));
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap().lines().count();
    assert!(maps < 20_000, "{maps} mappings for {N} parked fibers");
    stop.store(true, Ordering::SeqCst);
    for w in wakers.lock().drain(..) {
        w.wake();
    }
    for h in hs {
        h.join().unwrap();
    }
}

#[test]
fn running_out_of_mappings_fails_the_spawn_not_the_runtime() {
    if !is_child() {
        let (status, stderr) =
            run_child("stacks::running_out_of_mappings_fails_the_spawn_not_the_runtime");
        assert!(status.success(), "{stderr}");
        return;
    }
    // Permanent guards cost two mappings per stack: spawn parked fibers until the kernel's
    // vm.max_map_count refuses, and check the error names the limit.
    let rt = Builder::default()
        .workers(2)
        .stack_size(16 * 1024)
        .guard_mode(GuardMode::Permanent)
        .build()
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut hs = Vec::new();
    let err = loop {
        let s = stop.clone();
        match rt.handle().spawn(move || {
            while !s.load(Ordering::SeqCst) {
                rusm_sched::park_timeout(Duration::from_millis(50));
            }
        }) {
            Ok(h) => hs.push(h),
            Err(e) => break e,
        }
        assert!(hs.len() < 200_000, "the mapping limit never hit");
    };
    let msg = err.to_string();
    assert!(msg.contains("vm.max_map_count"), "{msg}");
    // Free some mappings: the runtime still works.
    stop.store(true, Ordering::SeqCst);
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(rt.handle().spawn(|| 5).unwrap().join().unwrap(), 5);
}
