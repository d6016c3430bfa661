//! `rusm build`: each `source` component built with cargo for its target and copied to
//! `./wasm/<name>.wasm`.
//!
//! cargo decides what is stale (an unchanged crate is a no-op of a fraction of a second);
//! the artifact is found in cargo's own JSON messages, so a crate inside a workspace (whose
//! target directory is elsewhere) works the same. The copy in `./wasm/` is rewritten only
//! when its bytes change, so a watcher sees no write for a no-op build.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::events::{Event, Out};
use crate::manifest::{App, ArtifactSource, Target};

/// The directory of built artifacts beside the manifest.
pub fn wasm_dir(app: &App) -> PathBuf {
    app.dir.join("wasm")
}

/// Builds every source component of `app`; returns nothing new, the artifacts are in
/// `./wasm/`.
///
/// # Errors
///
/// A build that fails, with cargo's output.
pub fn build_all(app: &App, out: &Out) -> Result<()> {
    let mut checked = Vec::new();
    for c in &app.components {
        if let ArtifactSource::Source { dir, target } = &c.artifact {
            if !checked.contains(target) {
                ensure_target(*target)?;
                checked.push(*target);
            }
            let dest = wasm_dir(app).join(format!("{}.wasm", c.name));
            let changed = build_one(&c.name, dir, *target, &dest, out.is_terminal())?;
            if changed {
                out.event(Event::Built { component: &c.name, path: &dest.display().to_string() });
            }
        }
    }
    Ok(())
}

/// Where a component's artifact is once built.
pub fn artifact_path(app: &App, name: &str, source: &ArtifactSource) -> PathBuf {
    match source {
        ArtifactSource::Source { .. } => wasm_dir(app).join(format!("{name}.wasm")),
        ArtifactSource::Wasm(p) | ArtifactSource::WasmDir(p) => p.clone(),
    }
}

/// Adds the rustup target if rustup is there and lacks it (without rustup, cargo's own
/// error says what is missing).
fn ensure_target(target: Target) -> Result<()> {
    let triple = target.triple();
    let Ok(list) = Command::new("rustup").args(["target", "list", "--installed"]).output() else {
        return Ok(());
    };
    if String::from_utf8_lossy(&list.stdout).lines().any(|l| l.trim() == triple) {
        return Ok(());
    }
    tracing::info!("installing the {triple} target with rustup");
    let status = Command::new("rustup").args(["target", "add", triple]).status().context("running rustup")?;
    if !status.success() {
        bail!("`rustup target add {triple}` failed: install the target and run again");
    }
    Ok(())
}

/// Runs cargo for one crate; copies the artifact to `dest` if its bytes differ. Returns
/// whether `dest` changed.
fn build_one(name: &str, dir: &Path, target: Target, dest: &Path, spin: bool) -> Result<bool> {
    tracing::debug!("building {name} ({}) for {}", dir.display(), target.triple());
    // A spinner while cargo works, on a terminal only (plain lines otherwise).
    let spinner = spin.then(|| {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_message(format!("building {name} ({})", target.triple()));
        pb.enable_steady_tick(std::time::Duration::from_millis(100));
        pb
    });
    let result = run_cargo(name, dir, target);
    if let Some(pb) = spinner {
        pb.finish_and_clear();
    }
    let stdout = result?;
    let built = wasm_artifact(&stdout, dir).with_context(|| format!("cargo built no .wasm for component {name} (is it a cdylib for wasip2 or a bin for wasip1?)"))?;
    let bytes = std::fs::read(&built).with_context(|| format!("reading {}", built.display()))?;
    if std::fs::read(dest).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    // Write beside it and rename: a running watcher or loader never sees half a file.
    let tmp = dest.with_extension("wasm.tmp");
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, dest).with_context(|| format!("writing {}", dest.display()))?;
    Ok(true)
}

/// Runs cargo for one crate; returns its JSON messages, or its rendered errors.
fn run_cargo(name: &str, dir: &Path, target: Target) -> Result<String> {
    let mut child = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "--message-format=json-render-diagnostics", "--target", target.triple()])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting cargo for component {name}"))?;
    // stderr on a thread of its own, so neither pipe fills while the other is read.
    let mut stderr = child.stderr.take().expect("piped");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut stdout = String::new();
    child.stdout.take().expect("piped").read_to_string(&mut stdout).context("reading cargo's output")?;
    let status = child.wait().context("waiting for cargo")?;
    let stderr = err_reader.join().unwrap_or_default();
    if !status.success() {
        bail!("building component {name} failed ({}):\n{}", dir.display(), stderr.trim_end());
    }
    Ok(stdout)
}

/// The `.wasm` of the crate in `dir` among cargo's `compiler-artifact` messages.
fn wasm_artifact(messages: &str, dir: &Path) -> Option<PathBuf> {
    let manifest = std::fs::canonicalize(dir.join("Cargo.toml")).ok()?;
    let mut found = None;
    for line in messages.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if v["reason"] != "compiler-artifact" {
            continue;
        }
        let ours = v["manifest_path"].as_str().and_then(|p| std::fs::canonicalize(p).ok()).is_some_and(|p| p == manifest);
        if !ours {
            continue;
        }
        for f in v["filenames"].as_array().into_iter().flatten() {
            if let Some(f) = f.as_str().filter(|f| f.ends_with(".wasm")) {
                found = Some(PathBuf::from(f));
            }
        }
    }
    found
}
