//! Links, exit signals and monitors, as Erlang's reference manual ("Processes": receiving
//! exit signals) specifies them.

use std::time::Duration;

use rusm_otp::{ExitReason, Message, Pid, Received, SpawnOpts};

use crate::{T, node, recv};

/// How the exit signal reaches the victim.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// A linked process exits with the reason.
    Link,
    /// `exit(victim, reason)` from another process.
    Exit2,
}

/// What the victim does.
#[derive(Debug, PartialEq)]
enum Outcome {
    Survives,
    Dies(ExitReason),
    GetsMessage(ExitReason),
}

/// Erlang's table. A linked process that exits with `kill` as its own reason sends
/// `killed`; `exit(Pid, kill)` is the untrappable one.
fn expected(reason: &ExitReason, trap: bool, via: Via) -> Outcome {
    let arriving = match (via, reason) {
        (Via::Link, ExitReason::Kill) => ExitReason::Killed,
        _ => reason.clone(),
    };
    match (&arriving, trap) {
        (ExitReason::Kill, _) => Outcome::Dies(ExitReason::Killed),
        (r, true) => Outcome::GetsMessage(r.clone()),
        (ExitReason::Normal, false) => Outcome::Survives,
        (r, false) => Outcome::Dies(r.clone()),
    }
}

#[test]
fn exit_signal_table() {
    let node = node();
    let reasons = [
        ExitReason::Normal,
        ExitReason::Shutdown,
        ExitReason::Other("boom".into()),
        ExitReason::Kill,
        ExitReason::Killed,
        ExitReason::Crashed("bad".into()),
    ];
    let mut cases = 0;
    for reason in &reasons {
        for trap in [false, true] {
            for via in [Via::Link, Via::Exit2] {
                let want = expected(reason, trap, via);
                let got = run_case(&node, reason.clone(), trap, via);
                assert_eq!(got, want, "reason {reason:?}, trap_exit {trap}, via {via:?}");
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 24);
}

fn run_case(node: &rusm_otp::Node, reason: ExitReason, trap: bool, via: Via) -> Outcome {
    let (tx, rx) = std::sync::mpsc::channel::<Outcome>();
    // The victim reports what it got; the observer (this test) learns deaths by monitor.
    let victim_tx = tx.clone();
    let victim = node
        .spawn_opt(SpawnOpts { trap_exit: trap, ..SpawnOpts::default() }, move || {
            match rusm_otp::receive_timeout(Duration::from_millis(300)) {
                Received::Exit { reason, .. } => {
                    let _ = victim_tx.send(Outcome::GetsMessage(reason));
                }
                Received::Timeout => {
                    let _ = victim_tx.send(Outcome::Survives);
                }
                other => panic!("unexpected {other:?}"),
            }
        })
        .unwrap();
    let r2 = reason.clone();
    node.spawn(move || {
        let m = rusm_otp::monitor(victim);
        match via {
            Via::Link => {
                // A helper links to the victim and exits with the reason.
                let r3 = r2.clone();
                rusm_otp::spawn(move || {
                    rusm_otp::link(victim);
                    rusm_otp::exit_with(r3)
                })
                .unwrap();
            }
            Via::Exit2 => rusm_otp::exit(victim, r2),
        }
        if let Received::Down { monitor, reason, .. } = crate::recv()
            && monitor == m && reason != ExitReason::Normal {
                let _ = tx.send(Outcome::Dies(reason));
            }
    })
    .unwrap();
    rx.recv_timeout(T).expect("no outcome")
}

#[test]
fn panic_becomes_crashed_and_kills_linked_processes() {
    let node = node();
    let got = node
        .run(|| {
            rusm_otp::trap_exit(true);
            let child = rusm_otp::spawn_link(|| panic!("child boom")).unwrap();
            match recv() {
                Received::Exit { from, reason } => (from == child, reason),
                other => panic!("{other:?}"),
            }
        })
        .unwrap();
    assert!(got.0);
    assert_eq!(got.1, ExitReason::Crashed("child boom".into()));
}

#[test]
fn normal_exit_does_not_kill_a_linked_process() {
    let node = node();
    let alive = node
        .run(|| {
            let _child = rusm_otp::spawn_link(|| {}).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            rusm_otp::check(); // a scheduling point where a kill would land
            true
        })
        .unwrap();
    assert!(alive);
}

#[test]
fn kill_is_untrappable_and_seen_as_killed() {
    let node = node();
    let reason = node
        .run(|| {
            let (victim, m) = rusm_otp::spawn_monitor(|| {
                rusm_otp::trap_exit(true);
                loop {
                    let _ = rusm_otp::receive();
                }
            })
            .unwrap();
            std::thread::sleep(Duration::from_millis(10));
            rusm_otp::kill(victim);
            match recv() {
                Received::Down { monitor, reason, .. } if monitor == m => reason,
                other => panic!("{other:?}"),
            }
        })
        .unwrap();
    assert_eq!(reason, ExitReason::Killed);
}

#[test]
fn killed_propagates_over_links_as_killed_and_is_trappable() {
    let node = node();
    let got = node
        .run(|| {
            rusm_otp::trap_exit(true);
            let child = rusm_otp::spawn_link(|| loop {
                let _ = rusm_otp::receive();
            })
            .unwrap();
            rusm_otp::kill(child);
            recv()
        })
        .unwrap();
    match got {
        Received::Exit { reason, .. } => assert_eq!(reason, ExitReason::Killed),
        other => panic!("{other:?}"),
    }
}

#[test]
fn exit_self_normal_ends_the_caller() {
    let node = node();
    let reason = node
        .run(|| {
            let (p, m) = rusm_otp::spawn_monitor(|| {
                let _ = rusm_otp::receive();
                rusm_otp::exit(rusm_otp::self_pid(), ExitReason::Normal);
                unreachable!("exit(self(), normal) returned");
            })
            .unwrap();
            rusm_otp::send(p, Message::value(()));
            match recv() {
                Received::Down { monitor, reason, .. } if monitor == m => reason,
                o => panic!("{o:?}"),
            }
        })
        .unwrap();
    assert_eq!(reason, ExitReason::Normal);
}

#[test]
fn link_to_a_dead_pid_delivers_noproc() {
    let node = node();
    let dead = node.spawn(|| {}).unwrap();
    assert!(wait_dead(&node, dead));
    let got = node
        .run(move || {
            rusm_otp::trap_exit(true);
            rusm_otp::link(dead);
            recv()
        })
        .unwrap();
    assert!(matches!(got, Received::Exit { reason: ExitReason::NoProc, .. }), "{got:?}");
    // Not trapping: the caller dies with noproc.
    let p = node.spawn(move || rusm_otp::link(dead)).unwrap();
    assert_eq!(node.await_exit(p, T), Some(ExitReason::NoProc));
}

fn wait_dead(node: &rusm_otp::Node, pid: Pid) -> bool {
    let end = std::time::Instant::now() + T;
    while node.is_alive(pid) {
        if std::time::Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

#[test]
fn monitor_of_a_dead_pid_is_noproc_at_once_and_demonitor_flushes() {
    let node = node();
    let dead = node.spawn(|| {}).unwrap();
    assert!(wait_dead(&node, dead));
    let (first, flushed) = node
        .run(move || {
            let m = rusm_otp::monitor(dead);
            let first = rusm_otp::receive_timeout(Duration::ZERO);
            let m2 = rusm_otp::monitor(dead);
            let active = rusm_otp::demonitor(m2, true);
            let after = rusm_otp::receive_timeout(Duration::from_millis(20));
            (
                matches!(first, Received::Down { monitor, reason: ExitReason::NoProc, .. } if monitor == m),
                !active && matches!(after, Received::Timeout),
            )
        })
        .unwrap();
    assert!(first);
    assert!(flushed);
}

#[test]
fn demonitored_process_sends_no_down() {
    let node = node();
    let quiet = node
        .run(|| {
            let (pid, m) = rusm_otp::spawn_monitor(|| {
                let _ = rusm_otp::receive();
            })
            .unwrap();
            assert!(rusm_otp::demonitor(m, false));
            rusm_otp::send(pid, Message::value(()));
            matches!(rusm_otp::receive_timeout(Duration::from_millis(50)), Received::Timeout)
        })
        .unwrap();
    assert!(quiet);
}

#[test]
fn a_tree_of_a_hundred_thousand_linked_processes_is_torn_down_completely() {
    const N: usize = 100_000;
    const SLOW: Duration = Duration::from_secs(120);
    let node = node();
    let root = node
        .spawn(|| {
            // 100 supervisors-to-be, each linked to 100 workers, all linked to the root.
            for _ in 0..100 {
                rusm_otp::spawn_link(|| {
                    for _ in 0..(N / 100 - 1) {
                        rusm_otp::spawn_link(|| loop {
                            let _ = rusm_otp::receive();
                        })
                        .unwrap();
                    }
                    loop {
                        let _ = rusm_otp::receive();
                    }
                })
                .unwrap();
            }
            loop {
                let _ = rusm_otp::receive();
            }
        })
        .unwrap();
    let end = std::time::Instant::now() + SLOW;
    while node.processes().len() < N + 1 {
        assert!(std::time::Instant::now() < end, "only {} spawned", node.processes().len());
        std::thread::sleep(Duration::from_millis(5));
    }
    node.exit(root, ExitReason::Other("teardown".into()));
    let end = std::time::Instant::now() + SLOW;
    while !node.processes().is_empty() {
        assert!(
            std::time::Instant::now() < end,
            "{} processes left after teardown",
            node.processes().len()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // A process leaves the table as it exits; its task finishes just after.
    while node.handle().counters().live_tasks != 0 {
        assert!(std::time::Instant::now() < end, "{} tasks left", node.handle().counters().live_tasks);
        std::thread::sleep(Duration::from_millis(5));
    }
}
