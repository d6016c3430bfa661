use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusm_otp::{ExitReason, Received, RegisterError};

use crate::{T, node, recv};

#[test]
fn register_whereis_unregister_and_one_name_per_process() {
    let node = node();
    node.run(|| {
        let me = rusm_otp::self_pid();
        assert_eq!(rusm_otp::register("svc", me), Ok(()));
        assert_eq!(rusm_otp::whereis("svc"), Some(me));
        assert_eq!(rusm_otp::register("svc", me), Err(RegisterError::NameTaken));
        assert_eq!(rusm_otp::register("other", me), Err(RegisterError::AlreadyRegistered));
        assert!(rusm_otp::unregister("svc"));
        assert!(!rusm_otp::unregister("svc"));
        assert_eq!(rusm_otp::whereis("svc"), None);
        assert_eq!(rusm_otp::register("other", me), Ok(()));
        assert!(rusm_otp::send_named("other", b"hi".to_vec()));
        assert!(!rusm_otp::send_named("nobody", b"hi".to_vec()));
        assert!(matches!(recv(), Received::Message(_)));
    })
    .unwrap();
}

#[test]
fn name_is_free_before_the_down_arrives() {
    let node = node();
    node.run(|| {
        let (pid, m) = rusm_otp::spawn_monitor(|| {
            rusm_otp::register("worker", rusm_otp::self_pid()).unwrap();
            let _ = rusm_otp::receive();
        })
        .unwrap();
        while rusm_otp::whereis("worker").is_none() {
            rusm_otp::check();
            std::thread::yield_now();
        }
        rusm_otp::exit(pid, ExitReason::Other("stop".into()));
        match recv() {
            Received::Down { monitor, .. } => assert_eq!(monitor, m),
            o => panic!("{o:?}"),
        }
        // The moment we hear of the death, the name is free to take.
        assert_eq!(rusm_otp::whereis("worker"), None);
        assert_eq!(rusm_otp::register("worker", rusm_otp::self_pid()), Ok(()));
    })
    .unwrap();
}

#[test]
fn two_processes_racing_for_one_name_exactly_one_wins() {
    let node = node();
    for _ in 0..50 {
        let wins = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        let pids: Vec<_> = (0..2)
            .map(|_| {
                let (w, tx) = (wins.clone(), tx.clone());
                node.spawn(move || {
                    if rusm_otp::register("contested", rusm_otp::self_pid()).is_ok() {
                        w.fetch_add(1, Ordering::SeqCst);
                    }
                    tx.send(()).unwrap();
                    // Stay alive (holding the name if we won) until told to go.
                    let _ = rusm_otp::receive();
                })
                .unwrap()
            })
            .collect();
        rx.recv_timeout(T).unwrap();
        rx.recv_timeout(T).unwrap();
        assert_eq!(wins.load(Ordering::SeqCst), 1);
        for p in pids {
            node.exit(p, ExitReason::Kill);
        }
        // The name goes with the winner.
        let end = std::time::Instant::now() + T;
        while node.whereis("contested").is_some() {
            assert!(std::time::Instant::now() < end);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

#[test]
fn info_reports_links_names_and_labels() {
    let node = node();
    node.run(|| {
        rusm_otp::set_label("tester");
        rusm_otp::trap_exit(true);
        let me = rusm_otp::self_pid();
        rusm_otp::register("me", me).unwrap();
        let child = rusm_otp::spawn_link(|| {
            let _ = rusm_otp::receive();
        })
        .unwrap();
        let i = rusm_otp::info(me).unwrap();
        assert_eq!(i.label.as_deref(), Some("tester"));
        assert_eq!(i.name.as_deref(), Some("me"));
        assert_eq!(i.links, vec![child]);
        assert!(i.trap_exit);
        assert_eq!(i.kind, "native");
        assert_eq!(i.status, rusm_otp::ProcessStatus::Running);
        // The child parks in its receive: Waiting.
        let end = std::time::Instant::now() + crate::T;
        while rusm_otp::info(child).unwrap().status != rusm_otp::ProcessStatus::Waiting {
            assert!(std::time::Instant::now() < end, "the child never showed as waiting");
            rusm_sched::sleep(std::time::Duration::from_millis(1));
        }
        assert!(rusm_otp::processes().contains(&child));
        assert!(rusm_otp::is_alive(child));
    })
    .unwrap();
}

#[test]
fn pids_are_generation_checked() {
    let node = node();
    let first = node.spawn(|| {}).unwrap();
    let _ = node.await_exit(first, std::time::Duration::from_millis(100));
    // Churn until the slot is reused; the old pid must never reach the new process.
    for _ in 0..200 {
        let p = node.spawn(|| {
            let _ = rusm_otp::receive_timeout(std::time::Duration::from_millis(50));
        })
        .unwrap();
        if p.index() == first.index() {
            assert_ne!(p.serial(), first.serial());
            assert!(!node.is_alive(first));
            assert!(node.is_alive(p));
            return;
        }
    }
}
