//! A gen-server: a process that serves synchronous calls and asynchronous casts around a
//! state, as OTP's `gen_server` (RUSM's `AbstractProcess`).
//!
//! A call monitors the server, sends the request with a unique tag and waits for the reply
//! with that tag, the server's `Down`, or the timeout, whichever comes first; a dead or
//! dying server is an error, never a hang. A reply to a caller that has died is dropped; one
//! that arrives after the caller gave up stays in its mailbox as an ordinary message (as in
//! Erlang before process aliases), never mistaken for the reply to a later call. `terminate` runs whenever the server ends: by returning `Stop`, by an exit
//! signal, or by a panic in a callback.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use rusm_otp::gen_server::{self, CallResult, From, GenServer};
//!
//! struct Counter(u64);
//!
//! impl GenServer for Counter {
//!     type Call = ();
//!     type Reply = u64;
//!     type Cast = u64;
//!     fn handle_call(&mut self, _: (), _from: From<u64>) -> CallResult<u64> {
//!         CallResult::Reply(self.0)
//!     }
//!     fn handle_cast(&mut self, n: u64) -> gen_server::Flow {
//!         self.0 += n;
//!         gen_server::Flow::Continue
//!     }
//! }
//!
//! let node = rusm_otp::Node::new().unwrap();
//! let n = node
//!     .run(|| {
//!         let s = gen_server::start_link(|| Counter(0)).unwrap();
//!         gen_server::cast::<Counter>(s, 5);
//!         gen_server::cast::<Counter>(s, 2);
//!         gen_server::call::<Counter>(s, (), Duration::from_secs(5)).unwrap()
//!     })
//!     .unwrap();
//! assert_eq!(n, 7);
//! ```

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::process::ExitUnwind;
use crate::{ExitReason, Message, Pid, Received};

/// What to do after a callback.
#[derive(Debug)]
pub enum Flow {
    /// Keep serving.
    Continue,
    /// Stop with this reason (`terminate` runs first).
    Stop(ExitReason),
}

/// What `handle_call` returns.
#[derive(Debug)]
pub enum CallResult<R> {
    /// Reply now.
    Reply(R),
    /// Reply later through the [`From`] handle (or never: the caller times out).
    NoReply,
    /// Reply, then stop with the reason.
    Stop(ExitReason, R),
}

/// The callbacks of a gen-server.
pub trait GenServer: Send + 'static {
    /// Call requests.
    type Call: Send + 'static;
    /// Call replies.
    type Reply: Send + 'static;
    /// Casts.
    type Cast: Send + 'static;

    /// Serves a call.
    fn handle_call(&mut self, req: Self::Call, from: From<Self::Reply>) -> CallResult<Self::Reply>;

    /// Handles a cast.
    fn handle_cast(&mut self, msg: Self::Cast) -> Flow {
        let _ = msg;
        Flow::Continue
    }

    /// Handles anything else in the mailbox (other messages, `Exit` if trapping, `Down`).
    fn handle_info(&mut self, info: Received) -> Flow {
        let _ = info;
        Flow::Continue
    }

    /// Runs as the server ends, with the reason.
    fn terminate(&mut self, reason: &ExitReason) {
        let _ = reason;
    }
}

/// Who to reply to; lets a server reply after `handle_call` returned.
#[derive(Debug)]
pub struct From<R> {
    caller: Pid,
    tag: u64,
    _reply: std::marker::PhantomData<fn(R)>,
}

impl<R: Send + 'static> From<R> {
    /// Sends the reply (dropped if the caller is gone or gave up).
    ///
    /// # Panics
    ///
    /// Outside a process.
    pub fn reply(self, r: R) {
        crate::send(self.caller, Message::value(ReplyMsg { tag: self.tag, reply: r }));
    }

    /// The calling process.
    pub fn caller(&self) -> Pid {
        self.caller
    }
}

struct CallMsg<C> {
    from: Pid,
    tag: u64,
    req: C,
}

struct CastMsg<C>(C);

struct ReplyMsg<R> {
    tag: u64,
    reply: R,
}

static TAGS: AtomicU64 = AtomicU64::new(1);

/// Why a call failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The server is not alive, or ended before replying (with this reason).
    #[error("the server ended: {0}")]
    Exited(ExitReason),
    /// No reply within the timeout.
    #[error("the server did not reply in time")]
    Timeout,
}

/// Starts a server linked to the caller; `init` builds its state in the new process.
///
/// # Errors
///
/// As [`crate::spawn`].
///
/// # Panics
///
/// Outside a process.
pub fn start_link<S: GenServer>(init: impl FnOnce() -> S + Send + 'static) -> Result<Pid, crate::SpawnError> {
    crate::spawn_link(move || serve(init()))
}

/// Starts a server not linked to anything.
///
/// # Errors
///
/// As [`crate::spawn`].
///
/// # Panics
///
/// Outside a process.
pub fn start<S: GenServer>(init: impl FnOnce() -> S + Send + 'static) -> Result<Pid, crate::SpawnError> {
    crate::spawn(move || serve(init()))
}

fn serve<S: GenServer>(mut state: S) {
    let r = catch_unwind(AssertUnwindSafe(|| serve_loop(&mut state)));
    match r {
        Ok(reason) => {
            state.terminate(&reason);
            if !reason.is_normal() {
                crate::exit_with(reason);
            }
        }
        Err(payload) => {
            let reason = match payload.downcast_ref::<ExitUnwind>() {
                Some(e) => e.0.clone(),
                None => ExitReason::Crashed(rusm_sched::panic_message(&*payload)),
            };
            state.terminate(&reason);
            resume_unwind(payload);
        }
    }
}

fn serve_loop<S: GenServer>(state: &mut S) -> ExitReason {
    loop {
        let flow = match crate::receive() {
            Received::Message(m) => match m.downcast::<CallMsg<S::Call>>() {
                Ok(call) => {
                    let from = || From {
                        caller: call.from,
                        tag: call.tag,
                        _reply: std::marker::PhantomData,
                    };
                    let reply = |r: S::Reply| from().reply(r);
                    match state.handle_call(call.req, from()) {
                        CallResult::Reply(r) => {
                            reply(r);
                            Flow::Continue
                        }
                        CallResult::NoReply => Flow::Continue,
                        CallResult::Stop(reason, r) => {
                            reply(r);
                            Flow::Stop(reason)
                        }
                    }
                }
                Err(m) => match m.downcast::<CastMsg<S::Cast>>() {
                    Ok(cast) => state.handle_cast(cast.0),
                    Err(m) => state.handle_info(Received::Message(m)),
                },
            },
            other => state.handle_info(other),
        };
        if let Flow::Stop(reason) = flow {
            return reason;
        }
    }
}

/// Calls the server and waits up to `timeout` for its reply.
///
/// # Errors
///
/// [`CallError::Exited`] if the server is dead or dies before replying,
/// [`CallError::Timeout`] if it does not reply in time.
///
/// # Panics
///
/// Outside a process.
pub fn call<S: GenServer>(server: Pid, req: S::Call, timeout: Duration) -> Result<S::Reply, CallError> {
    let me = crate::self_pid();
    let tag = TAGS.fetch_add(1, Ordering::Relaxed);
    let is_reply = |m: &Message| m.downcast_ref::<ReplyMsg<S::Reply>>().is_some_and(|r| r.tag == tag);
    match crate::request(server, Message::value(CallMsg { from: me, tag, req }), is_reply, timeout) {
        crate::Answer::Reply(msg) => msg
            .downcast::<ReplyMsg<S::Reply>>()
            .map(|r| r.reply)
            .map_err(|_| CallError::Exited(ExitReason::NoProc)),
        crate::Answer::Down(reason) => Err(CallError::Exited(reason)),
        crate::Answer::Timeout => Err(CallError::Timeout),
    }
}

/// Sends a cast (a no-op if the server is dead).
///
/// # Panics
///
/// Outside a process.
pub fn cast<S: GenServer>(server: Pid, msg: S::Cast) {
    crate::send(server, Message::value(CastMsg(msg)));
}
