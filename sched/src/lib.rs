//! rusm-sched: RUSM's work-stealing scheduler of stackful fibers and futures, with its own
//! timers and mio reactor. No Tokio.
//!
//! Every native process body is a fiber: a closure on its own small stack, which can park
//! (wait for a message, sleep, do network I/O) from any depth of its call stack without
//! blocking the worker thread. Futures run on the same workers and are woken through the
//! same `Waker`s, which is how Wasm processes (futures driven by wasmtime) and native ones
//! share one scheduler.
//!
//! ```
//! use std::time::Duration;
//!
//! let rt = rusm_sched::Runtime::new().unwrap();
//! let h = rt.handle().spawn(|| {
//!     // Parks this fiber for 5 ms; the worker runs other fibers meanwhile.
//!     rusm_sched::sleep(Duration::from_millis(5));
//!     "done"
//! }).unwrap();
//! assert_eq!(h.join().unwrap(), "done");
//! ```
//!
//! # Parking and waking
//!
//! [`park`] suspends the running fiber until its task's [`Waker`] (from [`current_waker`])
//! is woken: the primitive that blocking structures such as mailboxes are built on. Like
//! `std::thread::park` it may return spuriously, and a wake that comes before the park is
//! not lost (the park then returns at once), so use it in a loop around a condition.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//!
//! let rt = rusm_sched::Runtime::new().unwrap();
//! let slot: Arc<Mutex<(Option<u32>, Option<std::task::Waker>)>> = Default::default();
//! let s = slot.clone();
//! let consumer = rt.handle().spawn(move || loop {
//!     {
//!         let mut g = s.lock().unwrap();
//!         if let Some(v) = g.0.take() {
//!             return v;
//!         }
//!         g.1 = Some(rusm_sched::current_waker().unwrap());
//!     } // the guard is dropped before parking (fiber rule: no guard across a park)
//!     rusm_sched::park();
//! }).unwrap();
//! let waker = {
//!     let mut g = slot.lock().unwrap();
//!     g.0 = Some(7);
//!     g.1.take()
//! };
//! if let Some(w) = waker { w.wake() }
//! assert_eq!(consumer.join().unwrap(), 7);
//! ```
//!
//! # Crate features
//!
//! None. Debug knobs are `--cfg` flags: `--cfg loom` runs the loom models of the task state
//! machine, the parker and the idle counters.

#![warn(missing_docs, missing_debug_implementations)]
#![doc(test(attr(deny(warnings))))]

pub mod coop;
mod counters;
mod fiber;
mod idle;
mod loom;
pub mod net;
mod park;
mod reactor;
mod runtime;
mod task;
mod timer;
mod worker;

#[cfg(test)]
mod tests;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

pub use counters::{RuntimeCounters, WorkerCounters};
pub use fiber::GuardMode;
pub use fiber::StackError;
pub use runtime::{Builder, Handle, Runtime};
pub use task::{JoinError, JoinHandle, TaskData, panic_message};
pub use timer::TimerKey;

/// Why a spawn failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// The runtime is shutting down or has shut down.
    #[error("the runtime is shut down")]
    Shutdown,
    /// Called outside a runtime (use a [`Handle`]).
    #[error("no rusm-sched runtime on this thread; spawn through a Handle")]
    NoRuntime,
    /// No fiber stack could be mapped.
    #[error(transparent)]
    Stack(#[from] StackError),
}

/// Spawns a native body on the current runtime (see [`Handle::spawn`]).
///
/// # Errors
///
/// [`SpawnError::NoRuntime`] outside a runtime, else as [`Handle::spawn`].
pub fn spawn<F, T>(f: F) -> Result<JoinHandle<T>, SpawnError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // Spawn through this worker's own runtime reference (no refcount traffic), then spend
    // the reduction, which may yield, once that borrow is over.
    let h = worker::with_current_runtime(|rt| rt.spawn_fiber(rt, None, f))
        .ok_or(SpawnError::NoRuntime)?;
    coop::spend(1);
    h
}

/// Spawns a future on the current runtime (see [`Handle::spawn_future`]).
///
/// # Errors
///
/// [`SpawnError::NoRuntime`] outside a runtime, else as [`Handle::spawn_future`].
pub fn spawn_future<F>(fut: F) -> Result<JoinHandle<F::Output>, SpawnError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Handle::try_current()
        .ok_or(SpawnError::NoRuntime)?
        .spawn_future(fut)
}

/// The data attached to the running task at spawn ([`Handle::spawn_with_data`]), if it is
/// a `D`. Works in fiber and future bodies, on whatever thread they run now.
pub fn task_data<D: std::any::Any + Send + Sync>() -> Option<Arc<D>> {
    let data = task::with_current_task(|t| t.data.clone())??;
    data.downcast::<D>().ok()
}

/// Runs `f` on a borrow of the running task's data, if it is a `D` (no reference-count
/// traffic, unlike [`task_data`]); `None` outside a task or for another type.
pub fn with_task_data<D: std::any::Any + Send + Sync, R>(f: impl FnOnce(&D) -> R) -> Option<R> {
    task::with_current_task(|t| t.data.as_deref().and_then(|d| d.downcast_ref::<D>()).map(f)).flatten()
}

/// Is this thread unwinding a task that the runtime cancelled at shutdown? Destructors and
/// exit handlers use it to skip work that needs a live runtime.
pub fn is_cancelling() -> bool {
    worker::cancelling()
}

/// Is the calling code running on a fiber?
pub fn in_fiber() -> bool {
    fiber::in_fiber()
}

/// The running task's waker (fiber or future body); `None` outside a task.
pub fn current_waker() -> Option<Waker> {
    task::current_task().map(Waker::from)
}

fn assert_not_in_future(what: &str) {
    assert!(
        !worker::in_future_body(),
        "rusm_sched::{what} would block a worker thread: it was called inside a future \
         body; await instead"
    );
}

/// Parks the running fiber until its waker is woken (see the crate docs). Outside the
/// runtime it parks the thread (`std::thread::park`).
///
/// # Panics
///
/// Panics inside a future body.
pub fn park() {
    if fiber::suspend() {
        return;
    }
    if worker::cancelling() {
        // A cancelled fiber's destructors are running at shutdown: it can never be woken
        // again, so return (park may return spuriously) rather than block the shutdown.
        return;
    }
    assert_not_in_future("park");
    std::thread::park();
}

/// As [`park`], but returns after `timeout` at the latest.
///
/// # Panics
///
/// Panics inside a future body.
pub fn park_timeout(timeout: Duration) {
    match task::current_task() {
        Some(task) if fiber::in_fiber() => {
            let shared = task.shared.clone();
            let (key, ms) = shared.timers.insert(
                timer::Timers::deadline_after(timeout),
                timer::TimerAction::Wake(Waker::from(task)),
            );
            shared.timer_inserted(ms);
            fiber::suspend();
            shared.timers.cancel(key);
        }
        _ => {
            assert_not_in_future("park_timeout");
            std::thread::park_timeout(timeout);
        }
    }
}

/// Lets other tasks run: the fiber goes to the back of its worker's queue. Outside a
/// fiber, yields the thread.
pub fn yield_now() {
    if fiber::in_fiber() {
        // RUNNING -> NOTIFIED: the worker requeues us at the back after we suspend.
        let _ = task::with_current_task(|t| t.state.wake());
        fiber::suspend();
    } else {
        std::thread::yield_now();
    }
}

/// Sleeps for `d`: parks the fiber on the runtime's timers (the thread outside the
/// runtime).
///
/// # Panics
///
/// Panics inside a future body (use [`Sleep`]).
pub fn sleep(d: Duration) {
    match Instant::now().checked_add(d) {
        Some(deadline) => sleep_until(deadline),
        // Beyond what `Instant` can represent: sleep for ever (until the fiber is
        // cancelled, or the thread parked for ever).
        None => loop {
            park();
            if worker::cancelling() {
                return;
            }
        },
    }
}

/// Sleeps until `deadline` (see [`sleep`]).
///
/// # Panics
///
/// Panics inside a future body (use [`Sleep`]).
pub fn sleep_until(deadline: Instant) {
    if fiber::in_fiber() {
        block_on(Sleep::until(deadline));
    } else {
        assert_not_in_future("sleep");
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
    }
}

/// A future that completes at a deadline, on the current runtime's timers.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let rt = rusm_sched::Runtime::new().unwrap();
/// let waited = rt.block_on(async {
///     let t0 = Instant::now();
///     rusm_sched::Sleep::new(Duration::from_millis(10)).await;
///     t0.elapsed()
/// });
/// assert!(waited >= Duration::from_millis(10));
/// ```
#[derive(Debug)]
pub struct Sleep {
    deadline: Instant,
    /// The registered timer and the waker it will wake.
    timer: Option<(Arc<worker::SharedRef>, TimerKey, Waker)>,
    /// Polled off any runtime: a helper thread sleeps for us (started once).
    fallback: bool,
}

impl Sleep {
    /// Completes `d` from now.
    pub fn new(d: Duration) -> Sleep {
        Sleep::until(timer::Timers::deadline_after(d))
    }

    /// Completes at `deadline`.
    pub fn until(deadline: Instant) -> Sleep {
        Sleep {
            deadline,
            timer: None,
            fallback: false,
        }
    }

    /// The deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            if let Some((shared, key, _)) = self.timer.take() {
                shared.timers.cancel(key);
            }
            return Poll::Ready(());
        }
        let shared = match self.timer.take() {
            Some((shared, key, waker)) => {
                if waker.will_wake(cx.waker()) && shared.timers.is_pending(key) {
                    self.timer = Some((shared, key, waker));
                    return Poll::Pending;
                }
                // Moved to another task, or the timer fired early (ms rounding): register
                // again with the current waker.
                shared.timers.cancel(key);
                shared
            }
            None => match worker::current_shared() {
                Some(s) => s,
                None => {
                    // Not on a runtime: one helper thread sleeps and wakes us.
                    if !self.fallback {
                        self.fallback = true;
                        let w = cx.waker().clone();
                        let d = self.deadline;
                        std::thread::spawn(move || {
                            std::thread::sleep(d.saturating_duration_since(Instant::now()));
                            w.wake();
                        });
                    }
                    return Poll::Pending;
                }
            },
        };
        let (key, ms) = shared
            .timers
            .insert(self.deadline, timer::TimerAction::Wake(cx.waker().clone()));
        shared.timer_inserted(ms);
        self.timer = Some((shared, key, cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((shared, key, _)) = self.timer.take() {
            shared.timers.cancel(key);
        }
    }
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future to completion on the calling fiber (parking the fiber while it is
/// pending) or, outside the runtime, on the calling thread (parking the thread).
///
/// # Panics
///
/// Panics inside a future body: await the future there instead.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    if fiber::in_fiber() {
        let waker = current_waker().expect("a fiber always runs inside a task");
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            fiber::suspend();
        }
    }
    assert_not_in_future("block_on");
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
