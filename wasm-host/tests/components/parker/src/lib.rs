//! Parks in `receive` for ever after saying `hello` to the process registered as
//! `idle-bench`: rusm-bench's idle-components guest (the smallest parked component).
wit_bindgen::generate!({ path: "../../../../wit", world: "rusm:runtime/process" });

use rusm::runtime::actor;

struct Parker;

impl Guest for Parker {
    fn run() {
        if let Some(bench) = actor::whereis("idle-bench") {
            let _ = actor::send(bench, b"hello");
        }
        loop {
            actor::receive();
        }
    }
}

export!(Parker);
