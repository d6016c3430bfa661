//! rusm-wasm: WebAssembly guests as RUSM processes.
//!
//! A [`Host`] owns one wasmtime [`Engine`] (epoch interruption with a ticker thread, the
//! pooling allocator, copy-on-write memory images, the spawn path kept free of per-instance
//! kernel work), a linker with WASI preview1 and the raw `rusm` import module, and the
//! registry of loaded [`Artifact`]s. [`Host::spawn`] starts a guest as a rusm-otp process:
//! a future that instantiates through the artifact's `InstancePre` and calls its entry, driven
//! by rusm-sched like any other process. Guests are preempted at every epoch tick and resume
//! on any worker; blocking imports (receive, sleep, stream reads and writes) park only the
//! process. Whatever a guest does wrong ends that process with `Crashed(why)`; its links and
//! monitors fire and the host goes on.
//!
//! The raw ABI is documented byte by byte in `docs/WASM-ABI.md`; its constants are in
//! [`abi`].

mod app;
mod bridges;
pub mod cache;
pub mod caps;
mod ops;
mod process;
pub mod testing;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use rusm_otp::{Node, Pid, Realm, SpawnOpts};
use wasmtime::component::{Component, ComponentExportIndex};
use wasmtime::{Engine, InstancePre, Module, ModuleExport};

pub use bridges::wasip1::abi;
pub use cache::CacheOutcome;
pub use caps::{Caps, CapsError, LogSink, LogStream, Profile, Quotas};

/// How the shared engine is built. The defaults are the measured fast path
/// (`../shared/WASMTIME48.md`, P3-Q4): pooling with copy-on-write images,
/// `linear_memory_keep_resident` over the prefix a Rust guest dirties, and `pagemap_scan`,
/// so an exiting instance is reset without `madvise` and the TLB-shootdown IPIs it costs.
#[derive(Clone)]
pub struct HostConfig {
    /// The epoch tick: the longest a guest runs before it yields to the scheduler.
    pub epoch_tick: Duration,
    /// Pooled core-instance slots: guests alive at once.
    pub instances: u32,
    /// Pooled linear-memory slots.
    pub memories: u32,
    /// Pooled table slots.
    pub tables: u32,
    /// Pooled async stacks: guests running or parked inside a blocking call at once. Each
    /// costs two memory mappings from `Engine::new` on (`vm.max_map_count`).
    pub stacks: u32,
    /// The largest linear memory any guest may have (every memory slot reserves this much
    /// address space); a guest's own cap comes from its [`Caps`].
    pub max_memory_size: u64,
    /// The guard region after each memory slot (0: explicit bounds checks).
    pub memory_guard_size: u64,
    /// Size of each async stack guest code runs on.
    pub async_stack_size: usize,
    /// The deepest Wasm stack a guest may use (a deeper one traps with stack overflow).
    pub max_wasm_stack: usize,
    /// Bytes of each memory slot reset with `memset` instead of `madvise` on reuse.
    pub linear_memory_keep_resident: usize,
    /// Same for table slots.
    pub table_keep_resident: usize,
    /// Same for async stacks.
    pub async_stack_keep_resident: usize,
    /// Reset only the pages a guest dirtied (Linux `PAGEMAP_SCAN`, where the kernel has it).
    pub pagemap_scan: bool,
    /// Map memory images copy-on-write.
    pub memory_init_cow: bool,
    /// Where compiled artifacts are cached; `None` compiles every load. Must be a
    /// directory only the operator can write (its files are loaded as machine code).
    pub cache_dir: Option<PathBuf>,
    /// Where guests' stdout and stderr lines go.
    pub log: LogSink,
}

impl std::fmt::Debug for HostConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostConfig")
            .field("epoch_tick", &self.epoch_tick)
            .field("instances", &self.instances)
            .field("memories", &self.memories)
            .field("stacks", &self.stacks)
            .field("max_memory_size", &self.max_memory_size)
            .field("cache_dir", &self.cache_dir)
            .finish_non_exhaustive()
    }
}

impl Default for HostConfig {
    fn default() -> HostConfig {
        HostConfig {
            epoch_tick: Duration::from_millis(1),
            instances: 10_000,
            memories: 10_000,
            // A Rust component has two tables (its module's and the canonical-ABI shim's).
            tables: 20_000,
            stacks: 4_096,
            max_memory_size: caps::TRUSTED_MEMORY_CAP,
            memory_guard_size: 64 << 10,
            async_stack_size: 256 << 10,
            max_wasm_stack: 128 << 10,
            linear_memory_keep_resident: 1 << 20,
            table_keep_resident: 64 << 10,
            async_stack_keep_resident: 64 << 10,
            pagemap_scan: true,
            memory_init_cow: true,
            cache_dir: None,
            log: caps::stderr_log(),
        }
    }
}

/// Why a [`Host`] could not be built or an artifact loaded.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The engine refused the configuration (often: the pool does not fit the address
    /// space or `vm.max_map_count`).
    #[error("cannot build the Wasm engine: {0}")]
    Engine(String),
    /// The bytes are not a valid module.
    #[error("cannot compile `{name}`: {why}")]
    Compile {
        /// The artifact's name.
        name: String,
        /// wasmtime's message.
        why: String,
    },
    /// The module imports something the host does not provide, or with the wrong type.
    /// (A component is not a core module: it fails as [`HostError::Compile`].)
    #[error("cannot link `{name}`: {why}")]
    Link {
        /// The artifact's name.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Why [`Host::spawn`] refused.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The entry export does not exist or is not a `() -> ()` function.
    #[error("`{artifact}` has no entry `{entry}` of type () -> ()")]
    NoEntry {
        /// The artifact.
        artifact: String,
        /// The export asked for.
        entry: String,
    },
    /// The host's pool is full: `HostConfig::instances` guests are alive.
    #[error("the host's pool is full: {0} guest processes are alive (raise HostConfig::instances)")]
    Limit(u32),
    /// The actor layer refused (the node is shutting down).
    #[error(transparent)]
    Otp(#[from] rusm_otp::SpawnError),
}

/// The shared engine and everything built once per artifact. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    inner: Arc<HostInner>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("artifacts", &self.inner.artifacts.read().len()).finish_non_exhaustive()
    }
}

pub(crate) struct HostInner {
    pub(crate) engine: Engine,
    linker: wasmtime::Linker<process::ProcState>,
    components: wasmtime::component::Linker<process::ProcState>,
    artifacts: RwLock<HashMap<String, Artifact>>,
    pub(crate) config: HostConfig,
    pub(crate) apps: app::Apps,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for HostInner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// A compiled, linked module ready to spawn: its `InstancePre` and the export indices a
/// spawn uses, so no spawn looks a name up. Cheap to clone.
#[derive(Clone)]
pub struct Artifact {
    inner: Arc<ArtifactInner>,
}

struct ArtifactInner {
    name: String,
    hash: String,
    compiled: Compiled,
    cache: CacheOutcome,
}

/// What an artifact is, with what its spawns need precomputed.
pub(crate) enum Compiled {
    /// A core module (wasip1 and the raw `rusm` ABI).
    Module {
        module: Module,
        pre: InstancePre<process::ProcState>,
        start: Option<ModuleExport>,
        memory: Option<ModuleExport>,
        uses_wasi: bool,
    },
    /// A component (wasip2/wasip3 and the `rusm:runtime` world).
    Component {
        component: Component,
        pre: wasmtime::component::InstancePre<process::ProcState>,
        entry: Option<ComponentEntry>,
    },
}

/// How a component's process body calls it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ComponentEntry {
    /// A `func()` export (the `process` world's `run`): `call_async`.
    Func(ComponentExportIndex),
    /// An `async func()` export (the `process-p3` world's `run`): `call_concurrent`.
    AsyncFunc(ComponentExportIndex),
    /// `wasi:cli/run@0.2.x`'s `run: func() -> result` (a command).
    CliRun(ComponentExportIndex),
    /// `wasi:cli/run@0.3.x`'s `run: async func() -> result`.
    CliRunAsync(ComponentExportIndex),
}

/// Which kind of artifact: see [`Artifact::kind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArtifactKind {
    /// A core module.
    Module,
    /// A component.
    Component,
}

impl std::fmt::Debug for Artifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Artifact")
            .field("name", &self.inner.name)
            .field("hash", &self.inner.hash)
            .finish_non_exhaustive()
    }
}

impl Artifact {
    /// The name it was loaded under (what a guest's `rusm.spawn` names).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The SHA-256 of its bytes, hex.
    pub fn hash(&self) -> &str {
        &self.inner.hash
    }

    /// Whether loading compiled it or found it in the cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.inner.cache
    }

    /// A core module or a component.
    pub fn kind(&self) -> ArtifactKind {
        match self.inner.compiled {
            Compiled::Module { .. } => ArtifactKind::Module,
            Compiled::Component { .. } => ArtifactKind::Component,
        }
    }

    /// The wasmtime module, if this is a core module.
    pub fn module(&self) -> Option<&Module> {
        match &self.inner.compiled {
            Compiled::Module { module, .. } => Some(module),
            Compiled::Component { .. } => None,
        }
    }

    /// The wasmtime component, if this is a component.
    pub fn component(&self) -> Option<&Component> {
        match &self.inner.compiled {
            Compiled::Component { component, .. } => Some(component),
            Compiled::Module { .. } => None,
        }
    }
}

/// How [`Host::spawn`] starts a guest.
#[derive(Clone, Debug, Default)]
pub struct WasmOpts {
    /// What it may touch.
    pub caps: Caps,
    /// The export to call. `None`: `_start` for a module; for a component its `run`
    /// export (the `rusm:runtime` worlds) or `wasi:cli/run`'s `run` (a command). A named
    /// entry is a `() -> ()` function export, sync or (a component's) async.
    pub entry: Option<String>,
    /// Link, monitor, trap_exit, label, mailbox bound (as for native processes).
    pub spawn: SpawnOpts,
}

impl Host {
    /// Builds the engine (and its epoch ticker thread) and the linker.
    ///
    /// # Errors
    ///
    /// [`HostError::Engine`] if wasmtime refuses the configuration.
    pub fn new(config: HostConfig) -> Result<Host, HostError> {
        let engine = Engine::new(&engine_config(&config)).map_err(|e| HostError::Engine(explain_engine_error(&config, &e)))?;
        let mut linker = wasmtime::Linker::new(&engine);
        bridges::wasip1::add_to_linker(&mut linker).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let mut components = wasmtime::component::Linker::new(&engine);
        bridges::wasip2::add_to_linker(&mut components).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        bridges::wasip3::add_to_linker(&mut components).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        start_ticker(engine.clone(), config.epoch_tick, stop.clone());
        Ok(Host {
            inner: Arc::new(HostInner {
                engine,
                linker,
                components,
                artifacts: RwLock::new(HashMap::new()),
                config,
                apps: app::Apps::default(),
                ticker_stop: stop,
            }),
        })
    }

    /// The shared engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// Compiles (or loads from the cache) a core module or a component, Wasm binary or
    /// WAT text, links it and registers it under `name` (replacing an older artifact of
    /// that name for later spawns; running guests keep theirs).
    ///
    /// # Errors
    ///
    /// [`HostError::Compile`], [`HostError::Link`].
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<Artifact, HostError> {
        let hash = cache::content_hash(bytes);
        let component = is_component(bytes);
        let (compiled, cache) = cache::load(&self.inner.engine, self.inner.config.cache_dir.as_deref(), bytes, &hash, component)
            .map_err(|e| HostError::Compile { name: name.to_owned(), why: format!("{e:#}") })?;
        let link_err = |why: String| HostError::Link { name: name.to_owned(), why };
        let compiled = match compiled {
            cache::Compiled::Module(module) => {
                let pre = self.inner.linker.instantiate_pre(&module).map_err(|e| link_err(format!("{e:#}")))?;
                let start = module.get_export_index("_start");
                if start.is_some() && !entry_type_ok(&module, "_start") {
                    return Err(link_err("`_start` is not a () -> () function".into()));
                }
                let memory = module.get_export_index("memory");
                let uses_wasi = module.imports().any(|i| i.module().starts_with("wasi_"));
                Compiled::Module { module, pre, start, memory, uses_wasi }
            }
            cache::Compiled::Component(component) => {
                let pre = self.inner.components.instantiate_pre(&component).map_err(|e| link_err(format!("{e:#}")))?;
                let entry = component_entry(&self.inner.engine, &component, None);
                Compiled::Component { component, pre, entry }
            }
        };
        let art = Artifact { inner: Arc::new(ArtifactInner { name: name.to_owned(), hash, compiled, cache }) };
        self.inner.artifacts.write().insert(name.to_owned(), art.clone());
        Ok(art)
    }

    /// [`Host::load`] of a file; the name is the file stem.
    ///
    /// # Errors
    ///
    /// [`HostError::Io`] and as [`Host::load`].
    pub fn load_file(&self, path: impl AsRef<Path>) -> Result<Artifact, HostError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| HostError::Io { path: path.to_owned(), source })?;
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("module");
        self.load(name, &bytes)
    }

    /// The artifact registered under `name`.
    pub fn artifact(&self, name: &str) -> Option<Artifact> {
        self.inner.artifact(name)
    }

    /// Starts `artifact` as a process on `node`, in the app of `opts.caps` (a new app of
    /// its own if it names none). Instantiation happens in the process: a memory cap below
    /// the module's minimum is the process's crash (`Crashed("instantiate: ...")`), seen by
    /// its links and monitors.
    ///
    /// # Errors
    ///
    /// [`SpawnError::NoEntry`] if the entry is missing; [`SpawnError::Limit`] if the
    /// host's pool is full; [`SpawnError::Otp`] if the node refuses.
    pub fn spawn(&self, node: &Node, artifact: &Artifact, opts: WasmOpts) -> Result<Pid, SpawnError> {
        let (fut, spawn) = self.inner.embedder_guest(artifact, opts)?;
        Ok(node.spawn_future("wasm", spawn, fut)?)
    }

    /// [`Host::spawn`] from inside a process: the link or monitor in `opts.spawn` is to the
    /// caller and exists before the guest runs.
    ///
    /// # Errors
    ///
    /// As [`Host::spawn`].
    pub fn spawn_here(&self, artifact: &Artifact, opts: WasmOpts) -> Result<rusm_otp::Spawned, SpawnError> {
        let (fut, spawn) = self.inner.embedder_guest(artifact, opts)?;
        Ok(rusm_otp::spawn_future_opt("wasm", spawn, fut)?)
    }

    /// Guest processes alive in this host (each holds a pool slot until its store is
    /// gone).
    pub fn live_guests(&self) -> usize {
        self.inner.apps.live()
    }
}

impl HostInner {
    pub(crate) fn artifact(&self, name: &str) -> Option<Artifact> {
        self.artifacts.read().get(name).cloned()
    }

    /// A spawn by the embedder: in the app its caps name, or a new one; only the host's
    /// pool limits it (an app's process quota binds the spawns its guests make).
    fn embedder_guest(self: &Arc<Self>, artifact: &Artifact, opts: WasmOpts) -> Result<(std::pin::Pin<Box<process::Body>>, SpawnOpts), SpawnError> {
        // A new app is known only to this guest and what it spawns (they find it through
        // its slot): it needs no entry in the map, nor the map's lock on this hot path.
        let (realm, app) = match opts.caps.app_id() {
            Some(realm) => (realm, self.apps.get(realm)),
            None => {
                let realm = Realm::fresh();
                (realm, Arc::new(app::App::new(realm)))
            }
        };
        let slot = app::Slot::acquire(self, app, None).map_err(|e| match e {
            app::NoSlot::Pool(n) => SpawnError::Limit(n),
            app::NoSlot::App(_) => unreachable!("no app limit asked"),
        })?;
        self.guest(artifact, opts.entry.as_deref(), opts.caps.in_app(realm), slot, opts.spawn)
    }

    /// A guest's process body, boxed once (it holds the store and wasmtime's futures, and
    /// moving it by value down the spawn path would copy all of that), and the spawn
    /// options that contain it: its app, and unless `spawn` sets them, the mailbox bound
    /// and the timer quota of its caps.
    pub(crate) fn guest(
        self: &Arc<Self>,
        artifact: &Artifact,
        entry: Option<&str>,
        caps: Caps,
        slot: app::Slot,
        spawn: SpawnOpts,
    ) -> Result<(std::pin::Pin<Box<process::Body>>, SpawnOpts), SpawnError> {
        let q = *caps.quota();
        let spawn = SpawnOpts {
            realm: Some(slot.app.realm),
            mailbox_bytes: spawn.mailbox_bytes.or(Some(q.mailbox_bytes)),
            timer_limit: spawn.timer_limit.or(Some(rusm_otp::TimerLimit { timers: q.timers, bytes: q.timer_bytes })),
            ..spawn
        };
        let body: std::pin::Pin<Box<process::Body>> = match &artifact.inner.compiled {
            Compiled::Module { .. } => {
                let entry = resolve_entry(artifact, entry)?;
                Box::pin(process::run(self.clone(), artifact.clone(), caps, slot, entry))
            }
            Compiled::Component { component, entry: default, .. } => {
                let no_entry = |e: &str| SpawnError::NoEntry { artifact: artifact.name().to_owned(), entry: e.to_owned() };
                let entry = match entry {
                    None => default.ok_or_else(|| no_entry("run"))?,
                    Some(name) => component_entry(&self.engine, component, Some(name)).ok_or_else(|| no_entry(name))?,
                };
                Box::pin(process::run_component(self.clone(), artifact.clone(), caps, slot, entry))
            }
        };
        Ok((body, spawn))
    }
}

fn entry_type_ok(module: &Module, name: &str) -> bool {
    match module.get_export(name) {
        Some(wasmtime::ExternType::Func(f)) => f.params().len() == 0 && f.results().len() == 0,
        _ => false,
    }
}

fn resolve_entry(artifact: &Artifact, entry: Option<&str>) -> Result<ModuleExport, SpawnError> {
    let a = &artifact.inner;
    let no_entry = |e: &str| SpawnError::NoEntry { artifact: a.name.clone(), entry: e.to_owned() };
    let Compiled::Module { module, start, .. } = &a.compiled else {
        return Err(no_entry(entry.unwrap_or("_start")));
    };
    match entry {
        None | Some("_start") => start.ok_or_else(|| no_entry("_start")),
        Some(name) => {
            if !entry_type_ok(module, name) {
                return Err(no_entry(name));
            }
            module.get_export_index(name).ok_or_else(|| no_entry(name))
        }
    }
}

/// Whether `bytes` are a component (binary: layer 1 in the header; text: starts with
/// `(component`).
fn is_component(bytes: &[u8]) -> bool {
    if let Some(header) = bytes.strip_prefix(b"\0asm") {
        return header.len() >= 4 && header[2..4] == [1, 0];
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    let mut rest = text.trim_start();
    // Skip comments before the first form: `;;` lines and `(; ... ;)` blocks (which nest).
    loop {
        if let Some(after) = rest.strip_prefix(";;") {
            rest = after.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if rest.starts_with("(;") {
            rest = skip_block_comment(rest).trim_start();
        } else {
            break;
        }
    }
    rest.starts_with("(component")
}

/// `text` after the block comment it starts with (`(;` ... `;)`, nested); empty if it
/// never ends.
fn skip_block_comment(text: &str) -> &str {
    let mut depth = 0usize;
    let mut i = 0;
    let b = text.as_bytes();
    while i + 1 < b.len() {
        match (b[i], b[i + 1]) {
            (b'(', b';') => {
                depth += 1;
                i += 2;
            }
            (b';', b')') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return &text[i..];
                }
            }
            _ => i += 1,
        }
    }
    ""
}

/// The export a component's process calls: `name`'s top-level `() -> ()` function
/// (sync or async); without a name, `run`, then `wasi:cli/run@0.2.x`/`@0.3.x`'s `run`.
fn component_entry(engine: &Engine, component: &Component, name: Option<&str>) -> Option<ComponentEntry> {
    use wasmtime::component::types::ComponentItem;
    let ty = component.component_type();
    let func_entry = |n: &str| {
        let ComponentItem::ComponentFunc(f) = ty.get_export(engine, n)?.ty else { return None };
        if f.params().len() != 0 || f.results().len() != 0 {
            return None;
        }
        let idx = component.get_export_index(None, n)?;
        Some(if f.async_() { ComponentEntry::AsyncFunc(idx) } else { ComponentEntry::Func(idx) })
    };
    if let Some(n) = name {
        return func_entry(n);
    }
    if let Some(e) = func_entry("run") {
        return Some(e);
    }
    // `wasi:cli/run`: the newest version the host supports (0.3 over 0.2; within one,
    // the highest patch), whatever the export order.
    let mut best: Option<((u64, u64), ComponentEntry)> = None;
    for (export, item) in ty.exports(engine) {
        let Some(version) = export.strip_prefix("wasi:cli/run@") else { continue };
        let ComponentItem::ComponentInstance(inst) = item.ty else { continue };
        let Some(ComponentItem::ComponentFunc(f)) = inst.get_export(engine, "run").map(|e| e.ty) else { continue };
        if f.params().len() != 0 || f.results().len() != 1 {
            continue;
        }
        let Some(outer) = component.get_export_index(None, export) else { continue };
        let Some(idx) = component.get_export_index(Some(&outer), "run") else { continue };
        let patch = |v: &str| v.split(['.', '-']).next().and_then(|p| p.parse::<u64>().ok()).unwrap_or(0);
        let found = if let Some(p) = version.strip_prefix("0.2.").filter(|_| !f.async_()) {
            ((2, patch(p)), ComponentEntry::CliRun(idx))
        } else if let Some(p) = version.strip_prefix("0.3.").filter(|_| f.async_()) {
            ((3, patch(p)), ComponentEntry::CliRunAsync(idx))
        } else {
            continue;
        };
        if best.as_ref().is_none_or(|(v, _)| found.0 > *v) {
            best = Some(found);
        }
    }
    best.map(|(_, e)| e)
}

fn engine_config(c: &HostConfig) -> wasmtime::Config {
    use wasmtime::{Enabled, InstanceAllocationStrategy, PoolingAllocationConfig};
    let mut cfg = wasmtime::Config::new();
    cfg.epoch_interruption(true)
        .memory_init_cow(c.memory_init_cow)
        .async_stack_size(c.async_stack_size)
        .max_wasm_stack(c.max_wasm_stack)
        .memory_reservation(c.max_memory_size)
        .memory_guard_size(c.memory_guard_size)
        .memory_reservation_for_growth(0)
        .wasm_component_model_async(true);
    let mut p = PoolingAllocationConfig::new();
    // A Rust component has about 3 core instances (WASMTIME48 Q4): size the core pool
    // for components as well as modules.
    p.total_core_instances(c.instances.saturating_mul(4))
        .total_component_instances(c.instances)
        .total_memories(c.memories)
        .total_tables(c.tables)
        .total_stacks(c.stacks)
        .max_memory_size(c.max_memory_size as usize)
        .linear_memory_keep_resident(c.linear_memory_keep_resident)
        .table_keep_resident(c.table_keep_resident)
        .async_stack_keep_resident(c.async_stack_keep_resident)
        .pagemap_scan(if c.pagemap_scan { Enabled::Auto } else { Enabled::No });
    cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    cfg
}

/// Engine errors from a pool that does not fit name the limit that bit.
fn explain_engine_error(c: &HostConfig, e: &wasmtime::Error) -> String {
    let msg = format!("{e:#}");
    if msg.contains("Cannot allocate memory") || msg.contains("guard page") {
        let maps = read_max_map_count().map_or("unknown".to_owned(), |n| n.to_string());
        format!(
            "{msg} (the pool of {} async stacks needs 2 memory mappings each; vm.max_map_count is {maps}: \
             lower HostConfig::stacks or raise vm.max_map_count)",
            c.stacks
        )
    } else {
        msg
    }
}

/// The kernel's `vm.max_map_count`, where it can be read.
pub fn read_max_map_count() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count").ok()?.trim().parse().ok()
}

/// Memory mappings this OS process has now, where it can be read.
pub fn current_map_count() -> Option<u64> {
    Some(std::fs::read_to_string("/proc/self/maps").ok()?.lines().count() as u64)
}

fn start_ticker(engine: Engine, tick: Duration, stop: Arc<AtomicBool>) {
    // The ticker is the only clock a guest's preemption needs: an atomic add per tick.
    let tick = tick.max(Duration::from_micros(100));
    std::thread::Builder::new()
        .name("rusm-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                engine.increment_epoch();
            }
        })
        .expect("spawn the epoch ticker thread");
}
