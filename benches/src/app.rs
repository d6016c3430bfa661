//! App scenarios: the `rusm` binary (rusm-cli) run as a user runs it, against what the
//! same work costs without RUSM, in the same run.
//!
//! Both need `target/release/rusm` beside this binary: `cargo build --release -p
//! rusm-cli` first.
//!
//! - `app-start`: the time from starting `rusm run --json` to the last `started` event,
//!   for an app of 1 and of 100 components (`--count N`: N only). Each component is the `noop` component, made
//!   distinct by a custom section, so 100 components are 100 compiles. The cold run has an
//!   empty compile cache, and the warm run reuses it. Baseline: in this process,
//!   `Component::new` (cold) or `Component::deserialize` of the precompiled bytes (warm),
//!   plus one instantiation and `run`, of the same artifacts with plain wasmtime.
//! - `connection-storm`: 100 client threads, each connecting to `examples/echo-tcp`
//!   (`listen`: a process per connection), writing 64 bytes, reading them back and
//!   closing, for `<seconds>`. It reports connections/s and the p50/p99 of a whole
//!   connection. Baseline: a thread-per-connection std TCP echo server in this process,
//!   under the same clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmtime::component::{Component, Linker};

use crate::component::Raw;
use crate::wasm::spin_on;
use crate::{Opts, Report, Side, Stats, fmt_ns, nanos};

const CLIENTS: usize = 100;
const PAYLOAD: usize = 64;

/// The `rusm` binary beside this one.
fn rusm_bin() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe.with_file_name("rusm");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("no {}: build it first (`cargo build --release -p rusm-cli` for a release rusm-bench)", bin.display()))
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("benches/ has a parent").to_owned()
}

/// Starts `rusm run --json` in `dir`; returns the child and its stdout's JSON events.
fn start_rusm(dir: &Path, cache: &Path) -> Result<(Child, std::sync::mpsc::Receiver<Value>), String> {
    let mut child = Command::new(rusm_bin()?)
        .args(["run", "--json", "--no-wasm-dir"])
        .current_dir(dir)
        .env("XDG_CACHE_HOME", cache)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting rusm: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    Ok((child, rx))
}

/// SIGTERM (a graceful stop), then waits.
fn stop(mut child: Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

/// Waits for the first event for which `f` answers something.
fn wait_for<T>(rx: &std::sync::mpsc::Receiver<Value>, what: &str, mut f: impl FnMut(&Value) -> Option<T>) -> Result<T, String> {
    let end = Instant::now() + Duration::from_secs(600);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let v = rx.recv_timeout(left).map_err(|_| format!("rusm never reported {what}"))?;
        if v["event"] == "stopped" {
            return Err(format!("rusm stopped before {what}"));
        }
        if let Some(t) = f(&v) {
            return Ok(t);
        }
    }
}

// ---- app-start ----

/// The noop component, with a custom section that makes copy `i` distinct bytes.
fn distinct(base: &[u8], i: usize) -> Vec<u8> {
    let name = format!("rusm-bench-copy-{i}");
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name.as_bytes());
    let mut out = base.to_vec();
    out.push(0); // custom section id
    out.push(section.len() as u8); // its size (under 128: one LEB128 byte)
    out.extend_from_slice(&section);
    out
}

pub fn app_start(opts: &Opts) -> Result<(), String> {
    let base = rusm_wasm::testing::component("noop");
    let mut rows = Vec::new();
    let counts = opts.count.map_or(vec![1usize, 100], |c| vec![c.max(1)]);
    for n in counts {
        let dir = tempfile_dir()?;
        let cache = dir.join("cache");
        let mut manifest = String::from("[app]\nname = \"app-start\"\n");
        let mut artifacts = Vec::new();
        for i in 0..n {
            let bytes = distinct(&base, i);
            std::fs::write(dir.join(format!("c{i}.wasm")), &bytes).map_err(|e| e.to_string())?;
            manifest += &format!("\n[components.c{i}]\nwasm = \"c{i}.wasm\"\nrestart = \"temporary\"\n");
            artifacts.push(bytes);
        }
        std::fs::write(dir.join("rusm.toml"), manifest).map_err(|e| e.to_string())?;
        for warm in [false, true] {
            let t0 = Instant::now();
            let (child, rx) = start_rusm(&dir, &cache)?;
            let mut started = 0;
            wait_for(&rx, "every component started", |v| {
                started += usize::from(v["event"] == "started");
                (started == n).then_some(())
            })?;
            let rusm = t0.elapsed();
            stop(child);
            let raw = raw_start(&artifacts, warm)?;
            rows.push(json!({"components": n, "cache": if warm { "warm" } else { "cold" },
                             "rusm_ms": rusm.as_secs_f64() * 1e3, "wasmtime_ms": raw.as_secs_f64() * 1e3,
                             "ratio": raw.as_secs_f64() / rusm.as_secs_f64()}));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    if opts.json {
        println!("{}", json!({"scenario": "app-start", "rows": rows, "ratio_meaning": "wasmtime time / rusm time (higher is better for rusm)"}));
        return Ok(());
    }
    println!("scenario: app-start  (`rusm run` to every component started, vs plain wasmtime compiling/loading and instantiating the same artifacts in-process)");
    println!("{:>11} {:>6} {:>12} {:>14} {:>7}", "components", "cache", "rusm run", "raw wasmtime", "ratio");
    for r in &rows {
        println!(
            "{:>11} {:>6} {:>12} {:>14} {:>6.2}x",
            r["components"].as_u64().unwrap_or(0),
            r["cache"].as_str().unwrap_or(""),
            fmt_ns(r["rusm_ms"].as_f64().map(|ms| ms * 1e6)),
            fmt_ns(r["wasmtime_ms"].as_f64().map(|ms| ms * 1e6)),
            r["ratio"].as_f64().unwrap_or(f64::NAN)
        );
    }
    println!("ratio = raw wasmtime time / rusm time (higher is better for rusm); rusm's time includes starting its process, the engine and the node");
    Ok(())
}

/// Plain wasmtime: compile (cold) or deserialize (warm), instantiate and run each once.
fn raw_start(artifacts: &[Vec<u8>], warm: bool) -> Result<Duration, String> {
    let engine = wasmtime::Engine::new(&wasmtime::Config::new()).map_err(|e| e.to_string())?;
    let pre: Vec<Vec<u8>> = if warm { artifacts.iter().map(|a| engine.precompile_component(a).map_err(|e| e.to_string())).collect::<Result<_, _>>()? } else { Vec::new() };
    let t0 = Instant::now();
    for (i, a) in artifacts.iter().enumerate() {
        let c = if warm {
            deserialize(&engine, &pre[i])?
        } else {
            Component::new(&engine, a).map_err(|e| e.to_string())?
        };
        let mut linker: Linker<Raw> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| e.to_string())?;
        linker.define_unknown_imports_as_traps(&c).map_err(|e| e.to_string())?;
        let mut store = wasmtime::Store::new(&engine, Raw::default());
        let run = c.get_export_index(None, "run").ok_or("no `run` export")?;
        spin_on(async {
            let inst = linker.instantiate_async(&mut store, &c).await?;
            let f = inst.get_typed_func::<(), ()>(&mut store, &run)?;
            f.call_async(&mut store, ()).await
        })
        .map_err(|e| format!("raw wasmtime: {e:#}"))?;
    }
    Ok(t0.elapsed())
}

/// What a warm compile cache does: load machine code this engine made.
#[expect(unsafe_code, reason = "wasmtime's deserialize is unsafe: it loads machine code")]
fn deserialize(engine: &wasmtime::Engine, bytes: &[u8]) -> Result<Component, String> {
    // SAFETY: `bytes` came from `engine.precompile_component` on this same engine in this
    // process (raw_start), so they are a well-formed artifact for it, as `deserialize`
    // requires; nothing else could have written them.
    unsafe { Component::deserialize(engine, bytes) }.map_err(|e| e.to_string())
}

fn tempfile_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("rusm-bench-{}-{}", std::process::id(), nanos(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default())));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

// ---- connection-storm ----

pub fn connection_storm(opts: &Opts) -> Result<Report, String> {
    let dir = tempfile_dir()?;
    let source = repo().join("examples/echo-tcp/components/echo");
    std::fs::write(dir.join("rusm.toml"), format!("[app]\nname = \"connection-storm\"\n\n[components.echo]\nsource = {:?}\nlisten = \"127.0.0.1:0\"\n", source.to_string_lossy()))
        .map_err(|e| e.to_string())?;
    let (child, rx) = start_rusm(&dir, &dir.join("cache"))?;
    let addr: SocketAddr = wait_for(&rx, "a listening address", |v| (v["event"] == "listening").then(|| v["addr"].as_str().and_then(|a| a.parse().ok())).flatten())?;
    let rusm = clients("rusm (echo-tcp)", addr, opts.duration());
    stop(child);
    let _ = std::fs::remove_dir_all(&dir);
    let rusm = rusm?;

    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        for s in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || echo_thread(s));
        }
    });
    let baseline = clients("threads (std echo)", addr, opts.duration())?;
    let mut r = Report { rusm, baseline, latency: false, notes: Vec::new(), extra: serde_json::Map::new() };
    let ratio = r.ratio();
    r.notes.insert(0, format!("target: >= 1.00x the thread-per-connection baseline: {} ({ratio:.2}x)", if ratio >= 1.0 { "met" } else { "NOT met" }));
    r.notes.push(format!("{CLIENTS} client threads; one operation = connect, write {PAYLOAD} bytes, read them back, close; p50/p99 of whole operations"));
    r.extra.insert("target_met".into(), json!(ratio >= 1.0));
    Ok(r)
}

fn echo_thread(mut s: TcpStream) {
    let mut buf = [0u8; 16 << 10];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

fn clients(name: &'static str, addr: SocketAddr, d: Duration) -> Result<Side, String> {
    let deadline = Instant::now() + d;
    let start = Instant::now();
    let total = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let total = total.clone();
            std::thread::spawn(move || -> Result<Vec<u64>, String> {
                let mut samples = Vec::new();
                let payload = [i as u8; PAYLOAD];
                let mut back = [0u8; PAYLOAD];
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    let mut s = TcpStream::connect(addr).map_err(|e| format!("{name}: connect: {e}"))?;
                    s.set_nodelay(true).map_err(|e| e.to_string())?;
                    s.write_all(&payload).map_err(|e| format!("{name}: write: {e}"))?;
                    s.read_exact(&mut back).map_err(|e| format!("{name}: read: {e}"))?;
                    if back != payload {
                        return Err(format!("{name}: echoed the wrong bytes"));
                    }
                    drop(s);
                    samples.push(nanos(t0.elapsed()));
                    total.fetch_add(1, Ordering::Relaxed);
                }
                Ok(samples)
            })
        })
        .collect();
    let mut samples = Vec::new();
    for t in threads {
        samples.extend(t.join().map_err(|_| "a client thread panicked".to_owned())??);
    }
    Ok(Side { name, ops: total.load(Ordering::Relaxed), elapsed: start.elapsed(), lat: Stats::new(samples) })
}
