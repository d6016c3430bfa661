//! The app model: `rusm.toml` read, checked and resolved into an [`App`].
//!
//! # Invariants
//!
//! - An [`App`] that [`load`] returns is runnable as far as the manifest can tell: every
//!   artifact path and preopened directory exists, every grant is within its component's
//!   profile, every `${VAR}` is resolved, `start_after` has no cycle, every name it refers
//!   to exists, and no registry name is claimed twice. What is left to fail at run time is
//!   what only running shows (a build error, an artifact that does not compile).
//! - [`App::components`] is in start order: declaration order, moved only as far as
//!   `start_after` requires (a stable topological sort).
//! - Every error is a [`ManifestError`] that names the file, the line and the column, shows
//!   the line with a caret under the culprit, and says the fix where there is one.
//!
//! The three parts: `raw` (the serde types, as written), `check` (raw → [`App`]) and `diag`
//! (the located error and its rendering).

mod check;
mod diag;
mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusm_otp::supervisor::{Restart, Shutdown, Strategy};
use rusm_wasm::Profile;

pub use diag::ManifestError;

/// The file name `rusm run DIR` looks for.
pub const FILE_NAME: &str = "rusm.toml";

/// A checked manifest.
#[derive(Debug, Clone)]
pub struct App {
    /// `[app] name`.
    pub name: String,
    /// The manifest file.
    pub path: PathBuf,
    /// Its directory: relative paths in the manifest start here; `./wasm/` is here.
    pub dir: PathBuf,
    /// The root supervisor (`[supervisor]`, else one_for_one, 1 restart in 5 s as OTP).
    pub root: SupervisorCfg,
    /// `[supervisors.<name>]`: the second-level groups, by name.
    pub groups: Vec<(String, SupervisorCfg)>,
    /// In start order.
    pub components: Vec<Component>,
}

/// A supervisor's strategy and intensity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupervisorCfg {
    /// one_for_one, one_for_all or rest_for_one.
    pub strategy: Strategy,
    /// At most this many restarts …
    pub intensity: u32,
    /// … within this period, or the supervisor gives up.
    pub period: Duration,
}

impl Default for SupervisorCfg {
    fn default() -> Self {
        SupervisorCfg { strategy: Strategy::OneForOne, intensity: 1, period: Duration::from_secs(5) }
    }
}

/// Where a component's Wasm comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactSource {
    /// A cargo crate, built by `rusm build` into `./wasm/<name>.wasm`.
    Source {
        /// The crate's directory.
        dir: PathBuf,
        /// What it is built for.
        target: Target,
    },
    /// A prebuilt module or component.
    Wasm(PathBuf),
    /// A file of `./wasm/` that no component names: one sandboxed instance.
    WasmDir(PathBuf),
}

/// The compilation target of a source component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `wasm32-wasip2`: a component (the default).
    Wasip2,
    /// `wasm32-wasip1`: a core module on the raw `rusm` ABI.
    Wasip1,
}

impl Target {
    /// The rustc target triple.
    pub fn triple(self) -> &'static str {
        match self {
            Target::Wasip2 => "wasm32-wasip2",
            Target::Wasip1 => "wasm32-wasip1",
        }
    }
}

/// A preopened directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileGrant {
    /// On the host (absolute, resolved against the manifest's directory).
    pub host: PathBuf,
    /// As the guest sees it.
    pub guest: String,
    /// `mode = "rw"` (trusted only).
    pub writable: bool,
}

/// One `[components.<name>]`.
#[derive(Debug, Clone)]
pub struct Component {
    /// The table's name; instances are labelled `name/1..N`.
    pub name: String,
    /// Where the Wasm comes from.
    pub artifact: ArtifactSource,
    /// The capability profile.
    pub profile: Profile,
    /// The linear-memory cap in bytes (`None`: the profile's default).
    pub memory: Option<u64>,
    /// Processes started (each a child of its supervisor).
    pub instances: u32,
    /// When a child is restarted.
    pub restart: Restart,
    /// How a child is stopped.
    pub shutdown: Shutdown,
    /// The `[supervisors.<name>]` group it is a child of (`None`: the root).
    pub group: Option<String>,
    /// A registry name (one instance) or pg group (several).
    pub register: Option<String>,
    /// Arguments after argv[0].
    pub args: Vec<String>,
    /// Environment, `${VAR}`s resolved.
    pub env: Vec<(String, String)>,
    /// Preopened directories.
    pub files: Vec<FileGrant>,
    /// The outbound allow-list (`None`: the profile's default, all or nothing).
    pub network: Option<Vec<String>>,
    /// The `other-apps` grant: signal, link and inspect processes outside the app.
    pub other_apps: bool,
    /// The names it starts after.
    pub start_after: Vec<String>,
    /// `listen`: the host accepts here, one process per connection.
    pub listen: Option<SocketAddr>,
}

impl Component {
    /// The label of instance `i` (1-based): `name/i`, or just `name` with one instance.
    pub fn label(&self, i: u32) -> String {
        if self.instances == 1 { self.name.clone() } else { format!("{}/{i}", self.name) }
    }

    /// A `./wasm/` file run as one sandboxed instance named after it.
    pub fn from_wasm_dir(name: String, path: PathBuf) -> Component {
        Component {
            name,
            artifact: ArtifactSource::WasmDir(path),
            profile: Profile::Sandboxed,
            memory: None,
            instances: 1,
            restart: Restart::Transient,
            shutdown: Shutdown::Timeout(Duration::from_secs(5)),
            group: None,
            register: None,
            args: Vec::new(),
            env: Vec::new(),
            files: Vec::new(),
            network: None,
            other_apps: false,
            start_after: Vec::new(),
            listen: None,
        }
    }
}

/// A component's or group's name: letters, digits, `-` and `_` (it labels processes and
/// names `./wasm/NAME.wasm`).
pub fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Where the manifest for `path` is: the file itself, or `rusm.toml` in a directory.
pub fn locate(path: &Path) -> PathBuf {
    if path.is_dir() { path.join(FILE_NAME) } else { path.to_owned() }
}

/// Reads and checks the manifest at `path`. `${VAR}` in `env` values comes from `vars`
/// (the process environment), then from `.env` beside the manifest.
///
/// # Errors
///
/// A [`ManifestError`] for the first problem found.
pub fn load(path: &Path, vars: &dyn Fn(&str) -> Option<String>) -> Result<App, Box<ManifestError>> {
    let src = std::fs::read_to_string(path).map_err(|e| Box::new(ManifestError::unreadable(path, &e)))?;
    parse(path, src, vars)
}

/// [`load`] of text already read (`path` names it in errors and anchors relative paths).
///
/// # Errors
///
/// As [`load`].
pub fn parse(path: &Path, src: String, vars: &dyn Fn(&str) -> Option<String>) -> Result<App, Box<ManifestError>> {
    let dir = path.parent().map(Path::to_owned).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
    let raw: raw::Manifest = match toml::from_str(&src) {
        Ok(m) => m,
        Err(e) => return Err(Box::new(ManifestError::from_toml(path, src, &e))),
    };
    let dotenv = dotenv_vars(&dir);
    let lookup = |k: &str| vars(k).or_else(|| dotenv.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()));
    check::check(raw, path, &dir, &lookup).map_err(|e| Box::new(e.into_error(path, src)))
}

/// The variables of `.env` in `dir` (none if it is missing; a malformed line ends the
/// list there, as dotenvy reads it).
fn dotenv_vars(dir: &Path) -> Vec<(String, String)> {
    let Ok(iter) = dotenvy::from_path_iter(dir.join(".env")) else { return Vec::new() };
    iter.map_while(Result::ok).collect()
}

/// Parses a size: `65536`, `512KiB`, `64MiB`, `1GiB` (binary units; `KB`/`MB`/`GB` are
/// refused as ambiguous, with the binary spelling offered).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("\"{s}\" is not a size: write a number with a unit, e.g. \"64MiB\""))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        u @ ("K" | "KB" | "k" | "kB" | "M" | "MB" | "G" | "GB") => {
            let bin = match u.chars().next() {
                Some('K' | 'k') => "KiB",
                Some('M') => "MiB",
                _ => "GiB",
            };
            return Err(format!("\"{s}\": write binary units, \"{n}{bin}\""));
        }
        other => return Err(format!("\"{s}\": unknown unit \"{other}\" (use B, KiB, MiB or GiB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("\"{s}\" is too large"))
}

#[cfg(test)]
mod tests;
