//! The on-disk cache of compiled artifacts: precompiled code keyed by the content hash of
//! the source bytes and the engine's compatibility hash, so a second start does not
//! compile again and an engine with other settings never loads code built for another.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

/// The hex SHA-256 of `bytes`: an artifact's content hash.
pub fn content_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn engine_hash(engine: &Engine) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    h.finish()
}

/// Where the compiled form of `hash` lives for this engine.
pub(crate) fn entry_path(dir: &Path, engine: &Engine, hash: &str) -> PathBuf {
    dir.join(format!("{hash}-{:016x}.cwasm", engine_hash(engine)))
}

/// What loading through the cache did (for tests and logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// No cache configured: compiled.
    Disabled,
    /// Found on disk: not compiled.
    Hit,
    /// Compiled and written to the cache.
    Miss,
}

/// A compiled module or component.
pub(crate) enum Compiled {
    Module(Module),
    Component(Component),
}

impl Compiled {
    fn new(engine: &Engine, bytes: &[u8], component: bool) -> wasmtime::Result<Compiled> {
        Ok(if component { Compiled::Component(Component::new(engine, bytes)?) } else { Compiled::Module(Module::new(engine, bytes)?) })
    }

    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        match self {
            Compiled::Module(m) => m.serialize(),
            Compiled::Component(c) => c.serialize(),
        }
    }
}

/// Compiles `bytes` (a component if `component`), or loads them precompiled from `dir`.
pub(crate) fn load(engine: &Engine, dir: Option<&Path>, bytes: &[u8], hash: &str, component: bool) -> wasmtime::Result<(Compiled, CacheOutcome)> {
    let Some(dir) = dir else {
        return Ok((Compiled::new(engine, bytes, component)?, CacheOutcome::Disabled));
    };
    let path = entry_path(dir, engine, hash);
    // Read, not mapped: a mapped cache file truncated under a running host would be a
    // SIGBUS; an in-memory copy cannot be taken away.
    if let Ok(code) = std::fs::read(&path) {
        // Why loading is sound: the file is one this host wrote with `serialize` for an engine
        // with the same compatibility hash (it is in the name), into a cache directory
        // the operator owns; wasmtime checks its header and engine settings again and
        // refuses a mismatch or a damaged file. A file someone else could write would be
        // unsound to load: the docs say the cache directory must be trusted.
        // A component's file is refused by `Module::deserialize` and the other way round.
        let loaded = if component {
            // SAFETY: written by this host's `Component::serialize` for this engine into
            // the operator's cache directory, and checked again by wasmtime (see above).
            unsafe { Component::deserialize(engine, &code) }.map(Compiled::Component)
        } else {
            // SAFETY: written by this host's `Module::serialize` for this engine into the
            // operator's cache directory, and checked again by wasmtime (see above).
            unsafe { Module::deserialize(engine, &code) }.map(Compiled::Module)
        };
        match loaded {
            Ok(m) => return Ok((m, CacheOutcome::Hit)),
            Err(_) => {
                // Stale or damaged: compile again and overwrite it.
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let module = Compiled::new(engine, bytes, component)?;
    if std::fs::create_dir_all(dir).is_ok() {
        let tmp = dir.join(format!(".{hash}.{}.tmp", std::process::id()));
        if let Ok(code) = module.serialize()
            && std::fs::write(&tmp, code).is_ok()
        {
            // Rename is atomic: a concurrent reader sees the whole file or none.
            let _ = std::fs::rename(&tmp, &path);
        }
        let _ = std::fs::remove_file(&tmp);
    }
    Ok((module, CacheOutcome::Miss))
}
