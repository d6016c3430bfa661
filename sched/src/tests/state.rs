//! The task state machine, step by step (the loom model covers the interleavings).

use crate::task::{AfterRun, State, WakeAction};

#[test]
fn wake_while_idle_schedules_once() {
    let s = State::new_scheduled();
    assert!(s.start());
    assert_eq!(s.after_run(), AfterRun::Idle);
    assert_eq!(s.wake(), WakeAction::Schedule);
    assert_eq!(s.wake(), WakeAction::None, "queued twice");
    assert!(s.start());
}

#[test]
fn wake_while_running_is_kept() {
    let s = State::new_scheduled();
    assert!(s.start());
    assert_eq!(s.wake(), WakeAction::None);
    assert_eq!(s.wake(), WakeAction::None);
    assert_eq!(s.after_run(), AfterRun::Requeue);
    assert!(s.start());
    assert_eq!(s.after_run(), AfterRun::Idle);
}

#[test]
fn done_is_terminal() {
    let s = State::new_scheduled();
    assert!(s.complete());
    assert!(!s.complete());
    assert_eq!(s.wake(), WakeAction::None);
    assert!(!s.start(), "a finished task was started");
}
