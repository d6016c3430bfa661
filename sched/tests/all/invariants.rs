//! Layering invariants, read from cargo's own view of the dependency graph.

use std::process::Command;

#[test]
fn rusm_sched_depends_on_neither_tokio_nor_wasmtime() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // `--target all` takes in every target-specific dependency, `cfg(loom)` ones too, which
    // a fresh machine has not downloaded yet: no `--offline`, so cargo fetches them.
    let out = Command::new(cargo)
        .args([
            "tree",
            "--manifest-path",
            manifest,
            "-p",
            "rusm-sched",
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--target",
            "all",
        ])
        .output()
        .expect("run cargo tree");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8(out.stdout).unwrap();
    let crates: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(crates.contains(&"corosensei"), "unexpected tree:\n{tree}");
    for bad in ["tokio", "wasmtime", "wasmtime-wasi", "async-std", "smol"] {
        assert!(!crates.contains(&bad), "rusm-sched depends on {bad}:\n{tree}");
    }
}
