//! Reductions: the preemption budget of native bodies.
//!
//! Native fibers are cooperative. Runtime calls that can be made in a loop spend reductions
//! from the running task's budget — today `spawn` (one each); the actor layer adds send and
//! receive — and a body that has spent its budget yields at its next such call. A body can
//! spend explicitly with [`spend`]. The budget is refilled each time a worker starts running
//! a task.
//!
//! 4000 reductions per slice follows the BEAM, whose `CONTEXT_REDS` has been 4000 since
//! OTP 20.

use std::cell::Cell;

/// Reductions per scheduling slice (BEAM's `CONTEXT_REDS`).
pub const BUDGET: u32 = 4000;

thread_local! {
    static LEFT: Cell<u32> = const { Cell::new(BUDGET) };
}

/// Called by the worker loop on the worker's own stack (never inside a fiber), so it may
/// be inlined.
#[inline]
pub(crate) fn reset() {
    LEFT.set(BUDGET);
}

/// Spends `n` reductions; if the running fiber's budget is used up, yields it first (it
/// goes to the back of its worker's queue). Outside a fiber this only counts.
///
/// # Examples
///
/// ```
/// let rt = rusm_sched::Runtime::new().unwrap();
/// rt.block_on(async {
///     rusm_sched::spawn(|| {
///         for _ in 0..100_000 {
///             // A busy loop that still lets other fibers run.
///             rusm_sched::coop::spend(1);
///         }
///     })
///     .unwrap()
///     .await
///     .unwrap();
/// });
/// ```
#[inline(never)] // thread-local access; see the fiber invariants in `fiber.rs`
pub fn spend(n: u32) {
    let exhausted = LEFT.with(|l| {
        let left = l.get();
        if left > n {
            l.set(left - n);
            false
        } else {
            l.set(0);
            true
        }
    });
    if exhausted && crate::fiber::in_fiber() {
        crate::yield_now();
    }
}

/// Reductions left in the current slice.
#[inline(never)]
pub fn remaining() -> u32 {
    LEFT.get()
}
