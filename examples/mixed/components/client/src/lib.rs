//! A component that counts to 10 through `counter`, a wasip1 module, then stops it.
wit_bindgen::generate!({ path: "../../../../wit", world: "rusm:runtime/process" });

use rusm::runtime::actor::{self, Item};

struct Client;

impl Guest for Client {
    fn run() {
        let counter = actor::whereis("counter").expect("counter is registered before client starts (start_after)");
        let me = actor::self_pid();
        let mut n = 0u64;
        for _ in 0..10 {
            let mut msg = me.to_le_bytes().to_vec();
            msg.extend_from_slice(&n.to_le_bytes());
            actor::send(counter, &msg).expect("counter's mailbox has room");
            let Item::Message(reply) = actor::receive() else { panic!("counter did not answer") };
            n = u64::from_le_bytes(reply[..8].try_into().unwrap());
        }
        println!("client (component): counted to {n} through the wasip1 module");
        let _ = actor::send(counter, b"stop");
    }
}

export!(Client);
