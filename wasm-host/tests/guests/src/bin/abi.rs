//! Exercises the whole raw `rusm` ABI against native processes the test sets up, and
//! reports each step to the test process as `ok <step>` or `fail <step>: <why>`, then
//! `done`. First message: [test pid][victim pid][linked pid] (8 bytes LE each).

use rusm_test_guests::*;

struct T {
    test: i64,
}

impl T {
    fn check(&self, step: &str, ok: bool, detail: impl std::fmt::Debug) {
        let msg = if ok { format!("ok {step}") } else { format!("fail {step}: {detail:?}") };
        send(self.test, msg.as_bytes());
    }
}

fn main() {
    let first = recv(-1).expect("the setup message");
    let t = T { test: pid_at(&first.data, 0) };
    let victim = pid_at(&first.data, 8);
    let linked = pid_at(&first.data, 16);
    let me = own_pid();
    t.check("own_pid", me != 0 && me != t.test, me);

    // Registry.
    t.check("register", register("abi-guest", me) == OK, ());
    t.check("whereis", whereis("abi-guest") == Some(me), whereis("abi-guest"));
    t.check("register_taken", register("abi-guest", me) == TAKEN, ());
    // SAFETY: the name is live.
    let rc = unsafe { sys::unregister("abi-guest".as_ptr(), 9) };
    t.check("unregister", rc == OK, rc);
    // SAFETY: the name is live.
    let rc = unsafe { sys::unregister("abi-guest".as_ptr(), 9) };
    t.check("unregister_missing", rc == NOT_FOUND, rc);
    t.check("whereis_missing", whereis("abi-guest").is_none(), ());
    t.check("register_noproc", register("ghost", 0x7fff_0000_0000_0001) == NOPROC, ());

    // Label, seen by info.
    let label = "abi guest";
    // SAFETY: label is live.
    unsafe { sys::set_label(label.as_ptr(), label.len() as i32) };
    let mut small = [0u8; 8];
    let mut need = [0u8; 4];
    // SAFETY: buffers are live and of the lengths given.
    let rc = unsafe { sys::info(me, small.as_mut_ptr(), 8, need.as_mut_ptr()) };
    let need = u32::from_le_bytes(need) as usize;
    t.check("info_too_small", rc == TOO_SMALL && need > 56, (rc, need));
    let mut buf = vec![0u8; need];
    let mut len = [0u8; 4];
    // SAFETY: as above.
    let rc = unsafe { sys::info(me, buf.as_mut_ptr(), need as i32, len.as_mut_ptr()) };
    let label_len = u32::from_le_bytes(buf[40..44].try_into().unwrap()) as usize;
    let status = u32::from_le_bytes(buf[20..24].try_into().unwrap());
    let got_label = String::from_utf8_lossy(&buf[56..56 + label_len]).into_owned();
    t.check("info", rc == OK && pid_at(&buf, 0) == me && got_label == label && status == 0, (rc, got_label, status));
    // SAFETY: as above.
    let rc = unsafe { sys::info(0x7fff_0000_0000_0001, buf.as_mut_ptr(), need as i32, len.as_mut_ptr()) };
    t.check("info_noproc", rc == NOPROC, rc);

    // list_processes: at least the test and this process.
    let mut pids = vec![0u8; 8 * 4096];
    // SAFETY: pids holds 4096 pids.
    let total = unsafe { sys::list_processes(pids.as_mut_ptr(), 4096) } as usize;
    let listed: Vec<i64> = (0..total.min(4096)).map(|i| pid_at(&pids, i * 8)).collect();
    t.check("list_processes", listed.contains(&me) && listed.contains(&t.test), total);

    // is_alive, monitor, kill, Down with the reason.
    // SAFETY: no pointers.
    unsafe {
        t.check("is_alive", sys::is_alive(victim) == 1, ());
        let m = sys::monitor(victim);
        t.check("kill", sys::kill(victim) == OK, ());
        let down = recv_match(KIND_DOWN, b"", m, 5000);
        t.check(
            "monitor_down",
            down.as_ref().is_some_and(|d| d.reference == m && d.pid == victim && d.data == b"killed"),
            &down,
        );
        t.check("is_alive_dead", sys::is_alive(victim) == 0, ());
        t.check("kill_noproc", sys::kill(victim) == NOPROC, ());
        // A monitor of a dead process fires at once with noproc.
        let m2 = sys::monitor(victim);
        let down = recv_match(KIND_DOWN, b"", m2, 5000);
        t.check("monitor_noproc", down.as_ref().is_some_and(|d| d.data == b"noproc"), &down);
        // demonitor of a spent monitor reports false.
        t.check("demonitor_spent", sys::demonitor(m2, 1) == 0, ());
    }

    // Links with trap_exit: an exit signal becomes a message.
    // SAFETY: pointers are to live data.
    unsafe {
        t.check("trap_exit", sys::trap_exit(1) == 0, ());
        sys::link(linked);
        let reason = "boom";
        sys::exit(linked, reason.as_ptr(), reason.len() as i32);
        let ex = recv_match(KIND_EXIT, b"", 0, 5000);
        t.check("link_exit", ex.as_ref().is_some_and(|e| e.pid == linked && e.data == b"boom"), &ex);
        sys::unlink(linked);
    }

    // Selective receive: the test sent "b:second", then "a:first"; tags pick out of order.
    send(t.test, b"want-selective");
    let a = recv_match(KIND_MESSAGE, b"a:", 0, 5000);
    let b = recv_match(KIND_MESSAGE, b"b:", 0, 5000);
    t.check(
        "selective",
        a.as_ref().is_some_and(|m| m.data == b"a:first") && b.as_ref().is_some_and(|m| m.data == b"b:second"),
        (&a, &b),
    );

    // Timeouts.
    t.check("receive_timeout", recv(20).is_none(), ());
    t.check("receive_poll", recv(0).is_none(), ());

    // A message larger than the buffer: the rest through read_rest.
    send(t.test, b"want-big");
    let big = recv_buf(5000, 1000);
    let ok = big.as_ref().is_some_and(|m| m.data.len() == 200_000 && m.data.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    t.check("read_rest", ok, big.map(|m| m.data.len()));

    // Timers.
    // SAFETY: payloads are live.
    unsafe {
        let id = sys::send_after(me, b"tick".as_ptr(), 4, 10);
        let tick = recv(5000);
        t.check("send_after", id > 0 && tick.as_ref().is_some_and(|m| m.data == b"tick"), &tick);
        let id = sys::send_after(me, b"never".as_ptr(), 5, 10_000);
        t.check("cancel_timer", sys::cancel_timer(id) == 1, ());
        t.check("cancel_timer_twice", sys::cancel_timer(id) == 0, ());
        sys::sleep(5);
    }

    // Streams, out: 100 KB to the test.
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let mut h = [0u8; 4];
    // SAFETY: h is live.
    let rc = unsafe { sys::stream_open(t.test, h.as_mut_ptr()) };
    let h = i32::from_le_bytes(h);
    let wrote = stream_write_all(h, &data);
    // SAFETY: no pointers.
    let closed = unsafe { sys::stream_close(h) };
    t.check("stream_out", rc == OK && wrote.is_ok() && closed == OK, (rc, wrote, closed));
    // SAFETY: no pointers.
    t.check("stream_bad_handle", unsafe { sys::stream_close(h) } == BAD_HANDLE, ());

    // Streams, in: the test opens one to us.
    send(t.test, b"want-stream");
    let mut h = [0u8; 4];
    let mut from = [0u8; 8];
    // SAFETY: buffers are live.
    let rc = unsafe { sys::stream_accept(5000, h.as_mut_ptr(), from.as_mut_ptr()) };
    let h = i32::from_le_bytes(h);
    let got = stream_read_all(h);
    let ok = rc == OK && i64::from_le_bytes(from) == t.test && got.as_ref().is_ok_and(|d| d.len() == 50_000 && d.iter().all(|&b| b == 7));
    t.check("stream_in", ok, (rc, got.map(|d| d.len())));

    // Spawn a registered artifact, linked and monitored, with a first message.
    let name = "echo";
    let msg = me.to_le_bytes();
    let mut out = [0u8; 16];
    // SAFETY: buffers are live.
    let rc = unsafe { sys::spawn(name.as_ptr(), name.len() as i32, msg.as_ptr(), 8, 3, out.as_mut_ptr()) };
    let child = pid_at(&out, 0);
    let m = pid_at(&out, 8);
    let reply = recv_match(KIND_MESSAGE, b"echo:", 0, 5000);
    let down = recv_match(KIND_DOWN, b"", m, 5000);
    t.check(
        "spawn",
        rc == OK && reply.is_some() && down.as_ref().is_some_and(|d| d.pid == child && d.data == b"normal"),
        (rc, &reply, &down),
    );
    // SAFETY: buffers are live.
    let rc = unsafe { sys::spawn("nope".as_ptr(), 4, msg.as_ptr(), 0, 0, out.as_mut_ptr()) };
    t.check("spawn_not_found", rc == NOT_FOUND, rc);

    send(t.test, b"done");
}
