//! A `rusm:runtime/process-p3` component that waits for its mailbox with the async
//! `mailbox` calls while another of its tasks runs. First message (through
//! `mailbox.receive`): [test pid]. Then, at once: one task awaits a message tagged `ping`
//! (`mailbox.receive-match`, no timeout: only the host's wake-up can end it) and answers
//! `pong`, while another sends `tick` three times,
//! 10 ms apart (the ticks arrive while the first task waits). Then it sends `timeout` if
//! `mailbox.receive-timeout(20)` finds nothing, and parks in `mailbox.receive` for ever.

wit_bindgen::generate!({ path: "../../../../wit", world: "rusm:runtime/process-p3", generate_all });

use std::future::Future;
use std::pin::pin;
use std::task::Poll;

use rusm::runtime::actor::{self, Filter, Item, Kinds};
use rusm::runtime::mailbox;
use wasi::clocks::monotonic_clock;

struct P3Mail;

/// Runs `a` and `b` side by side in this task until both are done.
async fn join(a: impl Future<Output = ()>, b: impl Future<Output = ()>) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut a_done, mut b_done) = (false, false);
    std::future::poll_fn(|cx| {
        if !a_done {
            a_done = a.as_mut().poll(cx).is_ready();
        }
        if !b_done {
            b_done = b.as_mut().poll(cx).is_ready();
        }
        if a_done && b_done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await
}

impl Guest for P3Mail {
    async fn run() {
        let setup = loop {
            if let Item::Message(m) = mailbox::receive().await {
                break m;
            }
        };
        let test = u64::from_le_bytes(setup[..8].try_into().expect("a pid"));
        let waiter = async {
            let f = Filter { kinds: Kinds::MESSAGE, tag: b"ping".to_vec(), monitor: None };
            match mailbox::receive_match(f, None).await {
                Some(Item::Message(_)) => drop(actor::send(test, b"pong")),
                _ => drop(actor::send(test, b"no ping")),
            }
        };
        let ticker = async {
            for _ in 0..3 {
                monotonic_clock::wait_for(10_000_000).await;
                let _ = actor::send(test, b"tick");
            }
        };
        join(waiter, ticker).await;
        let got = mailbox::receive_timeout(20).await;
        let _ = actor::send(test, if got.is_none() { b"timeout".as_slice() } else { b"an item" });
        loop {
            mailbox::receive().await;
        }
    }
}

export!(P3Mail);
