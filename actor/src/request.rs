//! Request/reply between processes, with the reply addressed to an alias (EEP 53, as
//! OTP 24+'s `gen_server:call` does it), shared by the gen-server's calls, the
//! supervisor's requests and the acknowledgement of a synchronous start (`start.rs`).
//!
//! # Invariants
//!
//! * A request waits on an *alias*: a number, unique in the node, that the caller holds in
//!   its cold state while it waits. A reply is enqueued only if, under the caller's lock,
//!   the caller still holds that alias; the same step removes it, so at most one reply
//!   per request is ever enqueued.
//! * When the wait ends (a reply, the server's `Down`, or the timeout) the caller drops the
//!   alias and flushes any reply already enqueued under that same lock: a reply that comes
//!   after the caller gave up never reaches its mailbox, so it cannot be mistaken for
//!   anything later.
//! * A reply is never refused or evicted by the caller's mailbox bound, and never triggers
//!   its overflow policy (like an exit signal): the caller asked for exactly one. It is
//!   counted as a message while it waits.

use std::time::Duration;

use crate::{Message, MonitorRef, Pid, Received};

/// Where a reply goes: the caller and the alias its request waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplyTo {
    pub(crate) pid: Pid,
    pub(crate) alias: u64,
}

impl ReplyTo {
    /// Sends the reply: enqueued only if the caller still waits on the alias (it is then
    /// used up), else dropped, as is a reply to a dead caller.
    pub(crate) fn send(self, msg: Message) {
        crate::with_me(|p| {
            p.check_exit();
            p.node.deliver_reply(self.pid, self.alias, msg);
        });
        rusm_sched::coop::spend(1);
    }
}

/// What a request ended with.
pub(crate) enum Answer {
    /// The reply message.
    Reply(Message),
    /// The server ended (or was already dead) with this reason.
    Down(crate::ExitReason),
    /// No reply within the timeout.
    Timeout,
}

/// The request/reply pattern: take an alias, monitor `server`, send the message `make`
/// builds for that reply address, then [`wait_reply`].
pub(crate) fn request(
    server: Pid,
    make: impl FnOnce(ReplyTo) -> Message,
    is_reply: impl Fn(&Message, u64) -> bool,
    timeout: Duration,
) -> Answer {
    let to = alias();
    let m = crate::monitor(server);
    crate::send(server, make(to));
    wait_reply(to, m, is_reply, Some(timeout))
}

/// Takes a new alias in the calling process: replies to it are accepted until
/// [`wait_reply`] drops it.
pub(crate) fn alias() -> ReplyTo {
    let me = crate::me();
    let alias = me.node.new_ref().to_u64();
    me.state.lock().cold().aliases.insert(alias);
    ReplyTo { pid: me.pid, alias }
}

/// Drops the alias of `to` and, under the same lock, any reply to it already queued
/// (`is_reply` says which messages those are): from here no reply to it can arrive.
pub(crate) fn unalias(to: ReplyTo, is_reply: impl Fn(&Message, u64) -> bool) {
    crate::with_me(|me| {
        let mut st = me.state.lock();
        if let Some(c) = st.cold_mut() {
            c.aliases.remove(&to.alias);
        }
        st.retain_messages(|msg| !is_reply(msg, to.alias));
    });
}

/// Waits for the first message `is_reply` accepts as the reply to `to`'s alias, the
/// `Down` of monitor `m`, or the timeout (`None`: for ever); then drops the alias, flushes
/// a reply that came meanwhile (under the same lock, so none can come later) and removes
/// the monitor (flushing its `Down`).
pub(crate) fn wait_reply(
    to: ReplyTo,
    m: MonitorRef,
    is_reply: impl Fn(&Message, u64) -> bool,
    timeout: Option<Duration>,
) -> Answer {
    let alias = to.alias;
    let got = crate::receive_match(
        |r| match r {
            Received::Message(msg) => is_reply(msg, alias),
            Received::Down { monitor, .. } => *monitor == m,
            _ => false,
        },
        timeout,
    );
    unalias(to, &is_reply);
    crate::demonitor(m, true);
    match got {
        Received::Message(msg) => Answer::Reply(msg),
        Received::Down { reason, .. } => Answer::Down(reason),
        _ => Answer::Timeout,
    }
}
