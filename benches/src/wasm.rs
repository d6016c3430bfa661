//! Wasm scenarios (rusm-wasm), each against a baseline in the same run.
//!
//! - `module-storm` / `module-storm-wat`: spawn-and-finish storm of a Rust wasip1
//!   `fn main(){}` module (`module-storm`) or a one-page WAT module (`module-storm-wat`). One
//!   spawner process per worker keeps `IN_FLIGHT` (8) guests running, each spawned monitored
//!   (`Host::spawn_here`); every `Down` is one finished guest and starts the next. Rate =
//!   guests that were instantiated, ran their entry, exited and were reaped, per second;
//!   p50/p99 = time inside the spawn call. Baseline: raw wasmtime on the *same engine*
//!   (same pool, same config), one loop per worker thread: `Store::new` (+ the WASI
//!   context if the module imports WASI) + `InstancePre::instantiate_async` + `call_async`
//!   of `_start` + drop, driven by a bare poll loop — the physical limit of the spawn path.
//!   Targets: >= 0.9x the raw baseline and >= 150k spawns/s.
//! - `fairness`: short-job latency (spawn a one-page guest, monitored, until its `Down`)
//!   while 2x workers guests spin for ever, against the same jobs on an idle node.
//!   Target: p99 <= 2 ms with the spinners.
//! - `idle-modules`: RSS, page tables and memory mappings per guest parked in `receive`
//!   (`--count`, default 10,000), and the heap part of them (glibc's `mallinfo2`). Target
//!   <= 16 KB per guest. Says how many parked guests fit under this machine's
//!   `vm.max_map_count`. Baseline, in a child process (`idle-floor`): raw wasmtime's floor,
//!   the same artifact instantiated as many times on the same engine configuration, each
//!   in its own `Store`, never called; ratio = RUSM bytes / floor bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rusm_otp::{Node, Received, SpawnOpts};
use rusm_wasm::{Artifact, Host, HostConfig, WasmOpts};
use serde_json::json;

use crate::{Opts, Report, Sampler, Side, Stats, fmt_int, nanos};

const IN_FLIGHT: usize = 8;
const SAMPLE_EVERY: u64 = 64;

pub(crate) fn node(opts: &Opts) -> Result<Node, String> {
    Ok(Node::with_runtime(crate::rusm_runtime(opts.workers)?))
}

pub(crate) fn quiet(cfg: HostConfig) -> HostConfig {
    HostConfig { log: Arc::new(|_, _, _| {}), ..cfg }
}

pub(crate) fn host(slots: u32, stacks: u32) -> Result<Host, String> {
    Host::new(quiet(HostConfig {
        instances: slots,
        memories: slots,
        tables: slots,
        stacks,
        ..HostConfig::default()
    }))
    .map_err(|e| e.to_string())
}

fn wat(name: &str) -> Vec<u8> {
    rusm_wasm::testing::fixture(name)
}

pub(crate) fn report(rusm: Side, baseline: Side, latency: bool) -> Report {
    Report { rusm, baseline, latency, notes: Vec::new(), extra: serde_json::Map::new() }
}

// ---- module-storm ----

pub fn module_storm(opts: &Opts, rust_guest: bool) -> Result<Report, String> {
    let host = host(4096, 1024)?;
    let bytes = if rust_guest { rusm_wasm::testing::guest("noop") } else { wat("tiny") };
    let art = host.load("storm", &bytes).map_err(|e| e.to_string())?;
    // Warm-up: compile caches, pool slots, the allocator.
    storm_rusm(opts, &host, &art, Duration::from_millis(300))?;
    let rusm = storm_rusm(opts, &host, &art, opts.duration())?;
    let baseline = storm_raw(opts, &host, &art, opts.duration())?;
    let mut r = report(rusm, baseline, false);
    let ratio = r.ratio();
    let rate = r.rusm.rate();
    let met = ratio >= 0.9 && rate >= 150_000.0;
    r.notes.insert(
        0,
        format!(
            "target: >= 0.90x raw wasmtime and >= 150,000 spawns/s: {} ({}x, {}/s)",
            if met { "met" } else { "NOT met" },
            format_args!("{ratio:.2}"),
            fmt_int(rate as u64)
        ),
    );
    r.notes.push(format!("guest: {}", if rust_guest { "Rust wasip1 fn main(){} (noop.wasm)" } else { "WAT, one page (tiny.wat)" }));
    r.extra.insert("target_met".into(), json!(met));
    Ok(r)
}

pub(crate) fn storm_rusm(opts: &Opts, host: &Host, art: &Artifact, d: Duration) -> Result<Side, String> {
    let node = node(opts)?;
    let deadline = Instant::now() + d;
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..opts.workers {
        let (h, a) = (host.clone(), art.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        node.spawn(move || {
            let mut s = Sampler::new(SAMPLE_EVERY, deadline);
            let opts = WasmOpts { spawn: SpawnOpts { monitor: true, ..SpawnOpts::default() }, ..WasmOpts::default() };
            let mut in_flight = 0;
            let mut done = 0u64;
            let mut stop = false;
            let mut crashed = None;
            loop {
                while !stop && in_flight < IN_FLIGHT {
                    let t0 = s.start();
                    if h.spawn_here(&a, opts.clone()).is_err() {
                        stop = true;
                        break;
                    }
                    in_flight += 1;
                    stop = s.done(t0);
                }
                if in_flight == 0 {
                    break;
                }
                if let Received::Down { reason, .. } = rusm_otp::receive() {
                    in_flight -= 1;
                    done += 1;
                    if !reason.is_normal() && crashed.is_none() {
                        crashed = Some(reason.to_string());
                    }
                }
            }
            let _ = tx.send((done, s.into_samples(), crashed));
        })
        .map_err(|e| e.to_string())?;
        handles.push(rx);
    }
    let mut ops = 0;
    let mut samples = Vec::new();
    for rx in handles {
        let (n, s, crashed) = rx.recv().map_err(|_| "a spawner died".to_owned())?;
        if let Some(why) = crashed {
            return Err(format!("a guest crashed: {why}"));
        }
        ops += n;
        samples.extend(s);
    }
    let elapsed = start.elapsed();
    node.shutdown();
    Ok(Side { name: "rusm", ops, elapsed, lat: Stats::new(samples) })
}

struct Raw {
    wasi: Option<wasmtime_wasi::p1::WasiP1Ctx>,
}

/// Polls `fut` to completion on this thread (nothing here waits on anything but the
/// epoch yield, which wakes itself).
pub(crate) fn spin_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn storm_raw(opts: &Opts, host: &Host, art: &Artifact, d: Duration) -> Result<Side, String> {
    let engine = host.engine().clone();
    let mut linker: wasmtime::Linker<Raw> = wasmtime::Linker::new(&engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut Raw| s.wasi.as_mut().expect("built before the call"))
        .map_err(|e| e.to_string())?;
    let pre = linker.instantiate_pre(art.module().ok_or("not a module")?).map_err(|e| e.to_string())?;
    let start_idx = art.module().ok_or("not a module")?.get_export_index("_start").ok_or("no _start")?;
    let uses_wasi = art.module().ok_or("not a module")?.imports().any(|i| i.module().starts_with("wasi_"));
    let deadline = Instant::now() + d;
    let start = Instant::now();
    let total = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..opts.workers)
        .map(|_| {
            let (engine, pre, total) = (engine.clone(), pre.clone(), total.clone());
            std::thread::spawn(move || -> Result<Vec<u64>, String> {
                let mut s = Sampler::new(SAMPLE_EVERY, deadline);
                loop {
                    let t0 = s.start();
                    let wasi = uses_wasi.then(|| wasmtime_wasi::WasiCtxBuilder::new().build_p1());
                    let mut store = wasmtime::Store::new(&engine, Raw { wasi });
                    store.set_epoch_deadline(1);
                    store.epoch_deadline_async_yield_and_update(1);
                    spin_on(async {
                        let inst = pre.instantiate_async(&mut store).await?;
                        let f = inst
                            .get_module_export(&mut store, &start_idx)
                            .and_then(wasmtime::Extern::into_func)
                            .ok_or_else(|| wasmtime::Error::msg("no _start"))?;
                        f.typed::<(), ()>(&store)?.call_async(&mut store, ()).await
                    })
                    .map_err(|e| format!("raw wasmtime: {e:#}"))?;
                    drop(store);
                    total.fetch_add(1, Ordering::Relaxed);
                    if s.done(t0) {
                        return Ok(s.into_samples());
                    }
                }
            })
        })
        .collect();
    let mut samples = Vec::new();
    for t in threads {
        samples.extend(t.join().map_err(|_| "a raw thread panicked".to_owned())??);
    }
    Ok(Side { name: "raw wasmtime", ops: total.load(Ordering::Relaxed), elapsed: start.elapsed(), lat: Stats::new(samples) })
}

// ---- fairness ----

fn fairness_host(tick: Duration) -> Result<(Host, Artifact, Artifact), String> {
    let host = Host::new(quiet(HostConfig {
        instances: 1024,
        memories: 1024,
        tables: 1024,
        stacks: 256,
        epoch_tick: tick,
        ..HostConfig::default()
    }))
    .map_err(|e| e.to_string())?;
    let job = host.load("tiny", &wat("tiny")).map_err(|e| e.to_string())?;
    let spin = host.load("spin", &wat("spin")).map_err(|e| e.to_string())?;
    Ok((host, job, spin))
}

pub fn fairness(opts: &Opts) -> Result<Report, String> {
    let (host, job, spin) = fairness_host(HostConfig::default().epoch_tick)?;
    let loaded = jobs(opts, &host, &job, &spin, 2 * opts.workers, "rusm, 2x spinning")?;
    let idle = jobs(opts, &host, &job, &spin, 0, "rusm, no spinners")?;
    // The same load with a 0.5 ms tick: how the slice length sets the latency.
    let (h2, j2, s2) = fairness_host(Duration::from_micros(500))?;
    let half = jobs(opts, &h2, &j2, &s2, 2 * opts.workers, "rusm, 0.5 ms tick")?;
    drop(h2);
    let mut r = report(loaded, idle, true);
    let p99 = r.rusm.lat.quantile(0.99).unwrap_or(u64::MAX);
    let met = p99 <= 2_000_000;
    r.notes.insert(
        0,
        format!(
            "target: short-job p99 <= 2 ms while {} guests spin: {} (p99 {})",
            2 * opts.workers,
            if met { "met" } else { "NOT met" },
            crate::fmt_ns(Some(p99 as f64))
        ),
    );
    r.notes.push(format!("epoch tick {:?}; a job = spawn a one-page guest, monitored, until its Down", host.config().epoch_tick));
    let (hp50, hp99) = (half.lat.quantile(0.5).unwrap_or(0), half.lat.quantile(0.99).unwrap_or(0));
    r.notes.push(format!(
        "with a 0.5 ms epoch tick (HostConfig::epoch_tick), same load: p50 {} p99 {}",
        crate::fmt_ns(Some(hp50 as f64)),
        crate::fmt_ns(Some(hp99 as f64))
    ));
    r.extra.insert("half_tick_p50_ns".into(), json!(hp50));
    r.extra.insert("half_tick_p99_ns".into(), json!(hp99));
    r.extra.insert("target_met".into(), json!(met));
    Ok(r)
}

fn jobs(opts: &Opts, host: &Host, job: &Artifact, spin: &Artifact, spinners: usize, name: &'static str) -> Result<Side, String> {
    let node = node(opts)?;
    let spinning: Vec<_> = (0..spinners)
        .map(|_| host.spawn(&node, spin, WasmOpts::default()).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    std::thread::sleep(Duration::from_millis(20));
    let (h, j) = (host.clone(), job.clone());
    let d = opts.duration();
    let start = Instant::now();
    let samples = node
        .run(move || {
            let deadline = Instant::now() + d;
            let opts = WasmOpts { spawn: SpawnOpts { monitor: true, ..SpawnOpts::default() }, ..WasmOpts::default() };
            let mut samples = Vec::new();
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let s = h.spawn_here(&j, opts.clone()).expect("spawn a job");
                loop {
                    if let Received::Down { pid, .. } = rusm_otp::receive()
                        && pid == s.pid
                    {
                        break;
                    }
                }
                samples.push(nanos(t0.elapsed()));
            }
            samples
        })
        .map_err(|e| format!("the job runner: {e}"))?;
    let elapsed = start.elapsed();
    for p in spinning {
        node.exit(p, rusm_otp::ExitReason::Kill);
    }
    node.shutdown();
    Ok(Side { name, ops: samples.len() as u64, elapsed, lat: Stats::new(samples) })
}

// ---- idle-modules ----

/// RSS plus page tables, and memory mappings, of this process now.
fn rss_and_maps() -> (u64, u64) {
    let p = crate::idle::probe();
    ((p.rss_kb + p.pte_kb) * 1024, p.maps)
}

/// Bytes the C allocator has handed out and not had back (glibc's `mallinfo2`: small
/// chunks plus mmapped ones), the part of RSS that is Rust heap: stores, instance
/// state, process state. `None` where the C library is not glibc.
fn heap_in_use() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        #[expect(unsafe_code, reason = "glibc's allocator counters have no safe wrapper")]
        // SAFETY: mallinfo2 takes no arguments and only reads the allocator's counters.
        let m = unsafe { libc::mallinfo2() };
        Some((m.uordblks + m.hblkhd) as u64)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

pub fn idle_modules(opts: &Opts) -> Result<(), String> {
    idle_guests(opts, IdleGuest::Module)
}

/// What `idle-modules` / `idle-components` park.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdleGuest {
    /// parker.wat, a one-page core module.
    Module,
    /// parker.wasm, the smallest Rust component (wasm32-wasip2) that parks in receive.
    Component,
    /// parker_p3.wasm: the same in the preview 3 world (an async `run`).
    ComponentP3,
}

impl IdleGuest {
    /// The name the baseline's child takes.
    fn arg(self) -> &'static str {
        match self {
            IdleGuest::Module => "module",
            IdleGuest::Component => "component",
            IdleGuest::ComponentP3 => "component-p3",
        }
    }
}

pub(crate) fn idle_guests(opts: &Opts, kind: IdleGuest) -> Result<(), String> {
    let want = opts.count.unwrap_or(10_000);
    let max_maps = rusm_wasm::read_max_map_count().unwrap_or(65_530);
    // Measured per parked guest: 2 mappings for its stack slot (made at Engine::new) and
    // 2-4 for its memory slot with a copy-on-write image. Leave room for everything else.
    let per_guest = 6;
    let fits = (max_maps.saturating_sub(rss_and_maps().1 + 8_000) / per_guest) as usize;
    let count = want.min(fits);
    let mut notes = Vec::new();
    if count < want {
        notes.push(format!(
            "{} parked guests need about {} memory mappings; vm.max_map_count is {}: measuring {} \
             (raise it with `sysctl -w vm.max_map_count={}` for the full count)",
            fmt_int(want as u64),
            fmt_int(want as u64 * per_guest),
            fmt_int(max_maps),
            fmt_int(count as u64),
            want as u64 * per_guest + 65_530
        ));
    }
    let slots = count as u32 + 64;
    let (host, art) = idle_host(kind, slots)?;
    let node = node(opts)?;
    // Warm the pool and allocator a little.
    park(&node, &host, &art, 64.min(count))?.1.into_iter().for_each(|p| node.exit(p, rusm_otp::ExitReason::Kill));
    std::thread::sleep(Duration::from_millis(100));
    let ((rss0, maps0), heap0) = (rss_and_maps(), heap_in_use());
    let t = Instant::now();
    let (spawned, pids) = park(&node, &host, &art, count)?;
    let spawn_time = t.elapsed();
    std::thread::sleep(opts.duration());
    let ((rss1, maps1), heap1) = (rss_and_maps(), heap_in_use());
    let t = Instant::now();
    for p in &pids {
        node.exit(*p, rusm_otp::ExitReason::Kill);
    }
    while node.processes().len() > 1 && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let teardown = t.elapsed();
    node.shutdown();
    drop((host, art));
    let floor = run_floor(kind, spawned);
    let per = (rss1.saturating_sub(rss0)) as f64 / spawned.max(1) as f64;
    let per_maps = (maps1.saturating_sub(maps0)) as f64 / spawned.max(1) as f64;
    let per_heap = heap0.zip(heap1).map(|(a, b)| b.saturating_sub(a) as f64 / spawned.max(1) as f64);
    let met = per <= 16_384.0;
    if opts.json {
        println!(
            "{}",
            json!({
                "scenario": opts.scenario, "workers": opts.workers, "count": spawned,
                "bytes_per_guest": per, "heap_bytes_per_guest": per_heap, "maps_per_guest": per_maps, "max_map_count": max_maps,
                "spawn_park_s": spawn_time.as_secs_f64(), "teardown_s": teardown.as_secs_f64(),
                "target_bytes": 16384, "target_met": met, "notes": notes, "baseline": floor,
                "ratio": floor.get("bytes_per_guest").and_then(serde_json::Value::as_f64).map(|b| per / b),
                "ratio_meaning": "rusm bytes per parked guest / raw wasmtime bytes per live instance that was never called (lower is better)",
            })
        );
        return Ok(());
    }
    let what = match kind {
        IdleGuest::Module => "core-module guests (parker.wat)",
        IdleGuest::Component => "Rust components (parker.wasm, wasm32-wasip2)",
        IdleGuest::ComponentP3 => "Rust preview 3 components (parker_p3.wasm, async run, wasm32-wasip2)",
    };
    println!("{}", crate::header(opts, &format!("{} {what} parked in receive", fmt_int(spawned as u64))));
    println!("rss + page tables per parked guest: {} B ({} mappings each)", fmt_int(per as u64), format_args!("{per_maps:.1}"));
    if let Some(h) = per_heap {
        println!(
            "  of which heap in use (malloc: store, instance and process state): {} B; pooled pages (stack, memory, tables, vmctx), allocator slack and page tables: {} B",
            fmt_int(h as u64),
            fmt_int((per - h).max(0.0) as u64)
        );
    }
    match (floor.get("bytes_per_guest").and_then(serde_json::Value::as_f64), floor.get("error")) {
        (Some(b), _) => {
            let heap = floor.get("heap_bytes_per_guest").and_then(serde_json::Value::as_f64);
            println!(
                "baseline: raw wasmtime, the same artifact instantiated in a Store of its own on the same engine and never called \
                 (no process, no call, no stack), in a child process: {} B per instance{}; ratio {:.2}x (lower is better)",
                fmt_int(b as u64),
                heap.map(|h| format!(" (heap {} B)", fmt_int(h as u64))).unwrap_or_default(),
                per / b
            );
        }
        (None, e) => println!("baseline: not measured ({})", e.and_then(serde_json::Value::as_str).unwrap_or("no result")),
    }
    println!("spawn + park: {:?} ({:.1} us each); teardown: {teardown:?}", spawn_time, spawn_time.as_secs_f64() * 1e6 / spawned.max(1) as f64);
    println!("target: <= 16,384 B per parked guest: {}", if met { "met" } else { "NOT met" });
    println!(
        "capacity: at {per_maps:.1} mappings per guest (+2 per pooled stack), vm.max_map_count = {} fits about {} parked guests",
        fmt_int(max_maps),
        fmt_int((max_maps as f64 / (per_maps + 2.0).max(1.0)) as u64)
    );
    for n in notes {
        println!("{n}");
    }
    Ok(())
}

/// The host and parker artifact of `idle-modules` / `idle-components` (and of their
/// baseline): pools of `slots` instances.
fn idle_host(kind: IdleGuest, slots: u32) -> Result<(Host, Artifact), String> {
    let (host, bytes) = match kind {
        IdleGuest::Module => (host(slots, slots)?, wat("parker")),
        IdleGuest::Component | IdleGuest::ComponentP3 => {
            // A Rust component has 3 core instances (in HostConfig::instances' 4x core
            // pool) and 2 tables (its module's and the canonical-ABI shim's).
            let cfg = HostConfig { instances: slots, memories: slots, tables: 2 * slots, stacks: slots, ..HostConfig::default() };
            let name = if kind == IdleGuest::Component { "parker" } else { "parker_p3" };
            (Host::new(quiet(cfg)).map_err(|e| e.to_string())?, rusm_wasm::testing::component(name))
        }
    };
    let art = host.load("parker", &bytes).map_err(|e| e.to_string())?;
    Ok((host, art))
}

/// The hidden subcommand that measures the baseline of `idle-modules` /
/// `idle-components` in a child process: `idle-floor <module|component|component-p3> <count>`.
pub const FLOOR_COMMAND: &str = "idle-floor";

/// Runs the baseline in a child process of its own, so that pages the RUSM side touched
/// and freed cannot flatter it. Returns its JSON, or `{"error": ..}`.
fn run_floor(kind: IdleGuest, count: usize) -> serde_json::Value {
    let out = std::env::current_exe().and_then(|exe| {
        std::process::Command::new(exe)
            .args([FLOOR_COMMAND, kind.arg(), &count.to_string()])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
    });
    match out {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).unwrap_or_else(|_| json!({ "error": "the child printed no result" })),
        Ok(o) => json!({ "error": format!("the child failed ({})", o.status) }),
        Err(e) => json!({ "error": format!("cannot start the child: {e}") }),
    }
}

/// The baseline's child: `count` instances of the same parker, each instantiated by raw
/// wasmtime in a Store of its own on the same engine configuration and kept, never called.
/// That is wasmtime's floor for a live instance: its store, vmctx, tables and memory image,
/// with no process, no call in progress and so no stack. Prints one JSON object.
pub fn floor_main(args: &[String]) {
    let result = (|| -> Result<serde_json::Value, String> {
        let usage = || format!("usage: rusm-bench {FLOOR_COMMAND} <module|component|component-p3> <count>");
        let kind = match args.first().map(String::as_str) {
            Some("module") => IdleGuest::Module,
            Some("component") => IdleGuest::Component,
            Some("component-p3") => IdleGuest::ComponentP3,
            _ => return Err(usage()),
        };
        let count: usize = args.get(1).and_then(|c| c.parse().ok()).ok_or_else(usage)?;
        let (host, art) = idle_host(kind, count as u32 + 64)?;
        let engine = host.engine().clone();
        let e = |e: wasmtime::Error| format!("raw wasmtime: {e:#}");
        match kind {
            IdleGuest::Module => {
                let m = art.module().ok_or("not a module")?;
                let mut linker: wasmtime::Linker<()> = wasmtime::Linker::new(&engine);
                // Its rusm imports are never called: define them as traps.
                linker.define_unknown_imports_as_traps(m).map_err(e)?;
                let pre = linker.instantiate_pre(m).map_err(e)?;
                floor(count, || {
                    let mut store = wasmtime::Store::new(&engine, ());
                    store.set_epoch_deadline(u64::MAX / 2);
                    let i = spin_on(pre.instantiate_async(&mut store)).map_err(e)?;
                    Ok((store, i))
                })
            }
            IdleGuest::Component | IdleGuest::ComponentP3 => {
                let c = art.component().ok_or("not a component")?;
                let mut linker: wasmtime::component::Linker<crate::component::Raw> = wasmtime::component::Linker::new(&engine);
                wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(e)?;
                linker.define_unknown_imports_as_traps(c).map_err(e)?;
                let pre = linker.instantiate_pre(c).map_err(e)?;
                floor(count, || {
                    let mut store = wasmtime::Store::new(&engine, crate::component::Raw::default());
                    // Its start-up code runs in instantiate: no epoch tick may interrupt it.
                    store.set_epoch_deadline(u64::MAX / 2);
                    let i = spin_on(pre.instantiate_async(&mut store)).map_err(e)?;
                    Ok((store, i))
                })
            }
        }
    })();
    match result {
        Ok(v) => println!("{v}"),
        Err(e) => println!("{}", json!({ "error": e })),
    }
}

/// Makes 64 instances and drops them (warm-up), then makes and keeps `count`, and reports
/// what they cost.
fn floor<T>(count: usize, mut make: impl FnMut() -> Result<T, String>) -> Result<serde_json::Value, String> {
    drop((0..64).map(|_| make()).collect::<Result<Vec<_>, _>>()?);
    std::thread::sleep(Duration::from_millis(100));
    let ((rss0, maps0), heap0) = (rss_and_maps(), heap_in_use());
    let kept = (0..count).map(|_| make()).collect::<Result<Vec<_>, _>>()?;
    let ((rss1, maps1), heap1) = (rss_and_maps(), heap_in_use());
    let n = kept.len().max(1) as f64;
    drop(kept);
    Ok(json!({
        "name": "raw wasmtime (instantiated, never called)",
        "count": count,
        "bytes_per_guest": rss1.saturating_sub(rss0) as f64 / n,
        "heap_bytes_per_guest": heap0.zip(heap1).map(|(a, b)| b.saturating_sub(a) as f64 / n),
        "maps_per_guest": maps1.saturating_sub(maps0) as f64 / n,
    }))
}

/// Spawns `count` parker guests and waits for each one's hello (sent just before it parks).
fn park(node: &Node, host: &Host, art: &Artifact, count: usize) -> Result<(usize, Vec<rusm_otp::Pid>), String> {
    let (h, a) = (host.clone(), art.clone());
    node.run(move || {
        rusm_otp::register("idle-bench", rusm_otp::self_pid()).expect("the bench's name");
        let mut pids = Vec::with_capacity(count);
        for _ in 0..count {
            match h.spawn_here(&a, WasmOpts::default()) {
                Ok(s) => pids.push(s.pid),
                Err(e) => return Err(format!("spawn: {e}")),
            }
        }
        let mut hellos = 0;
        while hellos < pids.len() {
            match rusm_otp::receive_timeout(Duration::from_secs(30)) {
                Received::Message(_) => hellos += 1,
                Received::Timeout => {
                    let dead = pids.iter().find(|p| !rusm_otp::is_alive(**p));
                    return Err(format!(
                        "only {hellos} of {} guests parked{}",
                        pids.len(),
                        dead.map(|_| " (some ended: the pool or vm.max_map_count ran out)").unwrap_or("")
                    ));
                }
                _ => {}
            }
        }
        rusm_otp::unregister("idle-bench");
        Ok((hellos, pids))
    })
    .map_err(|e| e.to_string())?
}
