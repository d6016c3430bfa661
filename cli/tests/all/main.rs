//! rusm-cli end to end: the built `rusm` binary on broken manifests (snapshots in
//! tests/ui/) and on the example apps.

mod examples;
mod manifests;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test.
pub fn rusm() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rusm"));
    c.env_remove("RUST_LOG").env("NO_COLOR", "1");
    c
}

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("cli/ has a parent").to_owned()
}

/// stdout and stderr as text, for assertion messages.
pub fn texts(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}
