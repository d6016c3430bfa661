//! rusm-otp integration tests: Erlang's documented semantics as the spec.

mod exits;
mod futures;
mod gen_server;
mod groups;
mod invariants;
mod mailbox;
mod registry;
mod signals;
mod streams;
mod supervisors;
mod tcp;

use std::time::Duration;

use rusm_otp::{ExitReason, MonitorRef, Node, Received};

pub fn node() -> Node {
    Node::with_runtime(rusm_sched::Runtime::builder().workers(2).build().unwrap())
}

pub const T: Duration = Duration::from_secs(10);

/// Receives the next item or fails the test after `T`.
pub fn recv() -> Received {
    match rusm_otp::receive_timeout(T) {
        Received::Timeout => panic!("nothing received within {T:?}"),
        r => r,
    }
}

/// Waits (at most `T`) for the `Down` of monitor `m`, leaving every other item in the
/// mailbox; its reason.
pub fn wait_down(m: MonitorRef) -> ExitReason {
    match rusm_otp::receive_match(|r| matches!(r, Received::Down { monitor, .. } if *monitor == m), Some(T)) {
        Received::Down { reason, .. } => reason,
        other => panic!("no DOWN within {T:?}: {other:?}"),
    }
}
