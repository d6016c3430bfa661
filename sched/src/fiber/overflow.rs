//! Reporting fiber stack overflow.
//!
//! A fiber that runs off its stack touches its guard page and the kernel raises `SIGSEGV`.
//! Unwinding the fiber from there is not sound for arbitrary native code (corosensei's trap
//! recovery requires a body that writes no memory outside its own stack), so RUSM does what
//! Rust does for a thread's stack overflow: it aborts the process, after saying clearly what
//! happened. The handler recognises a hit on the guard page of the fiber running on the
//! faulting thread; any other fault goes to the handler installed before ours (Rust's own,
//! wasmtime's trap handler, or the default action).
//!
//! # Invariants
//!
//! * The handler runs on an alternate signal stack (an overflowed stack cannot host it):
//!   every worker thread has one, ours if the thread had none ([`AltStack`]).
//! * The handler only reads a const-initialised thread-local `Cell<usize>` (already touched
//!   by this thread before any fiber ran), calls `write(2)` and `abort(3)`, and calls the
//!   previous handler: all async-signal-safe.

use std::cell::Cell;
use std::sync::OnceLock;

const PAGE: usize = 4096;
const ALT_STACK_SIZE: usize = 64 * 1024;

thread_local! {
    /// The guard page of the fiber running on this thread (0: none). Written by
    /// `Fiber::resume` around each resume; read by the signal handler.
    static GUARD_PAGE: Cell<usize> = const { Cell::new(0) };
}

/// Previous handlers, saved once when ours is installed.
struct Previous {
    segv: libc::sigaction,
    bus: libc::sigaction,
}

// SAFETY: `libc::sigaction` is plain data (a function pointer, a mask and flags); it holds
// no thread-affine state, so sharing it between threads is sound.
unsafe impl Sync for Previous {}
// SAFETY: as above.
unsafe impl Send for Previous {}

static PREVIOUS: OnceLock<Previous> = OnceLock::new();

/// Sets this thread's running-fiber guard page; returns the previous value.
pub(crate) fn set_guard_page(page: usize) -> usize {
    GUARD_PAGE.with(|g| g.replace(page))
}

/// Installs the overflow handler for the process (once).
pub(crate) fn install_handler() {
    PREVIOUS.get_or_init(|| {
        // SAFETY: [1] `sa` is fully initialised (zeroed, then the handler, flags and an
        // empty mask are set) before it is passed to `sigaction`. [2] `old_*` are written by
        // the kernel. [3] `on_fault` has the `SA_SIGINFO` signature and is async-signal-safe
        // (see the module invariants).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_fault as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            let mut old_segv: libc::sigaction = std::mem::zeroed();
            let mut old_bus: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGSEGV, &sa, &mut old_segv);
            libc::sigaction(libc::SIGBUS, &sa, &mut old_bus);
            Previous {
                segv: old_segv,
                bus: old_bus,
            }
        }
    });
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid `siginfo_t` to an `SA_SIGINFO` handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let guard = GUARD_PAGE.with(|g| g.get());
    if guard != 0 && addr >= guard && addr < guard + PAGE {
        let msg = b"\nrusm-sched: a fiber overflowed its stack (it hit its guard page); \
                    raise Builder::stack_size. Aborting.\n";
        // SAFETY: `write` and `abort` are async-signal-safe; `msg` is a valid buffer.
        unsafe {
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::abort();
        }
    }
    let Some(prev) = PREVIOUS.get() else {
        // Our handler is installed but the previous ones are not recorded yet (the window
        // inside `install_handler`): fall back to the default action so the fault is fatal
        // rather than repeated forever.
        // SAFETY: resetting a signal's disposition to `SIG_DFL` is async-signal-safe.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
        return;
    };
    let prev = if sig == libc::SIGBUS {
        &prev.bus
    } else {
        &prev.segv
    };
    // SAFETY: we forward the signal exactly as the kernel would have to the handler that was
    // installed before ours: with its own calling convention (`SA_SIGINFO` or not). For the
    // default or ignore dispositions we restore that disposition and return, so the faulting
    // instruction runs again and the kernel applies it.
    unsafe {
        if prev.sa_sigaction == libc::SIG_DFL || prev.sa_sigaction == libc::SIG_IGN {
            libc::sigaction(sig, prev, std::ptr::null_mut());
        } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(prev.sa_sigaction);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev.sa_sigaction);
            f(sig);
        }
    }
}

/// An alternate signal stack this thread installed; removed and freed on drop.
#[derive(Debug)]
pub(crate) struct AltStack {
    mapping: usize,
    /// `!Send`: the alternate stack belongs to the thread that installed it, and only that
    /// thread may disable and free it.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl AltStack {
    /// Makes sure the calling thread has an alternate signal stack; returns the one it
    /// installed, or `None` if the thread already had one (Rust's runtime gives threads it
    /// spawns one) or none could be made.
    pub(crate) fn ensure() -> Option<AltStack> {
        // SAFETY: querying the current alternate stack writes only into `cur`.
        let enabled = unsafe {
            let mut cur: libc::stack_t = std::mem::zeroed();
            libc::sigaltstack(std::ptr::null(), &mut cur) == 0 && cur.ss_flags & libc::SS_DISABLE == 0
        };
        if enabled {
            return None;
        }
        let len = ALT_STACK_SIZE + PAGE;
        // SAFETY: a fresh anonymous mapping; affects no existing memory.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: [1] the lowest page of our own fresh mapping becomes a guard; [2] `st`
        // describes the rest of that mapping, which stays alive until `drop` disables the
        // alternate stack before unmapping it.
        unsafe {
            libc::mprotect(p, PAGE, libc::PROT_NONE);
            let st = libc::stack_t {
                ss_sp: p.cast::<u8>().add(PAGE).cast(),
                ss_flags: 0,
                ss_size: ALT_STACK_SIZE,
            };
            if libc::sigaltstack(&st, std::ptr::null_mut()) != 0 {
                libc::munmap(p, len);
                return None;
            }
        }
        Some(AltStack {
            mapping: p as usize,
            _not_send: std::marker::PhantomData,
        })
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        // SAFETY: [1] disabling the alternate stack first means no handler can be running on
        // it or start on it afterwards (we are on the thread's normal stack, not in a
        // handler); [2] then the mapping we made in `ensure` is unmapped.
        unsafe {
            let st = libc::stack_t {
                ss_sp: std::ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            libc::sigaltstack(&st, std::ptr::null_mut());
            libc::munmap(self.mapping as *mut libc::c_void, ALT_STACK_SIZE + PAGE);
        }
    }
}
