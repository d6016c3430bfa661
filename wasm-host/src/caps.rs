//! Capabilities: what a guest may touch. Default-deny.
//!
//! A [`Caps`] is a profile ([`Profile::Sandboxed`], [`Profile::NetworkClient`],
//! [`Profile::Trusted`]) plus explicit grants (preopened directories, environment
//! variables, arguments, a memory cap). Each spawn builds from it a WASI context (lazily, on
//! the guest's first WASI call) and a memory limiter. A guest that spawns a child passes
//! on its own caps: a child never gets more than its parent.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use rusm_otp::Pid;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// The default memory cap of [`Profile::Sandboxed`] and [`Profile::NetworkClient`].
pub const DEFAULT_MEMORY_CAP: u64 = 64 << 20;
/// The default memory cap of [`Profile::Trusted`].
pub const TRUSTED_MEMORY_CAP: u64 = 256 << 20;

/// A capability profile: the starting point a [`Caps`] narrows or widens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Profile {
    /// No filesystem, no environment, no network; stdout and stderr go to the host log;
    /// 64 MiB of memory.
    Sandboxed,
    /// Sandboxed plus outbound sockets and DNS (for components on wasi:sockets; a wasip1
    /// module has no socket-opening calls at all).
    NetworkClient,
    /// Its declared preopens, its environment, the network, 256 MiB of memory.
    Trusted,
}

/// A directory a guest may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preopen {
    /// Where it is on the host.
    pub host: PathBuf,
    /// The path the guest opens it by.
    pub guest: String,
    /// Read-only unless set.
    pub writable: bool,
}

/// Which standard stream a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    /// The guest's stdout.
    Stdout,
    /// The guest's stderr.
    Stderr,
}

/// Where guests' stdout and stderr go: one call per complete line (a final partial line
/// is flushed when the guest ends). The default writes `[<pid> stdout] line` (or
/// `stderr`) to the host's stderr.
pub type LogSink = Arc<dyn Fn(Pid, LogStream, &[u8]) + Send + Sync>;

/// The default log sink: `[<pid> stdout] line` on the host's stderr.
pub fn stderr_log() -> LogSink {
    Arc::new(|pid, stream, line| {
        use std::io::Write as _;
        let tag = match stream {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        };
        let mut e = std::io::stderr().lock();
        let _ = write!(e, "[{pid} {tag}] ");
        let _ = e.write_all(line);
        let _ = e.write_all(b"\n");
    })
}

/// What a guest may do. Built from a [`Profile`]; grants are explicit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caps {
    profile: Profile,
    preopens: Vec<Preopen>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    memory_cap: u64,
    network: bool,
}

impl Default for Caps {
    fn default() -> Caps {
        Caps::new(Profile::Sandboxed)
    }
}

impl Caps {
    /// The profile's defaults: no preopens, no environment, no arguments.
    pub fn new(profile: Profile) -> Caps {
        Caps {
            profile,
            preopens: Vec::new(),
            env: Vec::new(),
            args: Vec::new(),
            memory_cap: match profile {
                Profile::Trusted => TRUSTED_MEMORY_CAP,
                _ => DEFAULT_MEMORY_CAP,
            },
            network: profile != Profile::Sandboxed,
        }
    }

    /// [`Profile::Sandboxed`].
    pub fn sandboxed() -> Caps {
        Caps::new(Profile::Sandboxed)
    }

    /// [`Profile::NetworkClient`].
    pub fn network_client() -> Caps {
        Caps::new(Profile::NetworkClient)
    }

    /// [`Profile::Trusted`].
    pub fn trusted() -> Caps {
        Caps::new(Profile::Trusted)
    }

    /// The profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Grants a directory. Only a `Trusted` guest sees preopens: on a weaker profile this
    /// is refused with an error naming the profile (grant `Trusted` first).
    ///
    /// # Errors
    ///
    /// [`CapsError::NotAllowed`] below `Trusted`.
    pub fn preopen(
        mut self,
        host: impl Into<PathBuf>,
        guest: impl Into<String>,
        writable: bool,
    ) -> Result<Caps, CapsError> {
        if self.profile != Profile::Trusted {
            return Err(CapsError::NotAllowed { what: "preopened directories", profile: self.profile });
        }
        self.preopens.push(Preopen { host: host.into(), guest: guest.into(), writable });
        Ok(self)
    }

    /// Grants an environment variable. Only `Trusted` guests see an environment.
    ///
    /// # Errors
    ///
    /// [`CapsError::NotAllowed`] below `Trusted`.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Result<Caps, CapsError> {
        if self.profile != Profile::Trusted {
            return Err(CapsError::NotAllowed { what: "environment variables", profile: self.profile });
        }
        self.env.push((key.into(), value.into()));
        Ok(self)
    }

    /// Command-line arguments (`argv[1..]`; `argv[0]` is the artifact's name). Arguments
    /// are data, not authority: every profile may have them.
    pub fn args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Caps {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the memory cap in bytes: the most any one of the guest's linear memories may
    /// grow to (a wasip1 module has one).
    pub fn memory_cap(mut self, bytes: u64) -> Caps {
        self.memory_cap = bytes;
        self
    }

    /// Drops the network grant.
    pub fn without_network(mut self) -> Caps {
        self.network = false;
        self
    }

    /// The memory cap in bytes.
    pub fn memory_limit(&self) -> u64 {
        self.memory_cap
    }

    /// Whether outbound sockets and DNS are granted.
    pub fn has_network(&self) -> bool {
        self.network
    }

    /// The granted preopens.
    pub fn preopens(&self) -> &[Preopen] {
        &self.preopens
    }

    /// The granted environment.
    pub fn envs(&self) -> &[(String, String)] {
        &self.env
    }

    /// The arguments.
    pub fn arguments(&self) -> &[String] {
        &self.args
    }

    /// What a child of a guest with these caps gets: the same grants, its own
    /// arguments. Never more than the parent.
    pub(crate) fn for_child(&self) -> Caps {
        Caps { args: Vec::new(), ..self.clone() }
    }

    /// Builds the guest's WASI context. Preopens that cannot be opened are skipped with a
    /// line on the guest's stderr (the guest then sees them missing, as a denied path).
    pub(crate) fn build_wasi(&self, pid: Pid, argv0: &str, log: &LogSink) -> wasmtime_wasi::p1::WasiP1Ctx {
        self.wasi_builder(pid, argv0, log).build_p1()
    }

    /// The same grants as [`Caps::build_wasi`], as the context of a component
    /// (preview 2 and preview 3 share it).
    pub(crate) fn build_wasi_ctx(&self, pid: Pid, argv0: &str, log: &LogSink) -> wasmtime_wasi::WasiCtx {
        self.wasi_builder(pid, argv0, log).build()
    }

    fn wasi_builder(&self, pid: Pid, argv0: &str, log: &LogSink) -> WasiCtxBuilder {
        let mut b = WasiCtxBuilder::new();
        b.stdout(LogOut { pid, stream: LogStream::Stdout, sink: log.clone() });
        b.stderr(LogOut { pid, stream: LogStream::Stderr, sink: log.clone() });
        b.arg(argv0);
        b.args(&self.args);
        if self.profile == Profile::Trusted {
            b.envs(&self.env);
            for p in &self.preopens {
                let perms = if p.writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
                if let Err(e) = b.preopened_dir(&p.host, &p.guest, perms) {
                    log(pid, LogStream::Stderr, format!("rusm: preopen {} unavailable: {e}", p.host.display()).as_bytes());
                }
            }
        }
        if self.network {
            b.inherit_network();
            b.allow_ip_name_lookup(true);
        }
        b
    }
}

/// A capability request a profile does not allow.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CapsError {
    /// The grant needs a stronger profile.
    #[error("{what} need the Trusted profile; this guest is {profile:?}")]
    NotAllowed {
        /// What was asked for.
        what: &'static str,
        /// The profile that refused it.
        profile: Profile,
    },
}

/// The memory cap as a wasmtime limiter: growing past it traps, so the guest crashes with
/// a reason that names the cap (Erlang kills a process over its `max_heap_size` the same
/// way), and the host goes on.
#[derive(Debug)]
pub(crate) struct Limiter {
    pub(crate) cap: u64,
    pub(crate) denied: Option<(usize, usize)>,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.cap {
            self.denied = Some((current, desired));
            return Err(wasmtime::Error::msg(format!(
                "memory cap exceeded: the guest asked for {desired} bytes, its cap is {} bytes",
                self.cap
            )));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// A guest's stdout or stderr as lines to the host log.
struct LogOut {
    pid: Pid,
    stream: LogStream,
    sink: LogSink,
}

impl IsTerminal for LogOut {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogOut {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter::new(self.pid, self.stream, self.sink.clone()))
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineWriter::new(self.pid, self.stream, self.sink.clone()))
    }
}

/// Line-buffers writes; long lines are cut at 4 KiB.
struct LineWriter {
    pid: Pid,
    stream: LogStream,
    sink: LogSink,
    buf: Vec<u8>,
}

const MAX_LINE: usize = 4096;

impl LineWriter {
    fn new(pid: Pid, stream: LogStream, sink: LogSink) -> LineWriter {
        LineWriter { pid, stream, sink, buf: Vec::new() }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        while let Some(i) = bytes.iter().position(|&b| b == b'\n') {
            self.buf.extend_from_slice(&bytes[..i]);
            (self.sink)(self.pid, self.stream, &self.buf);
            self.buf.clear();
            bytes = &bytes[i + 1..];
        }
        self.buf.extend_from_slice(bytes);
        while self.buf.len() >= MAX_LINE {
            let rest = self.buf.split_off(MAX_LINE);
            (self.sink)(self.pid, self.stream, &self.buf);
            self.buf = rest;
        }
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            (self.sink)(self.pid, self.stream, &self.buf);
        }
    }
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(1 << 20)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
