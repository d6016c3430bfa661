//! The smallest Rust wasip1 program: what `module-storm` spawns.
fn main() {}
