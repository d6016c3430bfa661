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
fn server_killed_during_a_call_and_terminate_runs() {
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
    assert_eq!(*log.lock(), [ExitReason::Other("boom".into())]);
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
