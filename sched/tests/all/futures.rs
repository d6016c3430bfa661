use std::time::{Duration, Instant};

use crate::rt;

#[test]
fn spawn_future_and_block_on() {
    let rt = rt(2);
    let v = rt.block_on(async {
        let a = rusm_sched::spawn_future(async { 20 }).unwrap();
        let b = rusm_sched::spawn(|| 22).unwrap();
        a.await.unwrap() + b.await.unwrap()
    });
    assert_eq!(v, 42);
}

#[test]
fn future_panic_is_reported() {
    let rt = rt(2);
    let h = rt
        .handle()
        .spawn_future(async { panic!("future boom") })
        .unwrap();
    let e: rusm_sched::JoinError = h.join().unwrap_err();
    assert!(e.is_panic());
    assert_eq!(rt.block_on(async { 5 }), 5);
}

#[test]
fn sleep_future_waits() {
    let rt = rt(2);
    let waited = rt.block_on(async {
        let t0 = Instant::now();
        rusm_sched::Sleep::new(Duration::from_millis(15)).await;
        t0.elapsed()
    });
    assert!(waited >= Duration::from_millis(15));
}

#[test]
fn blocking_call_inside_a_future_body_fails_that_task_only() {
    let rt = rt(2);
    let h = rt
        .handle()
        .spawn_future(async {
            rusm_sched::sleep(Duration::from_millis(1));
        })
        .unwrap();
    let e = h.join().unwrap_err();
    assert!(rusm_sched::panic_message(&*e.try_into_panic().unwrap()).contains("future body"));
    assert_eq!(rt.block_on(async { 1 }), 1);
}

#[test]
fn block_on_inside_a_fiber_parks_the_fiber() {
    // One worker: if block_on blocked the thread, the inner future (which needs the same
    // worker to run the fiber that completes it) would never finish.
    let rt = rt(1);
    let h = rt
        .handle()
        .spawn(|| {
            let inner = rusm_sched::spawn(|| {
                rusm_sched::sleep(Duration::from_millis(5));
                9
            })
            .unwrap();
            rusm_sched::block_on(inner).unwrap()
        })
        .unwrap();
    assert_eq!(h.join().unwrap(), 9);
}
