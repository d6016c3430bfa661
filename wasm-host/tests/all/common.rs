use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusm_otp::{ExitReason, Node, Pid, Received, SpawnOpts};
use rusm_wasm::{Artifact, Host, HostConfig, LogStream, WasmOpts};

pub use rusm_wasm::testing::{fixture, guest};

/// Log lines the guests printed: (pid, stream, line).
pub type Logs = Arc<Mutex<Vec<(Pid, LogStream, String)>>>;

/// A node with two workers and a host with a small pool whose log is captured.
pub fn setup() -> (Node, Host, Logs) {
    setup_with(|_| {})
}

pub fn setup_with(tweak: impl FnOnce(&mut HostConfig)) -> (Node, Host, Logs) {
    let rt = rusm_sched::Runtime::builder().workers(2).build().expect("runtime");
    let node = Node::with_runtime(rt);
    let logs: Logs = Arc::default();
    let l2 = logs.clone();
    let mut cfg = HostConfig {
        instances: 200,
        memories: 200,
        tables: 200,
        stacks: 64,
        log: Arc::new(move |pid, stream, line: &[u8]| {
            l2.lock().unwrap().push((pid, stream, String::from_utf8_lossy(line).into_owned()));
        }),
        ..HostConfig::default()
    };
    tweak(&mut cfg);
    let host = Host::new(cfg).expect("host");
    (node, host, logs)
}

pub fn load_wat(host: &Host, name: &str) -> Artifact {
    host.load(name, &fixture(name)).expect("fixture loads")
}

/// Spawns (monitored) and waits for the exit reason.
pub fn run_to_exit(node: &Node, host: &Host, art: &Artifact, opts: WasmOpts) -> ExitReason {
    let (h, a) = (host.clone(), art.clone());
    node.run(move || {
        let opts = WasmOpts { spawn: SpawnOpts { monitor: true, ..opts.spawn.clone() }, ..opts };
        let s = h.spawn_here(&a, opts).expect("spawn");
        wait_down(s.pid)
    })
    .expect("the waiting process")
}

/// Inside a process that monitors `pid`: its exit reason.
pub fn wait_down(pid: Pid) -> ExitReason {
    match rusm_otp::receive_match(|r| matches!(r, Received::Down { pid: p, .. } if *p == pid), Some(Duration::from_secs(20))) {
        Received::Down { reason, .. } => reason,
        _ => panic!("{pid} did not end within 20 s"),
    }
}

/// Kills `pid` and returns its exit reason and how long the kill took to land.
pub fn kill_and_wait(node: &Node, pid: Pid) -> (ExitReason, Duration) {
    node.run(move || {
        rusm_otp::monitor(pid);
        let t = std::time::Instant::now();
        rusm_otp::kill(pid);
        (wait_down(pid), t.elapsed())
    })
    .expect("the killing process")
}

/// Waits (at most 10 s) until `pid` shows as waiting: parked in a blocking call.
pub fn wait_until_waiting(node: &Node, pid: Pid) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while node.info(pid).map(|i| i.status) != Some(rusm_otp::ProcessStatus::Waiting) {
        assert!(std::time::Instant::now() < deadline, "never parked");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Kills `pid` and checks that it ends `killed` within 2 s: a few epoch ticks or one
/// wake-up, with room for a loaded machine.
pub fn assert_killed_promptly(node: &Node, pid: Pid) {
    let (reason, took) = kill_and_wait(node, pid);
    assert_eq!(reason, ExitReason::Killed);
    assert!(took < Duration::from_secs(2), "kill took {took:?}");
}

/// Waits (inside a process) for a byte message, skipping nothing else.
pub fn recv_bytes(timeout: Duration) -> Vec<u8> {
    match rusm_otp::receive_match(|r| matches!(r, Received::Message(m) if m.as_bytes().is_some()), Some(timeout)) {
        Received::Message(m) => m.as_bytes().expect("bytes").to_vec(),
        other => panic!("expected a message, got {other:?}"),
    }
}

pub fn crash_reason(r: &ExitReason) -> &str {
    match r {
        ExitReason::Crashed(why) => why,
        other => panic!("expected a crash, got {other}"),
    }
}
