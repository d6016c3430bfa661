//! Processes with future bodies (the Wasm host's kind) and timers to messages.

use std::future::poll_fn;
use std::time::Duration;

use rusm_otp::{ExitReason, Message, Received, SpawnOpts};

use crate::{node, recv};

#[test]
fn a_future_process_receives_and_exits_with_its_reason() {
    let node = node();
    let fut_pid = node
        .spawn_future("test-future", SpawnOpts::default(), async {
            match poll_fn(rusm_otp::poll_receive).await {
                Received::Message(m) => ExitReason::Other(String::from_utf8(m.as_bytes().unwrap().to_vec()).unwrap()),
                o => ExitReason::Crashed(format!("{o:?}")),
            }
        })
        .unwrap();
    assert_eq!(node.info(fut_pid).unwrap().kind, "test-future");
    let reason = node
        .run(move || {
            let m = rusm_otp::monitor(fut_pid);
            rusm_otp::send(fut_pid, b"bye".to_vec());
            match recv() {
                Received::Down { monitor, reason, .. } if monitor == m => reason,
                o => panic!("{o:?}"),
            }
        })
        .unwrap();
    assert_eq!(reason, ExitReason::Other("bye".into()));
}

#[test]
fn killing_a_future_process_parked_in_receive() {
    let node = node();
    let p = node
        .spawn_future("test-future", SpawnOpts::default(), async {
            loop {
                let _ = poll_fn(rusm_otp::poll_receive).await;
            }
        })
        .unwrap();
    let reason = node
        .run(move || {
            let m = rusm_otp::monitor(p);
            rusm_otp::kill(p);
            match recv() {
                Received::Down { monitor, reason, .. } if monitor == m => reason,
                o => panic!("{o:?}"),
            }
        })
        .unwrap();
    assert_eq!(reason, ExitReason::Killed);
    assert!(!node.is_alive(p));
}

#[test]
fn send_after_delivers_and_cancel_timer_holds() {
    let node = node();
    let got = node
        .run(|| {
            let me = rusm_otp::self_pid();
            let t0 = std::time::Instant::now();
            let _kept = rusm_otp::send_after(Duration::from_millis(20), me, Message::value(1u32));
            let gone = rusm_otp::send_after(Duration::from_millis(10), me, Message::value(2u32));
            assert!(rusm_otp::cancel_timer(gone));
            let first = match recv() {
                Received::Message(m) => m.downcast::<u32>().unwrap(),
                o => panic!("{o:?}"),
            };
            let waited = t0.elapsed();
            let nothing_else = matches!(
                rusm_otp::receive_timeout(Duration::from_millis(30)),
                Received::Timeout
            );
            (first, waited >= Duration::from_millis(20), nothing_else)
        })
        .unwrap();
    assert_eq!(got, (1, true, true));
}
