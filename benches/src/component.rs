//! Component scenarios (rusm-wasm, wasm32-wasip2 guests built with wit-bindgen), each
//! against a baseline in the same run.
//!
//! - `component-storm`: spawn-and-finish storm of the Rust `noop` component (the
//!   `rusm:runtime/process` world, `run` returns at once), `IN_FLIGHT` (8) monitored
//!   guests per spawner process, one spawner per worker, exactly as `module-storm`.
//!   Rate = components instantiated, run, exited and reaped per second; p50/p99 = time
//!   inside the spawn call. Baseline: raw wasmtime on the *same engine* (same pool, same
//!   config), one loop per worker thread: `Store::new` + `component::InstancePre::
//!   instantiate_async` + `call_async` of `run` + drop, the WASI context built only if the
//!   guest calls WASI (as RUSM does). Targets: >= 0.9x raw and >= 150k spawns/s.
//! - `component-pingpong`: round trips between two components (`roles` as `serve` and as
//!   `pingpong`, timed inside the guest with the WASI monotonic clock) against two native
//!   rusm-otp processes doing the same send/receive round trip.
//! - `idle-components`: as `idle-modules`, with the `parker` component (the smallest Rust
//!   component that parks) parked in `receive`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusm_otp::Received;
use rusm_wasm::testing::component;
use rusm_wasm::{Artifact, Host, WasmOpts};
use serde_json::json;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::wasm::{host, node, report, spin_on, storm_rusm};
use crate::{Opts, Report, Sampler, Side, Stats, fmt_int};

const SAMPLE_EVERY: u64 = 64;

// ---- component-storm ----

pub fn component_storm(opts: &Opts) -> Result<Report, String> {
    let host = host(4096, 1024)?;
    let art = host.load("noop", &component("noop")).map_err(|e| e.to_string())?;
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
            "target: >= 0.90x raw wasmtime and >= 150,000 spawns/s: {} ({ratio:.2}x, {}/s)",
            if met { "met" } else { "NOT met" },
            fmt_int(rate as u64)
        ),
    );
    r.notes.push("guest: Rust wasm32-wasip2 component, wit-bindgen, `run` returns at once (noop.wasm)".into());
    r.extra.insert("target_met".into(), json!(met));
    Ok(r)
}

/// The raw baseline's store data: a WASI context only if the guest asks for one.
#[derive(Default)]
pub(crate) struct Raw {
    ctx: Option<WasiCtx>,
    table: ResourceTable,
}

impl WasiView for Raw {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let ctx = self.ctx.get_or_insert_with(|| wasmtime_wasi::WasiCtxBuilder::new().build());
        WasiCtxView { ctx, table: &mut self.table }
    }
}

fn storm_raw(opts: &Opts, host: &Host, art: &Artifact, d: Duration) -> Result<Side, String> {
    let engine = host.engine().clone();
    let c = art.component().ok_or("not a component")?;
    let mut linker: Linker<Raw> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| e.to_string())?;
    // Whatever else it imports (the rusm:runtime interfaces it never calls) traps.
    linker.define_unknown_imports_as_traps(c).map_err(|e| e.to_string())?;
    let pre = linker.instantiate_pre(c).map_err(|e| e.to_string())?;
    let run = c.get_export_index(None, "run").ok_or("no `run` export")?;
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
                    let mut store = wasmtime::Store::new(&engine, Raw { ctx: None, table: ResourceTable::new() });
                    store.set_epoch_deadline(1);
                    store.epoch_deadline_async_yield_and_update(1);
                    spin_on(async {
                        let inst = pre.instantiate_async(&mut store).await?;
                        let f = inst.get_typed_func::<(), ()>(&mut store, &run)?;
                        f.call_async(&mut store, ()).await
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

// ---- component-pingpong ----

pub fn component_pingpong(opts: &Opts) -> Result<Report, String> {
    let host = host(256, 64)?;
    host.load("roles", &component("roles")).map_err(|e| e.to_string())?;
    // Calibrate the round-trip count to the duration from a short run.
    let probe = components_round_trips(opts, &host, 2_000)?;
    let per = probe.elapsed.as_secs_f64() / probe.ops.max(1) as f64;
    let count = ((opts.seconds / per.max(1e-9)) as u64).clamp(2_000, 20_000_000);
    let rusm = components_round_trips(opts, &host, count)?;
    let baseline = native_round_trips(opts, count)?;
    let mut r = report(rusm, baseline, true);
    r.notes.push("rusm: two `roles` components, `pingpong` -> `serve` -> `pingpong`, every 16th trip timed in the guest (WASI monotonic clock)".into());
    r.notes.push("baseline: two native rusm-otp processes, the same send/receive round trip (every 16th trip)".into());
    Ok(r)
}

fn components_round_trips(opts: &Opts, host: &Host, count: u64) -> Result<Side, String> {
    let node = node(opts)?;
    let h = host.clone();
    let reply = node
        .run(move || {
            let art = h.artifact("roles").expect("loaded");
            let server = h.spawn_here(&art, WasmOpts::default()).expect("spawn the server").pid;
            rusm_otp::send(server, b"serve pp-server".to_vec());
            while rusm_otp::whereis("pp-server").is_none() {
                rusm_sched::sleep(Duration::from_millis(1));
            }
            let client = h.spawn_here(&art, WasmOpts::default()).expect("spawn the client").pid;
            rusm_otp::send(client, format!("pingpong pp-server {count}").into_bytes());
            rusm_otp::send(client, rusm_otp::self_pid().to_u64().to_le_bytes().to_vec());
            let r = match rusm_otp::receive_timeout(Duration::from_secs(600)) {
                Received::Message(m) => m.as_bytes().map(<[u8]>::to_vec).ok_or("a typed report".to_owned()),
                other => Err(format!("no report from the guest: {other:?}")),
            };
            rusm_otp::kill(server);
            r
        })
        .map_err(|e| e.to_string())??;
    node.shutdown();
    let words: Vec<u64> = reply.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
    let [n, total, ref samples @ ..] = words[..] else { return Err(format!("a short report ({} bytes)", reply.len())) };
    Ok(Side { name: "rusm components", ops: n, elapsed: Duration::from_nanos(total), lat: Stats::new(samples.to_vec()) })
}

fn native_round_trips(opts: &Opts, count: u64) -> Result<Side, String> {
    let node = node(opts)?;
    let (elapsed, samples) = node
        .run(move || {
            let me = rusm_otp::self_pid();
            let server = rusm_otp::spawn(move || {
                loop {
                    if let Received::Message(m) = rusm_otp::receive() {
                        rusm_otp::send(me, m);
                    }
                }
            })
            .expect("spawn the server");
            let mut samples = Vec::new();
            let start = Instant::now();
            for i in 0..count {
                let t = (i % 16 == 0).then(Instant::now);
                rusm_otp::send(server, b"ping".to_vec());
                let _ = rusm_otp::receive();
                if let Some(t) = t {
                    samples.push(crate::nanos(t.elapsed()));
                }
            }
            let elapsed = start.elapsed();
            rusm_otp::kill(server);
            (elapsed, samples)
        })
        .map_err(|e| e.to_string())?;
    node.shutdown();
    Ok(Side { name: "native processes", ops: count, elapsed, lat: Stats::new(samples) })
}

// ---- idle-components ----

/// `idle-components` (`parker.wasm`) or, with `p3`, `idle-components-p3`
/// (`parker_p3.wasm`, the same guest with an async `run` in the `process-p3` world).
pub fn idle_components(opts: &Opts, p3: bool) -> Result<(), String> {
    crate::wasm::idle_guests(opts, if p3 { crate::wasm::IdleGuest::ComponentP3 } else { crate::wasm::IdleGuest::Component })
}
