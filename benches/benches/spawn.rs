//! Spawn cost: spawn + run + join of an empty fiber (stack from the warm pool), against
//! `tokio::spawn` of an empty task on a 1-worker runtime, both driven from inside.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let rt = rusm_sched::Runtime::builder().workers(1).build().unwrap();
    let h = rt.handle().clone();
    c.bench_function("spawn/rusm_fiber_spawn_join", |b| {
        b.iter_custom(|iters| {
            h.spawn(move || {
                let t0 = Instant::now();
                for _ in 0..iters {
                    rusm_sched::spawn(|| ()).unwrap().join().unwrap();
                }
                t0.elapsed()
            })
            .unwrap()
            .join()
            .unwrap()
        })
    });
    c.bench_function("spawn/rusm_future_spawn_join", |b| {
        b.iter_custom(|iters| {
            h.block_on(async move {
                let t0 = Instant::now();
                for _ in 0..iters {
                    rusm_sched::spawn_future(async {}).unwrap().await.unwrap();
                }
                t0.elapsed()
            })
        })
    });

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    c.bench_function("spawn/tokio_spawn_join", |b| {
        b.iter_custom(|iters| {
            tokio.block_on(async move {
                tokio::spawn(async move {
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        tokio::spawn(async {}).await.unwrap();
                    }
                    t0.elapsed()
                })
                .await
                .unwrap()
            })
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
