//! A worker: answers each job [reply-to: u64][job: u64] with [job][job * job], and
//! crashes (panics) on every Nth job it gets (N: its first argument). `stop` ends it.
wit_bindgen::generate!({ path: "../../../../wit", world: "rusm:runtime/process" });

use rusm::runtime::actor::{self, Item};

struct Worker;

impl Guest for Worker {
    fn run() {
        let crash_every: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(0);
        let mut handled = 0u64;
        loop {
            let Item::Message(m) = actor::receive() else { continue };
            if m == b"stop" {
                return;
            }
            let (Some(to), Some(job)) = (m.get(..8), m.get(8..16)) else { continue };
            let (to, job) = (u64::from_le_bytes(to.try_into().unwrap()), u64::from_le_bytes(job.try_into().unwrap()));
            handled += 1;
            if crash_every > 0 && handled % crash_every == 0 {
                panic!("worker crashed on job {job} (its job number {handled})");
            }
            let mut reply = job.to_le_bytes().to_vec();
            reply.extend_from_slice(&(job * job).to_le_bytes());
            let _ = actor::send(to, &reply);
        }
    }
}

export!(Worker);
