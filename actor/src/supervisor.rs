//! Supervisors, as OTP 25's `supervisor` behaviour defines them.
//!
//! A supervisor is a process that traps exits, starts its children in order (each linked
//! to it), and when a child exits decides by the child's [`Restart`] type whether to
//! restart, and by its [`Strategy`] which children to restart with it. More than
//! `intensity` restarts within `period` and the supervisor gives up: it stops every child
//! (in reverse start order) and exits with `shutdown`, so its own supervisor decides. An
//! exit signal from its parent stops the children the same way and ends the supervisor with
//! the parent's reason.
//!
//! # Rules (OTP's `supervisor(3)` and `supervisor.erl`)
//!
//! | event | what the supervisor does |
//! |---|---|
//! | start | starts the children in order; [`start_link`] returns after all have started. A child that fails to start makes it stop the ones already started (reverse order) and exit with `{shutdown,{failed_to_start_child,Id,Why}}`, and `start_link` returns that reason as [`StartError::Init`]. |
//! | a start answers [`Started::Ignore`] | the child is kept in the list, not running, and the supervisor goes on (a `temporary` child that answers it is dropped). |
//! | a `permanent` child exits | restarted, whatever the reason. |
//! | a `transient` child exits | restarted unless the reason is `normal`, `shutdown` or `{shutdown,Term}`; otherwise kept, not running. |
//! | a `temporary` child exits | never restarted, and its spec is deleted: [`which_children`] no longer lists it. |
//! | restart of a range (`one_for_all`: every child; `rest_for_one`: the child and the ones after it) | the others in the range are stopped in reverse order; `temporary` ones among them are deleted, not restarted; the rest start again in order. |
//! | a restart fails | the supervisor tries again (a message to itself, so requests and exits queued meanwhile are handled first), each try counted against the intensity, until it succeeds or the supervisor gives up with `shutdown` (OTP's `try_again_restart`). |
//! | more than `intensity` restarts in `period` | stops every child, exits `shutdown`. |
//! | its parent's exit signal | stops every child, exits with the parent's reason. |
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use rusm_otp::supervisor::{ChildSpec, Restart, Strategy, SupervisorSpec};
//!
//! let node = rusm_otp::Node::new().unwrap();
//! let sup = node
//!     .start_supervisor(SupervisorSpec::new(Strategy::OneForOne).child(ChildSpec::new(
//!         "worker",
//!         Restart::Permanent,
//!         || loop {
//!             let _ = rusm_otp::receive();
//!         },
//!     )))
//!     .unwrap();
//! let first = node.run(move || rusm_otp::supervisor::which_children(sup).unwrap()).unwrap();
//! let worker = first[0].1.unwrap();
//! node.exit(worker, rusm_otp::ExitReason::Other("crash".into()));
//! // The supervisor restarts it under a new pid.
//! let mut again = worker;
//! while again == worker {
//!     std::thread::sleep(Duration::from_millis(1));
//!     again = node.run(move || rusm_otp::supervisor::which_children(sup).unwrap()).unwrap()[0]
//!         .1
//!         .unwrap_or(worker);
//! }
//! ```

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::start::{Ack, start_sync};
use crate::{ExitReason, Message, Pid, Received, ReplyTo, SpawnOpts, StartError};

/// Which children restart when one exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Only the child that exited.
    OneForOne,
    /// Every child: the others are stopped (reverse order), then all start again in order.
    OneForAll,
    /// The child and every child started after it.
    RestForOne,
    /// One template child, started on demand with [`start_child`]; as `OneForOne`.
    SimpleOneForOne,
}

/// When a child is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Always.
    Permanent,
    /// Only after an abnormal exit (not `normal` or `shutdown`).
    Transient,
    /// Never.
    Temporary,
}

/// How a child is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Send `shutdown`, wait this long, then `kill`.
    Timeout(Duration),
    /// `kill` at once.
    BrutalKill,
    /// Send `shutdown` and wait for ever (for child supervisors).
    Infinity,
}

/// One child of a supervisor.
#[derive(Clone)]
pub struct ChildSpec {
    id: String,
    restart: Restart,
    shutdown: Shutdown,
    start: Start,
}

/// What a start function answers (OTP's `{ok, Pid}` or `ignore`; an `Err` is its
/// `{error, Reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// The child runs as this process (linked to the supervisor by the options given).
    Pid(Pid),
    /// Nothing was started; the child stays in the list, not running.
    Ignore,
}

/// How a child is started: a native body, or a start function (OTP's `start` MFA).
type StartFn = dyn Fn(SpawnOpts) -> Result<Started, String> + Send + Sync + 'static;

#[derive(Clone)]
enum Start {
    Body(Arc<dyn Fn() + Send + Sync + 'static>),
    With(Arc<StartFn>),
}

impl std::fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .finish()
    }
}

impl ChildSpec {
    /// A child running `body` (called again for each restart), stopped with a 5 s
    /// shutdown timeout (OTP's default for workers).
    pub fn new(id: impl Into<String>, restart: Restart, body: impl Fn() + Send + Sync + 'static) -> Self {
        ChildSpec {
            id: id.into(),
            restart,
            shutdown: Shutdown::Timeout(Duration::from_secs(5)),
            start: Start::Body(Arc::new(body)),
        }
    }

    /// A child started by `start`, called in the supervisor's process with the options
    /// the child must be spawned with (linked to the caller, labelled with the id): OTP's
    /// start function, for children that are not native bodies, such as Wasm guests
    /// (`rusm_wasm::Host::spawn_here`). An `Err` is a failed start (see the module docs).
    pub fn start_with(
        id: impl Into<String>,
        restart: Restart,
        start: impl Fn(SpawnOpts) -> Result<Pid, String> + Send + Sync + 'static,
    ) -> Self {
        Self::start_fn(id, restart, move |opts| start(opts).map(Started::Pid))
    }

    /// As [`start_with`](ChildSpec::start_with), for a start function that may also answer
    /// [`Started::Ignore`] (OTP's `ignore`).
    pub fn start_fn(
        id: impl Into<String>,
        restart: Restart,
        start: impl Fn(SpawnOpts) -> Result<Started, String> + Send + Sync + 'static,
    ) -> Self {
        ChildSpec {
            id: id.into(),
            restart,
            shutdown: Shutdown::Timeout(Duration::from_secs(5)),
            start: Start::With(Arc::new(start)),
        }
    }

    /// Sets how the child is stopped.
    pub fn shutdown(mut self, s: Shutdown) -> Self {
        self.shutdown = s;
        self
    }
}

/// What a supervisor reports as it goes (OTP's supervisor reports to the logger), to the
/// function given to [`SupervisorSpec::reporter`], called in the supervisor's process.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum SupervisorReport<'a> {
    /// A child ended, by itself or stopped by the supervisor (OTP's `child_terminated`
    /// and `shutdown_error` reports; also sent for a child stopped in order).
    ChildTerminated {
        /// Its id.
        id: &'a str,
        /// The process that ended.
        pid: Pid,
        /// Why.
        reason: &'a ExitReason,
    },
    /// More than `intensity` restarts within `period`: the supervisor stops its children
    /// and exits `shutdown` (OTP's `reached_max_restart_intensity`).
    MaxIntensity,
}

type Reporter = Arc<dyn Fn(&SupervisorReport<'_>) + Send + Sync + 'static>;

/// A supervisor's configuration.
#[derive(Clone)]
pub struct SupervisorSpec {
    strategy: Strategy,
    intensity: u32,
    period: Duration,
    children: Vec<ChildSpec>,
    reporter: Option<Reporter>,
}

impl std::fmt::Debug for SupervisorSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorSpec")
            .field("strategy", &self.strategy)
            .field("intensity", &self.intensity)
            .field("period", &self.period)
            .field("children", &self.children)
            .field("reporter", &self.reporter.is_some())
            .finish()
    }
}

impl SupervisorSpec {
    /// A supervisor with OTP's default intensity: 1 restart in 5 s.
    pub fn new(strategy: Strategy) -> Self {
        SupervisorSpec {
            strategy,
            intensity: 1,
            period: Duration::from_secs(5),
            children: Vec::new(),
            reporter: None,
        }
    }

    /// Calls `f` with each [`SupervisorReport`], in the supervisor's process (keep it
    /// short: send a message, write a log line).
    pub fn reporter(mut self, f: impl Fn(&SupervisorReport<'_>) + Send + Sync + 'static) -> Self {
        self.reporter = Some(Arc::new(f));
        self
    }

    /// At most `restarts` restarts within `period`.
    pub fn intensity(mut self, restarts: u32, period: Duration) -> Self {
        self.intensity = restarts;
        self.period = period;
        self
    }

    /// Adds a child (started in the order added). For `SimpleOneForOne`, the one child is
    /// the template and nothing starts until [`start_child`].
    pub fn child(mut self, c: ChildSpec) -> Self {
        self.children.push(c);
        self
    }
}

/// Requests a supervisor understands (from other processes, and from itself).
enum Request {
    WhichChildren(ReplyTo),
    StartChild(ReplyTo),
    /// A restart of the child with this key failed: try again.
    TryAgain(u64),
}

/// Replies, tagged with the alias of the request they answer.
struct Reply {
    alias: u64,
    body: ReplyBody,
}

enum ReplyBody {
    Children(Vec<(String, Option<Pid>)>),
    Started(Option<Pid>),
}

struct Child {
    spec: ChildSpec,
    /// Unique within the supervisor (ids are not, among `SimpleOneForOne` children).
    key: u64,
    pid: Option<Pid>,
}

struct Sup {
    strategy: Strategy,
    intensity: u32,
    period: Duration,
    /// In start order. For `SimpleOneForOne`, entry 0 is the template (never started).
    children: Vec<Child>,
    next_key: u64,
    restarts: VecDeque<Instant>,
    parent: Option<Pid>,
    reporter: Option<Reporter>,
}

/// The body of a supervisor process: start the children, acknowledge the start, serve.
fn run(spec: SupervisorSpec, parent: Option<Pid>, ack: Ack) {
    crate::trap_exit(true);
    let mut sup = Sup {
        strategy: spec.strategy,
        intensity: spec.intensity,
        period: spec.period,
        children: Vec::new(),
        next_key: 0,
        restarts: VecDeque::new(),
        parent,
        reporter: spec.reporter,
    };
    for spec in spec.children {
        sup.push(spec);
    }
    if sup.strategy != Strategy::SimpleOneForOne
        && let Err((i, why)) = sup.start_from(0)
    {
        let id = sup.children[i].spec.id.clone();
        sup.stop_all();
        crate::exit_with(ExitReason::ShutdownWith(format!("{{failed_to_start_child,{id},{why}}}")));
    }
    ack.ok();
    loop {
        match crate::receive() {
            Received::Exit { from, reason } => {
                if Some(from) == sup.parent {
                    sup.stop_all();
                    crate::exit_with(reason);
                }
                if let Some(i) = sup.children.iter().position(|c| c.pid == Some(from)) {
                    sup.report(&SupervisorReport::ChildTerminated { id: &sup.children[i].spec.id, pid: from, reason: &reason });
                    sup.child_exited(i, &reason);
                }
            }
            Received::Message(m) => sup.request(m),
            _ => {}
        }
    }
}

impl Sup {
    fn report(&self, r: &SupervisorReport<'_>) {
        if let Some(f) = &self.reporter {
            f(r);
        }
    }

    fn push(&mut self, spec: ChildSpec) -> usize {
        self.next_key += 1;
        self.children.push(Child {
            spec,
            key: self.next_key,
            pid: None,
        });
        self.children.len() - 1
    }

    fn position(&self, key: u64) -> Option<usize> {
        self.children.iter().position(|c| c.key == key)
    }

    /// Starts child `i`: `Ok(true)` if it runs, `Ok(false)` if its start answered
    /// `ignore`, `Err(why)` if it failed.
    fn start_one(&mut self, i: usize) -> Result<bool, String> {
        let opts = SpawnOpts {
            link: true,
            label: Some(self.children[i].spec.id.clone()),
            ..SpawnOpts::default()
        };
        let started = match &self.children[i].spec.start {
            Start::Body(body) => {
                let body = body.clone();
                crate::spawn_opt(opts, move || body())
                    .map(|s| Started::Pid(s.pid))
                    .map_err(|e| e.to_string())
            }
            Start::With(start) => start(opts),
        };
        match started {
            Ok(Started::Pid(pid)) => {
                self.children[i].pid = Some(pid);
                Ok(true)
            }
            Ok(Started::Ignore) => {
                self.children[i].pid = None;
                Ok(false)
            }
            Err(why) => {
                self.children[i].pid = None;
                Err(why)
            }
        }
    }

    /// Starts children `from..` in order (OTP's `start_children`): a `temporary` child
    /// that answers `ignore` is dropped. Stops at the first failure: `Err((index, why))`.
    fn start_from(&mut self, from: usize) -> Result<(), (usize, String)> {
        let mut i = from;
        while i < self.children.len() {
            match self.start_one(i) {
                Ok(false) if self.children[i].spec.restart == Restart::Temporary => {
                    self.children.remove(i);
                }
                Ok(_) => i += 1,
                Err(why) => return Err((i, why)),
            }
        }
        Ok(())
    }

    fn child_exited(&mut self, i: usize, reason: &ExitReason) {
        self.children[i].pid = None;
        let restart = match self.children[i].spec.restart {
            Restart::Permanent => true,
            Restart::Transient => !(reason.is_normal() || reason.is_shutdown()),
            Restart::Temporary => false,
        };
        if !restart {
            // OTP's del_child: a temporary child's spec is deleted, and so is a dynamic
            // child; any other stays in the list as not running.
            if self.children[i].spec.restart == Restart::Temporary || self.strategy == Strategy::SimpleOneForOne {
                self.children.remove(i);
            }
            return;
        }
        self.restart(self.children[i].key);
    }

    /// Counts a restart in the sliding window; past the intensity the supervisor stops
    /// every child and exits `shutdown`.
    fn add_restart(&mut self) {
        let now = Instant::now();
        self.restarts.push_back(now);
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.period)
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() as u32 > self.intensity {
            self.report(&SupervisorReport::MaxIntensity);
            self.stop_all();
            crate::exit_with(ExitReason::Shutdown);
        }
    }

    /// Restarts the child with `key` by the strategy (OTP's `restart/2`). A start that
    /// fails is tried again later, through a message to itself.
    fn restart(&mut self, key: u64) {
        self.add_restart();
        let Some(i) = self.position(key) else { return };
        let failed = match self.strategy {
            Strategy::OneForOne | Strategy::SimpleOneForOne => self.start_one(i).err().map(|_| key),
            Strategy::OneForAll => {
                self.stop_range(0);
                self.start_from(0).err().map(|(j, _)| self.children[j].key)
            }
            Strategy::RestForOne => {
                self.stop_range(i + 1);
                let from = self.position(key).expect("the restarted child is not temporary");
                self.start_from(from).err().map(|(j, _)| self.children[j].key)
            }
        };
        if let Some(key) = failed {
            crate::send(crate::self_pid(), Message::value(Request::TryAgain(key)));
        }
    }

    /// Stops the children `from..` in reverse order (OTP's `terminate_children`);
    /// `temporary` ones are deleted, as they are never restarted.
    fn stop_range(&mut self, from: usize) {
        for j in (from..self.children.len()).rev() {
            self.stop(j);
            if self.children[j].spec.restart == Restart::Temporary {
                self.children.remove(j);
            }
        }
    }

    /// Stops child `i` per its shutdown spec: unlink, monitor, `shutdown` (or `kill`), wait.
    fn stop(&mut self, i: usize) {
        let Some(pid) = self.children[i].pid.take() else {
            return;
        };
        crate::unlink(pid);
        let m = crate::monitor(pid);
        let down = |timeout: Option<Duration>| {
            crate::receive_match(
                |r| matches!(r, Received::Down { monitor, .. } if *monitor == m),
                timeout,
            )
        };
        let got = match self.children[i].spec.shutdown {
            Shutdown::BrutalKill => {
                crate::exit(pid, ExitReason::Kill);
                down(None)
            }
            Shutdown::Infinity => {
                crate::exit(pid, ExitReason::Shutdown);
                down(None)
            }
            Shutdown::Timeout(t) => {
                crate::exit(pid, ExitReason::Shutdown);
                match down(Some(t)) {
                    Received::Timeout => {
                        crate::exit(pid, ExitReason::Kill);
                        down(None)
                    }
                    d => d,
                }
            }
        };
        let mut reason = match got {
            Received::Down { reason, .. } => reason,
            _ => ExitReason::NoProc,
        };
        // An EXIT that arrived before the unlink is stale now (none can arrive after it);
        // it holds the real reason of a child that was already dead (the monitor's is
        // `noproc`).
        while let Received::Exit { reason: r, .. } =
            crate::receive_match(|r| matches!(r, Received::Exit { from, .. } if *from == pid), Some(Duration::ZERO))
        {
            reason = r;
        }
        self.report(&SupervisorReport::ChildTerminated { id: &self.children[i].spec.id, pid, reason: &reason });
    }

    fn stop_all(&mut self) {
        for j in (0..self.children.len()).rev() {
            self.stop(j);
        }
    }

    fn request(&mut self, m: Message) {
        let Ok(req) = m.downcast::<Request>() else {
            return;
        };
        match req {
            Request::WhichChildren(to) => {
                let skip = usize::from(self.strategy == Strategy::SimpleOneForOne);
                let list = self.children[skip..]
                    .iter()
                    .map(|c| (c.spec.id.clone(), c.pid))
                    .collect();
                reply(to, ReplyBody::Children(list));
            }
            Request::StartChild(to) => {
                let pid = match self.strategy {
                    Strategy::SimpleOneForOne if !self.children.is_empty() => {
                        let i = self.push(self.children[0].spec.clone());
                        match self.start_one(i) {
                            Ok(true) => self.children[i].pid,
                            // Ignored or failed: not kept (OTP's handle_start_child).
                            _ => {
                                self.children.remove(i);
                                None
                            }
                        }
                    }
                    _ => None,
                };
                reply(to, ReplyBody::Started(pid));
            }
            Request::TryAgain(key) => {
                if let Some(i) = self.position(key)
                    && self.children[i].pid.is_none()
                {
                    self.restart(key);
                }
            }
        }
    }
}

fn reply(to: ReplyTo, body: ReplyBody) {
    to.send(Message::value(Reply { alias: to.alias, body }));
}
/// Why a request to a supervisor failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The supervisor is not alive (or died before replying).
    #[error("the supervisor is not alive")]
    NoProc,
    /// It did not reply in time.
    #[error("the supervisor did not reply in time")]
    Timeout,
}

fn call(sup: Pid, req: fn(ReplyTo) -> Request) -> Result<ReplyBody, CallError> {
    let is_reply = |m: &Message, alias: u64| m.downcast_ref::<Reply>().is_some_and(|r| r.alias == alias);
    let make = |to: ReplyTo| Message::value(req(to));
    match crate::request(sup, make, is_reply, Duration::from_secs(5)) {
        crate::Answer::Reply(msg) => msg.downcast::<Reply>().map(|r| r.body).map_err(|_| CallError::NoProc),
        crate::Answer::Down(_) => Err(CallError::NoProc),
        crate::Answer::Timeout => Err(CallError::Timeout),
    }
}

/// The children of a supervisor, in start order: id and pid (`None` while not running).
/// A `temporary` child that has ended is no longer listed; for `SimpleOneForOne`, the
/// running dynamic children.
///
/// # Errors
///
/// The supervisor is dead or does not answer.
///
/// # Panics
///
/// Outside a process.
pub fn which_children(sup: Pid) -> Result<Vec<(String, Option<Pid>)>, CallError> {
    match call(sup, Request::WhichChildren)? {
        ReplyBody::Children(c) => Ok(c),
        ReplyBody::Started(_) => Err(CallError::NoProc),
    }
}

/// Starts a new instance of a `SimpleOneForOne` supervisor's template child. `Ok(None)` if
/// the supervisor has another strategy or the child could not start (or answered `ignore`).
///
/// # Errors
///
/// The supervisor is dead or does not answer.
///
/// # Panics
///
/// Outside a process.
pub fn start_child(sup: Pid) -> Result<Option<Pid>, CallError> {
    match call(sup, Request::StartChild)? {
        ReplyBody::Started(p) => Ok(p),
        ReplyBody::Children(_) => Err(CallError::NoProc),
    }
}

/// Starts a supervisor linked to the calling process (a supervision tree); returns once
/// every child has started.
///
/// # Errors
///
/// [`StartError::Spawn`] if the scheduler refuses; [`StartError::Init`] with
/// `{shutdown,{failed_to_start_child,Id,Why}}` if a child failed to start (the children
/// started before it were stopped). The supervisor's exit signal reaches the caller over
/// the link as well: a caller that does not trap exits ends with that reason (OTP 25).
///
/// # Panics
///
/// Outside a process.
pub fn start_link(spec: SupervisorSpec) -> Result<Pid, StartError> {
    let parent = crate::self_pid();
    start_sync(true, move |ack| run(spec, Some(parent), ack))
}

/// Starts a supervisor linked to nothing (it has no parent); returns once every child has
/// started.
///
/// # Errors
///
/// As [`start_link`] (there is no link, so the caller only gets the error).
///
/// # Panics
///
/// Outside a process.
pub fn start(spec: SupervisorSpec) -> Result<Pid, StartError> {
    start_sync(false, move |ack| run(spec, None, ack))
}
