//! Tasks: one process body behind an `Arc` header with an atomic state machine, and the
//! join handle that reports the body's result.
//!
//! # State
//!
//! | state       | meaning                                  | `wake()` does              |
//! |-------------|------------------------------------------|----------------------------|
//! | `IDLE`      | parked: in no queue, not running         | → `SCHEDULED`, push to a queue |
//! | `SCHEDULED` | in exactly one run queue                 | nothing                    |
//! | `RUNNING`   | a worker is resuming/polling it          | → `NOTIFIED`               |
//! | `NOTIFIED`  | running, and woken since it started      | nothing                    |
//! | `DONE`      | finished or cancelled; body dropped      | nothing                    |
//!
//! Transitions made by the worker that pops the task: `SCHEDULED → RUNNING` (start); after
//! the body suspends, `RUNNING → IDLE`, or `NOTIFIED → SCHEDULED` and the worker requeues
//! it; after it finishes, `→ DONE`.
//!
//! # Invariants
//!
//! * A wake while running is never lost: it leaves `NOTIFIED`, and the worker requeues.
//! * A task is never in two queues: only the `IDLE → SCHEDULED` and `NOTIFIED →
//!   SCHEDULED` transitions push, and each is made by exactly one thread (a CAS winner or
//!   the running worker).
//! * A finished task is never resumed: `DONE` is terminal and `start` refuses it.
//! * The body is only touched by the thread that won `SCHEDULED → RUNNING`, or by shutdown
//!   after every worker has stopped.

use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use parking_lot::Mutex;

use crate::fiber::{Fiber, Resumed};
use crate::fiber::TlsBorrow;
use crate::loom::sync::atomic::{AtomicU8, Ordering};
use crate::worker::{self, Schedule, SharedRef};

const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const RUNNING: u8 = 2;
const NOTIFIED: u8 = 3;
const DONE: u8 = 4;

/// The task state machine (see the module docs for the table).
#[derive(Debug)]
pub(crate) struct State(AtomicU8);

/// What the caller of [`State::wake`] must do.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum WakeAction {
    /// Push the task to a run queue: this thread made `IDLE → SCHEDULED`.
    Schedule,
    /// Nothing: it is queued, running (now notified) or done.
    None,
}

/// What the worker must do after a body suspended.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum AfterRun {
    /// Parked; someone will wake it.
    Idle,
    /// Woken while running: push it back to a run queue.
    Requeue,
}

impl State {
    pub(crate) fn new_scheduled() -> State {
        State(AtomicU8::new(SCHEDULED))
    }

    pub(crate) fn wake(&self) -> WakeAction {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            let next = match cur {
                IDLE => SCHEDULED,
                RUNNING => NOTIFIED,
                _ => return WakeAction::None,
            };
            // AcqRel: the waker publishes whatever it wrote before waking (a message, a
            // timer firing) to the thread that will run the task.
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if next == SCHEDULED => return WakeAction::Schedule,
                Ok(_) => return WakeAction::None,
                Err(actual) => cur = actual,
            }
        }
    }

    /// `SCHEDULED → RUNNING`. Returns `false` for a task that was cancelled while queued.
    pub(crate) fn start(&self) -> bool {
        match self
            .0
            .compare_exchange(SCHEDULED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(DONE) => false,
            Err(other) => panic!("task started in state {other}: queued twice"),
        }
    }

    /// After the body suspended: `RUNNING → IDLE`, or `NOTIFIED → SCHEDULED`.
    pub(crate) fn after_run(&self) -> AfterRun {
        match self
            .0
            .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => AfterRun::Idle,
            Err(NOTIFIED) => {
                self.0.store(SCHEDULED, Ordering::Release);
                AfterRun::Requeue
            }
            Err(other) => panic!("task suspended in state {other}"),
        }
    }

    /// Marks the task finished. Returns `false` if it already was.
    pub(crate) fn complete(&self) -> bool {
        self.0.swap(DONE, Ordering::AcqRel) != DONE
    }
}

/// Data attached to a task at spawn.
pub type TaskData = Arc<dyn Any + Send + Sync>;

/// A process body the scheduler runs without knowing what it is.
pub(crate) enum Body {
    /// A native body on its own stack.
    Fiber(Fiber),
    /// A future, polled with the task's waker.
    Future(Pin<Box<dyn Future<Output = ()> + Send + 'static>>),
}

/// A schedulable unit: a body plus its state.
pub(crate) struct Task {
    pub(crate) state: State,
    pub(crate) id: u64,
    /// Index in the runtime's owned-task table, for removal when the task ends.
    pub(crate) owned_slot: std::sync::atomic::AtomicUsize,
    /// The owned-task shard this task is registered in (fixed at spawn).
    pub(crate) owned_shard: usize,
    /// Data attached at spawn, reachable from the body ([`crate::task_data`]); the layer
    /// above keeps its per-process state here.
    pub(crate) data: Option<TaskData>,
    /// Only touched by the thread that won `SCHEDULED → RUNNING` (until it moves the state
    /// on), or by `cancel` when no worker can run the task (see `cancel`).
    body: UnsafeCell<Option<Body>>,
    /// The runtime, through the spawning worker's counted reference (see [`SharedRef`]).
    pub(crate) shared: Arc<SharedRef>,
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("state", &self.state)
            .finish()
    }
}

// SAFETY: every field but `body` is `Sync` by itself. `body` is an `UnsafeCell` reached only
// by (a) the one worker that won `SCHEDULED → RUNNING`, until it has left `RUNNING` (the
// state machine makes that thread unique: see the module invariants), or (b) `cancel`, which
// runs only when no worker can run the task: on a task never published to a queue, or at
// shutdown after every worker has stopped. So no two threads ever touch `body` at once, and
// its contents are `Send`, which is what moving them between those threads requires.
unsafe impl Sync for Task {}

thread_local! {
    /// The task running on this thread (its `Arc`'s pointer), or null. Set by `Task::run`
    /// for the duration of a resume or poll; the worker holds that `Arc` meanwhile.
    static CURRENT: Cell<*const Task> = const { Cell::new(std::ptr::null()) };
}

/// The task running on this thread (fiber or future), if any.
#[inline(never)]
pub(crate) fn current_task() -> Option<Arc<Task>> {
    let _b = TlsBorrow::new();
    let p = CURRENT.get();
    if p.is_null() {
        return None;
    }
    // SAFETY: a non-null `CURRENT` is `Arc::as_ptr` of the task `Task::run` is running on
    // this thread right now; `run` holds a live `Arc` to it (so the strong count is at least
    // one) until after it resets `CURRENT`. The code calling us runs inside that run (the
    // task's own fiber or poll), so incrementing the count and making a second `Arc` from the
    // pointer is sound.
    unsafe {
        Arc::increment_strong_count(p);
        Some(Arc::from_raw(p))
    }
}

/// Runs `f` on the task running on this thread, without touching its reference count.
#[inline(never)]
pub(crate) fn with_current_task<R>(f: impl FnOnce(&Task) -> R) -> Option<R> {
    let _b = TlsBorrow::new();
    let p = CURRENT.get();
    // SAFETY: as in `current_task`: the task is alive for the whole of this call.
    (!p.is_null()).then(|| f(unsafe { &*p }))
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        if self.state.wake() == WakeAction::Schedule {
            Task::schedule(self, Schedule::Wake);
        }
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.state.wake() == WakeAction::Schedule {
            Task::schedule(self.clone(), Schedule::Wake);
        }
    }
}

impl Task {
    pub(crate) fn new(
        id: u64,
        owned_shard: usize,
        data: Option<TaskData>,
        body: Body,
        shared: Arc<SharedRef>,
    ) -> Task {
        Task {
            state: State::new_scheduled(),
            id,
            owned_slot: std::sync::atomic::AtomicUsize::new(usize::MAX),
            owned_shard,
            data,
            body: UnsafeCell::new(Some(body)),
            shared,
        }
    }

    /// Queues a task this thread just made `SCHEDULED` (by a wake, a requeue or a spawn).
    pub(crate) fn schedule(task: Arc<Task>, how: Schedule) {
        // On one of the task's own workers the worker context keeps the runtime alive; from
        // anywhere else, hold our own reference while queueing (the queued task may run,
        // finish and drop its reference before `schedule_remote` returns).
        if let Some(task) = worker::try_schedule_local(task, how) {
            let shared = task.shared.clone();
            shared.schedule_remote(task);
        }
    }

    /// Runs the task once: resumes its fiber or polls its future. Called by the worker
    /// that popped it from a run queue.
    pub(crate) fn run(self: &Arc<Self>) {
        if !self.state.start() {
            return;
        }
        // SAFETY: we won `SCHEDULED → RUNNING`, so we are the only thread touching `body`
        // until we move the state on below (see `unsafe impl Sync for Task`).
        let body = unsafe { &mut *self.body.get() };
        let prev = CURRENT.replace(Arc::as_ptr(self));
        let finished = match body.as_mut() {
            None => true,
            Some(Body::Fiber(fiber)) => {
                let r = fiber.resume();
                match r {
                    Resumed::Suspended => false,
                    Resumed::Finished(res, stack) => {
                        worker::recycle_stack(&self.shared, stack);
                        // The body wrapper catches the body's panic and reports it through
                        // the join handle; an `Err` here can only come from a destructor
                        // panicking after that. The panic hook has printed it; the runtime
                        // goes on.
                        drop(res);
                        true
                    }
                }
            }
            Some(Body::Future(fut)) => {
                let waker = Waker::from(self.clone());
                let mut cx = Context::from_waker(&waker);
                let prev = worker::enter_future();
                let r = catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx)));
                worker::exit_future(prev);
                match r {
                    Ok(Poll::Pending) => false,
                    Ok(Poll::Ready(())) => true,
                    // `FutureBody` catches the body's panic; this is a panic from a
                    // destructor or a custom body. Printed by the hook; the runtime goes on.
                    Err(_) => true,
                }
            }
        };
        CURRENT.set(prev);
        if finished {
            let b = body.take();
            self.state.complete();
            drop(b);
            self.shared.task_finished(self);
        } else if self.state.after_run() == AfterRun::Requeue {
            Task::schedule(self.clone(), Schedule::Yield);
        }
    }

    /// Cancels a task that is not running: marks it done and drops its body, unwinding a
    /// suspended fiber. Used by shutdown once every worker has stopped.
    ///
    /// Only called where no worker can be running the task: on a task never published to
    /// a run queue (a failed spawn), or by shutdown after every worker thread has ended.
    pub(crate) fn cancel(self: &Arc<Self>) {
        // SAFETY: see the precondition above and `unsafe impl Sync for Task`: nobody else
        // touches `body` now.
        let body = unsafe { &mut *self.body.get() }.take();
        self.state.complete();
        let prev = CURRENT.replace(Arc::as_ptr(self));
        match body {
            Some(Body::Fiber(f)) => {
                let prev = worker::set_cancelling(true);
                let (_panic, stack) = f.cancel();
                worker::set_cancelling(prev);
                if let Some(stack) = stack {
                    worker::recycle_stack(&self.shared, stack);
                }
            }
            Some(Body::Future(f)) => {
                let prev = worker::set_cancelling(true);
                let _ = catch_unwind(AssertUnwindSafe(move || drop(f)));
                worker::set_cancelling(prev);
            }
            None => {}
        }
        CURRENT.set(prev);
    }
}

/// The text of a panic payload, if it is a string.
pub fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

/// Why a task produced no value.
pub enum JoinError {
    /// The body panicked; the payload is kept.
    Panicked(Box<dyn Any + Send + 'static>),
    /// The runtime shut down (or the task was cancelled) before the body finished.
    Cancelled,
}

impl JoinError {
    /// Did the body panic?
    pub fn is_panic(&self) -> bool {
        matches!(self, JoinError::Panicked(_))
    }

    /// Was the body cancelled before it finished?
    pub fn is_cancelled(&self) -> bool {
        matches!(self, JoinError::Cancelled)
    }

    /// The panic payload, if the body panicked.
    ///
    /// # Errors
    ///
    /// Returns `self` back if the task was cancelled instead.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self {
            JoinError::Panicked(p) => Ok(p),
            e => Err(e),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(p) => write!(f, "Panicked({:?})", panic_message(&**p)),
            JoinError::Cancelled => f.write_str("Cancelled"),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(p) => write!(f, "task panicked: {}", panic_message(&**p)),
            JoinError::Cancelled => f.write_str("task was cancelled"),
        }
    }
}

impl std::error::Error for JoinError {}

struct JoinInner<T> {
    result: Option<Result<T, JoinError>>,
    waiter: Option<Waker>,
    /// The result has been taken by the join handle.
    taken: bool,
}

/// Where a body leaves its result for its [`JoinHandle`].
pub(crate) struct JoinState<T> {
    inner: Mutex<JoinInner<T>>,
}

impl<T> JoinState<T> {
    pub(crate) fn new() -> Arc<JoinState<T>> {
        Arc::new(JoinState {
            inner: Mutex::new(JoinInner {
                result: None,
                waiter: None,
                taken: false,
            }),
        })
    }

    /// Stores the result (first one wins) and wakes the joiner.
    fn complete(&self, r: Result<T, JoinError>) {
        let waiter = {
            let mut g = self.inner.lock();
            if g.result.is_some() || g.taken {
                return;
            }
            g.result = Some(r);
            g.waiter.take()
        };
        if let Some(w) = waiter {
            w.wake();
        }
    }
}

/// The body side of a join state: reports `Cancelled` if dropped before completing.
pub(crate) struct Completer<T> {
    state: Option<Arc<JoinState<T>>>,
}

impl<T> Completer<T> {
    pub(crate) fn new(state: Arc<JoinState<T>>) -> Completer<T> {
        Completer { state: Some(state) }
    }

    pub(crate) fn complete(mut self, r: Result<T, JoinError>) {
        if let Some(s) = self.state.take() {
            s.complete(r);
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if let Some(s) = self.state.take() {
            s.complete(Err(JoinError::Cancelled));
        }
    }
}

/// Wraps a native body: runs it, catches its panic, reports through the join state.
pub(crate) fn fiber_body<F, T>(f: F, completer: Completer<T>) -> impl FnOnce() + Send + 'static
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    move || match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => completer.complete(Ok(v)),
        Err(p) => {
            if worker::cancelling() {
                // corosensei's forced unwind of a cancelled fiber: report the cancel and
                // return normally, which ends the forced unwind.
                completer.complete(Err(JoinError::Cancelled));
            } else {
                completer.complete(Err(JoinError::Panicked(p)));
            }
        }
    }
}

/// Wraps a future body: polls it, catches its panic, reports through the join state.
pub(crate) struct FutureBody<F: Future> {
    fut: F,
    completer: Option<Completer<F::Output>>,
}

impl<F: Future> FutureBody<F> {
    pub(crate) fn new(fut: F, completer: Completer<F::Output>) -> Self {
        FutureBody {
            fut,
            completer: Some(completer),
        }
    }
}

impl<F: Future> Future for FutureBody<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: structural pinning of `fut`: it is never moved out of `self` (no method
        // takes it by value, and `FutureBody` has no `Drop` impl that could move it), so a
        // pinned `FutureBody` keeps `fut` pinned. `completer` is not structurally pinned and
        // is only reached through the `&mut` below, which does not move `fut`.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above: `fut` is structurally pinned.
        let fut = unsafe { Pin::new_unchecked(&mut this.fut) };
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => {
                if let Some(c) = this.completer.take() {
                    c.complete(Ok(v));
                }
                Poll::Ready(())
            }
            Err(p) => {
                if let Some(c) = this.completer.take() {
                    c.complete(Err(JoinError::Panicked(p)));
                }
                Poll::Ready(())
            }
        }
    }
}

/// An owned permission to wait for a task's result.
///
/// Dropping it detaches the task: the task runs on. [`JoinHandle::join`] blocks (parking
/// the fiber inside the runtime, the thread outside it); the handle is also a `Future`.
///
/// # Examples
///
/// ```
/// let rt = rusm_sched::Runtime::new().unwrap();
/// let h = rt.handle().spawn(|| 6 * 7).unwrap();
/// assert_eq!(h.join().unwrap(), 42);
/// ```
pub struct JoinHandle<T> {
    state: Arc<JoinState<T>>,
    id: u64,
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("id", &self.id).finish()
    }
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(state: Arc<JoinState<T>>, id: u64) -> Self {
        JoinHandle { state, id }
    }

    /// The task's id (unique within its runtime).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Has the body finished (or been cancelled)?
    pub fn is_finished(&self) -> bool {
        self.state.inner.lock().result.is_some()
    }

    /// Waits for the body's result. Inside a fiber this parks the fiber; on any other
    /// thread it blocks the thread.
    ///
    /// # Errors
    ///
    /// [`JoinError::Panicked`] with the payload if the body panicked,
    /// [`JoinError::Cancelled`] if the runtime shut down first.
    ///
    /// # Panics
    ///
    /// Panics if called from inside a future body (await the handle there instead).
    pub fn join(self) -> Result<T, JoinError> {
        crate::block_on(self)
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut g = self.state.inner.lock();
        if let Some(r) = g.result.take() {
            g.taken = true;
            return Poll::Ready(r);
        }
        if g.taken {
            panic!("JoinHandle polled after completion");
        }
        match &g.waiter {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => g.waiter = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}
