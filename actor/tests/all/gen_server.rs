use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rusm_otp::gen_server::{self, CallError, CallResult, Flow, From, GenServer};
use rusm_otp::{ExitReason, Received};

use crate::{T, node};

/// A key-value store with a slow path that replies later, and a log of terminations.
struct Kv {
    items: std::collections::HashMap<String, u64>,
    pending: Vec<From<Option<u64>>>,
    terminated: Arc<Mutex<Vec<ExitReason>>>,
}

enum Req {
    Get(String),
    /// Replied only when a `Release` cast comes.
    GetLater,
    Sleep(Duration),
    Stop,
}

enum Cast {
    Put(String, u64),
    Release,
}

impl GenServer for Kv {
    type Call = Req;
    type Reply = Option<u64>;
    type Cast = Cast;

    fn handle_call(&mut self, req: Req, from: From<Option<u64>>) -> CallResult<Option<u64>> {
        match req {
            Req::Get(k) => CallResult::Reply(self.items.get(&k).copied()),
            Req::GetLater => {
                self.pending.push(from);
                CallResult::NoReply
            }
            Req::Sleep(d) => {
                rusm_sched::sleep(d);
                CallResult::Reply(None)
            }
            Req::Stop => CallResult::Stop(ExitReason::Other("asked".into()), None),
        }
    }

    fn handle_cast(&mut self, c: Cast) -> Flow {
        match c {
            Cast::Put(k, v) => {
                self.items.insert(k, v);
            }
            Cast::Release => {
                for f in self.pending.drain(..) {
                    f.reply(Some(42));
                }
            }
        }
        Flow::Continue
    }

    fn terminate(&mut self, reason: &ExitReason) {
        self.terminated.lock().push(reason.clone());
    }
}

fn kv(log: &Arc<Mutex<Vec<ExitReason>>>) -> impl FnOnce() -> Kv + Send + 'static {
    let log = log.clone();
    move || Kv {
        items: Default::default(),
        pending: Vec::new(),
        terminated: log,
    }
}

#[test]
fn call_cast_and_deferred_reply() {
    let node = node();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mk = kv(&log);
    let got = node
        .run(move || {
            let s = gen_server::start_link(mk).unwrap();
            gen_server::cast::<Kv>(s, Cast::Put("a".into(), 1));
            let a = gen_server::call::<Kv>(s, Req::Get("a".into()), T).unwrap();
            let me = rusm_otp::self_pid();
            // A helper releases the deferred reply while we wait in the call.
            rusm_otp::spawn(move || {
                rusm_sched::sleep(Duration::from_millis(10));
                gen_server::cast::<Kv>(s, Cast::Release);
                let _ = me;
            })
            .unwrap();
            let later = gen_server::call::<Kv>(s, Req::GetLater, T).unwrap();
            (a, later)
        })
        .unwrap();
    assert_eq!(got, (Some(1), Some(42)));
}

#[test]
fn call_times_out_and_the_server_goes_on() {
    let node = node();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mk = kv(&log);
    let (timed_out, after) = node
        .run(move || {
            let s = gen_server::start_link(mk).unwrap();
            let r = gen_server::call::<Kv>(s, Req::Sleep(Duration::from_millis(100)), Duration::from_millis(10));
            gen_server::cast::<Kv>(s, Cast::Put("k".into(), 9));
            (r, gen_server::call::<Kv>(s, Req::Get("k".into()), T))
        })
        .unwrap();
    assert_eq!(timed_out, Err(CallError::Timeout));
    assert_eq!(after, Ok(Some(9)));
}

#[test]
fn calling_a_dead_or_dying_server_is_an_error_not_a_hang() {
    let node = node();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mk = kv(&log);
    let (stop_reply, dead_call) = node
        .run(move || {
            rusm_otp::trap_exit(true);
            let s = gen_server::start_link(mk).unwrap();
            let stop_reply = gen_server::call::<Kv>(s, Req::Stop, T);
            // The server has stopped: the next call fails at once.
            let dead = gen_server::call::<Kv>(s, Req::Get("a".into()), T);
            (stop_reply, dead)
        })
        .unwrap();
    assert_eq!(stop_reply, Ok(None));
    assert!(matches!(dead_call, Err(CallError::Exited(_))), "{dead_call:?}");
    assert_eq!(*log.lock(), [ExitReason::Other("asked".into())]);
}

#[test]
fn a_server_ended_by_an_exit_signal_mid_call_does_not_run_terminate() {
    let node = node();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mk = kv(&log);
    let r = node
        .run(move || {
            let s = gen_server::start(mk).unwrap();
            rusm_otp::spawn(move || {
                rusm_sched::sleep(Duration::from_millis(10));
                rusm_otp::exit(s, ExitReason::Other("boom".into()));
            })
            .unwrap();
            gen_server::call::<Kv>(s, Req::GetLater, T)
        })
        .unwrap();
    assert_eq!(r, Err(CallError::Exited(ExitReason::Other("boom".into()))));
    // Not trapping exits: the signal ends it at once (OTP), `terminate` does not run.
    assert_eq!(*log.lock(), []);
}

#[test]
fn a_caller_dying_mid_call_does_not_hurt_the_server() {
    let node = node();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mk = kv(&log);
    let served = Arc::new(AtomicUsize::new(0));
    let sv = served.clone();
    let ok = node
        .run(move || {
            let s = gen_server::start(mk).unwrap();
            let caller = rusm_otp::spawn(move || {
                let _ = gen_server::call::<Kv>(s, Req::Sleep(Duration::from_millis(30)), T);
            })
            .unwrap();
            rusm_sched::sleep(Duration::from_millis(5));
            rusm_otp::kill(caller);
            // The server finishes the sleep, replies into the void, and keeps serving.
            gen_server::cast::<Kv>(s, Cast::Put("z".into(), 3));
            let r = gen_server::call::<Kv>(s, Req::Get("z".into()), T);
            sv.fetch_add(1, Ordering::SeqCst);
            matches!(rusm_otp::receive_timeout(Duration::from_millis(10)), Received::Timeout) && r == Ok(Some(3))
        })
        .unwrap();
    assert!(ok);
    assert_eq!(served.load(Ordering::SeqCst), 1);
}

// ---- OTP 25's gen_server rules: start after init, late replies, terminate ----

/// A server that records what reaches it: `terminate` reasons and `handle_info` items.
struct Recorder {
    log: Arc<Mutex<Vec<String>>>,
}

impl GenServer for Recorder {
    type Call = Duration;
    type Reply = &'static str;
    type Cast = ();

    fn handle_call(&mut self, sleep: Duration, _from: From<&'static str>) -> CallResult<&'static str> {
        rusm_sched::sleep(sleep);
        self.log.lock().push("replied".into());
        CallResult::Reply("late")
    }

    fn handle_info(&mut self, info: Received) -> Flow {
        if let Received::Exit { reason, .. } = info {
            self.log.lock().push(format!("info exit {reason}"));
        }
        Flow::Continue
    }

    fn terminate(&mut self, reason: &ExitReason) {
        self.log.lock().push(format!("terminate {reason}"));
    }
}

fn recorder(log: &Arc<Mutex<Vec<String>>>, trap: bool) -> impl FnOnce() -> Recorder + Send + 'static {
    let log = log.clone();
    move || {
        rusm_otp::trap_exit(trap);
        Recorder { log }
    }
}

fn wait_for(log: &Arc<Mutex<Vec<String>>>, n: usize) -> Vec<String> {
    let end = std::time::Instant::now() + T;
    while log.lock().len() < n {
        assert!(std::time::Instant::now() < end, "only {:?}", log.lock());
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(20));
    log.lock().clone()
}

#[test]
fn a_reply_after_the_call_gave_up_never_reaches_the_caller() {
    let node = node();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mk = recorder(&log, false);
    let (r, next, stray) = node
        .run(move || {
            let s = gen_server::start_link(mk).unwrap();
            let r = gen_server::call::<Recorder>(s, Duration::from_millis(50), Duration::from_millis(5));
            // The server replies 45 ms after the caller gave up; the next call's reply comes
            // after that late one was sent, so by then it would be in the mailbox.
            let next = gen_server::call::<Recorder>(s, Duration::ZERO, T);
            (r, next, rusm_otp::receive_timeout(Duration::ZERO))
        })
        .unwrap();
    assert_eq!(r, Err(CallError::Timeout));
    assert_eq!(next, Ok("late"));
    assert_eq!(*log.lock(), ["replied", "replied"]);
    assert!(matches!(stray, Received::Timeout), "the late reply reached the mailbox: {stray:?}");
}

#[test]
fn start_returns_after_init_has_returned() {
    let node = node();
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let seen = node
        .run(move || {
            let d2 = d.clone();
            gen_server::start(move || {
                rusm_sched::sleep(Duration::from_millis(30));
                d2.store(1, Ordering::SeqCst);
                Kv { items: Default::default(), pending: Vec::new(), terminated: Arc::default() }
            })
            .unwrap();
            d.load(Ordering::SeqCst)
        })
        .unwrap();
    assert_eq!(seen, 1, "start returned before init did");
}

#[test]
fn a_failing_init_is_reported_to_the_caller() {
    let node = node();
    let (stopped, panicked, exits) = node
        .run(|| {
            rusm_otp::trap_exit(true);
            let stopped = gen_server::start_link(|| Err::<Kv, _>(ExitReason::Other("no config".into()))).map(|_| ());
            let panicked = gen_server::start_link(|| -> Kv { panic!("init boom") }).map(|_| ());
            // Linked: the caller also gets each server's exit signal (OTP 25).
            let exits: Vec<ExitReason> = (0..2)
                .map(|_| match crate::recv() {
                    Received::Exit { reason, .. } => reason,
                    other => panic!("{other:?}"),
                })
                .collect();
            (stopped, panicked, exits)
        })
        .unwrap();
    assert!(matches!(&stopped, Err(rusm_otp::StartError::Init(ExitReason::Other(r))) if r == "no config"), "{stopped:?}");
    assert!(matches!(&panicked, Err(rusm_otp::StartError::Init(ExitReason::Crashed(r))) if r.contains("init boom")), "{panicked:?}");
    assert_eq!(exits[0], ExitReason::Other("no config".into()));
    assert!(matches!(&exits[1], ExitReason::Crashed(_)));
    // Not linked: only the error.
    let r = node.run(|| gen_server::start(|| Err::<Kv, _>(ExitReason::Shutdown)).map(|_| ())).unwrap();
    assert!(matches!(r, Err(rusm_otp::StartError::Init(ExitReason::Shutdown))), "{r:?}");
    // Linked and not trapping exits: the caller ends with the server's reason (OTP 25).
    let (tx, rx) = std::sync::mpsc::channel();
    node.spawn(move || {
        let (p, m) = rusm_otp::spawn_monitor(|| {
            let _ = gen_server::start_link(|| Err::<Kv, _>(ExitReason::Other("no config".into())));
            rusm_otp::check();
        })
        .unwrap();
        let _ = p;
        tx.send(crate::wait_down(m)).unwrap();
    })
    .unwrap();
    assert_eq!(rx.recv_timeout(T).unwrap(), ExitReason::Other("no config".into()));
}

/// The server pid a parent sent.
fn server_pid() -> rusm_otp::Pid {
    match crate::recv() {
        Received::Message(m) => m.downcast::<rusm_otp::Pid>().expect("a pid"),
        other => panic!("{other:?}"),
    }
}

/// Starts a `Recorder` (trapping or not) linked to a parent process, sends it an exit
/// signal with reason `bye` from the parent or from another process, and returns the
/// server's exit reason (`None`: it lives) and the log.
fn terminate_case(trap: bool, from_parent: bool) -> (Option<ExitReason>, Vec<String>) {
    let node = node();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mk = recorder(&log, trap);
    let l = log.clone();
    node.run(move || {
            let me = rusm_otp::self_pid();
            // The parent traps exits so that it outlives a server that dies.
            let parent = rusm_otp::spawn_opt(rusm_otp::SpawnOpts { trap_exit: true, ..Default::default() }, move || {
                let s = gen_server::start_link(mk).unwrap();
                rusm_otp::send(me, rusm_otp::Message::value(s));
                loop {
                    if let Received::Message(m) = rusm_otp::receive()
                        && let Ok(to) = m.downcast::<rusm_otp::Pid>()
                    {
                        rusm_otp::exit(to, ExitReason::Other("bye".into()));
                    }
                }
            })
            .unwrap()
            .pid;
            let s = server_pid();
            let m = rusm_otp::monitor(s);
            if from_parent {
                rusm_otp::send(parent, rusm_otp::Message::value(s));
            } else {
                rusm_otp::exit(s, ExitReason::Other("bye".into()));
            }
            let fate = match rusm_otp::receive_match(
                |r| matches!(r, Received::Down { monitor, .. } if *monitor == m),
                Some(Duration::from_millis(500)),
            ) {
                Received::Down { reason, .. } => Some(reason),
                _ => None,
            };
            rusm_sched::sleep(Duration::from_millis(20));
            // Before the parent goes: its death would be the parent's exit signal.
            let seen = l.lock().clone();
            rusm_otp::kill(parent);
            (fate, seen)
        })
        .unwrap()
}

#[test]
fn terminate_runs_on_the_parents_exit_signal_only_when_trapping() {
    let bye = || Some(ExitReason::Other("bye".into()));
    // Trapping, from the parent: terminate, then exit with the parent's reason.
    assert_eq!(terminate_case(true, true), (bye(), vec!["terminate bye".to_string()]));
    // Trapping, from anyone else: handle_info, and the server goes on.
    assert_eq!(terminate_case(true, false), (None, vec!["info exit bye".to_string()]));
    // Not trapping: the signal ends it at once, without terminate, whoever sent it.
    assert_eq!(terminate_case(false, true), (bye(), vec![]));
    assert_eq!(terminate_case(false, false), (bye(), vec![]));
}

#[test]
fn terminate_runs_when_the_parent_dies_and_the_server_traps() {
    let node = node();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mk = recorder(&log, true);
    let reason = node
        .run(move || {
            let me = rusm_otp::self_pid();
            let parent = rusm_otp::spawn(move || {
                rusm_otp::send(me, rusm_otp::Message::value(gen_server::start_link(mk).unwrap()));
                let _ = rusm_otp::receive();
                rusm_otp::exit_with(ExitReason::Other("parent gone".into()))
            })
            .unwrap();
            let s = server_pid();
            let m = rusm_otp::monitor(s);
            rusm_otp::send(parent, rusm_otp::Message::value(()));
            crate::wait_down(m)
        })
        .unwrap();
    assert_eq!(reason, ExitReason::Other("parent gone".into()));
    assert_eq!(wait_for(&log, 1), ["terminate parent gone"]);
}

#[test]
fn a_start_and_a_call_from_a_full_bounded_mailbox_still_get_their_answers() {
    // A start's acknowledgement and a call's reply go outside the caller's mailbox bound
    // (it asked for exactly them), so neither is dropped, evicted or fatal.
    for overflow in [rusm_otp::Overflow::DropNewest, rusm_otp::Overflow::DropOldest, rusm_otp::Overflow::Exit] {
        let node = node();
        let (tx, rx) = std::sync::mpsc::channel();
        let opts = rusm_otp::SpawnOpts { mailbox_capacity: Some(1), overflow, ..Default::default() };
        node.spawn_opt(opts, move || {
            let me = rusm_otp::self_pid();
            rusm_otp::send(me, b"fills the mailbox".to_vec());
            let s = gen_server::start(|| Kv { items: Default::default(), pending: Vec::new(), terminated: Arc::default() }).unwrap();
            gen_server::cast::<Kv>(s, Cast::Put("k".into(), 5));
            let got = gen_server::call::<Kv>(s, Req::Get("k".into()), T);
            tx.send(got).unwrap();
        })
        .unwrap();
        assert_eq!(rx.recv_timeout(T).unwrap(), Ok(Some(5)), "{overflow:?}");
    }
}
