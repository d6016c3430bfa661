//! Development tooling shared by the tests and rusm-bench: builds the Rust test guests in
//! `wasm-host/tests/guests` for `wasm32-wasip1`, once per source hash.
//!
//! Installs the target with `rustup target add wasm32-wasip1` if it is missing. The build
//! runs `cargo build --release` in the guests' own workspace with a target directory
//! under the host workspace's `target/`, and copies the `.wasm` files into
//! `target/guests-<hash>/`, so a second call (or a second test binary) with the same
//! sources does nothing.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The guests' source directory.
pub fn guests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests")
}

/// The WAT fixtures' directory.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn hash_tree(dir: &Path, h: &mut DefaultHasher) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            hash_tree(&p, h);
        } else if let Ok(bytes) = std::fs::read(&p) {
            p.strip_prefix(guests_dir()).unwrap_or(&p).hash(h);
            bytes.hash(h);
        }
    }
}

/// Builds the guests (if their sources changed) and returns the directory holding
/// `<bin>.wasm` for each of them.
///
/// # Panics
///
/// If the target cannot be installed or the build fails: the message says which and why.
pub fn build_guests() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let mut h = DefaultHasher::new();
        hash_tree(&guests_dir(), &mut h);
        let out = target_dir().join(format!("guests-{:016x}", h.finish()));
        if out.join(".built").exists() {
            return out;
        }
        ensure_target("wasm32-wasip1");
        let build_dir = target_dir().join("guests");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        // The outer cargo's settings (the host's target dir, -D warnings) are not the guests'.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if (k.starts_with("CARGO_") && k != "CARGO_HOME") || k == "RUSTFLAGS" || k == "RUSTC_WRAPPER" {
                cmd.env_remove(k);
            }
        }
        let status = cmd
            .args(["build", "--release", "--quiet", "--target", "wasm32-wasip1", "--target-dir"])
            .arg(&build_dir)
            .current_dir(guests_dir())
            .status()
            .expect("run cargo to build the test guests");
        assert!(status.success(), "building the test guests failed ({status}); see the output above");
        std::fs::create_dir_all(&out).expect("create the guests' output dir");
        let release = build_dir.join("wasm32-wasip1/release");
        for e in std::fs::read_dir(&release).expect("the guests' release dir").flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "wasm") {
                std::fs::copy(&p, out.join(p.file_name().expect("a file name"))).expect("copy a guest");
            }
        }
        std::fs::write(out.join(".built"), b"").expect("mark the guests built");
        out
    })
    .clone()
}

/// A built guest's bytes.
///
/// # Panics
///
/// As [`build_guests`], or if there is no such guest.
pub fn guest(name: &str) -> Vec<u8> {
    let p = build_guests().join(format!("{name}.wasm"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("no guest {}: {e}", p.display()))
}

/// A WAT fixture's text.
///
/// # Panics
///
/// If there is no such fixture.
pub fn fixture(name: &str) -> Vec<u8> {
    let p = fixtures_dir().join(format!("{name}.wat"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("no fixture {}: {e}", p.display()))
}

fn ensure_target(target: &str) {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == target))
        .unwrap_or(false);
    if installed {
        return;
    }
    let status = Command::new("rustup").args(["target", "add", target]).status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "the {target} target is missing and `rustup target add {target}` failed: install it by hand"
    );
}
