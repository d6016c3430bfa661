//! Unit tests of sched internals (STYLE §6: in their own files so editing a test does not
//! rebuild the library's other modules' tests).

mod loom_models;
mod state;
mod wheel;
