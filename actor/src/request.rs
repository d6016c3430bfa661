//! Request/reply between processes, with the reply addressed to an alias (EEP 53, as
//! OTP 24+'s `gen_server:call` does it), shared by the gen-server and the supervisor.
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

use std::time::Duration;

use crate::{Message, Pid, Received};

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
/// builds for that reply address, then wait for the first message `is_reply` accepts as the
/// reply to that alias, the
/// server's `Down`, or the timeout. The alias is dropped and the monitor removed (a late
/// reply or `Down` flushed) either way.
pub(crate) fn request(
    server: Pid,
    make: impl FnOnce(ReplyTo) -> Message,
    is_reply: impl Fn(&Message, u64) -> bool,
    timeout: Duration,
) -> Answer {
    let me = crate::me();
    let alias = me.node.new_ref().to_u64();
    me.state.lock().cold().aliases.insert(alias);
    let reply_to = ReplyTo { pid: me.pid, alias };
    let m = crate::monitor(server);
    crate::send(server, make(reply_to));
    let got = crate::receive_match(
        |r| match r {
            Received::Message(msg) => is_reply(msg, alias),
            Received::Down { monitor, .. } => *monitor == m,
            _ => false,
        },
        Some(timeout),
    );
    {
        let mut st = me.state.lock();
        if let Some(c) = st.cold_mut() {
            c.aliases.remove(&alias);
        }
        st.retain_messages(|msg| !is_reply(msg, alias));
    }
    crate::demonitor(m, true);
    match got {
        Received::Message(msg) => Answer::Reply(msg),
        Received::Down { reason, .. } => Answer::Down(reason),
        _ => Answer::Timeout,
    }
}
