//! Guest containment (docs/SECURITY.md): each row of the table there and each quota, hit
//! by a guest that misbehaves on purpose (`fixtures/probe.wat`), with the status it sees,
//! the rest of the node unaffected, and every resource back afterwards.

use std::time::{Duration, Instant};

use rusm_otp::{Message, Node, Pid, Realm, Received};
use rusm_wasm::abi::{DENIED, LIMIT, NOPROC, NOT_FOUND, OK, TAKEN};
use rusm_wasm::{Caps, Host, Quotas, SpawnError, WasmOpts};

use crate::common::*;

/// The probe's commands (see the fixture's header).
const KILL: i32 = 1;
const EXIT: i32 = 2;
const LINK: i32 = 3;
const INFO: i32 = 4;
const LIST: i32 = 5;
const REGISTER: i32 = 6;
const UNREGISTER: i32 = 7;
const SEND_AFTER: i32 = 8;
const SLEEP: i32 = 9;
const IS_ALIVE: i32 = 10;
const MONITOR: i32 = 11;
const FLOOD: i32 = 12;
const STREAMS: i32 = 13;
const TIMERS: i32 = 14;
const SPAWN_PARKED: i32 = 15;
const TRAP_EXIT: i32 = 16;
const BOMB: i32 = 17;

fn command(op: i32, target: Pid, arg: i64) -> Vec<u8> {
    let mut m = vec![0u8; 32];
    m[0..4].copy_from_slice(&op.to_le_bytes());
    m[8..16].copy_from_slice(&target.to_u64().to_le_bytes());
    m[16..24].copy_from_slice(&rusm_otp::self_pid().to_u64().to_le_bytes());
    m[24..32].copy_from_slice(&arg.to_le_bytes());
    m
}

/// Inside a process: has `probe` do `op` and returns its answer (or panics with the
/// probe's exit reason if it ends instead).
fn ask(probe: Pid, op: i32, target: Pid, arg: i64) -> i64 {
    let m = rusm_otp::monitor(probe);
    rusm_otp::send(probe, command(op, target, arg));
    let got = rusm_otp::receive_match(
        |r| matches!(r, Received::Message(Message::Bytes(b)) if b.len() == 8) || matches!(r, Received::Down { monitor, .. } if *monitor == m),
        Some(Duration::from_secs(20)),
    );
    rusm_otp::demonitor(m, true);
    match got {
        Received::Message(Message::Bytes(b)) => i64::from_le_bytes(b[..8].try_into().unwrap()),
        other => panic!("the probe did not answer op {op}: {other:?}"),
    }
}

/// A loop command's answer: (calls that returned OK, the status that stopped it).
fn tally(r: i64) -> (i64, i32) {
    (r >> 8, (r & 0xff) as i32)
}

struct World {
    node: Node,
    host: Host,
}

fn world() -> World {
    let (node, host, _) = setup();
    for name in ["probe", "parked"] {
        load_wat(&host, name);
    }
    World { node, host }
}

impl World {
    fn spawn(&self, name: &str, caps: Caps) -> Pid {
        let art = self.host.artifact(name).expect("loaded");
        self.host.spawn(&self.node, &art, WasmOpts { caps, ..WasmOpts::default() }).expect("spawn")
    }

    /// A native service, as an embedder's: waits for ever.
    fn service(&self) -> Pid {
        self.node.spawn(|| loop {
            rusm_otp::receive();
        })
        .expect("spawn")
    }

    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.node.run(f).expect("the asking process")
    }

    /// Waits (10 s at most) until `done` holds.
    fn eventually(&self, what: &str, mut done: impl FnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < end, "{what}: not within 10 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn sandboxed_signals_links_and_inspects_only_its_own_app() {
    let w = world();
    let app = Realm::fresh();
    let probe = w.spawn("probe", Caps::sandboxed().app(app));
    let sibling = w.spawn("parked", Caps::sandboxed().app(app));
    let stranger = w.spawn("parked", Caps::sandboxed());
    let service = w.service();
    let (p, s, x, n) = (probe, sibling, stranger, service);
    let answers = w.run(move || {
        [
            ask(p, KILL, n, 0),
            ask(p, KILL, x, 0),
            ask(p, EXIT, n, 0),
            ask(p, LINK, n, 0),
            ask(p, LINK, x, 0),
            ask(p, INFO, n, 0),
            ask(p, INFO, x, 0),
            ask(p, LIST, n, 0),
            ask(p, INFO, s, 0),
            ask(p, LINK, s, 0),
            // Trapping (it was not: 0), so the sibling's exit over the link is a message.
            ask(p, TRAP_EXIT, s, 1),
            ask(p, EXIT, s, 0),
        ]
    });
    let d = i64::from(DENIED);
    let ok = i64::from(OK);
    assert_eq!(&answers[..7], &[d, d, d, d, d, d, d], "kill/exit/link/info outside the app");
    assert_eq!(answers[7], 2, "list_processes sees the probe and its sibling only");
    assert_eq!(&answers[8..], &[ok, ok, 0, ok], "info/link/exit inside the app");
    // The service and the stranger are untouched; the sibling took the exit.
    assert!(w.node.is_alive(service) && w.node.is_alive(stranger));
    assert!(w.node.await_exit(sibling, Duration::from_secs(5)).is_some());
}

#[test]
fn holding_a_pid_is_enough_to_send_to_it_monitor_it_and_see_it_alive() {
    let w = world();
    let probe = w.spawn("probe", Caps::sandboxed());
    let service = w.service();
    let (alive, monitor) = w.run(move || (ask(probe, IS_ALIVE, service, 0), ask(probe, MONITOR, service, 0)));
    assert_eq!(alive, 1);
    assert!(monitor > 0, "a monitor reference");
}

#[test]
fn trusted_reaches_every_process() {
    let w = world();
    let probe = w.spawn("probe", Caps::trusted());
    let service = w.service();
    let n = w.node.processes().len() as i64;
    let (info, list, kill) = w.run(move || (ask(probe, INFO, service, 0), ask(probe, LIST, service, 0), ask(probe, KILL, service, 0)));
    assert_eq!(info, i64::from(OK));
    assert!(list >= n, "a trusted guest lists the node ({list} of {n})");
    assert_eq!(kill, i64::from(OK));
    assert!(w.node.await_exit(service, Duration::from_secs(5)).is_some());
}

#[test]
fn names_register_free_and_unregister_only_within_the_app() {
    let w = world();
    let probe = w.spawn("probe", Caps::sandboxed());
    let other = w.spawn("probe", Caps::sandboxed());
    let service = w.service();
    let r = w.run(move || {
        [
            ask(probe, REGISTER, service, 0),
            ask(probe, REGISTER, probe, 0),
            ask(other, REGISTER, other, 0),
            ask(other, UNREGISTER, other, 0),
            ask(probe, UNREGISTER, probe, 0),
            ask(probe, UNREGISTER, probe, 0),
        ]
    });
    assert_eq!(r, [DENIED, OK, TAKEN, DENIED, OK, NOT_FOUND].map(i64::from));
    assert_eq!(w.node.whereis("svc"), None);
}

#[test]
fn a_dead_target_is_noproc_under_every_profile() {
    let w = world();
    let probe = w.spawn("probe", Caps::sandboxed());
    let dead = w.service();
    w.node.exit(dead, rusm_otp::ExitReason::Kill);
    w.node.await_exit(dead, Duration::from_secs(5));
    let r = w.run(move || [ask(probe, KILL, dead, 0), ask(probe, INFO, dead, 0)]);
    assert_eq!(r, [NOPROC, NOPROC].map(i64::from));
}

fn small(q: impl FnOnce(&mut Quotas)) -> Caps {
    let mut quotas = Quotas::default();
    q(&mut quotas);
    Caps::sandboxed().quotas(quotas)
}

#[test]
fn a_full_guest_mailbox_refuses_the_sender_and_the_flooded_guest_lives() {
    let w = world();
    // 1 MiB: 17 messages of 60 000 bytes (+64 each) fit.
    let target = w.spawn("parked", small(|q| q.mailbox_bytes = 1 << 20));
    let probe = w.spawn("probe", Caps::sandboxed());
    let r = w.run(move || tally(ask(probe, FLOOD, target, 100)));
    if r != (17, LIMIT) {
        panic!("{r:?}: target {:?}", w.node.await_exit(target, Duration::from_millis(100)));
    }
    let info = w.node.info(target).expect("the flooded guest lives");
    assert!(info.mailbox_bytes.unwrap() <= 1 << 20, "{:?}", info.mailbox_bytes);
    // Flooding itself, a guest only gets its own refusal.
    let selfish = w.spawn("probe", small(|q| q.mailbox_bytes = 1 << 20));
    let r = w.run(move || tally(ask(selfish, FLOOD, selfish, 100)));
    assert_eq!(r, (17, LIMIT), "its command was taken before it floods");
    // A native sender's flood is dropped, not fatal.
    w.run(move || {
        for _ in 0..100 {
            rusm_otp::send(target, vec![0u8; 60_000]);
        }
    });
    assert!(w.node.is_alive(target));
}

#[test]
fn children_inherit_the_bounded_mailbox() {
    let w = world();
    let probe = w.spawn("probe", small(|q| q.mailbox_bytes = 1 << 20));
    let child = w.run(move || {
        assert_eq!(ask(probe, SPAWN_PARKED, probe, 1), 1 << 8);
        rusm_otp::processes_in(rusm_otp::realm_of(probe).unwrap()).into_iter().find(|&p| p != probe).unwrap()
    });
    let info = w.node.info(child).expect("the child");
    assert_eq!(info.mailbox_bytes, Some(0), "a byte bound is kept");
    let probe2 = w.spawn("probe", Caps::sandboxed());
    let r = w.run(move || tally(ask(probe2, FLOOD, child, 100)));
    assert_eq!(r, (17, LIMIT));
}

#[test]
fn timers_are_bounded_and_end_with_their_guest() {
    let w = world();
    let target = w.service();
    let before = w.node.handle().pending_timers();
    let probe = w.spawn("probe", small(|q| q.timers = 10));
    let r = w.run(move || tally(ask(probe, TIMERS, target, 100)));
    assert_eq!(r, (10, LIMIT));
    assert_eq!(w.node.handle().pending_timers(), before + 10);
    // Bytes too: 1000-byte messages, 5 KiB.
    let probe2 = w.spawn("probe", small(|q| q.timer_bytes = 5 << 10));
    let r = w.run(move || tally(ask(probe2, TIMERS, target, 100)));
    assert_eq!(r, (4, LIMIT), "4 x (1000 + 64) bytes fit in 5 KiB");
    // The guests end: their timers with them.
    w.node.exit(probe, rusm_otp::ExitReason::Kill);
    w.node.exit(probe2, rusm_otp::ExitReason::Kill);
    w.eventually("the guests' timers cancelled", || w.node.handle().pending_timers() == before);
    assert!(w.node.is_alive(target));
}

#[test]
fn a_timer_to_a_dead_pid_is_never_set_and_one_to_a_pid_that_dies_is_cancelled() {
    let w = world();
    let before = w.node.handle().pending_timers();
    let probe = w.spawn("probe", Caps::sandboxed());
    let dead = w.service();
    w.node.exit(dead, rusm_otp::ExitReason::Kill);
    w.node.await_exit(dead, Duration::from_secs(5));
    let id = w.run(move || ask(probe, SEND_AFTER, dead, 3_600_000));
    assert!(id > 0);
    assert_eq!(w.node.handle().pending_timers(), before, "nothing set for a dead pid");
    let target = w.service();
    w.run(move || ask(probe, SEND_AFTER, target, 3_600_000));
    assert_eq!(w.node.handle().pending_timers(), before + 1);
    w.node.exit(target, rusm_otp::ExitReason::Kill);
    w.eventually("the timer cancelled with its destination", || w.node.handle().pending_timers() == before);
    assert!(w.node.is_alive(probe));
}

/// Worker polls over `d`: what a process that waits costs.
fn polls_over(node: &Node, d: Duration) -> u64 {
    let sum = |n: &Node| n.handle().counters().workers.iter().map(|w| w.polls).sum::<u64>();
    let a = sum(node);
    std::thread::sleep(d);
    sum(node) - a
}

#[test]
fn sleep_and_send_after_at_the_extremes_wait_for_ever_at_no_cost() {
    let w = world();
    let before = w.node.handle().pending_timers();
    let probe = w.spawn("probe", Caps::sandboxed());
    // send_after(i64::MAX ms): never, and no wheel entry.
    let got = w.run(move || {
        ask(probe, SEND_AFTER, rusm_otp::self_pid(), i64::MAX);
        rusm_otp::receive_timeout(Duration::from_millis(300))
    });
    assert!(matches!(got, Received::Timeout), "{got:?}");
    assert_eq!(w.node.handle().pending_timers(), before);
    // sleep(i64::MAX ms): waiting, no timer, no polls.
    let me = w.node.spawn(move || rusm_otp::send(probe, command(SLEEP, probe, i64::MAX))).unwrap();
    let _ = me;
    wait_until_waiting(&w.node, probe);
    std::thread::sleep(Duration::from_millis(50));
    let polls = polls_over(&w.node, Duration::from_millis(500));
    assert!(polls < 200, "{polls} polls in 500 ms while the guest sleeps for ever");
    assert_eq!(w.node.handle().pending_timers(), before);
    let (r, took) = kill_and_wait(&w.node, probe);
    assert_eq!(r, rusm_otp::ExitReason::Killed);
    assert!(took < Duration::from_secs(2));
}

#[test]
fn stream_handles_are_bounded() {
    let w = world();
    let target = w.spawn("parked", Caps::sandboxed());
    let probe = w.spawn("probe", small(|q| q.streams = 8));
    let r = w.run(move || tally(ask(probe, STREAMS, target, 100)));
    assert_eq!(r, (8, LIMIT));
    // A receiver whose mailbox is full refuses streams too.
    let full = w.spawn("parked", small(|q| q.mailbox_bytes = 200 << 10));
    let probe2 = w.spawn("probe", Caps::sandboxed());
    let r = w.run(move || tally(ask(probe2, STREAMS, full, 100)));
    assert_eq!(r, (3, LIMIT), "three 64 KiB pipes fit in 200 KiB");
}

#[test]
fn an_app_holds_at_most_its_quota_of_processes_and_other_apps_still_spawn() {
    let w = world();
    let probe = w.spawn("probe", small(|q| q.processes = 5));
    let r = w.run(move || tally(ask(probe, SPAWN_PARKED, probe, 100)));
    assert_eq!(r, (4, LIMIT), "the probe and 4 children");
    // Children outlive their spawner and stay charged to the app.
    let realm = w.run(move || rusm_otp::realm_of(probe).unwrap());
    let other = w.spawn("probe", Caps::sandboxed());
    assert_eq!(w.run(move || tally(ask(other, SPAWN_PARKED, other, 3))), (3, 0));
    w.node.exit(probe, rusm_otp::ExitReason::Kill);
    w.eventually("the linked children end with the probe", || w.run(move || rusm_otp::processes_in(realm)).is_empty());
}

#[test]
fn a_full_pool_is_a_spawn_error_not_a_crash() {
    let (node, host, _) = setup_with(|c| c.instances = 6);
    let parked = load_wat(&host, "parked");
    let pids: Vec<Pid> = (0..6).map(|_| host.spawn(&node, &parked, WasmOpts::default()).expect("room")).collect();
    match host.spawn(&node, &parked, WasmOpts::default()) {
        Err(SpawnError::Limit(6)) => {}
        other => panic!("expected the pool limit, got {other:?}"),
    }
    for p in &pids {
        node.exit(*p, rusm_otp::ExitReason::Kill);
    }
    let end = Instant::now() + Duration::from_secs(10);
    while host.live_guests() != 0 {
        assert!(Instant::now() < end, "slots not returned");
        std::thread::sleep(Duration::from_millis(5));
    }
    host.spawn(&node, &parked, WasmOpts::default()).expect("room again");
}

#[test]
fn a_linked_spawn_bomb_stops_when_its_root_is_killed() {
    let w = world();
    // Fewer processes than the pool's 64 async stacks: past those, an instantiation
    // fails, the crash runs up the links, and the bomb would end by itself.
    let root = w.spawn("probe", small(|q| q.processes = 40));
    let realm = w.run(move || rusm_otp::realm_of(root).unwrap());
    w.node.send(root, {
        let mut m = vec![0u8; 32];
        m[0..4].copy_from_slice(&BOMB.to_le_bytes());
        m
    });
    std::thread::sleep(Duration::from_millis(500));
    let grown = w.run(move || rusm_otp::processes_in(realm).len());
    assert!(grown > 1, "the bomb went off ({grown})");
    let t = Instant::now();
    w.node.exit(root, rusm_otp::ExitReason::Kill);
    w.eventually("the bomb's processes gone", || w.run(move || rusm_otp::processes_in(realm)).is_empty());
    w.eventually("the bomb's pool slots returned", || w.host.live_guests() == 0);
    eprintln!("bomb of {grown}+ processes gone {:?} after its root was killed", t.elapsed());
    // The node goes on.
    let probe = w.spawn("probe", Caps::sandboxed());
    assert_eq!(w.run(move || ask(probe, IS_ALIVE, probe, 0)), 1);
}

// ---- The same rules through the WIT world (components) ----

/// Spawns the `roles` component with `role`, then [test pid] + `extra` as its second
/// message, and returns the text it answers.
fn role_answer(w: &World, role: &str, caps: Caps, extra: Vec<Pid>) -> (Pid, String) {
    let art = w.host.load("roles", &rusm_wasm::testing::component("roles")).expect("roles loads");
    let pid = w.host.spawn(&w.node, &art, WasmOpts { caps, ..WasmOpts::default() }).expect("spawn");
    let role = role.to_owned();
    let text = w.run(move || {
        rusm_otp::send(pid, role.into_bytes());
        let mut m = rusm_otp::self_pid().to_u64().to_le_bytes().to_vec();
        for p in extra {
            m.extend_from_slice(&p.to_u64().to_le_bytes());
        }
        rusm_otp::send(pid, m);
        match rusm_otp::receive_timeout(Duration::from_secs(20)) {
            Received::Message(Message::Bytes(b)) => String::from_utf8(b).unwrap(),
            other => panic!("no answer from the component: {other:?}"),
        }
    });
    (pid, text)
}

#[test]
fn a_sandboxed_component_reaches_only_its_own_app() {
    let w = world();
    let service = w.service();
    let (_, text) = role_answer(&w, "reach", Caps::sandboxed(), vec![service]);
    assert_eq!(text, "info=denied link=denied kill=denied list=1");
    assert!(w.node.is_alive(service));
    let (_, text) = role_answer(&w, "reach", Caps::trusted(), vec![service]);
    assert!(text.starts_with("info=ok link=ok kill=ok list="), "{text}");
}

#[test]
fn component_timer_and_sleep_extremes_wait_for_ever_at_no_cost() {
    let w = world();
    let before = w.node.handle().pending_timers();
    let (pid, text) = role_answer(&w, "extremes", Caps::sandboxed(), vec![]);
    assert_eq!(text, "timer true");
    wait_until_waiting(&w.node, pid);
    std::thread::sleep(Duration::from_millis(50));
    let polls = polls_over(&w.node, Duration::from_millis(500));
    assert!(polls < 200, "{polls} polls in 500 ms while the component sleeps for ever");
    assert_eq!(w.node.handle().pending_timers(), before, "neither the timer nor the sleep is on the wheel");
    assert_eq!(kill_and_wait(&w.node, pid).0, rusm_otp::ExitReason::Killed);
}

/// A loopback TCP server that accepts one connection and returns what it read, and a
/// UDP socket; their addresses.
fn loopback_servers() -> (std::net::SocketAddr, std::sync::mpsc::Receiver<Vec<u8>>, std::net::UdpSocket) {
    use std::io::Read as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
            let _ = tx.send(buf);
        }
    });
    let udp = std::net::UdpSocket::bind(addr).unwrap_or_else(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
    (addr, rx, udp)
}

#[test]
fn network_client_connects_out_and_never_listens() {
    let w = world();
    let (addr, got, _udp) = loopback_servers();
    let (_, text) = role_answer(&w, &format!("net {addr}"), Caps::network_client(), vec![]);
    assert_eq!(text, "connect=ok listen=err:PermissionDenied udp=ok");
    assert_eq!(got.recv_timeout(Duration::from_secs(10)).unwrap(), b"hi");
}

#[test]
fn the_allow_list_limits_where_network_client_connects() {
    let w = world();
    let (addr, got, _udp) = loopback_servers();
    let allowed = Caps::network_client().allow_hosts([format!("127.0.0.1:{}", addr.port())]).unwrap();
    let (_, text) = role_answer(&w, &format!("net {addr}"), allowed, vec![]);
    assert_eq!(text, "connect=ok listen=err:PermissionDenied udp=ok");
    assert_eq!(got.recv_timeout(Duration::from_secs(10)).unwrap(), b"hi");
    let (addr2, got2, _udp2) = loopback_servers();
    let elsewhere = Caps::network_client().allow_hosts(["127.0.0.1:1"]).unwrap();
    let (_, text) = role_answer(&w, &format!("net {addr2}"), elsewhere, vec![]);
    assert_eq!(text, "connect=err:PermissionDenied listen=err:PermissionDenied udp=err:PermissionDenied");
    assert!(got2.recv_timeout(Duration::from_millis(200)).is_err(), "nothing reached the server");
}

#[test]
fn sandboxed_has_no_network() {
    let w = world();
    let (addr, got, _udp) = loopback_servers();
    let (_, text) = role_answer(&w, &format!("net {addr}"), Caps::sandboxed(), vec![]);
    assert!(text.starts_with("connect=err:") && !text.contains("=ok"), "{text}");
    assert!(got.recv_timeout(Duration::from_millis(200)).is_err(), "nothing reached the server");
}

#[test]
fn trusted_may_listen() {
    let w = world();
    let (addr, _got, _udp) = loopback_servers();
    let (_, text) = role_answer(&w, &format!("net {addr}"), Caps::trusted(), vec![]);
    assert_eq!(text, "connect=ok listen=ok udp=ok");
}

#[test]
fn text_opening_with_a_block_comment_is_still_a_component() {
    let (_, host, _) = setup();
    let a = host.load("c", b"(; a (; nested ;) comment ;)\n;; a line\n(component)").expect("loads");
    assert_eq!(a.kind(), rusm_wasm::ArtifactKind::Component);
    let m = host.load("m", b"(; a comment ;) (module)").expect("loads");
    assert_eq!(m.kind(), rusm_wasm::ArtifactKind::Module);
}

/// A component exporting two versions of `wasi:cli/run`: `run` of 0.2.0 answers
/// `err`, `run` of 0.2.6 answers `ok`, exported in the order given.
fn two_cli_runs(newest_first: bool) -> String {
    let (first, second) = if newest_first { ("0.2.6", "0.2.0") } else { ("0.2.0", "0.2.6") };
    let inst = |v: &str| if v == "0.2.6" { "$new" } else { "$old" };
    format!(
        r#"(component
  (core module $m
    (func (export "old") (result i32) i32.const 1)
    (func (export "new") (result i32) i32.const 0))
  (core instance $i (instantiate $m))
  (func $old_f (result (result)) (canon lift (core func $i "old")))
  (func $new_f (result (result)) (canon lift (core func $i "new")))
  (instance $old (export "run" (func $old_f)))
  (instance $new (export "run" (func $new_f)))
  (export "wasi:cli/run@{first}" (instance {}))
  (export "wasi:cli/run@{second}" (instance {})))"#,
        inst(first),
        inst(second)
    )
}

#[test]
fn a_command_exporting_two_cli_run_versions_runs_the_newest() {
    let (node, host, _) = setup();
    for newest_first in [true, false] {
        let art = host.load("two-runs", two_cli_runs(newest_first).as_bytes()).expect("loads");
        let reason = run_to_exit(&node, &host, &art, WasmOpts::default());
        assert_eq!(reason, rusm_otp::ExitReason::Normal, "newest first: {newest_first}");
    }
}

/// Answers its first message [reply-to] with [group_members("g") as i64].
const GROUP_COUNT: &str = r#"(module
  (import "rusm" "receive" (func $receive (param i32 i32 i64 i32) (result i32)))
  (import "rusm" "send" (func $send (param i64 i32 i32) (result i32)))
  (import "rusm" "group_members" (func $gm (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "g")
  (func (export "_start")
    (drop (call $receive (i32.const 100) (i32.const 8) (i64.const -1) (i32.const 200)))
    (i64.store (i32.const 300) (i64.extend_i32_u (call $gm (i32.const 0) (i32.const 1) (i32.const 400) (i32.const 16))))
    (drop (call $send (i64.load (i32.const 100)) (i32.const 300) (i32.const 8)))))"#;

#[test]
fn group_members_lists_the_apps_members_unless_trusted() {
    let w = world();
    w.host.load("group-count", GROUP_COUNT.as_bytes()).expect("loads");
    let app = Realm::fresh();
    let (a, b) = (w.spawn("parked", Caps::sandboxed().app(app)), w.spawn("parked", Caps::sandboxed().app(app)));
    let outsider = w.service();
    w.run(move || {
        for p in [a, b, outsider] {
            assert!(rusm_otp::pg::join("g", p));
        }
    });
    for (caps, want) in [(Caps::sandboxed().app(app), 2i64), (Caps::sandboxed(), 0), (Caps::trusted(), 3)] {
        let asker = w.spawn("group-count", caps);
        let got = w.run(move || {
            rusm_otp::send(asker, rusm_otp::self_pid().to_u64().to_le_bytes().to_vec());
            i64::from_le_bytes(recv_bytes(Duration::from_secs(20))[..8].try_into().unwrap())
        });
        assert_eq!(got, want);
    }
}
