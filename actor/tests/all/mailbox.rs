use std::time::Duration;

use rusm_otp::{Message, Received};

use crate::{T, node, recv};

fn num(r: Received) -> u32 {
    match r {
        Received::Message(m) => m.downcast::<u32>().unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn messages_arrive_in_order_from_one_sender() {
    let node = node();
    let got = node
        .run(|| {
            let me = rusm_otp::self_pid();
            rusm_otp::spawn(move || {
                for i in 0..1000u32 {
                    rusm_otp::send(me, Message::value(i));
                }
            })
            .unwrap();
            (0..1000).map(|_| num(recv())).collect::<Vec<_>>()
        })
        .unwrap();
    assert_eq!(got, (0..1000).collect::<Vec<_>>());
}

#[test]
fn selective_receive_keeps_the_order_of_skipped_messages() {
    let node = node();
    let got = node
        .run(|| {
            let me = rusm_otp::self_pid();
            for i in [1u32, 2, 3, 4, 5, 6] {
                rusm_otp::send(me, Message::value(i));
            }
            let is = |want: u32| {
                move |r: &Received| matches!(r, Received::Message(m) if m.downcast_ref::<u32>() == Some(&want))
            };
            let mut order = vec![num(rusm_otp::receive_match(is(4), Some(T)))];
            order.push(num(rusm_otp::receive_match(is(2), Some(T))));
            // The rest, in arrival order.
            for _ in 0..4 {
                order.push(num(recv()));
            }
            order
        })
        .unwrap();
    assert_eq!(got, [4, 2, 1, 3, 5, 6]);
}

#[test]
fn selective_receive_waits_for_a_later_match() {
    let node = node();
    let got = node
        .run(|| {
            let me = rusm_otp::self_pid();
            rusm_otp::send(me, Message::value(1u32));
            rusm_otp::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                rusm_otp::send(me, Message::value(9u32));
            })
            .unwrap();
            let nine = num(rusm_otp::receive_match(
                |r| matches!(r, Received::Message(m) if m.downcast_ref::<u32>() == Some(&9)),
                Some(T),
            ));
            (nine, num(recv()))
        })
        .unwrap();
    assert_eq!(got, (9, 1));
}

#[test]
fn receive_timeout_times_out() {
    let node = node();
    let (timed_out, waited) = node
        .run(|| {
            let t0 = std::time::Instant::now();
            let r = rusm_otp::receive_timeout(Duration::from_millis(20));
            (matches!(r, Received::Timeout), t0.elapsed())
        })
        .unwrap();
    assert!(timed_out);
    assert!(waited >= Duration::from_millis(20));
}

#[test]
fn send_to_a_dead_pid_is_a_silent_no_op() {
    let node = node();
    let dead = node.spawn(|| {}).unwrap();
    let _ = node.await_exit(dead, Duration::from_millis(100));
    let ok = node
        .run(move || {
            rusm_otp::send(dead, Message::from(b"into the void".as_slice()));
            true
        })
        .unwrap();
    assert!(ok);
}

#[test]
fn bytes_and_values_travel_between_processes() {
    let node = node();
    let got = node
        .run(|| {
            let me = rusm_otp::self_pid();
            rusm_otp::spawn(move || {
                rusm_otp::send(me, b"raw".to_vec());
                rusm_otp::send(me, Message::value(String::from("typed")));
            })
            .unwrap();
            let a = match recv() {
                Received::Message(m) => m.as_bytes().unwrap().to_vec(),
                o => panic!("{o:?}"),
            };
            let b = match recv() {
                Received::Message(m) => m.downcast::<String>().unwrap(),
                o => panic!("{o:?}"),
            };
            (a, b)
        })
        .unwrap();
    assert_eq!(got, (b"raw".to_vec(), "typed".to_owned()));
}

#[test]
fn node_shutdown_stops_parked_processes() {
    let node = node();
    for _ in 0..100 {
        node.spawn(|| loop {
            let _ = rusm_otp::receive();
        })
        .unwrap();
    }
    let h = node.handle().clone();
    node.shutdown();
    assert_eq!(h.counters().live_tasks, 0);
}

/// A receiver with a bounded mailbox that takes nothing until its gate process dies (a
/// `Down` is a signal: never refused, never counted), then reports every value it got.
fn bounded(
    node: &rusm_otp::Node,
    cap: usize,
    overflow: rusm_otp::Overflow,
    sends: u32,
) -> (rusm_otp::ProcessInfo, Result<Vec<u32>, rusm_otp::ExitReason>) {
    use rusm_otp::SpawnOpts;
    node.run(move || {
        let me = rusm_otp::self_pid();
        let gate = rusm_otp::spawn(|| loop {
            let _ = rusm_otp::receive();
        })
        .unwrap();
        let opts = SpawnOpts {
            mailbox_capacity: Some(cap),
            overflow,
            track_mailbox: true,
            monitor: true,
            ..SpawnOpts::default()
        };
        let rx = rusm_otp::spawn_opt(opts, move || {
            let m = rusm_otp::monitor(gate);
            rusm_otp::send(me, Message::value(()));
            rusm_otp::receive_match(|r| matches!(r, Received::Down { monitor, .. } if *monitor == m), None);
            let mut got = Vec::new();
            while let Received::Message(msg) = rusm_otp::receive_timeout(Duration::from_millis(20)) {
                got.push(msg.downcast::<u32>().unwrap());
            }
            rusm_otp::send(me, Message::value(got));
        })
        .unwrap();
        recv(); // the receiver monitors the gate now
        for i in 1..=sends {
            rusm_otp::send(rx.pid, Message::value(i));
        }
        let info = rusm_otp::info(rx.pid);
        rusm_otp::kill(gate);
        let got = match recv() {
            Received::Message(m) => Ok(m.downcast::<Vec<u32>>().unwrap()),
            Received::Down { reason, .. } => Err(reason),
            other => panic!("{other:?}"),
        };
        (info.expect("receiver alive while filled"), got)
    })
    .unwrap()
}

#[test]
fn bounded_mailbox_drop_newest_keeps_the_first_messages() {
    let node = node();
    let (info, got) = bounded(&node, 3, rusm_otp::Overflow::DropNewest, 5);
    assert_eq!(got.unwrap(), [1, 2, 3]);
    assert_eq!(info.mailbox_len, 3);
    assert_eq!(info.mailbox_dropped, 2);
    assert_eq!(info.mailbox_capacity, Some(3));
    assert_eq!(info.mailbox_peak, Some(3));
}

#[test]
fn bounded_mailbox_drop_oldest_keeps_the_last_messages() {
    let node = node();
    let (info, got) = bounded(&node, 3, rusm_otp::Overflow::DropOldest, 5);
    assert_eq!(got.unwrap(), [3, 4, 5]);
    assert_eq!(info.mailbox_dropped, 2);
}

#[test]
fn bounded_mailbox_exit_policy_ends_the_receiver_and_monitors_see_why() {
    let node = node();
    let (_, got) = bounded(&node, 3, rusm_otp::Overflow::Exit, 4);
    assert_eq!(got.unwrap_err(), rusm_otp::ExitReason::Other("mailbox_overflow".into()));
}

#[test]
fn mailbox_depth_is_tracked_only_when_asked_and_unbounded_by_default() {
    let node = node();
    let info = node
        .run(|| {
            let p = rusm_otp::spawn(|| rusm_sched::sleep(Duration::from_secs(3600))).unwrap();
            for i in 0..10_000u32 {
                rusm_otp::send(p, Message::value(i));
            }
            rusm_otp::info(p).unwrap()
        })
        .unwrap();
    assert_eq!(info.mailbox_len, 10_000);
    assert_eq!(info.mailbox_peak, None);
    assert_eq!(info.mailbox_capacity, None);
    assert_eq!(info.mailbox_dropped, 0);
}

#[test]
fn try_send_reports_full_and_dead_and_returns_the_message() {
    let node = node();
    node.run(|| {
        let opts = rusm_otp::SpawnOpts {
            mailbox_capacity: Some(1),
            ..rusm_otp::SpawnOpts::default()
        };
        let p = rusm_otp::spawn_opt(opts, || rusm_sched::sleep(Duration::from_secs(3600))).unwrap().pid;
        rusm_otp::try_send(p, Message::value(1u32)).unwrap();
        match rusm_otp::try_send(p, Message::value(2u32)) {
            Err(rusm_otp::TrySendError::Full(m)) => assert_eq!(m.downcast::<u32>().unwrap(), 2),
            other => panic!("{other:?}"),
        }
        let (dead, _) = rusm_otp::spawn_monitor(|| {}).unwrap();
        recv();
        assert!(matches!(
            rusm_otp::try_send(dead, Message::value(3u32)),
            Err(rusm_otp::TrySendError::NoProc(_))
        ));
        // try_send refuses instead of applying the overflow policy: nothing was dropped.
        assert_eq!(rusm_otp::info(p).unwrap().mailbox_dropped, 0);
    })
    .unwrap();
}

#[test]
fn a_full_mailbox_still_takes_exit_signals() {
    let node = node();
    let got = node
        .run(|| {
            let me = rusm_otp::self_pid();
            let opts = rusm_otp::SpawnOpts {
                mailbox_capacity: Some(1),
                trap_exit: true,
                ..rusm_otp::SpawnOpts::default()
            };
            let p = rusm_otp::spawn_opt(opts, move || {
                // Wait for the signal with the mailbox full of a message.
                let r = rusm_otp::receive_match(|r| matches!(r, Received::Exit { .. }), None);
                rusm_otp::send(me, Message::value(format!("{r:?}")));
            })
            .unwrap()
            .pid;
            rusm_otp::send(p, Message::value(1u32));
            rusm_otp::send(p, Message::value(2u32));
            rusm_otp::exit(p, rusm_otp::ExitReason::Other("bye".into()));
            match recv() {
                Received::Message(m) => m.downcast::<String>().unwrap(),
                other => panic!("{other:?}"),
            }
        })
        .unwrap();
    assert!(got.contains("bye"), "{got}");
}
