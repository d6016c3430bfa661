//! `idle-fibers` and `idle-processes`: the memory cost of parked tasks.
//!
//! `idle-processes` is the same measurement one layer up: rusm-otp processes parked in
//! `receive` (process table entry, state and empty mailbox included), each sent to by pid
//! to stop, against Tokio tasks each awaiting its own unbounded mpsc receiver (a mailbox),
//! stopped through their senders. Target: 5,000 B per parked process.
//!
//! Each side runs in a child process of its own (`rusm-bench idle-side <rusm|tokio> <count>
//! <workers> <hold-seconds>`, which prints one JSON object), so memory the first side freed
//! cannot be reused by the second and flatter it. In the child: build the runtime and warm
//! it up, read VmRSS, VmPTE and the number of mappings from /proc/self, spawn `count` tasks
//! that each park until a stop flag is set, wait until every one has parked once (at most
//! 120 s), hold them idle for `<seconds>`, read /proc/self again, then set the flag, wake
//! everyone and join all.
//!
//! RUSM side: fibers on a runtime with the default stack size and `GuardMode::Auto`, parked
//! with `park()`, woken through wakers collected in a slot table allocated (and touched)
//! before the first reading. Tokio side: tasks awaiting one shared `Notify`. Both hold a
//! `JoinHandle` per task, which is counted (rusm 16 B, tokio 8 B).

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::{Opts, cpus, fmt_int, fmt_ns, fmt_ratio, fmt_secs, header, hostname, nanos};

/// The hidden subcommand that runs one side.
pub const CHILD_COMMAND: &str = "idle-side";
/// Target RSS per parked fiber: 4.5 KiB.
const TARGET_BYTES: f64 = 4608.0;
/// Target RSS per parked process: 5 KB.
const TARGET_PROCESS_BYTES: f64 = 5000.0;

/// The two sides (child-process names) and the target of a scenario.
fn sides(scenario: &str) -> (&'static str, &'static str, f64, &'static str) {
    if scenario == "idle-processes" {
        ("otp", "tokio-mpsc", TARGET_PROCESS_BYTES, "process")
    } else {
        ("rusm", "tokio", TARGET_BYTES, "fiber")
    }
}

fn side_name(side: &str) -> &'static str {
    match side {
        "rusm" => "rusm-sched",
        "otp" => "rusm-otp",
        _ => "tokio (baseline)",
    }
}
const MILLION: usize = 1_000_000;
const PARK_TIMEOUT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(10);
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

// ---- parent ----

pub fn run(opts: &Opts) -> Result<(), String> {
    let (rusm_side_name, tokio_side_name, target, unit) = sides(&opts.scenario);
    let units = if unit == "fiber" { "fibers" } else { "processes" };
    let count = opts.count.unwrap_or(100_000);
    let rusm = run_child(rusm_side_name, opts);
    let tokio = run_child(tokio_side_name, opts);
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64);
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let max_maps = read("/proc/sys/vm/max_map_count")
        .trim()
        .parse::<u64>()
        .ok();
    let mem_total = kb_field(&read("/proc/meminfo"), "MemTotal").map(|kb| kb as f64 * 1024.0);

    let rusm_bytes = num(&rusm, "bytes_per_task");
    let ratio = rusm_bytes
        .zip(num(&tokio, "bytes_per_task"))
        .map(|(r, t)| r / t);
    let ratio_meaning = format!(
        "rusm bytes per parked {unit} / baseline bytes per parked task (lower is better for rusm)"
    );
    let within_target = rusm_bytes.map(|b| b <= target);
    let projected = rusm_bytes.map(|b| b * MILLION as f64);
    let measured = count >= MILLION;
    let gib = |b: Option<f64>| b.map_or("-".to_owned(), |b| format!("{:.2} GiB", b / GIB));
    let (million_fit, million_note) = match (rusm.get("error").and_then(Value::as_str), measured) {
        (None, true) => (
            Some(true),
            format!(
                "fit: {} {units} parked in {} of RSS, {} mappings (vm.max_map_count {})",
                fmt_int(count as u64),
                gib(rusm_bytes.map(|b| b * count as f64)),
                fmt_int(num(&rusm, "maps_after").unwrap_or(0.0) as u64),
                max_maps.map_or("-".to_owned(), fmt_int),
            ),
        ),
        (Some(e), true) => (Some(false), format!("did NOT fit: {e}")),
        (_, false) => (
            None,
            format!(
                "not measured (use --count 1000000); RSS projected from this run: {} (MemTotal {})",
                gib(projected),
                gib(mem_total),
            ),
        ),
    };

    if opts.json {
        let out = json!({
            "scenario": opts.scenario,
            "workers": opts.workers,
            "seconds": opts.seconds,
            "count": count,
            "machine": hostname(),
            "cpus": cpus(),
            "rusm": rusm,
            "baseline": tokio,
            "ratio": ratio,
            "ratio_meaning": ratio_meaning,
            "target_bytes_per_task": target,
            "within_target": within_target,
            "max_map_count": max_maps,
            "mem_total_bytes": mem_total,
            "one_million": {
                "measured": measured,
                "fit": million_fit,
                "projected_rss_bytes": projected,
                "note": million_note,
            },
        });
        println!("{out}");
        return Ok(());
    }

    let what = format!(
        "{} tasks each, hold {} s",
        fmt_int(count as u64),
        fmt_secs(opts.seconds)
    );
    println!("{}", header(opts, &what));
    println!(
        "{:<16}{:>12}{:>12}{:>10}{:>11}{:>12}{:>11}",
        "", "bytes/task", "PTE B/task", "mappings", "spawn", "all parked", "teardown"
    );
    for v in [&rusm, &tokio] {
        let name = v.get("name").and_then(Value::as_str).unwrap_or("?");
        if let Some(e) = v.get("error").and_then(Value::as_str) {
            println!("{name:<16}  FAILED: {e}");
            continue;
        }
        let n = |k: &str| num(v, k).unwrap_or(f64::NAN);
        println!(
            "{name:<16}{:>12}{:>12.1}{:>10}{:>11}{:>12}{:>11}",
            fmt_int(n("bytes_per_task").max(0.0).round() as u64),
            n("pte_bytes_per_task"),
            fmt_int(n("maps_after") as u64),
            fmt_ns(Some(n("spawn_ns"))),
            fmt_ns(Some(n("all_parked_ns"))),
            fmt_ns(Some(n("teardown_ns"))),
        );
    }
    println!(
        "ratio = {ratio_meaning}: {}",
        ratio.map_or("-".to_owned(), fmt_ratio)
    );
    if let Some(b) = rusm_bytes {
        let verdict = if b <= target {
            "within target"
        } else {
            "OVER target"
        };
        println!(
            "rusm: {} B per parked {unit} vs target {} B: {verdict}",
            fmt_int(b.max(0.0).round() as u64),
            fmt_int(target as u64),
        );
    }
    println!("1M {units}: {million_note}");
    if unit == "fiber" {
        println!("per-task figures include the JoinHandle the bench holds (rusm 16 B, tokio 8 B)");
    } else {
        println!("per-task figures include the handle the bench holds (rusm Pid 8 B, tokio UnboundedSender 8 B)");
    }
    Ok(())
}

/// Runs one side in a child process and returns its JSON object; a failed side is an
/// object with `name` and `error` (not fatal: failing to fit `count` tasks is a result).
fn run_child(side: &str, opts: &Opts) -> Value {
    let name = side_name(side);
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            return json!({ "name": name, "error": format!("cannot find own executable: {e}") });
        }
    };
    let out = Command::new(exe)
        .args([CHILD_COMMAND, side])
        .args([
            opts.count.unwrap_or(100_000).to_string(),
            opts.workers.to_string(),
            opts.seconds.to_string(),
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output();
    let error = match out {
        Ok(out) if out.status.success() => match serde_json::from_slice::<Value>(&out.stdout) {
            Ok(v) if v.get("name").is_some() => return v,
            _ => "the child printed no result".to_owned(),
        },
        Ok(out) => format!("the child failed ({})", out.status),
        Err(e) => format!("cannot start the child: {e}"),
    };
    json!({ "name": name, "error": error })
}

// ---- child ----

/// Process-wide memory figures from /proc/self.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe {
    pub(crate) rss_kb: u64,
    pub(crate) pte_kb: u64,
    pub(crate) maps: u64,
}

pub(crate) fn probe() -> Probe {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    Probe {
        rss_kb: kb_field(&status, "VmRSS").unwrap_or(0),
        pte_kb: kb_field(&status, "VmPTE").unwrap_or(0),
        maps: std::fs::read_to_string("/proc/self/maps").map_or(0, |m| m.lines().count() as u64),
    }
}

/// The value of a `Name:   123 kB` line (/proc/self/status, /proc/meminfo).
fn kb_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

/// One side's readings.
#[derive(Debug)]
struct Measured {
    before: Probe,
    after: Probe,
    spawn: Duration,
    all_parked: Duration,
    teardown: Duration,
    stacks_mapped: Option<u64>,
}

impl Measured {
    /// The side's JSON object, as the parent prints it under `rusm` / `baseline`.
    fn json(&self, name: &str, count: usize) -> Value {
        let per_task =
            |before: u64, after: u64| (after as f64 - before as f64) * 1024.0 / count as f64;
        json!({
            "name": name,
            "ops": count,
            "rate_per_s": count as f64 / self.all_parked.as_secs_f64().max(1e-9),
            "p50_ns": null,
            "p99_ns": null,
            "bytes_per_task": per_task(self.before.rss_kb, self.after.rss_kb),
            "pte_bytes_per_task": per_task(self.before.pte_kb, self.after.pte_kb),
            "rss_before_kb": self.before.rss_kb,
            "rss_after_kb": self.after.rss_kb,
            "maps_before": self.before.maps,
            "maps_after": self.after.maps,
            "spawn_ns": nanos(self.spawn),
            "all_parked_ns": nanos(self.all_parked),
            "teardown_ns": nanos(self.teardown),
            "stacks_mapped": self.stacks_mapped,
        })
    }
}

fn parse_child(args: &[String]) -> Option<(&str, usize, usize, Duration)> {
    let [side, count, workers, hold] = args else {
        return None;
    };
    let hold = Duration::try_from_secs_f64(hold.parse().ok()?).ok()?;
    Some((
        side.as_str(),
        count.parse().ok()?,
        workers.parse().ok()?,
        hold,
    ))
}

/// Entry point of the child: prints its side's JSON object (with `error` on failure).
pub fn child_main(args: &[String]) {
    let Some((side, count, workers, hold)) = parse_child(args) else {
        eprintln!("usage: rusm-bench {CHILD_COMMAND} <rusm|tokio|otp|tokio-mpsc> <count> <workers> <hold-s>");
        std::process::exit(2);
    };
    let (name, result) = match side {
        "rusm" => (side_name(side), rusm_side(count, workers, hold)),
        "tokio" => (side_name(side), tokio_side(count, workers, hold)),
        "otp" => (side_name(side), otp_side(count, workers, hold)),
        "tokio-mpsc" => (side_name(side), tokio_mpsc_side(count, workers, hold)),
        other => (other, Err(format!("unknown side {other:?}"))),
    };
    match result {
        Ok(m) => println!("{}", m.json(name, count)),
        Err(e) => println!("{}", json!({ "name": name, "error": e })),
    }
}

/// After the spawns: waits until all `count` have parked, holds them idle for `hold`, and
/// reads memory. Returns (spawn time, time until all parked, the reading).
fn hold_parked(
    parked: &AtomicUsize,
    count: usize,
    t0: Instant,
    hold: Duration,
) -> Result<(Duration, Duration, Probe), String> {
    let spawn = t0.elapsed();
    wait_parked(parked, count, t0)?;
    let all_parked = t0.elapsed();
    std::thread::sleep(hold);
    Ok((spawn, all_parked, probe()))
}

fn wait_parked(parked: &AtomicUsize, count: usize, since: Instant) -> Result<(), String> {
    loop {
        let n = parked.load(Ordering::Acquire);
        if n >= count {
            return Ok(());
        }
        if since.elapsed() > PARK_TIMEOUT {
            return Err(format!(
                "only {n} of {count} tasks had parked after {PARK_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(POLL);
    }
}

fn rusm_side(count: usize, workers: usize, hold: Duration) -> Result<Measured, String> {
    let rt = crate::rusm_runtime(workers)?;
    // Warm up: worker threads running, first stack chunk mapped.
    for _ in 0..workers * 8 {
        rt.handle()
            .spawn(|| ())
            .map_err(|e| e.to_string())?
            .join()
            .map_err(|e| e.to_string())?;
    }
    // One waker slot per fiber, written now so its pages are not counted as fiber memory.
    let mut slots: Vec<Option<Waker>> = Vec::with_capacity(count);
    slots.resize_with(count, || None);
    let wakers = Arc::new(Mutex::new(slots));
    let parked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    std::thread::sleep(Duration::from_millis(50));

    let before = probe();
    let t0 = Instant::now();
    let spawner = {
        let (wakers, parked, stop) = (wakers.clone(), parked.clone(), stop.clone());
        rt.handle().spawn(move || {
            let mut handles = Vec::with_capacity(count);
            for i in 0..count {
                let (wakers, parked, stop) = (wakers.clone(), parked.clone(), stop.clone());
                let h = rusm_sched::spawn(move || {
                    let me = rusm_sched::current_waker().expect("a fiber has a waker");
                    wakers.lock().expect("waker slots")[i] = Some(me);
                    parked.fetch_add(1, Ordering::Release);
                    while !stop.load(Ordering::Acquire) {
                        rusm_sched::park();
                    }
                })
                .map_err(|e| format!("spawning fiber #{i} failed: {e}"))?;
                handles.push(h);
            }
            Ok::<_, String>(handles)
        })
    }
    .map_err(|e| format!("spawning the spawner: {e}"))?;
    let handles = spawner
        .join()
        .map_err(|e| format!("the spawner failed: {e}"))??;
    let (spawn, all_parked, after) = hold_parked(&parked, count, t0, hold)?;
    let stacks = rt.handle().counters().stacks_mapped;

    let t1 = Instant::now();
    stop.store(true, Ordering::Release);
    let ws: Vec<Waker> = wakers
        .lock()
        .expect("waker slots")
        .iter_mut()
        .filter_map(Option::take)
        .collect();
    for w in ws {
        w.wake();
    }
    for h in handles {
        h.join()
            .map_err(|e| format!("joining an idle fiber: {e}"))?;
    }
    let teardown = t1.elapsed();
    Ok(Measured {
        before,
        after,
        spawn,
        all_parked,
        teardown,
        stacks_mapped: Some(stacks),
    })
}

/// A Tokio runtime with its workers running (the warm-up both Tokio sides do).
fn warm_tokio(workers: usize) -> Result<tokio::runtime::Runtime, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .map_err(|e| format!("building the tokio runtime: {e}"))?;
    rt.block_on(async move {
        for _ in 0..workers * 8 {
            let _ = tokio::spawn(async {}).await;
        }
    });
    Ok(rt)
}

fn tokio_side(count: usize, workers: usize, hold: Duration) -> Result<Measured, String> {
    let rt = warm_tokio(workers)?;
    let notify = Arc::new(Notify::new());
    let parked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    std::thread::sleep(Duration::from_millis(50));

    let before = probe();
    let t0 = Instant::now();
    let spawner = {
        let (notify, parked, stop) = (notify.clone(), parked.clone(), stop.clone());
        async move {
            let mut handles = Vec::with_capacity(count);
            for _ in 0..count {
                let (notify, parked, stop) = (notify.clone(), parked.clone(), stop.clone());
                handles.push(tokio::spawn(async move {
                    let mut first = true;
                    loop {
                        // Registered before the stop check, so a notify_waiters after the
                        // flag is set cannot be missed.
                        let notified = notify.notified();
                        let mut notified = std::pin::pin!(notified);
                        notified.as_mut().enable();
                        if first {
                            parked.fetch_add(1, Ordering::Release);
                            first = false;
                        }
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        notified.await;
                    }
                }));
            }
            handles
        }
    };
    let handles = rt
        .block_on(async move { tokio::spawn(spawner).await })
        .map_err(|e| format!("the tokio spawner failed: {e}"))?;
    let (spawn, all_parked, after) = hold_parked(&parked, count, t0, hold)?;

    let t1 = Instant::now();
    stop.store(true, Ordering::Release);
    notify.notify_waiters();
    rt.block_on(async move {
        for h in handles {
            h.await.map_err(|e| format!("joining an idle task: {e}"))?;
        }
        Ok::<(), String>(())
    })?;
    let teardown = t1.elapsed();
    Ok(Measured {
        before,
        after,
        spawn,
        all_parked,
        teardown,
        stacks_mapped: None,
    })
}

fn otp_side(count: usize, workers: usize, hold: Duration) -> Result<Measured, String> {
    use rusm_otp::{Message, Received};
    let node = rusm_otp::Node::with_runtime(crate::rusm_runtime(workers)?);
    // Warm up: worker threads running, first stack chunk mapped, table shards touched.
    node.run(move || {
        for _ in 0..workers * 8 {
            let _ = rusm_otp::spawn_monitor(|| ());
            let _ = rusm_otp::receive();
        }
    })
    .map_err(|e| format!("warm-up: {e}"))?;
    let parked = Arc::new(AtomicUsize::new(0));
    let exited = Arc::new(AtomicUsize::new(0));
    std::thread::sleep(Duration::from_millis(50));

    let before = probe();
    let t0 = Instant::now();
    let pids = {
        let (parked, exited) = (parked.clone(), exited.clone());
        node.run(move || {
            let mut pids = Vec::with_capacity(count);
            for i in 0..count {
                let (parked, exited) = (parked.clone(), exited.clone());
                let pid = rusm_otp::spawn(move || {
                    parked.fetch_add(1, Ordering::Release);
                    // Parked in receive until the stop message.
                    while !matches!(rusm_otp::receive(), Received::Message(_)) {}
                    exited.fetch_add(1, Ordering::Release);
                })
                .map_err(|e| format!("spawning process #{i} failed: {e}"))?;
                pids.push(pid);
            }
            Ok::<_, String>(pids)
        })
        .map_err(|e| format!("the spawner failed: {e}"))??
    };
    let (spawn, all_parked, after) = hold_parked(&parked, count, t0, hold)?;
    let stacks = node.handle().counters().stacks_mapped;

    let t1 = Instant::now();
    for pid in pids {
        node.send(pid, Message::Bytes(Vec::new()));
    }
    wait_parked(&exited, count, t1)?;
    let end = Instant::now() + PARK_TIMEOUT;
    while !node.processes().is_empty() {
        if Instant::now() > end {
            return Err("processes left in the table after every one exited".into());
        }
        std::thread::sleep(POLL);
    }
    let teardown = t1.elapsed();
    Ok(Measured {
        before,
        after,
        spawn,
        all_parked,
        teardown,
        stacks_mapped: Some(stacks),
    })
}

fn tokio_mpsc_side(count: usize, workers: usize, hold: Duration) -> Result<Measured, String> {
    let rt = warm_tokio(workers)?;
    let parked = Arc::new(AtomicUsize::new(0));
    std::thread::sleep(Duration::from_millis(50));

    let before = probe();
    let t0 = Instant::now();
    let spawner = {
        let parked = parked.clone();
        async move {
            let mut tasks = Vec::with_capacity(count);
            for _ in 0..count {
                let parked = parked.clone();
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
                let h = tokio::spawn(async move {
                    parked.fetch_add(1, Ordering::Release);
                    let _ = rx.recv().await;
                });
                tasks.push((tx, h));
            }
            tasks
        }
    };
    let tasks = rt
        .block_on(async move { tokio::spawn(spawner).await })
        .map_err(|e| format!("the tokio spawner failed: {e}"))?;
    let (spawn, all_parked, after) = hold_parked(&parked, count, t0, hold)?;

    let t1 = Instant::now();
    rt.block_on(async move {
        let mut hs = Vec::with_capacity(tasks.len());
        for (tx, h) in tasks {
            let _ = tx.send(Vec::new());
            hs.push(h);
        }
        for h in hs {
            h.await.map_err(|e| format!("joining an idle task: {e}"))?;
        }
        Ok::<(), String>(())
    })?;
    let teardown = t1.elapsed();
    Ok(Measured {
        before,
        after,
        spawn,
        all_parked,
        teardown,
        stacks_mapped: None,
    })
}
