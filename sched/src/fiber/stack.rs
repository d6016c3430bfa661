//! Pooled fiber stacks carved out of large chunks, each with a guard page.
//!
//! # Why chunks, and why two guard modes
//!
//! The kernel counts every distinct mapping (VMA) against `vm.max_map_count` (65530 by
//! default). A guard page is a `PROT_NONE` page, so a stack with a permanently armed guard
//! page splits its chunk into two VMAs (guard + usable). That caps a process near 32k parked
//! fibers — the wall the `may` crate hits. RUSM lays stacks out back to back in chunks:
//!
//! ```text
//!  chunk (one mmap, MAP_NORESERVE: pages are committed on first touch)
//!  +-------+-----------------+-------+-----------------+-------+-----------------+
//!  | guard |  stack 0  <- sp | guard |  stack 1  <- sp | guard |  stack 2  <- sp |
//!  +-------+-----------------+-------+-----------------+-------+-----------------+
//!  low addresses                                                      high addresses
//! ```
//!
//! and gives each stack one of two [`GuardMode`]s:
//!
//! * `Permanent`: the guard is `mprotect`ed `PROT_NONE` once, when the chunk is made. Costs
//!   two VMAs per stack, nothing per switch.
//! * `WhileRunning`: the guard page is ordinary read/write memory, never touched, while the
//!   fiber is suspended (a suspended fiber cannot grow its stack), and is armed with
//!   `mprotect(PROT_NONE)` just before the fiber is resumed and disarmed after it suspends.
//!   A whole chunk of parked fibers is two VMAs (the first stack of a chunk keeps a
//!   permanent guard, which stops chunks from merging), so a million parked fibers fit
//!   under the default sysctl; overflow is still caught, because the guard is armed whenever code runs
//!   on the stack. The cost is two `mprotect` calls per resume. Because the guard page has
//!   never been touched, it has no page-table entry, and the kernel needs no TLB shootdown
//!   for either call.
//!
//! [`GuardMode::Auto`] (the default) gives new stacks `Permanent` guards until their
//! mappings would reach half of `vm.max_map_count` (a quarter of it in stacks: about
//! 16k by default), and `WhileRunning` guards after that: the common case
//! pays nothing per switch, and a million fibers still fit.
//!
//! # Invariants
//!
//! * A [`FiberStack`] is owned by exactly one fiber or by the pool; its memory is never
//!   shared.
//! * A stack is always inside a live chunk: every `FiberStack` holds an `Arc<Chunk>`, and
//!   the chunk is unmapped when the last stack of it is dropped.
//! * In `WhileRunning` mode the guard is armed exactly while a fiber executes on the stack
//!   ([`FiberStack::arm`] / [`FiberStack::disarm`], called by `fiber.rs` around every
//!   resume and around the forced unwind of a dropped fiber).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use corosensei::stack::{Stack, StackPointer};
use parking_lot::Mutex;

/// How the guard page below each fiber stack is kept. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GuardMode {
    /// A permanent `PROT_NONE` guard page for the first stacks (using up to half of
    /// `vm.max_map_count` in mappings, about 16k stacks by default), then
    /// [`GuardMode::WhileRunning`] for the rest.
    #[default]
    Auto,
    /// Every stack has a permanent guard page: two kernel mappings per stack, no cost per
    /// switch. Limits a process to roughly `vm.max_map_count / 2` fibers.
    Permanent,
    /// The guard page is armed only while the fiber runs: two mappings per chunk of stacks,
    /// two `mprotect` calls per resume.
    WhileRunning,
}

const PAGE: usize = 4096;

/// Number of stacks per chunk. One `mmap` per 256 stacks keeps chunk creation off the
/// spawn hot path, and keeps a million `WhileRunning` stacks at about 8k mappings (two per
/// chunk, see `new_chunk`), while a chunk of 128 KiB stacks is 33 MiB of address space
/// (reserved, not committed).
const STACKS_PER_CHUNK: usize = 256;

/// One `mmap`ed region holding `STACKS_PER_CHUNK` stacks and their guard pages.
#[derive(Debug)]
struct Chunk {
    addr: usize,
    len: usize,
}

impl Drop for Chunk {
    fn drop(&mut self) {
        // SAFETY: `addr..addr+len` is exactly the region `mmap` returned in
        // `StackPool::new_chunk`, and the last `FiberStack` into it has been dropped (we are
        // in the `Arc<Chunk>`'s drop), so nothing refers to this memory any more.
        unsafe {
            libc::munmap(self.addr as *mut libc::c_void, self.len);
        }
    }
}

/// A fiber stack: `[limit, limit + PAGE)` is the guard page, `[limit + PAGE, base)` the
/// usable stack. Implements corosensei's [`Stack`].
#[derive(Debug)]
pub(crate) struct FiberStack {
    base: usize,
    limit: usize,
    armed_on_run: bool,
    _chunk: Arc<Chunk>,
}

impl FiberStack {
    /// The guard page of this stack, to arm and disarm around resumes.
    pub(crate) fn guard(&self) -> Guard {
        Guard {
            page: self.limit,
            armed_on_run: self.armed_on_run,
        }
    }
}

/// The address of a stack's guard page. Only meaningful while the stack it came from is
/// alive; `fiber.rs` keeps it beside the coroutine that owns that stack.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Guard {
    page: usize,
    armed_on_run: bool,
}

impl Guard {
    /// Address of the guard page.
    pub(crate) fn page(&self) -> usize {
        self.page
    }

    /// Arms the guard page if this stack's guard is armed only while running.
    pub(crate) fn arm(&self) {
        if self.armed_on_run {
            self.protect(libc::PROT_NONE);
        }
    }

    /// Disarms the guard page if this stack's guard is armed only while running.
    pub(crate) fn disarm(&self) {
        if self.armed_on_run {
            self.protect(libc::PROT_READ | libc::PROT_WRITE);
        }
    }

    fn protect(&self, prot: libc::c_int) {
        // SAFETY: `[page, page + PAGE)` is the guard page of a stack that is still alive
        // (callers keep the owning coroutine, and with it the stack's `Arc<Chunk>`, alive;
        // see `fiber.rs`). No Rust object lives in a guard page: it is only ever a
        // tripwire, so changing its protection invalidates no reference.
        let rc = unsafe { libc::mprotect(self.page as *mut libc::c_void, PAGE, prot) };
        if rc != 0 {
            // mprotect on a page we own only fails when the kernel cannot split the mapping
            // (ENOMEM at vm.max_map_count). Running the fiber without its guard would be
            // unsound and unwinding it needs its stack, so stop the process and say why, as
            // for a stack overflow (a panic here would kill a worker thread instead).
            let msg = b"\nrusm-sched: cannot arm a fiber stack guard page: the process is at \
                        vm.max_map_count (raise it with `sysctl vm.max_map_count=N`). Aborting.\n";
            // SAFETY: writing a valid buffer to stderr.
            unsafe {
                libc::write(2, msg.as_ptr().cast(), msg.len());
            }
            std::process::abort();
        }
    }
}

// SAFETY: [1] `base` and `limit` are the top and the bottom (guard page included) of one
// stack inside a live mapping, both page aligned and therefore aligned to
// `STACK_ALIGNMENT`. [2] The stack has a guard page that is armed whenever code runs on
// it: permanently, or by `fiber.rs` calling `arm` before every resume (see the module
// invariants). [3] The usable size is at least `MIN_STACK_SIZE`, checked in `StackPool::new`.
unsafe impl Stack for FiberStack {
    fn base(&self) -> StackPointer {
        StackPointer::new(self.base).expect("stack base is non-null")
    }

    fn limit(&self) -> StackPointer {
        StackPointer::new(self.limit).expect("stack limit is non-null")
    }
}

/// Reads `vm.max_map_count`, defaulting to the kernel default when it cannot be read.
pub(crate) fn max_map_count() -> usize {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65530)
}

/// Why a stack could not be had.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot map a fiber stack: {source} (the kernel limits a process to vm.max_map_count = \
     {max_map_count} mappings; {mappings} are in use by RUSM stacks; raise it with \
     `sysctl vm.max_map_count=N`, use GuardMode::WhileRunning, or lower Builder::stack_size)"
)]
pub struct StackError {
    source: io::Error,
    max_map_count: usize,
    mappings: usize,
}

/// The runtime-wide pool of free stacks. Workers keep a small cache each in front of it
/// (`worker.rs`), so the lock is taken once per batch, not once per spawn.
#[derive(Debug)]
pub(crate) struct StackPool {
    usable: usize,
    mode: GuardMode,
    /// Stacks above this many (idle, in the global pool) have their pages returned to the
    /// kernel when freed.
    keep_resident: usize,
    /// Mappings permanent-guard stacks may use under `Auto` (half of `vm.max_map_count`:
    /// a ring of 10k processes resumes each in turn, and `mprotect` on every resume of a
    /// `WhileRunning` stack made it 8x slower than with permanent guards).
    permanent_budget: usize,
    free: Mutex<Vec<FiberStack>>,
    /// Written under `free`'s lock by chunk creation; read by anyone for counters.
    permanent_stacks: AtomicUsize,
    /// Written under `free`'s lock; read by anyone.
    total_stacks: AtomicUsize,
}

impl StackPool {
    /// # Panics
    ///
    /// Panics if `usable` is smaller than corosensei's minimum stack size.
    pub(crate) fn new(usable: usize, mode: GuardMode, keep_resident: usize) -> Self {
        let usable = usable.div_ceil(PAGE) * PAGE;
        assert!(
            usable >= corosensei::stack::MIN_STACK_SIZE,
            "fiber stacks must be at least {} bytes",
            corosensei::stack::MIN_STACK_SIZE
        );
        StackPool {
            usable,
            mode,
            keep_resident,
            permanent_budget: max_map_count() / 2,
            free: Mutex::new(Vec::new()),
            permanent_stacks: AtomicUsize::new(0),
            total_stacks: AtomicUsize::new(0),
        }
    }

    /// Usable bytes per stack.
    pub(crate) fn stack_size(&self) -> usize {
        self.usable
    }

    /// Stacks ever mapped (free or in use).
    pub(crate) fn total(&self) -> usize {
        self.total_stacks.load(Ordering::Relaxed)
    }

    /// Takes up to `n` stacks into `out`, mapping a new chunk if the pool is empty.
    pub(crate) fn take_batch(&self, out: &mut Vec<FiberStack>, n: usize) -> Result<(), StackError> {
        let mut free = self.free.lock();
        if free.is_empty() {
            self.new_chunk(&mut free)?;
        }
        let k = n.min(free.len());
        let at = free.len() - k;
        out.extend(free.drain(at..));
        Ok(())
    }

    /// Returns stacks to the pool. Past `keep_resident` idle stacks, their pages go back to
    /// the kernel (the address range stays in the chunk).
    pub(crate) fn give_back(&self, stacks: impl Iterator<Item = FiberStack>) {
        let mut free = self.free.lock();
        for s in stacks {
            if free.len() >= self.keep_resident {
                decommit(&s);
            }
            free.push(s);
        }
    }

    fn new_chunk(&self, free: &mut Vec<FiberStack>) -> Result<(), StackError> {
        let stride = self.usable + PAGE;
        let len = stride * STACKS_PER_CHUNK;
        let permanent = match self.mode {
            GuardMode::Permanent => true,
            GuardMode::WhileRunning => false,
            GuardMode::Auto => {
                self.permanent_stacks.load(Ordering::Relaxed) + STACKS_PER_CHUNK
                    <= self.permanent_budget / 2
            }
        };
        let err = |source| StackError {
            source,
            max_map_count: max_map_count(),
            mappings: self.mappings(),
        };
        // SAFETY: a fresh anonymous private mapping; no existing memory is affected.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(err(io::Error::last_os_error()));
        }
        let chunk = Arc::new(Chunk {
            addr: addr as usize,
            len,
        });
        let mut stacks = Vec::with_capacity(STACKS_PER_CHUNK);
        for i in 0..STACKS_PER_CHUNK {
            let limit = chunk.addr + i * stride;
            // The first stack of every chunk has a permanent guard even in `WhileRunning`
            // mode: the `PROT_NONE` page at the chunk's bottom stops the kernel from merging
            // adjacent chunks into one huge mapping, which every guard toggle would then
            // split and re-merge while other threads fault pages in it (measured: 1M parked
            // fibers took 21-34 s to spawn with merged chunks).
            let permanent_guard = permanent || i == 0;
            if permanent_guard {
                // SAFETY: the guard page lies inside the mapping we just created and no
                // object lives there.
                let rc = unsafe { libc::mprotect(limit as *mut libc::c_void, PAGE, libc::PROT_NONE) };
                if rc != 0 {
                    // Dropping `stacks` and `chunk` unmaps the whole chunk.
                    return Err(err(io::Error::last_os_error()));
                }
            }
            stacks.push(FiberStack {
                base: limit + stride,
                limit,
                armed_on_run: !permanent_guard,
                _chunk: chunk.clone(),
            });
        }
        if permanent {
            self.permanent_stacks
                .fetch_add(STACKS_PER_CHUNK, Ordering::Relaxed);
        }
        self.total_stacks
            .fetch_add(STACKS_PER_CHUNK, Ordering::Relaxed);
        // Hand out the lowest stacks first: reversing keeps `pop()` walking up the chunk.
        stacks.reverse();
        free.extend(stacks);
        Ok(())
    }

    /// Kernel mappings our stacks use, roughly: two per permanently guarded stack, two per
    /// `WhileRunning` chunk.
    fn mappings(&self) -> usize {
        let perm = self.permanent_stacks.load(Ordering::Relaxed);
        let total = self.total_stacks.load(Ordering::Relaxed);
        2 * perm + 2 * (total - perm) / STACKS_PER_CHUNK
    }
}

/// Returns a stack's pages to the kernel; the next use refaults them zeroed.
fn decommit(s: &FiberStack) {
    let start = s.limit + PAGE;
    // SAFETY: `[start, base)` is the usable part of a stack owned by the pool: no fiber runs
    // on it and nothing refers into it, so discarding its contents is unobservable.
    unsafe {
        libc::madvise(start as *mut libc::c_void, s.base - start, libc::MADV_DONTNEED);
    }
}
