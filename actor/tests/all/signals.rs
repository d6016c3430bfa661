//! The exit-signal conformance table: Erlang's documented rules for exit signals, links and
//! monitors (Reference Manual, "Processes": "Links", "Receiving Exit Signals", "Monitors";
//! the `erlang:link/1`, `unlink/1`, `demonitor/2` and `register/2` pages), one named row
//! each. Every row runs on rusm-otp and must print what its `want` column says; the same
//! rows run on a real BEAM (`tests/beam/signals.escript`, by the same names) whenever
//! `escript` is installed, and must print the same (`RUSM_REQUIRE_BEAM=1` makes a missing
//! `escript` a failure, as CI sets it).
//!
//! An observation reads: `lives` (with what its mailbox got, in order) or
//! `dies <reason>, partner <reason>` (the victim's `DOWN` reason, and what a trapping
//! process linked to the victim got); link rows add `; sender down <reason>`, the `DOWN`
//! reason of the linked process that exited. A crash prints as `crash`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusm_otp::{ExitReason, Message, Node, Pid, Received, SpawnOpts};

use crate::{node, recv, wait_down};

/// How the signal reaches the victim.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// A process linked to the victim ends with the reason.
    Link,
    /// Another process calls `exit(Victim, Reason)`.
    Exit2,
    /// The victim calls `exit(self(), Reason)`.
    ExitSelf,
}

/// What the linked sender does (Link rows), or the reason sent (the others).
#[derive(Debug, Clone)]
enum Cause {
    Reason(ExitReason),
    /// It panics (Erlang: `error(boom)`).
    Crash,
    /// It is killed by `exit(Sender, kill)`.
    Killed,
}

/// One named row: which rule it checks, how to run it, and what Erlang prints.
struct Row {
    name: String,
    rule: &'static str,
    run: Box<dyn Fn(&Node) -> String>,
    want: &'static str,
}

fn term(r: &ExitReason) -> String {
    match r {
        ExitReason::Crashed(_) => "crash".into(),
        r => r.to_string(),
    }
}

enum Cmd {
    Ping,
    ExitSelf(ExitReason),
    Go,
}

enum Report {
    Pong,
    Mailbox(Pid, ExitReason),
    Partner(ExitReason),
    Ready,
}

fn report(to: Pid, r: Report) {
    rusm_otp::send(to, Message::value(r));
}

fn next_report() -> Result<Report, (rusm_otp::MonitorRef, ExitReason)> {
    loop {
        match recv() {
            Received::Message(m) => return Ok(m.downcast::<Report>().expect("a report")),
            Received::Down { monitor, reason, .. } => return Err((monitor, reason)),
            _ => {}
        }
    }
}

fn wait_ready() {
    assert!(matches!(next_report(), Ok(Report::Ready)));
}

/// Runs one signal row in a process of its own and prints what it saw.
fn signal_row(node: &Node, cause: Cause, via: Via, trap: bool) -> String {
    node.run(move || {
        let me = rusm_otp::self_pid();
        let victim = rusm_otp::spawn_opt(SpawnOpts { trap_exit: trap, ..SpawnOpts::default() }, move || loop {
            match rusm_otp::receive() {
                Received::Exit { from, reason } => report(me, Report::Mailbox(from, reason)),
                Received::Message(m) => match m.downcast::<Cmd>() {
                    Ok(Cmd::Ping) => report(me, Report::Pong),
                    Ok(Cmd::ExitSelf(r)) => rusm_otp::exit(rusm_otp::self_pid(), r),
                    _ => {}
                },
                _ => {}
            }
        })
        .unwrap()
        .pid;
        let partner = rusm_otp::spawn_opt(SpawnOpts { trap_exit: true, ..SpawnOpts::default() }, move || {
            rusm_otp::link(victim).unwrap();
            report(me, Report::Ready);
            loop {
                if let Received::Exit { from, reason } = rusm_otp::receive()
                    && from == victim
                {
                    report(me, Report::Partner(reason));
                }
            }
        })
        .unwrap()
        .pid;
        wait_ready();
        let mv = rusm_otp::monitor(victim);
        let mut sender = me;
        let mut sender_down = None;
        match (via, cause) {
            (Via::Link, cause) => {
                let killed = matches!(cause, Cause::Killed);
                let (s, ms) = rusm_otp::spawn_monitor(move || {
                    rusm_otp::link(victim).unwrap();
                    report(me, Report::Ready);
                    let _ = rusm_otp::receive();
                    match cause {
                        Cause::Reason(r) => rusm_otp::exit_with(r),
                        Cause::Crash => panic!("boom"),
                        Cause::Killed => loop {
                            let _ = rusm_otp::receive();
                        },
                    }
                })
                .unwrap();
                sender = s;
                wait_ready();
                if killed {
                    rusm_otp::kill(s);
                } else {
                    rusm_otp::send(s, Message::value(Cmd::Go));
                }
                match next_report() {
                    Err((m, r)) if m == ms => sender_down = Some(r),
                    Err(_) => panic!("the victim died before its sender"),
                    Ok(_) => panic!("a report before the sender's end"),
                }
            }
            (Via::Exit2, Cause::Reason(r)) => rusm_otp::exit(victim, r),
            (Via::ExitSelf, Cause::Reason(r)) => rusm_otp::send(victim, Message::value(Cmd::ExitSelf(r))),
            _ => unreachable!("crash and killed are link causes"),
        }
        // Two pings: everything the victim's mailbox got before the second one is reported
        // before its pong (an `exit(self(), R)` it traps lands after the first).
        let who = |p: Pid| if p == victim { "self" } else if p == sender { "sender" } else { "other" };
        let mut seen = Vec::new();
        let mut pongs = 0;
        let mut fate = None;
        rusm_otp::send(victim, Message::value(Cmd::Ping));
        while pongs < 2 && fate.is_none() {
            match next_report() {
                Ok(Report::Pong) => {
                    pongs += 1;
                    if pongs == 1 {
                        rusm_otp::send(victim, Message::value(Cmd::Ping));
                    }
                }
                Ok(Report::Mailbox(from, r)) => seen.push(format!("{{'EXIT',{},{}}}", who(from), term(&r))),
                Ok(_) => panic!("unexpected report"),
                Err((m, r)) if m == mv => fate = Some(r),
                Err(_) => {}
            }
        }
        let mut out = match fate {
            None => {
                rusm_otp::kill(partner);
                rusm_otp::kill(victim);
                let mut s = String::from("lives");
                for got in &seen {
                    s.push_str(", got ");
                    s.push_str(got);
                }
                s
            }
            Some(r) => {
                let partner_saw = loop {
                    if let Ok(Report::Partner(p)) = next_report() {
                        break p;
                    }
                };
                rusm_otp::kill(partner);
                assert!(seen.is_empty(), "the victim reported {seen:?} and died");
                format!("dies {}, partner {}", term(&r), term(&partner_saw))
            }
        };
        if let Some(r) = sender_down {
            out.push_str(&format!("; sender down {}", term(&r)));
        }
        out
    })
    .unwrap()
}

fn signal_rows() -> Vec<Row> {
    use ExitReason::*;
    let boom = || Other("boom".into());
    let sx = || ShutdownWith("x".into());
    let link_rule = "a link exit signal: trapped, any reason (kill too) becomes an {'EXIT',From,R} message; else normal is ignored and any other reason, kill included, ends the receiver with that reason";
    let kill_rule = "a process that ends with reason kill itself sends kill over its links, trappable, and monitors see kill (only exit/2 with kill becomes killed)";
    let exit2_rule = "exit/2: kill is untrappable and the target ends killed; trapped, other reasons become messages; else normal is ignored (unless to self) and others end the target";
    let self_rule = "exit(self(), R): trapped it is a message from self; else normal ends the caller too, and kill gives killed";
    let spec: Vec<(Via, Cause, bool, &'static str, &'static str)> = vec![
        (Via::Link, Cause::Reason(Normal), true, "lives, got {'EXIT',sender,normal}; sender down normal", link_rule),
        (Via::Link, Cause::Reason(Normal), false, "lives; sender down normal", link_rule),
        (Via::Link, Cause::Reason(Shutdown), true, "lives, got {'EXIT',sender,shutdown}; sender down shutdown", link_rule),
        (Via::Link, Cause::Reason(Shutdown), false, "dies shutdown, partner shutdown; sender down shutdown", link_rule),
        (Via::Link, Cause::Reason(sx()), true, "lives, got {'EXIT',sender,{shutdown,x}}; sender down {shutdown,x}", link_rule),
        (Via::Link, Cause::Reason(sx()), false, "dies {shutdown,x}, partner {shutdown,x}; sender down {shutdown,x}", link_rule),
        (Via::Link, Cause::Reason(Kill), true, "lives, got {'EXIT',sender,kill}; sender down kill", kill_rule),
        (Via::Link, Cause::Reason(Kill), false, "dies kill, partner kill; sender down kill", kill_rule),
        (Via::Link, Cause::Reason(boom()), true, "lives, got {'EXIT',sender,boom}; sender down boom", link_rule),
        (Via::Link, Cause::Reason(boom()), false, "dies boom, partner boom; sender down boom", link_rule),
        (Via::Link, Cause::Crash, true, "lives, got {'EXIT',sender,crash}; sender down crash", link_rule),
        (Via::Link, Cause::Crash, false, "dies crash, partner crash; sender down crash", link_rule),
        (Via::Link, Cause::Killed, true, "lives, got {'EXIT',sender,killed}; sender down killed", "a process killed by exit/2 with kill ends killed, and killed travels its links as an ordinary, trappable reason"),
        (Via::Link, Cause::Killed, false, "dies killed, partner killed; sender down killed", "a process killed by exit/2 with kill ends killed, and killed travels its links as an ordinary, trappable reason"),
        (Via::Exit2, Cause::Reason(Normal), true, "lives, got {'EXIT',sender,normal}", exit2_rule),
        (Via::Exit2, Cause::Reason(Normal), false, "lives", exit2_rule),
        (Via::Exit2, Cause::Reason(Shutdown), true, "lives, got {'EXIT',sender,shutdown}", exit2_rule),
        (Via::Exit2, Cause::Reason(Shutdown), false, "dies shutdown, partner shutdown", exit2_rule),
        (Via::Exit2, Cause::Reason(sx()), true, "lives, got {'EXIT',sender,{shutdown,x}}", exit2_rule),
        (Via::Exit2, Cause::Reason(sx()), false, "dies {shutdown,x}, partner {shutdown,x}", exit2_rule),
        (Via::Exit2, Cause::Reason(Kill), true, "dies killed, partner killed", exit2_rule),
        (Via::Exit2, Cause::Reason(Kill), false, "dies killed, partner killed", exit2_rule),
        (Via::Exit2, Cause::Reason(boom()), true, "lives, got {'EXIT',sender,boom}", exit2_rule),
        (Via::Exit2, Cause::Reason(boom()), false, "dies boom, partner boom", exit2_rule),
        (Via::ExitSelf, Cause::Reason(Normal), true, "lives, got {'EXIT',self,normal}", self_rule),
        (Via::ExitSelf, Cause::Reason(Normal), false, "dies normal, partner normal", self_rule),
        (Via::ExitSelf, Cause::Reason(Shutdown), true, "lives, got {'EXIT',self,shutdown}", self_rule),
        (Via::ExitSelf, Cause::Reason(Shutdown), false, "dies shutdown, partner shutdown", self_rule),
        (Via::ExitSelf, Cause::Reason(sx()), true, "lives, got {'EXIT',self,{shutdown,x}}", self_rule),
        (Via::ExitSelf, Cause::Reason(sx()), false, "dies {shutdown,x}, partner {shutdown,x}", self_rule),
        (Via::ExitSelf, Cause::Reason(Kill), true, "dies killed, partner killed", self_rule),
        (Via::ExitSelf, Cause::Reason(Kill), false, "dies killed, partner killed", self_rule),
        (Via::ExitSelf, Cause::Reason(boom()), true, "lives, got {'EXIT',self,boom}", self_rule),
        (Via::ExitSelf, Cause::Reason(boom()), false, "dies boom, partner boom", self_rule),
    ];
    spec.into_iter()
        .map(|(via, cause, trap, want, rule)| {
            let what = match &cause {
                Cause::Reason(r) => term(r),
                Cause::Crash => "crash".into(),
                Cause::Killed => "killed".into(),
            };
            let via_name = match via {
                Via::Link => "link",
                Via::Exit2 => "exit/2",
                Via::ExitSelf => "exit(self)",
            };
            Row {
                name: format!("{via_name} {what} {}", if trap { "trapping" } else { "not trapping" }),
                rule,
                run: Box::new(move |node| signal_row(node, cause.clone(), via, trap)),
                want,
            }
        })
        .collect()
}

/// How many times the race rows repeat. Before the fix (commit 31e7428), in three runs of
/// 2,000 on the 2-vCPU VM, an `EXIT` arrived after `unlink` in 108 to 165 tries and a
/// `DOWN` after `demonitor(flush)` in 20 to 33; now in none.
const RACES: usize = 2_000;

fn dead_pid() -> Pid {
    let (p, m) = rusm_otp::spawn_monitor(|| {}).unwrap();
    wait_down(m);
    p
}

/// A peer that exits (`boom`) as soon as `go` is set, spinning on a worker until then so
/// that it runs in parallel with the caller; returns once it spins.
fn spinning_peer(opts: SpawnOpts) -> (Pid, rusm_otp::MonitorRef, Arc<AtomicBool>) {
    let go = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicBool::new(false));
    let (g, r) = (go.clone(), ready.clone());
    let s = rusm_otp::spawn_opt(SpawnOpts { monitor: true, ..opts }, move || {
        r.store(true, Ordering::Release);
        while !g.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        rusm_otp::exit_with(ExitReason::Other("boom".into()))
    })
    .unwrap();
    while !ready.load(Ordering::Acquire) {
        rusm_sched::yield_now();
    }
    (s.pid, s.monitor.unwrap(), go)
}

/// Spins for a number of iterations that varies with `i`, so the racing call lands at
/// every point of the peer's exit.
fn stagger(i: usize) {
    for _ in 0..(i % 97) * 8 {
        std::hint::spin_loop();
    }
}

fn other_rows() -> Vec<Row> {
    fn row(name: &str, rule: &'static str, want: &'static str, f: impl Fn() -> String + Send + Sync + Copy + 'static) -> Row {
        Row {
            name: name.into(),
            rule,
            run: Box::new(move |node: &Node| node.run(f).unwrap()),
            want,
        }
    }
    vec![
        row("link to a dead pid, trapping", "link/1 to a pid that does not exist, trapping: true, and {'EXIT',Pid,noproc} arrives", "ok, got {'EXIT',dead,noproc}", || {
            rusm_otp::trap_exit(true);
            let dead = dead_pid();
            let r = rusm_otp::link(dead);
            match recv() {
                Received::Exit { from, reason } if from == dead && r.is_ok() => format!("ok, got {{'EXIT',dead,{}}}", term(&reason)),
                other => format!("{r:?} {other:?}"),
            }
        }),
        row("link to a dead pid, not trapping", "link/1 to a pid that does not exist, not trapping: the error noproc, which the caller catches and lives", "error noproc, lives", || {
            let dead = dead_pid();
            match rusm_otp::link(dead) {
                Err(rusm_otp::LinkError::NoProc) => {
                    rusm_otp::check();
                    match rusm_otp::receive_timeout(Duration::from_millis(20)) {
                        Received::Timeout => "error noproc, lives".into(),
                        other => format!("error noproc, got {other:?}"),
                    }
                }
                other => format!("{other:?}"),
            }
        }),
        row("link to self", "link/1 to oneself does nothing", "ok, nothing", || {
            let r = rusm_otp::link(rusm_otp::self_pid());
            let links = rusm_otp::info(rusm_otp::self_pid()).unwrap().links;
            match (r, links.is_empty(), rusm_otp::receive_timeout(Duration::from_millis(20))) {
                (Ok(()), true, Received::Timeout) => "ok, nothing".into(),
                (r, _, got) => format!("{r:?} {links:?} {got:?}"),
            }
        }),
        row("monitor a dead pid", "monitor/2 of a pid that does not exist: a DOWN with noproc at once", "down noproc", || {
            let dead = dead_pid();
            let m = rusm_otp::monitor(dead);
            match rusm_otp::receive_timeout(Duration::ZERO) {
                Received::Down { monitor, pid, reason } if monitor == m && pid == dead => format!("down {}", term(&reason)),
                other => format!("{other:?}"),
            }
        }),
        row("demonitor flush of a fired monitor", "demonitor(Ref, [flush, info]) after the DOWN arrived: false, and the DOWN is gone", "false, mailbox empty", || {
            let dead = dead_pid();
            let m = rusm_otp::monitor(dead);
            let active = rusm_otp::demonitor(m, true);
            match rusm_otp::receive_timeout(Duration::from_millis(20)) {
                Received::Timeout => format!("{active}, mailbox empty"),
                other => format!("{active}, {other:?}"),
            }
        }),
        row("name released before DOWN", "a dead process's registered name is free before its DOWN and EXIT signals are sent", "free at DOWN, registered again", || {
            let (p, m) = rusm_otp::spawn_monitor(|| {
                rusm_otp::register("conformance-name", rusm_otp::self_pid()).unwrap();
                let _ = rusm_otp::receive();
            })
            .unwrap();
            while rusm_otp::whereis("conformance-name").is_none() {
                rusm_sched::yield_now();
            }
            rusm_otp::kill(p);
            loop {
                if let Received::Down { monitor, .. } = recv()
                    && monitor == m
                {
                    break;
                }
            }
            let free = rusm_otp::whereis("conformance-name").is_none();
            let again = rusm_otp::register("conformance-name", rusm_otp::self_pid()).is_ok();
            rusm_otp::unregister("conformance-name");
            match (free, again) {
                (true, true) => "free at DOWN, registered again".into(),
                x => format!("{x:?}"),
            }
        }),
        row("chain: exit(kill) through a non-trapping link", "kill as a process's own reason kills a non-trapping linked process with reason kill, whose own links then see kill", "middle dies kill, end got kill", || chain(false)),
        row("chain: exit/2 kill through a non-trapping link", "exit(P, kill) ends P killed; P's links see killed, so a non-trapping one dies killed and its links see killed", "middle dies killed, end got killed", || chain(true)),
        row("unlink against a peer exiting at the same time", "once unlink/1 returns, the link has no effect on the caller: no EXIT from it arrives afterwards", "no EXIT after unlink", unlink_race),
        row("demonitor(flush) against a target exiting at the same time", "once demonitor(Ref, [flush]) returns, no DOWN for Ref is in the mailbox or arrives later", "no DOWN after demonitor", demonitor_race),
        row("monitor against a target exiting at the same time", "monitor/2 of a live process: exactly one DOWN, with its reason, or noproc if it was already gone; never none", "exactly one DOWN each time", monitor_race),
        row("link against a peer exiting at the same time", "link/1 to a live process: its exit signal arrives over the new link, or noproc if it was already gone; exactly one of them, never none", "exactly one EXIT each time", link_race),
    ]
}

/// start -> middle -> end: `start` ends with `kill` itself (or is killed), `middle` does
/// not trap, `end` traps.
fn chain(killed: bool) -> String {
    let me = rusm_otp::self_pid();
    let start = rusm_otp::spawn(|| {
        let _ = rusm_otp::receive();
        rusm_otp::exit_with(ExitReason::Kill)
    })
    .unwrap();
    let (middle, mm) = rusm_otp::spawn_monitor(move || {
        rusm_otp::link(start).unwrap();
        report(me, Report::Ready);
        loop {
            let _ = rusm_otp::receive();
        }
    })
    .unwrap();
    wait_ready();
    rusm_otp::spawn_opt(SpawnOpts { trap_exit: true, ..SpawnOpts::default() }, move || {
        rusm_otp::link(middle).unwrap();
        report(me, Report::Ready);
        loop {
            if let Received::Exit { from, reason } = rusm_otp::receive()
                && from == middle
            {
                report(me, Report::Partner(reason));
            }
        }
    })
    .unwrap();
    wait_ready();
    if killed {
        rusm_otp::kill(start);
    } else {
        rusm_otp::send(start, Message::value(Cmd::Go));
    }
    let (mut died, mut got) = (None, None);
    while died.is_none() || got.is_none() {
        match next_report() {
            Err((m, r)) if m == mm => died = Some(r),
            Ok(Report::Partner(r)) => got = Some(r),
            _ => {}
        }
    }
    format!("middle dies {}, end got {}", term(&died.unwrap()), term(&got.unwrap()))
}

/// A peer linked to the caller exits (abnormally) while the caller unlinks; after
/// `unlink` returns, no `EXIT` from that peer may arrive.
fn unlink_race() -> String {
    rusm_otp::trap_exit(true);
    let (mut late, mut before) = (0, 0);
    for i in 0..RACES {
        let (peer, m, go) = spinning_peer(SpawnOpts { link: true, ..SpawnOpts::default() });
        go.store(true, Ordering::Release);
        stagger(i);
        rusm_otp::unlink(peer);
        // An EXIT that landed before the unlink is allowed (Erlang documents it): count
        // it and drop it; after that, nothing more may come.
        before += drain_exits(peer);
        wait_down(m);
        late += drain_exits(peer);
    }
    eprintln!("unlink race: {before} of {RACES} EXITs landed before unlink returned, {late} after");
    if late == 0 { "no EXIT after unlink".into() } else { format!("{late} of {RACES} EXITs after unlink") }
}

/// Takes every `Exit` from `peer` now in the mailbox; how many.
fn drain_exits(peer: Pid) -> usize {
    let mut n = 0;
    while let Received::Exit { .. } =
        rusm_otp::receive_match(|r| matches!(r, Received::Exit { from, .. } if *from == peer), Some(Duration::ZERO))
    {
        n += 1;
    }
    n
}

/// A monitored target exits while the caller demonitors with flush; after `demonitor`
/// returns, no `DOWN` of that monitor may be in the mailbox or arrive.
fn demonitor_race() -> String {
    let (mut late, mut active) = (0, 0);
    for i in 0..RACES {
        let (peer, m, go) = spinning_peer(SpawnOpts::default());
        // A second monitor: its DOWN says the target is gone and its signals are out.
        let m2 = rusm_otp::monitor(peer);
        go.store(true, Ordering::Release);
        stagger(i);
        active += usize::from(rusm_otp::demonitor(m, true));
        wait_down(m2);
        if let Received::Down { .. } =
            rusm_otp::receive_match(|r| matches!(r, Received::Down { monitor, .. } if *monitor == m), Some(Duration::ZERO))
        {
            late += 1;
        }
    }
    eprintln!("demonitor race: the monitor was still active at {active} of {RACES} demonitors");
    if late == 0 { "no DOWN after demonitor".into() } else { format!("{late} of {RACES} DOWNs after demonitor") }
}

/// The caller monitors a target that is exiting at that moment: exactly one `DOWN` of that
/// monitor arrives, with the target's reason or `noproc`.
fn monitor_race() -> String {
    let (mut wrong, mut noproc) = (0, 0);
    for i in 0..RACES {
        let (peer, m0, go) = spinning_peer(SpawnOpts::default());
        go.store(true, Ordering::Release);
        stagger(i);
        let m = rusm_otp::monitor(peer);
        wait_down(m0);
        let mut downs = Vec::new();
        while let Received::Down { reason, .. } = rusm_otp::receive_match(
            |r| matches!(r, Received::Down { monitor, .. } if *monitor == m),
            Some(if downs.is_empty() { crate::T } else { Duration::ZERO }),
        ) {
            downs.push(reason);
        }
        match downs.as_slice() {
            [ExitReason::NoProc] => noproc += 1,
            [ExitReason::Other(_)] => {}
            _ => wrong += 1,
        }
    }
    eprintln!("monitor race: {noproc} of {RACES} monitors found the target gone (noproc)");
    if wrong == 0 { "exactly one DOWN each time".into() } else { format!("{wrong} of {RACES} tries without exactly one DOWN") }
}

/// The caller (trapping) links to a peer that is exiting at that moment: exactly one
/// `EXIT` from it arrives, its reason or `noproc`.
fn link_race() -> String {
    rusm_otp::trap_exit(true);
    let (mut wrong, mut noproc) = (0, 0);
    for i in 0..RACES {
        let (peer, m, go) = spinning_peer(SpawnOpts::default());
        go.store(true, Ordering::Release);
        stagger(i);
        rusm_otp::link(peer).unwrap();
        wait_down(m);
        // The exit signals go out before the DOWN; a `noproc` is queued by `link` itself.
        let mut exits = Vec::new();
        while let Received::Exit { reason, .. } =
            rusm_otp::receive_match(|r| matches!(r, Received::Exit { from, .. } if *from == peer), Some(Duration::ZERO))
        {
            exits.push(reason);
        }
        match exits.as_slice() {
            [ExitReason::NoProc] => noproc += 1,
            [ExitReason::Other(_)] => {}
            _ => wrong += 1,
        }
    }
    eprintln!("link race: {noproc} of {RACES} links found the peer gone (noproc)");
    if wrong == 0 { "exactly one EXIT each time".into() } else { format!("{wrong} of {RACES} tries without exactly one EXIT") }
}

/// Runs the rows named on the BEAM (`tests/beam/signals.escript`): `name\tobservation`
/// lines, or `None` if `escript` is not installed.
fn beam() -> Option<std::collections::HashMap<String, String>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/beam/signals.escript");
    let out = match std::process::Command::new("escript").arg(script).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("running escript: {e}"),
    };
    assert!(out.status.success(), "escript {script} failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(n, o)| (n.to_owned(), o.to_owned()))
            .collect(),
    )
}

#[test]
fn conformance_table() {
    let node = node();
    let rows: Vec<Row> = signal_rows().into_iter().chain(other_rows()).collect();
    let beam = beam();
    match &beam {
        None if std::env::var_os("RUSM_REQUIRE_BEAM").is_some() => {
            panic!("RUSM_REQUIRE_BEAM is set but `escript` is not installed (apt-get install erlang-base)")
        }
        None => eprintln!("escript not installed: the rows run on rusm-otp only (apt-get install erlang-base to compare with the BEAM)"),
        Some(_) => {}
    }
    let mut failures = Vec::new();
    for row in &rows {
        eprintln!("row: {}", row.name);
        let got = (row.run)(&node);
        if got != row.want {
            failures.push(format!("{}\n    rule: {}\n    want: {}\n    rusm: {got}", row.name, row.rule, row.want));
        }
        if let Some(beam) = &beam {
            match beam.get(&row.name) {
                Some(b) if b == row.want => {}
                Some(b) => failures.push(format!("{}\n    rule: {}\n    want: {}\n    BEAM: {b}", row.name, row.rule, row.want)),
                None => failures.push(format!("{}: the BEAM script has no such row", row.name)),
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} rows differ:\n{}", failures.len(), rows.len(), failures.join("\n"));
    assert_eq!(rows.len(), 46);
}
