//! `spawn-storm`: one spawner per worker spawns empty children as fast as it can, keeping
//! `IN_FLIGHT` of them unjoined: at the cap it joins the oldest. Rate = children completed
//! (joined with `Ok`) per second; p50/p99 = time inside the `spawn` call, every
//! `SAMPLE_EVERY`th spawn. Baseline: the same loop with `tokio::spawn` and `.await`.

use std::collections::VecDeque;
use std::time::Instant;

use serde_json::json;

use crate::{Opts, Report, Sampler, Side, Stats, fmt_int};

const IN_FLIGHT: usize = 1024;
const SAMPLE_EVERY: u64 = 64;

/// What one spawner hands back: children completed, spawn-call samples (ns).
pub(crate) type SpawnerResult = (u64, Vec<u64>);

pub fn run(opts: &Opts) -> Result<Report, String> {
    let (rusm, counters) = run_rusm(opts)?;
    let baseline = run_tokio(opts)?;
    let mut extra = serde_json::Map::new();
    extra.insert("in_flight".into(), json!(IN_FLIGHT));
    extra.insert("sample_every".into(), json!(SAMPLE_EVERY));
    extra.insert(
        "rusm_counters".into(),
        json!({
            "spawned": counters.spawned,
            "finished": counters.finished,
            "steals": counters.steals,
            "worker_sleeps": counters.parks,
            "stacks_mapped": counters.stacks_mapped,
        }),
    );
    let notes = vec![
        format!(
            "p50/p99 = time inside one spawn call (every {SAMPLE_EVERY}th); {IN_FLIGHT} children in flight per spawner"
        ),
        format!(
            "rusm counters: {} spawned, {} steals, {} worker sleeps, {} stacks mapped",
            fmt_int(counters.spawned),
            fmt_int(counters.steals),
            fmt_int(counters.parks),
            fmt_int(counters.stacks_mapped),
        ),
    ];
    Ok(Report {
        rusm,
        baseline,
        latency: false,
        notes,
        extra,
    })
}

/// Sums the spawners' counts and samples into a `Side`.
pub(crate) fn side(name: &'static str, started: Instant, results: Vec<SpawnerResult>) -> Side {
    let elapsed = started.elapsed();
    let mut ops = 0;
    let mut samples = Vec::new();
    for (done, s) in results {
        ops += done;
        samples.extend(s);
    }
    Side {
        name,
        ops,
        elapsed,
        lat: Stats::new(samples),
    }
}

fn run_rusm(opts: &Opts) -> Result<(Side, rusm_sched::RuntimeCounters), String> {
    let rt = crate::rusm_runtime(opts.workers)?;
    let started = Instant::now();
    let deadline = started + opts.duration();
    let spawners = (0..opts.workers)
        .map(|_| rt.handle().spawn(move || rusm_spawner(deadline)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("spawning a spawner: {e}"))?;
    let mut results = Vec::with_capacity(spawners.len());
    for s in spawners {
        results.push(
            s.join()
                .map_err(|e| format!("a rusm spawner failed: {e}"))?,
        );
    }
    Ok((side("rusm-sched", started, results), rt.handle().counters()))
}

/// Runs on a fiber until `deadline`.
fn rusm_spawner(deadline: Instant) -> SpawnerResult {
    let mut q = VecDeque::with_capacity(IN_FLIGHT);
    let mut s = Sampler::new(SAMPLE_EVERY, deadline);
    let mut done = 0;
    loop {
        let t0 = s.start();
        let h = rusm_sched::spawn(|| ()).expect("spawn a child fiber");
        let over = s.done(t0);
        q.push_back(h);
        if over {
            break;
        }
        if q.len() >= IN_FLIGHT {
            done += u64::from(q.pop_front().expect("a full queue").join().is_ok());
        }
    }
    for h in q {
        done += u64::from(h.join().is_ok());
    }
    (done, s.into_samples())
}

fn run_tokio(opts: &Opts) -> Result<Side, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.workers)
        .build()
        .map_err(|e| format!("building the tokio runtime: {e}"))?;
    let started = Instant::now();
    let deadline = started + opts.duration();
    let workers = opts.workers;
    let results = rt.block_on(async move {
        let spawners: Vec<_> = (0..workers)
            .map(|_| tokio::spawn(tokio_spawner(deadline)))
            .collect();
        let mut results = Vec::with_capacity(spawners.len());
        for s in spawners {
            results.push(
                s.await
                    .map_err(|e| format!("a tokio spawner failed: {e}"))?,
            );
        }
        Ok::<_, String>(results)
    })?;
    Ok(side("tokio (baseline)", started, results))
}

/// The same loop as `rusm_spawner`, as a Tokio task.
async fn tokio_spawner(deadline: Instant) -> SpawnerResult {
    let mut q = VecDeque::with_capacity(IN_FLIGHT);
    let mut s = Sampler::new(SAMPLE_EVERY, deadline);
    let mut done = 0;
    loop {
        let t0 = s.start();
        let h = tokio::spawn(async {});
        let over = s.done(t0);
        q.push_back(h);
        if over {
            break;
        }
        if q.len() >= IN_FLIGHT {
            done += u64::from(q.pop_front().expect("a full queue").await.is_ok());
        }
    }
    for h in q {
        done += u64::from(h.await.is_ok());
    }
    (done, s.into_samples())
}
