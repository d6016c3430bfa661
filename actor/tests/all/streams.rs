use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rusm_otp::stream::{self, StreamError, StreamReader};
use rusm_otp::{ExitReason, Message, Received};

use crate::{node, recv};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn reader_of(r: Received) -> StreamReader {
    match r {
        Received::Stream(s) => s,
        other => panic!("expected a stream, got {other:?}"),
    }
}

#[test]
fn a_slow_reader_holds_the_writer_back_and_every_byte_arrives_in_order() {
    const TOTAL: usize = 1 << 20;
    const CAP: usize = 4096;
    let node = node();
    let consumed = Arc::new(AtomicUsize::new(0));
    let c2 = consumed.clone();
    let (got, behind) = node
        .run(move || {
            let me = rusm_otp::self_pid();
            let c3 = c2.clone();
            let reader = rusm_otp::spawn(move || {
                let mut s = reader_of(recv());
                let mut all = Vec::new();
                let mut buf = [0u8; 1000];
                loop {
                    let n = s.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    all.extend_from_slice(&buf[..n]);
                    c3.store(all.len(), Ordering::SeqCst);
                    if all.len() % 64 == 0 {
                        rusm_sched::yield_now();
                    }
                }
                rusm_otp::send(me, Message::value(all));
            })
            .unwrap();
            let mut w = stream::open_with_capacity(reader, CAP).unwrap();
            let data = pattern(TOTAL);
            let mut largest = 0;
            let mut off = 0;
            while off < TOTAL {
                let n = w.write(&data[off..]).unwrap();
                largest = largest.max(n);
                off += n;
            }
            assert!(largest <= CAP, "one write took {largest} bytes into a {CAP}-byte pipe");
            // The writer is done only once the reader has taken all but a pipeful.
            let behind = TOTAL - c2.load(Ordering::SeqCst);
            w.close();
            match recv() {
                Received::Message(m) => (m.downcast::<Vec<u8>>().unwrap(), behind),
                other => panic!("{other:?}"),
            }
        })
        .unwrap();
    assert!(behind <= CAP, "writer finished {behind} bytes ahead of the reader");
    assert_eq!(got.len(), TOTAL);
    assert!(got == pattern(TOTAL), "bytes out of order");
    assert!(consumed.load(Ordering::SeqCst) == TOTAL);
}

#[test]
fn stream_to_a_dead_process_is_noproc() {
    let node = node();
    node.run(|| {
        let (dead, _) = rusm_otp::spawn_monitor(|| {}).unwrap();
        recv();
        assert_eq!(stream::open(dead).unwrap_err(), StreamError::NoProc);
        assert_eq!(
            stream::open_with_capacity(rusm_otp::self_pid(), 0).unwrap_err(),
            StreamError::ZeroCapacity
        );
    })
    .unwrap();
}

/// Opens a stream from a child that writes `b"partial"` and then ends as `finish` says;
/// returns what the parent read and how the read ended.
fn read_until_end(finish: fn()) -> (Vec<u8>, std::io::Result<usize>) {
    let node = node();
    node.run(move || {
        let me = rusm_otp::self_pid();
        rusm_otp::spawn(move || {
            let mut w = stream::open(me).unwrap();
            w.write_all(b"partial").unwrap();
            let _keep = w;
            finish();
        })
        .unwrap();
        let mut s = reader_of(recv());
        let mut got = vec![0u8; 7];
        s.read_exact(&mut got).unwrap();
        let end = s.read(&mut [0u8; 16]);
        (got, end)
    })
    .unwrap()
}

#[test]
fn closing_the_writer_is_eof_after_the_buffered_bytes() {
    let (got, end) = read_until_end(|| {});
    assert_eq!(got, b"partial");
    assert_eq!(end.unwrap(), 0);
}

#[test]
fn a_writer_that_crashes_is_an_error_for_the_reader_after_its_bytes() {
    let (got, end) = read_until_end(|| panic!("writer blew up"));
    assert_eq!(got, b"partial");
    let e = end.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionAborted);
}

#[test]
fn a_writer_killed_while_blocked_on_a_full_pipe_breaks_the_stream() {
    let node = node();
    let (err, writer_reason) = node
        .run(|| {
            let me = rusm_otp::self_pid();
            let (writer, _) = rusm_otp::spawn_monitor(move || {
                let mut w = stream::open_with_capacity(me, 8).unwrap();
                w.write_all(&[7u8; 8]).unwrap();
                rusm_otp::send(me, Message::value(()));
                // Blocks for ever: the pipe is full.
                let _ = w.write_all(&[7u8; 64]);
            })
            .unwrap();
            let mut s = reader_of(recv());
            recv(); // the pipe is full
            rusm_sched::sleep(Duration::from_millis(5));
            rusm_otp::kill(writer);
            let reason = match recv() {
                Received::Down { reason, .. } => reason,
                other => panic!("{other:?}"),
            };
            let mut buf = [0u8; 8];
            s.read_exact(&mut buf).unwrap();
            (s.read(&mut buf).unwrap_err(), reason)
        })
        .unwrap();
    assert_eq!(writer_reason, ExitReason::Killed);
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted);
    assert!(err.to_string().contains("killed"), "{err}");
}

#[test]
fn a_dead_reader_is_broken_pipe_for_a_blocked_writer() {
    let node = node();
    let err = node
        .run(|| {
            let reader = rusm_otp::spawn(|| {
                let _s = reader_of(recv());
                rusm_sched::sleep(Duration::from_millis(20));
                panic!("reader gives up");
            })
            .unwrap();
            let mut w = stream::open_with_capacity(reader, 16).unwrap();
            w.write_all(&[1u8; 1 << 16]).unwrap_err()
        })
        .unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
}

#[test]
fn a_process_blocked_in_a_stream_read_can_be_killed() {
    let node = node();
    let reason = node
        .run(|| {
            let me = rusm_otp::self_pid();
            let (reader, _) = rusm_otp::spawn_monitor(move || {
                let mut s = reader_of(recv());
                rusm_otp::send(me, Message::value(()));
                let _ = s.read(&mut [0u8; 4]);
                unreachable!("nothing is ever written");
            })
            .unwrap();
            let _w = stream::open(reader).unwrap();
            recv();
            rusm_sched::sleep(Duration::from_millis(10));
            rusm_otp::kill(reader);
            match recv() {
                Received::Down { reason, .. } => reason,
                other => panic!("{other:?}"),
            }
        })
        .unwrap();
    assert_eq!(reason, ExitReason::Killed);
}

#[test]
fn a_reader_outside_the_runtime_and_a_future_body_reader() {
    let node = node();
    // A plain thread reads with std::io::Read (parks the thread).
    let (tx, rx) = std::sync::mpsc::channel();
    let thread_reader = node
        .spawn(move || {
            let s = reader_of(recv());
            tx.send(s).unwrap();
        })
        .unwrap();
    // A future body reads with AsyncRead.
    let (ftx, frx) = std::sync::mpsc::channel();
    let future_reader = node
        .spawn_future("test", rusm_otp::SpawnOpts::default(), async move {
            let item = std::future::poll_fn(rusm_otp::poll_receive).await;
            let mut s = reader_of(item);
            let mut all = Vec::new();
            let mut buf = [0u8; 3];
            loop {
                let n = std::future::poll_fn(|cx| {
                    futures_io::AsyncRead::poll_read(std::pin::Pin::new(&mut s), cx, &mut buf)
                })
                .await
                .unwrap();
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
            }
            ftx.send(all).unwrap();
            ExitReason::Normal
        })
        .unwrap();
    let plain = std::thread::spawn(move || {
        let mut s = rx.recv().unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).unwrap();
        got
    });
    node.run(move || {
        for to in [thread_reader, future_reader] {
            let mut w = stream::open_with_capacity(to, 5).unwrap();
            w.write_all(b"hello, stream").unwrap();
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plain.join().unwrap(), "hello, stream");
    assert_eq!(frx.recv().unwrap(), b"hello, stream");
}
