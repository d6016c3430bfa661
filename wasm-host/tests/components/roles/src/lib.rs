//! A `rusm:runtime/process` component with one role per first message:
//!
//! - `drive` + [test pid][peer pid]: calls every function of `actor` and `streams` against
//!   a native peer (tests/all/components.rs), asserting each result; sends `drive ok`.
//! - `park`: receives for ever.
//! - `trap`: traps at once. `spin`: loops for ever. `grow`: allocates until the memory
//!   cap stops it. `bad-handle`: writes through a handle it does not own.
//! - `serve <name>`: registers `name`; answers [reply-to][payload] with the payload;
//!   the payload `crash` traps, `stop` returns.
//! - `client <name> <count>` + [test pid]: `count` round trips to `name`, then
//!   `client ok <count>` to the test.
//! - `std-sleep <ms>` + [test pid]: `std::thread::sleep`, then `slept <ms>` to the test.
//! - `forward` + [next pid]: sends every message it gets on to `next`.
//! - `pingpong <name> <count>` + [report pid]: `count` round trips to `name` (a
//!   `serve`), then [count][total ns][every 16th trip's ns...] (u64s) to the report pid.
//! - `signals` + [test pid][peers pid]: the exit-signal rules of issue 11 through the WIT
//!   world (as the wasip1 guest `signals`: a `kill` over a link is trappable, `link` to a
//!   dead pid, `unlink` and `demonitor(flush)` against an exiting peer), then
//!   `signals ok` to the test.
//! - `victim` + [test pid][peers pid]: links to a `kill` peer without trapping exits, lets
//!   it go and waits (it ends with `kill`).
//! - `net <addr>` + [test pid]: TCP connect to `addr` (and writes `hi`), a TCP listen, a
//!   UDP send to `addr`; reports `connect=.. listen=.. udp=..` (`ok` or `err:<kind>`).
//! - `extremes` + [test pid]: `send-after(test, u64::MAX)` (reports `timer true`), then
//!   `sleep(u64::MAX)`.
//! - `reach` + [test pid][target pid]: `info`, `link`, `kill` of the target and a
//!   `list-processes`; reports `info=.. link=.. kill=.. list=N` (`ok`/`denied`/`noproc`).

wit_bindgen::generate!({ path: "../../../../wit", world: "rusm:runtime/process" });

use rusm::runtime::actor::{self, Item, Kinds};
use rusm::runtime::streams;
use rusm::runtime::types::ExitReason;

struct Roles;

fn pid_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn message() -> Vec<u8> {
    loop {
        if let Item::Message(m) = actor::receive() {
            return m;
        }
    }
}

fn with_pid(p: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = p.to_le_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

fn only_messages(tag: &[u8]) -> actor::Filter {
    actor::Filter { kinds: Kinds::MESSAGE, tag: tag.to_vec(), monitor: None }
}

fn expect_message(tag: &[u8]) -> Vec<u8> {
    match actor::receive_match(&only_messages(tag), Some(5000)) {
        Some(Item::Message(m)) => m,
        _ => panic!("no message tagged {:?} within 5 s", String::from_utf8_lossy(tag)),
    }
}

fn down_for(m: u64) -> actor::Down {
    let f = actor::Filter { kinds: Kinds::DOWN, tag: Vec::new(), monitor: Some(m) };
    match actor::receive_match(&f, Some(5000)) {
        Some(Item::Down(d)) => d,
        _ => panic!("no down for monitor {m} within 5 s"),
    }
}

fn spawn_role(role: &[u8], link: bool, monitor: bool) -> actor::Spawned {
    let opts = actor::SpawnOptions { link, monitor, message: Some(role.to_vec()) };
    actor::spawn("roles", &opts).expect("spawn roles")
}

fn drive(setup: &[u8]) {
    let test = pid_at(setup, 0);
    let peer = pid_at(setup, 8);
    let me = actor::self_pid();
    assert_ne!(me, 0);

    // info, list-processes, is-alive
    let info = actor::info(me).expect("info of self");
    assert_eq!(info.pid, me);
    assert_eq!(info.kind, "wasm");
    assert!(matches!(info.status, actor::Status::Running));
    assert!(actor::list_processes().contains(&me));
    assert!(actor::list_processes().contains(&peer));
    assert!(actor::is_alive(peer));

    // send + receive through the native peer
    let _ = actor::send(peer, &with_pid(me, b"hello"));
    assert_eq!(expect_message(b"hello"), b"hello");

    // receive with timeout: nothing there
    assert!(actor::receive_timeout(0).is_none());
    assert!(actor::receive_timeout(10).is_none());

    // selective receive keeps what it skips, in order
    let _ = actor::send(me, b"b:2");
    let _ = actor::send(me, b"a:1");
    let _ = actor::send(me, b"b:3");
    assert_eq!(expect_message(b"a:"), b"a:1");
    assert!(matches!(actor::receive(), Item::Message(m) if m == b"b:2"));
    assert!(matches!(actor::receive(), Item::Message(m) if m == b"b:3"));

    // registry
    assert!(actor::register("drv", me).is_ok());
    assert_eq!(actor::whereis("drv"), Some(me));
    assert!(matches!(actor::register("drv2", me), Err(actor::RegisterError::Taken)));
    assert!(actor::unregister("drv").is_ok());
    assert!(actor::unregister("drv").is_err());
    assert_eq!(actor::whereis("drv"), None);

    // label
    actor::set_label("driver");
    assert_eq!(actor::info(me).expect("info").label.as_deref(), Some("driver"));

    // spawn + monitor: a child that returns exits normal
    let s = actor::spawn("noop", &actor::SpawnOptions { link: false, monitor: true, message: None }).expect("spawn noop");
    let d = down_for(s.monitor.expect("a monitor ref"));
    assert_eq!(d.pid, s.pid);
    assert!(matches!(d.reason, ExitReason::Normal));
    assert!(matches!(actor::spawn("no-such-artifact", &actor::SpawnOptions { link: false, monitor: false, message: None }), Err(actor::SpawnError::NotFound)));

    // a dead pid: monitor gives noproc, is-alive false, info none, kill false
    let dead = s.pid;
    let m = actor::monitor(dead);
    assert!(matches!(down_for(m).reason, ExitReason::Noproc));
    assert!(!actor::is_alive(dead));
    assert!(actor::info(dead).is_err());
    assert!(actor::kill(dead).is_err());

    // links + trap-exit: a linked child's crash arrives as an exit item
    assert!(!actor::trap_exit(true));
    let child = spawn_role(b"trap", true, false);
    let f = actor::Filter { kinds: Kinds::EXIT, tag: Vec::new(), monitor: None };
    match actor::receive_match(&f, Some(5000)) {
        Some(Item::Exit(e)) => {
            assert_eq!(e.source, child.pid);
            assert!(matches!(e.reason, ExitReason::Crashed(ref why) if why.contains("unreachable")), "{:?}", e.reason);
        }
        _ => panic!("no exit signal from the linked child"),
    }

    // demonitor
    let m = actor::monitor(peer);
    assert!(actor::demonitor(m, true));
    assert!(!actor::demonitor(m, true));

    // exit/2 with a reason, and kill
    let child = spawn_role(b"park", false, true);
    assert!(actor::exit(child.pid, &ExitReason::Other("bye".into())).is_ok());
    assert!(matches!(down_for(child.monitor.expect("ref")).reason, ExitReason::Other(ref s) if s == "bye"));
    let child = spawn_role(b"park", false, true);
    assert!(actor::kill(child.pid).is_ok());
    assert!(matches!(down_for(child.monitor.expect("ref")).reason, ExitReason::Killed));

    // link, visible in info, unlink
    actor::link(peer).expect("the peer is alive");
    assert!(actor::info(me).expect("info").links.contains(&peer));
    actor::unlink(peer);
    assert!(!actor::info(me).expect("info").links.contains(&peer));

    // timers
    actor::send_after(me, b"tick", 5).expect("a timer");
    assert_eq!(expect_message(b"tick"), b"tick");
    let t = actor::send_after(me, b"never", 60_000).expect("a timer");
    assert!(actor::cancel_timer(t));
    assert!(!actor::cancel_timer(t));

    // sleep
    let t0 = std::time::Instant::now();
    actor::sleep(5);
    assert!(t0.elapsed() >= std::time::Duration::from_millis(5));

    // streams: to the peer, which answers with what it counted
    let w = streams::open(peer).expect("open a stream to the peer");
    let data = vec![7u8; 100_000];
    let mut sent = 0;
    while sent < data.len() {
        sent += w.write(&data[sent..]).expect("write") as usize;
    }
    streams::Writer::close(w);
    assert_eq!(expect_message(b"got "), b"got 100000");
    assert!(streams::open(dead).is_err());

    // streams: from the peer, by accept and as a mailbox item
    let _ = actor::send(peer, &with_pid(me, b"stream-me"));
    let r = streams::accept(Some(5000)).expect("the peer's stream");
    assert_eq!(r.peer(), peer);
    let mut got = Vec::new();
    loop {
        let chunk = r.read(4096).expect("read");
        if chunk.is_empty() {
            break;
        }
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, b"from native".repeat(1000));
    drop(r);
    let _ = actor::send(peer, &with_pid(me, b"stream-me"));
    let f = actor::Filter { kinds: Kinds::STREAM, tag: Vec::new(), monitor: None };
    let Some(Item::Stream(r)) = actor::receive_match(&f, Some(5000)) else { panic!("no stream item") };
    assert_eq!(r.read(11).expect("read"), b"from native");
    drop(r);
    assert!(streams::accept(Some(0)).is_none());

    assert!(actor::trap_exit(false));
    let _ = actor::send(test, b"drive ok");
}

/// Asks the native peers factory (tests/all/signals.rs) for a new process.
fn ask(peers: u64, cmd: &[u8]) -> u64 {
    let _ = actor::send(peers, &with_pid(actor::self_pid(), cmd));
    pid_at(&expect_message(b""), 0)
}

fn exit_item(timeout: u64) -> Option<actor::ExitSignal> {
    let f = actor::Filter { kinds: Kinds::EXIT, tag: Vec::new(), monitor: None };
    match actor::receive_match(&f, Some(timeout)) {
        Some(Item::Exit(e)) => Some(e),
        _ => None,
    }
}

fn signals(setup: &[u8]) {
    let (test, peers) = (pid_at(setup, 0), pid_at(setup, 8));
    // 1. A linked process that ends with `kill` itself: trapped, an `exit` item `kill`.
    actor::trap_exit(true);
    let p = ask(peers, b"kill");
    actor::link(p).expect("alive");
    let _ = actor::send(p, b"go");
    let e = exit_item(5000).expect("an exit from the kill peer");
    assert!(e.source == p && matches!(e.reason, ExitReason::Kill), "{:?}", e.reason);
    // 2. link to a dead pid: trapping, ok and an exit item; not trapping, error(noproc).
    let d = ask(peers, b"dead");
    assert!(actor::link(d).is_ok());
    let e = exit_item(5000).expect("an exit noproc");
    assert!(e.source == d && matches!(e.reason, ExitReason::Noproc), "{:?}", e.reason);
    actor::trap_exit(false);
    let d = ask(peers, b"dead");
    assert!(matches!(actor::link(d), Err(actor::ProcessError::Noproc)));
    actor::trap_exit(true);
    // 3. unlink against a peer exiting at that moment: no exit item after it returns.
    for _ in 0..200 {
        let p = ask(peers, b"boom");
        actor::link(p).expect("alive");
        let _ = actor::send(p, b"go");
        actor::unlink(p);
        while exit_item(0).is_some() {}
        down_for(actor::monitor(p));
        assert!(exit_item(0).is_none(), "an exit item after unlink");
    }
    // 4. demonitor(flush) against a target exiting at that moment: no down of it after.
    for _ in 0..200 {
        let p = ask(peers, b"boom");
        let (m, m2) = (actor::monitor(p), actor::monitor(p));
        let _ = actor::send(p, b"go");
        actor::demonitor(m, true);
        down_for(m2);
        let f = actor::Filter { kinds: Kinds::DOWN, tag: Vec::new(), monitor: Some(m) };
        assert!(actor::receive_match(&f, Some(0)).is_none(), "a down after demonitor(flush)");
    }
    let _ = actor::send(test, b"signals ok");
}

impl Guest for Roles {
    fn run() {
        let first = message();
        let text = String::from_utf8_lossy(&first).into_owned();
        let mut words = text.split(' ');
        match words.next().unwrap_or("") {
            "drive" => drive(&message()),
            "signals" => signals(&message()),
            "victim" => {
                let setup = message();
                let p = ask(pid_at(&setup, 8), b"kill");
                actor::link(p).expect("alive");
                let _ = actor::send(p, b"go");
                loop {
                    actor::receive();
                }
            }
            "park" => loop {
                actor::receive();
            },
            "trap" => core::arch::wasm32::unreachable(),
            "spin" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "grow" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "bad-handle" => {
                // SAFETY (guest): deliberately not a handle this instance owns.
                let w = unsafe { streams::Writer::from_handle(0x7ead) };
                let _ = w.write(b"x");
            }
            "serve" => {
                let name = words.next().unwrap_or("");
                if !name.is_empty() {
                    actor::register(name, actor::self_pid()).expect("register");
                }
                loop {
                    let m = message();
                    if m.len() < 8 {
                        continue;
                    }
                    match &m[8..] {
                        b"crash" => core::arch::wasm32::unreachable(),
                        b"stop" => return,
                        payload => drop(actor::send(pid_at(&m, 0), payload)),
                    }
                }
            }
            "client" => {
                let name = words.next().unwrap_or("");
                let count: u32 = words.next().and_then(|n| n.parse().ok()).unwrap_or(1);
                let test = pid_at(&message(), 0);
                let server = loop {
                    match actor::whereis(name) {
                        Some(p) => break p,
                        None => actor::sleep(1),
                    }
                };
                let me = actor::self_pid();
                for i in 0..count {
                    let req = with_pid(me, format!("req:{i}").as_bytes());
                    let _ = actor::send(server, &req);
                    let reply = expect_message(b"req:");
                    assert_eq!(reply, format!("req:{i}").as_bytes(), "replies come in order");
                }
                let _ = actor::send(test, format!("client ok {count}").as_bytes());
            }
            "pingpong" => {
                let name = words.next().unwrap_or("");
                let count: usize = words.next().and_then(|n| n.parse().ok()).unwrap_or(1);
                let report = pid_at(&message(), 0);
                let server = actor::whereis(name).expect("the server is registered");
                let me = actor::self_pid();
                let req = with_pid(me, b"ping");
                // [count u64][total ns u64][every 16th trip's ns u64...]
                let mut out = Vec::with_capacity(16 + count / 2 + 8);
                out.extend_from_slice(&(count as u64).to_le_bytes());
                out.extend_from_slice(&0u64.to_le_bytes());
                let start = std::time::Instant::now();
                for i in 0..count {
                    let t = (i % 16 == 0).then(std::time::Instant::now);
                    let _ = actor::send(server, &req);
                    let _ = message();
                    if let Some(t) = t {
                        out.extend_from_slice(&(t.elapsed().as_nanos() as u64).to_le_bytes());
                    }
                }
                let total = start.elapsed().as_nanos() as u64;
                out[8..16].copy_from_slice(&total.to_le_bytes());
                let _ = actor::send(report, &out);
            }
            "std-sleep" => {
                // WASI 0.2's monotonic-clock pollable, through std.
                let ms: u64 = words.next().and_then(|n| n.parse().ok()).unwrap_or(20);
                let test = pid_at(&message(), 0);
                let t = std::time::Instant::now();
                std::thread::sleep(std::time::Duration::from_millis(ms));
                let _ = actor::send(test, format!("slept {}", t.elapsed().as_millis()).as_bytes());
            }
            "forward" => {
                let next = pid_at(&message(), 0);
                loop {
                    let m = message();
                    let _ = actor::send(next, &m);
                }
            }
            "net" => {
                // Outbound TCP and UDP to `addr`, and a listen, through std's wasi:sockets.
                let addr = words.next().unwrap_or("127.0.0.1:9").to_owned();
                let test = pid_at(&message(), 0);
                let kind = |e: std::io::Error| format!("err:{:?}", e.kind());
                let connect = match std::net::TcpStream::connect(&addr) {
                    Ok(mut s) => {
                        use std::io::Write as _;
                        s.write_all(b"hi").map(|()| "ok".to_owned()).unwrap_or_else(kind)
                    }
                    Err(e) => kind(e),
                };
                let listen = std::net::TcpListener::bind("127.0.0.1:0").map(|_| "ok".to_owned()).unwrap_or_else(kind);
                let udp = std::net::UdpSocket::bind("0.0.0.0:0")
                    .and_then(|u| u.send_to(b"hi", &addr))
                    .map(|_| "ok".to_owned())
                    .unwrap_or_else(kind);
                let _ = actor::send(test, format!("connect={connect} listen={listen} udp={udp}").as_bytes());
            }
            "extremes" => {
                // The WIT world's longest durations: a timer that never fires, then a sleep
                // for ever (the test kills it).
                let test = pid_at(&message(), 0);
                let timer = actor::send_after(test, b"never", u64::MAX).is_ok();
                let _ = actor::send(test, format!("timer {timer}").as_bytes());
                actor::sleep(u64::MAX);
                let _ = actor::send(test, b"woke");
            }
            "reach" => {
                // Acts on [target pid]; reports what the host said.
                let test_and_target = message();
                let (test, target) = (pid_at(&test_and_target, 0), pid_at(&test_and_target, 8));
                let r = |e: Result<(), actor::ProcessError>| match e {
                    Ok(()) => "ok",
                    Err(actor::ProcessError::Denied) => "denied",
                    Err(actor::ProcessError::Noproc) => "noproc",
                };
                let info = r(actor::info(target).map(|_| ()));
                let link = r(actor::link(target));
                let kill = r(actor::kill(target));
                let list = actor::list_processes().len();
                let _ = actor::send(test, format!("info={info} link={link} kill={kill} list={list}").as_bytes());
            }
            other => panic!("unknown role {other:?}"),
        }
    }
}

export!(Roles);
