//! rusm-sched integration tests: one binary, one module per area (smoke first, then edge
//! cases, then stress).

mod fibers;
mod futures;
mod invariants;
mod net;
mod park;
mod sched;
mod shutdown;
mod stacks;
mod timers;

use std::time::{Duration, Instant};

use rusm_sched::{Builder, Runtime};

/// A runtime with `n` workers.
pub fn rt(n: usize) -> Runtime {
    Builder::default().workers(n).build().expect("runtime")
}

/// Polls `cond` every millisecond until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}

/// Runs the named test of this binary in a child process with `RUSM_CHILD=1` and returns
/// its exit status and stderr, for tests that must crash or exhaust a process-wide limit.
pub fn run_child(test: &str) -> (std::process::ExitStatus, String) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("RUSM_CHILD", "1")
        .output()
        .expect("spawn child test process");
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Is this the child process of `run_child`?
pub fn is_child() -> bool {
    std::env::var_os("RUSM_CHILD").is_some()
}
