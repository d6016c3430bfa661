//! Capabilities: what a guest may touch. Default-deny.
//!
//! A [`Caps`] is a profile ([`Profile::Sandboxed`], [`Profile::NetworkClient`],
//! [`Profile::Trusted`]) plus explicit grants (preopened directories, environment
//! variables, arguments, a memory cap, an outbound allow-list), the app it belongs to
//! ([`Caps::app`]) and its [`Quotas`]. Each profile has defaults and a ceiling: a grant
//! above the ceiling is refused ([`CapsError`]), never widened. `docs/SECURITY.md` has the
//! table, with the test that checks each row.
//!
//! Each spawn builds from it a WASI context (lazily, on the guest's first WASI call), a
//! memory limiter and the process rules of `ops.rs`. A guest that spawns a child passes
//! on its own caps and app: a child never gets more than its parent.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use rusm_otp::{Pid, Realm};
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
    /// No network; no filesystem or environment unless granted (read-only preopens and
    /// declared variables at most); signals, links and inspection only within its own app;
    /// stdout and stderr go to the host log; 64 MiB of memory.
    Sandboxed,
    /// Sandboxed plus outbound TCP, UDP and DNS (optionally to an allow-list); never bind
    /// or listen. For components on wasi:sockets (a wasip1 module has no socket-opening
    /// calls at all).
    NetworkClient,
    /// Everything: writable preopens, the whole network (bind and listen too), signals to
    /// any process, 256 MiB of memory.
    Trusted,
}

/// What a guest may hold of the host, charged to it (or, for processes, to its app).
/// Hitting one is a status to the guest (`LIMIT`, or a WIT error), never a host failure.
/// The defaults are far above what a well-behaved app needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// Bytes its mailbox may hold (each message: payload + 64; a stream: its pipe +
    /// 64). A send to it past this is refused: the sender sees the status.
    pub mailbox_bytes: usize,
    /// `send-after` timers pending at once.
    pub timers: usize,
    /// Bytes the messages of its pending timers hold (payload + 64 each).
    pub timer_bytes: usize,
    /// Stream handles open at once (each buffers at most 64 KiB: this also bounds the
    /// bytes buffered in its streams).
    pub streams: usize,
    /// Guest processes its app may have alive (each holds a pool slot); children outlive
    /// their spawner and stay charged to the app.
    pub processes: usize,
}

impl Default for Quotas {
    fn default() -> Quotas {
        Quotas {
            mailbox_bytes: 16 << 20,
            timers: 10_000,
            timer_bytes: 16 << 20,
            streams: 256,
            processes: 4_096,
        }
    }
}

/// Where a network grant reaches.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Net {
    /// Nothing.
    None,
    /// Outbound TCP and UDP (connect, send) and DNS; binds only to an ephemeral port
    /// (what connecting needs), never listen. `Some`: only to these addresses.
    Outbound(Option<Vec<Allowed>>),
    /// Everything the host's network allows.
    Full,
}

/// One allow-list entry, resolved: an address and a port (`None`: any port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Allowed {
    ip: IpAddr,
    port: Option<u16>,
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
    net: Net,
    app: Option<Realm>,
    quotas: Quotas,
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
            net: match profile {
                Profile::Sandboxed => Net::None,
                Profile::NetworkClient => Net::Outbound(None),
                Profile::Trusted => Net::Full,
            },
            app: None,
            quotas: Quotas::default(),
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

    /// Grants a directory. Every profile may have read-only ones (as Spin's files); a
    /// writable one needs `Trusted`: below it this is refused with an error naming the
    /// profile.
    ///
    /// # Errors
    ///
    /// [`CapsError::NotAllowed`] for a writable preopen below `Trusted`.
    pub fn preopen(
        mut self,
        host: impl Into<PathBuf>,
        guest: impl Into<String>,
        writable: bool,
    ) -> Result<Caps, CapsError> {
        if writable && self.profile != Profile::Trusted {
            return Err(CapsError::NotAllowed { what: "writable preopened directories", profile: self.profile });
        }
        self.preopens.push(Preopen { host: host.into(), guest: guest.into(), writable });
        Ok(self)
    }

    /// Grants an environment variable (a declared value: every profile may have them;
    /// the host's own environment is never passed on).
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for a profile that refuses.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Result<Caps, CapsError> {
        self.env.push((key.into(), value.into()));
        Ok(self)
    }

    /// Limits outbound connections to `hosts`: each `"host:port"` or `"host:*"` (a name or
    /// an IP; `[v6]:port` for IPv6). Names are resolved now, once (wasmtime-wasi checks
    /// resolved addresses): a name whose addresses change later is not followed.
    ///
    /// # Errors
    ///
    /// [`CapsError::NotAllowed`] on a profile with no network (`Sandboxed`, or after
    /// [`Caps::without_network`]); [`CapsError::BadHost`] for an entry that does not parse
    /// or resolve.
    pub fn allow_hosts<S: AsRef<str>>(mut self, hosts: impl IntoIterator<Item = S>) -> Result<Caps, CapsError> {
        if self.net == Net::None {
            return Err(CapsError::NotAllowed { what: "outbound network hosts", profile: self.profile });
        }
        let mut list = Vec::new();
        for h in hosts {
            list.extend(resolve_allowed(h.as_ref())?);
        }
        self.net = Net::Outbound(Some(list));
        Ok(self)
    }

    /// Puts the guest in `app`: processes of one app may signal, link and inspect each
    /// other under every profile. Without it, each [`Host::spawn`](crate::Host::spawn) is
    /// an app of its own (with whatever it spawns).
    pub fn app(mut self, app: Realm) -> Caps {
        self.app = Some(app);
        self
    }

    /// The app set with [`Caps::app`].
    pub fn app_id(&self) -> Option<Realm> {
        self.app
    }

    /// Sets the quotas.
    pub fn quotas(mut self, q: Quotas) -> Caps {
        self.quotas = q;
        self
    }

    /// The quotas.
    pub fn quota(&self) -> &Quotas {
        &self.quotas
    }

    /// May this guest signal, link to and inspect processes outside its app?
    pub fn reaches_other_apps(&self) -> bool {
        self.profile == Profile::Trusted
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
        self.net = Net::None;
        self
    }

    /// The memory cap in bytes.
    pub fn memory_limit(&self) -> u64 {
        self.memory_cap
    }

    /// Whether outbound sockets and DNS are granted.
    pub fn has_network(&self) -> bool {
        self.net != Net::None
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

    /// The same caps in `app` (what a spawn resolves [`Caps::app`] to).
    pub(crate) fn in_app(mut self, app: Realm) -> Caps {
        self.app = Some(app);
        self
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
        b.envs(&self.env);
        for p in &self.preopens {
            let perms = if p.writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
            if let Err(e) = b.preopened_dir(&p.host, &p.guest, perms) {
                log(pid, LogStream::Stderr, format!("rusm: preopen {} unavailable: {e}", p.host.display()).as_bytes());
            }
        }
        match &self.net {
            Net::None => {}
            Net::Full => {
                b.inherit_network().allow_tcp(true).allow_udp(true).allow_ip_name_lookup(true);
            }
            Net::Outbound(allow) => {
                let allow = allow.clone();
                b.allow_tcp(true).allow_udp(true).allow_ip_name_lookup(true);
                b.socket_addr_check(move |addr, use_| {
                    let ok = outbound_allows(allow.as_deref(), addr, use_);
                    Box::pin(async move { ok })
                });
            }
        }
        b
    }
}

/// The `network-client` rule: connect and send only to the allow-list (all, if none),
/// bind only to an ephemeral port on the unspecified address (what an outbound socket
/// needs; wasmtime-wasi checks that bind for every connect of an unbound socket), never
/// listen or accept.
fn outbound_allows(allow: Option<&[Allowed]>, addr: SocketAddr, use_: wasmtime_wasi::sockets::SocketAddrUse) -> bool {
    use wasmtime_wasi::sockets::SocketAddrUse as U;
    match use_ {
        U::TcpBind | U::UdpBind => addr.ip().is_unspecified() && addr.port() == 0,
        U::TcpListen | U::TcpAccept => false,
        U::TcpConnect | U::UdpSend | U::UdpReceive => match allow {
            None => true,
            Some(list) => list.iter().any(|a| a.ip == addr.ip() && a.port.is_none_or(|p| p == addr.port())),
        },
    }
}

/// `"host:port"` / `"host:*"` / `"[v6]:port"` as resolved entries.
fn resolve_allowed(entry: &str) -> Result<Vec<Allowed>, CapsError> {
    use std::net::ToSocketAddrs;
    let bad = |why: String| CapsError::BadHost { entry: entry.to_owned(), why };
    let (host, port) = entry.rsplit_once(':').ok_or_else(|| bad("expected host:port or host:*".into()))?;
    let port = match port {
        "*" => None,
        p => Some(p.parse::<u16>().map_err(|_| bad(format!("`{p}` is not a port (0-65535) or `*`")))?),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("no host".into()));
    }
    let addrs = (host, port.unwrap_or(0)).to_socket_addrs().map_err(|e| bad(format!("cannot resolve: {e}")))?;
    let out: Vec<Allowed> = addrs.map(|a| Allowed { ip: a.ip(), port }).collect();
    if out.is_empty() {
        return Err(bad("the name has no addresses".into()));
    }
    Ok(out)
}

/// A capability request a profile does not allow.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CapsError {
    /// The grant is above the profile's ceiling.
    #[error("{what} are above the {profile:?} profile's ceiling (see docs/SECURITY.md)")]
    NotAllowed {
        /// What was asked for.
        what: &'static str,
        /// The profile that refused it.
        profile: Profile,
    },
    /// An allow-list entry that does not parse or resolve.
    #[error("allow-list entry `{entry}`: {why}")]
    BadHost {
        /// The entry.
        entry: String,
        /// What is wrong.
        why: String,
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
            self.emit();
            self.buf.clear();
            bytes = &bytes[i + 1..];
        }
        self.buf.extend_from_slice(bytes);
        while self.buf.len() >= MAX_LINE {
            let rest = self.buf.split_off(MAX_LINE);
            self.emit();
            self.buf = rest;
        }
    }

    /// Hands the buffered line to the sink with its control characters escaped.
    fn emit(&self) {
        (self.sink)(self.pid, self.stream, &escape_controls(&self.buf));
    }
}

/// A guest's line made safe for a terminal or a log file: C0 controls but TAB (CR, ESC,
/// BEL, ...), DEL and the C1 controls (U+0080..U+009F, e.g. CSI) become `\xNN` / `\u{NN}`,
/// so a guest cannot forge host log lines, move the cursor or set a terminal's title.
/// Everything else passes unchanged (no copy when there is nothing to escape).
pub(crate) fn escape_controls(line: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let is_c1 = |i: usize| line[i] == 0xC2 && line.get(i + 1).is_some_and(|b| (0x80..=0x9F).contains(b));
    let needs = |i: usize| (line[i] < 0x20 && line[i] != b'\t') || line[i] == 0x7F || is_c1(i);
    if !(0..line.len()).any(needs) {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = Vec::with_capacity(line.len() + 16);
    let mut i = 0;
    while i < line.len() {
        if is_c1(i) {
            out.extend_from_slice(format!("\\u{{{:02x}}}", line[i + 1]).as_bytes());
            i += 2;
        } else if needs(i) {
            out.extend_from_slice(format!("\\x{:02x}", line[i]).as_bytes());
            i += 1;
        } else {
            out.push(line[i]);
            i += 1;
        }
    }
    std::borrow::Cow::Owned(out)
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.emit();
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
