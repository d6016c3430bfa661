//! `wasi_snapshot_preview1.poll_oneoff`, served by RUSM: clock subscriptions wait on
//! rusm-sched's timers and park only the process.
//!
//! wasmtime-wasi 48's own `poll_oneoff` waits on Tokio's timer, which panics outside a
//! Tokio runtime (and with `allow_blocking_current_thread` it would sleep on the worker
//! thread instead). A Rust guest's `std::thread::sleep` is exactly this call, with one
//! relative monotonic clock subscription, so RUSM shadows the import on the linker.
//! Descriptors: the standard streams are always ready, so an `fd_read` of stdin (empty,
//! at its end: `success` with the hang-up flag) or an `fd_write` of stdout/stderr (the host
//! log, never blocking) is answered at once with `success`. Other descriptors are not
//! polled: their subscription is answered at once with `notsup` (a guest waits for its
//! mailbox with `rusm.receive`, for a stream with `rusm.stream_read`).
//!
//! # Layouts (WASI preview 1, little-endian)
//!
//! ```text
//! subscription (48 bytes, align 8)       event (32 bytes, align 8)
//!   0  userdata  u64                       0  userdata  u64
//!   8  tag       u8   0 clock,             8  error     u16 (errno)
//!                     1 fd_read,          10  type      u8  (the tag)
//!                     2 fd_write          16  nbytes    u64
//!  16  clock: id u32 (0 realtime,         24  flags     u16
//!             1 monotonic)
//!  24         timeout u64 (ns)
//!  32         precision u64
//!  40         flags u16 (bit 0: absolute)
//!  16  fd_read/fd_write: fd u32
//! ```
//!
//! Returns (the errno): `success` after writing the ready events and their count; `inval`
//! for no subscriptions, an unknown tag or a clock other than realtime and monotonic.
//! Traps (per the WASI pointer rules): a pointer out of the guest's memory or misaligned,
//! or no `memory` export.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use wasmtime::{Linker, Result};
use wasmtime_wasi::clocks::WasiClocksView;
use wasmtime_wasi::p2::bindings::clocks::{monotonic_clock, wall_clock};

use super::{C, guest_range, watched};
use crate::process::{ProcState, YieldOnce};

const FUNC: &str = "wasi_snapshot_preview1.poll_oneoff";
const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;
const ERRNO_SUCCESS: i32 = 0;
const ERRNO_INVAL: i32 = 28;
const ERRNO_NOTSUP: i32 = 58;
const TAG_CLOCK: u8 = 0;
const CLOCK_REALTIME: u32 = 0;
const CLOCK_MONOTONIC: u32 = 1;

/// Replaces wasmtime-wasi's `poll_oneoff` on `linker` (added before this).
pub(super) fn add_to_linker(linker: &mut Linker<ProcState>) -> Result<()> {
    linker.allow_shadowing(true);
    let added = linker
        .func_wrap_async(
            "wasi_snapshot_preview1",
            "poll_oneoff",
            |mut c: C<'_>, (subs, events, n, out): (i32, i32, i32, i32)| Box::new(async move { poll_oneoff(&mut c, subs, events, n, out).await }),
        )
        .map(|_| ());
    linker.allow_shadowing(false);
    added
}

/// One parsed subscription.
enum Sub {
    /// Ready at `at` (never, if `None`: too far away to represent).
    Clock { userdata: u64, at: Option<Instant> },
    /// A descriptor: answered at once (`success` for 0..=2, else `notsup`).
    Fd { userdata: u64, tag: u8, fd: u32 },
}

fn trap(why: impl std::fmt::Display) -> wasmtime::Error {
    wasmtime::Error::msg(format!("{FUNC}: {why}"))
}

/// The guest range `ptr..ptr+len`, aligned to `align`, or a trap.
fn range(c: &mut C<'_>, ptr: i32, len: usize, align: usize) -> Result<std::ops::Range<usize>> {
    let start = ptr as u32 as usize;
    if !start.is_multiple_of(align) {
        return Err(trap(format!("pointer {start:#x} is not aligned to {align} bytes")));
    }
    guest_range(c, ptr, len, trap)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

async fn poll_oneoff(c: &mut C<'_>, subs: i32, events: i32, n: i32, out: i32) -> Result<i32> {
    let n = match usize::try_from(n) {
        Ok(n) if n > 0 => n,
        // wasmtime-wasi's answer too: p1 cannot sleep for ever on nothing.
        _ => return Ok(ERRNO_INVAL),
    };
    let too_many = || trap(format!("{n} subscriptions do not fit the guest's memory"));
    let subs = range(c, subs, n.checked_mul(SUBSCRIPTION_SIZE).ok_or_else(too_many)?, 8)?;
    let events = range(c, events, n.checked_mul(EVENT_SIZE).ok_or_else(too_many)?, 8)?;
    let out = range(c, out, 4, 4)?;
    let mem = c.data().memory.expect("found by range");
    let raw = mem.data(&*c)[subs].to_vec();

    let start = Instant::now();
    let mut parsed = Vec::with_capacity(n);
    for s in raw.chunks_exact(SUBSCRIPTION_SIZE) {
        let userdata = u64_at(s, 0);
        match s[8] {
            TAG_CLOCK => {
                let (id, timeout, absolute) = (u32_at(s, 16), u64_at(s, 24), s[40] & 1 != 0);
                let wait = match (id, absolute) {
                    (CLOCK_REALTIME | CLOCK_MONOTONIC, false) => timeout,
                    (CLOCK_MONOTONIC, true) => timeout.saturating_sub(monotonic_clock::Host::now(&mut c.data_mut().wasi().clocks())?),
                    (CLOCK_REALTIME, true) => {
                        let now = wall_clock::Host::now(&mut c.data_mut().wasi().clocks())?;
                        let now = now.seconds.saturating_mul(1_000_000_000).saturating_add(u64::from(now.nanoseconds));
                        timeout.saturating_sub(now)
                    }
                    _ => return Ok(ERRNO_INVAL),
                };
                parsed.push(Sub::Clock { userdata, at: start.checked_add(Duration::from_nanos(wait)) });
            }
            tag @ (1 | 2) => parsed.push(Sub::Fd { userdata, tag, fd: u32_at(s, 16) }),
            _ => return Ok(ERRNO_INVAL),
        }
    }

    // Descriptors are answered at once; with none, wait for the first clock (again, if a
    // timer woke the process a little early: a clock subscription is ready only once its
    // deadline has passed, and Rust's `std::thread::sleep` insists on its one event).
    let fds = parsed.iter().any(|s| matches!(s, Sub::Fd { .. }));
    // The earliest deadline; `None` (never) if no clock has one.
    let first = parsed.iter().filter_map(|s| if let Sub::Clock { at, .. } = s { *at } else { None }).min();
    if !fds && first.is_some_and(|at| at <= start) {
        // Nothing to wait for: still yield once, so a guest polling in a loop lets the
        // others run.
        YieldOnce::default().await;
    }
    let ready = loop {
        let ready = ready_events(&parsed, Instant::now());
        if !ready.is_empty() {
            break ready;
        }
        wait_until(first).await;
    };
    let count = (ready.len() / EVENT_SIZE) as u32;
    let data = mem.data_mut(&mut *c);
    data[events.start..events.start + ready.len()].copy_from_slice(&ready);
    data[out].copy_from_slice(&count.to_le_bytes());
    Ok(ERRNO_SUCCESS)
}

/// The events of the subscriptions ready at `now`, laid out for the guest.
fn ready_events(parsed: &[Sub], now: Instant) -> Vec<u8> {
    let mut ready = Vec::new();
    for s in parsed {
        let (userdata, error, tag) = match *s {
            Sub::Clock { userdata, at: Some(at) } if at <= now => (userdata, ERRNO_SUCCESS, TAG_CLOCK),
            Sub::Clock { .. } => continue,
            // Standard streams are always ready: stdin is empty (at its end: hang-up),
            // stdout and stderr go to the host log and never block.
            Sub::Fd { userdata, tag, fd: 0..=2 } => (userdata, ERRNO_SUCCESS, tag),
            Sub::Fd { userdata, tag, .. } => (userdata, ERRNO_NOTSUP, tag),
        };
        let mut e = [0u8; EVENT_SIZE];
        e[0..8].copy_from_slice(&userdata.to_le_bytes());
        e[8..10].copy_from_slice(&(error as u16).to_le_bytes());
        e[10] = tag;
        if let Sub::Fd { fd: 0, tag: 1, .. } = s {
            // fd_readwrite.flags = hang-up: no bytes will come.
            e[24..26].copy_from_slice(&1u16.to_le_bytes());
        }
        ready.extend_from_slice(&e);
    }
    ready
}

/// Parks the process until `at`, or for ever if `None` (a kill still ends it).
async fn wait_until(at: Option<Instant>) {
    let Some(at) = at else {
        return watched(|_| Poll::<()>::Pending).await;
    };
    // At least 1 ms: the timers' resolution, so a deadline a hair away does not spin.
    let left = at.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let mut sleep = rusm_sched::Sleep::new(left);
    watched(|cx| Pin::new(&mut sleep).poll(cx)).await;
}
