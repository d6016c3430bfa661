//! rusm-bench smoke tests: every scenario runs briefly and prints a well-formed report
//! with a real measurement on both sides. (Numbers are not asserted: the machine is noisy;
//! see the README on reading benchmarks.)

use std::process::Command;

fn run(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_rusm-bench"))
        .args(args)
        .output()
        .expect("run rusm-bench");
    assert!(
        out.status.success(),
        "rusm-bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
    })
}

fn assert_sides_measured(v: &serde_json::Value) {
    for side in ["rusm", "baseline"] {
        let ops = v[side]["ops"].as_u64().unwrap_or(0);
        assert!(ops > 0, "{side} did no work: {v}");
    }
    assert!(v["ratio"].as_f64().is_some_and(|r| r > 0.0), "{v}");
}

#[test]
fn spawn_storm_reports_both_sides() {
    let v = run(&["run", "spawn-storm", "0.2", "--json", "--workers", "2"]);
    assert_eq!(v["scenario"], "spawn-storm");
    assert_sides_measured(&v);
    assert!(v["target_met"].is_boolean(), "{v}");
}

#[test]
fn fiber_storm_reports_both_sides() {
    let v = run(&["run", "fiber-storm", "0.2", "--json", "--workers", "2"]);
    assert_sides_measured(&v);
}

#[test]
fn otp_scenarios_report_both_sides() {
    for args in [
        &["run", "ping-pong", "0.2", "--json", "--workers", "2"][..],
        &["run", "ring", "0.1", "--json", "--workers", "2", "--count", "200"],
        &["run", "fault-recovery", "0.2", "--json", "--workers", "2"],
        &["run", "stream-pipe", "0.2", "--json", "--workers", "2"],
    ] {
        let v = run(args);
        assert_eq!(v["scenario"], args[1]);
        assert_sides_measured(&v);
    }
}

#[test]
fn idle_processes_reports_bytes_per_process() {
    let v = run(&["run", "idle-processes", "0.1", "--json", "--count", "2000"]);
    assert_eq!(v["scenario"], "idle-processes");
    assert_eq!(v["rusm"]["name"], "rusm-otp", "{v}");
    assert!(v["rusm"]["bytes_per_task"].is_number(), "{v}");
    assert!(v["baseline"]["bytes_per_task"].is_number(), "{v}");
}

#[test]
fn fiber_pingpong_reports_both_sides() {
    let v = run(&["run", "fiber-pingpong", "0.2", "--json", "--workers", "2"]);
    assert_sides_measured(&v);
}

#[test]
fn idle_fibers_reports_bytes_per_fiber() {
    let v = run(&["run", "idle-fibers", "0.1", "--json", "--count", "2000"]);
    assert_eq!(v["scenario"], "idle-fibers");
    assert!(v.to_string().contains("rusm"), "{v}");
}

#[test]
fn unknown_scenario_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_rusm-bench"))
        .args(["run", "no-such-thing", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
}

#[test]
fn wasm_scenarios_report_both_sides() {
    for args in [
        &["run", "module-storm", "0.2", "--json", "--workers", "2"][..],
        &["run", "module-storm-wat", "0.2", "--json", "--workers", "2"],
        &["run", "fairness", "0.2", "--json", "--workers", "2"],
    ] {
        let v = run(args);
        assert_sides_measured(&v);
        assert!(v["target_met"].is_boolean(), "{v}");
    }
    let v = run(&["run", "idle-modules", "0", "--json", "--workers", "2", "--count", "500"]);
    assert_eq!(v["count"], 500, "{v}");
    assert_idle_guests_measured(&v);
}

#[test]
fn component_scenarios_report_both_sides() {
    for args in [
        &["run", "component-storm", "0.2", "--json", "--workers", "2"][..],
        &["run", "component-pingpong", "0.2", "--json", "--workers", "2"],
    ] {
        let v = run(args);
        assert_sides_measured(&v);
    }
    let v = run(&["run", "component-storm", "0.2", "--json", "--workers", "2"]);
    assert!(v["target_met"].is_boolean(), "{v}");
    for scenario in ["idle-components", "idle-components-p3"] {
        let v = run(&["run", scenario, "0", "--json", "--workers", "2", "--count", "300"]);
        assert_eq!(v["count"], 300, "{v}");
        assert_idle_guests_measured(&v);
    }
}

/// idle-modules / idle-components measured the parked guests and, in a child process,
/// their raw-wasmtime baseline (the same count of instances).
fn assert_idle_guests_measured(v: &serde_json::Value) {
    assert!(v["bytes_per_guest"].as_f64().is_some_and(|b| b > 0.0), "{v}");
    assert!(v["heap_bytes_per_guest"].as_f64().is_some_and(|b| b > 0.0), "{v}");
    assert_eq!(v["baseline"]["count"], v["count"], "{v}");
    assert!(v["baseline"]["bytes_per_guest"].as_f64().is_some_and(|b| b > 0.0), "{v}");
    assert!(v["ratio"].as_f64().is_some_and(|r| r > 0.0), "{v}");
}

/// The app scenarios run the `rusm` binary beside this one (`cargo test --workspace`
/// builds it into the same target directory).
#[test]
fn app_scenarios_report_both_sides() {
    let rusm = std::path::Path::new(env!("CARGO_BIN_EXE_rusm-bench")).with_file_name("rusm");
    if !rusm.is_file() && std::env::var_os("CI").is_none() {
        eprintln!("skipped: no {} (run `cargo test --workspace`, which builds it)", rusm.display());
        return;
    }
    let v = run(&["run", "connection-storm", "0.5", "--json"]);
    assert_sides_measured(&v);
    assert!(v["target_met"].is_boolean(), "{v}");
    let v = run(&["run", "app-start", "1", "--json", "--count", "2"]);
    assert_eq!(v["scenario"], "app-start");
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "cold and warm: {v}");
    for r in rows {
        assert_eq!(r["components"], 2);
        assert!(r["rusm_ms"].as_f64().unwrap() > 0.0 && r["wasmtime_ms"].as_f64().unwrap() > 0.0, "{v}");
    }
}
