//! A guest process: its store's data and the future rusm-sched drives.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rusm_otp::ExitReason;
use rusm_otp::stream::{StreamReader, StreamWriter};
use wasmtime::component::ResourceTable;
use wasmtime::{Extern, Memory, ModuleExport, Store, UpdateDeadline};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::app::Slot;
use crate::caps::{Caps, Limiter};
use crate::ops::MAX_REASON;
use crate::{Artifact, Compiled, ComponentEntry, HostInner};

/// One end of a process stream a guest holds by handle.
pub(crate) enum StreamEnd {
    Writer(StreamWriter),
    Reader(StreamReader),
}

/// Everything a guest's store carries.
pub(crate) struct ProcState {
    pub(crate) host: Arc<HostInner>,
    pub(crate) artifact: Artifact,
    pub(crate) caps: Caps,
    /// Boxed, as `wasi_ctx`: most guests never build one, and every store carries this
    /// state inline (a parked guest and each spawn's copy pay for it).
    wasi: Option<Box<WasiP1Ctx>>,
    /// A component's WASI context (preview 2 and 3), built on first use.
    wasi_ctx: Option<Box<WasiCtx>>,
    /// A component's resources (WASI's; process streams use their own handles).
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) memory: Option<Memory>,
    /// Stream handles: index + 1 is the handle; `None` is a free slot, or one whose end
    /// a waiting call has taken out.
    pub(crate) streams: Vec<Option<StreamEnd>>,
    /// Handles closed and free for reuse, the last closed first.
    pub(crate) free_streams: Vec<u32>,
    /// `is_free[i]`: handle `i + 1` is in `free_streams` (so freeing is O(1)).
    is_free: Vec<bool>,
    /// Writers fed from a p3 guest's `stream<u8>` (`pipes.send-to`).
    pub(crate) pumps: Vec<Arc<parking_lot::Mutex<Option<StreamWriter>>>>,
    /// Its place in its app's process count and the host's pool (given back when the
    /// store, and with it the pool instance, is dropped).
    pub(crate) slot: Slot,
    /// The part of the last received payload the guest's buffer did not hold.
    pub(crate) rest: Vec<u8>,
    pub(crate) rest_pos: usize,
    /// Epoch ticks at which the guest was preempted.
    pub(crate) preemptions: u64,
    /// A p3 guest's tasks waiting in `mailbox` calls (`signals_wake`), made on first use.
    waiters: Option<Waiters>,
}

/// The wakers of a p3 guest's host tasks that wait on the mailbox. The process has one
/// waker slot in rusm-otp, and the one it holds is the event loop's (`signals_wake`), but
/// wasmtime re-polls a host task only when that task's own waker fires: so when rusm-otp
/// wakes the process (a message, a signal), `signals_wake` wakes these, and each task
/// looks at the mailbox again.
pub(crate) type Waiters = Arc<parking_lot::Mutex<Vec<std::task::Waker>>>;

/// Adds `w` to `waiters` unless a waker that wakes the same task is there.
pub(crate) fn add_waiter(waiters: &Waiters, w: &std::task::Waker) {
    let mut list = waiters.lock();
    if !list.iter().any(|x| x.will_wake(w)) {
        list.push(w.clone());
    }
}

impl ProcState {
    fn new(host: Arc<HostInner>, artifact: Artifact, caps: Caps, slot: Slot) -> ProcState {
        ProcState {
            limiter: Limiter { cap: caps.memory_limit(), denied: None },
            host,
            artifact,
            caps,
            wasi: None,
            wasi_ctx: None,
            table: ResourceTable::new(),
            memory: None,
            streams: Vec::new(),
            free_streams: Vec::new(),
            is_free: Vec::new(),
            pumps: Vec::new(),
            slot,
            rest: Vec::new(),
            rest_pos: 0,
            preemptions: 0,
            waiters: None,
        }
    }

    /// The WASI context, built on the guest's first WASI call (a guest that never calls
    /// WASI never pays for one).
    pub(crate) fn wasi(&mut self) -> &mut WasiP1Ctx {
        if self.wasi.is_none() {
            let pid = self.argv0_pid();
            let ctx = self.caps.build_wasi(pid, self.artifact.name(), &self.host.config.log);
            self.wasi = Some(Box::new(ctx));
        }
        self.wasi.as_deref_mut().expect("built above")
    }

    /// This p3 guest's mailbox waiters (made on first use).
    pub(crate) fn waiters(&mut self) -> Waiters {
        self.waiters.get_or_insert_with(Waiters::default).clone()
    }

    fn argv0_pid(&self) -> rusm_otp::Pid {
        rusm_otp::try_self_pid().unwrap_or(rusm_otp::Pid::from_u64(0))
    }

    /// A component's resource table.
    pub(crate) fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// A new handle for `end`: the last freed one if any (a slot emptied only while a
    /// call waits on its stream is not free). The caller checks the handle quota
    /// (`ops::stream_open`, `ops::accept_reader`).
    pub(crate) fn add_stream(&mut self, end: StreamEnd) -> u32 {
        if let Some(h) = self.free_streams.pop() {
            self.is_free[h as usize - 1] = false;
            self.streams[h as usize - 1] = Some(end);
            return h;
        }
        self.streams.push(Some(end));
        self.is_free.push(false);
        self.streams.len() as u32
    }

    /// Handles open now (an end taken out by a waiting call counts).
    pub(crate) fn open_streams(&self) -> usize {
        self.streams.len() - self.free_streams.len()
    }

    /// Frees handle `h` for reuse (its end already taken or dropped).
    pub(crate) fn free_stream(&mut self, h: u32) {
        let Some(i) = (h as usize).checked_sub(1).filter(|&i| i < self.streams.len()) else { return };
        self.streams[i] = None;
        if !self.is_free[i] {
            self.is_free[i] = true;
            self.free_streams.push(h);
        }
    }

    pub(crate) fn stream_slot(&mut self, handle: i32) -> Option<&mut Option<StreamEnd>> {
        let i = usize::try_from(handle).ok()?.checked_sub(1)?;
        self.streams.get_mut(i).filter(|s| s.is_some())
    }
}

impl WasiView for ProcState {
    /// A component's WASI context, built on its first WASI call.
    fn ctx(&mut self) -> WasiCtxView<'_> {
        if self.wasi_ctx.is_none() {
            let pid = self.argv0_pid();
            self.wasi_ctx = Some(Box::new(self.caps.build_wasi_ctx(pid, self.artifact.name(), &self.host.config.log)));
        }
        WasiCtxView { ctx: self.wasi_ctx.as_deref_mut().expect("built above"), table: &mut self.table }
    }
}

/// Returns `Pending` once after waking itself: the epoch deadline's yield to the
/// scheduler, which puts the process at the back of its worker's queue.
#[derive(Default)]
pub(crate) struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A guest's process body.
pub(crate) type Body = dyn Future<Output = ExitReason> + Send;

/// The process body: instantiate, call the entry, turn the outcome into an exit reason.
pub(crate) async fn run(host: Arc<HostInner>, artifact: Artifact, caps: Caps, slot: Slot, entry: ModuleExport) -> ExitReason {
    let Compiled::Module { pre, memory, uses_wasi, .. } = &artifact.inner.compiled else {
        return ExitReason::Crashed("not a core module".into());
    };
    let mut store = new_store(host, &artifact, caps, slot);
    if *uses_wasi {
        // Build the context before the guest runs, outside its time slice.
        store.data_mut().wasi();
    }
    let instance = match pre.instantiate_async(&mut store).await {
        Ok(i) => i,
        Err(e) => return instantiate_failed(&e),
    };
    if let Some(m) = memory {
        let mem = instance.get_module_export(&mut store, m).and_then(Extern::into_memory);
        store.data_mut().memory = mem;
    }
    let Some(func) = instance.get_module_export(&mut store, &entry).and_then(Extern::into_func) else {
        return ExitReason::Crashed("the entry export is not a function".into());
    };
    let func = match func.typed::<(), ()>(&store) {
        Ok(f) => f,
        Err(e) => return crashed("entry: ", &e),
    };
    let reason = match func.call_async(&mut store, ()).await {
        Ok(()) => ExitReason::Normal,
        Err(e) => exit_reason(&e),
    };
    finish(&mut store, reason)
}

/// A store for one guest: its limiter, and an epoch deadline that yields to the
/// scheduler at every tick.
fn new_store(host: Arc<HostInner>, artifact: &Artifact, caps: Caps, slot: Slot) -> Store<ProcState> {
    let engine = host.engine.clone();
    let mut store = Store::new(&engine, ProcState::new(host, artifact.clone(), caps, slot));
    store.limiter(|s| &mut s.limiter);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut cx| {
        cx.data_mut().preemptions += 1;
        Ok(UpdateDeadline::YieldCustom(1, Box::pin(YieldOnce::default())))
    });
    store
}

/// A component's process body: instantiate through its `InstancePre`, call the entry.
pub(crate) async fn run_component(host: Arc<HostInner>, artifact: Artifact, caps: Caps, slot: Slot, entry: ComponentEntry) -> ExitReason {
    let Compiled::Component { pre, .. } = &artifact.inner.compiled else {
        return ExitReason::Crashed("not a component".into());
    };
    let network = caps.has_network();
    let mut store = new_store(host, &artifact, caps, slot);
    let instance = match pre.instantiate_async(&mut store).await {
        Ok(i) => i,
        Err(e) => return instantiate_failed(&e),
    };
    let outcome: wasmtime::Result<ExitReason> = ambient_tokio(network, async {
        match entry {
            ComponentEntry::Func(idx) => {
                let f = instance.get_typed_func::<(), ()>(&mut store, &idx)?;
                f.call_async(&mut store, ()).await?;
                Ok(ExitReason::Normal)
            }
            ComponentEntry::AsyncFunc(idx) => {
                let f = instance.get_typed_func::<(), ()>(&mut store, &idx)?;
                let waiters = store.data_mut().waiters();
                // Boxed: its future is the largest of the four, and a p2 guest's body would
                // carry that space for its whole life (1.3 KB of a parked component).
                Box::pin(signals_wake(waiters, store.run_concurrent(async |acc| f.call_concurrent(acc, ()).await))).await??;
                Ok(ExitReason::Normal)
            }
            ComponentEntry::CliRun(idx) => {
                let f = instance.get_typed_func::<(), (Result<(), ()>,)>(&mut store, &idx)?;
                let (r,) = f.call_async(&mut store, ()).await?;
                Ok(cli_exit(r))
            }
            ComponentEntry::CliRunAsync(idx) => {
                let f = instance.get_typed_func::<(), (Result<(), ()>,)>(&mut store, &idx)?;
                let waiters = store.data_mut().waiters();
                let (r,) = Box::pin(signals_wake(waiters, store.run_concurrent(async |acc| f.call_concurrent(acc, ()).await))).await??;
                Ok(cli_exit(r))
            }
        }
    })
    .await;
    let reason = outcome.unwrap_or_else(|e| exit_reason(&e));
    finish(&mut store, reason)
}

/// Drives a p3 guest's event loop with the process's signals watched: whatever its tasks
/// wait on (a host stream, a timer, a guest future), a kill wakes the process and ends it.
/// The waker rusm-otp holds is [`ProcessWake`]: when it fires (a message, a signal), the
/// tasks waiting in `mailbox` calls (`waiters`) are woken before the loop is polled, so
/// each looks at the mailbox again.
async fn signals_wake<F: Future>(waiters: Waiters, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let wake = Arc::new(ProcessWake::default());
    let waker = std::task::Waker::from(wake.clone());
    std::future::poll_fn(|cx| {
        if wake.fired.swap(false, std::sync::atomic::Ordering::AcqRel) {
            for w in std::mem::take(&mut *waiters.lock()) {
                w.wake();
            }
        }
        let r = fut.as_mut().poll(cx);
        if r.is_pending() {
            let mut outer = wake.outer.lock();
            if !outer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *outer = Some(cx.waker().clone());
            }
            drop(outer);
            rusm_otp::watch_signals(&Context::from_waker(&waker));
        }
        r
    })
    .await
}

/// Polls `fut` inside wasmtime-wasi's ambient Tokio runtime when the guest has network:
/// some of its socket calls (a TCP listen, p3's name lookup) register with Tokio's
/// reactor without entering a runtime themselves, and would panic on our workers. A
/// guest without network never reaches them and pays nothing.
async fn ambient_tokio<F: Future>(network: bool, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        if network {
            wasmtime_wasi::runtime::with_ambient_tokio_runtime(|| fut.as_mut().poll(cx))
        } else {
            fut.as_mut().poll(cx)
        }
    })
    .await
}

/// The waker a p3 process leaves with rusm-otp: it notes that the mailbox or the signals
/// changed, then wakes the event loop's own waker.
#[derive(Default)]
struct ProcessWake {
    fired: std::sync::atomic::AtomicBool,
    outer: parking_lot::Mutex<Option<std::task::Waker>>,
}

impl std::task::Wake for ProcessWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, std::sync::atomic::Ordering::Release);
        if let Some(w) = self.outer.lock().as_ref() {
            w.wake_by_ref();
        }
    }
}

/// A command's `run` returning `err` is exit status 1, as a native program's.
fn cli_exit(r: Result<(), ()>) -> ExitReason {
    match r {
        Ok(()) => ExitReason::Normal,
        Err(()) => ExitReason::Other("exit status 1".into()),
    }
}

/// The end of any guest: streams it writes end abnormally if it did.
fn finish(store: &mut Store<ProcState>, reason: ExitReason) -> ExitReason {
    if !reason.is_normal() {
        // Streams this guest writes end abnormally for their readers, as a crashed
        // native owner's do (dropping them would read as a clean end).
        let why = match rusm_otp::try_self_pid() {
            Some(pid) => format!("{pid} exited: {reason}"),
            None => format!("the writer exited: {reason}"),
        };
        let st = store.data_mut();
        for end in st.streams.drain(..).flatten() {
            if let StreamEnd::Writer(w) = end {
                w.abort(&why);
            }
        }
        for pump in st.pumps.drain(..) {
            if let Some(w) = pump.lock().take() {
                w.abort(&why);
            }
        }
    }
    reason
}

/// Why a failed instantiation ends the process: a start function's `proc_exit(n)` is
/// `exit status n` (0: normal), as from the entry; anything else is a crash that names
/// instantiation (and, for want of memory mappings, the limit).
fn instantiate_failed(e: &wasmtime::Error) -> ExitReason {
    if e.downcast_ref::<wasmtime_wasi::I32Exit>().is_some() {
        return exit_reason(e);
    }
    crashed(&format!("instantiate{}: ", map_note(e)), e)
}

/// An instantiation that failed for want of memory mappings names the limit.
fn map_note(e: &wasmtime::Error) -> String {
    let text = format!("{e:#}");
    if !text.contains("Cannot allocate memory") && !text.contains("os error 12") {
        return String::new();
    }
    match (crate::current_map_count(), crate::read_max_map_count()) {
        (Some(now), Some(max)) => format!(
            " (out of memory mappings? this OS process has {now} of vm.max_map_count = {max}; \
             raise it with `sysctl -w vm.max_map_count=...` or park fewer guests)"
        ),
        _ => String::new(),
    }
}

/// What an error out of a guest means for its process.
pub(crate) fn exit_reason(e: &wasmtime::Error) -> ExitReason {
    if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return if exit.0 == 0 {
            ExitReason::Normal
        } else {
            ExitReason::Other(format!("exit status {}", exit.0))
        };
    }
    crashed("", e)
}

fn crashed(prefix: &str, e: &wasmtime::Error) -> ExitReason {
    let mut why = match e.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => {
            let at = e
                .downcast_ref::<wasmtime::WasmBacktrace>()
                .and_then(|bt| bt.frames().first().map(|f| f.func_name().map_or_else(|| format!("func {}", f.func_index()), str::to_owned)));
            match at {
                Some(f) => format!("{prefix}{trap} in {f}"),
                None => format!("{prefix}{trap}"),
            }
        }
        None => format!("{prefix}{}", e.root_cause()),
    };
    if why.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !why.is_char_boundary(cut) {
            cut -= 1;
        }
        why.truncate(cut);
    }
    ExitReason::Crashed(why)
}
