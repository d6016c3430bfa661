//! Synchronous starts (OTP's `proc_lib:start_link`): the caller of a gen-server's or a
//! supervisor's `start`/`start_link` returns only once the new process has finished its
//! initialisation, and learns if it failed.
//!
//! # Protocol
//!
//! 1. The caller spawns the process, linked if asked, and monitored (the monitor is the
//!    caller's own, removed when the start returns).
//! 2. The new process runs its initialisation, then acknowledges with a reply to an alias
//!    the caller took before the spawn ([`Ack::ok`], `request.rs`): never dropped by the
//!    caller's mailbox bound.
//! 3. The caller waits for that acknowledgement or the monitor's `Down`: the first gives
//!    `Ok(pid)`, the second `Err(StartError::Init(reason))`. A caller that is linked and
//!    does not trap exits also receives the failed process's exit signal, and so ends with
//!    its reason, as with OTP 25.

use crate::request::{self, Answer, ReplyTo};
use crate::{ExitReason, Message, Pid, SpawnError, SpawnOpts};

/// Why a synchronous start (a gen-server's or a supervisor's) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The process could not be spawned.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// Its initialisation failed, and it exited with this reason (OTP's `{error, Reason}`;
    /// a supervisor whose child failed to start gives
    /// `{shutdown,{failed_to_start_child,Id,Why}}`).
    #[error("the process failed to start: {0}")]
    Init(ExitReason),
}

/// The acknowledgement a starting process owes its starter: a reply to the alias the
/// starter waits on (`request.rs`), so the starter's mailbox bound never drops it.
#[derive(Debug)]
pub(crate) struct Ack {
    to: ReplyTo,
}

/// The message of an acknowledgement, tagged with the starter's alias.
struct Acked(u64);

impl Ack {
    /// Initialisation is done: the starter's `start` returns `Ok`.
    pub(crate) fn ok(self) {
        self.to.send(Message::value(Acked(self.to.alias)));
    }
}

/// Is `msg` the acknowledgement to `alias`?
fn is_ack(msg: &Message, alias: u64) -> bool {
    msg.downcast_ref::<Acked>().is_some_and(|a| a.0 == alias)
}

/// Spawns `body` (linked to the caller if `link`) and waits until it calls [`Ack::ok`] or
/// ends. See the module docs.
pub(crate) fn start_sync(
    link: bool,
    body: impl FnOnce(Ack) + Send + 'static,
) -> Result<Pid, StartError> {
    let to = request::alias();
    let opts = SpawnOpts {
        link,
        monitor: true,
        ..SpawnOpts::default()
    };
    let spawned = match crate::spawn_opt(opts, move || body(Ack { to })) {
        Ok(s) => s,
        Err(e) => {
            request::unalias(to, is_ack);
            return Err(e.into());
        }
    };
    match request::wait_reply(to, spawned.monitor.expect("monitor requested"), is_ack, None) {
        Answer::Down(reason) => Err(StartError::Init(reason)),
        _ => Ok(spawned.pid),
    }
}
