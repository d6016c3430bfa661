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
