//! `std::thread::sleep` in a wasip1 guest (WASI `poll_oneoff` with one relative clock
//! subscription). First message: [test pid][ms: u64]. Sleeps `ms`, then sends
//! "slept <elapsed ms>" to the test, timed with `std::time::Instant` (WASI's monotonic
//! clock).

use rusm_test_guests::*;

fn main() {
    let first = recv(-1).expect("setup");
    let test = pid_at(&first.data, 0);
    let ms = u64::from_le_bytes(first.data[8..16].try_into().expect("ms"));
    let t = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_millis(ms));
    send(test, format!("slept {}", t.elapsed().as_millis()).as_bytes());
}
