//! The three exit-signal rules of issue 11 through the raw ABI (docs/WASM-ABI.md): a
//! process ending with `kill` sends a trappable `kill` over its links; `link` to a dead
//! pid is `noproc` (an `EXIT` item when trapping, the `NOPROC` status otherwise); after
//! `unlink` returns, no `EXIT` over that link arrives, and after `demonitor` with flush no
//! `DOWN` of that monitor.
//!
//! First message: [test pid][peers pid][mode]. The peers process (a native factory in
//! tests/all/signals.rs) answers [reply-to][cmd] with the pid of a new native process:
//! `kill` (ends with reason `kill` when it gets a message), `boom` (ends `boom` when it gets
//! a message) or `dead` (already ended).
//! - mode `rules`: checks the rules, then sends `signals ok` to the test (a failed check
//!   traps, which the test sees as a crash).
//! - mode `victim`: links to a `kill` peer without trapping, lets it go and waits; it ends
//!   with `kill`.

use rusm_test_guests::*;

fn ask(peers: i64, cmd: &[u8]) -> i64 {
    let mut req = own_pid().to_le_bytes().to_vec();
    req.extend_from_slice(cmd);
    send(peers, &req);
    let m = recv_match(KIND_MESSAGE, b"", 0, 5000).expect("the peers process answers");
    pid_at(&m.data, 0)
}

fn link(p: i64) -> i32 {
    // SAFETY: no pointers.
    unsafe { sys::link(p) }
}

fn trap_exit(on: bool) {
    // SAFETY: no pointers.
    unsafe { sys::trap_exit(i32::from(on)) };
}

fn exit_item(timeout_ms: i64) -> Option<Item> {
    recv_match(KIND_EXIT, b"", 0, timeout_ms)
}

fn main() {
    let first = recv(-1).expect("setup");
    let (test, peers) = (pid_at(&first.data, 0), pid_at(&first.data, 8));
    match &first.data[16..] {
        b"victim" => {
            let p = ask(peers, b"kill");
            assert_eq!(link(p), OK);
            send(p, b"go");
            loop {
                recv(-1);
            }
        }
        b"rules" => {}
        other => panic!("unknown mode {other:?}"),
    }

    // 1. A linked process that ends with `kill` itself: a trapping guest gets it as an item.
    trap_exit(true);
    let p = ask(peers, b"kill");
    assert_eq!(link(p), OK);
    send(p, b"go");
    let e = exit_item(5000).expect("an EXIT from the kill peer");
    assert_eq!((e.pid, e.data.as_slice()), (p, &b"kill"[..]));

    // 2. link to a dead pid: trapping, OK and an EXIT item `noproc`; not trapping, NOPROC.
    let d = ask(peers, b"dead");
    assert_eq!(link(d), OK);
    let e = exit_item(5000).expect("an EXIT noproc");
    assert_eq!((e.pid, e.data.as_slice()), (d, &b"noproc"[..]));
    trap_exit(false);
    let d = ask(peers, b"dead");
    assert_eq!(link(d), NOPROC, "not trapping: the NOPROC status, and the guest lives on");
    trap_exit(true);

    // 3. unlink against a peer exiting at that moment: once it returns, no EXIT arrives.
    let mut late = 0;
    for _ in 0..200 {
        let p = ask(peers, b"boom");
        assert_eq!(link(p), OK);
        send(p, b"go");
        // SAFETY: no pointers.
        unsafe { sys::unlink(p) };
        while exit_item(0).is_some() {} // one that landed before the unlink is allowed
        // SAFETY: no pointers.
        let m = unsafe { sys::monitor(p) };
        recv_match(KIND_DOWN, b"", m, 5000).expect("the peer's DOWN");
        if exit_item(0).is_some() {
            late += 1;
        }
    }
    assert_eq!(late, 0, "EXITs after unlink");

    // 4. demonitor with flush against a target exiting at that moment: once it returns, no
    // DOWN of that monitor is in the mailbox or arrives (a second monitor's DOWN says the
    // target's signals are all out).
    for _ in 0..200 {
        let p = ask(peers, b"boom");
        // SAFETY: no pointers.
        let (m, m2) = unsafe { (sys::monitor(p), sys::monitor(p)) };
        send(p, b"go");
        // SAFETY: no pointers.
        unsafe { sys::demonitor(m, 1) };
        recv_match(KIND_DOWN, b"", m2, 5000).expect("the second monitor's DOWN");
        assert!(recv_match(KIND_DOWN, b"", m, 0).is_none(), "a DOWN after demonitor(flush)");
    }
    send(test, b"signals ok");
}
