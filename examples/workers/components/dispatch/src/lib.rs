//! Sends N jobs to the `workers` group, one at a time, round robin. It monitors the
//! worker it gave a job to: if that worker dies first, the job goes to another member.
//! Then it checks every answer, prints a summary and stops the workers.
wit_bindgen::generate!({ path: "../../../../wit", world: "rusm:runtime/process" });

use rusm::runtime::actor::{self, Filter, Item, Kinds};

struct Dispatch;

impl Guest for Dispatch {
    fn run() {
        let jobs: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100);
        let me = actor::self_pid();
        let (mut correct, mut retried, mut next) = (0u64, 0u64, 0usize);
        for job in 0..jobs {
            loop {
                let members = actor::group_members("workers");
                if members.is_empty() {
                    // Every worker is restarting: wait a moment.
                    actor::sleep(5);
                    continue;
                }
                let worker = members[next % members.len()];
                next += 1;
                let m = actor::monitor(worker);
                let mut msg = me.to_le_bytes().to_vec();
                msg.extend_from_slice(&job.to_le_bytes());
                let _ = actor::send(worker, &msg);
                let filter = Filter { kinds: Kinds::MESSAGE | Kinds::DOWN, tag: job.to_le_bytes().to_vec(), monitor: Some(m) };
                match actor::receive_match(&filter, Some(10_000)) {
                    Some(Item::Message(reply)) => {
                        actor::demonitor(m, true);
                        let square = u64::from_le_bytes(reply[8..16].try_into().unwrap());
                        correct += u64::from(square == job * job);
                        break;
                    }
                    // The worker died with the job: give it to another.
                    Some(Item::Down(_)) => retried += 1,
                    other => panic!("no answer to job {job}: {other:?}"),
                }
            }
        }
        println!("dispatch: {jobs} jobs answered, {correct} correct, {retried} retried after a worker crashed");
        for w in actor::group_members("workers") {
            let _ = actor::send(w, b"stop");
        }
    }
}

export!(Dispatch);
