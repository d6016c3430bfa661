//! A guest process: its store's data and the future rusm-sched drives.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rusm_otp::stream::{StreamReader, StreamWriter};
use rusm_otp::{ExitReason, TimerRef};
use wasmtime::{Extern, Memory, ModuleExport, Store, UpdateDeadline};
use wasmtime_wasi::p1::WasiP1Ctx;

use crate::caps::{Caps, Limiter};
use crate::{Artifact, HostInner};

/// The longest exit reason a guest can produce; longer ones are cut.
const MAX_REASON: usize = 1024;
/// Outstanding `send_after` ids a process keeps; past this the oldest are forgotten.
pub(crate) const MAX_TIMERS: usize = 65_536;

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
    wasi: Option<WasiP1Ctx>,
    pub(crate) limiter: Limiter,
    pub(crate) memory: Option<Memory>,
    /// Stream handles: index + 1 is the handle; `None` is a free slot.
    pub(crate) streams: Vec<Option<StreamEnd>>,
    pub(crate) timers: BTreeMap<u64, TimerRef>,
    pub(crate) next_timer: u64,
    /// The part of the last received payload the guest's buffer did not hold.
    pub(crate) rest: Vec<u8>,
    pub(crate) rest_pos: usize,
    /// Epoch ticks at which the guest was preempted.
    pub(crate) preemptions: u64,
}

impl ProcState {
    fn new(host: Arc<HostInner>, artifact: Artifact, caps: Caps) -> ProcState {
        ProcState {
            limiter: Limiter { cap: caps.memory_limit(), denied: None },
            host,
            artifact,
            caps,
            wasi: None,
            memory: None,
            streams: Vec::new(),
            timers: BTreeMap::new(),
            next_timer: 1,
            rest: Vec::new(),
            rest_pos: 0,
            preemptions: 0,
        }
    }

    /// The WASI context, built on the guest's first WASI call (a guest that never calls
    /// WASI never pays for one).
    pub(crate) fn wasi(&mut self) -> &mut WasiP1Ctx {
        if self.wasi.is_none() {
            let pid = rusm_otp::try_self_pid().unwrap_or(rusm_otp::Pid::from_u64(0));
            let ctx = self.caps.build_wasi(pid, self.artifact.name(), &self.host.config.log);
            self.wasi = Some(ctx);
        }
        self.wasi.as_mut().expect("built above")
    }

    pub(crate) fn add_stream(&mut self, end: StreamEnd) -> u32 {
        if let Some(i) = self.streams.iter().position(Option::is_none) {
            self.streams[i] = Some(end);
            return i as u32 + 1;
        }
        self.streams.push(Some(end));
        self.streams.len() as u32
    }

    pub(crate) fn stream_slot(&mut self, handle: i32) -> Option<&mut Option<StreamEnd>> {
        let i = usize::try_from(handle).ok()?.checked_sub(1)?;
        self.streams.get_mut(i).filter(|s| s.is_some())
    }
}

/// Returns `Pending` once after waking itself: the epoch deadline's yield to the
/// scheduler, which puts the process at the back of its worker's queue.
#[derive(Default)]
struct YieldOnce(bool);

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
pub(crate) async fn run(host: Arc<HostInner>, artifact: Artifact, caps: Caps, entry: ModuleExport) -> ExitReason {
    let engine = host.engine.clone();
    let uses_wasi = artifact.inner.uses_wasi;
    let mut store = Store::new(&engine, ProcState::new(host, artifact.clone(), caps));
    store.limiter(|s| &mut s.limiter);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut cx| {
        cx.data_mut().preemptions += 1;
        Ok(UpdateDeadline::YieldCustom(1, Box::pin(YieldOnce::default())))
    });
    if uses_wasi {
        // Build the context before the guest runs, outside its time slice.
        store.data_mut().wasi();
    }
    let a = &artifact.inner;
    let instance = match a.pre.instantiate_async(&mut store).await {
        Ok(i) => i,
        Err(e) => return crashed(&format!("instantiate{}: ", map_note(&e)), &e),
    };
    if let Some(m) = &a.memory {
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
    if !reason.is_normal() {
        // Streams this guest writes end abnormally for their readers, as a crashed
        // native owner's do (dropping them would read as a clean end).
        let why = match rusm_otp::try_self_pid() {
            Some(pid) => format!("{pid} exited: {reason}"),
            None => format!("the writer exited: {reason}"),
        };
        for end in store.data_mut().streams.drain(..).flatten() {
            if let StreamEnd::Writer(w) = end {
                w.abort(&why);
            }
        }
    }
    reason
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
