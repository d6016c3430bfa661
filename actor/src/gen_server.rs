//! A gen-server: a process that serves synchronous calls and asynchronous casts around a
//! state, as OTP 25's `gen_server` (RUSM's `AbstractProcess`).
//!
//! # Rules (OTP's `gen_server`)
//!
//! | what | how |
//! |---|---|
//! | start | [`start_link`]/[`start`] return after `init` has returned in the new process; an `init` that fails (returns `Err`, panics or calls `exit_with`) makes the server exit with that reason and the start return [`StartError::Init`]. A linked caller that does not trap exits then ends with that reason too (the link), as in OTP 25. |
//! | call | monitors the server and waits for the reply, the server's `Down`, or the timeout; a dead or dying server is an error, never a hang. The reply is addressed to an alias (EEP 53): a reply that comes after the call gave up is dropped and never reaches the caller's mailbox. |
//! | reply to a dead caller | dropped. |
//! | `terminate` | runs when a callback returns `Stop`, when a callback panics or calls `exit_with` (then the server ends with that reason), and when the server traps exits and an exit signal comes from its *parent* (the process that called `start_link`): then it exits with the parent's reason after `terminate`. |
//! | other exit signals | a server that does not trap exits is ended by them at once, without `terminate`; a trapping server gets them in `handle_info` (an `Exit` from anyone but its parent). `kill` always ends it at once. |
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
use std::time::Duration;

use crate::process::ExitUnwind;
use crate::start::{Ack, start_sync};
use crate::{ExitReason, Message, Pid, Received, ReplyTo, StartError};

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

    /// Runs as the server ends by its own decision (`Stop`), a callback's panic or
    /// `exit_with`, or its parent's exit signal while it traps exits; not when another
    /// exit signal ends it (see the module docs).
    fn terminate(&mut self, reason: &ExitReason) {
        let _ = reason;
    }
}

/// Who to reply to; lets a server reply after `handle_call` returned.
#[derive(Debug)]
pub struct From<R> {
    to: ReplyTo,
    _reply: std::marker::PhantomData<fn(R)>,
}

impl<R: Send + 'static> From<R> {
    /// Sends the reply (dropped if the caller is gone or gave up).
    ///
    /// # Panics
    ///
    /// Outside a process.
    pub fn reply(self, r: R) {
        let tag = self.to.alias;
        self.to.send(Message::value(ReplyMsg { tag, reply: r }));
    }

    /// The calling process.
    pub fn caller(&self) -> Pid {
        self.to.pid
    }
}

struct CallMsg<C> {
    from: ReplyTo,
    req: C,
}

struct CastMsg<C>(C);

struct ReplyMsg<R> {
    tag: u64,
    reply: R,
}

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

/// What an `init` may return: the state, or `Err(reason)` to fail the start (OTP's
/// `{stop, Reason}`).
pub trait Init<S> {
    /// The state, or why the start fails.
    fn into_state(self) -> Result<S, ExitReason>;
}

impl<S: GenServer> Init<S> for S {
    fn into_state(self) -> Result<S, ExitReason> {
        Ok(self)
    }
}

impl<S: GenServer> Init<S> for Result<S, ExitReason> {
    fn into_state(self) -> Result<S, ExitReason> {
        self
    }
}

/// Starts a server linked to the caller, which becomes the server's parent; `init` builds
/// its state in the new process, and this returns once it has.
///
/// # Errors
///
/// [`StartError::Spawn`] if the scheduler refuses; [`StartError::Init`] with the server's
/// exit reason if `init` returns `Err`, panics or exits (a caller that does not trap exits
/// ends with that reason as well, through the link).
///
/// # Panics
///
/// Outside a process.
pub fn start_link<S: GenServer, I: Init<S>>(
    init: impl FnOnce() -> I + Send + 'static,
) -> Result<Pid, StartError> {
    let parent = crate::self_pid();
    start_sync(true, move |ack| run(init, ack, Some(parent)))
}

/// Starts a server not linked to anything (it has no parent); returns once `init` has
/// returned.
///
/// # Errors
///
/// As [`start_link`].
///
/// # Panics
///
/// Outside a process.
pub fn start<S: GenServer, I: Init<S>>(
    init: impl FnOnce() -> I + Send + 'static,
) -> Result<Pid, StartError> {
    start_sync(false, move |ack| run(init, ack, None))
}

fn run<S: GenServer, I: Init<S>>(init: impl FnOnce() -> I, ack: Ack, parent: Option<Pid>) {
    let state = match init().into_state() {
        Ok(s) => s,
        Err(reason) => crate::exit_with(reason),
    };
    ack.ok();
    serve(state, parent);
}

fn serve<S: GenServer>(mut state: S, parent: Option<Pid>) {
    let r = catch_unwind(AssertUnwindSafe(|| serve_loop(&mut state, parent)));
    match r {
        Ok(reason) => {
            state.terminate(&reason);
            if !reason.is_normal() {
                crate::exit_with(reason);
            }
        }
        Err(payload) => {
            let reason = match payload.downcast_ref::<ExitUnwind>() {
                // An exit signal ends the server at once (Erlang: the process just dies).
                Some(e) if e.signal => resume_unwind(payload),
                // The runtime is cancelling the fiber (the node went down): no terminate.
                None if rusm_sched::is_cancelling() => resume_unwind(payload),
                Some(e) => e.reason.clone(),
                None => ExitReason::Crashed(rusm_sched::panic_message(&*payload)),
            };
            state.terminate(&reason);
            resume_unwind(payload);
        }
    }
}

fn serve_loop<S: GenServer>(state: &mut S, parent: Option<Pid>) -> ExitReason {
    loop {
        let flow = match crate::receive() {
            Received::Message(m) => match m.downcast::<CallMsg<S::Call>>() {
                Ok(call) => {
                    let to = call.from;
                    let from = || From {
                        to,
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
            // The parent's exit signal, trapped: terminate, then exit with its reason.
            Received::Exit { from, reason } if Some(from) == parent => Flow::Stop(reason),
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
    let make = |from: ReplyTo| Message::value(CallMsg { from, req });
    let is_reply =
        |m: &Message, alias: u64| m.downcast_ref::<ReplyMsg<S::Reply>>().is_some_and(|r| r.tag == alias);
    match crate::request(server, make, is_reply, timeout) {
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
