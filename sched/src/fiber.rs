//! Stackful fibers: a corosensei coroutine on a pooled [`FiberStack`].
//!
//! This is the only module that touches corosensei. A fiber runs one native process
//! body. It is resumed by a worker ([`Fiber::resume`]) and gives control back with
//! [`suspend`], from any depth of its own stack.
//!
//! # Invariants
//!
//! * **Send.** corosensei's `Coroutine` is `!Send` on purpose: values on a suspended
//!   stack may be `!Send`. [`Fiber`] is `Send` under this rule, written down for every
//!   body: *no `!Send` value and no borrow of a thread-local is live across a suspension
//!   point* (`park`, `yield_now`, `sleep`, `block_on`, …). Bodies are `Send + 'static`
//!   closures, so what they capture is `Send`; what the rule adds is "do not hold an
//!   `Rc`, a `RefCell` guard, a `MutexGuard` or a `thread_local!` reference across a
//!   suspension point". Inside rusm-sched every thread-local access goes through
//!   `#[inline(never)]` helpers that never suspend, so no thread-local address is cached
//!   across a migration; debug builds check that no such borrow is open at [`suspend`].
//! * **No wasmtime frames.** A fiber must never suspend while wasmtime frames are on its
//!   stack: wasmtime keeps per-thread activation state that points into the running stack
//!   and saves it only around its own fibers. Wasm processes are futures, never fibers.
//! * **Guard armed while running.** [`Fiber::resume`] arms the stack's guard page (a no-op
//!   for permanently guarded stacks) before switching and disarms it after; dropping a
//!   suspended fiber does the same around the forced unwind.
//! * **Thread-local yielder.** While a fiber runs, the worker thread's `YIELDER` holds the
//!   address of its corosensei `Yielder` (which lives on the fiber's own stack for the
//!   fiber's whole life); it is null otherwise.

pub(crate) mod overflow;
pub(crate) mod stack;

use std::any::Any;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use corosensei::{Coroutine, CoroutineResult, Yielder};

pub use stack::GuardMode;
pub use stack::StackError;
pub(crate) use stack::{FiberStack, StackPool};
use stack::Guard;

/// The yielder type. The value a fiber suspends with is the address of its own yielder, so
/// the worker can publish it again after the fiber migrates to another thread.
type FiberYielder = Yielder<(), usize>;

thread_local! {
    /// Address of the running fiber's `Yielder`, or 0 when no fiber runs on this thread.
    static YIELDER: Cell<usize> = const { Cell::new(0) };
    /// Open borrows of rusm-sched thread-locals (debug check of the Send invariant).
    static TLS_BORROWS: Cell<usize> = const { Cell::new(0) };
}

/// A panic payload caught at the root of a fiber.
pub(crate) type Panic = Box<dyn Any + Send + 'static>;

/// What a resume ended with.
pub(crate) enum Resumed {
    /// The fiber called [`suspend`].
    Suspended,
    /// The body returned (`Ok`) or panicked (`Err`); the stack is handed back for reuse.
    Finished(Result<(), Panic>, FiberStack),
}

/// One native process body on its own stack.
pub(crate) struct Fiber {
    co: Option<Coroutine<(), usize, (), FiberStack>>,
    /// The guard page of the coroutine's stack (the coroutine owns the stack itself and
    /// corosensei offers no accessor to it). Valid while `co` is `Some`.
    guard: Guard,
    /// The yielder's address, learnt from the first suspension (0 before that).
    yielder: usize,
}

// SAFETY: a `Fiber` is only moved between threads while it is suspended (a worker owns it
// while it runs, inside `Task::run`). At that point its stack holds only what the body
// keeps live across a suspension point, and the module invariant ("no `!Send` value and no
// thread-local borrow live across suspension", documented on every spawn function and
// checked in debug builds at `suspend`) makes all of that `Send`. The body closure itself
// is `Send` (enforced by `Fiber::new`'s bound).
unsafe impl Send for Fiber {}

impl std::fmt::Debug for Fiber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fiber")
            .field("started", &self.co.as_ref().map(|c| c.started()))
            .finish()
    }
}

impl Fiber {
    /// A fiber that will run `body` on `stack` when first resumed.
    pub(crate) fn new<F: FnOnce() + Send + 'static>(stack: FiberStack, body: F) -> Fiber {
        // corosensei copies the initial closure onto the new stack and refuses ones over
        // 1 KiB; box big closures (a rare, already expensive spawn) and copy the pointer.
        if std::mem::size_of::<F>() > 256 {
            let boxed: Box<dyn FnOnce() + Send> = Box::new(body);
            Fiber::with_body(stack, boxed)
        } else {
            Fiber::with_body(stack, body)
        }
    }

    fn with_body(stack: FiberStack, body: impl FnOnce() + Send + 'static) -> Fiber {
        let guard = stack.guard();
        let co = Coroutine::with_stack(stack, move |y: &FiberYielder, ()| {
            YIELDER.with(|c| c.set(y as *const FiberYielder as usize));
            body();
        });
        Fiber {
            co: Some(co),
            guard,
            yielder: 0,
        }
    }

    /// Runs the fiber until it suspends or finishes. Panics in the body are caught here.
    pub(crate) fn resume(&mut self) -> Resumed {
        let co = self.co.as_mut().expect("resumed a finished fiber");
        self.guard.arm();
        let prev_guard = overflow::set_guard_page(self.guard.page());
        let prev = YIELDER.with(|c| c.replace(self.yielder));
        let r = catch_unwind(AssertUnwindSafe(|| co.resume(())));
        YIELDER.with(|c| c.set(prev));
        overflow::set_guard_page(prev_guard);
        self.guard.disarm();
        match r {
            Ok(CoroutineResult::Yield(addr)) => {
                self.yielder = addr;
                Resumed::Suspended
            }
            Ok(CoroutineResult::Return(())) => {
                let co = self.co.take().expect("fiber present");
                Resumed::Finished(Ok(()), co.into_stack())
            }
            Err(p) => {
                let co = self.co.take().expect("fiber present");
                Resumed::Finished(Err(p), co.into_stack())
            }
        }
    }

    /// Unwinds a suspended fiber (running the `Drop` of everything on its stack) and
    /// returns its stack. A panic raised by a destructor during the unwind is returned.
    pub(crate) fn cancel(mut self) -> (Option<Panic>, Option<FiberStack>) {
        self.unwind()
    }

    fn unwind(&mut self) -> (Option<Panic>, Option<FiberStack>) {
        let Some(mut co) = self.co.take() else {
            return (None, None);
        };
        self.guard.arm();
        let prev_guard = overflow::set_guard_page(self.guard.page());
        let prev = YIELDER.with(|c| c.replace(self.yielder));
        let r = catch_unwind(AssertUnwindSafe(|| co.force_unwind()));
        YIELDER.with(|c| c.set(prev));
        overflow::set_guard_page(prev_guard);
        self.guard.disarm();
        if co.done() {
            (r.err(), Some(co.into_stack()))
        } else {
            // A destructor suspended during the unwind and then panicked; the coroutine
            // cannot be finished. Leak it rather than free a stack that is still in use.
            std::mem::forget(co);
            (r.err(), None)
        }
    }
}

impl Drop for Fiber {
    fn drop(&mut self) {
        // Only reached with a live coroutine if a task was dropped without `cancel`.
        let _ = self.unwind();
    }
}

/// Is the current thread running a fiber right now (and able to park it)? `false` while a
/// cancelled fiber is being unwound: its destructors run as plain code on the thread.
#[inline(never)]
pub(crate) fn in_fiber() -> bool {
    YIELDER.with(|c| c.get() != 0) && !crate::worker::cancelling()
}

/// Suspends the running fiber; returns when a worker resumes it (possibly on another
/// thread). Returns `false` without suspending when called outside a fiber.
#[inline(never)]
pub(crate) fn suspend() -> bool {
    let addr = YIELDER.with(|c| c.get());
    if addr == 0 || crate::worker::cancelling() {
        // Outside a fiber, or unwinding a cancelled one: suspending there would restart
        // corosensei's forced unwind inside a destructor (an abort). Callers treat `false`
        // as "could not park".
        return false;
    }
    debug_assert_eq!(
        TLS_BORROWS.with(|c| c.get()),
        0,
        "a fiber suspended while a rusm-sched thread-local borrow was open"
    );
    // SAFETY: a non-zero `YIELDER` is the address of the running fiber's `Yielder`, set by
    // the fiber itself on entry or by `Fiber::resume` from the value this fiber last
    // suspended with. The yielder lives on the fiber's own stack for the fiber's whole life,
    // and we are running on that stack now, so the reference is valid for this call.
    let y = unsafe { &*(addr as *const FiberYielder) };
    y.suspend(addr);
    true
}

/// Counts an open borrow of a rusm-sched thread-local (debug check, see [`suspend`]).
#[derive(Debug)]
pub(crate) struct TlsBorrow(());

impl TlsBorrow {
    #[inline]
    pub(crate) fn new() -> TlsBorrow {
        if cfg!(debug_assertions) {
            TLS_BORROWS.with(|c| c.set(c.get() + 1));
        }
        TlsBorrow(())
    }
}

impl Drop for TlsBorrow {
    #[inline]
    fn drop(&mut self) {
        if cfg!(debug_assertions) {
            TLS_BORROWS.with(|c| c.set(c.get() - 1));
        }
    }
}
