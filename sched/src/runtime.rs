//! The runtime: builder, owner ([`Runtime`]) and cloneable [`Handle`].

use std::future::Future;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::fiber::GuardMode;
use crate::task::JoinHandle;
use crate::worker::{self, Shared, SharedRef};
use crate::{RuntimeCounters, SpawnError};

/// Configures and builds a [`Runtime`].
///
/// # Examples
///
/// ```
/// use rusm_sched::{GuardMode, Runtime};
///
/// let rt = Runtime::builder()
///     .workers(2)
///     .stack_size(64 * 1024)
///     .guard_mode(GuardMode::Auto)
///     .build()
///     .unwrap();
/// assert_eq!(rt.handle().workers(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    workers: usize,
    stack_size: usize,
    stack_pool_size: usize,
    guard: GuardMode,
    thread_name: String,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            workers: thread::available_parallelism().map_or(1, |n| n.get()),
            stack_size: 128 * 1024,
            stack_pool_size: 1024,
            guard: GuardMode::Auto,
            thread_name: "rusm-worker".to_owned(),
        }
    }
}

impl Builder {
    /// Worker threads (default: one per core). Values below 1 are raised to 1.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Usable bytes of each fiber stack (default 128 KiB), rounded up to whole pages
    /// (0 is invalid). Pages are committed on first touch, so a fiber that uses 2 KiB of
    /// stack costs one page.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes;
        self
    }

    /// Idle stacks kept resident for reuse (default 1024). Stacks freed beyond this
    /// return their memory to the kernel.
    pub fn stack_pool_size(mut self, n: usize) -> Self {
        self.stack_pool_size = n;
        self
    }

    /// How fiber stacks are guarded against overflow (default [`GuardMode::Auto`]).
    pub fn guard_mode(mut self, mode: GuardMode) -> Self {
        self.guard = mode;
        self
    }

    /// Name prefix of the worker threads.
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = name.into();
        self
    }

    /// Starts the worker threads.
    ///
    /// # Errors
    ///
    /// Creating the reactor (`epoll`, `eventfd`) or a thread failed.
    ///
    /// # Panics
    ///
    /// Panics if `stack_size` is 0.
    pub fn build(self) -> std::io::Result<Runtime> {
        crate::fiber::overflow::install_handler();
        let (shared, locals) = Shared::new(
            self.workers,
            self.stack_size,
            self.guard,
            self.stack_pool_size,
        )?;
        let mut threads = Vec::with_capacity(self.workers);
        for (i, (local, parker)) in locals.into_iter().enumerate() {
            let s = shared.clone();
            let t = thread::Builder::new()
                .name(format!("{}-{i}", self.thread_name))
                .spawn(move || worker::run_worker(s, i, local, parker));
            match t {
                Ok(t) => threads.push(t),
                Err(e) => {
                    shared.begin_shutdown();
                    for t in threads {
                        let _ = t.join();
                    }
                    shared.cancel_all();
                    return Err(e);
                }
            }
        }
        Ok(Runtime {
            handle: Handle {
                shared: Arc::new(SharedRef(shared)),
            },
            threads: Mutex::new(threads),
        })
    }
}

/// A running scheduler: worker threads, timers and a reactor.
///
/// Dropping it shuts it down (see [`Runtime::shutdown`]).
///
/// # Examples
///
/// ```
/// let rt = rusm_sched::Runtime::new().unwrap();
/// let sum = rt.block_on(async {
///     let hs: Vec<_> = (0..10u64)
///         .map(|i| rusm_sched::spawn(move || i * i).unwrap())
///         .collect();
///     let mut sum = 0;
///     for h in hs {
///         sum += h.await.unwrap();
///     }
///     sum
/// });
/// assert_eq!(sum, 285);
/// ```
#[derive(Debug)]
pub struct Runtime {
    handle: Handle,
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
}

impl Runtime {
    /// A runtime with default settings ([`Builder`]).
    ///
    /// # Errors
    ///
    /// As [`Builder::build`].
    pub fn new() -> std::io::Result<Runtime> {
        Builder::default().build()
    }

    /// A [`Builder`].
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A cloneable handle for spawning.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs a future to completion on the runtime and blocks this thread for its output.
    ///
    /// # Panics
    ///
    /// Resumes the future's panic; panics if the runtime was shut down.
    pub fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.block_on(fut)
    }

    /// Shuts down: stops the workers at their next scheduling point, joins them, and
    /// cancels every task left (parked fibers are unwound, running their destructors;
    /// their join handles report [`JoinError::Cancelled`](crate::JoinError::Cancelled)).
    /// A body that runs without ever reaching a scheduling point delays this until it does.
    pub fn shutdown(self) {
        self.shutdown_inner(None);
    }

    /// As [`Runtime::shutdown`], but gives up waiting for the workers after `timeout`.
    /// Returns `false` if some worker had not stopped (its thread is left running and the
    /// tasks it holds are leaked).
    pub fn shutdown_timeout(self, timeout: Duration) -> bool {
        self.shutdown_inner(Some(timeout))
    }

    fn shutdown_inner(&self, timeout: Option<Duration>) -> bool {
        let shared = &self.handle.shared;
        shared.begin_shutdown();
        let threads = std::mem::take(&mut *self.threads.lock());
        if threads.is_empty() {
            return true;
        }
        let me = thread::current().id();
        if threads.iter().any(|t| t.thread().id() == me) {
            // Shut down from one of its own workers: this thread cannot join itself. A reaper
            // thread joins every worker (this one ends its loop once the current task
            // returns) and then cancels what is left, so no joiner hangs.
            let handle = self.handle.clone();
            let reaper = thread::Builder::new()
                .name("rusm-reaper".to_owned())
                .spawn(move || {
                    for t in threads {
                        let _ = t.join();
                    }
                    handle.shared.cancel_all();
                });
            return reaper.is_ok();
        }
        let deadline = timeout.map(crate::timer::Timers::deadline_after);
        let mut all = true;
        for t in threads {
            match deadline {
                None => {
                    let _ = t.join();
                }
                Some(d) => {
                    while !t.is_finished() && Instant::now() < d {
                        thread::sleep(Duration::from_millis(1));
                    }
                    if t.is_finished() {
                        let _ = t.join();
                    } else {
                        all = false;
                    }
                }
            }
        }
        if all {
            shared.cancel_all();
        }
        all
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown_inner(None);
    }
}

/// A cloneable reference to a runtime, for spawning from anywhere.
#[derive(Debug, Clone)]
pub struct Handle {
    pub(crate) shared: Arc<SharedRef>,
}

impl Handle {
    /// The runtime of the current worker thread (fiber or future body).
    ///
    /// # Panics
    ///
    /// Panics outside a runtime; see [`Handle::try_current`].
    pub fn current() -> Handle {
        Handle::try_current().expect("Handle::current called outside a rusm-sched runtime")
    }

    /// The runtime of the current worker thread, if any.
    pub fn try_current() -> Option<Handle> {
        worker::current_shared().map(|shared| Handle { shared })
    }

    /// Spawns a native body on its own fiber.
    ///
    /// The body may park (receive, sleep, I/O): that suspends its fiber, not the thread.
    /// Rule for bodies (the fiber `Send` invariant): hold no `!Send` value (`Rc`, a
    /// `RefCell` or `Mutex` guard) and no `thread_local!` reference across a call that can
    /// park, since the fiber may resume on another worker thread.
    ///
    /// # Errors
    ///
    /// [`SpawnError::Shutdown`] after shutdown began; [`SpawnError::Stack`] if no stack
    /// could be mapped (the message names `vm.max_map_count`).
    pub fn spawn<F, T>(&self, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let h = self.shared.spawn_fiber(&self.shared, None, f);
        crate::coop::spend(1);
        h
    }

    /// As [`Handle::spawn`], with `data` attached to the task: the body (and anything it
    /// calls) reaches it with [`task_data`](crate::task_data). The layer above keeps its
    /// per-process state this way, since a fiber may resume on any thread.
    ///
    /// # Errors
    ///
    /// As [`Handle::spawn`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// let rt = rusm_sched::Runtime::new().unwrap();
    /// let h = rt
    ///     .handle()
    ///     .spawn_with_data(Arc::new(String::from("proc-7")), || {
    ///         rusm_sched::task_data::<String>().unwrap().len()
    ///     })
    ///     .unwrap();
    /// assert_eq!(h.join().unwrap(), 6);
    /// ```
    pub fn spawn_with_data<F, T>(
        &self,
        data: crate::TaskData,
        f: F,
    ) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let h = self.shared.spawn_fiber(&self.shared, Some(data), f);
        crate::coop::spend(1);
        h
    }

    /// As [`Handle::spawn_future`], with `data` attached (see [`Handle::spawn_with_data`]).
    ///
    /// # Errors
    ///
    /// As [`Handle::spawn_future`].
    pub fn spawn_future_with_data<F>(
        &self,
        data: crate::TaskData,
        fut: F,
    ) -> Result<JoinHandle<F::Output>, SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.shared.spawn_future(&self.shared, Some(data), fut)
    }

    /// Spawns a future, polled by the workers with a waker that reschedules it.
    ///
    /// # Errors
    ///
    /// [`SpawnError::Shutdown`] after shutdown began.
    pub fn spawn_future<F>(&self, fut: F) -> Result<JoinHandle<F::Output>, SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.shared.spawn_future(&self.shared, None, fut)
    }

    /// Runs a future on the runtime and waits for its output (parking the fiber when
    /// called from one, blocking the thread otherwise).
    ///
    /// # Panics
    ///
    /// Resumes the future's panic; panics if the runtime was shut down, or if called inside
    /// a future body (await there instead).
    pub fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let h = self
            .spawn_future(fut)
            .expect("block_on on a runtime that is shut down");
        match h.join() {
            Ok(v) => v,
            Err(crate::JoinError::Panicked(p)) => std::panic::resume_unwind(p),
            Err(crate::JoinError::Cancelled) => panic!("block_on: the runtime shut down"),
        }
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.shared.workers()
    }

    /// Usable bytes per fiber stack.
    pub fn stack_size(&self) -> usize {
        self.shared.stack_size()
    }

    /// A snapshot of the runtime's counters.
    pub fn counters(&self) -> RuntimeCounters {
        self.shared.counters_snapshot()
    }

    /// Pending timers (sleeps, timeouts, `call_after`s).
    pub fn pending_timers(&self) -> usize {
        self.shared.timers.len()
    }

    /// Runs `f` on a worker once `delay` has passed, unless cancelled first. `f` should be
    /// short (it runs on the worker that fires the timer); spawn for real work.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    ///
    /// let rt = rusm_sched::Runtime::new().unwrap();
    /// let (tx, rx) = mpsc::channel();
    /// let t = rt.handle().call_after(Duration::from_millis(5), move || tx.send(1).unwrap());
    /// assert_eq!(rx.recv().unwrap(), 1);
    /// assert!(!rt.handle().cancel_timer(t)); // already fired
    /// ```
    pub fn call_after(&self, delay: Duration, f: impl FnOnce() + Send + 'static) -> crate::TimerKey {
        let (key, ms) = self
            .shared
            .timers
            .insert(crate::timer::Timers::deadline_after(delay), crate::timer::TimerAction::Call(Box::new(f)));
        self.shared.timer_inserted(ms);
        key
    }

    /// Cancels a timer from [`Handle::call_after`]. Returns `true` if it had not fired.
    pub fn cancel_timer(&self, key: crate::TimerKey) -> bool {
        self.shared.timers.cancel(key)
    }
}
