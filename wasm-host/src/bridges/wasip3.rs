//! Preview 3 on the same component linker and host state: the `@0.3.0` WASI interfaces
//! from `wasmtime_wasi::p3`, except `wasi:clocks/monotonic-clock`, which is served from
//! rusm-sched's timers (wasmtime-wasi 48's own `wait-for`/`wait-until` sleep on Tokio's
//! timer and fail outside a Tokio runtime); `rusm:runtime/pipes`, which passes a
//! process stream as a native `stream<u8>` with the back-pressure of a process stream;
//! and `rusm:runtime/mailbox`, the waiting calls of `actor` and `streams` as async
//! functions, so one task of a p3 guest waits for its mailbox while the others run.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusm_otp::stream::{self, StreamReader as ProcReader, StreamWriter};
use rusm_otp::Pid;
use wasmtime::component::{
    Destination, Linker, Resource, Source, StreamConsumer, StreamProducer, StreamReader, StreamResult,
};
use wasmtime::{Error, Result, StoreContextMut};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};

use rusm_otp::Received;
use wasmtime::component::Accessor;

use super::wasip1::{Filter, recv, watched};
use super::wasip2::rusm::runtime::actor::{self, Item};
use super::wasip2::{ReaderRes, filter_of, timeout_ms};
use crate::abi::STREAM_CHUNK;
use crate::process::{ProcState, StreamEnd, add_waiter};

/// Adds the WASI 0.3 interfaces and `rusm:runtime/pipes` to the component linker.
pub(crate) fn add_to_linker(linker: &mut Linker<ProcState>) -> Result<()> {
    use wasmtime_wasi::p3::bindings::clocks::{system_clock, types};
    wasmtime_wasi::p3::cli::add_to_linker(linker)?;
    wasmtime_wasi::p3::filesystem::add_to_linker(linker)?;
    wasmtime_wasi::p3::random::add_to_linker(linker)?;
    wasmtime_wasi::p3::sockets::add_to_linker(linker)?;
    types::add_to_linker::<_, WasiClocks>(linker, <ProcState as WasiClocksView>::clocks)?;
    system_clock::add_to_linker::<_, WasiClocks>(linker, <ProcState as WasiClocksView>::clocks)?;
    add_monotonic_clock(linker)?;
    add_pipes(linker)?;
    add_mailbox(linker)?;
    Ok(())
}

/// Nanoseconds since the first reading in this OS process: a monotonic clock.
fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Parks the calling task (not the thread, not the process's other tasks) for `d`, on
/// rusm-sched's timer wheel; a kill still wakes the process.
async fn wait(d: Duration) {
    if d.is_zero() {
        return;
    }
    let mut sleep = rusm_sched::Sleep::new(d);
    watched(|cx| std::future::Future::poll(Pin::new(&mut sleep), cx)).await;
}

fn add_monotonic_clock(linker: &mut Linker<ProcState>) -> Result<()> {
    let mut i = linker.instance("wasi:clocks/monotonic-clock@0.3.0")?;
    i.func_wrap("now", |_: StoreContextMut<'_, ProcState>, (): ()| Ok((now_ns(),)))?;
    // Readings are in nanoseconds; waits are rounded up to the timer wheel's millisecond.
    i.func_wrap("get-resolution", |_: StoreContextMut<'_, ProcState>, (): ()| Ok((1u64,)))?;
    i.func_wrap_concurrent("wait-for", |_, (ns,): (u64,)| {
        Box::pin(async move {
            wait(Duration::from_nanos(ns)).await;
            Ok(())
        })
    })?;
    i.func_wrap_concurrent("wait-until", |_, (when,): (u64,)| {
        Box::pin(async move {
            wait(Duration::from_nanos(when.saturating_sub(now_ns()))).await;
            Ok(())
        })
    })?;
    Ok(())
}

/// `rusm:runtime/mailbox`: `actor`'s and `streams`' waiting calls as concurrent host
/// functions. Each waits as its sync namesake does (`recv`), and registers its task's
/// waker with the process's waiters while it waits (see `process::Waiters`).
fn add_mailbox(linker: &mut Linker<ProcState>) -> Result<()> {
    let mut i = linker.instance("rusm:runtime/mailbox@0.1.0")?;
    i.func_wrap_concurrent("receive", |acc: &Accessor<ProcState>, (): ()| {
        Box::pin(async move {
            loop {
                if let Some(item) = await_item(acc, Filter::any(), -1).await? {
                    return Ok((item,));
                }
            }
        })
    })?;
    i.func_wrap_concurrent("receive-timeout", |acc: &Accessor<ProcState>, (ms,): (u64,)| {
        Box::pin(async move { Ok((await_item(acc, Filter::any(), timeout_ms(Some(ms))).await?,)) })
    })?;
    i.func_wrap_concurrent("receive-match", |acc: &Accessor<ProcState>, (filter, ms): (actor::Filter, Option<u64>)| {
        Box::pin(async move {
            let f = filter_of("mailbox.receive-match", filter)?;
            Ok((await_item(acc, f, timeout_ms(ms)).await?,))
        })
    })?;
    i.func_wrap_concurrent("accept", |acc: &Accessor<ProcState>, (ms,): (Option<u64>,)| {
        Box::pin(async move {
            let reader = match awaiting(acc, recv(Filter::streams(), timeout_ms(ms))).await {
                Some(Received::Stream(r)) => Some(acc.with(|mut a| a.get().reader("mailbox.accept", r))?),
                _ => None,
            };
            Ok((reader,))
        })
    })?;
    Ok(())
}

/// The first item `filter` takes, waiting at most `timeout_ms` (-1: for ever), as the
/// guest sees it.
async fn await_item(acc: &Accessor<ProcState>, filter: Filter, timeout_ms: i64) -> Result<Option<Item>> {
    match awaiting(acc, recv(filter, timeout_ms)).await {
        Some(r) => acc.with(|mut a| a.get().item(r)),
        None => Ok(None),
    }
}

/// Polls `fut`, leaving this task's waker with the process's waiters each time it waits.
async fn awaiting<F: std::future::Future>(acc: &Accessor<ProcState>, fut: F) -> F::Output {
    let waiters = acc.with(|mut a| a.get().waiters());
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        let r = fut.as_mut().poll(cx);
        if r.is_pending() {
            add_waiter(&waiters, cx.waker());
        }
        r
    })
    .await
}

fn add_pipes(linker: &mut Linker<ProcState>) -> Result<()> {
    let mut i = linker.instance("rusm:runtime/pipes@0.1.0")?;
    i.func_wrap("send-to", |mut store: StoreContextMut<'_, ProcState>, (to, mut data): (u64, StreamReader<u8>)| {
        // Each live pipe counts as a handle against the stream quota, as `streams.open`.
        let st = store.data_mut();
        st.pumps.retain(|p| p.lock().is_some());
        let room = st.open_streams() + st.pumps.len() < st.caps.quota().streams;
        let opened = if room { stream::open(Pid::from_u64(to)).ok() } else { None };
        let Some(w) = opened else {
            data.close(&mut store)?;
            return Ok((false,));
        };
        // The writer is shared with the process state: if the guest crashes, its end
        // aborts the stream (as for a handle it writes) instead of closing it cleanly.
        let slot = Arc::new(Mutex::new(Some(w)));
        store.data_mut().pumps.push(slot.clone());
        data.pipe(&mut store, Pump { writer: slot })?;
        Ok((true,))
    })?;
    i.func_wrap("into-stream", |mut store: StoreContextMut<'_, ProcState>, (r,): (Resource<ReaderRes>,)| {
        let f = "rusm:runtime/pipes.into-stream";
        let st = store.data_mut();
        let h = i32::try_from(r.rep()).map_err(|_| Error::msg(format!("{f}: bad handle")))?;
        let end = st.stream_slot(h).and_then(Option::take).ok_or_else(|| Error::msg(format!("{f}: the reader is closed")))?;
        st.free_stream(r.rep());
        let StreamEnd::Reader(reader) = end else {
            return Err(Error::msg(format!("{f}: not a reader")));
        };
        Ok((StreamReader::new(&mut store, Feed { reader })?,))
    })?;
    Ok(())
}

/// Moves what a guest writes to its `stream<u8>` into a process stream. Taking fewer
/// bytes, or none (Pending) while the reader's pipe is full, holds the guest's write.
struct Pump {
    writer: Arc<Mutex<Option<StreamWriter>>>,
}

impl StreamConsumer<ProcState> for Pump {
    type Item = u8;

    fn poll_consume(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        store: StoreContextMut<'_, ProcState>,
        source: Source<'_, u8>,
        finish: bool,
    ) -> Poll<Result<StreamResult>> {
        let mut guard = self.writer.lock();
        let Some(w) = guard.as_ref() else { return Poll::Ready(Ok(StreamResult::Dropped)) };
        let mut src = source.as_direct(store);
        let data = src.remaining();
        if data.is_empty() {
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        let data = &data[..data.len().min(STREAM_CHUNK)];
        match w.poll_write_buf(cx, data) {
            Poll::Ready(Ok(n)) => {
                src.mark_read(n);
                Poll::Ready(Ok(StreamResult::Completed))
            }
            Poll::Ready(Err(_)) => {
                // The reader is gone: the guest's later writes see the stream dropped.
                guard.take();
                Poll::Ready(Ok(StreamResult::Dropped))
            }
            Poll::Pending if finish => Poll::Ready(Ok(StreamResult::Cancelled)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        // The guest dropped its end (or the store is going): a clean end for the reader,
        // unless the process's crash already aborted it.
        if let Some(w) = self.writer.lock().take() {
            w.close();
        }
    }
}

/// Feeds a process stream's bytes to a guest's `stream<u8>` read.
struct Feed {
    reader: ProcReader,
}

impl StreamProducer<ProcState> for Feed {
    type Item = u8;
    type Buffer = Option<u8>;

    fn poll_produce<'a>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut store: StoreContextMut<'a, ProcState>,
        dst: Destination<'a, u8, Option<u8>>,
        finish: bool,
    ) -> Poll<Result<StreamResult>> {
        let want = match dst.remaining(&mut store) {
            // A zero-length read only asks whether the stream is still open.
            Some(0) => return Poll::Ready(Ok(StreamResult::Completed)),
            Some(n) => n.min(STREAM_CHUNK),
            None => STREAM_CHUNK,
        };
        let mut d = dst.as_direct(store, want);
        let buf = d.remaining();
        let want = want.min(buf.len());
        match self.reader.poll_read_buf(cx, &mut buf[..want]) {
            Poll::Ready(Ok(0)) => Poll::Ready(Ok(StreamResult::Dropped)),
            Poll::Ready(Ok(n)) => {
                d.mark_written(n);
                Poll::Ready(Ok(StreamResult::Completed))
            }
            // The writer crashed: the guest sees the stream end early.
            Poll::Ready(Err(_)) => Poll::Ready(Ok(StreamResult::Dropped)),
            Poll::Pending if finish => Poll::Ready(Ok(StreamResult::Cancelled)),
            Poll::Pending => Poll::Pending,
        }
    }
}
