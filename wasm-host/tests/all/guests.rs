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
