//! Sync types for the atomics that loom model-checks (task state, parker, idle), as
//! `tokio/src/loom` does: std's under a normal build, loom's under `--cfg loom`.

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) use std::sync::{Condvar, Mutex};

    pub(crate) mod atomic {
        pub(crate) use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
    }
}

#[cfg(loom)]
pub(crate) mod sync {
    pub(crate) use loom::sync::{Condvar, Mutex};

    pub(crate) mod atomic {
        pub(crate) use loom::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
    }
}
