use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use rusm_otp::tcp::{self, TcpStream};
use rusm_otp::{ExitReason, Message, Pid, Received};

use crate::{node, recv};

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Each connection's handler tells who it is, then echoes lines until EOF; `crash` makes
/// it panic.
fn echo(s: TcpStream) {
    let me = rusm_otp::self_pid();
    (&s).write_all(format!("{me}\n").as_bytes()).unwrap();
    let mut buf = [0u8; 256];
    loop {
        let n = (&s).read(&mut buf).unwrap();
        if n == 0 {
            return;
        }
        if buf[..n].starts_with(b"crash") {
            panic!("told to crash");
        }
        (&s).write_all(&buf[..n]).unwrap();
    }
}

fn read_line(s: &TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while (&*s).read(&mut b).unwrap() == 1 && b[0] != b'\n' {
        out.push(b[0]);
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn every_connection_gets_a_process_and_a_crash_takes_only_its_own() {
    let node = node();
    let handlers = node
        .run(|| {
            let l = tcp::listen(any_port(), echo).unwrap();
            let me = rusm_otp::self_pid();
            let clients: Vec<Pid> = (0..20)
                .map(|i| {
                    rusm_otp::spawn(move || {
                        let s = TcpStream::connect(l.local_addr).unwrap();
                        let handler = read_line(&s);
                        let msg = format!("hello {i}\n");
                        (&s).write_all(msg.as_bytes()).unwrap();
                        let mut back = vec![0u8; msg.len()];
                        (&s).read_exact(&mut back).unwrap();
                        assert_eq!(back, msg.as_bytes());
                        rusm_otp::send(me, Message::value(handler));
                    })
                    .unwrap()
                })
                .collect();
            let mut handlers = HashSet::new();
            for _ in &clients {
                match recv() {
                    Received::Message(m) => handlers.insert(m.downcast::<String>().unwrap()),
                    other => panic!("{other:?}"),
                };
            }
            // One connection crashes its handler; the listener and the others go on.
            let s = TcpStream::connect(l.local_addr).unwrap();
            read_line(&s);
            (&s).write_all(b"crash\n").unwrap();
            assert_eq!((&s).read(&mut [0u8; 8]).unwrap(), 0, "a crashed handler closes its socket");
            assert!(rusm_otp::is_alive(l.pid));
            let again = TcpStream::connect(l.local_addr).unwrap();
            (&again).write_all(b"still here\n").unwrap();
            read_line(&again);
            assert_eq!(read_line(&again), "still here");
            handlers
        })
        .unwrap();
    assert_eq!(handlers.len(), 20, "one handler process per connection");
}

#[test]
fn killing_the_listener_closes_it_and_a_blocked_handler_can_be_killed() {
    let node = node();
    node.run(|| {
        let me = rusm_otp::self_pid();
        let l = tcp::listen(any_port(), move |s| {
            rusm_otp::send(me, Message::value(rusm_otp::self_pid()));
            let _ = (&s).read(&mut [0u8; 8]);
            unreachable!("the client never writes");
        })
        .unwrap();
        // The listener is linked to its owner; unlink so killing it leaves us alive.
        rusm_otp::unlink(l.pid);
        let s = TcpStream::connect(l.local_addr).unwrap();
        let handler = match recv() {
            Received::Message(m) => m.downcast::<Pid>().unwrap(),
            other => panic!("{other:?}"),
        };
        let m = rusm_otp::monitor(handler);
        rusm_otp::kill(handler);
        match recv() {
            Received::Down { monitor, reason, .. } => {
                assert_eq!(monitor, m);
                assert_eq!(reason, ExitReason::Killed);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!((&s).read(&mut [0u8; 8]).unwrap(), 0, "the killed handler's socket closed");
        let lm = rusm_otp::monitor(l.pid);
        rusm_otp::kill(l.pid);
        assert!(matches!(recv(), Received::Down { monitor, .. } if monitor == lm));
        rusm_sched::sleep(Duration::from_millis(5));
        assert!(TcpStream::connect(l.local_addr).is_err(), "the listener is closed");
    })
    .unwrap();
}

#[test]
fn listen_on_a_taken_port_is_the_callers_error() {
    let node = node();
    node.run(|| {
        let l = tcp::listen(any_port(), |_| {}).unwrap();
        let e = tcp::listen(l.local_addr, |_| {}).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
    })
    .unwrap();
}
