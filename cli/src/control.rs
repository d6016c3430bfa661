//! The control socket of a running app: `rusm ps`, `rusm info`, `rusm stop` talk to a
//! `rusm run` through `.rusm/control.sock` beside its manifest.
//!
//! The protocol is JSON lines: one request object a line (`{"cmd":"ps"}`,
//! `{"cmd":"info","target":"NAME|PID"}`, `{"cmd":"stop"}`), one answer object a line
//! (`{"ok":true,…}` or `{"ok":false,"error":"…"}`).
//!
//! # Invariants
//!
//! - The socket and its directory are the owner's alone (0700 / 0600): whoever can
//!   connect can stop the app.
//! - One `rusm run` an app directory: a socket that answers means another run is live, and
//!   this one refuses to start; one that does not answer was left by a crashed run, and is
//!   replaced.
//! - The server runs on plain threads, outside the scheduler: a slow client never holds
//!   a worker.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rusm_otp::{Node, Pid};
use serde_json::{Value, json};

use crate::events::split_label;

/// One live instance.
#[derive(Debug, Clone)]
pub struct Instance {
    /// `name` or `name/i`.
    pub label: String,
    /// When this pid started.
    pub started: Instant,
    /// Restarts of this label before this pid.
    pub restarts: u32,
}

/// The live instances by pid: the master writes, the control server reads.
#[derive(Debug, Default, Clone)]
pub struct Table(Arc<Mutex<HashMap<Pid, Instance>>>);

impl Table {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Pid, Instance>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An instance started.
    pub fn insert(&self, pid: Pid, inst: Instance) {
        self.lock().insert(pid, inst);
    }

    /// An instance ended: what was known of it.
    pub fn remove(&self, pid: Pid) -> Option<Instance> {
        self.lock().remove(&pid)
    }

    /// No instance is live.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn snapshot(&self) -> Vec<(Pid, Instance)> {
        self.lock().iter().map(|(p, i)| (*p, i.clone())).collect()
    }
}

/// The socket of the app in `dir`.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join(".rusm").join("control.sock")
}

/// Binds the app's control socket, replacing a stale one.
///
/// # Errors
///
/// Another live run of the app, or a socket that cannot be made.
pub fn bind(dir: &Path) -> Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(dir);
    let parent = path.parent().expect("has .rusm");
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700)).with_context(|| format!("securing {}", parent.display()))?;
    if path.exists() {
        if UnixStream::connect(&path).is_ok() {
            bail!("this app is already running (its control socket {} answers): stop it with `rusm stop`", path.display());
        }
        tracing::debug!("replacing the stale control socket {}", path.display());
        std::fs::remove_file(&path).with_context(|| format!("removing the stale {}", path.display()))?;
    }
    let listener = UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).with_context(|| format!("securing {}", path.display()))?;
    Ok(listener)
}

/// Serves `listener` until the process ends; `stop` is called for a stop request.
pub fn serve(listener: UnixListener, node: Arc<Node>, table: Table, stop: Arc<dyn Fn() + Send + Sync>) {
    std::thread::Builder::new()
        .name("rusm-control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (node, table, stop) = (node.clone(), table.clone(), stop.clone());
                let _ = std::thread::Builder::new().name("rusm-control-conn".into()).spawn(move || {
                    let _ = connection(conn, &node, &table, &*stop);
                });
            }
        })
        .expect("spawning the control thread");
}

fn connection(conn: UnixStream, node: &Node, table: &Table, stop: &(dyn Fn() + Send + Sync)) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut w = conn.try_clone()?;
    for line in BufReader::new(conn).lines() {
        let line = line?;
        let req = serde_json::from_str::<Value>(&line);
        if let Ok(r) = &req
            && r["cmd"] == "stop"
        {
            // Answer first: once stopped, the process exits, and the answer with it.
            writeln!(w, "{}", json!({"ok": true}))?;
            w.flush()?;
            stop();
            continue;
        }
        let answer = match req {
            Err(e) => json!({"ok": false, "error": format!("not JSON: {e}")}),
            Ok(req) => answer(&req, node, table),
        };
        writeln!(w, "{answer}")?;
    }
    Ok(())
}

fn answer(req: &Value, node: &Node, table: &Table) -> Value {
    match req["cmd"].as_str() {
        Some("ps") => json!({"ok": true, "processes": rows(node, table).into_iter().map(|(_, r)| r).collect::<Vec<_>>()}),
        Some("info") => {
            let target = req["target"].as_str().unwrap_or_default();
            let found: Vec<Value> = rows(node, table)
                .into_iter()
                .filter(|(_, r)| r["pid"] == target || r["label"] == target || r["component"] == target)
                .map(|(pid, mut r)| {
                    if let Some(info) = node.info(pid) {
                        r["links"] = json!(info.links.iter().map(ToString::to_string).collect::<Vec<_>>());
                        r["monitors"] = json!(info.monitors.iter().map(ToString::to_string).collect::<Vec<_>>());
                        r["monitored_by"] = json!(info.monitored_by.iter().map(ToString::to_string).collect::<Vec<_>>());
                        r["name"] = json!(info.name);
                        r["groups"] = json!(info.groups);
                        r["trap_exit"] = json!(info.trap_exit);
                        r["mailbox_bytes"] = json!(info.mailbox_bytes);
                    }
                    r
                })
                .collect();
            if found.is_empty() {
                return json!({"ok": false, "error": format!("no process {target:?} in this app (see `rusm ps`)")});
            }
            json!({"ok": true, "processes": found})
        }
        other => json!({"ok": false, "error": format!("unknown command {other:?}: ps, info or stop")}),
    }
}

/// `ps` rows with their pids, in label order.
fn rows(node: &Node, table: &Table) -> Vec<(Pid, Value)> {
    let mut rows: Vec<(Pid, Value)> = table
        .snapshot()
        .into_iter()
        .filter_map(|(pid, inst)| {
            let info = node.info(pid)?;
            let (component, instance) = split_label(&inst.label);
            Some((pid, json!({
                "pid": pid.to_string(),
                "label": inst.label,
                "component": component,
                "instance": instance,
                "status": format!("{:?}", info.status).to_lowercase(),
                "restarts": inst.restarts,
                "messages": info.reductions,
                "mailbox": info.mailbox_len,
                "uptime_ms": inst.started.elapsed().as_millis() as u64,
            })))
        })
        .collect();
    rows.sort_by(|(_, a), (_, b)| a["component"].as_str().cmp(&b["component"].as_str()).then(a["instance"].as_u64().cmp(&b["instance"].as_u64())));
    rows
}

/// Sends one request to the app in `dir` and returns its answer.
///
/// # Errors
///
/// No run of the app is live, or it answered an error.
pub fn request(dir: &Path, req: &Value) -> Result<Value> {
    let path = socket_path(dir);
    let conn = UnixStream::connect(&path).with_context(|| format!("no running app at {} (start it with `rusm run`)", dir.display()))?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut w = conn.try_clone()?;
    writeln!(w, "{req}")?;
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line).context("reading the app's answer")?;
    let v: Value = serde_json::from_str(&line).context("the app's answer is not JSON")?;
    if v["ok"] != true {
        bail!("{}", v["error"].as_str().unwrap_or("the app refused"));
    }
    Ok(v)
}

/// `ps` rows as a table.
pub fn print_table(rows: &[Value]) {
    println!("{:<14} {:<16} {:>4} {:<9} {:>8} {:>10} {:>7} {:>10}", "PID", "COMPONENT", "INST", "STATUS", "RESTARTS", "MESSAGES", "MAILBOX", "UPTIME");
    for r in rows {
        let up = r["uptime_ms"].as_u64().unwrap_or(0);
        let uptime = if up >= 3_600_000 { format!("{}h{:02}m", up / 3_600_000, up / 60_000 % 60) } else { format!("{}m{:02}s", up / 60_000, up / 1000 % 60) };
        println!(
            "{:<14} {:<16} {:>4} {:<9} {:>8} {:>10} {:>7} {:>10}",
            r["pid"].as_str().unwrap_or("?"),
            r["component"].as_str().unwrap_or("?"),
            r["instance"],
            r["status"].as_str().unwrap_or("?"),
            r["restarts"],
            r["messages"],
            r["mailbox"],
            uptime
        );
    }
}
