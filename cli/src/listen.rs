//! `listen = "ADDR"`: the host accepts connections, and each one is a fresh instance of
//! the component. The guest holds no socket capability: it gets the connection as a
//! stream.
//!
//! ```text
//!  client ══TCP══ conn (native, owns the socket) ──stream──▶ guest      (incoming bytes)
//!                   ▲        └─ pump (native): socket → stream
//!                   └──────────────stream───────────────────┘           (replies)
//! ```
//!
//! # Protocol (docs/WIT.md, "Connections")
//!
//! 1. The listener is a gen-server child of the component's supervisor. Its init binds
//!    the address, so a taken port is a failed start. Connections are not linked to it:
//!    a listener restart leaves live connections alone, as in Erlang.
//! 2. For each connection, the `conn` process spawns the guest (linked, labelled
//!    `name/connN`) in the app's realm. It then opens a stream to the guest, which is the
//!    first item of the guest's mailbox: the reader's `peer` is `conn`.
//! 3. The guest replies through a stream it opens to that peer. `conn` copies it to the
//!    socket. A pump process copies the socket into the guest's stream.
//! 4. Back-pressure holds both ways: a full stream parks its writer, and a parked reader
//!    of the socket leaves the bytes in the kernel.
//! 5. Either side closing ends the connection:
//!    - the client's EOF closes the guest's stream;
//!    - the guest closing its stream shuts down the socket's write half;
//!    - the guest's exit ends `conn` and the pump, and the socket closes.
//!
//!    A guest that crashes takes its `conn` with it (the link) and nothing else.
//! 6. At most [`MAX_CONNECTIONS`] are served at once; past it a connection is closed
//!    unserved. Each instance is bounded by its caps (memory, mailbox, streams) as any
//!    guest, and the host's pool bounds them all.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rusm_otp::gen_server::{self, CallResult, GenServer};
use rusm_otp::tcp::{self, TcpStream};
use rusm_otp::{ExitReason, Received, SpawnOpts};
use rusm_wasm::{Artifact, Caps, Host, WasmOpts};

/// Connections one listener serves at once; past it a new one is closed at once. The
/// same bound as an app's process quota (rusm_wasm::Quotas::processes): a flood of
/// clients cannot take the host's whole instance pool from the other apps.
pub const MAX_CONNECTIONS: usize = 4096;

/// What a listener needs to start connections.
#[derive(Clone)]
pub struct ListenSpec {
    /// The component's name (connections are labelled `name/connN`).
    pub name: String,
    /// Where to accept.
    pub addr: SocketAddr,
    /// The component.
    pub artifact: Artifact,
    /// Its capabilities (the app's realm).
    pub caps: Caps,
    /// The host.
    pub host: Host,
}

/// The listener: a gen-server that owns the acceptor (linked to it).
#[derive(Debug)]
struct Listener {
    local: SocketAddr,
}

impl GenServer for Listener {
    type Call = ();
    type Reply = SocketAddr;
    type Cast = ();

    fn handle_call(&mut self, _: (), _from: gen_server::From<SocketAddr>) -> CallResult<SocketAddr> {
        CallResult::Reply(self.local)
    }
}

/// Starts the listener linked to the caller (its supervisor); returns once it listens.
///
/// # Errors
///
/// The address cannot be bound (its reason names it).
pub fn start_link(spec: ListenSpec) -> Result<(rusm_otp::Pid, SocketAddr), String> {
    let addr = spec.addr;
    let pid = gen_server::start_link(move || -> Result<Listener, ExitReason> {
        rusm_otp::set_label(format!("{} listener", spec.name));
        let count = Arc::new(AtomicU64::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let spec = Arc::new(spec);
        let l = tcp::listen(spec.addr, move |sock| {
            let n = count.fetch_add(1, Ordering::Relaxed) + 1;
            // Given back on drop: also when a crashing guest takes this process with it
            // (a killed native process unwinds).
            let _held = Held::take(&open);
            if open.load(Ordering::Acquire) > MAX_CONNECTIONS {
                tracing::warn!("{}: connection {n} refused: {MAX_CONNECTIONS} are open", spec.name);
                return;
            }
            connection(&spec, sock, n);
        })
            .map_err(|e| ExitReason::Other(format!("cannot listen on {addr}: {e}")))?;
        Ok(Listener { local: l.local_addr })
    })
    .map_err(|e| e.to_string())?;
    let local = gen_server::call::<Listener>(pid, (), std::time::Duration::from_secs(5)).map_err(|e| e.to_string())?;
    Ok((pid, local))
}

/// One open connection counted, until dropped.
struct Held<'a>(&'a AtomicUsize);

impl<'a> Held<'a> {
    fn take(open: &'a AtomicUsize) -> Held<'a> {
        open.fetch_add(1, Ordering::AcqRel);
        Held(open)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The body of one connection's `conn` process.
fn connection(spec: &ListenSpec, sock: TcpStream, n: u64) {
    let opts = SpawnOpts { link: true, label: Some(format!("{}/conn{n}", spec.name)), ..SpawnOpts::default() };
    // Refused (the pool is full): the socket drops and the client sees the close.
    let Ok(guest) = spec.host.spawn_here(&spec.artifact, WasmOpts { caps: spec.caps.clone(), entry: None, spawn: opts }) else {
        tracing::warn!("{}: connection {n} refused: no room for another instance", spec.name);
        return;
    };
    let guest = guest.pid;
    let down = rusm_otp::monitor(guest);
    let Ok(incoming) = rusm_otp::stream::open(guest) else { return };
    let sock = Arc::new(sock);
    let from_client = sock.clone();
    let pump = rusm_otp::spawn_link(move || {
        let mut incoming = incoming;
        let mut buf = vec![0u8; 16 << 10];
        loop {
            match (&*from_client).read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if incoming.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        incoming.close();
    })
    .ok();
    let is_reply = move |r: &Received| matches!(r, Received::Stream(s) if s.from() == guest);
    let is_down = move |r: &Received| matches!(r, Received::Down { monitor, .. } if *monitor == down);
    if let Received::Stream(mut replies) = rusm_otp::receive_match(|r| is_reply(r) || is_down(r), None) {
        let mut buf = vec![0u8; 16 << 10];
        loop {
            match replies.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if (&*sock).write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = sock.shutdown(std::net::Shutdown::Write);
        let _ = rusm_otp::receive_match(is_down, None);
    }
    if let Some(p) = pump {
        rusm_otp::exit(p, ExitReason::Kill);
    }
}
