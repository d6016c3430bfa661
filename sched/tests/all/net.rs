use std::io::{Read, Write};

use rusm_sched::net::{TcpListener, TcpStream};

use crate::rt;

#[test]
fn tcp_echo_through_fibers_on_loopback() {
    const CLIENTS: usize = 20;
    const BYTES: usize = 64 * 1024;
    let rt = rt(2);
    let total = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        // One fiber per accepted connection, as an Erlang server would.
        let server = rusm_sched::spawn(move || {
            for _ in 0..CLIENTS {
                let (mut s, _) = listener.accept().unwrap();
                rusm_sched::spawn(move || {
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = s.read(&mut buf).unwrap();
                        if n == 0 {
                            break;
                        }
                        s.write_all(&buf[..n]).unwrap();
                    }
                })
                .unwrap();
            }
        })
        .unwrap();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                rusm_sched::spawn(move || {
                    let s = std::sync::Arc::new(TcpStream::connect(addr).unwrap());
                    let data: Vec<u8> = (0..BYTES).map(|i| (i * 7 + c) as u8).collect();
                    // A writer fiber and a reader fiber share the socket.
                    let writer = {
                        let data = data.clone();
                        let w = s.clone();
                        rusm_sched::spawn(move || {
                            (&*w).write_all(&data).unwrap();
                            w.shutdown(std::net::Shutdown::Write).unwrap();
                        })
                        .unwrap()
                    };
                    let mut back = Vec::new();
                    (&*s).read_to_end(&mut back).unwrap();
                    writer.join().unwrap();
                    assert_eq!(back, data);
                    back.len()
                })
                .unwrap()
            })
            .collect();
        let mut total = 0;
        for c in clients {
            total += c.await.unwrap();
        }
        server.await.unwrap();
        total
    });
    assert_eq!(total, CLIENTS * BYTES);
}

#[test]
fn connect_refused_is_an_error_not_a_hang() {
    let rt = rt(1);
    let r = rt.block_on(async {
        // Bind then drop to find a port nobody listens on.
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        rusm_sched::spawn(move || TcpStream::connect(addr).map(|_| ()))
            .unwrap()
            .await
            .unwrap()
    });
    assert!(r.is_err());
}

#[test]
fn io_is_served_while_every_worker_is_busy() {
    // Both workers run a stream of short fibers that never lets them go idle; a socket
    // read must still complete (the reactor is polled on a tick, not only when idle).
    let rt = rt(2);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            rt.handle()
                .spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        rusm_sched::spawn(|| ()).unwrap().join().unwrap();
                    }
                })
                .unwrap()
        })
        .collect();
    let got = rt.block_on(async {
        let l = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let server = rusm_sched::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 4];
            s.read_exact(&mut b).unwrap();
            b
        })
        .unwrap();
        std::thread::spawn(move || {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.write_all(b"ping").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(100));
        });
        server.await.unwrap()
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for b in busy {
        b.join().unwrap();
    }
    assert_eq!(&got, b"ping");
}
