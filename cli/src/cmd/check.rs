//! `rusm check` (the manifest and what it would run) and `rusm build`.

use std::path::PathBuf;

use crate::args::BuildArgs;
use crate::cmd::build;
use crate::events::Out;
use crate::manifest::{self, ArtifactSource};
use crate::{EXIT_FAILURE, Failure};

fn load(args: &BuildArgs) -> Result<manifest::App, Failure> {
    let path = args.path.clone().unwrap_or_else(|| PathBuf::from(manifest::FILE_NAME));
    manifest::load(&manifest::locate(&path), &|k| std::env::var(k).ok()).map_err(Failure::Manifest)
}

/// `rusm check`: prints each component in start order, or the manifest's error.
///
/// # Errors
///
/// A manifest error.
pub fn check(args: BuildArgs) -> Result<i32, Failure> {
    let app = load(&args)?;
    println!("app {} ({}): {} component(s), in start order:", app.name, app.path.display(), app.components.len());
    for c in &app.components {
        let from = match &c.artifact {
            ArtifactSource::Source { dir, target } => format!("source {} ({})", dir.display(), target.triple()),
            ArtifactSource::Wasm(p) | ArtifactSource::WasmDir(p) => format!("wasm {}", p.display()),
        };
        let mut extra = String::new();
        if !c.start_after.is_empty() {
            extra += &format!(", after {}", c.start_after.join(" "));
        }
        if c.other_apps {
            extra += ", grant other-apps";
        }
        println!("  {} ×{} {:?} {:?}: {from}{extra}", c.name, c.instances, c.profile, c.restart);
    }
    Ok(0)
}

/// `rusm build`.
///
/// # Errors
///
/// A manifest error, or a build that failed.
pub fn build(args: BuildArgs) -> Result<i32, Failure> {
    let app = load(&args)?;
    let out = Out::new(false, false, Vec::new());
    build::build_all(&app, &out).map_err(|e| Failure::code(EXIT_FAILURE, e))?;
    Ok(0)
}
