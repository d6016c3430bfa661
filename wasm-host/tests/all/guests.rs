//! Real Rust guests: module-to-module request/reply and a stream under back-pressure.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use rusm_otp::{ExitReason, Received, stream};
use rusm_wasm::{Caps, WasmOpts};

use crate::common::*;

#[test]
fn module_to_module_request_reply() {
    let (node, host, _) = setup();
    let art = host.load("pingpong", &guest("pingpong")).unwrap();
    let host = Arc::new(host);
    let h2 = host.clone();
    let got = node
        .run(move || {
            let server = h2.spawn_here(&art, WasmOpts { caps: Caps::sandboxed().args(["server"]), ..WasmOpts::default() }).unwrap();
            let client = h2.spawn_here(&art, WasmOpts { caps: Caps::sandboxed().args(["client"]), ..WasmOpts::default() }).unwrap();
            let mut setup = rusm_otp::self_pid().to_u64().to_le_bytes().to_vec();
            setup.extend_from_slice(&1000u32.to_le_bytes());
            rusm_otp::send(client.pid, setup);
            let r = recv_bytes(Duration::from_secs(20));
            rusm_otp::kill(server.pid);
            r
        })
        .unwrap();
    assert_eq!(String::from_utf8(got).unwrap(), "client ok 1000");
    node.shutdown();
}

#[test]
fn stream_between_a_guest_and_a_native_process_under_back_pressure() {
    let (node, host, _) = setup();
    let art = host.load("streamer", &guest("streamer")).unwrap();
    let host = Arc::new(host);
    let h2 = host.clone();
    const BYTES: usize = 1 << 20;
    node.run(move || {
        let s = h2.spawn_here(&art, WasmOpts::default()).unwrap();
        let mut setup = rusm_otp::self_pid().to_u64().to_le_bytes().to_vec();
        setup.extend_from_slice(&(BYTES as u32).to_le_bytes());
        rusm_otp::send(s.pid, setup);
        let Received::Stream(mut r) = rusm_otp::receive_timeout(Duration::from_secs(20)) else { panic!("no stream") };
        // A slow reader: the guest's writes park on the full pipe (64 KiB) in between.
        let mut got = Vec::with_capacity(BYTES);
        let mut buf = [0u8; 4096];
        let mut reads = 0;
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            reads += 1;
            if reads % 32 == 0 {
                rusm_sched::sleep(Duration::from_millis(1));
                // The writer is never more than a pipeful ahead of what was read.
                let info = rusm_otp::info(s.pid).unwrap();
                assert_ne!(info.status, rusm_otp::ProcessStatus::Exiting);
            }
        }
        assert_eq!(got.len(), BYTES);
        assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8), "bytes arrive in order");
        // The other direction: native writer, guest reader.
        let mut w = stream::open(s.pid).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 7) as u8).collect();
        w.write_all(&data).unwrap();
        w.close();
        let sum: u64 = data.iter().map(|&b| u64::from(b)).sum();
        assert_eq!(String::from_utf8(recv_bytes(Duration::from_secs(20))).unwrap(), format!("got 300000 {sum}"));
    })
    .unwrap();
    node.shutdown();
}

#[test]
fn a_guest_killed_while_blocked_on_a_full_stream_ends_and_the_reader_sees_it() {
    let (node, host, _) = setup();
    let art = host.load("streamer", &guest("streamer")).unwrap();
    let host = Arc::new(host);
    let h2 = host.clone();
    node.run(move || {
        let s = h2.spawn_here(&art, WasmOpts::default()).unwrap();
        let mut setup = rusm_otp::self_pid().to_u64().to_le_bytes().to_vec();
        setup.extend_from_slice(&(8u32 << 20).to_le_bytes());
        rusm_otp::send(s.pid, setup);
        let Received::Stream(mut r) = rusm_otp::receive_timeout(Duration::from_secs(20)) else { panic!("no stream") };
        // Nobody reads: the guest fills the pipe and parks in stream_write.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(rusm_otp::info(s.pid).unwrap().status, rusm_otp::ProcessStatus::Waiting);
        rusm_otp::kill(s.pid);
        let mut sink = Vec::new();
        let e = r.read_to_end(&mut sink).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionAborted);
        assert!(sink.len() <= 64 << 10, "at most a pipeful was buffered: {}", sink.len());
        assert!(!rusm_otp::is_alive(s.pid));
    })
    .unwrap();
    let _ = ExitReason::Normal;
    node.shutdown();
}

/// Starts the `sleeper` guest, monitored, sleeping `ms` with `std::thread::sleep`.
fn spawn_sleeper(host: &rusm_wasm::Host, art: &rusm_wasm::Artifact, ms: u64) -> rusm_otp::Pid {
    let s = host
        .spawn_here(art, WasmOpts { spawn: rusm_otp::SpawnOpts { monitor: true, ..Default::default() }, ..WasmOpts::default() })
        .unwrap();
    let mut setup = rusm_otp::self_pid().to_u64().to_le_bytes().to_vec();
    setup.extend_from_slice(&ms.to_le_bytes());
    rusm_otp::send(s.pid, setup);
    s.pid
}

#[test]
fn std_sleep_in_a_wasip1_guest_parks_on_rusm_timers_and_is_killable() {
    // Two workers, four guests sleeping 1 s each. If a sleep held its worker thread, the
    // native process below could not answer until a sleep ended, and the four would take
    // 2 s (two rounds of two).
    let (node, host, _) = setup();
    let art = host.load("sleeper", &guest("sleeper")).unwrap();
    let host = Arc::new(host);
    let h2 = host.clone();
    let (native_reply, slept, reasons, took) = node
        .run(move || {
            let t = std::time::Instant::now();
            let pids: Vec<_> = (0..4).map(|_| spawn_sleeper(&h2, &art, 1000)).collect();
            rusm_sched::sleep(Duration::from_millis(50));
            let me = rusm_otp::self_pid();
            let t0 = std::time::Instant::now();
            rusm_otp::spawn(move || rusm_otp::send(me, b"native".to_vec())).unwrap();
            assert_eq!(recv_bytes(Duration::from_secs(10)), b"native");
            let native_reply = t0.elapsed();
            let slept: Vec<String> = (0..4).map(|_| String::from_utf8(recv_bytes(Duration::from_secs(10))).unwrap()).collect();
            let took = t.elapsed();
            (native_reply, slept, pids.into_iter().map(wait_down).collect::<Vec<_>>(), took)
        })
        .unwrap();
    assert!(native_reply < Duration::from_millis(500), "a native process waited {native_reply:?} behind sleeping guests");
    for s in &slept {
        let ms: u64 = s.strip_prefix("slept ").unwrap_or_else(|| panic!("{s}")).parse().unwrap();
        assert!(ms >= 1000, "{s}");
    }
    assert!(reasons.iter().all(ExitReason::is_normal), "{reasons:?}");
    assert!(took < Duration::from_millis(1900), "four 1 s sleeps took {took:?} on two workers");

    // A long sleep is a park: a kill lands at once.
    let art = host.artifact("sleeper").unwrap();
    let h2 = host.clone();
    let p = node.run(move || spawn_sleeper(&h2, &art, 600_000)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(node.is_alive(p));
    assert_killed_promptly(&node, p);
    node.shutdown();
}

#[test]
fn poll_oneoff_serves_clocks_answers_descriptors_and_traps_on_a_bad_pointer() {
    let (node, host, _) = setup();
    let art = host.load("poller", &guest("poller")).unwrap();
    let host = Arc::new(host);
    let (line, reason) = node
        .run(move || {
            let s = host
                .spawn_here(&art, WasmOpts { spawn: rusm_otp::SpawnOpts { monitor: true, ..Default::default() }, ..WasmOpts::default() })
                .unwrap();
            rusm_otp::send(s.pid, rusm_otp::self_pid().to_u64().to_le_bytes().to_vec());
            let line = String::from_utf8(recv_bytes(Duration::from_secs(20))).unwrap();
            (line, wait_down(s.pid))
        })
        .unwrap();
    let cases: std::collections::HashMap<&str, &str> = line.split(' ').filter_map(|c| c.split_once('=')).collect();
    // No subscriptions: inval (28), as wasmtime-wasi answers.
    assert_eq!(cases["none"], "28:0", "{line}");
    // An absolute monotonic deadline already past: its event at once.
    assert_eq!(cases["past"], "0:1:7/0/0", "{line}");
    // Two relative clocks: only the earlier one (20 ms) is ready.
    assert_eq!(cases["first"], "0:1:2/0/0", "{line}");
    assert_eq!(cases["waited20"], "true", "{line}");
    // An absolute realtime deadline 10 ms ahead.
    assert_eq!(cases["realtime"], "0:1:3/0/0", "{line}");
    // The standard streams are always ready (stdin at its end, stdout writable):
    // answered at once with success, with their type; the clock (5 s) is not ready.
    assert_eq!(cases["fd"], "0:2:5/0/1:6/0/2", "{line}");
    // A CPU-time clock and an unknown tag: inval.
    assert_eq!(cases["cputime"], "28:0", "{line}");
    assert_eq!(cases["badtag"], "28:0", "{line}");
    // A pointer outside its memory crashes the guest, naming the call.
    let why = crash_reason(&reason);
    assert!(why.contains("poll_oneoff") && why.contains("outside the guest's"), "{reason:?}");
    node.shutdown();
}
