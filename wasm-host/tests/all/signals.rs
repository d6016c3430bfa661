//! The exit-signal rules of issue 11 through both guest ABIs: a wasip1 module (the raw
//! ABI, `tests/guests/src/bin/signals.rs`) and a component (the WIT world, role `signals`
//! of `tests/components/roles`), each against native processes. The same rules for
//! native processes are rows of `actor/tests/all/signals.rs`.
//!
//! - A process that ends with reason `kill` itself sends `kill` over its links: a trapping
//!   guest gets it as an exit item; a non-trapping guest ends with `kill`, and its own
//!   links and monitors then see `kill`.
//! - `link` to a dead pid: a trapping guest gets OK and an exit item `noproc`; a
//!   non-trapping one gets the `NOPROC` status (WIT: `error(noproc)`) and lives on.
//! - After `unlink` returns, no exit item over that link arrives, even from a peer exiting
//!   at that moment; after `demonitor` with flush, no down item of that monitor.

use std::time::Duration;

use rusm_otp::{ExitReason, Pid, Received, SpawnOpts};
use rusm_wasm::testing::component;
use rusm_wasm::{Artifact, Host, WasmOpts};

use crate::common::*;

/// The native factory the guests ask for peers: [reply-to][cmd] -> [pid] of a new process.
/// `kill`: ends with reason `kill` when it gets a message; `boom`: ends `boom` when it gets
/// a message; `dead`: has already ended.
fn peers() {
    loop {
        let Received::Message(m) = rusm_otp::receive() else { continue };
        let Some(b) = m.as_bytes() else { continue };
        let to = Pid::from_u64(u64::from_le_bytes(b[..8].try_into().unwrap()));
        let pid = match &b[8..] {
            b"kill" => rusm_otp::spawn(|| {
                let _ = rusm_otp::receive();
                rusm_otp::exit_with(ExitReason::Kill)
            }),
            b"boom" => rusm_otp::spawn(|| {
                let _ = rusm_otp::receive();
                rusm_otp::exit_with(ExitReason::Other("boom".into()))
            }),
            b"dead" => {
                let (p, m) = rusm_otp::spawn_monitor(|| {}).unwrap();
                wait_for_down(m);
                Ok(p)
            }
            other => panic!("unknown peer {other:?}"),
        }
        .unwrap();
        rusm_otp::send(to, pid.to_u64().to_le_bytes().to_vec());
    }
}

fn wait_for_down(m: rusm_otp::MonitorRef) -> ExitReason {
    match rusm_otp::receive_match(|r| matches!(r, Received::Down { monitor, .. } if *monitor == m), Some(Duration::from_secs(20))) {
        Received::Down { reason, .. } => reason,
        other => panic!("no DOWN within 20 s: {other:?}"),
    }
}

/// How to start the guest in a mode, given [test][peers].
type Start = fn(&Host, &Artifact, &[u8], SpawnOpts) -> Pid;

fn start_module(host: &Host, art: &Artifact, setup: &[u8], spawn: SpawnOpts) -> Pid {
    let s = host.spawn_here(art, WasmOpts { spawn, caps: trusted(), ..WasmOpts::default() }).expect("spawn");
    rusm_otp::send(s.pid, setup.to_vec());
    s.pid
}

fn start_component(host: &Host, art: &Artifact, setup: &[u8], spawn: SpawnOpts) -> Pid {
    let s = host.spawn_here(art, WasmOpts { spawn, caps: trusted(), ..WasmOpts::default() }).expect("spawn");
    let (head, mode) = setup.split_at(16);
    // The roles component names the rules mode `signals`.
    rusm_otp::send(s.pid, if mode == b"rules" { b"signals".to_vec() } else { mode.to_vec() });
    rusm_otp::send(s.pid, head.to_vec());
    s.pid
}

fn check_rules(node: rusm_otp::Node, host: Host, logs: Logs, art: Artifact, start: Start) {
    let (h, a) = (host.clone(), art.clone());
    node.run(move || {
        let peers = rusm_otp::spawn(peers).unwrap();
        let me = rusm_otp::self_pid();
        let setup = |mode: &[u8]| [me.to_u64().to_le_bytes().as_slice(), &peers.to_u64().to_le_bytes(), mode].concat();

        // The rules: the guest checks each one and reports, or crashes saying which failed.
        let guest = start(&h, &a, &setup(b"rules"), SpawnOpts { monitor: true, ..SpawnOpts::default() });
        match rusm_otp::receive_match(
            |r| matches!(r, Received::Message(_)) || matches!(r, Received::Down { pid, .. } if *pid == guest),
            Some(Duration::from_secs(60)),
        ) {
            Received::Message(m) => assert_eq!(m.as_bytes(), Some(&b"signals ok"[..])),
            other => panic!("the guest did not pass: {other:?}; it printed {:?}", logs.lock().unwrap()),
        }

        // A non-trapping guest linked to a process that ends with `kill`: it ends `kill`,
        // and a trapping native process linked to it sees `kill` too (kill travels links
        // as an ordinary reason; only exit/2 with kill becomes killed).
        rusm_otp::trap_exit(true);
        let victim = start(&h, &a, &setup(b"victim"), SpawnOpts { link: true, monitor: true, ..SpawnOpts::default() });
        let down = wait_down(victim);
        let exit = match rusm_otp::receive_match(|r| matches!(r, Received::Exit { from, .. } if *from == victim), Some(Duration::from_secs(20))) {
            Received::Exit { reason, .. } => reason,
            other => panic!("no EXIT from the victim: {other:?}"),
        };
        assert_eq!((down, exit), (ExitReason::Kill, ExitReason::Kill));
        rusm_otp::kill(peers);
    })
    .unwrap();
}

#[test]
fn signal_rules_through_the_raw_abi() {
    let (node, host, logs) = setup();
    let art = host.load("signals", &guest("signals")).unwrap();
    check_rules(node, host, logs, art, start_module);
}

#[test]
fn signal_rules_through_the_wit_world() {
    let (node, host, logs) = setup();
    let art = host.load("roles", &component("roles")).unwrap();
    check_rules(node, host, logs, art, start_component);
}

/// These guests signal and link native processes of the test: that needs `Trusted`
/// (a sandboxed guest reaches only its own app: containment.rs).
fn trusted() -> rusm_wasm::Caps {
    rusm_wasm::Caps::trusted()
}
