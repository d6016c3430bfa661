//! Components: `wasmtime_wasi::p2` plus the `rusm:runtime` world (`wit/runtime.wit`)
//! through `bindgen!`, on the component linker every component artifact links against.
//!
//! Every function is an async host function: the ones that wait (receive, stream reads
//! and writes, accept, sleep) return `Pending` until the actor layer wakes the process,
//! so a waiting component parks its process, never a thread. Each maps one-to-one onto
//! rusm-otp, and onto the raw wasip1 ABI ([`super::wasip1`]); `docs/WIT.md` has the
//! table.
//!
//! Stream handles are resources whose representation is the process's stream handle
//! (the same table wasip1 guests use), so a crashed component's writers are aborted by
//! the same code. A handle the guest does not own is refused by wasmtime's handle table
//! (a trap); a handle of ours that is closed is a trap here: the process crashes.

use std::pin::Pin;
use std::time::Duration;

use rusm_otp::stream;
use rusm_otp::{ExitReason, Message, MonitorRef, Pid, ProcessStatus, Received};
use wasmtime::component::{HasSelf, Linker, Resource};
use wasmtime::{Error, Result};

use super::wasip1::{Filter, recv, watched};
use crate::abi::{KIND_DOWN, KIND_EXIT, KIND_MESSAGE, KIND_OPAQUE, KIND_STREAM, STREAM_CHUNK};
use crate::ops::{self, Refusal};
use crate::process::{ProcState, StreamEnd};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "rusm:runtime/process",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "rusm:runtime/streams.writer": WriterRes,
        "rusm:runtime/streams.reader": ReaderRes,
    },
});

use rusm::runtime::actor::{self, Item};
use rusm::runtime::streams::{self, StreamError};
use rusm::runtime::types::{self, ExitReason as WitReason};

/// A `writer` handle: the representation is the process's stream handle.
#[derive(Debug)]
pub struct WriterRes;

/// A `reader` handle: the representation is the process's stream handle.
#[derive(Debug)]
pub struct ReaderRes;

/// Adds WASI preview 2 and the `rusm:runtime` interfaces to the component linker.
pub(crate) fn add_to_linker(linker: &mut Linker<ProcState>) -> Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    add_monotonic_clock_waits(linker)?;
    Process::add_to_linker::<ProcState, HasSelf<ProcState>>(linker, |s| s)?;
    Ok(())
}

/// `wasi:clocks/monotonic-clock@0.2`'s pollables from rusm-sched's timers: wasmtime-wasi
/// 48's own wait on Tokio's timer, which panics outside a Tokio runtime (a guest's
/// `std::thread::sleep` would take its process down with a host panic). `now` and
/// `resolution` stay wasmtime-wasi's.
fn add_monotonic_clock_waits(linker: &mut Linker<ProcState>) -> Result<()> {
    use wasmtime::StoreContextMut;
    use wasmtime_wasi::p2::DynPollable;
    linker.allow_shadowing(true);
    use wasmtime_wasi::clocks::WasiClocksView;
    use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::Host as Clock;
    // Shadowing replaces the whole instance: `now` and `resolution` are wasmtime-wasi's.
    let mut i = linker.instance("wasi:clocks/monotonic-clock@0.2.6")?;
    i.func_wrap("now", |mut store: StoreContextMut<'_, ProcState>, (): ()| Ok((Clock::now(&mut store.data_mut().clocks())?,)))?;
    i.func_wrap("resolution", |mut store: StoreContextMut<'_, ProcState>, (): ()| {
        Ok((Clock::resolution(&mut store.data_mut().clocks())?,))
    })?;
    i.func_wrap("subscribe-duration", |mut store: StoreContextMut<'_, ProcState>, (ns,): (u64,)| {
        let at = std::time::Instant::now().checked_add(Duration::from_nanos(ns));
        Ok((deadline(store.data_mut(), at)?,))
    })?;
    i.func_wrap("subscribe-instant", |mut store: StoreContextMut<'_, ProcState>, (when,): (u64,)| {
        let st = store.data_mut();
        // The guest's clock reading, to turn `when` into a wait.
        let now = Clock::now(&mut st.clocks())?;
        let at = std::time::Instant::now().checked_add(Duration::from_nanos(when.saturating_sub(now)));
        Ok((deadline(st, at)?,))
    })?;
    linker.allow_shadowing(false);
    fn deadline(st: &mut ProcState, at: Option<std::time::Instant>) -> Result<Resource<DynPollable>> {
        let table = st.table();
        let r = table.push(Deadline { at, yielded: false })?;
        wasmtime_wasi::p2::subscribe(table, r)
    }
    Ok(())
}

/// A monotonic-clock pollable: ready at `at` (never if `None`: too far to represent).
struct Deadline {
    at: Option<std::time::Instant>,
    yielded: bool,
}

impl wasmtime_wasi::p2::Pollable for Deadline {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move {
            let Some(at) = self.at else { return std::future::pending().await };
            let left = at.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                // A zero wait (a non-blocking poll) still yields once, so a guest polling
                // in a loop lets the others run.
                if !self.yielded {
                    self.yielded = true;
                    crate::process::YieldOnce::default().await;
                }
                return;
            }
            let mut sleep = rusm_sched::Sleep::new(left);
            watched(|cx| std::future::Future::poll(Pin::new(&mut sleep), cx)).await;
        })
    }
}

fn trap(func: &str, why: impl std::fmt::Display) -> Error {
    Error::msg(format!("rusm:runtime/{func}: {why}"))
}

pub(crate) fn to_wit(r: &ExitReason) -> WitReason {
    match r {
        ExitReason::Normal => WitReason::Normal,
        ExitReason::Shutdown => WitReason::Shutdown,
        ExitReason::ShutdownWith(term) => WitReason::ShutdownWith(term.clone()),
        ExitReason::Kill => WitReason::Kill,
        ExitReason::Killed => WitReason::Killed,
        ExitReason::NoProc => WitReason::Noproc,
        ExitReason::Crashed(why) => WitReason::Crashed(why.clone()),
        ExitReason::Other(s) => WitReason::Other(s.clone()),
    }
}

fn from_wit(r: WitReason) -> ExitReason {
    match r {
        WitReason::Normal => ExitReason::Normal,
        WitReason::Shutdown => ExitReason::Shutdown,
        WitReason::ShutdownWith(term) => ExitReason::ShutdownWith(term),
        WitReason::Kill => ExitReason::Kill,
        WitReason::Killed => ExitReason::Killed,
        WitReason::Noproc => ExitReason::NoProc,
        WitReason::Crashed(why) => ExitReason::Crashed(why),
        WitReason::Other(s) => ExitReason::Other(s),
    }
}

fn pid(p: u64) -> Pid {
    Pid::from_u64(p)
}

fn kinds_mask(k: actor::Kinds) -> u32 {
    let mut m = 0;
    for (flag, bit) in [
        (actor::Kinds::MESSAGE, KIND_MESSAGE),
        (actor::Kinds::EXIT, KIND_EXIT),
        (actor::Kinds::DOWN, KIND_DOWN),
        (actor::Kinds::STREAM, KIND_STREAM),
        (actor::Kinds::OPAQUE, KIND_OPAQUE),
    ] {
        if k.contains(flag) {
            m |= bit;
        }
    }
    m
}

/// The host's filter for a guest's `filter` record; one that takes no kind of item would
/// wait for ever, and traps (`func` names the call).
pub(crate) fn filter_of(func: &str, filter: actor::Filter) -> Result<Filter> {
    let kinds = kinds_mask(filter.kinds);
    if kinds == 0 {
        return Err(trap(func, "the filter takes no kind of item: it would wait forever"));
    }
    Ok(Filter { kinds, tag: filter.tag, monitor: filter.monitor.unwrap_or(0) })
}

impl ProcState {
    /// A `reader` handle, owned by the guest, for a stream opened to it. Traps (`func`
    /// names the call) if the guest holds its quota of handles: the stream is dropped.
    pub(crate) fn reader(&mut self, func: &str, r: stream::StreamReader) -> Result<Resource<ReaderRes>> {
        match ops::accept_reader(self, r) {
            Ok(h) => Ok(Resource::new_own(h)),
            Err(_) => Err(trap(
                func,
                format!("a stream arrived while this process holds its quota of {} stream handles: close some first", self.caps.quota().streams),
            )),
        }
    }

    /// A mailbox item as the guest sees it; a stream becomes a `reader` handle it owns.
    pub(crate) fn item(&mut self, r: Received) -> Result<Option<Item>> {
        Ok(Some(match r {
            Received::Message(Message::Bytes(b)) => Item::Message(b),
            Received::Message(Message::Value(_)) => Item::Opaque,
            Received::Exit { from, reason } => Item::Exit(actor::ExitSignal { source: from.to_u64(), reason: to_wit(&reason) }),
            Received::Down { monitor, pid, reason } => {
                Item::Down(actor::Down { monitor: monitor.to_u64(), pid: pid.to_u64(), reason: to_wit(&reason) })
            }
            Received::Stream(r) => Item::Stream(self.reader("actor.receive", r)?),
            Received::Timeout => return Ok(None),
        }))
    }

    async fn receive_with(&mut self, filter: Filter, timeout_ms: i64) -> Result<Option<Item>> {
        match recv(filter, timeout_ms).await {
            Some(r) => self.item(r),
            None => Ok(None),
        }
    }

    /// The stream end behind handle `rep`, taken out of the table while a call waits
    /// on it (put back with [`ProcState::put_end`]).
    fn take_end(&mut self, func: &str, rep: u32) -> Result<StreamEnd> {
        let h = i32::try_from(rep).map_err(|_| trap(func, "bad handle"))?;
        self.stream_slot(h).and_then(Option::take).ok_or_else(|| trap(func, format!("stream handle {rep} is closed")))
    }

    fn put_end(&mut self, rep: u32, end: StreamEnd) {
        self.streams[rep as usize - 1] = Some(end);
    }
}

pub(crate) fn timeout_ms(t: Option<u64>) -> i64 {
    t.map_or(-1, |ms| i64::try_from(ms).unwrap_or(i64::MAX))
}

fn stream_error(e: &std::io::Error) -> StreamError {
    match e.kind() {
        std::io::ErrorKind::ConnectionAborted => StreamError::Aborted,
        _ => StreamError::Closed,
    }
}

impl types::Host for ProcState {}

/// A process-acting call's refusal as the WIT `process-error`.
fn process_error(r: Refusal) -> actor::ProcessError {
    match r {
        Refusal::Denied => actor::ProcessError::Denied,
        _ => actor::ProcessError::Noproc,
    }
}

impl actor::Host for ProcState {
    async fn self_pid(&mut self) -> Result<u64> {
        Ok(rusm_otp::self_pid().to_u64())
    }

    async fn send(&mut self, to: u64, msg: Vec<u8>) -> Result<Result<(), actor::LimitError>> {
        Ok(ops::send(pid(to), msg).map_err(|_| actor::LimitError::Limit))
    }

    async fn receive(&mut self) -> Result<Item> {
        loop {
            if let Some(item) = self.receive_with(Filter::any(), -1).await? {
                return Ok(item);
            }
        }
    }

    async fn receive_timeout(&mut self, timeout: u64) -> Result<Option<Item>> {
        self.receive_with(Filter::any(), timeout_ms(Some(timeout))).await
    }

    async fn receive_match(&mut self, filter: actor::Filter, timeout: Option<u64>) -> Result<Option<Item>> {
        let f = filter_of("actor.receive-match", filter)?;
        self.receive_with(f, timeout_ms(timeout)).await
    }

    async fn spawn(&mut self, name: String, opts: actor::SpawnOptions) -> Result<Result<actor::Spawned, actor::SpawnError>> {
        Ok(match ops::spawn(self, &name, opts.link, opts.monitor, opts.message).await {
            Ok(s) => Ok(actor::Spawned { pid: s.pid.to_u64(), monitor: s.monitor.map(MonitorRef::to_u64) }),
            Err(Refusal::NotFound) => Err(actor::SpawnError::NotFound),
            Err(_) => Err(actor::SpawnError::Limit),
        })
    }

    async fn link(&mut self, p: u64) -> Result<Result<(), actor::ProcessError>> {
        Ok(ops::link(self, pid(p)).map_err(process_error))
    }

    async fn unlink(&mut self, p: u64) -> Result<()> {
        rusm_otp::unlink(pid(p));
        Ok(())
    }

    async fn monitor(&mut self, p: u64) -> Result<u64> {
        Ok(rusm_otp::monitor(pid(p)).to_u64())
    }

    async fn demonitor(&mut self, m: u64, flush: bool) -> Result<bool> {
        Ok(rusm_otp::demonitor(MonitorRef::from_u64(m), flush))
    }

    async fn trap_exit(&mut self, on: bool) -> Result<bool> {
        Ok(rusm_otp::trap_exit(on))
    }

    async fn exit(&mut self, p: u64, reason: WitReason) -> Result<Result<(), actor::ProcessError>> {
        match ops::exit(self, pid(p), from_wit(reason)) {
            Err(Refusal::Invalid) => Err(trap("actor.exit", format!("a reason over {} bytes", ops::MAX_REASON))),
            r => Ok(r.map_err(process_error)),
        }
    }

    async fn list_processes(&mut self) -> Result<Vec<u64>> {
        Ok(ops::list_processes(self).iter().map(|p| p.to_u64()).collect())
    }

    async fn group_members(&mut self, name: String) -> Result<Vec<u64>> {
        Ok(ops::group_members(self, &name).iter().map(|p| p.to_u64()).collect())
    }

    async fn info(&mut self, p: u64) -> Result<Result<actor::ProcessInfo, actor::ProcessError>> {
        let i = match ops::info(self, pid(p)) {
            Ok(i) => i,
            Err(r) => return Ok(Err(process_error(r))),
        };
        let pids = |v: &[Pid]| v.iter().map(|p| p.to_u64()).collect::<Vec<_>>();
        Ok(Ok(actor::ProcessInfo {
            pid: i.pid.to_u64(),
            label: i.label.clone(),
            name: i.name.clone(),
            kind: i.kind.to_owned(),
            status: match i.status {
                ProcessStatus::Running => actor::Status::Running,
                ProcessStatus::Runnable => actor::Status::Runnable,
                ProcessStatus::Waiting => actor::Status::Waiting,
                ProcessStatus::Exiting => actor::Status::Exiting,
            },
            links: pids(&i.links),
            monitors: pids(&i.monitors),
            monitored_by: pids(&i.monitored_by),
            trap_exit: i.trap_exit,
            mailbox_len: u32::try_from(i.mailbox_len).unwrap_or(u32::MAX),
            reductions: i.reductions,
        }))
    }

    async fn is_alive(&mut self, p: u64) -> Result<bool> {
        Ok(rusm_otp::is_alive(pid(p)))
    }

    async fn kill(&mut self, p: u64) -> Result<Result<(), actor::ProcessError>> {
        Ok(ops::kill(self, pid(p)).map_err(process_error))
    }

    async fn register(&mut self, name: String, p: u64) -> Result<Result<(), actor::RegisterError>> {
        Ok(ops::register(self, &name, pid(p)).map_err(|r| match r {
            Refusal::NoProc => actor::RegisterError::Noproc,
            Refusal::Denied => actor::RegisterError::Denied,
            _ => actor::RegisterError::Taken,
        }))
    }

    async fn whereis(&mut self, name: String) -> Result<Option<u64>> {
        Ok(rusm_otp::whereis(&name).map(Pid::to_u64))
    }

    async fn unregister(&mut self, name: String) -> Result<Result<(), actor::UnregisterError>> {
        Ok(ops::unregister(self, &name).map_err(|r| match r {
            Refusal::Denied => actor::UnregisterError::Denied,
            _ => actor::UnregisterError::NotFound,
        }))
    }

    async fn set_label(&mut self, label: String) -> Result<()> {
        rusm_otp::set_label(label);
        Ok(())
    }

    async fn send_after(&mut self, to: u64, msg: Vec<u8>, delay_ms: u64) -> Result<Result<u64, actor::LimitError>> {
        Ok(ops::send_after(pid(to), msg, delay_ms).map_err(|_| actor::LimitError::Limit))
    }

    async fn cancel_timer(&mut self, t: u64) -> Result<bool> {
        Ok(ops::cancel_timer(t))
    }

    async fn sleep(&mut self, ms: u64) -> Result<()> {
        ops::sleep(ms).await;
        Ok(())
    }
}

impl streams::Host for ProcState {
    async fn open(&mut self, to: u64) -> Result<Result<Resource<WriterRes>, streams::OpenError>> {
        Ok(match ops::stream_open(self, pid(to)) {
            Ok(h) => Ok(Resource::new_own(h)),
            Err(Refusal::NoProc) => Err(streams::OpenError::Noproc),
            Err(_) => Err(streams::OpenError::Limit),
        })
    }

    async fn accept(&mut self, timeout: Option<u64>) -> Result<Option<Resource<ReaderRes>>> {
        match recv(Filter::streams(), timeout_ms(timeout)).await {
            Some(Received::Stream(r)) => Ok(Some(self.reader("streams.accept", r)?)),
            _ => Ok(None),
        }
    }
}

impl streams::HostWriter for ProcState {
    async fn write(&mut self, w: Resource<WriterRes>, data: Vec<u8>) -> Result<Result<u32, StreamError>> {
        let f = "streams.writer.write";
        let StreamEnd::Writer(writer) = self.take_end(f, w.rep())? else {
            return Err(trap(f, "not a writer"));
        };
        let data = &data[..data.len().min(STREAM_CHUNK)];
        let r = if data.is_empty() { Ok(0) } else { watched(|cx| writer.poll_write_buf(cx, data)).await };
        self.put_end(w.rep(), StreamEnd::Writer(writer));
        Ok(r.map(|n| n as u32).map_err(|e| stream_error(&e)))
    }

    async fn close(&mut self, w: Resource<WriterRes>) -> Result<()> {
        match self.take_end("streams.writer.close", w.rep())? {
            StreamEnd::Writer(writer) => writer.close(),
            StreamEnd::Reader(_) => return Err(trap("streams.writer.close", "not a writer")),
        }
        self.free_stream(w.rep());
        Ok(())
    }

    async fn drop(&mut self, w: Resource<WriterRes>) -> Result<()> {
        // Dropping an open writer closes it cleanly; after `close` the slot is free.
        if let Some(StreamEnd::Writer(writer)) = self.stream_slot(w.rep() as i32).and_then(Option::take) {
            writer.close();
        }
        self.free_stream(w.rep());
        Ok(())
    }
}

impl streams::HostReader for ProcState {
    async fn peer(&mut self, r: Resource<ReaderRes>) -> Result<u64> {
        let f = "streams.reader.peer";
        let end = self.take_end(f, r.rep())?;
        let from = match &end {
            StreamEnd::Reader(reader) => Ok(reader.from().to_u64()),
            StreamEnd::Writer(_) => Err(trap(f, "not a reader")),
        };
        self.put_end(r.rep(), end);
        from
    }

    async fn read(&mut self, r: Resource<ReaderRes>, max: u32) -> Result<Result<Vec<u8>, StreamError>> {
        let f = "streams.reader.read";
        if max == 0 {
            return Err(trap(f, "max is 0: an empty result means the end of the stream"));
        }
        let StreamEnd::Reader(reader) = self.take_end(f, r.rep())? else {
            return Err(trap(f, "not a reader"));
        };
        let mut buf = vec![0u8; (max as usize).min(STREAM_CHUNK)];
        let got = watched(|cx| reader.poll_read_buf(cx, &mut buf)).await;
        self.put_end(r.rep(), StreamEnd::Reader(reader));
        Ok(got.map(|n| {
            buf.truncate(n);
            buf
        })
        .map_err(|e| stream_error(&e)))
    }

    async fn drop(&mut self, r: Resource<ReaderRes>) -> Result<()> {
        if let Some(slot) = self.stream_slot(r.rep() as i32) {
            slot.take();
        }
        self.free_stream(r.rep());
        Ok(())
    }
}
