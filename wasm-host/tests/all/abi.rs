//! The raw `rusm` ABI: every function, from WAT fixtures and the Rust `abi` guest.

use std::sync::Arc;
use std::time::Duration;

use rusm_otp::stream;
use rusm_otp::{ExitReason, Received, SpawnOpts};
use rusm_wasm::WasmOpts;

use crate::common::*;

#[test]
fn all_imports_link_with_their_documented_signatures() {
    let (node, host, _) = setup();
    let art = load_wat(&host, "all_imports");
    assert_eq!(run_to_exit(&node, &host, &art, WasmOpts::default()), ExitReason::Normal);
    // The names the module imports are exactly the ABI's.
    let names: Vec<String> = art.module().expect("a module").imports().map(|i| i.name().to_owned()).collect();
    assert_eq!(names.len(), 29);
    node.shutdown();
}

#[test]
fn echo_guest_answers_a_native_process() {
    let (node, host, _) = setup();
    let art = Arc::new(load_wat(&host, "echo"));
    let host = Arc::new(host);
    let (h2, a2) = (host.clone(), art.clone());
    let reply = node
        .run(move || {
            let s = h2.spawn_here(&a2, WasmOpts::default()).unwrap();
            rusm_otp::send(s.pid, rusm_otp::self_pid().to_u64().to_le_bytes().to_vec());
            let r = recv_bytes(Duration::from_secs(10));
            (s.pid, r)
        })
        .unwrap();
    assert_eq!(&reply.1[..5], b"echo:");
    assert_eq!(u64::from_le_bytes(reply.1[5..13].try_into().unwrap()), reply.0.to_u64(), "own_pid is the guest's pid");
    node.shutdown();
}

#[test]
fn a_named_entry_serves_requests_and_is_killable_while_parked() {
    let (node, host, _) = setup();
    let art = load_wat(&host, "server");
    let host = Arc::new(host);
    let h2 = host.clone();
    node.run(move || {
        let opts = WasmOpts { entry: Some("serve".into()), spawn: SpawnOpts { monitor: true, ..SpawnOpts::default() }, ..WasmOpts::default() };
        let s = h2.spawn_here(&art, opts).unwrap();
        let me = rusm_otp::self_pid().to_u64().to_le_bytes();
        for i in 0..100u32 {
            let mut req = me.to_vec();
            req.extend_from_slice(&i.to_le_bytes());
            rusm_otp::send(s.pid, req);
            assert_eq!(recv_bytes(Duration::from_secs(10)), i.to_le_bytes());
        }
        // Parked in receive, it shows as waiting, and a kill ends it.
        std::thread::sleep(Duration::from_millis(20));
        let info = rusm_otp::info(s.pid).unwrap();
        assert_eq!(info.status, rusm_otp::ProcessStatus::Waiting);
        assert_eq!(info.kind, "wasm");
        rusm_otp::kill(s.pid);
        match rusm_otp::receive_timeout(Duration::from_secs(5)) {
            Received::Down { reason, .. } => assert_eq!(reason, ExitReason::Killed),
            other => panic!("{other:?}"),
        }
    })
    .unwrap();
    node.shutdown();
}

#[test]
fn rust_guest_exercises_the_whole_abi_against_native_processes() {
    let (node, host, _) = setup();
    let art = host.load("abi", &guest("abi")).unwrap();
    load_wat(&host, "echo");
    let host = Arc::new(host);
    let h2 = host.clone();
    let report = node
        .run(move || {
            let victim = rusm_otp::spawn(|| loop {
                rusm_otp::receive();
            })
            .unwrap();
            let linked = rusm_otp::spawn(|| loop {
                rusm_otp::receive();
            })
            .unwrap();
            // Trusted: it kills and links native processes of the test (containment.rs).
            let opts = WasmOpts { spawn: SpawnOpts { monitor: true, ..SpawnOpts::default() }, caps: rusm_wasm::Caps::trusted(), ..WasmOpts::default() };
            let s = h2.spawn_here(&art, opts).unwrap();
            let me = rusm_otp::self_pid();
            let mut setup = me.to_u64().to_le_bytes().to_vec();
            setup.extend_from_slice(&victim.to_u64().to_le_bytes());
            setup.extend_from_slice(&linked.to_u64().to_le_bytes());
            rusm_otp::send(s.pid, setup);
            let mut lines = Vec::new();
            let mut stream_bytes = Vec::new();
            let mut label = None;
            loop {
                match rusm_otp::receive_timeout(Duration::from_secs(20)) {
                    Received::Message(m) => {
                        let text = String::from_utf8(m.as_bytes().unwrap().to_vec()).unwrap();
                        match text.as_str() {
                            "want-selective" => {
                                rusm_otp::send(s.pid, b"b:second".to_vec());
                                rusm_otp::send(s.pid, b"a:first".to_vec());
                            }
                            "want-big" => {
                                let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
                                rusm_otp::send(s.pid, big);
                            }
                            "want-stream" => {
                                use std::io::Write;
                                let mut w = stream::open(s.pid).unwrap();
                                w.write_all(&[7u8; 50_000]).unwrap();
                                w.close();
                            }
                            "done" => break,
                            "ok info" => {
                                // Still running (it waits for our answers later on).
                                label = rusm_otp::info(s.pid).and_then(|i| i.label);
                                lines.push(text);
                            }
                            _ => lines.push(text),
                        }
                    }
                    Received::Stream(mut r) => {
                        use std::io::Read;
                        r.read_to_end(&mut stream_bytes).unwrap();
                    }
                    Received::Down { reason, .. } => panic!("the guest ended early: {reason}; so far {lines:?}"),
                    Received::Timeout => panic!("the guest stopped reporting; so far {lines:?}"),
                    Received::Exit { .. } => {}
                }
            }
            (lines, stream_bytes, label)
        })
        .unwrap();
    let (lines, stream_bytes, label) = report;
    let failed: Vec<_> = lines.iter().filter(|l| !l.starts_with("ok ")).collect();
    assert!(failed.is_empty(), "failed steps: {failed:#?}");
    for step in [
        "own_pid", "register", "whereis", "register_taken", "unregister", "unregister_missing", "whereis_missing",
        "register_noproc", "info_too_small", "info", "info_noproc", "list_processes", "is_alive", "kill", "monitor_down",
        "is_alive_dead", "kill_noproc", "monitor_noproc", "demonitor_spent", "trap_exit", "link_exit", "selective",
        "receive_timeout", "receive_poll", "read_rest", "send_after", "cancel_timer", "cancel_timer_twice", "stream_out",
        "stream_bad_handle", "stream_in", "spawn", "spawn_not_found",
    ] {
        assert!(lines.contains(&format!("ok {step}")), "step {step} did not report: {lines:#?}");
    }
    assert_eq!(stream_bytes.len(), 100_000);
    assert!(stream_bytes.iter().enumerate().all(|(i, &b)| b == (i % 253) as u8));
    assert_eq!(label.as_deref(), Some("abi guest"));
    node.shutdown();
}
