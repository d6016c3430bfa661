//! What `rusm run` tells the user: lifecycle events and guest output.
//!
//! Text mode: guest lines on stdout, each prefixed `name/instance |` (coloured on a
//! terminal); lifecycle events as `info` lines of rusm's own log on stderr. `--json`: both
//! as NDJSON on stdout, one object a line, `"event"` naming the kind.
//!
//! # Invariants
//!
//! A line is written whole under the stdout lock: guests writing at once never interleave
//! inside a line.

use std::io::{IsTerminal, Write};

use rusm_otp::{ExitReason, Pid};
use rusm_wasm::LogStream;
use serde_json::json;

/// Where output goes, and which.
#[derive(Debug)]
pub struct Out {
    /// The last abnormal exit reason of an instance (what `rusm run x.wasm` exits with).
    last_abnormal: std::sync::Mutex<Option<ExitReason>>,
    json: bool,
    color: bool,
    quiet: bool,
    follow: Vec<String>,
}

/// A lifecycle event.
#[derive(Debug)]
pub enum Event<'a> {
    /// A component was built into `./wasm/`.
    Built { component: &'a str, path: &'a str },
    /// An instance started (`restarts` 0) or was restarted.
    Started { label: &'a str, pid: Pid, restarts: u32 },
    /// A listener accepts connections here.
    Listening { label: &'a str, addr: std::net::SocketAddr },
    /// An instance exited.
    Exited { label: &'a str, pid: Pid, reason: &'a ExitReason },
    /// A supervisor hit its restart intensity and stopped its children.
    GaveUp { supervisor: &'a str, reason: &'a ExitReason },
    /// The app is stopping (Ctrl-C, SIGTERM, or every process ended).
    Stopping { why: &'a str },
    /// Everything has stopped.
    Stopped { code: i32 },
}

/// `name/3` → ("name", 3); `name` → ("name", 1).
pub fn split_label(label: &str) -> (&str, u32) {
    match label.rsplit_once('/') {
        Some((n, i)) if i.parse::<u32>().is_ok() => (n, i.parse().unwrap_or(1)),
        _ => (label, 1),
    }
}

impl Out {
    /// Output per the flags of `rusm run`.
    pub fn new(json: bool, quiet: bool, follow: Vec<String>) -> Out {
        Out { last_abnormal: std::sync::Mutex::new(None), json, color: !json && std::io::stdout().is_terminal(), quiet, follow }
    }

    fn line(&self, s: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    }

    /// Whether progress spinners may draw: text mode on a terminal's stderr.
    pub fn is_terminal(&self) -> bool {
        !self.json && std::io::stderr().is_terminal()
    }

    /// The last abnormal exit of an instance, if any.
    pub fn last_abnormal(&self) -> Option<ExitReason> {
        self.last_abnormal.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// A lifecycle event.
    pub fn event(&self, e: Event<'_>) {
        if let Event::Exited { reason, .. } = &e
            && !matches!(reason, ExitReason::Normal)
        {
            *self.last_abnormal.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((*reason).clone());
        }
        if self.json {
            let v = match e {
                Event::Built { component, path } => json!({"event": "built", "component": component, "path": path}),
                Event::Started { label, pid, restarts } => {
                    let (component, instance) = split_label(label);
                    let kind = if restarts == 0 { "started" } else { "restarted" };
                    json!({"event": kind, "component": component, "instance": instance, "pid": pid.to_string(), "restarts": restarts})
                }
                Event::Exited { label, pid, reason } => {
                    let (component, instance) = split_label(label);
                    json!({"event": "exited", "component": component, "instance": instance, "pid": pid.to_string(),
                           "reason": reason.to_string(), "normal": matches!(reason, ExitReason::Normal)})
                }
                Event::Listening { label, addr } => json!({"event": "listening", "component": label, "addr": addr.to_string()}),
                Event::GaveUp { supervisor, reason } => json!({"event": "gave_up", "supervisor": supervisor, "reason": reason.to_string()}),
                Event::Stopping { why } => json!({"event": "stopping", "why": why}),
                Event::Stopped { code } => json!({"event": "stopped", "code": code}),
            };
            self.line(&v.to_string());
            return;
        }
        match e {
            Event::Built { component, path } => tracing::info!("built {component} → {path}"),
            Event::Started { label, pid, restarts: 0 } => tracing::info!("started {label} {pid}"),
            Event::Started { label, pid, restarts } => tracing::info!("restarted {label} {pid} (restart {restarts})"),
            Event::Listening { label, addr } => tracing::info!("{label} listening on {addr}"),
            Event::Exited { label, pid, reason: ExitReason::Normal } => tracing::info!("{label} {pid} exited normally"),
            Event::Exited { label, pid, reason } => tracing::warn!("{label} {pid} exited: {reason}"),
            Event::GaveUp { supervisor, reason } => {
                tracing::error!("supervisor {supervisor} gave up: too many restarts ({reason}); its children are stopped")
            }
            Event::Stopping { why } => tracing::info!("stopping: {why}"),
            Event::Stopped { code } => tracing::info!("stopped (exit code {code})"),
        }
    }

    /// One line a guest wrote (without its newline).
    pub fn guest_line(&self, label: &str, pid: Pid, stream: LogStream, line: &[u8]) {
        let (component, instance) = split_label(label);
        if self.quiet || (!self.follow.is_empty() && !self.follow.iter().any(|f| f == component || f == label)) {
            return;
        }
        let text = String::from_utf8_lossy(line);
        let stream_name = match stream {
            LogStream::Stdout => "stdout",
            _ => "stderr",
        };
        if self.json {
            let v = json!({"event": "output", "component": component, "instance": instance, "pid": pid.to_string(),
                           "stream": stream_name, "line": text});
            self.line(&v.to_string());
        } else if self.color {
            let c = 31 + (color_index(component) % 6) as u8;
            self.line(&format!("\x1b[{c}m{label} |\x1b[0m {text}"));
        } else {
            self.line(&format!("{label} | {text}"));
        }
    }
}

/// A stable colour per component name.
fn color_index(s: &str) -> u32 {
    s.bytes().fold(0u32, |h, b| h.rotate_left(5) ^ u32::from(b)).wrapping_mul(0x9e37_79b9) >> 16
}
