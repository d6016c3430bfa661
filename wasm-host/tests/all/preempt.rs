//! Preemption: guests that never call the host share the workers and can be killed.

use std::time::Duration;

use rusm_otp::ExitReason;
use rusm_wasm::WasmOpts;

use crate::common::*;

#[test]
fn a_short_guest_finishes_while_four_spin_on_two_workers() {
    let (node, host, _) = setup();
    let spin = load_wat(&host, "spin");
    let rust_spin = host.load("spin_rs", &guest("spin")).unwrap();
    let spinners: Vec<_> = (0..4)
        .map(|i| host.spawn(&node, if i % 2 == 0 { &spin } else { &rust_spin }, WasmOpts::default()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let short = load_wat(&host, "short");
    assert_eq!(run_to_exit(&node, &host, &short, WasmOpts::default()), ExitReason::Normal);
    for p in &spinners {
        assert!(node.is_alive(*p), "spinners are still running");
    }
    for p in spinners {
        assert_killed_promptly(&node, p);
    }
    node.shutdown();
}

#[test]
fn a_native_process_stays_responsive_next_to_spinning_guests() {
    let (node, host, _) = setup();
    let spin = load_wat(&host, "spin");
    let spinners: Vec<_> = (0..4).map(|_| host.spawn(&node, &spin, WasmOpts::default()).unwrap()).collect();
    // 50 round trips through a native echo process, each needing a worker.
    let rounds = node
        .run(|| {
            let me = rusm_otp::self_pid();
            let echo = rusm_otp::spawn(move || {
                for _ in 0..50 {
                    let m = rusm_otp::receive();
                    if let rusm_otp::Received::Message(m) = m {
                        rusm_otp::send(me, m);
                    }
                }
            })
            .unwrap();
            let mut n = 0;
            for i in 0..50u8 {
                rusm_otp::send(echo, vec![i]);
                assert_eq!(recv_bytes(Duration::from_secs(10)), vec![i]);
                n += 1;
            }
            n
        })
        .unwrap();
    assert_eq!(rounds, 50);
    for p in spinners {
        node.exit(p, ExitReason::Kill);
    }
    node.shutdown();
}
