//! Scenarios through rusm-otp (processes, mailboxes, supervisors, streams), each against a
//! baseline doing the same work in the same run.
//!
//! - `spawn-storm`: one spawner process per worker spawns children that each send one
//!   message back and exit; at `IN_FLIGHT` children outstanding the spawner receives one
//!   reply per new spawn. Rate = replies received per second (a child counts once it has
//!   run, replied and been reaped from the process table); p50/p99 = time inside the spawn
//!   call. Baseline: `tokio::spawn` of tasks that send on an unbounded mpsc.
//! - `ping-pong`: two processes pass one message back and forth with `send`/`receive`.
//!   Baseline: two Tokio tasks over two `mpsc::channel(1)`. Ratio = Tokio mean / RUSM mean.
//! - `ring`: `--count` processes (default 10,000) in a ring plus the driver; one token goes
//!   round at least 100 laps and for at least `<seconds>`. Rate = hops per second.
//!   Baseline: Tokio tasks in a ring of unbounded mpsc channels.
//! - `fault-recovery`: a one_for_one supervisor (intensity unbounded) whose only child exits
//!   abnormally as soon as it starts. Rate = restarts per second. Baseline: a Tokio task
//!   that respawns a task each time the previous one fails (JoinHandle returns an error).
//! - `stream-pipe`: one process writes 64 KiB chunks into a stream (64 KiB pipe) and
//!   another reads them. Rate = bytes per second. Baseline: an OS pipe (`std::io::pipe`)
//!   between two threads, same chunk size.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusm_otp::{ExitReason, Message, Node, Pid, Received};
use serde_json::json;
use tokio::sync::mpsc;

use crate::{Opts, Report, Sampler, Side, Stats, fmt_int, fmt_ratio};

const IN_FLIGHT: usize = 1024;
const SAMPLE_EVERY: u64 = 64;
const PINGPONG_SAMPLE_EVERY: u64 = 16;
const RING_MIN_LAPS: u64 = 100;
const CHUNK: usize = 64 * 1024;

fn node(opts: &Opts) -> Result<Node, String> {
    Ok(Node::with_runtime(crate::rusm_runtime(opts.workers)?))
}

fn tokio_rt(opts: &Opts) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.workers)
        .build()
        .map_err(|e| format!("building the tokio runtime: {e}"))
}

fn report(rusm: Side, baseline: Side, latency: bool, notes: Vec<String>) -> Report {
    Report {
        rusm,
        baseline,
        latency,
        notes,
        extra: serde_json::Map::new(),
    }
}

/// Adds a `target` line and JSON fields: `ratio >= min` is met.
fn target(r: &mut Report, what: &str, min: f64) {
    let met = r.ratio() >= min;
    r.notes.insert(
        0,
        format!("target: {what} (ratio >= {}): {}", fmt_ratio(min), if met { "met" } else { "NOT met" }),
    );
    r.extra.insert("target_ratio".into(), json!(min));
    r.extra.insert("target_met".into(), json!(met));
}

fn expect_u64(r: Received) -> u64 {
    match r {
        Received::Message(m) => m.downcast::<u64>().unwrap_or(u64::MAX),
        _ => u64::MAX,
    }
}

// ---- spawn-storm ----

use crate::spawn_storm::SpawnerResult;

pub fn spawn_storm(opts: &Opts) -> Result<Report, String> {
    let node = node(opts)?;
    let started = Instant::now();
    let deadline = started + opts.duration();
    let workers = opts.workers;
    let results = node
        .run(move || {
            let me = rusm_otp::self_pid();
            for _ in 0..workers {
                rusm_otp::spawn(move || {
                    let r = otp_spawner(deadline);
                    rusm_otp::send(me, Message::value(r));
                })
                .expect("spawn a spawner");
            }
            (0..workers)
                .map(|_| match rusm_otp::receive() {
                    Received::Message(m) => m.downcast::<SpawnerResult>().unwrap_or_default(),
                    _ => SpawnerResult::default(),
                })
                .collect::<Vec<_>>()
        })
        .map_err(|e| format!("the rusm spawners failed: {e}"))?;
    let rusm = crate::spawn_storm::side("rusm-otp", started, results);
    let left = node.processes().len();
    drop(node);

    let rt = tokio_rt(opts)?;
    let started = Instant::now();
    let deadline = started + opts.duration();
    let results = rt.block_on(async move {
        let spawners: Vec<_> = (0..workers).map(|_| tokio::spawn(tokio_spawner(deadline))).collect();
        let mut out = Vec::new();
        for s in spawners {
            out.push(s.await.unwrap_or_default());
        }
        out
    });
    let baseline = crate::spawn_storm::side("tokio (baseline)", started, results);
    let mut r = report(
        rusm,
        baseline,
        false,
        vec![
            format!(
                "rusm: spawn + reply message + exit/reap per child; {IN_FLIGHT} in flight per spawner; p50/p99 = spawn call (every {SAMPLE_EVERY}th)"
            ),
            format!("processes left in the table after the run: {left}"),
        ],
    );
    target(&mut r, "spawn storm >= 1.0x tokio", 1.0);
    Ok(r)
}


fn otp_spawner(deadline: Instant) -> SpawnerResult {
    let me = rusm_otp::self_pid();
    let mut s = Sampler::new(SAMPLE_EVERY, deadline);
    let (mut outstanding, mut done) = (0usize, 0u64);
    loop {
        let t0 = s.start();
        rusm_otp::spawn(move || rusm_otp::send(me, Message::value(())))
            .expect("spawn a child process");
        let over = s.done(t0);
        outstanding += 1;
        if over {
            break;
        }
        if outstanding >= IN_FLIGHT {
            let _ = rusm_otp::receive();
            outstanding -= 1;
            done += 1;
        }
    }
    for _ in 0..outstanding {
        let _ = rusm_otp::receive();
        done += 1;
    }
    (done, s.into_samples())
}

async fn tokio_spawner(deadline: Instant) -> SpawnerResult {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut s = Sampler::new(SAMPLE_EVERY, deadline);
    let (mut outstanding, mut done) = (0usize, 0u64);
    loop {
        let t0 = s.start();
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(());
        });
        let over = s.done(t0);
        outstanding += 1;
        if over {
            break;
        }
        if outstanding >= IN_FLIGHT {
            let _ = rx.recv().await;
            outstanding -= 1;
            done += 1;
        }
    }
    for _ in 0..outstanding {
        let _ = rx.recv().await;
        done += 1;
    }
    (done, s.into_samples())
}

// ---- ping-pong ----

pub fn ping_pong(opts: &Opts) -> Result<Report, String> {
    let node = node(opts)?;
    let d = opts.duration();
    let (ops, elapsed, samples) = node
        .run(move || {
            // B learns A's pid once, as the Tokio tasks are wired once; then both pass
            // `()` (no allocation on either side).
            let b = rusm_otp::spawn(|| {
                let Received::Message(m) = rusm_otp::receive() else { return };
                let Ok(a) = m.downcast::<Pid>() else { return };
                loop {
                    match rusm_otp::receive() {
                        Received::Message(m) if m.downcast_ref::<()>().is_some() => {
                            rusm_otp::send(a, Message::value(()));
                        }
                        _ => return,
                    }
                }
            })
            .expect("spawn B");
            let me = rusm_otp::self_pid();
            rusm_otp::send(b, Message::value(me));
            let started = Instant::now();
            let mut s = Sampler::new(PINGPONG_SAMPLE_EVERY, started + d);
            loop {
                let t0 = s.start();
                rusm_otp::send(b, Message::value(()));
                let _ = rusm_otp::receive();
                if s.done(t0) {
                    break;
                }
            }
            let elapsed = started.elapsed();
            rusm_otp::send(b, Message::value(0u8));
            (s.ops(), elapsed, s.into_samples())
        })
        .map_err(|e| format!("process A failed: {e}"))?;
    let rusm = Side {
        name: "rusm-otp",
        ops,
        elapsed,
        lat: Stats::new(samples),
    };
    drop(node);

    // The same Tokio side as fiber-pingpong.
    let baseline = crate::pingpong::run_tokio(opts)?;
    let mut r = report(
        rusm,
        baseline,
        true,
        vec![format!(
            "a round trip is send + receive each way through the mailboxes; p50/p99 from every {PINGPONG_SAMPLE_EVERY}th"
        )],
    );
    target(&mut r, "rusm mean round trip <= 0.6x tokio's", 1.0 / 0.6);
    Ok(r)
}

// ---- ring ----

pub fn ring(opts: &Opts) -> Result<Report, String> {
    let n = opts.count.unwrap_or(10_000);
    let d = opts.duration();
    let node = node(opts)?;
    let (hops, elapsed, laps, setup) = node
        .run(move || {
            let t0 = Instant::now();
            let mut next = rusm_otp::self_pid();
            for _ in 0..n {
                let to = next;
                next = rusm_otp::spawn(move || {
                    loop {
                        let hops = expect_u64(rusm_otp::receive());
                        if hops == u64::MAX {
                            rusm_otp::send(to, Message::value(hops));
                            return;
                        }
                        rusm_otp::send(to, Message::value(hops + 1));
                    }
                })
                .expect("spawn a ring member");
            }
            let first = next;
            let setup = t0.elapsed();
            let started = Instant::now();
            let (mut hops, mut laps) = (0u64, 0u64);
            while laps < RING_MIN_LAPS || started.elapsed() < d {
                rusm_otp::send(first, Message::value(0u64));
                hops += expect_u64(rusm_otp::receive()) + 1;
                laps += 1;
            }
            let elapsed = started.elapsed();
            rusm_otp::send(first, Message::value(u64::MAX));
            let _ = rusm_otp::receive();
            (hops, elapsed, laps, setup)
        })
        .map_err(|e| format!("the ring driver failed: {e}"))?;
    let rusm = Side {
        name: "rusm-otp",
        ops: hops,
        elapsed,
        lat: Stats::default(),
    };
    drop(node);

    let rt = tokio_rt(opts)?;
    let (t_hops, t_elapsed, t_laps, t_setup) = rt.block_on(async move {
        let t0 = Instant::now();
        let (first_tx, mut back) = mpsc::unbounded_channel::<u64>();
        let mut next = first_tx;
        for _ in 0..n {
            let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
            let to = next;
            tokio::spawn(async move {
                while let Some(h) = rx.recv().await {
                    if h == u64::MAX {
                        let _ = to.send(h);
                        return;
                    }
                    let _ = to.send(h + 1);
                }
            });
            next = tx;
        }
        let setup = t0.elapsed();
        let started = Instant::now();
        let (mut hops, mut laps) = (0u64, 0u64);
        while laps < RING_MIN_LAPS || started.elapsed() < d {
            let _ = next.send(0);
            hops += back.recv().await.unwrap_or(0) + 1;
            laps += 1;
        }
        let elapsed = started.elapsed();
        let _ = next.send(u64::MAX);
        let _ = back.recv().await;
        (hops, elapsed, laps, setup)
    });
    let baseline = Side {
        name: "tokio (baseline)",
        ops: t_hops,
        elapsed: t_elapsed,
        lat: Stats::default(),
    };
    let mut r = report(
        rusm,
        baseline,
        false,
        vec![
            format!(
                "ring of {} processes + driver; laps: rusm {laps}, tokio {t_laps}; rate = hops/s",
                fmt_int(n as u64)
            ),
            format!(
                "ring setup (spawn {} members): rusm {:.1} ms, tokio {:.1} ms",
                fmt_int(n as u64),
                setup.as_secs_f64() * 1e3,
                t_setup.as_secs_f64() * 1e3
            ),
        ],
    );
    r.extra.insert("ring_size".into(), json!(n));
    r.extra.insert("laps".into(), json!({"rusm": laps, "tokio": t_laps}));
    target(&mut r, "ring >= 1.0x tokio", 1.0);
    Ok(r)
}

// ---- fault-recovery ----

pub fn fault_recovery(opts: &Opts) -> Result<Report, String> {
    use rusm_otp::supervisor::{ChildSpec, Restart, Strategy, SupervisorSpec};
    let node = node(opts)?;
    let starts = Arc::new(AtomicU64::new(0));
    let s2 = starts.clone();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(u32::MAX, Duration::from_secs(1))
        .child(ChildSpec::new("crasher", Restart::Permanent, move || {
            s2.fetch_add(1, Ordering::Relaxed);
            rusm_otp::exit_with(ExitReason::Other("crash".into()));
        }));
    let started = Instant::now();
    let sup = node.start_supervisor(spec).map_err(|e| e.to_string())?;
    std::thread::sleep(opts.duration());
    let restarts = starts.load(Ordering::Relaxed).saturating_sub(1);
    let elapsed = started.elapsed();
    node.exit(sup, ExitReason::Kill);
    let rusm = Side {
        name: "rusm-otp",
        ops: restarts,
        elapsed,
        lat: Stats::default(),
    };
    drop(node);

    let rt = tokio_rt(opts)?;
    let stop = Arc::new(AtomicBool::new(false));
    let t_starts = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let sup = {
        let (stop, t_starts) = (stop.clone(), t_starts.clone());
        rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let c = t_starts.clone();
                let child = tokio::spawn(async move {
                    c.fetch_add(1, Ordering::Relaxed);
                    Err::<(), &str>("crash")
                });
                // The supervising task sees the failure and restarts.
                let _failed = matches!(child.await, Ok(Err(_)) | Err(_));
            }
        })
    };
    std::thread::sleep(opts.duration());
    let t_restarts = t_starts.load(Ordering::Relaxed).saturating_sub(1);
    let t_elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = rt.block_on(sup);
    let baseline = Side {
        name: "tokio (baseline)",
        ops: t_restarts,
        elapsed: t_elapsed,
        lat: Stats::default(),
    };
    Ok(report(
        rusm,
        baseline,
        false,
        vec![
            "rusm: supervisor traps the child's exit signal, counts it in its intensity window, spawn_links the next".into(),
            "tokio: a loop that awaits the failed task's JoinHandle and spawns the next (no links, no intensity)".into(),
        ],
    ))
}

// ---- stream-pipe ----

pub fn stream_pipe(opts: &Opts) -> Result<Report, String> {
    let node = node(opts)?;
    let d = opts.duration();
    let (bytes, written, elapsed) = node
        .run(move || {
            let me = rusm_otp::self_pid();
            let reader = rusm_otp::spawn(move || {
                let Received::Stream(s) = rusm_otp::receive() else { return };
                rusm_otp::send(me, Message::value(drain(s)));
            })
            .expect("spawn the reader");
            let mut w = rusm_otp::stream::open(reader).expect("open a stream");
            let chunk = vec![0x5au8; CHUNK];
            let started = Instant::now();
            let mut written = 0u64;
            while started.elapsed() < d {
                if w.write_all(&chunk).is_err() {
                    break;
                }
                written += CHUNK as u64;
            }
            w.close();
            let total = expect_u64(rusm_otp::receive());
            (total, written, started.elapsed())
        })
        .map_err(|e| format!("the stream writer failed: {e}"))?;
    if bytes != written {
        return Err(format!("the reader got {bytes} bytes of {written} written"));
    }
    let rusm = Side {
        name: "rusm-otp",
        ops: bytes,
        elapsed,
        lat: Stats::default(),
    };
    drop(node);

    let (rx, mut tx) = std::io::pipe().map_err(|e| format!("creating an OS pipe: {e}"))?;
    let reader = std::thread::spawn(move || drain(rx));
    let chunk = vec![0x5au8; CHUNK];
    let started = Instant::now();
    while started.elapsed() < d {
        tx.write_all(&chunk).map_err(|e| format!("writing the OS pipe: {e}"))?;
    }
    drop(tx);
    let t_bytes = reader.join().map_err(|_| "the pipe reader panicked")?;
    let baseline = Side {
        name: "os pipe",
        ops: t_bytes,
        elapsed: started.elapsed(),
        lat: Stats::default(),
    };
    let mut r = report(
        rusm,
        baseline,
        false,
        vec![format!(
            "rate = bytes/s; {} KiB writes and reads; rusm: a 64 KiB stream between two processes; baseline: a 64 KiB OS pipe between two threads",
            CHUNK / 1024
        )],
    );
    target(&mut r, "stream-pipe >= 1.0x an OS pipe", 1.0);
    Ok(r)
}

/// Reads `r` to its end in `CHUNK` reads; the byte count (an error ends it too).
fn drain(mut r: impl Read) -> u64 {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    total
}
