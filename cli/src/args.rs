//! The command line (clap derive). Every flag here does something; one that would do
//! nothing in a given combination is refused, not ignored.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// RUSM runs WebAssembly components as Erlang-style processes: supervised, linked,
/// preempted, talking by messages.
#[derive(Debug, Parser)]
#[command(name = "rusm", version, about, propagate_version = true)]
pub struct Cli {
    /// The format of rusm's own log on stderr (the level comes from RUST_LOG).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// The log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an app (rusm.toml), a directory holding one, or one .wasm file.
    Run(RunArgs),
    /// Build the app's source components into ./wasm/.
    Build(BuildArgs),
    /// Check a manifest and print what it would run.
    Check(BuildArgs),
    /// Start a new app: rusm.toml, a Rust component, the WIT world.
    New(NewArgs),
    /// List the processes of a running app.
    Ps(CtlArgs),
    /// Show one process (or a component's) of a running app: NAME, NAME/i or a pid.
    Info(InfoArgs),
    /// Stop a running app gracefully.
    Stop(CtlArgs),
}

/// `rusm ps` and `rusm stop`.
#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// The app: its rusm.toml or directory (default: .).
    #[arg(long, short = 'a', default_value = ".")]
    pub app: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `rusm info`.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// A component name, a label (`name/2`) or a pid (`<0.12.0>`).
    pub target: String,
    #[command(flatten)]
    pub ctl: CtlArgs,
}

/// `rusm new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The app's name (and its first component's).
    pub name: String,
    /// Where to create it (default: ./NAME).
    #[arg(long)]
    pub path: Option<PathBuf>,
}

/// `rusm run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// rusm.toml, a directory with one, or a .wasm file (default: ./rusm.toml).
    pub path: Option<PathBuf>,
    /// Arguments for a single .wasm file (after `--`).
    #[arg(last = true)]
    pub wasm_args: Vec<String>,
    /// Do not run the files of ./wasm/ that no component names.
    #[arg(long)]
    pub no_wasm_dir: bool,
    /// Print no guest output.
    #[arg(long, short, conflicts_with = "follow")]
    pub quiet: bool,
    /// Print only the output of these components (repeatable).
    #[arg(long, value_name = "NAME")]
    pub follow: Vec<String>,
    /// Lifecycle events and guest output as NDJSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `rusm build` and `rusm check`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// rusm.toml or a directory with one (default: ./rusm.toml).
    pub path: Option<PathBuf>,
}
