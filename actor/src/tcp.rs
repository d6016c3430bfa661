//! TCP on the scheduler's reactor, the Erlang way: a listener process accepts, and every
//! accepted connection gets a process of its own.
//!
//! [`listen`] binds in the caller (so a bad address or a taken port is the caller's error)
//! and starts an acceptor process linked to the caller: the listener lives as long as its
//! owner, and closes when the acceptor is killed. Each connection runs `handler` in a new
//! process, not linked to the acceptor, so a crashing connection takes nothing else down.
//! Reads and writes park only the calling process, and an exit signal that kills it
//! interrupts them, as it does a `receive`.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;

use crate::{Pid, SpawnOpts};

/// A TCP connection owned by a process.
#[derive(Debug)]
pub struct TcpStream(rusm_sched::net::TcpStream);

impl TcpStream {
    /// Connects to `addr`, parking the calling process until it is established.
    ///
    /// # Errors
    ///
    /// The OS error from `connect` (e.g. connection refused).
    ///
    /// # Panics
    ///
    /// Outside the runtime.
    pub fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        let mut fut = std::pin::pin!(rusm_sched::net::TcpStream::connect_async(addr));
        crate::block_process(|cx| fut.as_mut().poll(cx)).map(TcpStream)
    }

    /// The remote address.
    ///
    /// # Errors
    ///
    /// The OS error from `getpeername`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// The OS error from `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    /// Shuts down the read half, the write half or both.
    ///
    /// # Errors
    ///
    /// The OS error from `shutdown`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.0.shutdown(how)
    }

    /// Sets `TCP_NODELAY`.
    ///
    /// # Errors
    ///
    /// The OS error from `setsockopt`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.0.set_nodelay(on)
    }

    /// The scheduler's socket, for future bodies (`futures_io` traits).
    pub fn into_inner(self) -> rusm_sched::net::TcpStream {
        self.0
    }
}

impl io::Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        crate::block_process(|cx| self.0.poll_read_buf(cx, buf))
    }
}

impl io::Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        crate::block_process(|cx| self.0.poll_write_buf(cx, buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl io::Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl io::Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A listener started by [`listen`].
#[derive(Debug, Clone, Copy)]
pub struct Listener {
    /// The acceptor process (kill it to close the listener).
    pub pid: Pid,
    /// The bound address (with the port the OS chose for port 0).
    pub local_addr: SocketAddr,
}

/// Binds `addr` and starts an acceptor process, linked to the caller, that runs
/// `handler` in a new process for every accepted connection (labelled `tcp <peer>`).
/// A failed accept (e.g. out of file descriptors) is retried after a short pause; the
/// acceptor goes on.
///
/// # Errors
///
/// The OS error from bind/listen; a spawn error as `io::Error`.
///
/// # Panics
///
/// Outside a process.
pub fn listen(
    addr: SocketAddr,
    handler: impl Fn(TcpStream) + Send + Sync + 'static,
) -> io::Result<Listener> {
    let listener = rusm_sched::net::TcpListener::bind(addr)?;
    let local_addr = listener.local_addr()?;
    let handler = Arc::new(handler);
    let opts = SpawnOpts {
        link: true,
        label: Some(format!("tcp listener {local_addr}")),
        ..SpawnOpts::default()
    };
    let spawned = crate::spawn_opt(opts, move || {
        loop {
            match crate::block_process(|cx| listener.poll_accept(cx)) {
                Ok((sock, peer)) => {
                    let h = handler.clone();
                    let opts = SpawnOpts {
                        label: Some(format!("tcp {peer}")),
                        ..SpawnOpts::default()
                    };
                    // A refused spawn drops the socket: that client sees the close.
                    let _ = crate::spawn_opt(opts, move || h(TcpStream(sock)));
                }
                Err(_) => rusm_sched::sleep(std::time::Duration::from_millis(10)),
            }
        }
    })
    .map_err(io::Error::other)?;
    Ok(Listener {
        pid: spawned.pid,
        local_addr,
    })
}
