//! Supervisors, as OTP's `supervisor` behaviour defines them.
//!
//! A supervisor is a process that traps exits, starts its children in order (each linked
//! to it), and when a child exits decides by the child's [`Restart`] type whether to
//! restart, and by its [`Strategy`] which children to restart with it. More than
//! `intensity` restarts within `period` and the supervisor gives up: it stops every child
//! (in reverse start order) and exits with `shutdown`, so its own supervisor decides. An
//! exit signal from its parent stops the children the same way and ends the supervisor with
//! the parent's reason.
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

use crate::{ExitReason, Message, Pid, Received, SpawnOpts};

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

/// How a child is started: a native body, or a start function (OTP's `start` MFA).
type StartFn = dyn Fn(SpawnOpts) -> Result<Pid, String> + Send + Sync + 'static;

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
    /// (`rusm_wasm::Host::spawn_here`). An `Err` counts as a failed start: the child is
    /// left not running, as when a native spawn fails.
    pub fn start_with(
        id: impl Into<String>,
        restart: Restart,
        start: impl Fn(SpawnOpts) -> Result<Pid, String> + Send + Sync + 'static,
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

/// A supervisor's configuration.
#[derive(Debug, Clone)]
pub struct SupervisorSpec {
    strategy: Strategy,
    intensity: u32,
    period: Duration,
    children: Vec<ChildSpec>,
}

impl SupervisorSpec {
    /// A supervisor with OTP's default intensity: 1 restart in 5 s.
    pub fn new(strategy: Strategy) -> Self {
        SupervisorSpec {
            strategy,
            intensity: 1,
            period: Duration::from_secs(5),
            children: Vec::new(),
        }
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

/// Requests a supervisor understands.
enum Request {
    WhichChildren(Pid),
    StartChild(Pid),
}

/// Replies.
enum Reply {
    Children(Vec<(String, Option<Pid>)>),
    Started(Option<Pid>),
}

struct Child {
    spec: ChildSpec,
    pid: Option<Pid>,
}

struct Sup {
    strategy: Strategy,
    intensity: u32,
    period: Duration,
    children: Vec<Child>,
    restarts: VecDeque<Instant>,
    parent: Option<Pid>,
}

/// The body of a supervisor process.
pub(crate) fn run(spec: SupervisorSpec, parent: Option<Pid>) {
    crate::trap_exit(true);
    let mut sup = Sup {
        strategy: spec.strategy,
        intensity: spec.intensity,
        period: spec.period,
        children: spec
            .children
            .into_iter()
            .map(|spec| Child { spec, pid: None })
            .collect(),
        restarts: VecDeque::new(),
        parent,
    };
    if sup.strategy != Strategy::SimpleOneForOne {
        for i in 0..sup.children.len() {
            sup.start(i);
        }
    }
    loop {
        match crate::receive() {
            Received::Exit { from, reason } => {
                if Some(from) == sup.parent {
                    sup.stop_all();
                    crate::exit_with(reason);
                }
                if let Some(i) = sup.children.iter().position(|c| c.pid == Some(from)) {
                    sup.child_exited(i, &reason);
                }
            }
            Received::Message(m) => sup.request(m),
            _ => {}
        }
    }
}

impl Sup {
    fn start(&mut self, i: usize) {
        let opts = SpawnOpts {
            link: true,
            label: Some(self.children[i].spec.id.clone()),
            ..SpawnOpts::default()
        };
        self.children[i].pid = match &self.children[i].spec.start {
            Start::Body(body) => {
                let body = body.clone();
                crate::spawn_opt(opts, move || body()).ok().map(|s| s.pid)
            }
            Start::With(start) => start(opts).ok(),
        };
    }

    fn child_exited(&mut self, i: usize, reason: &ExitReason) {
        self.children[i].pid = None;
        let restart = match self.children[i].spec.restart {
            Restart::Permanent => true,
            Restart::Transient => !matches!(reason, ExitReason::Normal | ExitReason::Shutdown),
            Restart::Temporary => false,
        };
        if !restart {
            // A dynamic child that will not restart is forgotten; a static one stays in
            // the list as not running.
            if self.strategy == Strategy::SimpleOneForOne {
                self.children.remove(i);
            }
            return;
        }
        // Intensity: count restarts in the sliding window.
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
            self.stop_all();
            crate::exit_with(ExitReason::Shutdown);
        }
        match self.strategy {
            Strategy::OneForOne | Strategy::SimpleOneForOne => self.start(i),
            Strategy::OneForAll => {
                for j in (0..self.children.len()).rev() {
                    self.stop(j);
                }
                for j in 0..self.children.len() {
                    self.start(j);
                }
            }
            Strategy::RestForOne => {
                for j in (i + 1..self.children.len()).rev() {
                    self.stop(j);
                }
                for j in i..self.children.len() {
                    self.start(j);
                }
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
        match self.children[i].spec.shutdown {
            Shutdown::BrutalKill => {
                crate::exit(pid, ExitReason::Kill);
                down(None);
            }
            Shutdown::Infinity => {
                crate::exit(pid, ExitReason::Shutdown);
                down(None);
            }
            Shutdown::Timeout(t) => {
                crate::exit(pid, ExitReason::Shutdown);
                if matches!(down(Some(t)), Received::Timeout) {
                    crate::exit(pid, ExitReason::Kill);
                    down(None);
                }
            }
        }
        // An EXIT from the child that was already queued before the unlink is stale now.
        while !matches!(
            crate::receive_match(
                |r| matches!(r, Received::Exit { from, .. } if *from == pid),
                Some(Duration::ZERO),
            ),
            Received::Timeout
        ) {}
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
            Request::WhichChildren(from) => {
                let list = self
                    .children
                    .iter()
                    .filter(|c| self.strategy != Strategy::SimpleOneForOne || c.pid.is_some())
                    .map(|c| (c.spec.id.clone(), c.pid))
                    .collect();
                crate::send(from, Message::value(Reply::Children(list)));
            }
            Request::StartChild(from) => {
                let pid = if self.strategy == Strategy::SimpleOneForOne {
                    self.children.first().map(|t| t.spec.clone()).and_then(|spec| {
                        self.children.push(Child { spec, pid: None });
                        let i = self.children.len() - 1;
                        self.start(i);
                        self.children[i].pid
                    })
                } else {
                    None
                };
                crate::send(from, Message::value(Reply::Started(pid)));
            }
        }
    }
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

fn call(sup: Pid, req: Request) -> Result<Reply, CallError> {
    let is_reply = |m: &Message| m.downcast_ref::<Reply>().is_some();
    match crate::request(sup, Message::value(req), is_reply, Duration::from_secs(5)) {
        crate::Answer::Reply(msg) => msg.downcast::<Reply>().map_err(|_| CallError::NoProc),
        crate::Answer::Down(_) => Err(CallError::NoProc),
        crate::Answer::Timeout => Err(CallError::Timeout),
    }
}

/// The children of a supervisor: id and pid (`None` while not running).
///
/// # Errors
///
/// The supervisor is dead or does not answer.
///
/// # Panics
///
/// Outside a process.
pub fn which_children(sup: Pid) -> Result<Vec<(String, Option<Pid>)>, CallError> {
    let me = crate::self_pid();
    match call(sup, Request::WhichChildren(me))? {
        Reply::Children(c) => Ok(c),
        Reply::Started(_) => Err(CallError::NoProc),
    }
}

/// Starts a new instance of a `SimpleOneForOne` supervisor's template child. `Ok(None)` if
/// the supervisor has another strategy or the child could not start.
///
/// # Errors
///
/// The supervisor is dead or does not answer.
///
/// # Panics
///
/// Outside a process.
pub fn start_child(sup: Pid) -> Result<Option<Pid>, CallError> {
    let me = crate::self_pid();
    match call(sup, Request::StartChild(me))? {
        Reply::Started(p) => Ok(p),
        Reply::Children(_) => Err(CallError::NoProc),
    }
}

/// Starts a supervisor linked to the calling process (a supervision tree).
///
/// # Errors
///
/// As [`crate::spawn`].
///
/// # Panics
///
/// Outside a process.
pub fn start_link(spec: SupervisorSpec) -> Result<Pid, crate::SpawnError> {
    let parent = crate::self_pid();
    crate::spawn_link(move || run(spec, Some(parent)))
}
