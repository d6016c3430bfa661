//! Components (wasm32-wasip2, wit-bindgen) as processes: the `rusm:runtime` world end to
//! end, against native processes, wasip1 modules and each other.

use std::io::{Read, Write};
use std::time::Duration;

use rusm_otp::supervisor::{self, ChildSpec, Restart, Strategy, SupervisorSpec};
use rusm_otp::{ExitReason, Pid, Received, SpawnOpts, stream};
use rusm_wasm::testing::component;
use rusm_wasm::{ArtifactKind, Caps, Host, LogStream, WasmOpts};

use crate::common::*;

fn load(host: &Host, name: &str) -> rusm_wasm::Artifact {
    let art = host.load(name, &component(name)).expect("component loads");
    assert_eq!(art.kind(), ArtifactKind::Component);
    art
}

fn pid_bytes(pids: &[Pid]) -> Vec<u8> {
    pids.iter().flat_map(|p| p.to_u64().to_le_bytes()).collect()
}

/// Spawns `roles` in role `role` from inside a process.
fn spawn_role(host: &Host, role: &str, spawn: SpawnOpts) -> Pid {
    let art = host.artifact("roles").expect("roles loaded");
    let s = host.spawn_here(&art, WasmOpts { spawn, caps: Caps::trusted(), ..WasmOpts::default() }).expect("spawn roles");
    rusm_otp::send(s.pid, role.as_bytes().to_vec());
    s.pid
}

/// A native process that answers [reply-to][payload] with the payload, opens a stream of
/// "from native" x 1000 back on `stream-me`, and counts the bytes of streams opened to it.
fn native_peer() {
    loop {
        match rusm_otp::receive() {
            Received::Message(m) => {
                let Some(b) = m.as_bytes() else { continue };
                let to = Pid::from_u64(u64::from_le_bytes(b[..8].try_into().unwrap()));
                if &b[8..] == b"stream-me" {
                    let mut w = stream::open(to).unwrap();
                    w.write_all(&b"from native".repeat(1000)).unwrap();
                    w.close();
                } else {
                    rusm_otp::send(to, b[8..].to_vec());
                }
            }
            Received::Stream(mut r) => {
                let mut all = Vec::new();
                r.read_to_end(&mut all).unwrap();
                let from = r.from();
                rusm_otp::send(from, format!("got {}", all.len()).into_bytes());
            }
            _ => {}
        }
    }
}

#[test]
fn a_component_runs_and_is_reaped() {
    let (node, host, _) = setup();
    let noop = load(&host, "noop");
    // More spawns than pool slots: each exit gives its instance back.
    for _ in 0..300 {
        assert_eq!(run_to_exit(&node, &host, &noop, WasmOpts::default()), ExitReason::Normal);
    }
    // A process whose `Down` has gone out may still be leaving the table (Erlang's
    // `processes()` lists exiting processes too): wait for the last one to go.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let live = loop {
        let live = node.run(rusm_otp::processes).unwrap();
        if live.len() == 1 || std::time::Instant::now() > deadline {
            break live;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(live.len(), 1, "only the asking process is left: {live:?}");
    node.shutdown();
}

#[test]
fn every_actor_and_streams_function_against_native_processes() {
    let (node, host, logs) = setup();
    load(&host, "roles");
    load(&host, "noop");
    let h = host.clone();
    let (reason, msg) = node
        .run(move || {
            let peer = rusm_otp::spawn(native_peer).unwrap();
            let d = spawn_role(&h, "drive", SpawnOpts { monitor: true, ..SpawnOpts::default() });
            rusm_otp::send(d, pid_bytes(&[rusm_otp::self_pid(), peer]));
            let msg = match rusm_otp::receive_match(
                |r| matches!(r, Received::Message(_) | Received::Down { .. }),
                Some(Duration::from_secs(30)),
            ) {
                Received::Message(m) => String::from_utf8(m.as_bytes().unwrap().to_vec()).unwrap(),
                Received::Down { reason, .. } => format!("driver ended first: {reason}"),
                other => panic!("{other:?}"),
            };
            (wait_down(d), msg)
        })
        .unwrap();
    let printed: Vec<String> = logs.lock().unwrap().iter().map(|(_, _, l)| l.clone()).collect();
    assert_eq!(msg, "drive ok", "guest output: {printed:?}");
    assert_eq!(reason, ExitReason::Normal);
    node.shutdown();
}

#[test]
fn component_to_component_request_reply_through_the_registry() {
    let (node, host, _) = setup();
    load(&host, "roles");
    let h = host.clone();
    let got = node
        .run(move || {
            let server = spawn_role(&h, "serve echo-server", SpawnOpts::default());
            let client = spawn_role(&h, "client echo-server 1000", SpawnOpts::default());
            rusm_otp::send(client, pid_bytes(&[rusm_otp::self_pid()]));
            let r = recv_bytes(Duration::from_secs(30));
            assert_eq!(rusm_otp::whereis("echo-server"), Some(server));
            rusm_otp::kill(server);
            r
        })
        .unwrap();
    assert_eq!(String::from_utf8(got).unwrap(), "client ok 1000");
    node.shutdown();
}

/// A supervisor of three `serve` components; crashing the middle one (a trap on the
/// request `crash`) restarts per `strategy`. Returns which children got new pids.
fn crash_the_middle_child(strategy: Strategy) -> [bool; 3] {
    let (node, host, _) = setup();
    load(&host, "roles");
    let h = host.clone();
    let changed = node
        .run(move || {
            let mut spec = SupervisorSpec::new(strategy).intensity(5, Duration::from_secs(5));
            for id in ["a", "b", "c"] {
                let h = h.clone();
                spec = spec.child(ChildSpec::start_with(id, Restart::Permanent, move |opts| {
                    let art = h.artifact("roles").ok_or("roles not loaded")?;
                    let s = h.spawn_here(&art, WasmOpts { spawn: opts, ..WasmOpts::default() }).map_err(|e| e.to_string())?;
                    rusm_otp::send(s.pid, b"serve".to_vec());
                    Ok(s.pid)
                }));
            }
            let sup = supervisor::start_link(spec).unwrap();
            let before: Vec<Pid> = supervisor::which_children(sup).unwrap().into_iter().map(|(_, p)| p.unwrap()).collect();
            // Each child answers before the crash.
            for p in &before {
                let mut req = rusm_otp::self_pid().to_u64().to_le_bytes().to_vec();
                req.extend_from_slice(b"ping");
                rusm_otp::send(*p, req);
                assert_eq!(recv_bytes(Duration::from_secs(10)), b"ping");
            }
            let m = rusm_otp::monitor(before[1]);
            let mut req = rusm_otp::self_pid().to_u64().to_le_bytes().to_vec();
            req.extend_from_slice(b"crash");
            rusm_otp::send(before[1], req);
            match rusm_otp::receive_match(|r| matches!(r, Received::Down { monitor, .. } if *monitor == m), Some(Duration::from_secs(10))) {
                Received::Down { reason, .. } => assert!(matches!(reason, ExitReason::Crashed(ref w) if w.contains("unreachable")), "{reason}"),
                other => panic!("{other:?}"),
            }
            // Wait until the supervisor has every child running again.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let after = loop {
                let kids = supervisor::which_children(sup).unwrap();
                if kids.iter().all(|(_, p)| p.is_some_and(rusm_otp::is_alive)) && kids[1].1 != Some(before[1]) {
                    break kids.into_iter().map(|(_, p)| p.unwrap()).collect::<Vec<_>>();
                }
                assert!(std::time::Instant::now() < deadline, "children not restarted: {kids:?}");
                rusm_sched::sleep(Duration::from_millis(5));
            };
            // The restarted children answer too.
            for p in &after {
                let mut req = rusm_otp::self_pid().to_u64().to_le_bytes().to_vec();
                req.extend_from_slice(b"again");
                rusm_otp::send(*p, req);
                assert_eq!(recv_bytes(Duration::from_secs(10)), b"again");
            }
            rusm_otp::unlink(sup);
            rusm_otp::exit(sup, ExitReason::Shutdown);
            [before[0] != after[0], before[1] != after[1], before[2] != after[2]]
        })
        .unwrap();
    node.shutdown();
    changed
}

#[test]
fn a_supervised_component_crashes_and_is_restarted_per_strategy() {
    assert_eq!(crash_the_middle_child(Strategy::OneForOne), [false, true, false]);
    assert_eq!(crash_the_middle_child(Strategy::OneForAll), [true, true, true]);
    assert_eq!(crash_the_middle_child(Strategy::RestForOne), [false, true, true]);
}

#[test]
fn a_component_a_wasip1_module_and_a_native_process_in_one_ring() {
    let (node, host, _) = setup();
    load(&host, "roles");
    let fwd = load_wat(&host, "forward");
    let h = host.clone();
    let laps = node
        .run(move || {
            let me = rusm_otp::self_pid();
            // native -> component -> wasip1 -> native; the native member counts laps.
            let native = rusm_otp::spawn(move || {
                let Received::Message(m) = rusm_otp::receive() else { panic!() };
                let next = Pid::from_u64(u64::from_le_bytes(m.as_bytes().unwrap()[..8].try_into().unwrap()));
                let mut laps = 0u32;
                loop {
                    let Received::Message(m) = rusm_otp::receive() else { continue };
                    laps += 1;
                    if laps == 100 {
                        rusm_otp::send(me, format!("laps {laps}").into_bytes());
                        return;
                    }
                    rusm_otp::send(next, m);
                }
            })
            .unwrap();
            let module = h.spawn_here(&fwd, WasmOpts::default()).unwrap().pid;
            rusm_otp::send(module, pid_bytes(&[native]));
            let comp = spawn_role(&h, "forward", SpawnOpts::default());
            rusm_otp::send(comp, pid_bytes(&[module]));
            rusm_otp::send(native, pid_bytes(&[comp]));
            rusm_otp::send(comp, b"token".to_vec());
            let r = recv_bytes(Duration::from_secs(30));
            rusm_otp::kill(module);
            rusm_otp::kill(comp);
            r
        })
        .unwrap();
    assert_eq!(String::from_utf8(laps).unwrap(), "laps 100");
    node.shutdown();
}

#[test]
fn a_p3_guest_uses_a_p3_clock_and_streams_bytes_to_a_native_process() {
    let (node, host, logs) = setup();
    let p3 = load(&host, "p3");
    let h = host.clone();
    let (msg, reason) = node
        .run(move || {
            let peer = rusm_otp::spawn(native_peer).unwrap();
            let s = h.spawn_here(&p3, WasmOpts { spawn: SpawnOpts { monitor: true, ..SpawnOpts::default() }, ..WasmOpts::default() }).unwrap();
            rusm_otp::send(s.pid, pid_bytes(&[rusm_otp::self_pid(), peer]));
            let msg = match rusm_otp::receive_match(
                |r| matches!(r, Received::Message(_) | Received::Down { .. }),
                Some(Duration::from_secs(30)),
            ) {
                Received::Message(m) => String::from_utf8(m.as_bytes().unwrap().to_vec()).unwrap(),
                Received::Down { reason, .. } => format!("the p3 guest ended first: {reason}"),
                other => panic!("{other:?}"),
            };
            (msg, wait_down(s.pid))
        })
        .unwrap();
    let printed: Vec<String> = logs.lock().unwrap().iter().map(|(_, _, l)| l.clone()).collect();
    assert!(msg.starts_with("p3 ok waited "), "{msg}; guest output: {printed:?}");
    assert_eq!(reason, ExitReason::Normal);
    node.shutdown();
}

#[test]
fn a_p3_task_awaits_its_mailbox_while_another_task_runs_and_is_killable_there() {
    let (node, host, _) = setup();
    let art = load(&host, "p3mail");
    let h = host.clone();
    let (got, p) = node
        .run(move || {
            let s = h.spawn_here(&art, WasmOpts::default()).unwrap();
            rusm_otp::send(s.pid, pid_bytes(&[rusm_otp::self_pid()]));
            let mut got = Vec::new();
            // The three ticks come from one task while another waits in
            // `mailbox.receive-match` for `ping` (a sync receive would hold them up).
            for _ in 0..3 {
                got.push(String::from_utf8(recv_bytes(Duration::from_secs(10))).unwrap());
            }
            rusm_otp::send(s.pid, b"ping".to_vec());
            got.push(String::from_utf8(recv_bytes(Duration::from_secs(10))).unwrap());
            got.push(String::from_utf8(recv_bytes(Duration::from_secs(10))).unwrap());
            (got, s.pid)
        })
        .unwrap();
    assert_eq!(got, ["tick", "tick", "tick", "pong", "timeout"]);
    // Now parked in `mailbox.receive`: waiting, and a kill lands at once.
    wait_until_waiting(&node, p);
    assert_killed_promptly(&node, p);
    node.shutdown();
}

#[test]
fn a_stock_wasi_cli_command_runs_as_a_process() {
    let (node, host, logs) = setup();
    let cmd = load(&host, "command");
    let ok = run_to_exit(&node, &host, &cmd, WasmOpts { caps: Caps::sandboxed().args(["0", "hello"]), ..WasmOpts::default() });
    assert_eq!(ok, ExitReason::Normal);
    // WASI 0.2's `exit` carries only ok or err: any failing status is 1.
    let failed = run_to_exit(&node, &host, &cmd, WasmOpts { caps: Caps::sandboxed().args(["3"]), ..WasmOpts::default() });
    assert_eq!(failed, ExitReason::Other("exit status 1".into()));
    let lines: Vec<_> = logs.lock().unwrap().iter().filter(|(_, s, _)| *s == LogStream::Stdout).map(|(_, _, l)| l.clone()).collect();
    assert!(lines.contains(&"command says 0 hello".to_owned()), "{lines:?}");
    node.shutdown();
}

#[test]
fn component_misbehaviour_is_a_crash_and_the_host_goes_on() {
    let (node, host, _) = setup();
    load(&host, "roles");
    let h = host.clone();
    let reasons = node
        .run(move || {
            ["trap", "bad-handle", "grow"]
                .iter()
                .map(|role| {
                    let caps = Caps::sandboxed().memory_cap(8 << 20);
                    let art = h.artifact("roles").unwrap();
                    let s = h
                        .spawn_here(&art, WasmOpts { caps, spawn: SpawnOpts { monitor: true, ..SpawnOpts::default() }, ..WasmOpts::default() })
                        .unwrap();
                    rusm_otp::send(s.pid, role.as_bytes().to_vec());
                    wait_down(s.pid)
                })
                .collect::<Vec<_>>()
        })
        .unwrap();
    assert!(crash_reason(&reasons[0]).contains("unreachable"), "{}", reasons[0]);
    // 0x7ead: a handle index this instance never had.
    assert!(crash_reason(&reasons[1]).contains("unknown handle index 32429"), "{}", reasons[1]);
    let grow = crash_reason(&reasons[2]);
    assert!(grow.contains("memory cap exceeded") && grow.contains("8388608"), "{grow}");
    // The host goes on: a well-behaved component still runs.
    let noop = load(&host, "noop");
    assert_eq!(run_to_exit(&node, &host, &noop, WasmOpts::default()), ExitReason::Normal);
    node.shutdown();
}

#[test]
fn a_spinning_component_is_preempted_and_killable() {
    let (node, host, _) = setup();
    load(&host, "roles");
    let h = host.clone();
    let spinners: Vec<Pid> = node.run(move || (0..4).map(|_| spawn_role(&h, "spin", SpawnOpts::default())).collect()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let noop = load(&host, "noop");
    assert_eq!(run_to_exit(&node, &host, &noop, WasmOpts::default()), ExitReason::Normal);
    for p in spinners {
        assert!(node.is_alive(p));
        assert_killed_promptly(&node, p);
    }
    node.shutdown();
}

#[test]
fn a_component_parked_in_receive_is_waiting_and_killable() {
    let (node, host, _) = setup();
    load(&host, "roles");
    let h = host.clone();
    let p = node.run(move || spawn_role(&h, "park", SpawnOpts::default())).unwrap();
    wait_until_waiting(&node, p);
    let (reason, _) = kill_and_wait(&node, p);
    assert_eq!(reason, ExitReason::Killed);
    node.shutdown();
}

#[test]
fn a_component_loads_from_the_cache_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    let (node, host, _) = setup_with(|c| c.cache_dir = Some(d));
    let first = host.load("noop", &component("noop")).unwrap();
    assert_eq!(first.cache_outcome(), rusm_wasm::CacheOutcome::Miss);
    let second = host.load("noop", &component("noop")).unwrap();
    assert_eq!(second.cache_outcome(), rusm_wasm::CacheOutcome::Hit);
    assert_eq!(run_to_exit(&node, &host, &second, WasmOpts::default()), ExitReason::Normal);
    node.shutdown();
}

#[test]
fn a_p3_guest_blocked_on_a_full_stream_is_killable_and_its_reader_sees_an_abort() {
    let (node, host, _) = setup();
    let p3 = load(&host, "p3");
    let h = host.clone();
    let (reason, took, read) = node
        .run(move || {
            let me = rusm_otp::self_pid();
            // A peer that takes the stream and reads nothing until told to.
            let peer = rusm_otp::spawn(move || {
                let Received::Stream(mut r) = rusm_otp::receive_match(|r| matches!(r, Received::Stream(_)), None) else { panic!() };
                let _ = rusm_otp::receive_match(|r| matches!(r, Received::Message(_)), None);
                let mut all = Vec::new();
                let e = r.read_to_end(&mut all).unwrap_err();
                rusm_otp::send(me, format!("{} {:?}", all.len(), e.kind()).into_bytes());
            })
            .unwrap();
            let s = h.spawn_here(&p3, WasmOpts::default()).unwrap();
            rusm_otp::send(s.pid, pid_bytes(&[me, peer]));
            // Its write_all of 200,000 bytes parks once the 64 KiB pipe is full.
            rusm_sched::sleep(Duration::from_millis(300));
            assert!(rusm_otp::is_alive(s.pid));
            rusm_otp::monitor(s.pid);
            let t = std::time::Instant::now();
            rusm_otp::kill(s.pid);
            let reason = wait_down(s.pid);
            let took = t.elapsed();
            rusm_otp::send(peer, b"read now".to_vec());
            (reason, took, String::from_utf8(recv_bytes(Duration::from_secs(10))).unwrap())
        })
        .unwrap();
    assert_eq!(reason, ExitReason::Killed);
    assert!(took < Duration::from_secs(2), "kill took {took:?}");
    let (n, kind) = read.split_once(' ').unwrap();
    assert!(n.parse::<usize>().unwrap() < 200_000, "{read}");
    assert_eq!(kind, "ConnectionAborted", "{read}");
    node.shutdown();
}

#[test]
fn std_sleep_in_a_component_parks_on_rusm_timers_and_is_killable() {
    let (node, host, _) = setup();
    load(&host, "roles");
    let h = host.clone();
    let (slept, reason) = node
        .run(move || {
            let me = rusm_otp::self_pid();
            let p = spawn_role(&h, "std-sleep 20", SpawnOpts { monitor: true, ..SpawnOpts::default() });
            rusm_otp::send(p, pid_bytes(&[me]));
            let slept = String::from_utf8(recv_bytes(Duration::from_secs(10))).unwrap();
            (slept, wait_down(p))
        })
        .unwrap();
    let ms: u64 = slept.strip_prefix("slept ").unwrap().parse().unwrap();
    assert!(ms >= 20, "{slept}");
    assert_eq!(reason, ExitReason::Normal);
    // A long sleep is a park: a kill lands at once.
    let h = host.clone();
    let p = node.run(move || {
        let p = spawn_role(&h, "std-sleep 600000", SpawnOpts::default());
        rusm_otp::send(p, pid_bytes(&[rusm_otp::self_pid()]));
        p
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_killed_promptly(&node, p);
    node.shutdown();
}
