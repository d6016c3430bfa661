//! Work distribution across workers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::rt;

#[test]
fn work_spreads_across_workers_when_one_fiber_spawns_everything() {
    let rt = rt(2);
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let s = seen.clone();
    rt.handle()
        .spawn(move || {
            let kids: Vec<_> = (0..200)
                .map(|_| {
                    let s = s.clone();
                    rusm_sched::spawn(move || {
                        // Each child holds its worker a little, so the other must steal.
                        std::thread::sleep(Duration::from_micros(300));
                        s.lock().insert(std::thread::current().id());
                    })
                    .unwrap()
                })
                .collect();
            for k in kids {
                k.join().unwrap();
            }
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(seen.lock().len(), 2, "all work stayed on one worker");
    let c = rt.handle().counters();
    assert!(c.steals > 0, "no steal was counted: {c:?}");
    assert!(c.workers.iter().all(|w| w.polls > 0), "{c:?}");
}

#[test]
fn spawns_from_outside_go_to_every_worker() {
    let rt = rt(2);
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let hs: Vec<_> = (0..200)
        .map(|_| {
            let s = seen.clone();
            rt.handle()
                .spawn(move || {
                    std::thread::sleep(Duration::from_micros(300));
                    s.lock().insert(std::thread::current().id());
                })
                .unwrap()
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(seen.lock().len(), 2);
}

#[test]
fn counters_track_spawned_and_finished() {
    let rt = rt(2);
    let before = rt.handle().counters();
    let hs: Vec<_> = (0..500).map(|_| rt.handle().spawn(|| ()).unwrap()).collect();
    for h in hs {
        h.join().unwrap();
    }
    assert!(crate::wait_until(Duration::from_secs(5), || {
        rt.handle().counters().finished - before.finished == 500
    }));
    let c = rt.handle().counters();
    assert_eq!(c.spawned - before.spawned, 500);
    assert_eq!(c.live_tasks, 0);
}

#[test]
fn a_runaway_fiber_does_not_stop_the_other_worker() {
    // Native fibers are cooperative: one that never yields holds its worker, but the
    // other worker keeps running everything else (it steals what was queued behind).
    let rt = rt(2);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let spinner = rt
        .handle()
        .spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(10));
    let hs: Vec<_> = (0..100).map(|i| rt.handle().spawn(move || i).unwrap()).collect();
    let sum: i32 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, (0..100).sum());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    spinner.join().unwrap();
}
