//! Processes: the table, per-process state, exit propagation and the mailbox.
//!
//! # Lifecycle
//!
//! ```text
//!  spawn: slot in the table (pid) -> links/monitor set up -> fiber spawned with the
//!         process as its task data
//!  run:   the body; receive parks the fiber; exit signals that kill are noted and the
//!         process unwinds at its next runtime call (receive, send, check)
//!  exit:  reason = normal | panic -> crashed | killed | exit signal's reason
//!         1. mark dead (sends to it are now dropped), take links, monitors, names;
//!            break the stream ends it owns if the reason is abnormal; leave its groups
//!         2. release its registered names          (before any signal goes out)
//!         3. free its table slot
//!         4. drop the monitors it held on others
//!         5. exit signal to every linked process (its own reason, `kill` included),
//!            Down to every monitor
//! ```
//!
//! # Signals
//!
//! An exit signal is resolved when it is delivered, under the receiver's lock, by
//! [`deliver_exit`] (the table there is Erlang's, Reference Manual, "Processes",
//! "Receiving Exit Signals"): a trapping process gets `Received::Exit` in its mailbox (in
//! arrival order with its messages); otherwise an abnormal reason marks the process to exit
//! and wakes it. Only `exit(Pid, kill)` is untrappable, and only it becomes `killed`; a
//! process that ends with reason `kill` itself sends a plain, trappable `kill` over its
//! links. Native bodies are cooperative: a marked process exits at its next runtime call
//! (`receive`, `send`, [`check`](crate::check)) or when it returns. The first signal that
//! marks a process decides its reason; later ones are ignored, as on the BEAM.
//!
//! # Links and monitors against a concurrent exit
//!
//! Each end of a link is one entry in that end's `links`. `link` and `unlink` change both
//! ends in one step, under both processes' locks ([`lock_pair`]: in pid order). A link exit
//! signal is delivered only if, under the receiver's lock, the receiver still has the
//! sender in its `links` (it removes it in the same step). So:
//!
//! * `unlink(peer)`: from its return on, no exit signal over that link reaches the caller,
//!   even from a peer that is exiting at that moment (`erlang:unlink/1`'s guarantee): the
//!   peer's signal finds no entry and is dropped.
//! * `link(peer)` finds the peer alive under its lock and adds both ends, so a peer that
//!   exits afterwards holds the caller in the link list it takes, and the caller holds the
//!   peer: the signal is never lost. A peer found dead is `noproc`, unless the link was
//!   already there (then the peer's own signal is on its way).
//! * Concurrent `link` and `unlink` of one pair leave both ends alike.
//! * A `Down` is delivered only if, under the watcher's lock, the watcher still holds the
//!   monitor (removed in the same step). `monitor` adds the watcher's entry before the
//!   target's, so a target that exits after it has its entry always finds the watcher's.
//!   `demonitor(flush)` removes the monitor and flushes
//!   an arrived `Down` under that same lock, so after it returns no `Down` of that monitor
//!   is or will be in the mailbox.
//!
//! # Invariants
//!
//! * A live process is in the table under its pid; a dead one is not, and `alive` is false.
//! * Links are symmetric while both ends live; each end removes the other when it exits or
//!   unlinks.
//! * A registered name maps to a live process; it is released before that process's exit
//!   signals and Down messages go out.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Waker;

use parking_lot::Mutex;

use crate::{ExitReason, Message, MonitorRef, Pid, Received};

/// Unwinds a process's fiber to its root with an exit reason (never a user-visible panic:
/// `resume_unwind` skips the panic hook).
pub(crate) struct ExitUnwind {
    pub(crate) reason: ExitReason,
    /// An exit signal ends the process (Erlang: the process just dies), rather than its own
    /// [`exit_with`](crate::exit_with) (Erlang's `exit/1`, an exception a gen-server catches).
    pub(crate) signal: bool,
}

impl ExitUnwind {
    /// Unwinds the calling fiber: the process is ending on an exit signal.
    pub(crate) fn signal(reason: ExitReason) -> ! {
        std::panic::resume_unwind(Box::new(ExitUnwind { reason, signal: true }))
    }
}

/// Mutable state of one process, under one lock. What every send and receive touches
/// stays here; what most processes never use is in [`Cold`], allocated on first use, so
/// the hot state is a few cache lines (a ring of 10k processes touches one per hop).
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) alive: bool,
    pub(crate) trap_exit: bool,
    pub(crate) mailbox: VecDeque<Received>,
    pub(crate) waker: Option<Waker>,
    /// Set by an exit signal that kills this process; acted on at its next runtime call.
    pub(crate) pending_exit: Option<ExitReason>,
    pub(crate) reductions: u64,
    /// Messages (not signals) in the mailbox now.
    pub(crate) messages: usize,
    /// Messages the mailbox holds at most (signals are never counted or refused).
    pub(crate) capacity: Option<usize>,
    /// Bytes the mailbox's messages may hold at most ([`charge`] each), if bounded.
    pub(crate) byte_capacity: Option<usize>,
    /// Bytes its messages hold now ([`charge`]); kept only when `byte_capacity` is set.
    pub(crate) bytes: usize,
    pub(crate) overflow: crate::Overflow,
    /// The deepest the mailbox has been, when tracking is on.
    pub(crate) peak: Option<usize>,
    /// Messages lost to the overflow policy.
    pub(crate) dropped: u64,
    /// Messages evicted from the middle of a scan (`DropOldest`): a selective receive
    /// in progress starts its scan again when this moves.
    pub(crate) evictions: u64,
    pub(crate) cold: Option<Box<Cold>>,
}

/// The parts of a process's state most processes never use.
#[derive(Debug, Default)]
pub(crate) struct Cold {
    pub(crate) links: HashSet<Pid>,
    /// Monitors this process holds: ref -> monitored pid.
    pub(crate) monitoring: HashMap<MonitorRef, Pid>,
    /// Monitors on this process: ref -> monitoring pid.
    pub(crate) monitored_by: HashMap<MonitorRef, Pid>,
    pub(crate) name: Option<String>,
    pub(crate) label: Option<String>,
    /// Process groups joined (one entry per join, as Erlang's pg).
    pub(crate) groups: Vec<String>,
    /// Stream ends owned by this process, broken if it exits abnormally.
    pub(crate) streams: Vec<std::sync::Weak<crate::stream::Pipe>>,
    /// Aliases a request of this process waits on (`request.rs`): a reply is taken only
    /// for an alias held here.
    pub(crate) aliases: HashSet<u64>,
    /// Timers aimed at this process, by id (`timer.rs`): cancelled when it exits.
    pub(crate) timers_in: HashMap<u64, crate::timer::TimerIn>,
    /// Timers this process owns, when it counts them (`timer_limit`): cancelled when it
    /// exits.
    pub(crate) timers_out: HashMap<u64, crate::timer::TimerOut>,
    /// Its limit on owned timers, if it counts them.
    pub(crate) timer_limit: Option<crate::TimerLimit>,
    /// Bytes its owned timers hold.
    pub(crate) timer_bytes: usize,
}

impl State {
    /// The cold state, allocated if this is its first use.
    pub(crate) fn cold(&mut self) -> &mut Cold {
        self.cold.get_or_insert_with(Box::default)
    }

    /// The cold state if it exists (for removals, which never need to allocate it).
    pub(crate) fn cold_mut(&mut self) -> Option<&mut Cold> {
        self.cold.as_deref_mut()
    }

    /// Queues an item, applying the mailbox bound to messages. Returns `false` if the
    /// item was refused (a full mailbox under `DropNewest`).
    pub(crate) fn enqueue(&mut self, item: Received) -> bool {
        if is_message(&item) && self.refuses(&item) {
            match self.overflow {
                crate::Overflow::DropNewest => {
                    self.dropped += 1;
                    return false;
                }
                crate::Overflow::DropOldest => {
                    // Evict the oldest until the new one fits (one, under a count bound).
                    while self.refuses(&item) {
                        let Some(i) = self.mailbox.iter().position(is_message) else { break };
                        self.take(i);
                        self.evictions += 1;
                    }
                    if self.refuses(&item) {
                        // Bigger than the whole byte bound: it can never fit.
                        self.dropped += 1;
                        return false;
                    }
                    self.dropped += 1;
                }
                crate::Overflow::Exit => {
                    self.dropped += 1;
                    if self.pending_exit.is_none() {
                        self.pending_exit =
                            Some(ExitReason::Other(String::from("mailbox_overflow")));
                    }
                    return false;
                }
            }
        }
        self.push_counted(item);
        true
    }

    /// Queues an item past the bound (its check done, or not applying), keeping the
    /// message count and the high-water mark.
    pub(crate) fn push_counted(&mut self, item: Received) {
        if is_message(&item) {
            self.messages += 1;
            if self.byte_capacity.is_some() {
                self.bytes += charge(&item);
            }
        }
        self.mailbox.push_back(item);
        if let Some(peak) = &mut self.peak {
            *peak = (*peak).max(self.mailbox.len());
        }
    }

    /// Removes the item at `i` (keeping the message count).
    pub(crate) fn take(&mut self, i: usize) -> Option<Received> {
        let item = self.mailbox.remove(i)?;
        if is_message(&item) {
            self.messages -= 1;
            if self.byte_capacity.is_some() {
                self.bytes -= charge(&item);
            }
        }
        Some(item)
    }

    /// Keeps only the messages `keep` accepts (signals stay; the message count follows).
    pub(crate) fn retain_messages(&mut self, mut keep: impl FnMut(&Message) -> bool) {
        let before = self.mailbox.len();
        let counting = self.byte_capacity.is_some();
        let mut freed = 0;
        self.mailbox.retain(|r| match r {
            Received::Message(m) => {
                let k = keep(m);
                if !k && counting {
                    freed += charge(r);
                }
                k
            }
            _ => true,
        });
        self.messages -= before - self.mailbox.len();
        self.bytes -= freed;
    }

    /// Does a bound refuse `item` (a message or stream) now?
    pub(crate) fn refuses(&self, item: &Received) -> bool {
        self.capacity.is_some_and(|c| self.messages >= c)
            || self.byte_capacity.is_some_and(|c| self.bytes.saturating_add(charge(item)) > c)
    }
}

/// What one queued item counts against a byte bound: its payload, plus a fixed overhead
/// for the queue entry and allocation (so empty messages are not free), plus a stream's
/// whole pipe capacity (what its writer may buffer before it is accepted).
pub(crate) fn charge(item: &Received) -> usize {
    const OVERHEAD: usize = 64;
    OVERHEAD
        + match item {
            Received::Message(crate::Message::Bytes(b)) => b.len(),
            Received::Stream(r) => r.capacity(),
            _ => 0,
        }
}

/// Messages and streams count against a mailbox bound; exit signals and `Down`s never do.
fn is_message(item: &Received) -> bool {
    matches!(item, Received::Message(_) | Received::Stream(_))
}

/// A process's strong reference to its node. Processes of one table shard share one
/// `Arc<NodeInner>` clone through a `RefShard`, so spawns and exits on different workers
/// do not all update one contended reference count (that line cost ~5% of a spawn storm).
#[derive(Debug)]
pub(crate) struct NodeRef(Arc<RefShard>);

#[derive(Debug)]
struct RefShard {
    node: Arc<NodeInner>,
}

impl std::ops::Deref for NodeRef {
    type Target = Arc<NodeInner>;

    fn deref(&self) -> &Arc<NodeInner> {
        &self.0.node
    }
}

/// One process.
#[derive(Debug)]
pub(crate) struct Process {
    pub(crate) pid: Pid,
    pub(crate) node: NodeRef,
    pub(crate) state: Mutex<State>,
    /// Set (under the state lock) whenever `pending_exit` is; lets the hot paths skip the
    /// lock when no signal waits.
    pub(crate) signalled: AtomicBool,
    pub(crate) kind: &'static str,
    /// The app it belongs to (fixed at spawn).
    pub(crate) realm: crate::Realm,
}

/// A shard of the process table.
#[derive(Debug, Default)]
struct Shard {
    slots: Vec<(u32, Option<Arc<Process>>)>,
    free: Vec<u32>,
    /// The node reference this shard's processes share (weak: the processes own it).
    node_ref: std::sync::Weak<RefShard>,
}

/// Shards in the process table. A pid's shard is `index % SHARDS`; 16 keeps two cores'
/// spawns and exits from meeting on one lock most of the time.
const SHARDS: u32 = 16;

/// Shards one thread's spawns rotate over: four consecutive ones, a different four for
/// each new thread, so two workers spawning at once rarely meet on a shard lock (a shared
/// counter here cost a contended cache line per spawn).
const SHARDS_PER_THREAD: u32 = 4;

fn local_shard() -> u32 {
    use std::cell::Cell;
    static THREADS: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static NEXT: Cell<(u32, u32)> = const { Cell::new((u32::MAX, 0)) };
    }
    NEXT.with(|c| {
        let (mut base, i) = c.get();
        if base == u32::MAX {
            let t = THREADS.fetch_add(1, Ordering::Relaxed) as u32;
            base = (t * SHARDS_PER_THREAD) % SHARDS;
        }
        c.set((base, i.wrapping_add(1)));
        base + i % SHARDS_PER_THREAD
    })
}

/// What every process of a node shares: the table, the registry, counters. Aligned so
/// the `Arc`'s reference counts (touched by every spawn and exit) do not share a cache
/// line with the fields every send reads.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct NodeInner {
    shards: Box<[Mutex<Shard>]>,
    registry: Mutex<HashMap<String, Pid>>,
    /// Process groups: name -> members, one entry per join.
    pub(crate) groups: Mutex<HashMap<String, Vec<Pid>>>,
    next_ref: AtomicU64,
    pub(crate) handle: rusm_sched::Handle,
}

impl NodeInner {
    pub(crate) fn new(handle: rusm_sched::Handle) -> Arc<NodeInner> {
        Arc::new(NodeInner {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            registry: Mutex::new(HashMap::new()),
            groups: Mutex::new(HashMap::new()),
            next_ref: AtomicU64::new(1),
            handle,
        })
    }

    fn shard(&self, index: u32) -> &Mutex<Shard> {
        &self.shards[(index % SHARDS) as usize]
    }

    /// Allocates a pid and registers a new (alive) process under it.
    pub(crate) fn insert(self: &Arc<Self>, kind: &'static str, realm: crate::Realm, init: State) -> Arc<Process> {
        let shard_no = local_shard();
        let mut shard = self.shards[shard_no as usize].lock();
        let (local, generation) = match shard.free.pop() {
            Some(i) => (i, shard.slots[i as usize].0),
            None => {
                shard.slots.push((0, None));
                (shard.slots.len() as u32 - 1, 0)
            }
        };
        let pid = Pid {
            index: local * SHARDS + shard_no,
            generation,
        };
        let node_ref = match shard.node_ref.upgrade() {
            Some(r) => r,
            None => {
                let r = Arc::new(RefShard { node: self.clone() });
                shard.node_ref = Arc::downgrade(&r);
                r
            }
        };
        let p = Arc::new(Process {
            pid,
            node: NodeRef(node_ref),
            state: Mutex::new(State { alive: true, ..init }),
            signalled: AtomicBool::new(false),
            kind,
            realm,
        });
        shard.slots[local as usize].1 = Some(p.clone());
        p
    }

    /// The live process with this pid.
    pub(crate) fn get(&self, pid: Pid) -> Option<Arc<Process>> {
        self.with_live(pid, (), |p, ()| p.clone()).ok()
    }

    /// Runs `f` on the live process `pid` under its table shard's lock (no `Arc` cloned),
    /// handing `arg` to it; `Err(arg)` if `pid` is not alive.
    fn with_live<T, R>(&self, pid: Pid, arg: T, f: impl FnOnce(&Arc<Process>, T) -> R) -> Result<R, T> {
        let shard = self.shard(pid.index).lock();
        match shard.slots.get((pid.index / SHARDS) as usize) {
            Some((generation, Some(p))) if *generation == pid.generation => Ok(f(p, arg)),
            _ => Err(arg),
        }
    }

    fn remove(&self, pid: Pid) {
        let mut shard = self.shard(pid.index).lock();
        let local = pid.index / SHARDS;
        if let Some(slot) = shard.slots.get_mut(local as usize)
            && slot.0 == pid.generation && slot.1.is_some() {
                slot.1 = None;
                slot.0 = slot.0.wrapping_add(1);
                shard.free.push(local);
            }
    }

    /// Every live pid.
    pub(crate) fn pids(&self) -> Vec<Pid> {
        self.pids_where(|_| true)
    }

    /// The live pids whose process `keep` accepts (called under a shard lock), sorted.
    pub(crate) fn pids_where(&self, mut keep: impl FnMut(&Process) -> bool) -> Vec<Pid> {
        let mut out = Vec::new();
        for s in self.shards.iter() {
            let s = s.lock();
            out.extend(s.slots.iter().filter_map(|(_, p)| p.as_ref().filter(|p| keep(p)).map(|p| p.pid)));
        }
        out.sort();
        out
    }

    /// Runs `f` on the state of the live process `pid` (under its lock); `None` if it is
    /// not alive.
    pub(crate) fn with_live_state<R>(&self, pid: Pid, f: impl FnOnce(&mut State) -> R) -> Option<R> {
        self.with_live(pid, f, |p, f| f(&mut p.state.lock())).ok()
    }

    /// The realm of a live process.
    pub(crate) fn realm_of(&self, pid: Pid) -> Option<crate::Realm> {
        self.with_live(pid, (), |p, ()| p.realm).ok()
    }

    pub(crate) fn new_ref(&self) -> MonitorRef {
        MonitorRef(self.next_ref.fetch_add(1, Ordering::Relaxed))
    }

    /// Registers `name` for `pid`. Erlang's rules: the name must be free, the process
    /// alive and not already registered.
    pub(crate) fn register(&self, name: &str, pid: Pid) -> Result<(), crate::RegisterError> {
        let p = self.get(pid).ok_or(crate::RegisterError::NoProc)?;
        let mut reg = self.registry.lock();
        if reg.contains_key(name) {
            return Err(crate::RegisterError::NameTaken);
        }
        let mut st = p.state.lock();
        if !st.alive {
            return Err(crate::RegisterError::NoProc);
        }
        let cold = st.cold();
        if cold.name.is_some() {
            return Err(crate::RegisterError::AlreadyRegistered);
        }
        cold.name = Some(name.to_owned());
        reg.insert(name.to_owned(), pid);
        Ok(())
    }

    pub(crate) fn unregister(&self, name: &str) -> bool {
        let Some(pid) = self.registry.lock().remove(name) else {
            return false;
        };
        if let Some(p) = self.get(pid)
            && let Some(c) = p.state.lock().cold_mut()
        {
            c.name = None;
        }
        true
    }

    /// Removes `name` if `owner_ok` accepts the process holding it; the check and the
    /// removal are one step under the registry lock.
    pub(crate) fn unregister_where(
        &self,
        name: &str,
        owner_ok: impl FnOnce(&Process) -> bool,
    ) -> Result<(), crate::realm::UnregisterError> {
        use crate::realm::UnregisterError;
        let mut reg = self.registry.lock();
        let pid = *reg.get(name).ok_or(UnregisterError::NotFound)?;
        let owner = self.get(pid);
        if !owner.as_deref().is_some_and(owner_ok) {
            return Err(UnregisterError::OtherRealm);
        }
        reg.remove(name);
        drop(reg);
        if let Some(p) = owner
            && let Some(c) = p.state.lock().cold_mut()
        {
            c.name = None;
        }
        Ok(())
    }

    pub(crate) fn whereis(&self, name: &str) -> Option<Pid> {
        self.registry.lock().get(name).copied()
    }

    /// Delivers a message: `send` (`refuse_full` false) never fails, as Erlang's: a dead or
    /// unknown pid drops the message and a full bounded mailbox applies its overflow
    /// policy. `try_send` (`refuse_full` true) gets the message back from a dead pid or a
    /// full mailbox instead. The mailbox is written under the shard lock (shard, then
    /// process: no path takes them the other way round), which saves two reference-count
    /// updates per send.
    pub(crate) fn deliver(&self, to: Pid, msg: Message, refuse_full: bool) -> Result<(), crate::TrySendError> {
        let queued = self
            .with_live(to, Received::Message(msg), |p, item| p.enqueue(item, refuse_full))
            .unwrap_or_else(|item| Err(Refused::Dead(item)));
        match queued {
            Ok(w) => {
                if let Some(w) = w {
                    w.wake();
                }
                Ok(())
            }
            Err(r) => Err(r.into_send_error()),
        }
    }

    /// Delivers a reply to `alias` of process `to` ([`Process::enqueue_reply`]), found under
    /// the shard lock as [`deliver`](NodeInner::deliver) does; dropped if `to` is dead or no
    /// longer waits on the alias.
    pub(crate) fn deliver_reply(&self, to: Pid, alias: u64, msg: Message) {
        if let Ok(Some(w)) = self.with_live(to, msg, |p, msg| p.enqueue_reply(alias, msg)) {
            w.wake();
        }
    }
}

/// An item a mailbox did not take, handed back.
pub(crate) enum Refused {
    Dead(Received),
    Full(Received),
}

impl Refused {
    fn into_send_error(self) -> crate::TrySendError {
        let message = |r| match r {
            Received::Message(m) => m,
            _ => unreachable!("deliver only hands over messages"),
        };
        match self {
            Refused::Dead(r) => crate::TrySendError::NoProc(message(r)),
            Refused::Full(r) => crate::TrySendError::Full(message(r)),
        }
    }
}

impl Process {
    /// Appends to the mailbox unless it is dead or its bound refuses; wakes the process.
    pub(crate) fn try_push(&self, item: Received) -> Result<(), Refused> {
        if let Some(w) = self.enqueue(item, true)? {
            w.wake();
        }
        Ok(())
    }

    /// Appends to the mailbox under its bound; returns the waker to wake (after the lock).
    /// A dead process hands the item back, and so does a full bounded mailbox when
    /// `refuse_full` is set (otherwise the overflow policy applies).
    fn enqueue(&self, item: Received, refuse_full: bool) -> Result<Option<Waker>, Refused> {
        let mut st = self.state.lock();
        if !st.alive {
            return Err(Refused::Dead(item));
        }
        if refuse_full && is_message(&item) && st.refuses(&item) {
            return Err(Refused::Full(item));
        }
        let queued = st.enqueue(item);
        if st.pending_exit.is_some() {
            self.signalled.store(true, Ordering::Release);
        } else if !queued {
            return Ok(None);
        }
        Ok(st.waker.take())
    }

    /// Enqueues a reply to `alias` if this process still waits on it, using the alias up
    /// (check and enqueue are one step under the lock: `request.rs`); returns the waker to
    /// wake. Dropped otherwise.
    fn enqueue_reply(&self, alias: u64, msg: Message) -> Option<Waker> {
        let mut st = self.state.lock();
        if !st.alive || !st.cold_mut().is_some_and(|c| c.aliases.remove(&alias)) {
            return None;
        }
        // Outside the bound, as a signal: the caller asked for exactly this one.
        st.push_counted(Received::Message(msg));
        st.waker.take()
    }

    /// Sets `pending_exit` (the caller holds the state lock) and the flag that goes with it.
    /// The first signal that marks a process decides how it ends; later ones are ignored.
    pub(crate) fn mark(&self, st: &mut State, reason: ExitReason) {
        if st.pending_exit.is_none() {
            st.pending_exit = Some(reason);
        }
        self.signalled.store(true, Ordering::Release);
    }

    /// Delivers the `Down` of `monitor` unless the watcher (this process) no longer holds
    /// it: the check and the enqueue are one step under its lock, which is what makes
    /// `demonitor(flush)` final.
    pub(crate) fn deliver_down(&self, monitor: MonitorRef, pid: Pid, reason: ExitReason) {
        let w = {
            let mut st = self.state.lock();
            let active = st.alive && st.cold_mut().is_some_and(|c| c.monitoring.remove(&monitor).is_some());
            if !active {
                return;
            }
            st.enqueue(Received::Down { monitor, pid, reason });
            st.waker.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    fn take_pending(&self, st: &mut State) -> Option<ExitReason> {
        let r = st.pending_exit.take();
        if r.is_some() {
            self.signalled.store(false, Ordering::Relaxed);
        }
        r
    }

    /// The pending exit, taken (future bodies act on it before each poll).
    pub(crate) fn take_pending_exit(&self) -> Option<ExitReason> {
        if !self.signalled.load(Ordering::Acquire) {
            return None;
        }
        self.take_pending(&mut self.state.lock())
    }

    /// Ends the process: the exit protocol of the module docs. Idempotent.
    pub(crate) fn exit(&self, reason: ExitReason) {
        let cold = {
            let mut st = self.state.lock();
            if !st.alive {
                return;
            }
            st.alive = false;
            st.mailbox.clear();
            st.messages = 0;
            st.bytes = 0;
            st.waker = None;
            let Some(mut cold) = st.cold.take() else {
                drop(st);
                // Nothing linked, monitored, named or grouped: free the slot and go.
                self.node.remove(self.pid);
                return;
            };
            if !reason.is_normal() {
                for pipe in cold.streams.drain(..).filter_map(|w| w.upgrade()) {
                    pipe.owner_crashed(self.pid, &reason);
                }
            }
            if !cold.groups.is_empty() {
                self.node.leave_all(self.pid, &cold.groups);
            }
            cold
        };
        let Cold {
            links,
            monitoring,
            monitored_by,
            name,
            timers_in,
            timers_out,
            ..
        } = *cold;
        let node = &self.node;
        if !timers_in.is_empty() || !timers_out.is_empty() {
            crate::timer::end_all(node, self.pid, timers_in, timers_out);
        }
        // 2. Names first, so a process told of our death can register the name again.
        if let Some(name) = name {
            let mut reg = node.registry.lock();
            if reg.get(&name) == Some(&self.pid) {
                reg.remove(&name);
            }
        }
        // 3. Free the slot: from here the pid is dead to everyone.
        node.remove(self.pid);
        // Monitors we held: the targets need not tell us any more.
        for (r, target) in monitoring {
            if let Some(t) = node.get(target)
                && let Some(c) = t.state.lock().cold_mut()
            {
                c.monitored_by.remove(&r);
            }
        }
        // 4. Signals: the reason as it is, `kill` included (only `exit/2` with `kill`
        // becomes `killed`, at the target).
        for l in links {
            if let Some(lp) = node.get(l) {
                deliver_exit(&lp, self.pid, reason.clone(), Via::Link);
            }
        }
        for (monitor, watcher) in monitored_by {
            if let Some(w) = node.get(watcher) {
                w.deliver_down(monitor, self.pid, reason.clone());
            }
        }
    }

    /// Locks the state, first unwinding if an exit signal has marked the process. Check and
    /// lock are one step, so a signal cannot slip in between the check and a waker stored
    /// under this lock (it would find no waker to wake).
    pub(crate) fn lock_checked(&self) -> parking_lot::MutexGuard<'_, State> {
        let mut st = self.state.lock();
        if let Some(reason) = self.take_pending(&mut st) {
            drop(st);
            ExitUnwind::signal(reason);
        }
        st
    }

    /// If an exit signal has marked this process, unwind it now (called by the process
    /// itself at its runtime calls).
    pub(crate) fn check_exit(&self) {
        if let Some(reason) = self.take_pending_exit() {
            ExitUnwind::signal(reason);
        }
    }
}

/// How an exit signal reaches its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// A linked process ended: a link exit signal. Dropped if the link is gone at the
    /// receiver (it unlinked).
    Link,
    /// `exit(Pid, Reason)` (Erlang's `exit/2`), or a signal from outside any process.
    Exit2,
}

/// Locks two distinct processes' states, lower pid first (the lock order for two peers:
/// nothing holds a process lock while it takes another, except spawn, parent then a child
/// no other process can reach yet). Returns `(a's, b's)`.
pub(crate) fn lock_pair<'a>(
    a: &'a Process,
    b: &'a Process,
) -> (parking_lot::MutexGuard<'a, State>, parking_lot::MutexGuard<'a, State>) {
    debug_assert_ne!(a.pid, b.pid, "lock_pair of one process");
    if a.pid < b.pid {
        let ga = a.state.lock();
        (ga, b.state.lock())
    } else {
        let gb = b.state.lock();
        (a.state.lock(), gb)
    }
}

/// Delivers an exit signal from `from` with `reason` to `to`, Erlang's table (Reference
/// Manual, "Processes", "Receiving Exit Signals"):
///
/// | signal                    | `to` traps exits        | `to` does not trap exits        |
/// |---------------------------|-------------------------|---------------------------------|
/// | `exit/2` with `kill`      | exits `killed`          | exits `killed`                  |
/// | `exit/2` with `normal`    | `Exit` message          | ignored, unless `from == to`: then it exits `normal` |
/// | link, `normal`            | `Exit` message          | ignored                         |
/// | link, `kill`              | `Exit` message (`kill`) | exits `kill`                    |
/// | anything else, either way | `Exit` message          | exits with that reason          |
///
/// A link signal removes `from` from `to`'s links; if `from` is not there (`to`
/// unlinked), the signal is dropped.
pub(crate) fn deliver_exit(to: &Process, from: Pid, reason: ExitReason, via: Via) {
    let (w, spread) = {
        let mut st = to.state.lock();
        if !st.alive {
            return;
        }
        if via == Via::Link && !st.cold_mut().is_some_and(|c| c.links.remove(&from)) {
            return;
        }
        let first = st.pending_exit.is_none();
        if via == Via::Exit2 && reason == ExitReason::Kill {
            to.mark(&mut st, ExitReason::Killed);
        } else if st.trap_exit {
            st.enqueue(Received::Exit { from, reason });
            return wake(st.waker.take());
        } else if reason.is_normal() {
            if via == Via::Link || from != to.pid {
                return;
            }
            to.mark(&mut st, ExitReason::Normal);
        } else {
            to.mark(&mut st, reason);
        }
        let doomed = st.pending_exit.clone().filter(|r| first && !r.is_normal() && to.realm != crate::Realm::ROOT);
        let spread = doomed.map(|r| (r, st.cold.as_deref().map(|c| c.links.iter().copied().collect::<Vec<_>>()).unwrap_or_default()));
        (st.waker.take(), spread)
    };
    wake(w);
    if let Some((reason, links)) = spread {
        mark_linked(to, reason, links);
    }
}

fn wake(w: Option<Waker>) {
    if let Some(w) = w {
        w.wake();
    }
}

/// In an app's realm (not [`Realm::ROOT`](crate::Realm::ROOT)), a process marked to die
/// of `reason` marks at once, transitively, the linked processes of its realm that do not
/// trap exits: each would die of the same reason when the link signal arrives, and
/// marking them now means none of them runs (or spawns) again meanwhile. A linked tree —
/// a spawn bomb — then stops in one step instead of one generation per scheduling round.
/// Trapping processes, and processes of the root realm (native code), get the ordinary
/// signal when the process exits, so Erlang's timing is kept for them. Link entries are
/// left as they are: the exit signals still go out, and find their targets marked.
fn mark_linked(first: &Process, reason: ExitReason, links: Vec<Pid>) {
    let node = &first.node;
    let realm = first.realm;
    let mut work: Vec<(Pid, Pid)> = links.into_iter().map(|l| (first.pid, l)).collect();
    while let Some((from, pid)) = work.pop() {
        let Some(p) = node.get(pid) else { continue };
        if p.realm != realm {
            continue;
        }
        let w = {
            let mut st = p.state.lock();
            let linked = st.cold.as_deref().is_some_and(|c| c.links.contains(&from));
            if !st.alive || st.trap_exit || st.pending_exit.is_some() || !linked {
                continue;
            }
            p.mark(&mut st, reason.clone());
            if let Some(c) = st.cold.as_deref() {
                work.extend(c.links.iter().filter(|&&l| l != from).map(|&l| (pid, l)));
            }
            st.waker.take()
        };
        wake(w);
    }
}
