//! Capabilities: default-deny, explicit grants, and the compiled-artifact cache.

use std::sync::Arc;
use std::time::Duration;

use rusm_otp::ExitReason;
use rusm_wasm::{CacheOutcome, Caps, CapsError, LogStream, Profile, WasmOpts};

use crate::common::*;

fn report(caps: Caps) -> (String, Vec<String>) {
    let (node, host, logs) = setup();
    let art = host.load("caps", &guest("caps")).unwrap();
    let host = Arc::new(host);
    let h2 = host.clone();
    let got = node
        .run(move || {
            let s = h2.spawn_here(&art, WasmOpts { caps, ..WasmOpts::default() }).unwrap();
            rusm_otp::send(s.pid, rusm_otp::self_pid().to_u64().to_le_bytes().to_vec());
            (s.pid, String::from_utf8(recv_bytes(Duration::from_secs(20))).unwrap())
        })
        .unwrap();
    node.await_exit(got.0, Duration::from_secs(5));
    let lines = logs.lock().unwrap().iter().filter(|(p, s, _)| *p == got.0 && *s == LogStream::Stdout).map(|l| l.2.clone()).collect();
    node.shutdown();
    (got.1, lines)
}

#[test]
fn sandboxed_guest_reads_no_file_env_or_socket_and_logs_to_the_host() {
    let (line, logs) = report(Caps::sandboxed());
    assert_eq!(line, "file=err env=err socket=err write=err");
    assert_eq!(logs, vec!["caps guest reporting".to_owned()], "stdout goes to the host log as lines");
}

#[test]
fn trusted_guest_reads_within_its_preopens_and_sees_its_env() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hello from the host\n").unwrap();
    // Read-only preopen: reading works, writing does not.
    let caps = Caps::trusted().preopen(dir.path(), "/data", false).unwrap().env("RUSM_SECRET", "s3cret").unwrap();
    let (line, _) = report(caps);
    assert!(line.starts_with("file=ok:hello from the host env=ok:s3cret "), "{line}");
    assert!(line.ends_with("write=err"), "{line}");
    let caps = Caps::trusted().preopen(dir.path(), "/data", true).unwrap();
    let (line, _) = report(caps);
    assert!(line.ends_with("write=ok"), "{line}");
    assert_eq!(std::fs::read_to_string(dir.path().join("out.txt")).unwrap(), "written");
}

#[test]
fn grants_above_the_profile_are_refused() {
    // Sandboxed's ceiling: read-only files and declared env values (as Spin), no writable
    // files, no network.
    assert_eq!(
        Caps::sandboxed().preopen("/", "/", true).unwrap_err(),
        CapsError::NotAllowed { what: "writable preopened directories", profile: Profile::Sandboxed }
    );
    assert!(Caps::sandboxed().preopen("/", "/", false).is_ok());
    assert!(Caps::network_client().env("A", "B").is_ok());
    assert!(matches!(Caps::sandboxed().allow_hosts(["127.0.0.1:80"]), Err(CapsError::NotAllowed { .. })));
    assert!(matches!(Caps::network_client().allow_hosts(["127.0.0.1"]), Err(CapsError::BadHost { .. })));
    assert!(matches!(Caps::network_client().allow_hosts(["127.0.0.1:http"]), Err(CapsError::BadHost { .. })));
    assert!(Caps::network_client().allow_hosts(["127.0.0.1:*", "localhost:8080", "[::1]:443"]).is_ok());
    assert!(!Caps::sandboxed().has_network());
    assert!(!Caps::network_client().without_network().has_network());
    assert!(Caps::network_client().has_network());
    assert_eq!(Caps::sandboxed().memory_limit(), 64 << 20);
}

#[test]
fn the_disk_cache_skips_compilation_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let (node, host, _) = setup_with(|c| c.cache_dir = Some(dir.path().to_owned()));
    let a = host.load("noop", &guest("noop")).unwrap();
    assert_eq!(a.cache_outcome(), CacheOutcome::Miss);
    let b = host.load("noop", &guest("noop")).unwrap();
    assert_eq!(b.cache_outcome(), CacheOutcome::Hit);
    assert_eq!(a.hash(), b.hash());
    assert_eq!(run_to_exit(&node, &host, &b, WasmOpts::default()), ExitReason::Normal);
    // A damaged entry is compiled again, not trusted.
    for e in std::fs::read_dir(dir.path()).unwrap().flatten() {
        std::fs::write(e.path(), b"not a module").unwrap();
    }
    let c = host.load("noop", &guest("noop")).unwrap();
    assert_eq!(c.cache_outcome(), CacheOutcome::Miss);
    assert_eq!(run_to_exit(&node, &host, &c, WasmOpts::default()), ExitReason::Normal);
    node.shutdown();
}

fn child_report(parent: Caps) -> String {
    let (node, host, _) = setup();
    host.load("caps", &guest("caps")).unwrap();
    let spawner = load_wat(&host, "spawner");
    let host = Arc::new(host);
    let h2 = host.clone();
    let line = node
        .run(move || {
            let s = h2.spawn_here(&spawner, WasmOpts { caps: parent, ..WasmOpts::default() }).unwrap();
            rusm_otp::send(s.pid, rusm_otp::self_pid().to_u64().to_le_bytes().to_vec());
            String::from_utf8(recv_bytes(Duration::from_secs(20))).unwrap()
        })
        .unwrap();
    node.shutdown();
    line
}

#[test]
fn a_child_spawned_by_a_guest_gets_its_parents_caps_and_no_more() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hi\n").unwrap();
    assert_eq!(child_report(Caps::sandboxed()), "file=err env=err socket=err write=err");
    let trusted = Caps::trusted().preopen(dir.path(), "/data", false).unwrap();
    assert!(child_report(trusted).starts_with("file=ok:hi env=err"));
}
