//! Development tooling shared by the tests and rusm-bench: builds the Rust test guests,
//! once per source hash: the core modules in `wasm-host/tests/guests` for
//! `wasm32-wasip1`, and the components in `wasm-host/tests/components` (wit-bindgen
//! against `wit/`) for `wasm32-wasip2`.
//!
//! Installs a missing target with `rustup target add`. Each build runs `cargo build
//! --release` in the guests' own workspace with a target directory under the host
//! workspace's `target/`, and copies the `.wasm` files into `target/<set>-<hash>/`, so a
//! second call (or a second test binary) with the same sources does nothing.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The core-module guests' source directory.
pub fn guests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests")
}

/// The component guests' source directory.
pub fn components_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/components")
}

/// The `rusm:runtime` WIT package.
pub fn wit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit")
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

fn hash_tree(root: &Path, dir: &Path, h: &mut DefaultHasher) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            hash_tree(root, &p, h);
        } else if let Ok(bytes) = std::fs::read(&p) {
            p.strip_prefix(root).unwrap_or(&p).hash(h);
            bytes.hash(h);
        }
    }
}

/// Builds the set of guests in `src` for `target` unless a build of the same sources
/// (and of `also`, which they depend on) is there; returns the directory of `.wasm` files.
fn build_set(set: &str, src: &Path, also: Option<&Path>, target: &str) -> PathBuf {
    let mut h = DefaultHasher::new();
    hash_tree(src, src, &mut h);
    if let Some(dir) = also {
        hash_tree(dir, dir, &mut h);
    }
    let out = target_dir().join(format!("{set}-{:016x}", h.finish()));
    if out.join(".built").exists() {
        return out;
    }
    ensure_target(target);
    let build_dir = target_dir().join(set);
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // The outer cargo's settings (the host's target dir, -D warnings) are not the guests'.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if (k.starts_with("CARGO_") && k != "CARGO_HOME") || k == "RUSTFLAGS" || k == "RUSTC_WRAPPER" {
            cmd.env_remove(k);
        }
    }
    let status = cmd
        .args(["build", "--release", "--quiet", "--target", target, "--target-dir"])
        .arg(&build_dir)
        .current_dir(src)
        .status()
        .expect("run cargo to build the test guests");
    assert!(status.success(), "building the {set} ({target}) failed ({status}); see the output above");
    std::fs::create_dir_all(&out).expect("create the guests' output dir");
    let release = build_dir.join(target).join("release");
    for e in std::fs::read_dir(&release).expect("the guests' release dir").flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "wasm") {
            std::fs::copy(&p, out.join(p.file_name().expect("a file name"))).expect("copy a guest");
        }
    }
    std::fs::write(out.join(".built"), b"").expect("mark the guests built");
    out
}

/// Builds the core-module guests (if their sources changed) and returns the directory
/// holding `<bin>.wasm` for each of them.
///
/// # Panics
///
/// If the target cannot be installed or the build fails: the message says which and why.
pub fn build_guests() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| build_set("guests", &guests_dir(), None, "wasm32-wasip1")).clone()
}

/// Builds the component guests (if their sources or `wit/` changed) and returns the
/// directory holding `<crate>.wasm` for each of them.
///
/// # Panics
///
/// As [`build_guests`].
pub fn build_components() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| build_set("components", &components_dir(), Some(&wit_dir()), "wasm32-wasip2")).clone()
}

/// A built component's bytes.
///
/// # Panics
///
/// As [`build_components`], or if there is no such component.
pub fn component(name: &str) -> Vec<u8> {
    let p = build_components().join(format!("{name}.wasm"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("no component {}: {e}", p.display()))
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
