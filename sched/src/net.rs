//! Fiber-blocking TCP on the runtime's reactor.
//!
//! Inside a fiber, `std::io::Read`/`Write` and `accept`/`connect` park the fiber (never the
//! thread) while the socket would block. From futures, [`TcpStream`] implements
//! `futures_io::AsyncRead`/`AsyncWrite` and [`TcpListener::poll_accept`] is available.
//! Sockets are non-blocking mio sockets registered with the reactor of the runtime they
//! were created on.
//!
//! # Examples
//!
//! ```
//! use std::io::{Read, Write};
//! use rusm_sched::net::{TcpListener, TcpStream};
//!
//! let rt = rusm_sched::Runtime::new().unwrap();
//! let echoed = rt.block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     rusm_sched::spawn(move || {
//!         let (mut s, _) = listener.accept().unwrap();
//!         let mut buf = [0; 5];
//!         s.read_exact(&mut buf).unwrap();
//!         s.write_all(&buf).unwrap();
//!     })
//!     .unwrap();
//!     rusm_sched::spawn(move || {
//!         let mut c = TcpStream::connect(addr).unwrap();
//!         c.write_all(b"hello").unwrap();
//!         let mut buf = [0; 5];
//!         c.read_exact(&mut buf).unwrap();
//!         buf
//!     })
//!     .unwrap()
//!     .await
//!     .unwrap()
//! });
//! assert_eq!(&echoed, b"hello");
//! ```

use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use crate::reactor::{READABLE, ScheduledIo, WRITABLE};
use crate::worker::SharedRef;

/// Registration of one mio source with a runtime's reactor; deregisters on drop.
#[derive(Debug)]
struct Registration<S: mio::event::Source> {
    source: S,
    io: Arc<ScheduledIo>,
    index: usize,
    shared: Arc<SharedRef>,
}

impl<S: mio::event::Source> Registration<S> {
    fn new(mut source: S) -> io::Result<Self> {
        let shared = crate::worker::current_shared().ok_or_else(|| {
            io::Error::other("rusm-sched net types must be created inside a runtime")
        })?;
        let (io, index) = shared.reactor.register(&mut source)?;
        Ok(Registration {
            source,
            io,
            index,
            shared,
        })
    }

    /// Runs `op` until it stops returning `WouldBlock`, waiting for `dir` readiness.
    fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        dir: usize,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            let ev = ready!(self.io.poll_ready(cx, dir));
            match op(&self.source) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.io.clear_readiness(ev),
                r => return Poll::Ready(r),
            }
        }
    }
}

impl<S: mio::event::Source> Drop for Registration<S> {
    fn drop(&mut self) {
        self.shared
            .reactor
            .deregister(&mut self.source, self.index);
    }
}

/// A TCP socket server, listening for connections.
#[derive(Debug)]
pub struct TcpListener {
    reg: Registration<mio::net::TcpListener>,
}

impl TcpListener {
    /// Binds a listener. Must be called on a runtime thread (a fiber or a future body).
    ///
    /// # Errors
    ///
    /// The OS error from bind/listen, or an error when called outside a runtime.
    pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        let l = mio::net::TcpListener::bind(addr)?;
        Ok(TcpListener {
            reg: Registration::new(l)?,
        })
    }

    /// The address it listens on.
    ///
    /// # Errors
    ///
    /// The OS error from `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.reg.source.local_addr()
    }

    /// Polls for a connection (future bodies).
    ///
    /// # Errors
    ///
    /// The OS error from `accept` or from registering the new socket.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let (s, addr) = ready!(self.reg.poll_io(cx, READABLE, |l| l.accept()))?;
        Poll::Ready(Ok((TcpStream::from_mio(s)?, addr)))
    }

    /// Accepts a connection, parking the calling fiber until one arrives.
    ///
    /// # Errors
    ///
    /// The OS error from `accept` or from registering the new socket.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        crate::block_on(poll_fn(|cx| self.poll_accept(cx)))
    }
}

/// A TCP stream between a local and a remote socket.
#[derive(Debug)]
pub struct TcpStream {
    reg: Registration<mio::net::TcpStream>,
}

impl TcpStream {
    fn from_mio(s: mio::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            reg: Registration::new(s)?,
        })
    }

    /// Connects, parking the calling fiber until the connection is established.
    ///
    /// # Errors
    ///
    /// The OS error from `connect` (e.g. connection refused).
    pub fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        crate::block_on(TcpStream::connect_async(addr))
    }

    /// Connects from a future body.
    ///
    /// # Errors
    ///
    /// The OS error from `connect` (e.g. connection refused).
    pub async fn connect_async(addr: SocketAddr) -> io::Result<TcpStream> {
        let s = TcpStream::from_mio(mio::net::TcpStream::connect(addr)?)?;
        poll_fn(|cx| {
            s.reg.poll_io(cx, WRITABLE, |s| {
                if let Some(e) = s.take_error()? {
                    return Err(e);
                }
                match s.peer_addr() {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                        Err(io::ErrorKind::WouldBlock.into())
                    }
                    Err(e) => Err(e),
                }
            })
        })
        .await?;
        Ok(s)
    }

    /// The remote address.
    ///
    /// # Errors
    ///
    /// The OS error from `getpeername`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.reg.source.peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// The OS error from `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.reg.source.local_addr()
    }

    /// Shuts down the read, write or both halves.
    ///
    /// # Errors
    ///
    /// The OS error from `shutdown`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.reg.source.shutdown(how)
    }

    /// Sets `TCP_NODELAY`.
    ///
    /// # Errors
    ///
    /// The OS error from `setsockopt`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.reg.source.set_nodelay(on)
    }

    /// Polls a read (future bodies).
    ///
    /// # Errors
    ///
    /// The OS error from `read`.
    pub fn poll_read_buf(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.reg.poll_io(cx, READABLE, |mut s| s.read(buf))
    }

    /// Polls a write (future bodies).
    ///
    /// # Errors
    ///
    /// The OS error from `write`.
    pub fn poll_write_buf(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.reg.poll_io(cx, WRITABLE, |mut s| s.write(buf))
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Shared use: one fiber may read while another writes (each direction has its own waker
/// slot). Two concurrent readers (or writers) of one stream would take turns being woken.
impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        crate::block_on(poll_fn(|cx| self.poll_read_buf(cx, buf)))
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        crate::block_on(poll_fn(|cx| self.poll_write_buf(cx, buf)))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl futures_io::AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_read_buf(cx, buf)
    }
}

impl futures_io::AsyncWrite for TcpStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_buf(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.reg.source.shutdown(Shutdown::Write))
    }
}
