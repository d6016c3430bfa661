//! Workers: one thread per core, each with a FIFO run queue, a LIFO slot, and the right to
//! steal from the others; plus the runtime-wide [`Shared`] state they all see.
//!
//! # The scheduling loop
//!
//! ```text
//! loop {
//!     every TIMER_CHECK_INTERVAL ticks: fire due timers
//!     task = every GLOBAL_QUEUE_INTERVAL ticks: the injector first
//!            else LIFO slot (at most MAX_LIFO_POLLS in a row)
//!            else own queue, else a batch from the injector
//!     none? become "searching" (at most half the workers search at once) and steal half
//!           of a victim's queue, victims visited from a random start
//!     none? park: in the reactor if its lock is free (timeout = next timer), on the
//!           condvar otherwise
//! }
//! ```
//!
//! Wakes from a worker thread go to that worker's LIFO slot (the process just sent a
//! message runs next, for locality); spawns and yields go to the back of its queue; wakes
//! from other threads go to the injector. A push to a queue wakes one parked worker only
//! if nobody is searching (`idle.rs`).
//!
//! # Shutdown
//!
//! 1. `Runtime::shutdown` sets `shutdown`, closes the owned-task table (new spawns fail)
//!    and unparks every worker.
//! 2. Each worker leaves its loop at the next tick, dropping its queue's references (the
//!    tasks stay in the owned-task table), and its thread ends.
//! 3. The shutting-down thread joins the workers, then cancels every owned task (unwinding
//!    parked fibers, dropping futures) until none is left, then drops pending timers.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crossbeam_deque::{Injector, Steal, Stealer, Worker as Local};
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::counters::Counters;
use crate::fiber::{Fiber, FiberStack, GuardMode, StackPool, TlsBorrow};
use crate::idle::Idle;
use crate::park::{Parker, Unparker};
use crate::reactor::Reactor;
use crate::task::{Body, Completer, FutureBody, JoinHandle, JoinState, Task, TaskData, fiber_body};
use crate::timer::Timers;
use crate::{SpawnError, coop};

/// How often a worker takes from the injector before its own queue, for fairness. 61, as
/// tokio's `global_queue_interval` default: prime, so it does not beat with other periodic
/// work.
const GLOBAL_QUEUE_INTERVAL: u32 = 61;
/// Consecutive LIFO-slot runs before the slot's task goes to the back of the queue (tokio's
/// `MAX_LIFO_POLLS_PER_TICK`): two processes ping-ponging cannot starve the queue.
const MAX_LIFO_POLLS: u32 = 3;
/// How often a busy worker checks for due timers (an atomic load and a clock read, about
/// 25 ns here): every 31 tasks keeps that under 1 ns a task while a due timer waits at
/// most 31 task runs. Chosen, not measured against alternatives.
const TIMER_CHECK_INTERVAL: u32 = 31;
/// How often a busy worker polls the reactor without blocking, so I/O readiness is
/// collected under sustained load (otherwise only a worker about to sleep polls it). 61, as
/// tokio's `event_interval` default.
const EVENT_INTERVAL: u32 = 61;
/// Stacks a worker keeps in its own cache before handing half back to the shared pool.
const LOCAL_STACK_CACHE: usize = 64;
/// Stacks taken from the shared pool at once when the worker cache is empty.
const STACK_BATCH: usize = 16;
/// Task ids a worker reserves at once from the shared counter, so spawning does not bounce
/// one cache line between cores.
const ID_BLOCK: u64 = 1024;

/// How a task reaches a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Schedule {
    /// Woken by someone: LIFO slot if the waker runs on one of our workers.
    Wake,
    /// Woken while running, or yielded: back of the queue.
    Yield,
    /// Newly spawned: back of the queue.
    Spawn,
}

/// A counted reference to [`Shared`]. Tasks do not clone the runtime's one `Arc<Shared>`:
/// a refcount bumped by every spawn and dropped by every exit, on every core, is a cache
/// line bouncing between cores (measured: the top cost of a spawn storm). Each worker and
/// each [`Handle`](crate::Handle) owns its own `Arc<SharedRef>`, and a task clones the one
/// of the worker that spawned it.
#[derive(Debug)]
pub(crate) struct SharedRef(pub(crate) Arc<Shared>);

impl std::ops::Deref for SharedRef {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What a worker thread starts with: its run queue and its parker.
pub(crate) type WorkerParts = (Local<Arc<Task>>, Parker);

/// What every worker of a runtime can reach.
#[derive(Debug)]
pub(crate) struct Shared {
    injector: Injector<Arc<Task>>,
    stealers: Box<[Stealer<Arc<Task>>]>,
    unparkers: Box<[Unparker]>,
    idle: Idle,
    owned: OwnedTasks,
    pub(crate) timers: Timers,
    pub(crate) reactor: Reactor,
    stacks: StackPool,
    pub(crate) counters: Counters,
    /// Set once by shutdown; read by workers every tick.
    shutdown: AtomicBool,
    next_id: AtomicU64,
}

/// Per-worker state, reachable from the worker's thread-local.
pub(crate) struct WorkerCtx {
    /// This worker's own counted reference to the runtime (see [`SharedRef`]).
    pub(crate) shared: Arc<SharedRef>,
    index: usize,
    local: Local<Arc<Task>>,
    lifo: Cell<Option<Arc<Task>>>,
    stacks: RefCell<Vec<FiberStack>>,
    searching: Cell<bool>,
    tick: Cell<u32>,
    lifo_polls: Cell<u32>,
    /// A task yielded (or spent its reductions) since the last pick: look at the injector
    /// before the local queue, so a yielding fiber lets work from outside run too.
    yielded: Cell<bool>,
    /// Next task id of this worker's reserved block, and the block's end.
    next_id: Cell<u64>,
    id_end: Cell<u64>,
    rng: Cell<u32>,
    parker: Parker,
}

thread_local! {
    static WORKER: RefCell<Option<Rc<WorkerCtx>>> = const { RefCell::new(None) };
    static IN_FUTURE: Cell<bool> = const { Cell::new(false) };
    static CANCELLING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with this thread's worker context. Never suspends inside (see `fiber.rs`).
#[inline(never)]
fn with_worker<R>(f: impl FnOnce(Option<&WorkerCtx>) -> R) -> R {
    let _b = TlsBorrow::new();
    WORKER.with_borrow(|w| f(w.as_deref()))
}

/// Runs `f` with the runtime of this worker thread and this worker's own counted reference
/// to it, without touching any atomic reference count. `f` must not park (the `Rc` of the
/// worker context it runs under is thread-bound).
#[inline(never)]
pub(crate) fn with_current_runtime<R>(f: impl FnOnce(&Arc<SharedRef>) -> R) -> Option<R> {
    let ctx = {
        let _b = TlsBorrow::new();
        WORKER.with_borrow(|w| w.clone())
    }?;
    Some(f(&ctx.shared))
}

/// Queues `task` on this thread's worker if it is one of the task's runtime; hands it back
/// otherwise.
#[inline(never)]
pub(crate) fn try_schedule_local(task: Arc<Task>, how: Schedule) -> Option<Arc<Task>> {
    with_worker(|w| match w {
        Some(w) if w.serves(&task.shared) => {
            w.schedule_local(task, how);
            None
        }
        _ => Some(task),
    })
}

/// The runtime this thread works for, if it is a worker.
#[inline(never)]
pub(crate) fn current_shared() -> Option<Arc<SharedRef>> {
    with_worker(|w| w.map(|w| w.shared.clone()))
}

/// Index of this thread's worker within `shared`, if it is one of its workers.
#[inline(never)]
fn worker_index(shared: &Shared) -> Option<usize> {
    with_worker(|w| w.filter(|w| w.serves(shared)).map(|w| w.index))
}

#[inline(never)]
pub(crate) fn enter_future() -> bool {
    IN_FUTURE.replace(true)
}

#[inline(never)]
pub(crate) fn exit_future(prev: bool) {
    IN_FUTURE.set(prev);
}

/// Is this thread polling a future body right now?
#[inline(never)]
pub(crate) fn in_future_body() -> bool {
    IN_FUTURE.get()
}

#[inline(never)]
pub(crate) fn set_cancelling(on: bool) -> bool {
    CANCELLING.replace(on)
}

/// Is this thread cancelling a task (unwinding its fiber, dropping its future)?
#[inline(never)]
pub(crate) fn cancelling() -> bool {
    CANCELLING.get()
}

/// Puts a finished fiber's stack back: the worker cache if on a worker of `shared`, else
/// the shared pool.
#[inline(never)]
pub(crate) fn recycle_stack(shared: &Shared, stack: FiberStack) {
    let stack = with_worker(|w| match w {
        Some(w) if w.serves(shared) => {
            let mut cache = w.stacks.borrow_mut();
            cache.push(stack);
            if cache.len() > LOCAL_STACK_CACHE {
                let half = cache.len() / 2;
                shared.stacks.give_back(cache.drain(..half));
            }
            None
        }
        _ => Some(stack),
    });
    if let Some(s) = stack {
        shared.stacks.give_back(std::iter::once(s));
    }
}

impl Shared {
    pub(crate) fn new(
        workers: usize,
        stack_size: usize,
        guard: GuardMode,
        keep_resident: usize,
    ) -> std::io::Result<(Arc<Shared>, Vec<WorkerParts>)> {
        let mut locals = Vec::with_capacity(workers);
        let mut stealers = Vec::with_capacity(workers);
        let mut unparkers = Vec::with_capacity(workers);
        for _ in 0..workers {
            let local = Local::new_fifo();
            stealers.push(local.stealer());
            let (p, u) = Parker::new();
            unparkers.push(u);
            locals.push((local, p));
        }
        let shared = Arc::new(Shared {
            injector: Injector::new(),
            stealers: stealers.into(),
            unparkers: unparkers.into(),
            idle: Idle::new(workers),
            owned: OwnedTasks::new(workers),
            timers: Timers::new(),
            reactor: Reactor::new()?,
            stacks: StackPool::new(stack_size, guard, keep_resident),
            counters: Counters::new(workers),
            shutdown: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
        });
        Ok((shared, locals))
    }

    pub(crate) fn workers(&self) -> usize {
        self.stealers.len()
    }

    pub(crate) fn stack_size(&self) -> usize {
        self.stacks.stack_size()
    }

    pub(crate) fn counters_snapshot(&self) -> crate::RuntimeCounters {
        self.counters
            .snapshot(self.stacks.total(), self.owned.len())
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Queues a task from a thread that is not one of our workers.
    pub(crate) fn schedule_remote(&self, task: Arc<Task>) {
        self.injector.push(task);
        self.notify_parked();
    }

    /// Wakes one parked worker if there is work for it and nobody is looking already.
    fn notify_parked(&self) {
        if let Some(i) = self.idle.worker_to_notify() {
            self.unparkers[i].unpark(|| self.reactor.wake());
        }
    }

    fn has_stealable_work(&self) -> bool {
        !self.injector.is_empty() || self.stealers.iter().any(|s| !s.is_empty())
    }

    /// A timer was inserted for `ms`; make sure a sleeping worker does not oversleep it.
    pub(crate) fn timer_inserted(&self, ms: u64) {
        if ms == u64::MAX {
            // A timer that never fires (`TimerKey::NEVER`): nobody needs waking.
            return;
        }
        let sleeping_toward = self.reactor.driver_deadline.load(Ordering::SeqCst);
        if sleeping_toward != u64::MAX {
            if ms < sleeping_toward {
                self.reactor.wake();
            }
        } else if ms <= self.timers.next_deadline_ms() {
            // Nobody sleeps in the reactor; a condvar sleeper may have a longer timeout.
            self.notify_parked();
        }
    }

    /// Runs `f` with this thread's worker context if it is one of our workers.
    #[inline]
    fn with_local<R>(&self, f: impl FnOnce(&WorkerCtx) -> R) -> Option<R> {
        with_worker(|w| w.filter(|w| w.serves(self)).map(f))
    }

    /// Registers and queues a new task. `worker` is the spawning worker, if any.
    fn launch(
        &self,
        proxy: Arc<SharedRef>,
        id: u64,
        worker: Option<usize>,
        data: Option<TaskData>,
        body: Body,
    ) -> Result<(), SpawnError> {
        let shard = self.owned.shard_for(worker, id);
        let task = Arc::new(Task::new(id, shard, data, body, proxy));
        if !self.owned.insert(&task) {
            task.cancel();
            return Err(SpawnError::Shutdown);
        }
        crate::counters::bump(&self.counters.slot(worker).spawned, 1, worker.is_some());
        Task::schedule(task, Schedule::Spawn);
        Ok(())
    }

    /// Spawns a fiber; `handle` is the caller's reference, used when not on a worker.
    pub(crate) fn spawn_fiber<F, T>(
        &self,
        handle: &Arc<SharedRef>,
        data: Option<TaskData>,
        f: F,
    ) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.is_shutdown() {
            return Err(SpawnError::Shutdown);
        }
        let local = self.with_local(|w| (w.take_stack(), w.next_task_id(), w.index, w.shared.clone()));
        let (stack, id, worker, proxy) = match local {
            Some((stack, id, index, proxy)) => (stack, id, Some(index), proxy),
            None => {
                let mut one = Vec::with_capacity(1);
                let r = self.stacks.take_batch(&mut one, 1).map(|()| one.pop().expect("a stack"));
                (r, self.next_id.fetch_add(1, Ordering::Relaxed), None, handle.clone())
            }
        };
        let stack = stack.map_err(SpawnError::Stack)?;
        let state = JoinState::new();
        let fiber = Fiber::new(stack, fiber_body(f, Completer::new(state.clone())));
        self.launch(proxy, id, worker, data, Body::Fiber(fiber))?;
        Ok(JoinHandle::new(state, id))
    }

    /// Spawns a future; `handle` is the caller's reference, used when not on a worker.
    pub(crate) fn spawn_future<F>(
        &self,
        handle: &Arc<SharedRef>,
        data: Option<TaskData>,
        fut: F,
    ) -> Result<JoinHandle<F::Output>, SpawnError>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if self.is_shutdown() {
            return Err(SpawnError::Shutdown);
        }
        let (id, worker, proxy) = match self.with_local(|w| (w.next_task_id(), w.index, w.shared.clone())) {
            Some((id, index, proxy)) => (id, Some(index), proxy),
            None => (self.next_id.fetch_add(1, Ordering::Relaxed), None, handle.clone()),
        };
        let state = JoinState::new();
        let body = FutureBody::new(fut, Completer::new(state.clone()));
        self.launch(proxy, id, worker, data, Body::Future(Box::pin(body)))?;
        Ok(JoinHandle::new(state, id))
    }

    /// Bookkeeping for a task whose body ended.
    pub(crate) fn task_finished(&self, task: &Arc<Task>) {
        self.owned.remove(task);
        let worker = worker_index(self);
        crate::counters::bump(&self.counters.slot(worker).finished, 1, worker.is_some());
    }

    /// Step 1 of shutdown. Returns `false` if it had already begun.
    pub(crate) fn begin_shutdown(&self) -> bool {
        if self.shutdown.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.owned.close();
        for u in self.unparkers.iter() {
            u.unpark(|| self.reactor.wake());
        }
        self.reactor.wake();
        true
    }

    /// Step 3 of shutdown, once no worker runs: cancel everything left.
    pub(crate) fn cancel_all(&self) {
        loop {
            let tasks = self.owned.drain();
            if tasks.is_empty() {
                break;
            }
            for t in tasks {
                t.cancel();
            }
        }
        while !self.injector.is_empty() {
            let _ = self.injector.steal();
        }
        self.timers.clear();
    }
}

impl WorkerCtx {
    /// Is this a worker of `shared`?
    fn serves(&self, shared: &Shared) -> bool {
        std::ptr::eq::<Shared>(&**self.shared, shared)
    }

    fn next_task_id(&self) -> u64 {
        let id = self.next_id.get();
        if id < self.id_end.get() {
            self.next_id.set(id + 1);
            return id;
        }
        let start = self.shared.next_id.fetch_add(ID_BLOCK, Ordering::Relaxed);
        self.next_id.set(start + 1);
        self.id_end.set(start + ID_BLOCK);
        start
    }

    fn take_stack(&self) -> Result<FiberStack, crate::fiber::StackError> {
        let mut cache = self.stacks.borrow_mut();
        if cache.is_empty() {
            self.shared.stacks.take_batch(&mut cache, STACK_BATCH)?;
        }
        Ok(cache.pop().expect("take_batch yields at least one stack"))
    }

    fn schedule_local(&self, task: Arc<Task>, how: Schedule) {
        match how {
            Schedule::Wake => {
                if let Some(prev) = self.lifo.replace(Some(task)) {
                    self.local.push(prev);
                    self.shared.notify_parked();
                }
            }
            Schedule::Yield | Schedule::Spawn => {
                if how == Schedule::Yield {
                    self.yielded.set(true);
                }
                self.local.push(task);
                self.shared.notify_parked();
            }
        }
    }

    fn next_local(&self, tick: u32) -> Option<Arc<Task>> {
        if (self.yielded.replace(false) || tick.is_multiple_of(GLOBAL_QUEUE_INTERVAL))
            && let Some(t) = steal_loop(|| self.shared.injector.steal()) {
                self.lifo_polls.set(0);
                return Some(t);
            }
        if let Some(t) = self.lifo.take() {
            if self.lifo_polls.get() < MAX_LIFO_POLLS {
                self.lifo_polls.set(self.lifo_polls.get() + 1);
                return Some(t);
            }
            // The cap protects queued work from a ping-ponging pair; with nothing queued
            // there is nobody to protect, and demoting would only wake another worker.
            if self.local.is_empty() && self.shared.injector.is_empty() {
                self.lifo_polls.set(1);
                return Some(t);
            }
            self.local.push(t);
            self.shared.notify_parked();
        }
        self.lifo_polls.set(0);
        self.local
            .pop()
            .or_else(|| steal_loop(|| self.shared.injector.steal_batch_and_pop(&self.local)))
    }

    fn next_rand(&self) -> u32 {
        // xorshift32: victim selection only needs to not always start at the same worker.
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng.set(x);
        x
    }

    fn search(&self) -> Option<Arc<Task>> {
        if !self.searching.get() {
            if !self.shared.idle.transition_to_searching() {
                return None;
            }
            self.searching.set(true);
        }
        let n = self.shared.stealers.len();
        let start = self.next_rand() as usize % n;
        for i in 0..n {
            let victim = (start + i) % n;
            if victim == self.index {
                continue;
            }
            if let Some(t) =
                steal_loop(|| self.shared.stealers[victim].steal_batch_and_pop(&self.local))
            {
                crate::counters::bump(&self.counters().steals, 1, true);
                return Some(t);
            }
        }
        steal_loop(|| self.shared.injector.steal_batch_and_pop(&self.local))
    }

    fn counters(&self) -> &crate::counters::Slot {
        self.shared.counters.slot(Some(self.index))
    }

    fn run_task(&self, task: Arc<Task>) {
        if self.searching.replace(false) && self.shared.idle.transition_from_searching() {
            self.shared.notify_parked();
        }
        crate::counters::bump(&self.counters().polls, 1, true);
        coop::reset();
        task.run();
    }

    fn park(&self) {
        let shared = &*self.shared;
        let last_searcher = shared
            .idle
            .transition_to_parked(self.index, self.searching.replace(false));
        if last_searcher && shared.has_stealable_work() {
            shared.notify_parked();
        }
        // Re-check after announcing ourselves parked (the Dekker pair in idle.rs).
        if shared.has_stealable_work() || shared.is_shutdown() {
            let self_woke = shared.idle.unpark_self(self.index);
            self.searching.set(!self_woke);
            return;
        }
        crate::counters::bump(&self.counters().parks, 1, true);
        let t0 = Instant::now();
        if let Some(mut driver) = shared.reactor.driver.try_lock() {
            // Publish the deadline we will sleep toward, then read the timers again: a
            // timer inserted concurrently either is seen here or sees our deadline and
            // wakes the reactor (`Shared::timer_inserted`).
            let next = shared.timers.next_deadline_ms();
            shared
                .reactor
                .driver_deadline
                .store(next, Ordering::SeqCst);
            // Sleep toward the earlier of the advertised deadline and a fresh read: never
            // past what inserters were told we sleep toward (a timer cancelled in between
            // then only costs an early wake-up).
            let timeout = shared
                .timers
                .timeout_until(next.min(shared.timers.next_deadline_ms()));
            self.parker
                .park_driver(|| shared.reactor.turn(&mut driver, timeout));
            shared
                .reactor
                .driver_deadline
                .store(u64::MAX, Ordering::SeqCst);
        } else {
            self.parker.park_condvar(shared.timers.next_timeout());
        }
        crate::counters::bump(&self.counters().parked_ns, t0.elapsed().as_nanos() as u64, true);
        let self_woke = shared.idle.unpark_self(self.index);
        self.searching.set(!self_woke);
        shared.timers.fire_due();
    }

    fn drain(&self) {
        drop(self.lifo.take());
        while self.local.pop().is_some() {}
        let stacks: Vec<_> = self.stacks.borrow_mut().drain(..).collect();
        self.shared.stacks.give_back(stacks.into_iter());
    }
}

fn steal_loop<T>(mut f: impl FnMut() -> Steal<T>) -> Option<T> {
    loop {
        match f() {
            Steal::Success(t) => return Some(t),
            Steal::Empty => return None,
            Steal::Retry => std::hint::spin_loop(),
        }
    }
}

/// The body of a worker thread.
pub(crate) fn run_worker(shared: Arc<Shared>, index: usize, local: Local<Arc<Task>>, parker: Parker) {
    // The stack-overflow handler needs an alternate signal stack on every worker.
    let _alt_stack = crate::fiber::overflow::AltStack::ensure();
    let ctx = Rc::new(WorkerCtx {
        shared: Arc::new(SharedRef(shared.clone())),
        index,
        local,
        lifo: Cell::new(None),
        stacks: RefCell::new(Vec::new()),
        searching: Cell::new(false),
        tick: Cell::new(0),
        lifo_polls: Cell::new(0),
        yielded: Cell::new(false),
        next_id: Cell::new(0),
        id_end: Cell::new(0),
        rng: Cell::new(0x9E37_79B9 ^ (index as u32 + 1)),
        parker,
    });
    WORKER.set(Some(ctx.clone()));
    loop {
        if shared.is_shutdown() {
            break;
        }
        let tick = ctx.tick.get().wrapping_add(1);
        ctx.tick.set(tick);
        if tick.is_multiple_of(TIMER_CHECK_INTERVAL) {
            shared.timers.fire_due();
        }
        if tick.is_multiple_of(EVENT_INTERVAL)
            && shared.reactor.has_sources()
            && let Some(mut driver) = shared.reactor.driver.try_lock()
        {
            shared
                .reactor
                .turn(&mut driver, Some(std::time::Duration::ZERO));
        }
        if let Some(t) = ctx.next_local(tick) {
            ctx.run_task(t);
            continue;
        }
        if let Some(t) = ctx.search() {
            ctx.run_task(t);
            continue;
        }
        if shared.timers.fire_due() > 0 {
            continue;
        }
        ctx.park();
    }
    ctx.drain();
    WORKER.set(None);
}

/// Every live task, so shutdown can cancel the parked ones (they sit in no queue).
/// Sharded by task id to keep spawn and exit from contending on one lock.
#[derive(Debug)]
struct OwnedTasks {
    shards: Box<[CachePadded<Mutex<OwnedShard>>]>,
}

#[derive(Debug, Default)]
struct OwnedShard {
    slots: Vec<Option<Arc<Task>>>,
    free: Vec<usize>,
    live: usize,
    closed: bool,
}

impl OwnedTasks {
    fn new(workers: usize) -> OwnedTasks {
        let n = (workers * 4).next_power_of_two();
        OwnedTasks {
            shards: (0..n)
                .map(|_| CachePadded::new(Mutex::new(OwnedShard::default())))
                .collect(),
        }
    }

    /// The shard a new task goes to: its spawning worker's own (tasks mostly end on the
    /// worker that spawned them, so the shard's lock stays uncontended and in that core's
    /// cache), or one picked by id for spawns from outside.
    fn shard_for(&self, worker: Option<usize>, id: u64) -> usize {
        let n = self.shards.len();
        worker.map_or(id as usize, |w| w) & (n - 1)
    }

    fn insert(&self, task: &Arc<Task>) -> bool {
        let mut s = self.shards[task.owned_shard].lock();
        if s.closed {
            return false;
        }
        let i = match s.free.pop() {
            Some(i) => {
                s.slots[i] = Some(task.clone());
                i
            }
            None => {
                s.slots.push(Some(task.clone()));
                s.slots.len() - 1
            }
        };
        task.owned_slot.store(i, Ordering::Relaxed);
        s.live += 1;
        true
    }

    fn remove(&self, task: &Arc<Task>) {
        let mut s = self.shards[task.owned_shard].lock();
        let i = task.owned_slot.load(Ordering::Relaxed);
        if let Some(slot) = s.slots.get_mut(i)
            && slot.as_ref().is_some_and(|t| Arc::ptr_eq(t, task)) {
                *slot = None;
                s.free.push(i);
                s.live -= 1;
            }
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().live).sum()
    }

    fn close(&self) {
        for s in self.shards.iter() {
            s.lock().closed = true;
        }
    }

    fn drain(&self) -> Vec<Arc<Task>> {
        let mut out = Vec::new();
        for s in self.shards.iter() {
            let mut s = s.lock();
            s.free.clear();
            s.live = 0;
            out.extend(s.slots.drain(..).flatten());
        }
        out
    }
}
