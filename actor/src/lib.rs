//! rusm-otp: Erlang's process semantics on rusm-sched — pids, mailboxes, links, monitors,
//! exit signals and a registry — with no Wasm and no Tokio in it.
//!
//! Every process is a rusm-sched fiber. Inside one, the functions of this crate act on the
//! calling process ([`self_pid`], [`receive`], [`link`], …), as Erlang's BIFs do.
//!
//! ```
//! use rusm_otp::{Message, Node, Received};
//!
//! let node = Node::new().unwrap();
//! let echo = node
//!     .spawn(|| loop {
//!         if let Received::Message(m) = rusm_otp::receive() {
//!             let (from, text): (rusm_otp::Pid, String) = m.downcast().unwrap();
//!             rusm_otp::send(from, Message::value(text.to_uppercase()));
//!         }
//!     })
//!     .unwrap();
//! let reply = node.run(move || {
//!     rusm_otp::send(echo, Message::value((rusm_otp::self_pid(), String::from("hi"))));
//!     match rusm_otp::receive() {
//!         Received::Message(m) => m.downcast::<String>().unwrap(),
//!         other => panic!("{other:?}"),
//!     }
//! });
//! assert_eq!(reply.unwrap(), "HI");
//! ```
//!
//! Beyond processes: [`supervisor`]s, the [`gen_server`], process groups ([`pg`]), byte
//! [`stream`]s between processes and [`tcp`] with a process per connection.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
#![doc(test(attr(deny(warnings))))]

mod exit;
mod pid;
mod process;
mod realm;
mod timer;
mod request;
mod start;
pub mod gen_server;
pub mod pg;
pub mod stream;
pub mod supervisor;
pub mod tcp;

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

pub use exit::{ExitReason, Message, Received};
pub use pid::{MonitorRef, Pid};
pub use realm::{Realm, UnregisterError, processes_in, realm_of, self_realm, unregister_in};
pub use timer::{TimerError, TimerLimit, TimerRef, cancel_timer, cancel_timer_id, send_after, try_send_after};
pub use start::StartError;
pub(crate) use request::{Answer, ReplyTo, request};
use process::{ExitUnwind, NodeInner, Process, State, Via, deliver_exit};

/// Why a spawn failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// The scheduler refused (shut down, or no stack could be mapped).
    #[error(transparent)]
    Sched(#[from] rusm_sched::SpawnError),
    /// Called outside a process; spawn through a [`Node`].
    #[error("not inside a rusm process; spawn through a Node")]
    NotInProcess,
}

/// Why a name could not be registered.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// Another process has the name.
    #[error("the name is already registered")]
    NameTaken,
    /// The process already has a name (one name per process, as in Erlang).
    #[error("the process already has a registered name")]
    AlreadyRegistered,
    /// The process is not alive.
    #[error("no such process")]
    NoProc,
}

/// Options for [`spawn_opt`] and [`Node::spawn_opt`] (Erlang's `spawn_opt`).
#[derive(Debug, Clone, Default)]
pub struct SpawnOpts {
    /// Link the new process to the caller, atomically with the spawn.
    pub link: bool,
    /// Monitor the new process from the caller, atomically with the spawn.
    pub monitor: bool,
    /// Start with `trap_exit` set.
    pub trap_exit: bool,
    /// A label shown by [`info`].
    pub label: Option<String>,
    /// At most this many messages wait in the mailbox (`None`: unbounded, as in Erlang).
    /// Exit signals and `Down`s are never refused or counted.
    pub mailbox_capacity: Option<usize>,
    /// What a send to a full bounded mailbox does.
    pub overflow: Overflow,
    /// Keep the mailbox's high-water mark for [`ProcessInfo::mailbox_peak`].
    pub track_mailbox: bool,
    /// At most this many bytes wait in the mailbox (`None`: unbounded): each message
    /// counts its payload plus 64, a stream its pipe's capacity plus 64. Refused as
    /// [`SpawnOpts::mailbox_capacity`] is, under the same overflow policy.
    pub mailbox_bytes: Option<usize>,
    /// The app it belongs to; `None`: its spawner's ([`Realm::ROOT`] outside a process).
    pub realm: Option<Realm>,
    /// Count the timers it starts against this limit, and cancel them when it exits
    /// (`None`: Erlang's rule, timers outlive their starter).
    pub timer_limit: Option<TimerLimit>,
}

/// What a message sent to a full bounded mailbox ([`SpawnOpts::mailbox_capacity`]) does.
/// A send never blocks and never fails (Erlang); [`try_send`] reports a full mailbox
/// instead of applying the policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Overflow {
    /// The new message is dropped (counted in [`ProcessInfo::mailbox_dropped`]).
    #[default]
    DropNewest,
    /// The oldest waiting message is dropped to make room.
    DropOldest,
    /// The receiver exits with reason `mailbox_overflow` (as `max_heap_size` kills an
    /// Erlang process); its links and monitors see it.
    Exit,
}

/// Why [`try_send`] did not deliver; the message comes back.
#[derive(Debug, thiserror::Error)]
pub enum TrySendError {
    /// The process is not alive.
    #[error("no such process")]
    NoProc(Message),
    /// Its bounded mailbox is full.
    #[error("the mailbox is full")]
    Full(Message),
}

/// What [`spawn_opt`] returns.
#[derive(Debug, Clone, Copy)]
pub struct Spawned {
    /// The new process.
    pub pid: Pid,
    /// The monitor, if [`SpawnOpts::monitor`] was set.
    pub monitor: Option<MonitorRef>,
}

/// A snapshot of one process ([`info`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProcessInfo {
    /// The process.
    pub pid: Pid,
    /// Its label, if set.
    pub label: Option<String>,
    /// Its registered name, if any.
    pub name: Option<String>,
    /// Linked processes.
    pub links: Vec<Pid>,
    /// Processes it monitors.
    pub monitors: Vec<Pid>,
    /// Processes monitoring it.
    pub monitored_by: Vec<Pid>,
    /// Does it trap exits?
    pub trap_exit: bool,
    /// Items waiting in its mailbox (messages and signals).
    pub mailbox_len: usize,
    /// The most items its mailbox has held, if spawned with
    /// [`SpawnOpts::track_mailbox`].
    pub mailbox_peak: Option<usize>,
    /// Its mailbox bound, if any.
    pub mailbox_capacity: Option<usize>,
    /// Bytes its mailbox's messages hold, when it has a byte bound
    /// ([`SpawnOpts::mailbox_bytes`]).
    pub mailbox_bytes: Option<usize>,
    /// The app it belongs to.
    pub realm: Realm,
    /// Messages its overflow policy has dropped.
    pub mailbox_dropped: u64,
    /// The process groups it has joined ([`pg`]), once per join.
    pub groups: Vec<String>,
    /// Messages it has received.
    pub reductions: u64,
    /// Body kind (`"native"`; the Wasm host adds its own).
    pub kind: &'static str,
    /// What it is doing (Erlang's `status` item).
    pub status: ProcessStatus,
}

/// [`ProcessInfo::status`], as Erlang's `process_info(Pid, status)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessStatus {
    /// It is the process asking.
    Running,
    /// Scheduled or running on another worker.
    Runnable,
    /// Parked in a receive (or a stream or socket wait) until something arrives.
    Waiting,
    /// An exit signal has marked it; it ends at its next runtime call.
    Exiting,
}

/// A node: a scheduler plus a process table and registry.
///
/// Dropping it (or [`Node::shutdown`]) stops every process.
#[derive(Debug)]
pub struct Node {
    inner: Arc<NodeInner>,
    rt: Option<rusm_sched::Runtime>,
}

impl Node {
    /// A node on a new runtime with one worker per core.
    ///
    /// # Errors
    ///
    /// The runtime could not start (see [`rusm_sched::Builder::build`]).
    pub fn new() -> std::io::Result<Node> {
        Ok(Node::with_runtime(rusm_sched::Runtime::new()?))
    }

    /// A node on the given runtime (which it owns from now on).
    pub fn with_runtime(rt: rusm_sched::Runtime) -> Node {
        Node {
            inner: NodeInner::new(rt.handle().clone()),
            rt: Some(rt),
        }
    }

    /// Spawns a process.
    ///
    /// # Errors
    ///
    /// [`SpawnError::Sched`] if the scheduler refuses.
    pub fn spawn(&self, f: impl FnOnce() + Send + 'static) -> Result<Pid, SpawnError> {
        spawn_in(&self.inner, None, SpawnOpts::default(), f).map(|s| s.pid)
    }

    /// Spawns a process with options (`link`/`monitor` need a calling process and are
    /// ignored here).
    ///
    /// # Errors
    ///
    /// [`SpawnError::Sched`] if the scheduler refuses.
    pub fn spawn_opt(
        &self,
        opts: SpawnOpts,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<Pid, SpawnError> {
        spawn_in(&self.inner, None, opts, f).map(|s| s.pid)
    }

    /// Starts a supervisor (not linked to anything; see [`supervisor::start_link`] for a
    /// supervision tree) and returns once its children have started.
    ///
    /// # Errors
    ///
    /// As [`supervisor::start`].
    pub fn start_supervisor(&self, spec: supervisor::SupervisorSpec) -> Result<Pid, StartError> {
        match self.run(move || supervisor::start(spec)) {
            Ok(r) => r,
            Err(reason) => Err(StartError::Init(reason)),
        }
    }

    /// Spawns a process whose body is a future (how the Wasm host runs guests): it ends
    /// with the reason the future returns. The body receives with [`poll_receive`]; an exit
    /// signal that kills it takes effect at its next poll, and the future is dropped.
    /// `kind` is what [`info`] reports.
    ///
    /// # Errors
    ///
    /// [`SpawnError::Sched`] if the scheduler refuses.
    pub fn spawn_future(
        &self,
        kind: &'static str,
        opts: SpawnOpts,
        fut: impl Future<Output = ExitReason> + Send + 'static,
    ) -> Result<Pid, SpawnError> {
        spawn_future_in(&self.inner, None, kind, opts, fut).map(|s| s.pid)
    }

    /// Runs `f` as a process and waits for its result (blocking this thread). Useful at
    /// the edge between plain threads and processes.
    ///
    /// # Errors
    ///
    /// The process exit reason if it did not return normally.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ExitReason> {
        let (tx, rx) = std::sync::mpsc::channel();
        let pid = self
            .spawn(move || {
                let _ = tx.send(f());
            })
            .map_err(|e| ExitReason::Crashed(e.to_string()))?;
        match rx.recv() {
            Ok(v) => Ok(v),
            Err(_) => Err(self.wait_exit(pid).unwrap_or(ExitReason::NoProc)),
        }
    }

    /// Waits until `pid` exits and returns its exit reason: `Some(NoProc)` if it was
    /// already dead when called (as a monitor would report), `None` if `timeout` passes.
    pub fn await_exit(&self, pid: Pid, timeout: Duration) -> Option<ExitReason> {
        let (tx, rx) = std::sync::mpsc::channel();
        let watcher = self.spawn(move || {
            let r = monitor(pid);
            loop {
                if let Received::Down { monitor, reason, .. } = receive()
                    && monitor == r {
                        let _ = tx.send(reason);
                        return;
                    }
            }
        });
        let out = rx.recv_timeout(timeout).ok();
        if out.is_none()
            && let Ok(w) = watcher {
                self.exit(w, ExitReason::Kill);
            }
        out
    }

    fn wait_exit(&self, pid: Pid) -> Option<ExitReason> {
        self.await_exit(pid, Duration::from_secs(3600))
    }

    /// Sends a message (a no-op if `to` is dead).
    pub fn send(&self, to: Pid, msg: impl Into<Message>) {
        let _ = self.inner.deliver(to, msg.into(), false);
    }

    /// Sends an exit signal from outside any process, with [`exit`]'s rules (as if from
    /// `to` itself for `normal`, which therefore ends it).
    pub fn exit(&self, to: Pid, reason: ExitReason) {
        if let Some(p) = self.inner.get(to) {
            deliver_exit(&p, to, reason, Via::Exit2);
        }
    }

    /// The pid registered under `name`.
    pub fn whereis(&self, name: &str) -> Option<Pid> {
        self.inner.whereis(name)
    }

    /// Is `pid` alive?
    pub fn is_alive(&self, pid: Pid) -> bool {
        self.inner.get(pid).is_some()
    }

    /// Every live process.
    pub fn processes(&self) -> Vec<Pid> {
        self.inner.pids()
    }

    /// A snapshot of a process.
    pub fn info(&self, pid: Pid) -> Option<ProcessInfo> {
        info_in(&self.inner, pid)
    }

    /// The scheduler handle.
    pub fn handle(&self) -> &rusm_sched::Handle {
        &self.inner.handle
    }

    /// Stops every process: each gets exit signal `shutdown` (untrappable here, as when the
    /// node goes down); then the scheduler shuts down, unwinding any process still parked.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for pid in self.inner.pids() {
            if let Some(p) = self.inner.get(pid) {
                let w = {
                    let mut st = p.state.lock();
                    // The node going down decides, whatever signal came first.
                    st.pending_exit = None;
                    p.mark(&mut st, ExitReason::Shutdown);
                    st.waker.take()
                };
                if let Some(w) = w {
                    w.wake();
                }
            }
        }
        let end = Instant::now() + Duration::from_secs(5);
        while !self.inner.pids().is_empty() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(1));
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.rt.is_some() {
            self.stop();
        }
    }
}

/// The calling process; `None` outside a process.
fn current() -> Option<Arc<Process>> {
    rusm_sched::task_data::<Process>()
}

fn me() -> Arc<Process> {
    current().expect("called outside a rusm process")
}

/// Runs `f` on the calling process without cloning its `Arc` (the hot paths). `f` must not
/// park.
fn with_me<R>(f: impl FnOnce(&Process) -> R) -> R {
    rusm_sched::with_task_data::<Process, R>(f).expect("called outside a rusm process")
}

/// Allocates the process and sets up the atomic link/monitor with the parent.
fn prepare(
    node: &Arc<NodeInner>,
    parent: Option<&Arc<Process>>,
    kind: &'static str,
    opts: SpawnOpts,
) -> (Arc<Process>, Spawned) {
    let cold = (opts.label.is_some() || opts.timer_limit.is_some()).then(|| {
        Box::new(process::Cold {
            label: opts.label,
            timer_limit: opts.timer_limit,
            ..process::Cold::default()
        })
    });
    let init = State {
        trap_exit: opts.trap_exit,
        cold,
        capacity: opts.mailbox_capacity,
        byte_capacity: opts.mailbox_bytes,
        overflow: opts.overflow,
        peak: opts.track_mailbox.then_some(0),
        ..State::default()
    };
    let realm = opts.realm.or(parent.map(|p| p.realm)).unwrap_or(Realm::ROOT);
    let p = node.insert(kind, realm, init);
    let mut monitor_ref = None;
    if let Some(parent) = parent {
        let mut ps = parent.state.lock();
        let mut cs = p.state.lock();
        if opts.link {
            ps.cold().links.insert(p.pid);
            cs.cold().links.insert(parent.pid);
            // A spawn-linker already marked to exit takes the child with it before the
            // child runs (its link signal would, at the parent's exit): a linked spawn
            // bomb stops at its root instead of growing while the signal travels.
            if let Some(reason) = ps.pending_exit.clone().filter(|r| !r.is_normal())
                && !opts.trap_exit
            {
                p.mark(&mut cs, reason);
            }
        }
        if opts.monitor {
            let r = node.new_ref();
            ps.cold().monitoring.insert(r, p.pid);
            cs.cold().monitored_by.insert(r, parent.pid);
            monitor_ref = Some(r);
        }
    }
    let spawned = Spawned {
        pid: p.pid,
        monitor: monitor_ref,
    };
    (p, spawned)
}

/// The scheduler refused: remove the process quietly (the caller gets the error, not a
/// signal).
fn undo(
    p: &Arc<Process>,
    parent: Option<&Arc<Process>>,
    spawned: Spawned,
    e: rusm_sched::SpawnError,
) -> SpawnError {
    if let Some(parent) = parent {
        let mut ps = parent.state.lock();
        if let Some(c) = ps.cold_mut() {
            c.links.remove(&p.pid);
            if let Some(r) = spawned.monitor {
                c.monitoring.remove(&r);
            }
        }
    }
    {
        let mut cs = p.state.lock();
        if let Some(c) = cs.cold_mut() {
            c.links.clear();
            c.monitored_by.clear();
        }
    }
    p.exit(ExitReason::NoProc);
    SpawnError::Sched(e)
}

fn spawn_in(
    node: &Arc<NodeInner>,
    parent: Option<&Arc<Process>>,
    opts: SpawnOpts,
    f: impl FnOnce() + Send + 'static,
) -> Result<Spawned, SpawnError> {
    let (p, spawned) = prepare(node, parent, "native", opts);
    let proc2 = p.clone();
    let body = move || {
        let r = catch_unwind(AssertUnwindSafe(|| {
            proc2.check_exit();
            f();
        }));
        let reason = match r {
            Ok(()) => ExitReason::Normal,
            Err(payload) => match payload.downcast::<ExitUnwind>() {
                Ok(e) => e.reason,
                Err(_) if rusm_sched::is_cancelling() => ExitReason::Shutdown,
                Err(payload) => ExitReason::Crashed(rusm_sched::panic_message(&*payload)),
            },
        };
        proc2.exit(reason);
    };
    match node.handle.spawn_with_data(p.clone(), body) {
        Ok(_detached) => Ok(spawned),
        Err(e) => Err(undo(&p, parent, spawned, e)),
    }
}

/// Wraps a future body: exits the process when the future ends, or earlier when an exit
/// signal marks it (checked before every poll).
struct FutureProcess<F> {
    fut: Pin<Box<F>>,
    proc_: Arc<Process>,
}

impl<F: Future<Output = ExitReason>> Future for FutureProcess<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(reason) = self.proc_.take_pending_exit() {
            self.proc_.exit(reason);
            return Poll::Ready(());
        }
        match catch_unwind(AssertUnwindSafe(|| self.fut.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(reason)) => {
                // A signal that marked it meanwhile came first (as on the BEAM, where the
                // process dies of it before it would run on).
                let reason = self.proc_.take_pending_exit().unwrap_or(reason);
                self.proc_.exit(reason);
                Poll::Ready(())
            }
            Err(payload) => {
                let reason = match payload.downcast::<ExitUnwind>() {
                    Ok(e) => e.reason,
                    Err(p) => ExitReason::Crashed(rusm_sched::panic_message(&*p)),
                };
                self.proc_.exit(reason);
                Poll::Ready(())
            }
        }
    }
}

impl<F> Drop for FutureProcess<F> {
    fn drop(&mut self) {
        // Dropped without finishing: the runtime cancelled it at shutdown.
        self.proc_.exit(ExitReason::Shutdown);
    }
}

fn spawn_future_in(
    node: &Arc<NodeInner>,
    parent: Option<&Arc<Process>>,
    kind: &'static str,
    opts: SpawnOpts,
    fut: impl Future<Output = ExitReason> + Send + 'static,
) -> Result<Spawned, SpawnError> {
    let (p, spawned) = prepare(node, parent, kind, opts);
    let body = FutureProcess {
        fut: Box::pin(fut),
        proc_: p.clone(),
    };
    match node.handle.spawn_future_with_data(p.clone(), body) {
        Ok(_detached) => Ok(spawned),
        Err(e) => Err(undo(&p, parent, spawned, e)),
    }
}

/// Takes the next mailbox item (exit signals that kill are acted on first), or registers
/// the task's waker and returns `Pending`: the receive of future bodies.
///
/// # Panics
///
/// Outside a process.
pub fn poll_receive(cx: &mut Context<'_>) -> Poll<Received> {
    let p = me();
    let mut st = p.lock_checked();
    match st.take(0) {
        Some(item) => {
            st.reductions += 1;
            Poll::Ready(item)
        }
        None => {
            st.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

fn info_in(node: &NodeInner, pid: Pid) -> Option<ProcessInfo> {
    let p = node.get(pid)?;
    let st = p.state.lock();
    let cold = st.cold.as_deref();
    Some(ProcessInfo {
        pid,
        label: cold.and_then(|c| c.label.clone()),
        name: cold.and_then(|c| c.name.clone()),
        links: cold.map(|c| c.links.iter().copied().collect()).unwrap_or_default(),
        monitors: cold.map(|c| c.monitoring.values().copied().collect()).unwrap_or_default(),
        monitored_by: cold.map(|c| c.monitored_by.values().copied().collect()).unwrap_or_default(),
        trap_exit: st.trap_exit,
        mailbox_len: st.mailbox.len(),
        mailbox_peak: st.peak,
        mailbox_capacity: st.capacity,
        mailbox_bytes: st.byte_capacity.map(|_| st.bytes),
        realm: p.realm,
        mailbox_dropped: st.dropped,
        groups: cold.map(|c| c.groups.clone()).unwrap_or_default(),
        status: if st.pending_exit.is_some() {
            ProcessStatus::Exiting
        } else if try_self_pid() == Some(pid) {
            ProcessStatus::Running
        } else if st.waker.is_some() {
            ProcessStatus::Waiting
        } else {
            ProcessStatus::Runnable
        },
        reductions: st.reductions,
        kind: p.kind,
    })
}

/// The calling process's pid.
///
/// # Panics
///
/// Outside a process.
pub fn self_pid() -> Pid {
    me().pid
}

/// The calling process's pid, or `None` outside a process.
pub fn try_self_pid() -> Option<Pid> {
    current().map(|p| p.pid)
}

/// Spawns a process from inside one.
///
/// # Errors
///
/// [`SpawnError::NotInProcess`] outside a process; else as the scheduler.
pub fn spawn(f: impl FnOnce() + Send + 'static) -> Result<Pid, SpawnError> {
    spawn_opt(SpawnOpts::default(), f).map(|s| s.pid)
}

/// Spawns a process linked to the caller (atomically: the link exists before it runs).
///
/// # Errors
///
/// As [`spawn`].
pub fn spawn_link(f: impl FnOnce() + Send + 'static) -> Result<Pid, SpawnError> {
    let opts = SpawnOpts {
        link: true,
        ..SpawnOpts::default()
    };
    spawn_opt(opts, f).map(|s| s.pid)
}

/// Spawns a process monitored by the caller.
///
/// # Errors
///
/// As [`spawn`].
pub fn spawn_monitor(f: impl FnOnce() + Send + 'static) -> Result<(Pid, MonitorRef), SpawnError> {
    let opts = SpawnOpts {
        monitor: true,
        ..SpawnOpts::default()
    };
    spawn_opt(opts, f).map(|s| (s.pid, s.monitor.expect("monitor requested")))
}

/// Spawns with options.
///
/// # Errors
///
/// As [`spawn`].
pub fn spawn_opt(opts: SpawnOpts, f: impl FnOnce() + Send + 'static) -> Result<Spawned, SpawnError> {
    let parent = current().ok_or(SpawnError::NotInProcess)?;
    parent.check_exit();
    let node = parent.node.clone();
    spawn_in(&node, Some(&parent), opts, f)
}

/// Spawns a process whose body is a future from inside a process, with options: the link
/// or monitor to the caller exists before the child runs (how a Wasm guest spawns).
///
/// # Errors
///
/// [`SpawnError::NotInProcess`] outside a process; else as the scheduler.
pub fn spawn_future_opt(
    kind: &'static str,
    opts: SpawnOpts,
    fut: impl Future<Output = ExitReason> + Send + 'static,
) -> Result<Spawned, SpawnError> {
    let parent = current().ok_or(SpawnError::NotInProcess)?;
    parent.check_exit();
    let node = parent.node.clone();
    spawn_future_in(&node, Some(&parent), kind, opts, fut)
}

/// Where a poll-based selective receive ([`poll_receive_match`]) has got to: the items it
/// has offered and seen refused. Start each receive with a fresh one.
#[derive(Debug, Default, Clone)]
pub struct MatchScan {
    scanned: usize,
    evictions: u64,
}

/// Selective receive for future bodies: the first mailbox item `accept` takes, in arrival
/// order, or the task's waker is stored and `Pending` returned. Items `accept` refuses
/// stay in order and are not offered again by this `scan`. An exit signal that kills the
/// process unwinds it, as in [`receive`]. Call [`cancel_receive`] if the wait is given
/// up (a timeout).
///
/// # Panics
///
/// Outside a process.
pub fn poll_receive_match(
    cx: &mut Context<'_>,
    scan: &mut MatchScan,
    mut accept: impl FnMut(&Received) -> bool,
) -> Poll<Received> {
    let got = with_me(|p| {
        let mut st = p.lock_checked();
        if st.evictions != scan.evictions {
            scan.evictions = st.evictions;
            scan.scanned = 0;
        }
        if let Some(i) = st.mailbox.iter().skip(scan.scanned).position(&mut accept) {
            st.reductions += 1;
            return Some(st.take(scan.scanned + i).expect("index in range"));
        }
        scan.scanned = st.mailbox.len();
        st.waker = Some(cx.waker().clone());
        None
    });
    match got {
        Some(item) => Poll::Ready(item),
        None => Poll::Pending,
    }
}

/// Stores the task's waker as the process's own, so an exit signal (or a message) wakes
/// it: for a future body about to return `Pending` on something other than its mailbox
/// (a stream, a timer). The process then shows as waiting; [`cancel_receive`] when the
/// wait is over.
///
/// # Panics
///
/// Outside a process.
pub fn watch_signals(cx: &Context<'_>) {
    with_me(|p| {
        let mut st = p.state.lock();
        if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            st.waker = Some(cx.waker().clone());
        }
        // A signal that landed before the waker was stored: poll again now, and the body's
        // next poll acts on it (checked under the same lock, so none is missed).
        if st.pending_exit.is_some() {
            cx.waker().wake_by_ref();
        }
    });
}

/// Forgets the waker a pending [`poll_receive_match`] or [`watch_signals`] stored (the
/// wait timed out or is over).
///
/// # Panics
///
/// Outside a process.
pub fn cancel_receive() {
    with_me(|p| p.state.lock().waker = None);
}

/// Sends a message; a no-op if `to` is dead (Erlang).
///
/// # Panics
///
/// Outside a process (use [`Node::send`]).
pub fn send(to: Pid, msg: impl Into<Message>) {
    let msg = msg.into();
    with_me(|p| {
        p.check_exit();
        let _ = p.node.deliver(to, msg, false);
    });
    rusm_sched::coop::spend(1);
}

/// Sends unless `to` is dead or its bounded mailbox is full; the message comes back in
/// the error. Unlike [`send`], never applies the overflow policy.
///
/// # Errors
///
/// [`TrySendError::NoProc`], [`TrySendError::Full`].
///
/// # Panics
///
/// Outside a process.
pub fn try_send(to: Pid, msg: impl Into<Message>) -> Result<(), TrySendError> {
    let msg = msg.into();
    let r = with_me(|p| {
        p.check_exit();
        p.node.deliver(to, msg, true)
    });
    rusm_sched::coop::spend(1);
    r
}

/// Blocks the calling process (or, outside one, the thread) on `poll` until it is ready.
/// Inside a process an exit signal that kills it interrupts the wait: the process unwinds
/// as it would in [`receive`].
pub(crate) fn block_process<T>(mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>) -> T {
    let Some(p) = current().filter(|_| rusm_sched::in_fiber()) else {
        return rusm_sched::block_on(std::future::poll_fn(poll));
    };
    let waker = rusm_sched::current_waker().expect("a fiber runs inside a task");
    let mut cx = Context::from_waker(&waker);
    loop {
        // Signals wake this task too; a message arriving is a spurious wake-up here.
        p.lock_checked().waker = Some(waker.clone());
        if let Poll::Ready(v) = poll(&mut cx) {
            p.state.lock().waker = None;
            return v;
        }
        rusm_sched::park();
    }
}

/// Sends to a registered name. Returns `false` if no process has the name.
///
/// # Panics
///
/// Outside a process.
pub fn send_named(name: &str, msg: impl Into<Message>) -> bool {
    let p = me();
    match p.node.whereis(name) {
        Some(pid) => {
            send(pid, msg);
            true
        }
        None => false,
    }
}

/// Waits for the next mailbox item (signals turned into messages included).
///
/// # Panics
///
/// Outside a process.
pub fn receive() -> Received {
    receive_match(|_| true, None)
}

/// As [`receive`], returning [`Received::Timeout`] after `timeout`.
///
/// # Panics
///
/// Outside a process.
pub fn receive_timeout(timeout: Duration) -> Received {
    receive_match(|_| true, Some(timeout))
}

/// Selective receive: the first mailbox item `accept` takes, in arrival order; items it
/// skips stay in the mailbox in their order (Erlang's save queue). `None` waits for ever.
///
/// # Panics
///
/// Outside a process.
pub fn receive_match(mut accept: impl FnMut(&Received) -> bool, timeout: Option<Duration>) -> Received {
    let mut deadline = None;
    // Items before `scanned` were offered to `accept` already and refused; an eviction
    // (`Overflow::DropOldest`) shifts them, and the scan starts again.
    let mut scanned = 0;
    let mut evictions = 0;
    loop {
        // One lock per round: take a match, or store the waker and park. The process is
        // borrowed, not cloned, and the borrow ends before the park.
        let got = with_me(|p| {
            let mut st = p.lock_checked();
            if st.evictions != evictions {
                evictions = st.evictions;
                scanned = 0;
            }
            if let Some(i) = st.mailbox.iter().skip(scanned).position(&mut accept) {
                st.reductions += 1;
                return Some(st.take(scanned + i).expect("index in range"));
            }
            scanned = st.mailbox.len();
            if timeout != Some(Duration::ZERO) {
                st.waker = rusm_sched::current_waker();
            }
            None
        });
        if let Some(item) = got {
            rusm_sched::coop::spend(1);
            return item;
        }
        let Some(t) = timeout else {
            rusm_sched::park();
            continue;
        };
        let d = *deadline.get_or_insert_with(|| Instant::now() + t);
        let now = Instant::now();
        if now >= d {
            with_me(|p| p.state.lock().waker = None);
            return Received::Timeout;
        }
        rusm_sched::park_timeout(d - now);
    }
}

/// Exits now if an exit signal has marked this process (a scheduling point for bodies that
/// compute for long without receiving or sending).
///
/// # Panics
///
/// Outside a process.
pub fn check() {
    with_me(Process::check_exit);
    rusm_sched::coop::spend(1);
}

/// Why [`link`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// `pid` is not alive and the caller does not trap exits (Erlang's `link/1` raises
    /// the error `noproc`: an error the caller handles, not an exit signal).
    #[error("no such process")]
    NoProc,
}

/// Links the caller to `pid` (Erlang's `link/1`). Linking to oneself, or to a process
/// already linked, does nothing.
///
/// If `pid` is not alive: a caller that traps exits gets `Ok` and
/// `Received::Exit { from: pid, reason: NoProc }` in its mailbox; one that does not trap
/// exits gets `Err(LinkError::NoProc)` and goes on living.
///
/// A peer that exits at any moment after `link` found it alive sends its exit signal over
/// the new link; none is lost (`process.rs`, "Links and monitors against a concurrent
/// exit"). A peer already linked and found exiting sends its own exit signal, not
/// `noproc`.
///
/// # Errors
///
/// [`LinkError::NoProc`], as above.
///
/// # Panics
///
/// Outside a process.
pub fn link(pid: Pid) -> Result<(), LinkError> {
    let p = me();
    p.check_exit();
    if pid == p.pid {
        return Ok(());
    }
    if let Some(other) = p.node.get(pid) {
        // One step under both locks: a concurrent exit finds both ends or neither.
        let (mut mine, mut theirs) = process::lock_pair(&p, &other);
        if theirs.alive {
            mine.cold().links.insert(pid);
            theirs.cold().links.insert(p.pid);
            return Ok(());
        }
        drop(theirs);
        return link_noproc(&mut mine, pid);
    }
    link_noproc(&mut p.state.lock(), pid)
}

/// `link` found `pid` gone. If the link was already there, `pid`'s exit signal is on its
/// way over it (Erlang's `link/1` does nothing for an existing link); otherwise `noproc`.
fn link_noproc(st: &mut State, pid: Pid) -> Result<(), LinkError> {
    if st.cold_mut().is_some_and(|c| c.links.contains(&pid)) {
        return Ok(());
    }
    if st.trap_exit {
        st.enqueue(Received::Exit {
            from: pid,
            reason: ExitReason::NoProc,
        });
        Ok(())
    } else {
        Err(LinkError::NoProc)
    }
}

/// Removes the link between the caller and `pid` (both ends; no signal is sent). Once it
/// returns, the link has no effect on the caller: no exit signal over it arrives
/// afterwards, even from a peer that was exiting at that moment (`erlang:unlink/1`). An
/// `Exit` that arrived before the call stays in the mailbox.
///
/// # Panics
///
/// Outside a process.
pub fn unlink(pid: Pid) {
    let p = me();
    p.check_exit();
    if pid == p.pid {
        return;
    }
    // Both ends in one step. From here `deliver_exit` drops any link signal from `pid`,
    // whose end (if it is exiting) was already taken.
    match p.node.get(pid) {
        Some(other) => {
            let (mut mine, mut theirs) = process::lock_pair(&p, &other);
            if let Some(c) = mine.cold_mut() {
                c.links.remove(&pid);
            }
            if let Some(c) = theirs.cold_mut() {
                c.links.remove(&p.pid);
            }
        }
        None => {
            if let Some(c) = p.state.lock().cold_mut() {
                c.links.remove(&pid);
            }
        }
    }
}

/// Monitors `pid`: one [`Received::Down`] arrives when it ends, or at once with `noproc`
/// if it is already dead.
///
/// # Panics
///
/// Outside a process.
pub fn monitor(pid: Pid) -> MonitorRef {
    let p = me();
    let r = p.node.new_ref();
    // The watcher's entry first: a `Down` is delivered only while the watcher holds the
    // monitor (`Process::deliver_down`), so a target that exits once it has its entry
    // (added next, under its lock, if it is still alive) always finds ours.
    p.state.lock().cold().monitoring.insert(r, pid);
    if let Some(target) = p.node.get(pid) {
        let mut ts = target.state.lock();
        if ts.alive {
            ts.cold().monitored_by.insert(r, p.pid);
            return r;
        }
    }
    let mut st = p.state.lock();
    if let Some(c) = st.cold_mut() {
        c.monitoring.remove(&r);
    }
    st.enqueue(Received::Down {
        monitor: r,
        pid,
        reason: ExitReason::NoProc,
    });
    r
}

/// Removes a monitor; with `flush`, also drops its `Down` if one already arrived. After
/// `demonitor(m, true)` returns, no `Down` for `m` is in the mailbox or will arrive, even
/// if the target was exiting at that moment (Erlang's `demonitor(Ref, [flush])`).
/// Returns `true` if the monitor was still active.
///
/// # Panics
///
/// Outside a process.
pub fn demonitor(monitor: MonitorRef, flush: bool) -> bool {
    let p = me();
    // Removal and flush under one lock: a `Down` is enqueued only while the monitor is
    // held (`Process::deliver_down`), so none can land after this.
    let target = {
        let mut st = p.state.lock();
        let target = st.cold_mut().and_then(|c| c.monitoring.remove(&monitor));
        if flush {
            st.mailbox
                .retain(|r| !matches!(r, Received::Down { monitor: m, .. } if *m == monitor));
        }
        target
    };
    if let Some(t) = target.and_then(|t| p.node.get(t))
        && let Some(c) = t.state.lock().cold_mut()
    {
        c.monitored_by.remove(&monitor);
    }
    target.is_some()
}

/// Sets whether exit signals become [`Received::Exit`] messages; returns the old value.
///
/// # Panics
///
/// Outside a process.
pub fn trap_exit(on: bool) -> bool {
    std::mem::replace(&mut me().state.lock().trap_exit, on)
}

/// Sends an exit signal to `pid` (Erlang's `exit/2`): `kill` kills even a trapping
/// process (it ends `killed`: this is the only untrappable signal, and the only place
/// `kill` becomes `killed`); `normal` is ignored by a non-trapping process unless `pid` is
/// the caller; other reasons end a non-trapping process and reach a trapping one as a
/// message.
///
/// # Panics
///
/// Outside a process.
pub fn exit(pid: Pid, reason: ExitReason) {
    let p = me();
    if let Some(target) = p.node.get(pid) {
        deliver_exit(&target, p.pid, reason, Via::Exit2);
    }
    p.check_exit();
}

/// Ends the calling process now with `reason` (Erlang's `exit/1`): its links and monitors
/// see `reason` as it is. `exit_with(Kill)` sends `kill` over its links as an ordinary,
/// trappable reason (a non-trapping partner ends with `kill`), and monitors see `kill`.
///
/// # Panics
///
/// Outside a process.
pub fn exit_with(reason: ExitReason) -> ! {
    let _ = me();
    std::panic::resume_unwind(Box::new(ExitUnwind { reason, signal: false }))
}

/// `exit(pid, kill)`.
///
/// # Panics
///
/// Outside a process.
pub fn kill(pid: Pid) {
    exit(pid, ExitReason::Kill);
}

/// Registers `name` for `pid`.
///
/// # Errors
///
/// The name is taken, the process already has one, or it is dead.
///
/// # Panics
///
/// Outside a process.
pub fn register(name: &str, pid: Pid) -> Result<(), RegisterError> {
    me().node.register(name, pid)
}

/// Removes a registered name. `false` if it was not registered.
///
/// # Panics
///
/// Outside a process.
pub fn unregister(name: &str) -> bool {
    me().node.unregister(name)
}

/// The pid registered under `name`.
///
/// # Panics
///
/// Outside a process.
pub fn whereis(name: &str) -> Option<Pid> {
    me().node.whereis(name)
}

/// Is `pid` alive?
///
/// # Panics
///
/// Outside a process.
pub fn is_alive(pid: Pid) -> bool {
    me().node.get(pid).is_some()
}

/// Every live process.
///
/// # Panics
///
/// Outside a process.
pub fn processes() -> Vec<Pid> {
    me().node.pids()
}

/// A snapshot of a process.
///
/// # Panics
///
/// Outside a process.
pub fn info(pid: Pid) -> Option<ProcessInfo> {
    info_in(&me().node, pid)
}

/// Sets the calling process's label.
///
/// # Panics
///
/// Outside a process.
pub fn set_label(label: impl Into<String>) {
    me().state.lock().cold().label = Some(label.into());
}
