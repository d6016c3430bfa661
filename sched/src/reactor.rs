//! The I/O reactor: one `mio::Poll` per runtime, driven by whichever idle worker holds the
//! driver lock, with the next timer deadline as its timeout.
//!
//! # State
//!
//! Each registered source has a [`ScheduledIo`]: a readiness word and one waker slot per
//! direction. The readiness word packs `tick << 16 | bits`; every event bumps the tick. A
//! reader that saw readiness `r` and then got `WouldBlock` clears the bit only if the tick
//! is still `r`'s, so an event that arrived in between is never lost (mio is
//! edge-triggered).
//!
//! # Invariants
//!
//! * Token 0 is the `mio::Waker`; source tokens are slab index + 1.
//! * Only the driver-lock holder calls `Poll::poll`.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mio::{Events, Interest, Token};
use parking_lot::Mutex;

const WAKER_TOKEN: Token = Token(0);

pub(crate) const READABLE: usize = 0b01;
pub(crate) const WRITABLE: usize = 0b10;
const TICK_SHIFT: usize = 16;

/// Readiness and wakers of one registered source.
#[derive(Debug, Default)]
pub(crate) struct ScheduledIo {
    readiness: AtomicUsize,
    reader: Mutex<Option<Waker>>,
    writer: Mutex<Option<Waker>>,
}

/// A readiness observation to clear later.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadyEvent {
    tick: usize,
    bits: usize,
}

impl ScheduledIo {
    fn set_ready(&self, bits: usize) {
        let mut cur = self.readiness.load(Ordering::Acquire);
        loop {
            let tick = (cur >> TICK_SHIFT).wrapping_add(1);
            let next = (tick << TICK_SHIFT) | (cur & 0xffff) | bits;
            match self.readiness.compare_exchange_weak(
                cur,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(a) => cur = a,
            }
        }
        if bits & READABLE != 0
            && let Some(w) = self.reader.lock().take() {
                w.wake();
            }
        if bits & WRITABLE != 0
            && let Some(w) = self.writer.lock().take() {
                w.wake();
            }
    }

    /// Ready for `dir` (READABLE or WRITABLE)? Registers the waker if not.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>, dir: usize) -> Poll<ReadyEvent> {
        let cur = self.readiness.load(Ordering::Acquire);
        if cur & dir != 0 {
            return Poll::Ready(ReadyEvent {
                tick: cur >> TICK_SHIFT,
                bits: dir,
            });
        }
        let slot = if dir == READABLE {
            &self.reader
        } else {
            &self.writer
        };
        *slot.lock() = Some(cx.waker().clone());
        // Re-check: an event may have landed between the load and the registration.
        let cur = self.readiness.load(Ordering::Acquire);
        if cur & dir != 0 {
            return Poll::Ready(ReadyEvent {
                tick: cur >> TICK_SHIFT,
                bits: dir,
            });
        }
        Poll::Pending
    }

    /// The operation hit `WouldBlock`: forget the readiness seen in `ev`, unless a newer
    /// event has arrived since.
    pub(crate) fn clear_readiness(&self, ev: ReadyEvent) {
        let mut cur = self.readiness.load(Ordering::Acquire);
        while cur >> TICK_SHIFT == ev.tick {
            let next = cur & !ev.bits;
            match self.readiness.compare_exchange_weak(
                cur,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(a) => cur = a,
            }
        }
    }
}

/// Poll state, owned by whoever holds the driver lock.
#[derive(Debug)]
pub(crate) struct Driver {
    poll: mio::Poll,
    events: Events,
}

#[derive(Debug)]
pub(crate) struct Reactor {
    pub(crate) driver: Mutex<Driver>,
    registry: mio::Registry,
    waker: mio::Waker,
    sources: Mutex<Vec<Option<Arc<ScheduledIo>>>>,
    free: Mutex<Vec<usize>>,
    /// Registered sources; lets busy workers skip the periodic non-blocking poll when there
    /// is no I/O at all. Written under `sources`' lock.
    registered: AtomicUsize,
    /// The deadline (ms since start) the driver sleeps toward; `u64::MAX` when nobody
    /// polls. Written by the driver-lock holder; read by timer inserters.
    pub(crate) driver_deadline: AtomicU64,
}

impl Reactor {
    pub(crate) fn new() -> io::Result<Reactor> {
        let poll = mio::Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        Ok(Reactor {
            driver: Mutex::new(Driver {
                poll,
                events: Events::with_capacity(1024),
            }),
            registry,
            waker,
            sources: Mutex::new(Vec::new()),
            free: Mutex::new(Vec::new()),
            registered: AtomicUsize::new(0),
            driver_deadline: AtomicU64::new(u64::MAX),
        })
    }

    /// Are any I/O sources registered?
    pub(crate) fn has_sources(&self) -> bool {
        self.registered.load(Ordering::Relaxed) != 0
    }

    /// Interrupts the driver's poll.
    pub(crate) fn wake(&self) {
        // An eventfd write; failure means the fd is gone, i.e. shutdown: nothing to wake.
        let _ = self.waker.wake();
    }

    /// Polls for I/O for at most `timeout`, waking tasks whose sources became ready.
    pub(crate) fn turn(&self, driver: &mut Driver, timeout: Option<Duration>) {
        let Driver { poll, events } = driver;
        // `epoll_wait` fails only with EINTR (a signal) or on a broken epoll fd; either way
        // the worker goes on and polls again later rather than dying.
        if poll.poll(events, timeout).is_err() {
            return;
        }
        let sources = self.sources.lock();
        let ready: Vec<(Arc<ScheduledIo>, usize)> = events
            .iter()
            .filter(|ev| ev.token() != WAKER_TOKEN)
            .filter_map(|ev| {
                let io = sources.get(ev.token().0 - 1)?.clone()?;
                let mut bits = 0;
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    bits |= READABLE;
                }
                if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                    bits |= WRITABLE;
                }
                Some((io, bits))
            })
            .collect();
        drop(sources);
        for (io, bits) in ready {
            // A panicking waker must not kill the worker or drop the other events.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| io.set_ready(bits)));
        }
    }

    /// Registers a source for read and write readiness.
    pub(crate) fn register(
        &self,
        source: &mut impl mio::event::Source,
    ) -> io::Result<(Arc<ScheduledIo>, usize)> {
        let io = Arc::new(ScheduledIo::default());
        let index = {
            let mut sources = self.sources.lock();
            self.registered.fetch_add(1, Ordering::Relaxed);
            match self.free.lock().pop() {
                Some(i) => {
                    sources[i] = Some(io.clone());
                    i
                }
                None => {
                    sources.push(Some(io.clone()));
                    sources.len() - 1
                }
            }
        };
        if let Err(e) = self.registry.register(
            source,
            Token(index + 1),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.release(index);
            return Err(e);
        }
        Ok((io, index))
    }

    /// Deregisters a source and frees its slot.
    pub(crate) fn deregister(&self, source: &mut impl mio::event::Source, index: usize) {
        let _ = self.registry.deregister(source);
        self.release(index);
    }

    fn release(&self, index: usize) {
        let mut sources = self.sources.lock();
        sources[index] = None;
        self.registered.fetch_sub(1, Ordering::Relaxed);
        self.free.lock().push(index);
    }
}
