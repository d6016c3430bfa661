//! One TCP connection: echoes every byte back until the client closes. A line `crash`
//! panics (the connection ends; the listener and every other connection go on).
wit_bindgen::generate!({ path: "../../../../wit", world: "rusm:runtime/process" });

use rusm::runtime::actor::{self, Item};
use rusm::runtime::streams::{self, Writer};

struct Echo;

/// Writes all of `data`, however the pipe splits it.
fn write_all(w: &Writer, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match w.write(data) {
            Ok(n) => data = &data[n as usize..],
            Err(_) => return false,
        }
    }
    true
}

impl Guest for Echo {
    fn run() {
        // The first item of a connection instance's mailbox is the connection.
        let Item::Stream(incoming) = actor::receive() else { return };
        let replies = streams::open(incoming.peer()).expect("the connection's process is alive");
        loop {
            match incoming.read(64 << 10) {
                Ok(data) if data.is_empty() => break,
                Ok(data) => {
                    if data.windows(6).any(|w| w == b"crash\n") {
                        panic!("asked to crash");
                    }
                    if !write_all(&replies, &data) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        Writer::close(replies);
    }
}

export!(Echo);
