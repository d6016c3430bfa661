use std::time::Duration;

use rusm_otp::{ExitReason, Message, Pid, Received, pg};

use crate::{node, recv};

fn idle() {
    loop {
        let _ = rusm_otp::receive();
    }
}

#[test]
fn join_leave_and_members_count_every_join_as_erlang_pg() {
    let node = node();
    node.run(|| {
        let a = rusm_otp::spawn(idle).unwrap();
        let b = rusm_otp::spawn(idle).unwrap();
        assert!(pg::members("workers").is_empty());
        assert!(pg::join("workers", a));
        assert!(pg::join("workers", b));
        assert!(pg::join("workers", a));
        assert!(pg::join("other", b));
        assert_eq!(pg::members("workers"), [a, b, a]);
        assert_eq!(pg::which_groups(), ["other", "workers"]);
        assert_eq!(rusm_otp::info(a).unwrap().groups, ["workers", "workers"]);
        assert!(pg::leave("workers", a));
        assert_eq!(pg::members("workers"), [b, a]);
        assert!(pg::leave("workers", a));
        assert!(!pg::leave("workers", a), "a left as often as it joined");
        assert!(pg::leave("other", b));
        assert_eq!(pg::which_groups(), ["workers"]);
        let (dead, _) = rusm_otp::spawn_monitor(|| {}).unwrap();
        recv();
        assert!(!pg::join("workers", dead), "a dead pid cannot join");
    })
    .unwrap();
}

#[test]
fn a_process_leaves_its_groups_before_its_down_arrives() {
    let node = node();
    let seen = node
        .run(|| {
            let (p, _) = rusm_otp::spawn_monitor(|| {
                pg::join("g", rusm_otp::self_pid());
                pg::join("g", rusm_otp::self_pid());
                rusm_otp::exit_with(ExitReason::Other("done".into()));
            })
            .unwrap();
            match recv() {
                Received::Down { pid, .. } => assert_eq!(pid, p),
                other => panic!("{other:?}"),
            }
            pg::members("g")
        })
        .unwrap();
    assert!(seen.is_empty(), "{seen:?}");
}

#[test]
fn kill_all_ends_every_member_and_exit_all_follows_the_signal_rules() {
    let node = node();
    node.run(|| {
        let mut watched: Vec<(Pid, rusm_otp::MonitorRef)> = Vec::new();
        for _ in 0..50 {
            let (p, m) = rusm_otp::spawn_monitor(idle).unwrap();
            pg::join("pool", p);
            watched.push((p, m));
        }
        // A trapping member takes a `shutdown` as a message and stays.
        let me = rusm_otp::self_pid();
        let trapper = rusm_otp::spawn(move || {
            rusm_otp::trap_exit(true);
            pg::join("pool", rusm_otp::self_pid());
            rusm_otp::send(me, Message::value(()));
            if let Received::Exit { reason, .. } = rusm_otp::receive() {
                rusm_otp::send(me, Message::value(reason));
            }
            idle();
        })
        .unwrap();
        recv();
        // `normal` from another process is ignored by non-trapping members.
        assert_eq!(pg::exit_all("pool", ExitReason::Normal), 51);
        rusm_sched::sleep(Duration::from_millis(10));
        assert_eq!(pg::members("pool").len(), 51);
        match recv() {
            Received::Message(m) => assert_eq!(m.downcast::<ExitReason>().unwrap(), ExitReason::Normal),
            other => panic!("{other:?}"),
        }
        assert_eq!(pg::kill_all("pool"), 51);
        let mut downs = 0;
        while downs < 50 {
            match recv() {
                Received::Down { reason, .. } => {
                    assert_eq!(reason, ExitReason::Killed);
                    downs += 1;
                }
                other => panic!("{other:?}"),
            }
        }
        let end = std::time::Instant::now() + crate::T;
        while rusm_otp::is_alive(trapper) || !pg::members("pool").is_empty() {
            assert!(std::time::Instant::now() < end, "kill_all left members");
            rusm_sched::sleep(Duration::from_millis(1));
        }
    })
    .unwrap();
}
