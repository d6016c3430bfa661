//! Preview1 core modules: `wasi_snapshot_preview1` from wasmtime-wasi plus the raw `rusm`
//! import module, flat `(ptr, len)` arguments through the guest's exported `memory`.
//!
//! Every function here is specified byte by byte in `docs/WASM-ABI.md`. The rules in
//! short: integers are little-endian; a pid is an `i64` (generation high, slot low); a
//! function returns one of the [`abi`] status codes unless it says otherwise; a pointer or
//! length that leaves the guest's memory, a missing `memory` export or a name that is not
//! UTF-8 traps, so the process crashes with a reason that names the call — checked before
//! anything is consumed, so no message is lost to a bad buffer.

use std::future::poll_fn;
use std::ops::Range;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use rusm_otp::stream::StreamWriter;
use rusm_otp::{ExitReason, Message, MonitorRef, Pid, ProcessStatus, Received};
use wasmtime::{Caller, Linker, Memory, Result};

use crate::ops::{self, Refusal};
use crate::process::{ProcState, StreamEnd};

mod poll;

/// The constants of the raw `rusm` ABI: status codes, item kinds, flags and sizes.
pub mod abi {
    /// Success.
    pub const OK: i32 = 0;
    /// The process does not exist (or is no longer alive).
    pub const NOPROC: i32 = 1;
    /// The timeout passed first.
    pub const TIMEOUT: i32 = 2;
    /// No such name or artifact.
    pub const NOT_FOUND: i32 = 3;
    /// The name is taken, or the process already has one.
    pub const TAKEN: i32 = 4;
    /// Not an open stream handle of the right direction.
    pub const BAD_HANDLE: i32 = 5;
    /// The other end of the stream is gone (the reader for a write).
    pub const CLOSED: i32 = 6;
    /// The writer crashed: the stream ends abnormally.
    pub const ABORTED: i32 = 7;
    /// A quota or host limit refused: the caller's (timers, stream handles, its app's
    /// processes), the receiver's (a full mailbox), or the host's (its pool is full, the
    /// node is shutting down).
    pub const LIMIT: i32 = 8;
    /// The output buffer is too small; the needed size was written.
    pub const TOO_SMALL: i32 = 9;
    /// An argument has a value the function does not take.
    pub const INVALID: i32 = 10;
    /// The process is outside the caller's app, and its profile reaches only its own app
    /// (`docs/SECURITY.md`).
    pub const DENIED: i32 = 11;

    /// Item kind: a message of bytes.
    pub const KIND_MESSAGE: u32 = 1;
    /// Item kind: an exit signal from a link, trapped (`trap_exit`).
    pub const KIND_EXIT: u32 = 2;
    /// Item kind: a monitor fired.
    pub const KIND_DOWN: u32 = 4;
    /// Item kind: another process opened a stream to this one.
    pub const KIND_STREAM: u32 = 8;
    /// Item kind: a typed value from a native process, which a guest cannot read.
    pub const KIND_OPAQUE: u32 = 16;
    /// Every kind.
    pub const KIND_ANY: u32 = 31;

    /// `spawn` flag: link the child to the caller.
    pub const SPAWN_LINK: i32 = 1;
    /// `spawn` flag: monitor the child; its monitor reference is written too.
    pub const SPAWN_MONITOR: i32 = 2;

    /// Size of the item record `receive` writes.
    pub const ITEM_SIZE: usize = 24;
    /// Size of the fixed part of the record `info` writes.
    pub const INFO_HEADER: usize = 56;
    /// The longest exit reason `exit` takes, in bytes.
    pub const MAX_REASON: usize = crate::ops::MAX_REASON;
    /// The largest chunk one stream call moves.
    pub const STREAM_CHUNK: usize = 64 << 10;
}

use abi::*;

type C<'a> = Caller<'a, ProcState>;

fn trap(func: &str, why: impl std::fmt::Display) -> wasmtime::Error {
    wasmtime::Error::msg(format!("rusm.{func}: {why}"))
}

fn memory(caller: &mut C<'_>, func: &str) -> Result<Memory> {
    find_memory(caller).ok_or_else(|| trap(func, "the module exports no memory named `memory`"))
}

/// The guest's `memory` export: found at instantiation, or (for a call from a start
/// function, which runs before instantiation ends) looked up through the caller, once.
fn find_memory(caller: &mut C<'_>) -> Option<Memory> {
    if let Some(m) = caller.data().memory {
        return Some(m);
    }
    let m = caller.get_export("memory").and_then(wasmtime::Extern::into_memory)?;
    caller.data_mut().memory = Some(m);
    Some(m)
}

/// The guest range `ptr..ptr+len`, or a trap naming the call.
fn range(caller: &mut C<'_>, func: &str, ptr: i32, len: usize) -> Result<Range<usize>> {
    guest_range(caller, ptr, len, |why| trap(func, why))
}

/// The guest range `ptr..ptr+len`, or the trap `fail` makes of what is wrong (no memory,
/// or the range leaves it).
fn guest_range(caller: &mut C<'_>, ptr: i32, len: usize, fail: impl Fn(String) -> wasmtime::Error) -> Result<Range<usize>> {
    let mem = find_memory(caller).ok_or_else(|| fail("the module exports no memory named `memory`".into()))?;
    let size = mem.data_size(&*caller);
    let start = ptr as u32 as usize;
    match start.checked_add(len) {
        Some(end) if end <= size => Ok(start..end),
        _ => Err(fail(format!("pointer {start:#x} + {len} bytes is outside the guest's {size}-byte memory"))),
    }
}

fn len_arg(func: &str, len: i32) -> Result<usize> {
    usize::try_from(len).map_err(|_| trap(func, format!("negative length {len}")))
}

fn read_bytes(caller: &mut C<'_>, func: &str, ptr: i32, len: i32) -> Result<Vec<u8>> {
    let r = range(caller, func, ptr, len_arg(func, len)?)?;
    let mem = memory(caller, func)?;
    Ok(mem.data(&*caller)[r].to_vec())
}

fn read_str(caller: &mut C<'_>, func: &str, ptr: i32, len: i32) -> Result<String> {
    String::from_utf8(read_bytes(caller, func, ptr, len)?).map_err(|_| trap(func, "the text is not UTF-8"))
}

fn write_bytes(caller: &mut C<'_>, func: &str, ptr: i32, data: &[u8]) -> Result<()> {
    let r = range(caller, func, ptr, data.len())?;
    let mem = memory(caller, func)?;
    mem.data_mut(&mut *caller)[r].copy_from_slice(data);
    Ok(())
}

fn pid(v: i64) -> Pid {
    Pid::from_u64(v as u64)
}

/// Which mailbox items a receive takes: kinds, a prefix messages must start with, and
/// the monitor a `Down` must be for (0: any).
pub(crate) struct Filter {
    pub(crate) kinds: u32,
    pub(crate) tag: Vec<u8>,
    pub(crate) monitor: u64,
}

impl Filter {
    pub(crate) fn any() -> Filter {
        Filter { kinds: KIND_ANY, tag: Vec::new(), monitor: 0 }
    }

    /// Only streams opened to this process (`accept`).
    pub(crate) fn streams() -> Filter {
        Filter { kinds: KIND_STREAM, tag: Vec::new(), monitor: 0 }
    }

    fn accepts(&self, r: &Received) -> bool {
        match r {
            Received::Message(Message::Bytes(b)) => self.kinds & KIND_MESSAGE != 0 && b.starts_with(&self.tag),
            Received::Message(Message::Value(_)) => self.kinds & KIND_OPAQUE != 0,
            Received::Exit { .. } => self.kinds & KIND_EXIT != 0,
            Received::Down { monitor, .. } => {
                self.kinds & KIND_DOWN != 0 && (self.monitor == 0 || monitor.to_u64() == self.monitor)
            }
            Received::Stream(_) => self.kinds & KIND_STREAM != 0,
            Received::Timeout => false,
        }
    }
}

/// Waits (parking the process, not the thread) for the first item `filter` takes;
/// `None` after `timeout_ms` (negative: no timeout; 0: only what is there now).
pub(crate) async fn recv(filter: Filter, timeout_ms: i64) -> Option<Received> {
    let mut scan = rusm_otp::MatchScan::default();
    let mut sleep = (timeout_ms > 0).then(|| rusm_sched::Sleep::new(Duration::from_millis(timeout_ms as u64)));
    poll_fn(|cx| {
        if let Poll::Ready(item) = rusm_otp::poll_receive_match(cx, &mut scan, |r| filter.accepts(r)) {
            return Poll::Ready(Some(item));
        }
        let expired = match sleep.as_mut() {
            Some(s) => Pin::new(s).poll(cx).is_ready(),
            None => timeout_ms == 0,
        };
        if expired {
            rusm_otp::cancel_receive();
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// Waits on `poll` with the process's signals watched: a kill wakes it (and the process
/// shows as waiting meanwhile).
pub(crate) async fn watched<T>(mut poll: impl FnMut(&mut std::task::Context<'_>) -> Poll<T>) -> T {
    let mut parked = false;
    let v = poll_fn(|cx| match poll(cx) {
        Poll::Ready(v) => Poll::Ready(v),
        Poll::Pending => {
            rusm_otp::watch_signals(cx);
            parked = true;
            Poll::Pending
        }
    })
    .await;
    if parked {
        rusm_otp::cancel_receive();
    }
    v
}

/// Writes a received item: the record at `info`, the payload's first `cap` bytes at `buf`
/// (the rest waits for `read_rest`).
fn deliver(caller: &mut C<'_>, func: &str, item: Received, buf: i32, cap: usize, info: i32) -> Result<i32> {
    let (kind, payload, who, reference): (u32, Vec<u8>, u64, u64) = match item {
        Received::Message(Message::Bytes(b)) => (KIND_MESSAGE, b, 0, 0),
        Received::Message(Message::Value(_)) => (KIND_OPAQUE, Vec::new(), 0, 0),
        Received::Exit { from, reason } => (KIND_EXIT, reason.to_string().into_bytes(), from.to_u64(), 0),
        Received::Down { monitor, pid, reason } => {
            (KIND_DOWN, reason.to_string().into_bytes(), pid.to_u64(), monitor.to_u64())
        }
        Received::Stream(r) => {
            let from = r.from().to_u64();
            let Ok(h) = ops::accept_reader(caller.data_mut(), r) else { return Ok(LIMIT) };
            (KIND_STREAM, Vec::new(), from, u64::from(h))
        }
        Received::Timeout => return Ok(TIMEOUT),
    };
    let n = payload.len().min(cap);
    write_bytes(caller, func, buf, &payload[..n])?;
    let mut rec = [0u8; ITEM_SIZE];
    rec[0..4].copy_from_slice(&kind.to_le_bytes());
    rec[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    rec[8..16].copy_from_slice(&who.to_le_bytes());
    rec[16..24].copy_from_slice(&reference.to_le_bytes());
    write_bytes(caller, func, info, &rec)?;
    let st = caller.data_mut();
    st.rest = payload;
    st.rest_pos = n;
    Ok(OK)
}

pub(crate) fn status_code(s: ProcessStatus) -> u32 {
    match s {
        ProcessStatus::Running => 0,
        ProcessStatus::Runnable => 1,
        ProcessStatus::Waiting => 2,
        ProcessStatus::Exiting => 3,
    }
}

/// Takes stream handle `h` out of the table for a blocking call (put back after).
fn take_stream(caller: &mut C<'_>, h: i32) -> Option<StreamEnd> {
    caller.data_mut().stream_slot(h)?.take()
}

fn put_stream(caller: &mut C<'_>, h: i32, end: StreamEnd) {
    let i = h as usize - 1;
    caller.data_mut().streams[i] = Some(end);
}

fn stream_error(e: &std::io::Error) -> i32 {
    match e.kind() {
        std::io::ErrorKind::BrokenPipe => CLOSED,
        std::io::ErrorKind::ConnectionAborted => ABORTED,
        _ => CLOSED,
    }
}

/// A host-core outcome as the raw ABI's status code.
fn code<T>(r: std::result::Result<T, Refusal>) -> i32 {
    match r {
        Ok(_) => OK,
        Err(Refusal::NoProc) => NOPROC,
        Err(Refusal::Denied) => DENIED,
        Err(Refusal::Limit) => LIMIT,
        Err(Refusal::NotFound) => NOT_FOUND,
        Err(Refusal::Taken) => TAKEN,
        Err(Refusal::Invalid) => INVALID,
    }
}

/// Adds WASI preview1 and the `rusm` module to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<ProcState>) -> Result<()> {
    wasmtime_wasi::p1::add_to_linker_async(linker, ProcState::wasi)?;
    // Its `poll_oneoff` waits on Tokio's timer: RUSM serves it (poll.rs).
    poll::add_to_linker(linker)?;
    let m = "rusm";

    linker.func_wrap(m, "own_pid", |_: C<'_>| -> i64 { rusm_otp::self_pid().to_u64() as i64 })?;

    linker.func_wrap(m, "send", |mut c: C<'_>, to: i64, ptr: i32, len: i32| -> Result<i32> {
        let msg = read_bytes(&mut c, "send", ptr, len)?;
        Ok(code(ops::send(pid(to), msg)))
    })?;

    linker.func_wrap_async(m, "receive", |mut c: C<'_>, (buf, cap, timeout_ms, info): (i32, i32, i64, i32)| {
        Box::new(async move {
            let cap = len_arg("receive", cap)?;
            range(&mut c, "receive", buf, cap)?;
            range(&mut c, "receive", info, ITEM_SIZE)?;
            match recv(Filter::any(), timeout_ms).await {
                Some(item) => deliver(&mut c, "receive", item, buf, cap, info),
                None => Ok(TIMEOUT),
            }
        })
    })?;

    linker.func_wrap_async(
        m,
        "receive_match",
        |mut c: C<'_>, (kinds, tag, tag_len, monitor, buf, cap, timeout_ms, info): (i32, i32, i32, i64, i32, i32, i64, i32)| {
            Box::new(async move {
                let f = "receive_match";
                let kinds = kinds as u32;
                if kinds == 0 || kinds & !KIND_ANY != 0 {
                    return Ok(INVALID);
                }
                let tag = read_bytes(&mut c, f, tag, tag_len)?;
                let cap = len_arg(f, cap)?;
                range(&mut c, f, buf, cap)?;
                range(&mut c, f, info, ITEM_SIZE)?;
                let filter = Filter { kinds, tag, monitor: monitor as u64 };
                match recv(filter, timeout_ms).await {
                    Some(item) => deliver(&mut c, f, item, buf, cap, info),
                    None => Ok(TIMEOUT),
                }
            })
        },
    )?;

    linker.func_wrap(m, "read_rest", |mut c: C<'_>, buf: i32, cap: i32| -> Result<i32> {
        let cap = len_arg("read_rest", cap)?;
        range(&mut c, "read_rest", buf, cap)?;
        let st = c.data_mut();
        let rest = std::mem::take(&mut st.rest);
        let from = st.rest_pos.min(rest.len());
        let n = (rest.len() - from).min(cap);
        let r = write_bytes(&mut c, "read_rest", buf, &rest[from..from + n]);
        let st = c.data_mut();
        st.rest = rest;
        st.rest_pos = from + n;
        r.map(|()| n as i32)
    })?;

    linker.func_wrap(m, "list_processes", |mut c: C<'_>, buf: i32, cap: i32| -> Result<i32> {
        let cap = len_arg("list_processes", cap)?;
        range(&mut c, "list_processes", buf, cap.checked_mul(8).ok_or_else(|| trap("list_processes", "capacity too large"))?)?;
        let pids = ops::list_processes(c.data());
        write_pids(&mut c, "list_processes", buf, cap, &pids)
    })?;

    linker.func_wrap(m, "group_members", |mut c: C<'_>, ptr: i32, len: i32, buf: i32, cap: i32| -> Result<i32> {
        let f = "group_members";
        let name = read_str(&mut c, f, ptr, len)?;
        let cap = len_arg(f, cap)?;
        range(&mut c, f, buf, cap.checked_mul(8).ok_or_else(|| trap(f, "capacity too large"))?)?;
        let pids = ops::group_members(c.data(), &name);
        write_pids(&mut c, f, buf, cap, &pids)
    })?;

    linker.func_wrap(m, "info", |mut c: C<'_>, who: i64, buf: i32, cap: i32, out_len: i32| -> Result<i32> {
        let f = "info";
        let cap = len_arg(f, cap)?;
        range(&mut c, f, buf, cap)?;
        range(&mut c, f, out_len, 4)?;
        let i = match ops::info(c.data(), pid(who)) {
            Ok(i) => i,
            Err(r) => return Ok(code::<()>(Err(r))),
        };
        let label = i.label.unwrap_or_default();
        let name = i.name.unwrap_or_default();
        let kind = i.kind;
        let need = INFO_HEADER + label.len() + name.len() + kind.len();
        write_bytes(&mut c, f, out_len, &(need as u32).to_le_bytes())?;
        if cap < need {
            return Ok(TOO_SMALL);
        }
        let mut rec = Vec::with_capacity(need);
        rec.extend_from_slice(&i.pid.to_u64().to_le_bytes());
        rec.extend_from_slice(&i.reductions.to_le_bytes());
        rec.extend_from_slice(&(i.mailbox_len as u32).to_le_bytes());
        rec.extend_from_slice(&status_code(i.status).to_le_bytes());
        rec.extend_from_slice(&(i.links.len() as u32).to_le_bytes());
        rec.extend_from_slice(&(i.monitors.len() as u32).to_le_bytes());
        rec.extend_from_slice(&(i.monitored_by.len() as u32).to_le_bytes());
        rec.extend_from_slice(&u32::from(i.trap_exit).to_le_bytes());
        rec.extend_from_slice(&(label.len() as u32).to_le_bytes());
        rec.extend_from_slice(&(name.len() as u32).to_le_bytes());
        rec.extend_from_slice(&(kind.len() as u32).to_le_bytes());
        rec.extend_from_slice(&0u32.to_le_bytes());
        debug_assert_eq!(rec.len(), INFO_HEADER);
        rec.extend_from_slice(label.as_bytes());
        rec.extend_from_slice(name.as_bytes());
        rec.extend_from_slice(kind.as_bytes());
        write_bytes(&mut c, f, buf, &rec)?;
        Ok(OK)
    })?;

    linker.func_wrap(m, "is_alive", |_: C<'_>, who: i64| -> i32 { i32::from(rusm_otp::is_alive(pid(who))) })?;

    linker.func_wrap(m, "kill", |c: C<'_>, who: i64| -> i32 { code(ops::kill(c.data(), pid(who))) })?;

    linker.func_wrap(m, "exit", |mut c: C<'_>, who: i64, ptr: i32, len: i32| -> Result<i32> {
        if len_arg("exit", len)? > MAX_REASON {
            return Ok(INVALID);
        }
        let text = read_str(&mut c, "exit", ptr, len)?;
        Ok(code(ops::exit(c.data(), pid(who), ExitReason::from_text(&text))))
    })?;

    linker.func_wrap(m, "link", |c: C<'_>, who: i64| -> i32 { code(ops::link(c.data(), pid(who))) })?;

    linker.func_wrap(m, "unlink", |_: C<'_>, who: i64| -> i32 {
        rusm_otp::unlink(pid(who));
        OK
    })?;

    linker.func_wrap(m, "monitor", |_: C<'_>, who: i64| -> i64 { rusm_otp::monitor(pid(who)).to_u64() as i64 })?;

    linker.func_wrap(m, "demonitor", |_: C<'_>, r: i64, flush: i32| -> i32 {
        i32::from(rusm_otp::demonitor(MonitorRef::from_u64(r as u64), flush != 0))
    })?;

    linker.func_wrap(m, "trap_exit", |_: C<'_>, on: i32| -> i32 { i32::from(rusm_otp::trap_exit(on != 0)) })?;

    linker.func_wrap(m, "register", |mut c: C<'_>, ptr: i32, len: i32, who: i64| -> Result<i32> {
        let name = read_str(&mut c, "register", ptr, len)?;
        Ok(code(ops::register(c.data(), &name, pid(who))))
    })?;

    linker.func_wrap(m, "whereis", |mut c: C<'_>, ptr: i32, len: i32, out: i32| -> Result<i32> {
        let name = read_str(&mut c, "whereis", ptr, len)?;
        range(&mut c, "whereis", out, 8)?;
        match rusm_otp::whereis(&name) {
            Some(p) => {
                write_bytes(&mut c, "whereis", out, &p.to_u64().to_le_bytes())?;
                Ok(OK)
            }
            None => Ok(NOT_FOUND),
        }
    })?;

    linker.func_wrap(m, "unregister", |mut c: C<'_>, ptr: i32, len: i32| -> Result<i32> {
        let name = read_str(&mut c, "unregister", ptr, len)?;
        Ok(code(ops::unregister(c.data(), &name)))
    })?;

    linker.func_wrap(m, "set_label", |mut c: C<'_>, ptr: i32, len: i32| -> Result<i32> {
        let label = read_str(&mut c, "set_label", ptr, len)?;
        rusm_otp::set_label(label);
        Ok(OK)
    })?;

    linker.func_wrap_async(
        m,
        "spawn",
        |mut c: C<'_>, (name, name_len, msg, msg_len, flags, out): (i32, i32, i32, i32, i32, i32)| {
            Box::new(async move {
                let f = "spawn";
                let name = read_str(&mut c, f, name, name_len)?;
                let msg = read_bytes(&mut c, f, msg, msg_len)?;
                range(&mut c, f, out, 16)?;
                if flags & !(SPAWN_LINK | SPAWN_MONITOR) != 0 {
                    return Ok(INVALID);
                }
                let msg = (!msg.is_empty()).then_some(msg);
                let s = match ops::spawn(c.data_mut(), &name, flags & SPAWN_LINK != 0, flags & SPAWN_MONITOR != 0, msg).await {
                    Ok(s) => s,
                    Err(r) => return Ok(code::<()>(Err(r))),
                };
                let mut rec = [0u8; 16];
                rec[..8].copy_from_slice(&s.pid.to_u64().to_le_bytes());
                rec[8..].copy_from_slice(&s.monitor.map_or(0, MonitorRef::to_u64).to_le_bytes());
                write_bytes(&mut c, f, out, &rec)?;
                Ok(OK)
            })
        },
    )?;

    linker.func_wrap(m, "send_after", |mut c: C<'_>, to: i64, ptr: i32, len: i32, delay_ms: i64| -> Result<i64> {
        let msg = read_bytes(&mut c, "send_after", ptr, len)?;
        // A negative delay is 0; the id is never 0 or negative, so a negative result is a
        // refusal (-LIMIT).
        Ok(match ops::send_after(pid(to), msg, delay_ms.max(0) as u64) {
            Ok(id) => id as i64,
            Err(_) => -i64::from(LIMIT),
        })
    })?;

    linker.func_wrap(m, "cancel_timer", |_: C<'_>, id: i64| -> i32 { i32::from(ops::cancel_timer(id as u64)) })?;

    linker.func_wrap_async(m, "sleep", |_: C<'_>, (ms,): (i64,)| {
        Box::new(async move {
            ops::sleep(ms.max(0) as u64).await;
            OK
        })
    })?;

    linker.func_wrap(m, "stream_open", |mut c: C<'_>, to: i64, out: i32| -> Result<i32> {
        range(&mut c, "stream_open", out, 4)?;
        match ops::stream_open(c.data_mut(), pid(to)) {
            Ok(h) => {
                write_bytes(&mut c, "stream_open", out, &h.to_le_bytes())?;
                Ok(OK)
            }
            Err(r) => Ok(code::<()>(Err(r))),
        }
    })?;

    linker.func_wrap_async(m, "stream_write", |mut c: C<'_>, (h, ptr, len, out): (i32, i32, i32, i32)| {
        Box::new(async move {
            let f = "stream_write";
            let len = len_arg(f, len)?.min(STREAM_CHUNK);
            let data = read_bytes(&mut c, f, ptr, len as i32)?;
            range(&mut c, f, out, 4)?;
            let w: StreamWriter = match take_stream(&mut c, h) {
                Some(StreamEnd::Writer(w)) => w,
                Some(other) => {
                    put_stream(&mut c, h, other);
                    return Ok(BAD_HANDLE);
                }
                None => return Ok(BAD_HANDLE),
            };
            let r = if data.is_empty() { Ok(0) } else { watched(|cx| w.poll_write_buf(cx, &data)).await };
            put_stream(&mut c, h, StreamEnd::Writer(w));
            match r {
                Ok(n) => {
                    write_bytes(&mut c, f, out, &(n as u32).to_le_bytes())?;
                    Ok(OK)
                }
                Err(e) => Ok(stream_error(&e)),
            }
        })
    })?;

    linker.func_wrap_async(m, "stream_read", |mut c: C<'_>, (h, ptr, cap, out): (i32, i32, i32, i32)| {
        Box::new(async move {
            let f = "stream_read";
            let cap = len_arg(f, cap)?;
            range(&mut c, f, ptr, cap)?;
            range(&mut c, f, out, 4)?;
            if cap == 0 {
                // Zero bytes read means end of stream: a zero-byte buffer cannot ask.
                return Ok(INVALID);
            }
            let r = match take_stream(&mut c, h) {
                Some(StreamEnd::Reader(r)) => r,
                Some(other) => {
                    put_stream(&mut c, h, other);
                    return Ok(BAD_HANDLE);
                }
                None => return Ok(BAD_HANDLE),
            };
            let mut tmp = vec![0u8; cap.min(STREAM_CHUNK)];
            let got = if tmp.is_empty() { Ok(0) } else { watched(|cx| r.poll_read_buf(cx, &mut tmp)).await };
            put_stream(&mut c, h, StreamEnd::Reader(r));
            match got {
                Ok(n) => {
                    write_bytes(&mut c, f, ptr, &tmp[..n])?;
                    write_bytes(&mut c, f, out, &(n as u32).to_le_bytes())?;
                    Ok(OK)
                }
                Err(e) => Ok(stream_error(&e)),
            }
        })
    })?;

    linker.func_wrap(m, "stream_close", |mut c: C<'_>, h: i32| -> i32 {
        let code = match take_stream(&mut c, h) {
            Some(StreamEnd::Writer(w)) => {
                w.close();
                OK
            }
            Some(StreamEnd::Reader(r)) => {
                drop(r);
                OK
            }
            None => return BAD_HANDLE,
        };
        c.data_mut().free_stream(h as u32);
        code
    })?;

    linker.func_wrap_async(m, "stream_accept", |mut c: C<'_>, (timeout_ms, out_handle, out_from): (i64, i32, i32)| {
        Box::new(async move {
            let f = "stream_accept";
            range(&mut c, f, out_handle, 4)?;
            range(&mut c, f, out_from, 8)?;
            let filter = Filter::streams();
            match recv(filter, timeout_ms).await {
                Some(Received::Stream(r)) => {
                    let from = r.from().to_u64();
                    let Ok(h) = ops::accept_reader(c.data_mut(), r) else { return Ok(LIMIT) };
                    write_bytes(&mut c, f, out_handle, &h.to_le_bytes())?;
                    write_bytes(&mut c, f, out_from, &from.to_le_bytes())?;
                    Ok(OK)
                }
                Some(_) | None => Ok(TIMEOUT),
            }
        })
    })?;

    Ok(())
}

/// Writes the first `cap` of `pids` at `buf` (u64 LE each, range already checked) and
/// returns the total count, saturating: `list_processes` and `group_members`.
fn write_pids(c: &mut C<'_>, f: &'static str, buf: i32, cap: usize, pids: &[Pid]) -> Result<i32> {
    let n = pids.len().min(cap);
    let mut out = Vec::with_capacity(n * 8);
    for p in &pids[..n] {
        out.extend_from_slice(&p.to_u64().to_le_bytes());
    }
    write_bytes(c, f, buf, &out)?;
    Ok(i32::try_from(pids.len()).unwrap_or(i32::MAX))
}
