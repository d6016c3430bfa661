//! Answers each message [reply-to pid: u64 LE][payload] with the payload; the payload
//! `stop` ends it normally.
wit_bindgen::generate!({ path: "../../../../wit", world: "rusm:runtime/process" });

use rusm::runtime::actor::{self, Item};

struct Pong;

impl Guest for Pong {
    fn run() {
        let mut answered = 0u64;
        loop {
            let Item::Message(m) = actor::receive() else { continue };
            let Some((to, payload)) = m.split_first_chunk::<8>() else { continue };
            if payload == b"stop" {
                println!("pong: answered {answered} pings, stopping");
                return;
            }
            // A full mailbox at the sender is its problem, not ours: skip the reply.
            let _ = actor::send(u64::from_le_bytes(*to), payload);
            answered += 1;
        }
    }
}

export!(Pong);
