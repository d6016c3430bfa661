use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusm_otp::supervisor::{self, ChildSpec, Restart, Shutdown, Started, Strategy, SupervisorSpec};
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
    // A normal exit of a transient child: not restarted, kept as not running.
    node.exit(before[0], ExitReason::Shutdown);
    // A temporary child: never restarted, and its spec is deleted.
    crash(&node, before[1]);
    let end = Instant::now() + T;
    loop {
        let c = children(&node, sup);
        if c == [("t".to_string(), None)] {
            break;
        }
        assert!(Instant::now() < end, "want only t, not running: {c:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(children(&node, sup), [("t".to_string(), None)], "something restarted");
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
        .child(ChildSpec::start_fn("ignored", Restart::Permanent, |_| Ok(Started::Ignore)));
    let sup = node.start_supervisor(spec).unwrap();
    let kids = children(&node, sup);
    assert_eq!(kids.len(), 2);
    let first = kids[0].1.expect("the start function's child runs");
    assert_eq!(kids[1], ("ignored".to_string(), None), "an ignoring start leaves the child listed, not running");
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

// ---- Event traces: OTP's supervisor rules, each as the sequence of what happened ----

type Log = Arc<Mutex<Vec<String>>>;

/// How a traced child's start function behaves.
#[derive(Clone, Copy)]
enum Starts {
    /// Always starts.
    Ok,
    /// Starts this many times, then every start fails.
    Times(usize),
    /// Fails the first `n` restarts after the first start, then starts again.
    FailsRestarts(usize),
    /// Answers `ignore`.
    Ignore,
}

/// A child whose life goes into `log`: its start or failed start (logged by the start
/// function, which runs in the supervisor, so in the supervisor's order) and its end
/// (logged by the child itself before it exits: it traps exits, so the supervisor's
/// `shutdown` reaches it as a message, and the supervisor waits for its end before it
/// goes on). Messages: `crash` (exits `crash`), `normal` (returns), `done` (exits
/// `{shutdown,done}`).
fn traced(log: &Log, id: &'static str, restart: Restart, starts: Starts) -> ChildSpec {
    let log = log.clone();
    let count = Arc::new(AtomicUsize::new(0));
    ChildSpec::start_fn(id, restart, move |mut opts| {
        let n = count.fetch_add(1, Ordering::SeqCst);
        let ok = match starts {
            Starts::Ok => true,
            Starts::Times(k) => n < k,
            Starts::FailsRestarts(k) => n == 0 || n > k,
            Starts::Ignore => {
                log.lock().push(format!("{id} ignored"));
                return Ok(Started::Ignore);
            }
        };
        if !ok {
            log.lock().push(format!("{id} failed to start"));
            return Err("no".into());
        }
        log.lock().push(format!("start {id}"));
        opts.trap_exit = true;
        let l = log.clone();
        rusm_otp::spawn_opt(opts, move || loop {
            match rusm_otp::receive() {
                Received::Exit { reason, .. } => {
                    l.lock().push(format!("{id} stopped {reason}"));
                    rusm_otp::exit_with(reason);
                }
                Received::Message(m) => match m.as_bytes() {
                    Some(b"crash") => {
                        l.lock().push(format!("{id} crashed"));
                        rusm_otp::exit_with(ExitReason::Other("crash".into()));
                    }
                    Some(b"normal") => {
                        l.lock().push(format!("{id} exits normal"));
                        return;
                    }
                    Some(b"done") => {
                        l.lock().push(format!("{id} exits {{shutdown,done}}"));
                        rusm_otp::exit_with(ExitReason::ShutdownWith("done".into()));
                    }
                    _ => {}
                },
                _ => {}
            }
        })
        .map(|s| Started::Pid(s.pid))
        .map_err(|e| e.to_string())
    })
}

/// Starts the supervisor from a process that monitors it and logs `sup exits <reason>`
/// when it ends; returns its pid.
fn traced_sup(node: &Node, log: &Log, spec: SupervisorSpec) -> Pid {
    let (tx, rx) = std::sync::mpsc::channel();
    let l = log.clone();
    node.spawn(move || {
        let sup = supervisor::start(spec);
        let ok = sup.as_ref().ok().copied();
        tx.send(sup.map_err(|e| e.to_string())).unwrap();
        if let Some(sup) = ok {
            let m = rusm_otp::monitor(sup);
            loop {
                if let Received::Down { monitor, reason, .. } = rusm_otp::receive()
                    && monitor == m
                {
                    l.lock().push(format!("sup exits {reason}"));
                    return;
                }
            }
        }
    })
    .unwrap();
    rx.recv_timeout(T).unwrap().expect("the supervisor starts")
}

/// Waits until `log` holds `want` (or fails with what it holds), then a little longer to
/// see that nothing more happens.
fn assert_trace(log: &Log, want: &[&str]) {
    let end = Instant::now() + T;
    while log.lock().len() < want.len() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(*log.lock(), want);
}

fn child_pid(node: &Node, sup: Pid, id: &str) -> Pid {
    children(node, sup)
        .into_iter()
        .find(|(i, _)| i == id)
        .and_then(|(_, p)| p)
        .unwrap_or_else(|| panic!("{id} is not running"))
}

fn ids(node: &Node, sup: Pid) -> Vec<(String, bool)> {
    children(node, sup).into_iter().map(|(id, p)| (id, p.is_some())).collect()
}

fn spec3(strategy: Strategy, log: &Log) -> SupervisorSpec {
    SupervisorSpec::new(strategy)
        .intensity(10, Duration::from_secs(5))
        .child(traced(log, "a", Restart::Permanent, Starts::Ok))
        .child(traced(log, "b", Restart::Permanent, Starts::Ok))
        .child(traced(log, "c", Restart::Permanent, Starts::Ok))
        .child(traced(log, "tmp", Restart::Temporary, Starts::Ok))
}

#[test]
fn trace_one_for_one_with_a_crashing_middle_child() {
    let node = node();
    let log = Log::default();
    let sup = traced_sup(&node, &log, spec3(Strategy::OneForOne, &log));
    node.send(child_pid(&node, sup, "b"), b"crash".to_vec());
    assert_trace(&log, &["start a", "start b", "start c", "start tmp", "b crashed", "start b"]);
}

#[test]
fn trace_one_for_all_with_a_crashing_middle_child_never_restarts_a_temporary_one() {
    let node = node();
    let log = Log::default();
    let sup = traced_sup(&node, &log, spec3(Strategy::OneForAll, &log));
    node.send(child_pid(&node, sup, "b"), b"crash".to_vec());
    assert_trace(
        &log,
        &[
            "start a", "start b", "start c", "start tmp", "b crashed",
            // The others stop in reverse start order; the temporary one is deleted.
            "tmp stopped shutdown", "c stopped shutdown", "a stopped shutdown",
            "start a", "start b", "start c",
        ],
    );
    assert_eq!(ids(&node, sup), [("a".into(), true), ("b".into(), true), ("c".into(), true)]);
}

#[test]
fn trace_rest_for_one_with_a_crashing_middle_child_never_restarts_a_temporary_one() {
    let node = node();
    let log = Log::default();
    let sup = traced_sup(&node, &log, spec3(Strategy::RestForOne, &log));
    node.send(child_pid(&node, sup, "b"), b"crash".to_vec());
    assert_trace(
        &log,
        &["start a", "start b", "start c", "start tmp", "b crashed", "tmp stopped shutdown", "c stopped shutdown", "start b", "start c"],
    );
    assert_eq!(ids(&node, sup), [("a".into(), true), ("b".into(), true), ("c".into(), true)]);
}

#[test]
fn trace_a_temporary_child_that_ends_is_deleted() {
    let node = node();
    let log = Log::default();
    let sup = traced_sup(&node, &log, spec3(Strategy::OneForOne, &log));
    node.send(child_pid(&node, sup, "tmp"), b"crash".to_vec());
    assert_trace(&log, &["start a", "start b", "start c", "start tmp", "tmp crashed"]);
    assert_eq!(ids(&node, sup), [("a".into(), true), ("b".into(), true), ("c".into(), true)]);
}

#[test]
fn trace_a_child_failing_to_start_stops_the_started_ones_and_the_start_fails() {
    let node = node();
    let log = Log::default();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(traced(&log, "a", Restart::Permanent, Starts::Ok))
        .child(traced(&log, "b", Restart::Permanent, Starts::Ok))
        .child(traced(&log, "c", Restart::Permanent, Starts::Times(0)))
        .child(traced(&log, "d", Restart::Permanent, Starts::Ok));
    let (got, exit) = node
        .run(move || {
            rusm_otp::trap_exit(true);
            let got = supervisor::start_link(spec).map(|_| ());
            // Linked, the caller also gets the supervisor's exit signal (OTP 25).
            let exit = match crate::recv() {
                Received::Exit { reason, .. } => reason,
                other => panic!("{other:?}"),
            };
            (got, exit)
        })
        .unwrap();
    let why = ExitReason::ShutdownWith("{failed_to_start_child,c,no}".into());
    assert!(matches!(&got, Err(rusm_otp::StartError::Init(r)) if *r == why), "{got:?}");
    assert_eq!(exit, why);
    assert_eq!(why.to_string(), "{shutdown,{failed_to_start_child,c,no}}");
    // `start_link` returned only after the supervisor had stopped a and b.
    assert_eq!(*log.lock(), ["start a", "start b", "c failed to start", "b stopped shutdown", "a stopped shutdown"]);
    assert!(node.processes().len() <= 1, "left running: {:?}", node.processes());
}

#[test]
fn trace_a_failing_restart_is_tried_again_until_it_starts() {
    let node = node();
    let log = Log::default();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(5, Duration::from_secs(5))
        .child(traced(&log, "x", Restart::Permanent, Starts::FailsRestarts(2)));
    let sup = traced_sup(&node, &log, spec);
    node.send(child_pid(&node, sup, "x"), b"crash".to_vec());
    assert_trace(&log, &["start x", "x crashed", "x failed to start", "x failed to start", "start x"]);
    assert_eq!(ids(&node, sup), [("x".into(), true)]);
}

#[test]
fn trace_a_restart_that_keeps_failing_counts_against_the_intensity() {
    let node = node();
    let log = Log::default();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(3, Duration::from_secs(5))
        .child(traced(&log, "y", Restart::Permanent, Starts::Ok))
        .child(traced(&log, "x", Restart::Permanent, Starts::Times(1)));
    let sup = traced_sup(&node, &log, spec);
    node.send(child_pid(&node, sup, "x"), b"crash".to_vec());
    // Three restarts are allowed in the period, each a failed start; the fourth gives up.
    assert_trace(
        &log,
        &["start y", "start x", "x crashed", "x failed to start", "x failed to start", "x failed to start", "y stopped shutdown", "sup exits shutdown"],
    );
}

#[test]
fn trace_ignore_keeps_the_child_listed_and_not_running() {
    let node = node();
    let log = Log::default();
    let spec = SupervisorSpec::new(Strategy::OneForAll)
        .intensity(10, Duration::from_secs(5))
        .child(traced(&log, "a", Restart::Permanent, Starts::Ok))
        .child(traced(&log, "ign", Restart::Permanent, Starts::Ignore))
        .child(traced(&log, "tmp-ign", Restart::Temporary, Starts::Ignore))
        .child(traced(&log, "c", Restart::Permanent, Starts::Ok));
    let sup = traced_sup(&node, &log, spec);
    assert_trace(&log, &["start a", "ign ignored", "tmp-ign ignored", "start c"]);
    // A temporary child that answers ignore is dropped (OTP's start_children).
    assert_eq!(ids(&node, sup), [("a".into(), true), ("ign".into(), false), ("c".into(), true)]);
}

#[test]
fn trace_a_transient_child_ending_with_a_shutdown_term_is_not_restarted() {
    let node = node();
    let log = Log::default();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(5))
        .child(traced(&log, "t", Restart::Transient, Starts::Ok))
        .child(traced(&log, "u", Restart::Transient, Starts::Ok));
    let sup = traced_sup(&node, &log, spec);
    node.send(child_pid(&node, sup, "t"), b"done".to_vec());
    let end = Instant::now() + T;
    while log.lock().len() < 3 {
        assert!(Instant::now() < end);
        std::thread::sleep(Duration::from_millis(1));
    }
    node.send(child_pid(&node, sup, "u"), b"crash".to_vec());
    assert_trace(&log, &["start t", "start u", "t exits {shutdown,done}", "u crashed", "start u"]);
    assert_eq!(ids(&node, sup), [("t".into(), false), ("u".into(), true)]);
}

#[test]
fn trace_simple_one_for_one_with_a_crashing_middle_child() {
    let node = node();
    let log = Log::default();
    let spec = SupervisorSpec::new(Strategy::SimpleOneForOne)
        .intensity(10, Duration::from_secs(5))
        .child(traced(&log, "w", Restart::Permanent, Starts::Ok));
    let sup = traced_sup(&node, &log, spec);
    // Nothing starts with the supervisor; each start_child starts one instance.
    let kids: Vec<Pid> = (0..3)
        .map(|_| node.run(move || supervisor::start_child(sup).unwrap().expect("started")).unwrap())
        .collect();
    node.send(kids[1], b"crash".to_vec());
    // As one_for_one: only the crashed instance restarts.
    assert_trace(&log, &["start w", "start w", "start w", "w crashed", "start w"]);
    let now: Vec<Pid> = children(&node, sup).into_iter().map(|(_, p)| p.unwrap()).collect();
    assert_eq!(now.len(), 3);
    assert!(now.contains(&kids[0]) && now.contains(&kids[2]) && !now.contains(&kids[1]), "{now:?}");
}

/// The reporter sees each child's end with the child's own reason (also for a child that
/// dies before anyone could monitor it, and for children stopped in order), and the
/// supervisor giving up.
#[test]
fn the_reporter_sees_every_end_with_its_reason_and_the_give_up() {
    let node = node();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s2 = seen.clone();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(1, Duration::from_secs(5))
        .reporter(move |r| {
            s2.lock().push(match r {
                supervisor::SupervisorReport::ChildTerminated { id, reason, .. } => format!("{id}: {reason}"),
                supervisor::SupervisorReport::MaxIntensity => "max intensity".to_owned(),
                _ => "other".to_owned(),
            })
        })
        .child(ChildSpec::new("idle", Restart::Permanent, idle))
        .child(ChildSpec::new("boom", Restart::Permanent, || rusm_otp::exit_with(ExitReason::Other("boom".into()))));
    // boom exits at once, is restarted once, exits again: the supervisor gives up and
    // stops `idle` in order. (It may be gone before start_supervisor returns.)
    let _ = node.start_supervisor(spec);
    let end = Instant::now() + T;
    while seen.lock().len() < 4 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    let seen = seen.lock().clone();
    assert_eq!(seen, ["boom: boom", "boom: boom", "max intensity", "idle: shutdown"], "{seen:?}");
}
