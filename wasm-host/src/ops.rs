//! The guest operations, once for every guest ABI: each actor call a guest can make, with
//! the rules that contain it — the process capabilities of its profile and the quotas
//! charged to it. The bridges (`bridges/wasip1.rs` for the raw `rusm` module,
//! `bridges/wasip2.rs` and `wasip3.rs` for the WIT world) only read their arguments, call
//! these, and turn a [`Refusal`] into their status code or WIT error.
//!
//! # Process capabilities (object-capability style)
//!
//! Holding a pid lets a guest send to it, monitor it and ask whether it is alive, under
//! every profile. Acting on a process — a signal (`kill`, `exit`), a link (a signal path),
//! `info`, and listing — needs the process to be of the guest's own app (its realm:
//! itself, what it spawned, what its app started), unless the guest is `Trusted`. A
//! guest may register a name only for a process it may act on, and only a free name; it
//! may unregister only a name held by a process of its app. `docs/SECURITY.md` has the
//! table and the test of each row.

use std::time::Duration;

use rusm_otp::stream;
use rusm_otp::{ExitReason, Pid, ProcessInfo, Realm, SpawnOpts, Spawned};

use crate::app::{NoSlot, Slot};
use crate::process::{ProcState, StreamEnd, YieldOnce};

/// Why an operation did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The process is not alive.
    NoProc,
    /// Outside what the guest's profile lets it act on.
    Denied,
    /// A quota or host limit.
    Limit,
    /// No such name or artifact.
    NotFound,
    /// The name is taken, or the process already has one.
    Taken,
    /// An argument the call does not take.
    Invalid,
}

/// The longest exit reason a guest may give, in bytes.
pub(crate) const MAX_REASON: usize = 1024;

impl ProcState {
    /// The guest's app.
    pub(crate) fn app(&self) -> Realm {
        self.slot.app.realm
    }

    /// May the guest act on `p` (signal, link, inspect)? `NoProc` if `p` is not alive.
    fn reach(&self, p: Pid) -> Result<(), Refusal> {
        match rusm_otp::realm_of(p) {
            None => Err(Refusal::NoProc),
            Some(_) if self.caps.reaches_other_apps() => Ok(()),
            Some(r) if r == self.app() => Ok(()),
            Some(_) => Err(Refusal::Denied),
        }
    }
}

/// `send`: never blocks; to a dead pid it is dropped (Erlang). A full bounded mailbox
/// refuses it: `Limit`, and the message is not queued.
pub(crate) fn send(to: Pid, msg: Vec<u8>) -> Result<(), Refusal> {
    match rusm_otp::try_send(to, msg) {
        Ok(()) | Err(rusm_otp::TrySendError::NoProc(_)) => Ok(()),
        Err(rusm_otp::TrySendError::Full(_)) => Err(Refusal::Limit),
    }
}

/// `kill` (`exit(p, kill)`).
pub(crate) fn kill(st: &ProcState, p: Pid) -> Result<(), Refusal> {
    st.reach(p)?;
    rusm_otp::kill(p);
    Ok(())
}

/// `exit(p, reason)` (Erlang's `exit/2`). A reason text over [`MAX_REASON`] is `Invalid`.
pub(crate) fn exit(st: &ProcState, p: Pid, reason: ExitReason) -> Result<(), Refusal> {
    if let ExitReason::Crashed(s) | ExitReason::Other(s) | ExitReason::ShutdownWith(s) = &reason
        && s.len() > MAX_REASON
    {
        return Err(Refusal::Invalid);
    }
    st.reach(p)?;
    rusm_otp::exit(p, reason);
    Ok(())
}

/// `link`: as rusm-otp's (a trapping caller linking a dead pid gets an exit item), but
/// only to a process the guest may act on.
pub(crate) fn link(st: &ProcState, p: Pid) -> Result<(), Refusal> {
    match st.reach(p) {
        Ok(()) | Err(Refusal::NoProc) => rusm_otp::link(p).map_err(|_| Refusal::NoProc),
        Err(e) => Err(e),
    }
}

/// `info`.
pub(crate) fn info(st: &ProcState, p: Pid) -> Result<ProcessInfo, Refusal> {
    st.reach(p)?;
    rusm_otp::info(p).ok_or(Refusal::NoProc)
}

/// `list-processes`: the guest's app's processes (every process, for `Trusted`).
pub(crate) fn list_processes(st: &ProcState) -> Vec<Pid> {
    if st.caps.reaches_other_apps() { rusm_otp::processes() } else { rusm_otp::processes_in(st.app()) }
}

/// `group_members(name)`: the members of the pg group `name` the guest may act on (its
/// app's, or every member for `Trusted`), as [`list_processes`].
pub(crate) fn group_members(st: &ProcState, name: &str) -> Vec<Pid> {
    let all = rusm_otp::pg::members(name);
    if st.caps.reaches_other_apps() {
        return all;
    }
    let app = st.app();
    all.into_iter().filter(|p| rusm_otp::realm_of(*p) == Some(app)).collect()
}

/// `register(name, p)`: a free name, for a process the guest may act on.
pub(crate) fn register(st: &ProcState, name: &str, p: Pid) -> Result<(), Refusal> {
    st.reach(p)?;
    rusm_otp::register(name, p).map_err(|e| match e {
        rusm_otp::RegisterError::NoProc => Refusal::NoProc,
        _ => Refusal::Taken,
    })
}

/// `unregister(name)`: only a name held by a process of the guest's app (any, for
/// `Trusted`).
pub(crate) fn unregister(st: &ProcState, name: &str) -> Result<(), Refusal> {
    if st.caps.reaches_other_apps() {
        return if rusm_otp::unregister(name) { Ok(()) } else { Err(Refusal::NotFound) };
    }
    rusm_otp::unregister_in(name, st.app()).map_err(|e| match e {
        rusm_otp::UnregisterError::NotFound => Refusal::NotFound,
        rusm_otp::UnregisterError::OtherRealm => Refusal::Denied,
    })
}

/// `spawn` of a loaded artifact, with the caller's caps, in its app, charged to the app
/// (`Limit` past its process quota or when the host's pool is full; `NotFound` for no
/// such artifact or entry). A refused spawn yields the guest first, so a spawn loop at
/// its limit does not hold a worker for a whole time slice.
pub(crate) async fn spawn(st: &mut ProcState, name: &str, link: bool, monitor: bool, msg: Option<Vec<u8>>) -> Result<Spawned, Refusal> {
    let r = try_spawn(st, name, link, monitor, msg);
    if r.is_err() {
        YieldOnce::default().await;
    }
    r
}

fn try_spawn(st: &mut ProcState, name: &str, link: bool, monitor: bool, msg: Option<Vec<u8>>) -> Result<Spawned, Refusal> {
    let host = st.host.clone();
    let art = host.artifact(name).ok_or(Refusal::NotFound)?;
    let caps = st.caps.for_child();
    let slot = Slot::acquire(&host, st.slot.app.clone(), Some(caps.quota().processes)).map_err(|e| match e {
        NoSlot::App(_) | NoSlot::Pool(_) => Refusal::Limit,
    })?;
    let spawn = SpawnOpts { link, monitor, ..SpawnOpts::default() };
    let (fut, opts) = host.guest(&art, None, caps, slot, spawn).map_err(|_| Refusal::NotFound)?;
    let s = rusm_otp::spawn_future_opt("wasm", opts, fut).map_err(|_| Refusal::Limit)?;
    if let Some(m) = msg {
        // Its first message; a message over its whole mailbox bound is dropped.
        let _ = rusm_otp::try_send(s.pid, m);
    }
    Ok(s)
}

/// `send-after`: `Limit` past the guest's timer quota. A delay too long for the timer
/// wheel is never (the timer holds its message until cancelled, or until the guest or
/// `to` ends).
pub(crate) fn send_after(to: Pid, msg: Vec<u8>, delay_ms: u64) -> Result<u64, Refusal> {
    rusm_otp::try_send_after(Duration::from_millis(delay_ms), to, msg).map(|t| t.id()).map_err(|_| Refusal::Limit)
}

/// `cancel-timer`: `true` if the guest's timer had not fired.
pub(crate) fn cancel_timer(id: u64) -> bool {
    rusm_otp::cancel_timer_id(id)
}

/// `sleep`: parks the process (a kill still wakes it); a duration too long for the timer
/// wheel sleeps for ever, at no cost.
pub(crate) async fn sleep(ms: u64) {
    let mut sleep = rusm_sched::Sleep::new(Duration::from_millis(ms));
    crate::bridges::wasip1::watched(|cx| std::future::Future::poll(std::pin::Pin::new(&mut sleep), cx)).await;
}

/// `stream-open`: a writer handle, if the guest has a handle free (`Limit`) and `to`
/// takes the stream (`NoProc`; `Limit` when its mailbox is full).
pub(crate) fn stream_open(st: &mut ProcState, to: Pid) -> Result<u32, Refusal> {
    if st.open_streams() >= st.caps.quota().streams {
        return Err(Refusal::Limit);
    }
    match stream::open(to) {
        Ok(w) => Ok(st.add_stream(StreamEnd::Writer(w))),
        Err(stream::StreamError::Full) => Err(Refusal::Limit),
        Err(_) => Err(Refusal::NoProc),
    }
}

/// A handle for a stream opened to the guest, taken from its mailbox; `Limit` (and the
/// stream dropped: its writer sees it closed) if the guest holds its quota of handles.
pub(crate) fn accept_reader(st: &mut ProcState, r: stream::StreamReader) -> Result<u32, Refusal> {
    if st.open_streams() >= st.caps.quota().streams {
        return Err(Refusal::Limit);
    }
    Ok(st.add_stream(StreamEnd::Reader(r)))
}
