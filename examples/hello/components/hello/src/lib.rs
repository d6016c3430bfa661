//! Prints a greeting with its argument and how many processes its app has, then returns
//! (exit `normal`).
wit_bindgen::generate!({ path: "../../../../wit", world: "rusm:runtime/process" });

use rusm::runtime::actor;

struct Hello;

impl Guest for Hello {
    fn run() {
        let who = std::env::args().nth(1).unwrap_or_else(|| "world".to_owned());
        // list-processes: under the sandboxed profile, the processes of this app only.
        let here = actor::list_processes().len();
        println!("Hello, {who}! I am one of {here} process(es) of this app.");
    }
}

export!(Hello);
