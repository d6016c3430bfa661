//! Fiber switch cost: a fiber that yields to itself (park + wake of the running task), and
//! a park/unpark handoff between two fibers on one worker (the LIFO slot path).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use parking_lot_free::Slot;

mod parking_lot_free {
    use std::sync::Mutex;
    use std::task::Waker;

    /// One-token handoff between two fibers.
    #[derive(Default)]
    pub struct Slot(Mutex<(bool, Option<Waker>)>);

    impl Slot {
        pub fn put(&self) {
            let w = {
                let mut g = self.0.lock().unwrap();
                g.0 = true;
                g.1.take()
            };
            if let Some(w) = w {
                w.wake();
            }
        }

        pub fn take(&self) {
            loop {
                {
                    let mut g = self.0.lock().unwrap();
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
}

fn bench(c: &mut Criterion) {
    let rt = rusm_sched::Runtime::builder().workers(1).build().unwrap();
    let h = rt.handle().clone();

    c.bench_function("fiber_switch/yield_now", |b| {
        b.iter_custom(|iters| {
            h.spawn(move || {
                let t0 = Instant::now();
                for _ in 0..iters {
                    rusm_sched::yield_now();
                }
                t0.elapsed()
            })
            .unwrap()
            .join()
            .unwrap()
        })
    });

    c.bench_function("fiber_switch/handoff_round_trip", |b| {
        b.iter_custom(|iters| {
            let (ab, ba) = (Arc::new(Slot::default()), Arc::new(Slot::default()));
            let stop = Arc::new(AtomicBool::new(false));
            let (ab2, ba2, s2) = (ab.clone(), ba.clone(), stop.clone());
            let echo = h
                .spawn(move || {
                    for _ in 0..iters {
                        ab2.take();
                        ba2.put();
                    }
                    let _ = s2.load(Ordering::Relaxed);
                })
                .unwrap();
            let took = h
                .spawn(move || {
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        ab.put();
                        ba.take();
                    }
                    t0.elapsed()
                })
                .unwrap()
                .join()
                .unwrap();
            echo.join().unwrap();
            stop.store(true, Ordering::Relaxed);
            took
        })
    });

}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
