//! `parker` in the preview 3 world (`rusm:runtime/process-p3`, wit-bindgen async, the
//! callback ABI): its async `run` says `hello` to the process registered as `idle-bench`,
//! then waits in `receive` for ever. rusm-bench's `idle-components-p3` guest.
wit_bindgen::generate!({ path: "../../../../wit", world: "rusm:runtime/process-p3", generate_all });

use rusm::runtime::actor;

struct Parker;

impl Guest for Parker {
    async fn run() {
        if let Some(bench) = actor::whereis("idle-bench") {
            let _ = actor::send(bench, b"hello");
        }
        loop {
            actor::receive();
        }
    }
}

export!(Parker);
