use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusm_otp::supervisor::{self, ChildSpec, Restart, Shutdown, Strategy, SupervisorSpec};
use rusm_otp::{ExitReason, Node, Pid, Received};

use crate::{T, node};

fn idle() {
    loop {
        let _ = rusm_otp::receive();
    }
}

fn children(node: &Node, sup: Pid) -> Vec<(String, Option<Pid>)> {
    node.run(move || supervisor::which_children(sup).unwrap()).unwrap()
}

/// Waits until every child runs and returns the pids.
fn running(node: &Node, sup: Pid, n: usize) -> Vec<Pid> {
    let end = Instant::now() + T;
    loop {
        let c = children(node, sup);
        if c.len() == n && c.iter().all(|(_, p)| p.is_some()) {
            return c.into_iter().map(|(_, p)| p.unwrap()).collect();
        }
        assert!(Instant::now() < end, "children never all running: {c:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits until the children differ from `before` and all run again.
fn changed(node: &Node, sup: Pid, before: &[Pid]) -> Vec<Pid> {
    let end = Instant::now() + T;
    loop {
        let now = running(node, sup, before.len());
        if now != before {
            return now;
        }
        assert!(Instant::now() < end, "no restart seen");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn three(strategy: Strategy) -> SupervisorSpec {
    SupervisorSpec::new(strategy)
        .intensity(10, Duration::from_secs(5))
        .child(ChildSpec::new("a", Restart::Permanent, idle))
        .child(ChildSpec::new("b", Restart::Permanent, idle))
        .child(ChildSpec::new("c", Restart::Permanent, idle))
}

fn crash(node: &Node, pid: Pid) {
    node.exit(pid, ExitReason::Other("crash".into()));
}

#[test]
fn one_for_one_restarts_only_the_failed_child() {
    let node = node();
    let sup = node.start_supervisor(three(Strategy::OneForOne)).unwrap();
    let before = running(&node, sup, 3);
    crash(&node, before[1]);
    let after = changed(&node, sup, &before);
    assert_eq!(after[0], before[0]);
    assert_ne!(after[1], before[1]);
    assert_eq!(after[2], before[2]);
}

#[test]
fn one_for_all_restarts_every_child() {
    let node = node();
    let sup = node.start_supervisor(three(Strategy::OneForAll)).unwrap();
    let before = running(&node, sup, 3);
    crash(&node, before[1]);
    let after = changed(&node, sup, &before);
    for i in 0..3 {
        assert_ne!(after[i], before[i], "child {i} kept its pid");
        assert!(!node.is_alive(before[i]));
    }
}

#[test]
fn rest_for_one_restarts_the_child_and_those_after_it() {
    let node = node();
    let sup = node.start_supervisor(three(Strategy::RestForOne)).unwrap();
    let before = running(&node, sup, 3);
    crash(&node, before[1]);
    let after = changed(&node, sup, &before);
    assert_eq!(after[0], before[0]);
    assert_ne!(after[1], before[1]);
    assert_ne!(after[2], before[2]);
}

#[test]
fn transient_and_temporary_children() {
    let node = node();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(5))
        .child(ChildSpec::new("t", Restart::Transient, idle))
        .child(ChildSpec::new("tmp", Restart::Temporary, idle));
    let sup = node.start_supervisor(spec).unwrap();
    let before = running(&node, sup, 2);
    // A normal exit of a transient child: not restarted.
    node.exit(before[0], ExitReason::Shutdown);
    crash(&node, before[1]);
    std::thread::sleep(Duration::from_millis(50));
    let c = children(&node, sup);
    assert_eq!(c[0].1, None, "transient restarted after shutdown: {c:?}");
    assert_eq!(c[1].1, None, "temporary restarted: {c:?}");
}

#[test]
fn a_crash_loop_exceeds_intensity_and_the_supervisor_exits_shutdown() {
    let node = node();
    let starts = Arc::new(AtomicUsize::new(0));
    let s = starts.clone();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(3, Duration::from_secs(5))
        .child(ChildSpec::new("crasher", Restart::Permanent, move || {
            s.fetch_add(1, Ordering::SeqCst);
            panic!("crash at once");
        }))
        .child(ChildSpec::new("bystander", Restart::Permanent, idle));
    let reason = node
        .run(move || {
            // Trap before linking, or a fast crash loop can take us down first.
            rusm_otp::trap_exit(true);
            let sup = supervisor::start_link(spec).unwrap();
            match rusm_otp::receive_timeout(T) {
                Received::Exit { from, reason } => {
                    assert_eq!(from, sup);
                    reason
                }
                o => panic!("{o:?}"),
            }
        })
        .unwrap();
    assert_eq!(reason, ExitReason::Shutdown);
    // The first start plus 3 restarts, then the 4th restart is refused.
    assert_eq!(starts.load(Ordering::SeqCst), 4);
}

#[test]
fn children_stop_in_reverse_start_order() {
    let node = node();
    let log = Arc::new(Mutex::new(Vec::new()));
    struct Logged(&'static str, Arc<Mutex<Vec<&'static str>>>);
    impl Drop for Logged {
        fn drop(&mut self) {
            self.1.lock().push(self.0);
        }
    }
    let started = Arc::new(AtomicUsize::new(0));
    let mut spec = SupervisorSpec::new(Strategy::OneForOne);
    for id in ["first", "second", "third"] {
        let (log, started) = (log.clone(), started.clone());
        spec = spec.child(
            ChildSpec::new(id, Restart::Permanent, move || {
                let _g = Logged(id, log.clone());
                started.fetch_add(1, Ordering::SeqCst);
                idle();
            })
            .shutdown(Shutdown::Timeout(Duration::from_secs(1))),
        );
    }
    let done = node
        .run(move || {
            rusm_otp::trap_exit(true);
            let sup = supervisor::start_link(spec).unwrap();
            // Wait until every child body runs (a pid exists before its body starts).
            while started.load(Ordering::SeqCst) < 3 {
                rusm_sched::sleep(Duration::from_millis(1));
            }
            let _ = supervisor::which_children(sup).unwrap();
            // The parent exits: the supervisor stops its children, last started first.
            let m = rusm_otp::monitor(sup);
            rusm_otp::exit(sup, ExitReason::Shutdown);
            loop {
                if let Received::Down { monitor, reason, .. } = rusm_otp::receive_timeout(T)
                    && monitor == m
                {
                    return reason;
                }
            }
        })
        .unwrap();
    assert_eq!(done, ExitReason::Shutdown);
    assert_eq!(*log.lock(), ["third", "second", "first"]);
}

#[test]
fn brutal_kill_stops_a_child_that_ignores_shutdown() {
    let node = node();
    let spec = SupervisorSpec::new(Strategy::OneForAll)
        .intensity(10, Duration::from_secs(5))
        .child(
            ChildSpec::new("stubborn", Restart::Permanent, || {
                rusm_otp::trap_exit(true); // shutdown becomes a message it ignores
                idle();
            })
            .shutdown(Shutdown::Timeout(Duration::from_millis(50))),
        )
        .child(ChildSpec::new("other", Restart::Permanent, idle));
    let sup = node.start_supervisor(spec).unwrap();
    let before = running(&node, sup, 2);
    crash(&node, before[1]);
    // one_for_all: the stubborn child is asked to shut down, ignores it, is killed after
    // 50 ms, and everything restarts.
    let after = changed(&node, sup, &before);
    assert_ne!(after[0], before[0]);
    assert!(!node.is_alive(before[0]));
}

#[test]
fn simple_one_for_one_starts_children_on_demand() {
    let node = node();
    let spec = SupervisorSpec::new(Strategy::SimpleOneForOne)
        .intensity(10, Duration::from_secs(5))
        .child(ChildSpec::new("conn", Restart::Temporary, idle));
    let sup = node.start_supervisor(spec).unwrap();
    assert!(children(&node, sup).is_empty());
    let pids = node
        .run(move || {
            (0..3)
                .map(|_| supervisor::start_child(sup).unwrap().unwrap())
                .collect::<Vec<_>>()
        })
        .unwrap();
    assert_eq!(children(&node, sup).len(), 3);
    crash(&node, pids[0]);
    let end = Instant::now() + T;
    while children(&node, sup).len() != 2 {
        assert!(Instant::now() < end);
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_child_started_by_a_start_function_is_linked_labelled_and_restarted() {
    let node = node();
    let starts = Arc::new(AtomicUsize::new(0));
    let s2 = starts.clone();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(5))
        .child(ChildSpec::start_with("started", Restart::Permanent, move |opts| {
            s2.fetch_add(1, Ordering::SeqCst);
            // The supervisor asks for a link to itself and the child's label.
            assert!(opts.link);
            assert_eq!(opts.label.as_deref(), Some("started"));
            rusm_otp::spawn_opt(opts, idle).map(|s| s.pid).map_err(|e| e.to_string())
        }))
        .child(ChildSpec::start_with("refused", Restart::Permanent, |_| Err("no such artifact".into())));
    let sup = node.start_supervisor(spec).unwrap();
    let kids = children(&node, sup);
    assert_eq!(kids.len(), 2);
    let first = kids[0].1.expect("the start function's child runs");
    assert_eq!(kids[1].1, None, "a failed start leaves the child not running");
    let info = node.run(move || rusm_otp::info(first).unwrap()).unwrap();
    assert!(info.links.contains(&sup));
    assert_eq!(info.label.as_deref(), Some("started"));
    crash(&node, first);
    let end = Instant::now() + T;
    loop {
        let now = children(&node, sup)[0].1;
        if now.is_some_and(|p| p != first) {
            break;
        }
        assert!(Instant::now() < end, "not restarted");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(starts.load(Ordering::SeqCst), 2);
    node.shutdown();
}
