//! Whatever a guest does wrong ends that process only, with `Crashed(why)`; links and
//! monitors see it and the host goes on.

use std::time::Duration;

use rusm_otp::{ExitReason, Received, SpawnOpts};
use rusm_wasm::{Caps, HostError, WasmOpts};

use crate::common::*;

fn crash_of(name: &str, caps: Caps) -> String {
    let (node, host, _) = setup();
    let art = load_wat(&host, name);
    let r = run_to_exit(&node, &host, &art, WasmOpts { caps, ..WasmOpts::default() });
    // The host goes on: the same artifact and a healthy one still run.
    let short = load_wat(&host, "short");
    assert_eq!(run_to_exit(&node, &host, &short, WasmOpts::default()), ExitReason::Normal);
    node.shutdown();
    crash_reason(&r).to_owned()
}

#[test]
fn bad_pointer_crashes_with_the_call_named() {
    let why = crash_of("oob_pointer", Caps::default());
    assert!(why.contains("rusm.send") && why.contains("outside the guest's"), "{why}");
}

#[test]
fn missing_memory_crashes() {
    let why = crash_of("no_memory", Caps::default());
    assert!(why.contains("exports no memory"), "{why}");
}

#[test]
fn non_utf8_name_crashes() {
    let why = crash_of("bad_utf8", Caps::default());
    assert!(why.contains("rusm.register") && why.contains("not UTF-8"), "{why}");
}

#[test]
fn trap_crashes() {
    let why = crash_of("trap", Caps::default());
    assert!(why.contains("unreachable"), "{why}");
}

#[test]
fn stack_overflow_crashes() {
    let why = crash_of("stack_overflow", Caps::default());
    assert!(why.contains("call stack exhausted"), "{why}");
}

#[test]
fn memory_over_the_cap_crashes() {
    let why = crash_of("grow", Caps::sandboxed().memory_cap(4 << 20));
    assert!(why.contains("memory cap exceeded") && why.contains("4194304"), "{why}");
}

#[test]
fn a_bad_receive_buffer_loses_no_message_to_a_live_process() {
    // The guest crashes before taking anything: the crash is checked first.
    let (node, host, _) = setup();
    let art = load_wat(&host, "oob_receive");
    let r = run_to_exit(&node, &host, &art, WasmOpts::default());
    assert!(crash_reason(&r).contains("rusm.receive"), "{r}");
    node.shutdown();
}

#[test]
fn nonzero_exit_status_is_abnormal_zero_is_normal() {
    let (node, host, _) = setup();
    let art = load_wat(&host, "exit_code");
    let r = run_to_exit(&node, &host, &art, WasmOpts::default());
    assert_eq!(r, ExitReason::Other("exit status 3".into()));
    let noop = host.load("noop", &guest("noop")).unwrap();
    assert_eq!(run_to_exit(&node, &host, &noop, WasmOpts::default()), ExitReason::Normal);
    node.shutdown();
}

#[test]
fn links_and_monitors_see_a_guest_crash() {
    let (node, host, _) = setup();
    let art = load_wat(&host, "trap");
    let host = std::sync::Arc::new(host);
    let h2 = host.clone();
    let got = node
        .run(move || {
            rusm_otp::trap_exit(true);
            let opts = WasmOpts { spawn: SpawnOpts { link: true, monitor: true, ..SpawnOpts::default() }, ..WasmOpts::default() };
            let s = h2.spawn_here(&art, opts).unwrap();
            let mut seen = (None, None);
            while seen.0.is_none() || seen.1.is_none() {
                match rusm_otp::receive_timeout(Duration::from_secs(10)) {
                    Received::Exit { from, reason } if from == s.pid => seen.0 = Some(reason),
                    Received::Down { pid, reason, .. } if pid == s.pid => seen.1 = Some(reason),
                    Received::Timeout => panic!("no exit signal"),
                    _ => {}
                }
            }
            seen
        })
        .unwrap();
    assert!(matches!(got.0, Some(ExitReason::Crashed(_))), "{got:?}");
    assert_eq!(got.0, got.1);
    node.shutdown();
}

#[test]
fn link_errors_name_the_import_and_invalid_bytes_are_refused() {
    let (node, host, _) = setup();
    let err = host.load("bad_signature", &fixture("bad_signature")).unwrap_err();
    assert!(matches!(err, HostError::Link { .. }), "{err}");
    assert!(err.to_string().contains("send"), "{err}");
    let err = host.load("garbage", b"\0asm\x01\0\0\0garbage").unwrap_err();
    assert!(matches!(err, HostError::Compile { .. }), "{err}");
    node.shutdown();
}

#[test]
fn a_missing_entry_is_a_spawn_error() {
    let (node, host, _) = setup();
    let art = load_wat(&host, "server");
    let e = host.spawn(&node, &art, WasmOpts::default()).unwrap_err();
    assert!(e.to_string().contains("_start"), "{e}");
    let e = host.spawn(&node, &art, WasmOpts { entry: Some("nope".into()), ..WasmOpts::default() }).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    node.shutdown();
}

#[test]
fn an_exhausted_pool_crashes_the_spawn_not_the_host() {
    // Room for 3 guests, memory for 1: the second instantiation fails in its process.
    // (A full guest count is a spawn error: containment.rs.)
    let (node, host, _) = setup_with(|c| {
        c.instances = 3;
        c.memories = 1;
        c.tables = 2;
    });
    let spin = load_wat(&host, "spin");
    let a = host.spawn(&node, &spin, WasmOpts::default()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let second = run_to_exit(&node, &host, &spin, WasmOpts::default());
    assert!(crash_reason(&second).starts_with("instantiate:"), "{second}");
    assert_eq!(kill_and_wait(&node, a).0, ExitReason::Killed);
    // Slots come back: a new guest runs.
    let short = load_wat(&host, "short");
    assert_eq!(run_to_exit(&node, &host, &short, WasmOpts::default()), ExitReason::Normal);
    node.shutdown();
}
