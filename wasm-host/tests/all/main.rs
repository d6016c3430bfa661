//! rusm-wasm integration tests: one binary (see STYLE: one test binary per crate).

mod abi;
mod caps;
mod common;
mod containment;
mod components;
mod guests;
mod misbehave;
mod preempt;
mod signals;
