//! The timing wheel against a reference model (a sorted multimap), with random inserts,
//! cancels and time jumps of every size.

use std::collections::BTreeMap;

use crate::timer::wheel::{MAX_DURATION_MS, Wheel};

/// Tiny deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn fires_exactly_the_due_timers_in_deadline_order() {
    for seed in 1..=20u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut wheel = Wheel::new();
        let mut model: BTreeMap<(u64, u64), ()> = BTreeMap::new();
        let mut keys = Vec::new();
        let mut now = 0u64;
        for id in 0..3000u64 {
            match rng.below(10) {
                0..=5 => {
                    // Offsets across every level of the wheel.
                    let span = [10, 100, 5_000, 300_000, 20_000_000][rng.below(5) as usize];
                    let deadline = now + rng.below(span);
                    let k = wheel.insert(deadline, id);
                    model.insert((deadline.max(now), id), ());
                    keys.push((k, deadline.max(now), id));
                }
                6 => {
                    if !keys.is_empty() {
                        let i = rng.below(keys.len() as u64) as usize;
                        let (k, d, id) = keys.swap_remove(i);
                        let was = model.remove(&(d, id)).is_some();
                        assert_eq!(wheel.cancel(k).is_some(), was, "seed {seed}");
                    }
                }
                _ => {
                    let step = [1, 3, 64, 4096, 300_000][rng.below(5) as usize];
                    now += rng.below(step);
                    let mut fired = Vec::new();
                    wheel.advance(now, |id| fired.push(id));
                    let due: Vec<(u64, u64)> = model.range(..(now + 1, 0)).map(|(k, _)| *k).collect();
                    for k in &due {
                        model.remove(k);
                    }
                    // Same set; and non-decreasing deadlines in firing order.
                    let mut want: Vec<u64> = due.iter().map(|(_, id)| *id).collect();
                    let deadlines: std::collections::HashMap<u64, u64> =
                        due.iter().map(|(d, id)| (*id, *d)).collect();
                    let order: Vec<u64> = fired.iter().map(|id| deadlines[id]).collect();
                    assert!(order.windows(2).all(|w| w[0] <= w[1]), "seed {seed}: {order:?}");
                    fired.sort_unstable();
                    want.sort_unstable();
                    assert_eq!(fired, want, "seed {seed} at {now}");
                    keys.retain(|(_, d, _)| *d > now);
                }
            }
            assert_eq!(wheel.len(), model.len());
            if let (Some(next), Some(((d, _), _))) = (wheel.next_expiration(), model.iter().next()) {
                assert!(next <= *d, "next expiration {next} after earliest deadline {d}");
            }
        }
    }
}

#[test]
fn stale_key_cannot_cancel_a_reused_entry() {
    let mut w = Wheel::new();
    let k1 = w.insert(5, "a");
    assert_eq!(w.cancel(k1), Some("a"));
    let k2 = w.insert(5, "b"); // reuses the slab slot
    assert_eq!(w.cancel(k1), None);
    assert!(w.contains(k2));
    let mut fired = Vec::new();
    w.advance(5, |v| fired.push(v));
    assert_eq!(fired, ["b"]);
    assert!(!w.contains(k2));
}

#[test]
fn far_deadlines_are_clamped_not_lost() {
    let mut w = Wheel::new();
    w.insert(u64::MAX / 2, "far");
    let mut fired = Vec::new();
    w.advance(MAX_DURATION_MS, |v| fired.push(v));
    assert_eq!(fired, ["far"]);
}

#[test]
fn past_deadline_fires_on_next_advance() {
    let mut w = Wheel::new();
    w.advance(1000, |_: &str| unreachable!());
    w.insert(10, "late");
    let mut fired = Vec::new();
    w.advance(1000, |v| fired.push(v));
    assert_eq!(fired, ["late"]);
}
