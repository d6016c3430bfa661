//! `rusm-bench`: RUSM scenarios, each measured against a baseline in the same run.
//!
//! ```text
//! rusm-bench run <scenario> <seconds> [--json] [--workers N] [--count N]
//! rusm-bench list
//! ```
//!
//! # Reading the output
//!
//! Every scenario runs the RUSM side first and then its baseline (Tokio), back to back, each
//! for `<seconds>`, on the same number of worker threads (`--workers`, default: one per CPU).
//! One row per side:
//!
//! - `rate/s`: completed operations per second of wall time (spawn-storm: processes that
//!   ran, replied and were reaped; fiber-storm: fibers spawned and joined; ping-pong and
//!   fiber-pingpong: round trips A -> B -> A; ring: hops; fault-recovery: restarts;
//!   stream-pipe: bytes). The scenario modules (`otp.rs`, `spawn_storm.rs`, `pingpong.rs`)
//!   say exactly what each side does.
//! - `p50` / `p99`: latency quantiles of sampled operations. The storms sample the time
//!   spent inside the `spawn` call itself (every 64th spawn), not the time to completion,
//!   which would mostly measure queueing behind the 1024 children in flight. The ping-pongs
//!   sample every 16th round trip; their `mean` column is wall time / round trips.
//! - `ratio`: how RUSM compares, on the `ratio_meaning` printed below the table (and in the
//!   JSON): RUSM rate / baseline rate for throughput scenarios, baseline mean RTT / RUSM
//!   mean RTT for the ping-pongs. Above 1.00x, RUSM is ahead. A `target:` line (and
//!   `target_met` in the JSON) says whether the scenario's target was met in this run.
//!
//! `idle-fibers` and `idle-processes` measure memory instead: RSS and page-table bytes per
//! parked task (targets for RUSM: 4,608 B per fiber, 5,000 B per process), the process's
//! kernel mappings, and the time to spawn, park and tear
//! down `--count N` tasks (default 100,000); `<seconds>` is how long they are held idle
//! before the second reading. Its ratio is RUSM bytes / Tokio bytes: *lower* is better for
//! RUSM (a stackful fiber owns at least one stack page, a Tokio task does not). With
//! `--count 1000000` it also says whether a million fibers fit. Each side runs in a child
//! process of its own, so one side's freed memory cannot flatter the other's reading.
//!
//! # Noise
//!
//! The machine is shared and noisy, and absolute numbers move from run to run. Compare the
//! ratios from one run (both sides saw the same machine state, seconds apart), and quote
//! the median of three runs. `--json` prints one JSON object for scripts.

#![deny(unsafe_code)]

mod app;
mod component;
mod idle;
mod otp;
mod pingpong;
mod spawn_storm;
mod wasm;

use std::process::exit;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Scenario names and one-line descriptions, for `list` and argument checking.
const SCENARIOS: &[(&str, &str)] = &[
    (
        "spawn-storm",
        "processes (rusm-otp) that reply once and exit, 1024 in flight per spawner (vs tokio::spawn + mpsc)",
    ),
    (
        "ping-pong",
        "two processes pass a message with send/receive; round trip (vs two Tokio tasks over mpsc)",
    ),
    (
        "ring",
        "a token round a ring of --count processes (default 10000), >= 100 laps; hops/s (vs Tokio tasks + mpsc)",
    ),
    (
        "fault-recovery",
        "restarts/s of a one_for_one child that exits abnormally at once (vs a Tokio respawn loop)",
    ),
    (
        "stream-pipe",
        "bytes/s through a 64 KiB stream between two processes (vs an OS pipe between two threads)",
    ),
    (
        "idle-processes",
        "RSS per process parked in receive, mailbox included; --count N (default 100000) (vs Tokio tasks on mpsc)",
    ),
    (
        "module-storm",
        "Rust wasip1 fn main(){} guests spawned, run and reaped, 8 in flight per spawner (vs raw wasmtime, same engine)",
    ),
    (
        "module-storm-wat",
        "as module-storm with a one-page WAT module (vs raw wasmtime, same engine)",
    ),
    (
        "fairness",
        "short-job latency while 2x workers guests spin for ever (vs the same jobs with no spinners)",
    ),
    (
        "idle-modules",
        "RSS and mappings per guest parked in receive; --count N (default 10000); how many fit",
    ),
    (
        "component-storm",
        "Rust wasm32-wasip2 components (run returns) spawned, run and reaped, 8 in flight per spawner (vs raw wasmtime, same engine)",
    ),
    (
        "component-pingpong",
        "round trip between two components over send/receive (vs two native processes)",
    ),
    (
        "app-start",
        "`rusm run` to every component started, 1 and 100 components, cold and warm cache (vs plain wasmtime; needs target/release/rusm)",
    ),
    (
        "connection-storm",
        "examples/echo-tcp under 100 clients: connections/s, p50/p99 (vs a thread-per-connection std echo; needs target/release/rusm)",
    ),
    (
        "idle-components",
        "RSS and mappings per Rust component parked in receive; --count N (default 10000); how many fit",
    ),
    (
        "idle-components-p3",
        "idle-components with a preview 3 component (async run) parked in receive",
    ),
    (
        "fiber-storm",
        "bare rusm-sched fibers: spawn and join empty children, 1024 in flight (vs tokio::spawn)",
    ),
    (
        "fiber-pingpong",
        "two fibers pass a token with park/wake; round-trip time (vs two Tokio tasks over mpsc)",
    ),
    (
        "idle-fibers",
        "RSS, page tables and mappings per parked fiber; --count N (default 100000) (vs Tokio tasks)",
    ),
];

const USAGE: &str = "usage: rusm-bench run <scenario> <seconds> [--json] [--workers N] [--count N]
       rusm-bench list
scenarios: see `rusm-bench list` (seconds may be fractional, e.g. 0.5)";

/// Parsed `run` arguments.
#[derive(Debug, Clone)]
pub struct Opts {
    pub scenario: String,
    pub seconds: f64,
    pub json: bool,
    pub workers: usize,
    /// idle-*: tasks per side; ring: ring size. `None`: the scenario's default.
    pub count: Option<usize>,
}

impl Opts {
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }
}

/// Latency quantiles from samples in nanoseconds.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    sorted: Vec<u64>,
}

impl Stats {
    pub fn new(mut samples: Vec<u64>) -> Stats {
        samples.sort_unstable();
        Stats { sorted: samples }
    }

    /// Number of samples.
    pub fn samples(&self) -> usize {
        self.sorted.len()
    }

    /// The nearest-rank `q` quantile (`q` in 0..=1), `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        let rank = (q * n as f64).ceil() as usize;
        Some(self.sorted[rank.saturating_sub(1).min(n - 1)])
    }
}

/// Counts operations, times every `every`th, and checks the deadline only on those (to
/// keep `Instant::now` off most iterations).
#[derive(Debug)]
pub struct Sampler {
    every: u64,
    deadline: Instant,
    ops: u64,
    samples: Vec<u64>,
}

impl Sampler {
    pub fn new(every: u64, deadline: Instant) -> Sampler {
        Sampler {
            every,
            deadline,
            ops: 0,
            samples: Vec::new(),
        }
    }

    /// Before an operation: its start time if it is sampled.
    pub fn start(&self) -> Option<Instant> {
        self.ops.is_multiple_of(self.every).then(Instant::now)
    }

    /// After it: counts it; `true` once the deadline has passed.
    pub fn done(&mut self, t0: Option<Instant>) -> bool {
        self.ops += 1;
        let Some(t0) = t0 else { return false };
        let t1 = Instant::now();
        self.samples.push(nanos(t1 - t0));
        t1 >= self.deadline
    }

    pub fn ops(&self) -> u64 {
        self.ops
    }

    pub fn into_samples(self) -> Vec<u64> {
        self.samples
    }
}

/// One side of a throughput or latency scenario.
#[derive(Debug)]
pub struct Side {
    pub name: &'static str,
    pub ops: u64,
    pub elapsed: Duration,
    pub lat: Stats,
}

impl Side {
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Wall time per operation.
    pub fn mean_ns(&self) -> f64 {
        if self.ops == 0 {
            return f64::NAN;
        }
        self.elapsed.as_nanos() as f64 / self.ops as f64
    }
}

/// What spawn-storm and fiber-pingpong hand back for printing.
#[derive(Debug)]
pub struct Report {
    pub rusm: Side,
    pub baseline: Side,
    /// Latency scenario: ratio = baseline mean / rusm mean, and a `mean` column is shown.
    pub latency: bool,
    /// Lines printed under the table.
    pub notes: Vec<String>,
    /// Extra fields of the JSON object.
    pub extra: serde_json::Map<String, Value>,
}

impl Report {
    pub fn ratio(&self) -> f64 {
        if self.latency {
            self.baseline.mean_ns() / self.rusm.mean_ns()
        } else {
            self.rusm.rate() / self.baseline.rate()
        }
    }

    pub fn ratio_meaning(&self) -> &'static str {
        if self.latency {
            "baseline mean round trip / rusm mean round trip (higher is better for rusm)"
        } else {
            "rusm rate / baseline rate (higher is better for rusm)"
        }
    }
}

/// Nanoseconds of `d`, saturating.
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `1234567` -> `1,234,567`.
pub fn fmt_int(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A nanosecond latency in a readable unit.
pub fn fmt_ns(ns: Option<f64>) -> String {
    match ns {
        Some(ns) if ns.is_finite() => {
            if ns < 1_000.0 {
                format!("{ns:.0} ns")
            } else if ns < 1_000_000.0 {
                format!("{:.1} us", ns / 1e3)
            } else if ns < 1e9 {
                format!("{:.2} ms", ns / 1e6)
            } else {
                format!("{:.2} s", ns / 1e9)
            }
        }
        _ => "-".to_owned(),
    }
}

pub fn fmt_secs(s: f64) -> String {
    if s.fract() == 0.0 {
        format!("{s:.1}")
    } else {
        format!("{s}")
    }
}

pub fn fmt_ratio(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.2}x")
    } else {
        "-".to_owned()
    }
}

/// The first line of every table.
pub fn header(opts: &Opts, what: &str) -> String {
    format!(
        "scenario: {}  ({} workers, {what}, machine: {}, {} cpus)",
        opts.scenario,
        opts.workers,
        hostname(),
        cpus()
    )
}

/// Prints a throughput/latency report as a table or one JSON object.
pub fn print_report(opts: &Opts, r: &Report) {
    let ratio = r.ratio();
    if opts.json {
        let side = |s: &Side| {
            json!({
                "name": s.name,
                "ops": s.ops,
                "elapsed_s": s.elapsed.as_secs_f64(),
                "rate_per_s": s.rate(),
                "p50_ns": s.lat.quantile(0.50),
                "p99_ns": s.lat.quantile(0.99),
                "mean_ns": s.mean_ns(),
                "samples": s.lat.samples(),
            })
        };
        let mut obj = json!({
            "scenario": opts.scenario,
            "workers": opts.workers,
            "seconds": opts.seconds,
            "machine": hostname(),
            "cpus": cpus(),
            "rusm": side(&r.rusm),
            "baseline": side(&r.baseline),
            "ratio": ratio,
            "ratio_meaning": r.ratio_meaning(),
        });
        if let Value::Object(m) = &mut obj {
            m.extend(r.extra.clone());
        }
        println!("{obj}");
        return;
    }
    println!(
        "{}",
        header(opts, &format!("{} s each", fmt_secs(opts.seconds)))
    );
    let mean_col = if r.latency {
        format!("{:>11}", "mean")
    } else {
        String::new()
    };
    println!(
        "{:<16}{:>13}{:>11}{:>11}{mean_col}{:>10}",
        "", "rate/s", "p50", "p99", "ratio"
    );
    for (s, ratio) in [(&r.rusm, ratio), (&r.baseline, 1.0)] {
        let mean_col = if r.latency {
            format!("{:>11}", fmt_ns(Some(s.mean_ns())))
        } else {
            String::new()
        };
        println!(
            "{:<16}{:>13}{:>11}{:>11}{mean_col}{:>10}",
            s.name,
            fmt_int(s.rate().round() as u64),
            fmt_ns(s.lat.quantile(0.50).map(|v| v as f64)),
            fmt_ns(s.lat.quantile(0.99).map(|v| v as f64)),
            fmt_ratio(ratio),
        );
    }
    println!("ratio = {}", r.ratio_meaning());
    for n in &r.notes {
        println!("{n}");
    }
}

/// Parses a positive count, `1000000` or `1_000_000`.
fn parse_count(s: &str) -> Option<usize> {
    s.replace('_', "").parse().ok().filter(|&n| n > 0)
}

fn parse_run(args: &[String]) -> Result<Opts, String> {
    let mut positional = Vec::new();
    let mut json = false;
    let mut workers = cpus();
    let mut count = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = true,
            "--workers" => {
                let v = it.next().ok_or("--workers needs a value")?;
                workers = parse_count(v).ok_or_else(|| format!("bad --workers value {v:?}"))?;
            }
            "--count" => {
                let v = it.next().ok_or("--count needs a value")?;
                count = Some(parse_count(v).ok_or_else(|| format!("bad --count value {v:?}"))?);
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => positional.push(a.clone()),
        }
    }
    let [scenario, seconds] = positional.as_slice() else {
        return Err("expected <scenario> <seconds>".to_owned());
    };
    if !SCENARIOS.iter().any(|(n, _)| n == scenario) {
        return Err(format!("unknown scenario {scenario:?}"));
    }
    let seconds: f64 = seconds
        .parse()
        .ok()
        .filter(|s: &f64| (0.0..1e6).contains(s))
        .ok_or_else(|| format!("bad seconds {seconds:?}"))?;
    if seconds == 0.0 && !scenario.starts_with("idle-") {
        return Err("seconds must be above 0".to_owned());
    }
    Ok(Opts {
        scenario: scenario.clone(),
        seconds,
        json,
        workers,
        count: count.or(match scenario.as_str() {
            "ring" => Some(10_000),
            "idle-fibers" | "idle-processes" => Some(100_000),
            "idle-modules" => Some(10_000),
            _ => None,
        }),
    })
}

fn usage_exit(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("rusm-bench: {msg}");
    }
    eprintln!("{USAGE}");
    exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("list") => {
            for (name, what) in SCENARIOS {
                println!("{name:<16} {what}");
            }
        }
        Some("run") => {
            let opts = parse_run(&args[1..]).unwrap_or_else(|e| usage_exit(&e));
            let result = match opts.scenario.as_str() {
                "spawn-storm" => otp::spawn_storm(&opts).map(|r| print_report(&opts, &r)),
                "ping-pong" => otp::ping_pong(&opts).map(|r| print_report(&opts, &r)),
                "ring" => otp::ring(&opts).map(|r| print_report(&opts, &r)),
                "fault-recovery" => otp::fault_recovery(&opts).map(|r| print_report(&opts, &r)),
                "stream-pipe" => otp::stream_pipe(&opts).map(|r| print_report(&opts, &r)),
                "module-storm" => wasm::module_storm(&opts, true).map(|r| print_report(&opts, &r)),
                "module-storm-wat" => wasm::module_storm(&opts, false).map(|r| print_report(&opts, &r)),
                "fairness" => wasm::fairness(&opts).map(|r| print_report(&opts, &r)),
                "idle-modules" => wasm::idle_modules(&opts),
                "component-storm" => component::component_storm(&opts).map(|r| print_report(&opts, &r)),
                "app-start" => app::app_start(&opts),
                "connection-storm" => app::connection_storm(&opts).map(|r| print_report(&opts, &r)),
                "component-pingpong" => component::component_pingpong(&opts).map(|r| print_report(&opts, &r)),
                "idle-components" => component::idle_components(&opts, false),
                "idle-components-p3" => component::idle_components(&opts, true),
                "fiber-storm" => spawn_storm::run(&opts).map(|r| print_report(&opts, &r)),
                "fiber-pingpong" => pingpong::run(&opts).map(|r| print_report(&opts, &r)),
                "idle-fibers" | "idle-processes" => idle::run(&opts),
                other => usage_exit(&format!("unknown scenario {other:?}")),
            };
            if let Err(e) = result {
                eprintln!("rusm-bench: {}: {e}", opts.scenario);
                exit(1);
            }
        }
        // Internal: one side of idle-fibers, in its own process (see idle.rs).
        Some(idle::CHILD_COMMAND) => idle::child_main(&args[1..]),
        // Internal: the baseline of idle-modules / idle-components (see wasm.rs).
        Some(wasm::FLOOR_COMMAND) => wasm::floor_main(&args[1..]),
        Some("-h" | "--help" | "help") => println!("{USAGE}"),
        _ => usage_exit(""),
    }
}

/// The RUSM runtime every scenario measures: `workers` threads, default stacks and guards.
pub fn rusm_runtime(workers: usize) -> Result<rusm_sched::Runtime, String> {
    rusm_sched::Runtime::builder()
        .workers(workers)
        .guard_mode(rusm_sched::GuardMode::Auto)
        .build()
        .map_err(|e| format!("building the rusm runtime: {e}"))
}
