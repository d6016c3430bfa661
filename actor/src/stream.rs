//! Streams: bounded byte pipes between processes.
//!
//! [`open`] makes a pipe to a process and returns its write end; the read end arrives in
//! that process's mailbox as [`Received::Stream`], in order with
//! its messages. The pipe holds at most its capacity in bytes:
//!
//! | situation                         | writer                          | reader                         |
//! |-----------------------------------|---------------------------------|--------------------------------|
//! | room / data                       | copies what fits, returns count | takes what is there            |
//! | pipe full / pipe empty            | parks until the reader takes    | parks until the writer writes  |
//! | writer closed or dropped          | —                               | the rest, then `Ok(0)` (EOF)   |
//! | writer's process exits abnormally | —                               | the rest, then an error        |
//! | reader dropped or its process dies| `BrokenPipe`                    | —                              |
//!
//! Inside a process, [`std::io::Read`] and [`std::io::Write`] park the fiber, and an exit
//! signal that kills the process interrupts them (the process unwinds, as in `receive`).
//! Outside the runtime they park the thread. [`futures_io::AsyncRead`] and
//! [`futures_io::AsyncWrite`] serve future bodies and foreign executors.
//!
//! Each end belongs to the process that opened it (the writer) or received it (the
//! reader), as an Erlang port belongs to its owner: when that process exits with an
//! abnormal reason, its ends break with that reason. An end dropped while its holder
//! unwinds breaks too; one dropped or closed in the ordinary way closes.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

use crate::{ExitReason, Pid, Received};

/// The capacity [`open`] gives a pipe: 64 KiB, as a Linux pipe.
pub const DEFAULT_CAPACITY: usize = 64 * 1024;

/// Why a stream could not be opened.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The receiving process does not exist.
    #[error("no such process")]
    NoProc,
    /// A capacity of zero bytes.
    #[error("a stream needs a capacity of at least one byte")]
    ZeroCapacity,
    /// The receiver's bounded mailbox is full.
    #[error("the receiver's mailbox is full")]
    Full,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Open,
    /// Closed in an orderly way (EOF for the reader).
    Closed,
    /// Its holder died: why.
    Broken(String),
}

#[derive(Debug)]
struct PipeState {
    buf: VecDeque<u8>,
    cap: usize,
    writer: End,
    reader: End,
    writer_owner: Option<Pid>,
    reader_owner: Option<Pid>,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
}

/// The shared state of one stream.
#[derive(Debug)]
pub(crate) struct Pipe {
    st: Mutex<PipeState>,
}

impl Pipe {
    /// `owner` exited with the abnormal `reason`: break the ends it holds.
    pub(crate) fn owner_crashed(&self, owner: Pid, reason: &ExitReason) {
        let why = format!("{owner} exited: {reason}");
        let (writer, reader) = {
            let st = self.st.lock();
            (st.writer_owner == Some(owner), st.reader_owner == Some(owner))
        };
        if writer {
            self.set_end(true, End::Broken(why.clone()), true);
        }
        if reader {
            self.set_end(false, End::Broken(why), true);
        }
    }

    /// Ends the writer's side (`writer`) or the reader's with `how` and wakes the other
    /// side. A closed side stays closed; a broken one is only re-broken with `over_broken`
    /// (the owner's exit reason replaces "unwound"). A reader that ends drops the buffer.
    fn set_end(&self, writer: bool, how: End, over_broken: bool) {
        let w = {
            let mut st = self.st.lock();
            let end = if writer { &mut st.writer } else { &mut st.reader };
            match end {
                End::Closed => return,
                End::Broken(_) if !over_broken => return,
                _ => *end = how,
            }
            if writer {
                st.read_waker.take()
            } else {
                st.buf = VecDeque::new();
                st.write_waker.take()
            }
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Closes (or, while unwinding, breaks) one side as its handle goes away.
    fn drop_end(&self, writer: bool) {
        let how = if std::thread::panicking() {
            End::Broken(String::from(if writer { "unwound while writing" } else { "unwound while reading" }))
        } else {
            End::Closed
        };
        self.set_end(writer, how, false);
    }

    fn poll_read(&self, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut st = self.st.lock();
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if st.buf.is_empty() {
            return match &st.writer {
                End::Open => {
                    st.read_waker = Some(cx.waker().clone());
                    Poll::Pending
                }
                End::Closed => Poll::Ready(Ok(0)),
                End::Broken(why) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    format!("stream writer {why}"),
                ))),
            };
        }
        let (a, b) = st.buf.as_slices();
        let n = out.len().min(a.len() + b.len());
        let from_a = n.min(a.len());
        out[..from_a].copy_from_slice(&a[..from_a]);
        out[from_a..n].copy_from_slice(&b[..n - from_a]);
        st.buf.drain(..n);
        // A writer registers its waker only when the pipe is full.
        let w = st.write_waker.take();
        drop(st);
        if let Some(w) = w {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut st = self.st.lock();
        match &st.reader {
            End::Open => {}
            End::Closed => {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the stream's reader is gone",
                )));
            }
            End::Broken(why) => {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    format!("stream reader {why}"),
                )));
            }
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let room = st.cap - st.buf.len();
        if room == 0 {
            st.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = room.min(data.len());
        st.buf.extend(&data[..n]);
        // A reader registers its waker only when the pipe is empty.
        let w = st.read_waker.take();
        drop(st);
        if let Some(w) = w {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }
}

/// Opens a stream of [`DEFAULT_CAPACITY`] bytes to `to`; see [`open_with_capacity`].
///
/// # Errors
///
/// [`StreamError::NoProc`] if `to` is not alive; [`StreamError::Full`] if its bounded
/// mailbox refuses the stream.
///
/// # Panics
///
/// Outside a process.
pub fn open(to: Pid) -> Result<StreamWriter, StreamError> {
    open_with_capacity(to, DEFAULT_CAPACITY)
}

/// Opens a stream of `capacity` bytes to `to`: `to` gets the read end as
/// [`Received::Stream`]; the caller keeps the write end (and owns it).
///
/// # Errors
///
/// [`StreamError::NoProc`] if `to` is not alive; [`StreamError::ZeroCapacity`];
/// [`StreamError::Full`] if `to`'s bounded mailbox refuses the stream.
///
/// # Panics
///
/// Outside a process.
pub fn open_with_capacity(to: Pid, capacity: usize) -> Result<StreamWriter, StreamError> {
    let me = crate::me();
    me.check_exit();
    if capacity == 0 {
        return Err(StreamError::ZeroCapacity);
    }
    let target = me.node.get(to).ok_or(StreamError::NoProc)?;
    let pipe = Arc::new(Pipe {
        st: Mutex::new(PipeState {
            buf: VecDeque::new(),
            cap: capacity,
            writer: End::Open,
            reader: End::Open,
            writer_owner: Some(me.pid),
            reader_owner: Some(to),
            read_waker: None,
            write_waker: None,
        }),
    });
    for p in [&me, &target] {
        let mut st = p.state.lock();
        let cold = st.cold();
        prune(&mut cold.streams);
        cold.streams.push(Arc::downgrade(&pipe));
    }
    let reader = StreamReader {
        pipe: pipe.clone(),
        from: me.pid,
        cap: capacity,
    };
    // A full bounded mailbox refuses the stream (the reader is dropped, so the pipe is
    // gone at both ends); a target that died meanwhile drops it: the writer then sees
    // BrokenPipe.
    if let Err(crate::process::Refused::Full(_)) = target.try_push(Received::Stream(reader)) {
        return Err(StreamError::Full);
    }
    Ok(StreamWriter { pipe, to })
}

/// Forgets streams that are gone from a process's list (called as it adds one).
pub(crate) fn prune(list: &mut Vec<Weak<Pipe>>) {
    if list.len() >= 16 && list.len().is_power_of_two() {
        list.retain(|w| w.strong_count() > 0);
    }
}

/// The write end of a stream.
pub struct StreamWriter {
    pipe: Arc<Pipe>,
    to: Pid,
}

impl StreamWriter {
    /// The process holding the read end.
    pub fn to(&self) -> Pid {
        self.to
    }

    /// Closes the stream: the reader gets what is buffered, then EOF.
    pub fn close(self) {
        drop(self);
    }

    /// Ends the stream abnormally: the reader gets what is buffered, then
    /// `ConnectionAborted` with `why` (what a crash of the owner does; for owners that are
    /// not native processes, such as Wasm guests).
    pub fn abort(self, why: &str) {
        self.pipe.set_end(true, End::Broken(why.to_owned()), true);
    }

    /// The non-blocking write behind every other: copies what fits, or registers `cx`.
    ///
    /// # Errors
    ///
    /// `BrokenPipe` once the reader is gone.
    pub fn poll_write_buf(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.pipe.poll_write(cx, data)
    }
}

impl Drop for StreamWriter {
    fn drop(&mut self) {
        self.pipe.drop_end(true);
    }
}

impl fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamWriter").field("to", &self.to).finish_non_exhaustive()
    }
}

impl io::Write for StreamWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        crate::block_process(|cx| self.pipe.poll_write(cx, data))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl futures_io::AsyncWrite for StreamWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.pipe.poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.pipe.set_end(true, End::Closed, false);
        Poll::Ready(Ok(()))
    }
}

/// The read end of a stream, as it arrives in [`Received::Stream`].
pub struct StreamReader {
    pipe: Arc<Pipe>,
    from: Pid,
    /// The pipe's capacity (what a mailbox byte bound charges for it).
    cap: usize,
}

impl StreamReader {
    /// The most bytes the pipe holds.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The process that opened the stream.
    pub fn from(&self) -> Pid {
        self.from
    }

    /// The non-blocking read behind every other: takes what is buffered, or registers
    /// `cx`. `Ok(0)` is EOF.
    ///
    /// # Errors
    ///
    /// `ConnectionAborted` once the buffer is drained if the writer's process died.
    pub fn poll_read_buf(&self, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<io::Result<usize>> {
        self.pipe.poll_read(cx, out)
    }
}

impl Drop for StreamReader {
    fn drop(&mut self) {
        self.pipe.drop_end(false);
    }
}

impl fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamReader").field("from", &self.from).finish_non_exhaustive()
    }
}

impl io::Read for StreamReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        crate::block_process(|cx| self.pipe.poll_read(cx, out))
    }
}

impl futures_io::AsyncRead for StreamReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<io::Result<usize>> {
        self.pipe.poll_read(cx, out)
    }
}
