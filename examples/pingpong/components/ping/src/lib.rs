//! Finds `pong` by name, makes N round trips (N: its first argument), prints how long
//! they took, then sends pong `stop`.
wit_bindgen::generate!({ path: "../../../../wit", world: "rusm:runtime/process" });

use std::time::Instant;

use rusm::runtime::actor::{self, Item};

struct Ping;

fn request(me: u64, payload: &[u8]) -> Vec<u8> {
    let mut m = me.to_le_bytes().to_vec();
    m.extend_from_slice(payload);
    m
}

impl Guest for Ping {
    fn run() {
        let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
        let pong = actor::whereis("pong").expect("pong is registered before ping starts (start_after)");
        let me = actor::self_pid();
        let started = Instant::now();
        for i in 0..n {
            let payload = i.to_le_bytes();
            actor::send(pong, &request(me, &payload)).expect("pong's mailbox has room");
            match actor::receive() {
                Item::Message(m) if m == payload => {}
                other => panic!("pong answered {other:?} to ping {i}"),
            }
        }
        let took = started.elapsed();
        println!(
            "ping: {n} round trips to pong in {:.1} ms, {:.2} µs each",
            took.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e6 / n.max(1) as f64
        );
        let _ = actor::send(pong, &request(me, b"stop"));
    }
}

export!(Ping);
