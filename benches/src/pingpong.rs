//! `fiber-pingpong`: fibers A and B pass one token back and forth; a round trip is
//! A -> B -> A. Each direction is a slot `Mutex<(token present, parked receiver's waker)>`:
//! the sender sets the flag and wakes the stored waker; the receiver takes the flag or
//! stores its waker and parks. Baseline: two Tokio tasks over two `mpsc::channel(1)`.
//!
//! Rate = round trips per second; mean = wall time / round trips; p50/p99 from every
//! `SAMPLE_EVERY`th round trip. Ratio = Tokio mean / RUSM mean (target >= 1/0.6 = 1.67).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::Instant;

use serde_json::json;
use tokio::sync::mpsc;

use crate::{Opts, Report, Sampler, Side, Stats, fmt_int, fmt_ratio};

const SAMPLE_EVERY: u64 = 16;
/// RUSM's round trip should be at most 0.6x Tokio's.
const TARGET_RATIO: f64 = 1.0 / 0.6;

pub fn run(opts: &Opts) -> Result<Report, String> {
    let (rusm, counters) = run_rusm(opts)?;
    let baseline = run_tokio(opts)?;
    let mut report = Report {
        rusm,
        baseline,
        latency: true,
        notes: Vec::new(),
        extra: serde_json::Map::new(),
    };
    let ratio = report.ratio();
    let met = ratio >= TARGET_RATIO;
    report.notes = vec![
        format!(
            "target: rusm mean round trip <= 0.6x tokio's (ratio >= {}): {}",
            fmt_ratio(TARGET_RATIO),
            if met { "met" } else { "NOT met" }
        ),
        format!(
            "p50/p99 from every {SAMPLE_EVERY}th round trip; rusm counters: {} steals, {} worker sleeps",
            fmt_int(counters.steals),
            fmt_int(counters.parks),
        ),
    ];
    report
        .extra
        .insert("target_ratio".into(), json!(TARGET_RATIO));
    report.extra.insert("target_met".into(), json!(met));
    report
        .extra
        .insert("sample_every".into(), json!(SAMPLE_EVERY));
    report.extra.insert(
        "rusm_counters".into(),
        json!({ "steals": counters.steals, "worker_sleeps": counters.parks }),
    );
    Ok(report)
}

/// The `Side` of a finished run that started at `started`.
fn side(name: &'static str, started: Instant, s: Sampler) -> Side {
    Side {
        name,
        ops: s.ops(),
        elapsed: started.elapsed(),
        lat: Stats::new(s.into_samples()),
    }
}

/// One direction of the RUSM ping-pong: (token present, parked receiver's waker).
#[derive(Debug, Default)]
struct Hop(Mutex<(bool, Option<Waker>)>);

impl Hop {
    fn send(&self) {
        let waker = {
            let mut g = self.0.lock().expect("hop lock");
            g.0 = true;
            g.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Parks the calling fiber (whose waker is `me`) until a token is here, and takes it.
    fn recv(&self, me: &Waker) {
        loop {
            {
                let mut g = self.0.lock().expect("hop lock");
                if g.0 {
                    g.0 = false;
                    return;
                }
                if !g.1.as_ref().is_some_and(|w| w.will_wake(me)) {
                    g.1 = Some(me.clone());
                }
            } // the guard is dropped before parking (no guard across a park)
            rusm_sched::park();
        }
    }
}

fn run_rusm(opts: &Opts) -> Result<(Side, rusm_sched::RuntimeCounters), String> {
    let rt = crate::rusm_runtime(opts.workers)?;
    let ab = Arc::new(Hop::default());
    let ba = Arc::new(Hop::default());
    let stop = Arc::new(AtomicBool::new(false));
    let b = {
        let (ab, ba, stop) = (ab.clone(), ba.clone(), stop.clone());
        rt.handle().spawn(move || {
            let me = rusm_sched::current_waker().expect("a fiber has a waker");
            loop {
                ab.recv(&me);
                if stop.load(Ordering::Acquire) {
                    break;
                }
                ba.send();
            }
        })
    }
    .map_err(|e| format!("spawning fiber B: {e}"))?;
    let d = opts.duration();
    let a = rt
        .handle()
        .spawn(move || {
            let me = rusm_sched::current_waker().expect("a fiber has a waker");
            let started = Instant::now();
            let mut s = Sampler::new(SAMPLE_EVERY, started + d);
            loop {
                let t0 = s.start();
                ab.send();
                ba.recv(&me);
                if s.done(t0) {
                    break;
                }
            }
            let side = side("rusm-sched", started, s);
            // Release B: it sees `stop` after taking this last token.
            stop.store(true, Ordering::Release);
            ab.send();
            side
        })
        .map_err(|e| format!("spawning fiber A: {e}"))?;
    let side = a.join().map_err(|e| format!("fiber A failed: {e}"))?;
    b.join().map_err(|e| format!("fiber B failed: {e}"))?;
    Ok((side, rt.handle().counters()))
}

pub(crate) fn run_tokio(opts: &Opts) -> Result<Side, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.workers)
        .build()
        .map_err(|e| format!("building the tokio runtime: {e}"))?;
    let d = opts.duration();
    rt.block_on(async move {
        let (tx_ab, mut rx_ab) = mpsc::channel::<()>(1);
        let (tx_ba, mut rx_ba) = mpsc::channel::<()>(1);
        let b = tokio::spawn(async move {
            while rx_ab.recv().await.is_some() {
                if tx_ba.send(()).await.is_err() {
                    break;
                }
            }
        });
        let a = tokio::spawn(async move {
            let started = Instant::now();
            let mut s = Sampler::new(SAMPLE_EVERY, started + d);
            loop {
                let t0 = s.start();
                tx_ab.send(()).await.map_err(|_| "task B hung up")?;
                rx_ba.recv().await.ok_or("task B hung up")?;
                if s.done(t0) {
                    break;
                }
            }
            // Dropping `tx_ab` (at the end of this task) ends B's loop.
            Ok::<Side, String>(side("tokio (baseline)", started, s))
        });
        let side = a.await.map_err(|e| format!("task A failed: {e}"))??;
        b.await.map_err(|e| format!("task B failed: {e}"))?;
        Ok::<Side, String>(side)
    })
}
