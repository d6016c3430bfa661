//! `rusm`: run an app of Wasm components from rusm.toml, supervised, as Erlang-style
//! processes. The binary is thin: arguments, the log subscriber, the exit code; each
//! subcommand is a module of `cmd`.

#![forbid(unsafe_code)]

mod app;
mod args;
mod cmd;
mod control;
mod events;
mod listen;
mod manifest;

use std::io::IsTerminal;

use clap::Parser;

use crate::args::{Cli, Command, LogFormat};

/// Exit codes (APP.md: the shell conventions).
pub const EXIT_FAILURE: i32 = 1;
/// clap's own for usage errors.
pub const EXIT_USAGE: i32 = 2;
/// `EX_CONFIG`: a bad manifest.
pub const EXIT_CONFIG: i32 = 78;
/// After a forced stop (a second Ctrl-C).
pub const EXIT_FORCED: i32 = 130;

/// Why a command failed, and with which exit code.
#[derive(Debug)]
pub enum Failure {
    /// A located manifest error (78); boxed, as it carries the file's text.
    Manifest(Box<manifest::ManifestError>),
    /// Anything else, with its code.
    Code(i32, anyhow::Error),
}

impl Failure {
    fn code(code: i32, e: anyhow::Error) -> Failure {
        Failure::Code(code, e)
    }

    fn usage(msg: &str) -> Failure {
        Failure::Code(EXIT_USAGE, anyhow::anyhow!("{msg}"))
    }
}

fn init_log(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.without_time().with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

fn main() {
    let cli = Cli::parse();
    init_log(cli.log_format);
    let result = match cli.command {
        Command::Run(a) => cmd::run::run(a),
        Command::Build(a) => cmd::check::build(a),
        Command::Check(a) => cmd::check::check(a),
        Command::New(a) => cmd::new::new(a),
        Command::Ps(a) => cmd::ctl::ps(a),
        Command::Info(a) => cmd::ctl::info(a),
        Command::Stop(a) => cmd::ctl::stop(a),
    };
    let code = match result {
        Ok(code) => code,
        Err(Failure::Manifest(e)) => {
            eprint!("{}", e.render(std::io::stderr().is_terminal()));
            EXIT_CONFIG
        }
        Err(Failure::Code(code, e)) => {
            eprintln!("error: {e:#}");
            code
        }
    };
    std::process::exit(code);
}
