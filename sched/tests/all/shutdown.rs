use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::rt;

struct CountDrop(Arc<AtomicUsize>);

impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn shutdown_with_parked_fibers_unwinds_them_and_reports_cancelled() {
    let rt = rt(2);
    let dropped = Arc::new(AtomicUsize::new(0));
    let parked = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..1000)
        .map(|_| {
            let guard = CountDrop(dropped.clone());
            let parked = parked.clone();
            rt.handle()
                .spawn(move || {
                    let _g = guard;
                    parked.fetch_add(1, Ordering::SeqCst);
                    loop {
                        rusm_sched::park(); // nobody will ever wake us
                    }
                })
                .unwrap()
        })
        .collect();
    assert!(crate::wait_until(Duration::from_secs(10), || {
        parked.load(Ordering::SeqCst) == 1000
    }));
    let handle = rt.handle().clone();
    rt.shutdown();
    // Every parked fiber was unwound: its locals' destructors ran.
    assert_eq!(dropped.load(Ordering::SeqCst), 1000);
    for h in hs {
        assert!(h.join().unwrap_err().is_cancelled());
    }
    assert!(matches!(
        handle.spawn(|| ()),
        Err(rusm_sched::SpawnError::Shutdown)
    ));
    assert_eq!(handle.counters().live_tasks, 0);
}

#[test]
fn shutdown_cancels_pending_futures_and_timers() {
    let rt = rt(2);
    let h = rt
        .handle()
        .spawn_future(async {
            rusm_sched::Sleep::new(Duration::from_secs(3600)).await;
        })
        .unwrap();
    let sleeper = rt
        .handle()
        .spawn(|| rusm_sched::sleep(Duration::from_secs(3600)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let handle = rt.handle().clone();
    let t0 = std::time::Instant::now();
    drop(rt); // dropping shuts down too
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(h.join().unwrap_err().is_cancelled());
    assert!(sleeper.join().unwrap_err().is_cancelled());
    assert_eq!(handle.pending_timers(), 0);
}

#[test]
fn shutdown_timeout_gives_up_on_a_runaway_fiber() {
    let rt = rt(1);
    let _spinner = rt
        .handle()
        .spawn(|| {
            loop {
                std::hint::spin_loop();
            }
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(10));
    assert!(!rt.shutdown_timeout(Duration::from_millis(50)));
}

#[test]
fn many_runtimes_come_and_go() {
    for _ in 0..20 {
        let rt = rt(2);
        let h = rt.handle().spawn(|| rusm_sched::sleep(Duration::from_millis(1))).unwrap();
        h.join().unwrap();
        rt.shutdown();
    }
}

struct SleepsOnDrop;

impl Drop for SleepsOnDrop {
    fn drop(&mut self) {
        // Blocking calls in the destructor of a cancelled fiber must neither abort nor hang.
        rusm_sched::park();
        rusm_sched::sleep(Duration::from_millis(1));
        rusm_sched::yield_now();
    }
}

#[test]
fn cancelled_fiber_destructors_may_call_blocking_functions() {
    let rt = rt(2);
    let parked = Arc::new(AtomicUsize::new(0));
    let p = parked.clone();
    let h = rt
        .handle()
        .spawn(move || {
            let _g = SleepsOnDrop;
            p.fetch_add(1, Ordering::SeqCst);
            loop {
                rusm_sched::park();
            }
        })
        .unwrap();
    assert!(crate::wait_until(Duration::from_secs(5), || parked.load(Ordering::SeqCst) == 1));
    rt.shutdown();
    assert!(h.join().unwrap_err().is_cancelled());
}

#[test]
fn runtime_dropped_on_its_own_worker_still_cancels_everything() {
    let rt = Arc::new(parking_lot::Mutex::new(Some(rt(2))));
    let handle = rt.lock().as_ref().unwrap().handle().clone();
    let parked = handle
        .spawn(|| loop {
            rusm_sched::park();
        })
        .unwrap();
    let r = rt.clone();
    let dropper = handle
        .spawn(move || {
            drop(r.lock().take()); // the last owner, dropped inside a fiber
        })
        .unwrap();
    drop(rt);
    let _ = dropper.join();
    // The reaper thread cancels the parked fiber: its joiner does not hang.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(parked.join().is_err()).unwrap());
    assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
}
