//! Timers: `send_after` and `cancel_timer` (Erlang's `erlang:send_after/3`,
//! `erlang:cancel_timer/1`), on rusm-sched's timer wheel.
//!
//! # Rules
//!
//! * A timer to a pid that is not alive is never set (Erlang: "the timer is automatically
//!   canceled"): no entry, nothing held.
//! * A timer is cancelled when its destination dies (Erlang's rule): the destination
//!   keeps the ids of the timers aimed at it (`Cold::timers_in`), and its exit cancels them.
//! * A process spawned with [`SpawnOpts::timer_limit`] owns the timers it starts: they are
//!   counted with the bytes their messages hold, refused past the limit
//!   ([`try_send_after`]), and cancelled when it exits (`Cold::timers_out`). This is how the
//!   Wasm host bounds a guest's timers and makes them end with it; Erlang has no such rule.
//! * A delay too long for the wheel (over two years) means never: the timer holds its
//!   message but no wheel entry, and costs nothing while it waits.
//!
//! # Protocol
//!
//! ```text
//! try_send_after: 1. owner (if limited): check and charge, note id     (owner's lock)
//!                 2. destination: note id, or give up if it is dead    (its lock)
//!                 3. call_after(delay, fire)                           (the wheel)
//!                 4. both notes get the wheel key; a note gone by now means the
//!                    destination died (or the timer fired): cancel the key
//! fire:           owner's note removed (uncharged); destination's note removed and the
//!                 message queued, under the destination's lock, only if the note was there
//! exit:           every note's key cancelled, and the note at the other end removed
//! ```
//!
//! [`SpawnOpts::timer_limit`]: crate::SpawnOpts::timer_limit

use std::time::Duration;

use crate::process::{NodeInner, Process};
use crate::{Message, Pid, Received};

/// A timer from [`send_after`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerRef {
    id: u64,
    key: Option<rusm_sched::TimerKey>,
    to: Pid,
    owner: Pid,
}

impl TimerRef {
    /// The timer's id, unique per node (what a guest holds as its `timer-id`).
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// How many timers a process may have pending at once, and how many bytes their
/// messages may hold ([`SpawnOpts::timer_limit`](crate::SpawnOpts::timer_limit)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerLimit {
    /// Pending timers.
    pub timers: usize,
    /// Bytes their messages hold ([`Message::Bytes`] lengths plus 64 a timer).
    pub bytes: usize,
}

/// Why [`try_send_after`] set no timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimerError {
    /// The caller's [`TimerLimit`] would be exceeded.
    #[error("the process's timer limit is reached")]
    Limit,
}

/// A timer noted at its destination.
#[derive(Debug)]
pub(crate) struct TimerIn {
    key: Option<rusm_sched::TimerKey>,
    /// The owner, when it counts its timers.
    owner: Option<Pid>,
}

/// A timer noted at an owner that counts its timers.
#[derive(Debug)]
pub(crate) struct TimerOut {
    key: Option<rusm_sched::TimerKey>,
    to: Pid,
    bytes: usize,
}

/// The most a timer may wait before it counts as never firing (the wheel's horizon).
const NEVER: Duration = Duration::from_millis(1 << 36);

fn bytes_of(msg: &Message) -> usize {
    64 + match msg {
        Message::Bytes(b) => b.len(),
        Message::Value(_) => 0,
    }
}

/// Sends `msg` to `to` after `delay` (Erlang's `erlang:send_after/3`). Not set if `to`
/// is dead; cancelled if `to` dies first. A caller over its [`TimerLimit`] sets nothing
/// (use [`try_send_after`] to be told).
///
/// # Panics
///
/// Outside a process.
pub fn send_after(delay: Duration, to: Pid, msg: impl Into<Message>) -> TimerRef {
    let me = crate::me();
    let id = me.node.new_ref().to_u64();
    start(&me, id, delay, to, msg.into()).unwrap_or(TimerRef { id, key: None, to, owner: me.pid })
}

/// [`send_after`], refused with [`TimerError::Limit`] when the caller's
/// [`TimerLimit`] would be exceeded.
///
/// # Errors
///
/// [`TimerError::Limit`].
///
/// # Panics
///
/// Outside a process.
pub fn try_send_after(delay: Duration, to: Pid, msg: impl Into<Message>) -> Result<TimerRef, TimerError> {
    let me = crate::me();
    let id = me.node.new_ref().to_u64();
    start(&me, id, delay, to, msg.into())
}

fn start(me: &std::sync::Arc<Process>, id: u64, delay: Duration, to: Pid, msg: Message) -> Result<TimerRef, TimerError> {
    let node = &me.node;
    let bytes = bytes_of(&msg);
    // 1. The owner's count.
    let counted = {
        let mut st = me.state.lock();
        match st.cold_mut().and_then(|c| c.timer_limit.map(|l| (l, c))) {
            Some((limit, cold)) => {
                if cold.timers_out.len() >= limit.timers || cold.timer_bytes + bytes > limit.bytes {
                    return Err(TimerError::Limit);
                }
                cold.timer_bytes += bytes;
                cold.timers_out.insert(id, TimerOut { key: None, to, bytes });
                true
            }
            None => false,
        }
    };
    let owner = counted.then_some(me.pid);
    let dead = TimerRef { id, key: None, to, owner: me.pid };
    // 2. The destination's note.
    let noted = node.with_live_state(to, |st| {
        st.alive && {
            st.cold().timers_in.insert(id, TimerIn { key: None, owner });
            true
        }
    });
    if noted != Some(true) {
        uncharge(me, id);
        return Ok(dead);
    }
    if delay >= NEVER {
        // Never fires: the notes stay (so exits still clean up), no wheel entry.
        return Ok(dead);
    }
    // 3. The wheel.
    let n2: std::sync::Arc<NodeInner> = (**node).clone();
    let key = node.handle.call_after(delay, move || fire(&n2, id, to, owner, msg));
    // 4. The keys.
    let kept = node.with_live_state(to, |st| match st.cold_mut().and_then(|c| c.timers_in.get_mut(&id)) {
        Some(t) => {
            t.key = Some(key);
            true
        }
        None => false,
    });
    if kept != Some(true) {
        // The destination died (its exit could not cancel a key it did not have) or the
        // timer already fired: either way nothing more is due.
        node.handle.cancel_timer(key);
        uncharge(me, id);
        return Ok(dead);
    }
    if counted && let Some(t) = me.state.lock().cold_mut().and_then(|c| c.timers_out.get_mut(&id)) {
        t.key = Some(key);
    }
    Ok(TimerRef { id, key: Some(key), to, owner: me.pid })
}

/// A timer fired: uncharge the owner, deliver if the destination still has its note.
fn fire(node: &NodeInner, id: u64, to: Pid, owner: Option<Pid>, msg: Message) {
    if let Some(o) = owner
        && let Some(p) = node.get(o)
    {
        uncharge(&p, id);
    }
    if let Some(p) = node.get(to) {
        let w = {
            let mut st = p.state.lock();
            if !st.alive || st.cold_mut().and_then(|c| c.timers_in.remove(&id)).is_none() {
                return;
            }
            let queued = st.enqueue(Received::Message(msg));
            if st.pending_exit.is_some() {
                p.signalled.store(true, std::sync::atomic::Ordering::Release);
            } else if !queued {
                return;
            }
            st.waker.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }
}

/// Forgets the owner's note of timer `id`, giving back what it was charged.
fn uncharge(owner: &Process, id: u64) {
    let mut st = owner.state.lock();
    if let Some(c) = st.cold_mut()
        && let Some(t) = c.timers_out.remove(&id)
    {
        c.timer_bytes -= t.bytes;
    }
}

/// Cancels a [`send_after`]; `true` if it had not fired.
///
/// # Panics
///
/// Outside a process.
pub fn cancel_timer(t: TimerRef) -> bool {
    let me = crate::me();
    let node = &me.node;
    let noted = node
        .with_live_state(t.to, |st| st.cold_mut().and_then(|c| c.timers_in.remove(&t.id)).is_some())
        .unwrap_or(false);
    if let Some(key) = t.key {
        node.handle.cancel_timer(key);
    }
    if let Some(o) = node.get(t.owner) {
        uncharge(&o, t.id);
    }
    noted
}

/// Cancels the caller's own timer by [`TimerRef::id`] (a process spawned with a
/// [`TimerLimit`] keeps its timers by id); `false` if it fired, was cancelled, or is not
/// the caller's.
///
/// # Panics
///
/// Outside a process.
pub fn cancel_timer_id(id: u64) -> bool {
    let me = crate::me();
    let to = {
        let st = me.state.lock();
        match st.cold.as_deref().and_then(|c| c.timers_out.get(&id)) {
            Some(t) => TimerRef { id, key: t.key, to: t.to, owner: me.pid },
            None => return false,
        }
    };
    cancel_timer(to)
}

/// At exit: cancel the timers aimed at the process and those it owns, and forget each at
/// its other end. `timers_in` and `timers_out` are the dead process's notes.
pub(crate) fn end_all(
    node: &NodeInner,
    me: Pid,
    timers_in: std::collections::HashMap<u64, TimerIn>,
    timers_out: std::collections::HashMap<u64, TimerOut>,
) {
    for (id, t) in timers_in {
        if let Some(key) = t.key {
            node.handle.cancel_timer(key);
        }
        if let Some(o) = t.owner.filter(|&o| o != me)
            && let Some(p) = node.get(o)
        {
            uncharge(&p, id);
        }
    }
    for (id, t) in timers_out {
        if let Some(key) = t.key {
            node.handle.cancel_timer(key);
        }
        if t.to != me {
            let _ = node.with_live_state(t.to, |st| st.cold_mut().map(|c| c.timers_in.remove(&id)));
        }
    }
}
