//! A checked [`App`] running on a node: its supervision tree and the app master that
//! watches it (OTP's application master, in a native process).
//!
//! ```text
//!   main thread ──Note::Stop──▶ master (native, traps exits)
//!       ▲                          │ start_link
//!       └──────Report──────────    ▼
//!                              root supervisor ── [group supervisor] ── instance …
//!                                    └─ instance (a guest: name/1 … name/N)
//! ```
//!
//! # Invariants
//!
//! - Every instance runs in the app's one realm (docs/SECURITY.md): its processes may
//!   signal each other; nothing outside the app unless a component is trusted.
//! - The master is the root supervisor's parent: a graceful stop is its exit signal, so
//!   the supervisor stops its children in reverse start order, each within its shutdown.
//! - Every start of an instance passes through its start function, which tells the
//!   master (`Note::Started`), and every end reaches the master as its supervisor's
//!   report (`SupervisorReport::ChildTerminated`, with the child's own reason, even for a
//!   child that died before anyone could monitor it). Both come from the supervisor's
//!   process, so a start is always seen before its end, and each exactly once.
//! - The app is done when no process of its realm is alive and no supervisor holds a
//!   running child (a crashed child about to restart is still held).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result};
use rusm_otp::supervisor::{self, ChildSpec, Restart, Shutdown, SupervisorSpec};
use rusm_otp::{ExitReason, Message, Node, Pid, Realm, Received};
use rusm_wasm::{Artifact, Caps, Host, WasmOpts};

use crate::control::{self, Table};
use crate::events::{Event, Out};
use crate::manifest::{App, Component, SupervisorCfg};

/// What the master tells the main thread.
#[derive(Debug)]
pub enum Report {
    /// The root supervisor is up.
    Up(Pid),
    /// The tree could not start (a child's start failed): why.
    StartFailed(String),
    /// Every process ended by itself; the tree is stopped.
    Done,
    /// The root supervisor gave up (too many restarts).
    GaveUp,
    /// A stop that was asked for has finished.
    Stopped,
}

/// What reaches the master.
#[derive(Debug)]
pub enum Note {
    /// An instance, a group supervisor or a listener started.
    Started { label: String, pid: Pid, supervisor: bool },
    /// A supervisor's child ended (its report; the reason is the child's own).
    Terminated { pid: Pid, reason: ExitReason },
    /// A supervisor reached its restart intensity and is giving up.
    MaxIntensity { supervisor: String },
    /// A listener is accepting on this address.
    Listening { label: String, addr: std::net::SocketAddr },
    /// Stop the app gracefully.
    Stop,
    /// See whether the app is done.
    Check,
}

/// Everything a start function needs, built once before the tree starts.
#[derive(Clone)]
struct Instance {
    label: String,
    artifact: Artifact,
    caps: Caps,
    restart: Restart,
    shutdown: Shutdown,
    register: Option<Register>,
    /// `listen`: this child is the listener; each connection is an instance.
    listen: Option<std::net::SocketAddr>,
}

#[derive(Clone)]
enum Register {
    Name(String),
    Group(String),
}

/// The capabilities of a component, in the app's realm.
///
/// # Errors
///
/// A grant the host refuses (the manifest check makes this rare: a host name that does
/// not resolve).
pub fn caps_for(c: &Component, realm: Realm) -> Result<Caps> {
    let mut caps = Caps::new(c.profile).app(realm).args(c.args.iter().cloned());
    if let Some(m) = c.memory {
        caps = caps.memory_cap(m);
    }
    for (k, v) in &c.env {
        caps = caps.env(k.clone(), v.clone())?;
    }
    for f in &c.files {
        caps = caps.preopen(&f.host, &f.guest, f.writable)?;
    }
    if let Some(list) = &c.network {
        caps = caps.allow_hosts(list).with_context(|| format!("the network allow-list of {}", c.name))?;
    }
    Ok(caps)
}

/// Starts `app` (artifacts already loaded, by component name) under a master process.
/// Returns the master's pid and the channel its reports come on.
///
/// # Errors
///
/// A component's capabilities the host refuses, or a node that refuses to spawn.
pub fn start(
    node: &Node,
    host: &Host,
    app: &App,
    artifacts: &HashMap<String, Artifact>,
    out: Arc<Out>,
    table: Table,
) -> Result<(Pid, mpsc::Receiver<Report>)> {
    let realm = Realm::fresh();
    // Children in start order; those of a group gathered under it, at its first member.
    let mut root: Vec<Child> = Vec::new();
    for c in &app.components {
        let caps = caps_for(c, realm)?;
        let artifact = artifacts.get(&c.name).with_context(|| format!("component {} was not loaded", c.name))?.clone();
        let register = c.register.clone().map(|n| if c.instances > 1 { Register::Group(n) } else { Register::Name(n) });
        let instances = (1..=c.instances).map(|i| Instance {
            label: c.label(i),
            artifact: artifact.clone(),
            caps: caps.clone(),
            restart: c.restart,
            shutdown: c.shutdown,
            register: register.clone(),
            listen: c.listen,
        });
        match &c.group {
            None => root.extend(instances.map(|i| Child::Instance(Box::new(i)))),
            Some(g) => {
                let slot = root.iter().position(|ch| matches!(ch, Child::Group(n, _, _) if n == g));
                let i = slot.unwrap_or_else(|| {
                    let cfg = app.groups.iter().find(|(n, _)| n == g).map(|(_, c)| *c).unwrap_or_default();
                    root.push(Child::Group(g.clone(), cfg, Vec::new()));
                    root.len() - 1
                });
                if let Child::Group(_, _, members) = &mut root[i] {
                    members.extend(instances);
                }
            }
        }
    }
    let (tx, rx) = mpsc::channel();
    let root_cfg = app.root;
    let host = host.clone();
    let master = node
        .spawn_opt(rusm_otp::SpawnOpts { label: Some(format!("{}/master", app.name)), ..Default::default() }, move || {
            master(realm, root_cfg, root, host, out, tx, table)
        })
        .context("starting the app")?;
    Ok((master, rx))
}

enum Child {
    Instance(Box<Instance>),
    Group(String, SupervisorCfg, Vec<Instance>),
}

/// A supervisor that reports its children's ends and its giving up to the master.
fn spec(cfg: SupervisorCfg, name: &str, master: Pid) -> SupervisorSpec {
    let name = name.to_owned();
    SupervisorSpec::new(cfg.strategy).intensity(cfg.intensity, cfg.period).reporter(move |r| {
        let note = match r {
            supervisor::SupervisorReport::ChildTerminated { pid, reason, .. } => Note::Terminated { pid: *pid, reason: (*reason).clone() },
            supervisor::SupervisorReport::MaxIntensity => Note::MaxIntensity { supervisor: name.clone() },
            _ => return,
        };
        rusm_otp::send(master, Message::value(note));
    })
}

fn instance_spec(inst: Instance, host: Host, master: Pid) -> ChildSpec {
    let shutdown = inst.shutdown;
    let restart = inst.restart;
    let label = inst.label.clone();
    if let Some(addr) = inst.listen {
        let spec = crate::listen::ListenSpec { name: inst.label.clone(), addr, artifact: inst.artifact.clone(), caps: inst.caps.clone(), host };
        return ChildSpec::start_with(label, restart, move |_opts| {
            let (pid, local) = crate::listen::start_link(spec.clone())?;
            rusm_otp::send(master, Message::value(Note::Started { label: spec.name.clone(), pid, supervisor: false }));
            rusm_otp::send(master, Message::value(Note::Listening { label: spec.name.clone(), addr: local }));
            Ok(pid)
        })
        .shutdown(shutdown);
    }
    ChildSpec::start_with(label, restart, move |opts| {
        let spawned = host
            .spawn_here(&inst.artifact, WasmOpts { caps: inst.caps.clone(), entry: None, spawn: opts })
            .map_err(|e| e.to_string())?;
        let pid = spawned.pid;
        match &inst.register {
            Some(Register::Name(n)) => {
                if let Err(e) = rusm_otp::register(n, pid) {
                    rusm_otp::kill(pid);
                    return Err(format!("cannot register {n}: {e}"));
                }
            }
            Some(Register::Group(g)) => {
                rusm_otp::pg::join(g, pid);
            }
            None => {}
        }
        rusm_otp::send(master, Message::value(Note::Started { label: inst.label.clone(), pid, supervisor: false }));
        Ok(pid)
    })
    .shutdown(shutdown)
}

fn master(realm: Realm, root_cfg: SupervisorCfg, children: Vec<Child>, host: Host, out: Arc<Out>, tx: mpsc::Sender<Report>, table: Table) {
    rusm_otp::trap_exit(true);
    let me = rusm_otp::self_pid();
    let mut root_spec = spec(root_cfg, "root", me);
    for ch in children {
        match ch {
            Child::Instance(inst) => root_spec = root_spec.child(instance_spec(*inst, host.clone(), me)),
            Child::Group(name, cfg, members) => {
                let mut g = spec(cfg, &name, me);
                for inst in members {
                    g = g.child(instance_spec(inst, host.clone(), me));
                }
                let label = name.clone();
                root_spec = root_spec.child(
                    ChildSpec::start_with(name, Restart::Permanent, move |_opts| {
                        let pid = supervisor::start_link(g.clone()).map_err(|e| e.to_string())?;
                        rusm_otp::send(me, Message::value(Note::Started { label: label.clone(), pid, supervisor: true }));
                        Ok(pid)
                    })
                    .shutdown(Shutdown::Infinity),
                );
            }
        }
    }
    let root = match supervisor::start_link(root_spec) {
        Ok(pid) => pid,
        Err(e) => {
            let _ = tx.send(Report::StartFailed(e.to_string()));
            return;
        }
    };
    let _ = tx.send(Report::Up(root));
    // Live instances (not group supervisors) are the control table's; their ends come
    // as reports.
    let mut starts: HashMap<String, u32> = HashMap::new();
    let mut groups: Vec<Pid> = Vec::new();
    let mut stopping = false;
    loop {
        match rusm_otp::receive() {
            Received::Message(m) => match m.downcast::<Note>() {
                Ok(Note::Started { label, pid, supervisor }) => {
                    let n = starts.entry(label.clone()).or_insert(0);
                    if !supervisor {
                        out.event(Event::Started { label: &label, pid, restarts: *n });
                        let inst = control::Instance { label: label.clone(), started: std::time::Instant::now(), restarts: *n };
                        table.insert(pid, inst);
                    } else {
                        groups.push(pid);
                    }
                    *n += 1;
                }
                Ok(Note::Terminated { pid, reason }) => {
                    groups.retain(|g| *g != pid);
                    if let Some(inst) = table.remove(pid) {
                        out.event(Event::Exited { label: &inst.label, pid, reason: &reason });
                    }
                    if !stopping && table.is_empty() {
                        rusm_otp::send_after(Duration::from_millis(20), me, Message::value(Note::Check));
                    }
                }
                Ok(Note::MaxIntensity { supervisor }) if !stopping => {
                    out.event(Event::GaveUp { supervisor: &supervisor, reason: &ExitReason::Shutdown });
                }
                Ok(Note::Listening { label, addr }) => out.event(Event::Listening { label: &label, addr }),
                Ok(Note::Stop) if !stopping => {
                    stopping = true;
                    rusm_otp::exit(root, ExitReason::Shutdown);
                }
                Ok(Note::Check) if !stopping => {
                    if !table.is_empty() {
                        // An instance is running: its exit brings the next check.
                    } else if is_done(realm, root, &groups) {
                        stopping = true;
                        let _ = tx.send(Report::Done);
                        rusm_otp::exit(root, ExitReason::Shutdown);
                    } else {
                        // Processes the components spawned live on, or a supervisor has
                        // not yet handled an exit: look again soon.
                        rusm_otp::send_after(Duration::from_millis(50), me, Message::value(Note::Check));
                    }
                }
                _ => {}
            },
            Received::Exit { from, reason } if from == root => {
                // What the tree did not hold (a listener's connections, what guests
                // spawned) ends with it.
                for p in rusm_otp::processes_in(realm) {
                    rusm_otp::exit(p, ExitReason::Shutdown);
                }
                if !stopping {
                    tracing::debug!("the root supervisor exited: {reason}");
                    let _ = tx.send(Report::GaveUp);
                } else {
                    let _ = tx.send(Report::Stopped);
                }
                return;
            }
            _ => {}
        }
    }
}

/// No process of the app's realm is alive, and no supervisor holds a live child.
fn is_done(realm: Realm, root: Pid, groups: &[Pid]) -> bool {
    if !rusm_otp::processes_in(realm).is_empty() {
        return false;
    }
    let mut sups = vec![root];
    sups.extend_from_slice(groups);
    for s in sups {
        let Ok(children) = supervisor::which_children(s) else { continue };
        if children.iter().any(|(_, p)| p.is_some_and(|p| !groups.contains(&p))) {
            return false;
        }
    }
    true
}
