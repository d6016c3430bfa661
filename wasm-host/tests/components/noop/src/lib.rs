//! `run` returns at once: the component-storm benchmark's guest.
wit_bindgen::generate!({ path: "../../../../wit", world: "rusm:runtime/process" });

struct Noop;

impl Guest for Noop {
    fn run() {}
}

export!(Noop);
