use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::rt;

#[test]
fn timers_fire_in_deadline_order() {
    let rt = rt(2);
    let log = Arc::new(Mutex::new(Vec::new()));
    // Insert in scrambled order; deadlines 5 ms apart.
    for i in [7u64, 2, 9, 0, 4, 1, 8, 3, 6, 5] {
        let log = log.clone();
        rt.handle()
            .call_after(Duration::from_millis(10 + 5 * i), move || log.lock().push(i));
    }
    assert!(crate::wait_until(Duration::from_secs(5), || log.lock().len() == 10));
    assert_eq!(*log.lock(), (0..10).collect::<Vec<_>>());
}

#[test]
fn cancelled_timer_never_fires() {
    let rt = rt(2);
    let fired = Arc::new(Mutex::new(Vec::new()));
    let f = fired.clone();
    let keep = rt
        .handle()
        .call_after(Duration::from_millis(30), move || f.lock().push("keep"));
    let f = fired.clone();
    let gone = rt
        .handle()
        .call_after(Duration::from_millis(10), move || f.lock().push("gone"));
    assert!(rt.handle().cancel_timer(gone));
    assert!(!rt.handle().cancel_timer(gone), "cancelled twice");
    assert!(crate::wait_until(Duration::from_secs(5), || !fired.lock().is_empty()));
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(*fired.lock(), ["keep"]);
    assert!(!rt.handle().cancel_timer(keep), "a fired timer cannot be cancelled");
    assert_eq!(rt.handle().pending_timers(), 0);
}

#[test]
fn sleeping_fibers_wake_in_order_and_on_time() {
    let rt = rt(2);
    let log = Arc::new(Mutex::new(Vec::new()));
    let t0 = Instant::now();
    let hs: Vec<_> = [30u64, 10, 20]
        .into_iter()
        .map(|ms| {
            let log = log.clone();
            rt.handle()
                .spawn(move || {
                    rusm_sched::sleep(Duration::from_millis(ms));
                    log.lock().push(ms);
                    t0.elapsed()
                })
                .unwrap()
        })
        .collect();
    for (h, ms) in hs.into_iter().zip([30u64, 10, 20]) {
        let took = h.join().unwrap();
        assert!(took >= Duration::from_millis(ms), "woke early: {took:?} < {ms} ms");
    }
    assert_eq!(*log.lock(), [10, 20, 30]);
}

#[test]
fn an_earlier_timer_wakes_a_sleeping_reactor() {
    // The reactor sleeps toward a timer 2 s out; a 10 ms timer inserted from another
    // thread must not wait behind it.
    let rt = rt(1);
    rt.handle().call_after(Duration::from_secs(2), || {});
    std::thread::sleep(Duration::from_millis(20)); // let the worker go to sleep
    let (tx, rx) = std::sync::mpsc::channel();
    let t0 = Instant::now();
    rt.handle()
        .call_after(Duration::from_millis(10), move || tx.send(t0.elapsed()).unwrap());
    let took = rx.recv_timeout(Duration::from_secs(1)).expect("timer overslept");
    assert!(took < Duration::from_millis(500), "{took:?}");
}

#[test]
fn many_timers_with_cancellation() {
    let rt = rt(2);
    let fired = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut keys = Vec::new();
    for i in 0..10_000u64 {
        let f = fired.clone();
        keys.push(rt.handle().call_after(Duration::from_millis(1 + i % 50), move || {
            f.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
    }
    let mut cancelled = 0;
    for k in keys.iter().step_by(2) {
        if rt.handle().cancel_timer(*k) {
            cancelled += 1;
        }
    }
    assert!(crate::wait_until(Duration::from_secs(5), || {
        rt.handle().pending_timers() == 0
    }));
    assert_eq!(
        fired.load(std::sync::atomic::Ordering::SeqCst),
        10_000 - cancelled
    );
}

#[test]
fn a_panicking_timer_callback_does_not_kill_the_worker_or_its_batch() {
    let rt = rt(1);
    let (tx, rx) = std::sync::mpsc::channel();
    rt.handle()
        .call_after(Duration::from_millis(5), || panic!("callback boom"));
    rt.handle()
        .call_after(Duration::from_millis(5), move || tx.send(()).unwrap());
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the timer after the panicking one never fired");
    assert_eq!(rt.handle().spawn(|| 3).unwrap().join().unwrap(), 3);
}
