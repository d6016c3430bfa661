//! `rusm run`: build what is stale, load every artifact, start the tree, and run until
//! every process has ended or the user stops it.
//!
//! # Shutdown
//!
//! 1. The first Ctrl-C or SIGTERM asks the master to stop: the root supervisor stops its
//!    children in reverse start order, each within its `shutdown`.
//! 2. A second one kills every process at once; the exit code is then 130.
//! 3. Exit codes: 0 everything ended normally or was stopped; 1 the root supervisor gave up
//!    or a component could not be built or loaded; 78 a manifest error (2, usage, is clap's).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rusm_otp::{ExitReason, Node, Pid};
use rusm_wasm::{Host, HostConfig};

use crate::app::{self, Note, Report};
use crate::control;
use crate::args::RunArgs;
use crate::cmd::build;
use crate::events::{Event, Out};
use crate::manifest::{self, App, ArtifactSource, Component};
use crate::{EXIT_CONFIG, EXIT_FAILURE, EXIT_FORCED, Failure};

/// Runs `rusm run`; returns the exit code.
///
/// # Errors
///
/// A [`Failure`] carrying its exit code.
pub fn run(args: RunArgs) -> Result<i32, Failure> {
    let out = Arc::new(Out::new(args.json, args.quiet, args.follow.clone()));
    let path = args.path.clone().unwrap_or_else(|| PathBuf::from(manifest::FILE_NAME));
    let single = path.extension().is_some_and(|e| e == "wasm") && path.is_file();
    let app = if single {
        single_wasm(&path, &args.wasm_args)
    } else {
        if !args.wasm_args.is_empty() {
            return Err(Failure::usage("arguments after `--` are for a single .wasm file; give a component its `args` in rusm.toml"));
        }
        let mut app = manifest::load(&manifest::locate(&path), &|k| std::env::var(k).ok()).map_err(Failure::Manifest)?;
        build::build_all(&app, &out).map_err(|e| Failure::code(EXIT_FAILURE, e))?;
        if !args.no_wasm_dir {
            app.components.extend(wasm_dir_components(&app));
        }
        app
    };
    if app.components.is_empty() {
        return Err(Failure::code(
            EXIT_CONFIG,
            anyhow::anyhow!("{} declares no components and ./wasm/ holds no .wasm: add a [components.<name>] table, or put a .wasm file in {}", app.path.display(), build::wasm_dir(&app).display()),
        ));
    }
    let code = run_app(&app, out.clone(), !single).map_err(|e| Failure::code(EXIT_FAILURE, e))?;
    if single && code == 0 {
        // As `wasmtime run`: the artifact's own status (`proc_exit(n)`), 1 after a crash.
        return Ok(match out.last_abnormal() {
            None => 0,
            Some(ExitReason::Other(r)) => r.strip_prefix("exit status ").and_then(|n| n.parse().ok()).unwrap_or(EXIT_FAILURE),
            Some(_) => EXIT_FAILURE,
        });
    }
    Ok(code)
}

/// A `.wasm` file run alone: one instance, never restarted, its arguments from `--`.
fn single_wasm(path: &Path, args: &[String]) -> App {
    let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("main").to_owned();
    let mut c = Component::from_wasm_dir(name.clone(), path.to_owned());
    c.args = args.to_vec();
    c.restart = rusm_otp::supervisor::Restart::Temporary;
    App {
        name,
        path: path.to_owned(),
        dir: path.parent().map(Path::to_owned).unwrap_or_else(|| PathBuf::from(".")),
        root: manifest::SupervisorCfg::default(),
        groups: Vec::new(),
        components: vec![c],
    }
}

/// The files of `./wasm/` no component names: one sandboxed instance each.
fn wasm_dir_components(app: &App) -> Vec<Component> {
    let dir = build::wasm_dir(app);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let claimed: Vec<PathBuf> = app
        .components
        .iter()
        .filter_map(|c| std::fs::canonicalize(build::artifact_path(app, &c.name, &c.artifact)).ok())
        .collect();
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == "wasm")).collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let Some(stem) = f.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
        let canon = std::fs::canonicalize(&f).unwrap_or_else(|_| f.clone());
        if claimed.contains(&canon) || app.components.iter().any(|c| c.name == stem) {
            continue;
        }
        if !manifest::is_plain_name(&stem) {
            tracing::warn!("skipping {}: name the file with letters, digits, `-` and `_`", f.display());
            continue;
        }
        out.push(Component::from_wasm_dir(stem, f));
    }
    out
}

/// The compile cache: `$XDG_CACHE_HOME/rusm` or `~/.cache/rusm`, owner-only.
fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let dir = base.join("rusm");
    std::fs::create_dir_all(&dir).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).ok()?;
    }
    Some(dir)
}

/// Loads (compiles, or takes from the cache) every component's artifact, on as many
/// threads as there are cores: a cold start of many components is compile-bound.
fn load_all(host: &Host, app: &App) -> Result<HashMap<String, rusm_wasm::Artifact>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(app.components.len()).max(1);
    let next = AtomicUsize::new(0);
    let loaded: Vec<Result<Vec<(String, rusm_wasm::Artifact)>>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(c) = app.components.get(i) else { return Ok(mine) };
                        let path = build::artifact_path(app, &c.name, &c.artifact);
                        let bytes = std::fs::read(&path).with_context(|| format!("reading {} for component {}", path.display(), c.name))?;
                        let art = host.load(&c.name, &bytes).with_context(|| format!("loading component {}", c.name))?;
                        if matches!(c.artifact, ArtifactSource::WasmDir(_)) {
                            tracing::info!("running {} from {}", c.name, path.display());
                        }
                        mine.push((c.name.clone(), art));
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a loader thread panicked")))).collect()
    });
    let mut artifacts = HashMap::new();
    for l in loaded {
        artifacts.extend(l?);
    }
    Ok(artifacts)
}

fn run_app(app: &App, out: Arc<Out>, with_control: bool) -> Result<i32> {
    // Bound first: a second run of the same app is refused before anything starts.
    let control = if with_control { Some(control::bind(&app.dir)?) } else { None };
    let labels: Arc<RwLock<HashMap<Pid, String>>> = Arc::default();
    let sink_out = out.clone();
    let sink_labels = labels.clone();
    let config = HostConfig {
        cache_dir: cache_dir(),
        log: Arc::new(move |pid, stream, line| {
            let known = sink_labels.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&pid).cloned();
            let label = known
                .or_else(|| rusm_otp::try_self_pid().and_then(|_| rusm_otp::info(pid)).and_then(|i| i.label))
                .unwrap_or_else(|| pid.to_string());
            sink_out.guest_line(&label, pid, stream, line);
        }),
        ..HostConfig::default()
    };
    let host = Host::new(config).context("starting the Wasm host")?;
    let node = Arc::new(Node::new().context("starting the scheduler")?);
    let artifacts = load_all(&host, app)?;

    let signals = Arc::new(AtomicUsize::new(0));
    let s = signals.clone();
    ctrlc::set_handler(move || {
        s.fetch_add(1, Ordering::SeqCst);
    })
    .context("installing the Ctrl-C handler")?;

    let table = control::Table::default();
    let (master, reports) = app::start(&node, &host, app, &artifacts, out.clone(), table.clone())?;
    if let Some(listener) = control {
        let n = node.clone();
        control::serve(listener, node.clone(), table, Arc::new(move || n.send(master, rusm_otp::Message::value(Note::Stop))));
    }
    let mut root: Option<Pid> = None;
    let mut asked_stop = false;
    let code = loop {
        match reports.recv_timeout(Duration::from_millis(25)) {
            Ok(Report::Up(pid)) => root = Some(pid),
            Ok(Report::StartFailed(why)) => bail!("the app could not start: {why}"),
            Ok(Report::Done) => out.event(Event::Stopping { why: "every process has exited" }),
            Ok(Report::GaveUp) => break EXIT_FAILURE,
            Ok(Report::Stopped) => break 0,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break if asked_stop { 0 } else { EXIT_FAILURE },
        }
        let n = signals.load(Ordering::SeqCst);
        if n >= 1 && !asked_stop {
            asked_stop = true;
            out.event(Event::Stopping { why: "interrupted (Ctrl-C again to kill at once)" });
            node.send(master, rusm_otp::Message::value(Note::Stop));
        }
        if n >= 2 {
            out.event(Event::Stopping { why: "killed" });
            if let Some(r) = root {
                node.exit(r, ExitReason::Kill);
            }
            for p in node.processes() {
                node.exit(p, ExitReason::Kill);
            }
            break EXIT_FORCED;
        }
    };
    out.event(Event::Stopped { code });
    if with_control {
        let _ = std::fs::remove_file(control::socket_path(&app.dir));
    }
    // Every process has ended (or been killed): the process exits without waiting for
    // the node's threads; the control server's threads end with it.
    Ok(code)
}
