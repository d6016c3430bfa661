//! A `rusm:runtime/process-p3` component (wit-bindgen async, the callback ABI): its
//! `run` is an async export. First message: [test pid][peer pid]. It waits on the p3
//! `wasi:clocks/monotonic-clock@0.3.0` (served by rusm-sched's timers), sends 200,000
//! bytes to the native peer through a `stream<u8>` (`pipes.send-to`), reads the peer's
//! stream back as a `stream<u8>` (`pipes.into-stream`), then sends `p3 ok` to the test.

wit_bindgen::generate!({ path: "../../../../wit", world: "rusm:runtime/process-p3", generate_all });

use rusm::runtime::actor::{self, Item, Kinds};
use rusm::runtime::{pipes, streams};
use wasi::clocks::monotonic_clock;

struct P3;

fn pid_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn expect_message(tag: &[u8]) -> Vec<u8> {
    let f = actor::Filter { kinds: Kinds::MESSAGE, tag: tag.to_vec(), monitor: None };
    match actor::receive_match(&f, Some(5000)) {
        Some(Item::Message(m)) => m,
        _ => panic!("no message tagged {:?} within 5 s", String::from_utf8_lossy(tag)),
    }
}

impl Guest for P3 {
    async fn run() {
        let setup = loop {
            if let Item::Message(m) = actor::receive() {
                break m;
            }
        };
        let (test, peer) = (pid_at(&setup, 0), pid_at(&setup, 8));
        let me = actor::self_pid();

        let t0 = monotonic_clock::now();
        monotonic_clock::wait_for(5_000_000).await;
        let waited = monotonic_clock::now() - t0;
        assert!(waited >= 5_000_000, "waited {waited} ns");

        let (mut tx, rx) = wit_stream::new::<u8>();
        assert!(pipes::send_to(peer, rx));
        let left = tx.write_all(vec![9u8; 200_000]).await;
        assert!(left.is_empty(), "{} bytes not taken", left.len());
        drop(tx);
        assert_eq!(expect_message(b"got "), b"got 200000");

        let mut ask = me.to_le_bytes().to_vec();
        ask.extend_from_slice(b"stream-me");
        let _ = actor::send(peer, &ask);
        let reader = streams::accept(Some(5000)).expect("the peer's stream");
        let mut s = pipes::into_stream(reader);
        let mut got = Vec::new();
        loop {
            let (result, chunk) = s.read(Vec::with_capacity(4096)).await;
            got.extend_from_slice(&chunk);
            if matches!(result, wit_bindgen::StreamResult::Dropped) {
                break;
            }
        }
        assert_eq!(got, b"from native".repeat(1000));
        let _ = actor::send(test, format!("p3 ok waited {}ms", waited / 1_000_000).as_bytes());
    }
}

export!(P3);
