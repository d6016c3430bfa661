//! A hierarchical timing wheel with millisecond resolution.
//!
//! Six levels of 64 slots: level `l` slots are `64^l` ms wide, so the wheel spans `2^36` ms
//! (about 2.2 years; later deadlines are clamped). An entry sits at the level of the highest
//! 6-bit group in which its deadline differs from the wheel's `elapsed` time; when that slot
//! comes due its entries are re-inserted and fall to lower levels, until level 0 fires them.
//! Entries live in a slab and each slot is a doubly linked list through it, so insert, cancel
//! and fire are O(1) (the layout tokio's timer wheel uses, written anew here).
//!
//! # Invariants
//!
//! * Every live entry is in exactly one slot list, the one `level_and_slot` names for its
//!   deadline relative to `elapsed` at insertion.
//! * `occupied[l]` has bit `s` set iff slot `(l, s)`'s list is non-empty.
//! * A key is `(index, generation)`; freeing an entry bumps its generation, so a stale key
//!   never cancels a newer timer.

const LEVELS: usize = 6;
const SLOTS: usize = 64;
const NIL: u32 = u32::MAX;
/// Largest deadline offset the wheel can hold.
pub(crate) const MAX_DURATION_MS: u64 = (1 << (6 * LEVELS)) - 1;

/// Identifies one inserted timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerKey {
    index: u32,
    generation: u32,
}

impl TimerKey {
    /// A timer past the wheel's horizon: never fires, always pending, in no slot.
    pub(crate) const NEVER: TimerKey = TimerKey { index: u32::MAX, generation: u32::MAX };
}

#[derive(Debug)]
struct Entry<T> {
    deadline: u64,
    value: Option<T>,
    prev: u32,
    next: u32,
    level: u8,
    slot: u8,
    generation: u32,
}

/// The wheel; `T` is what a timer carries (the runtime stores a waker or a callback).
#[derive(Debug)]
pub(crate) struct Wheel<T> {
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    heads: [[u32; SLOTS]; LEVELS],
    occupied: [u64; LEVELS],
    elapsed: u64,
    len: usize,
}

fn level_for(elapsed: u64, deadline: u64) -> usize {
    let masked = (elapsed ^ deadline) | (SLOTS as u64 - 1);
    let significant = 63 - masked.leading_zeros() as usize;
    (significant / 6).min(LEVELS - 1)
}

fn slot_range(level: usize) -> u64 {
    1u64 << (6 * level)
}

fn level_range(level: usize) -> u64 {
    1u64 << (6 * (level + 1))
}

impl<T> Wheel<T> {
    pub(crate) fn new() -> Self {
        Wheel {
            entries: Vec::new(),
            free: Vec::new(),
            heads: [[NIL; SLOTS]; LEVELS],
            occupied: [0; LEVELS],
            elapsed: 0,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Inserts a timer for `deadline` (ms). A deadline at or before `elapsed` is placed in
    /// the current slot and fires at the next `advance`.
    pub(crate) fn insert(&mut self, deadline: u64, value: T) -> TimerKey {
        let deadline = deadline
            .max(self.elapsed)
            .min(self.elapsed + MAX_DURATION_MS);
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.entries.push(Entry {
                    deadline: 0,
                    value: None,
                    prev: NIL,
                    next: NIL,
                    level: 0,
                    slot: 0,
                    generation: 0,
                });
                u32::try_from(self.entries.len() - 1).expect("fewer than 2^32 timers")
            }
        };
        let e = &mut self.entries[index as usize];
        e.deadline = deadline;
        e.value = Some(value);
        let generation = e.generation;
        self.link(index);
        self.len += 1;
        TimerKey { index, generation }
    }

    /// Removes a timer. Returns its value if it had not fired yet.
    pub(crate) fn cancel(&mut self, key: TimerKey) -> Option<T> {
        let e = self.entries.get(key.index as usize)?;
        if e.generation != key.generation || e.value.is_none() {
            return None;
        }
        self.unlink(key.index);
        Some(self.release(key.index))
    }

    /// Is this timer still pending?
    pub(crate) fn contains(&self, key: TimerKey) -> bool {
        key == TimerKey::NEVER
            || self
                .entries
            .get(key.index as usize)
            .is_some_and(|e| e.generation == key.generation && e.value.is_some())
    }

    fn release(&mut self, index: u32) -> T {
        let e = &mut self.entries[index as usize];
        e.generation = e.generation.wrapping_add(1);
        self.free.push(index);
        self.len -= 1;
        e.value.take().expect("live entry has a value")
    }

    fn link(&mut self, index: u32) {
        let deadline = self.entries[index as usize].deadline;
        let level = level_for(self.elapsed, deadline);
        let slot = ((deadline >> (6 * level)) % SLOTS as u64) as usize;
        let head = self.heads[level][slot];
        {
            let e = &mut self.entries[index as usize];
            e.level = level as u8;
            e.slot = slot as u8;
            e.prev = NIL;
            e.next = head;
        }
        if head != NIL {
            self.entries[head as usize].prev = index;
        }
        self.heads[level][slot] = index;
        self.occupied[level] |= 1 << slot;
    }

    fn unlink(&mut self, index: u32) {
        let (prev, next, level, slot) = {
            let e = &self.entries[index as usize];
            (e.prev, e.next, e.level as usize, e.slot as usize)
        };
        if prev == NIL {
            self.heads[level][slot] = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
        if self.heads[level][slot] == NIL {
            self.occupied[level] &= !(1 << slot);
        }
    }

    /// The earliest instant (ms) at which some slot needs processing, if any timer is set.
    /// It is never later than the earliest deadline.
    pub(crate) fn next_expiration(&self) -> Option<u64> {
        (0..LEVELS).find_map(|l| self.level_expiration(l).map(|(_, d)| d))
    }

    fn level_expiration(&self, level: usize) -> Option<(usize, u64)> {
        let occ = self.occupied[level];
        if occ == 0 {
            return None;
        }
        let now_slot = (self.elapsed / slot_range(level)) % SLOTS as u64;
        let rotated = occ.rotate_right(now_slot as u32);
        let slot = ((rotated.trailing_zeros() as u64 + now_slot) % SLOTS as u64) as usize;
        let level_start = self.elapsed & !(level_range(level) - 1);
        let mut deadline = level_start + slot as u64 * slot_range(level);
        if deadline < self.elapsed {
            deadline += level_range(level);
        }
        Some((slot, deadline))
    }

    /// Advances time to `now` (ms), passing every timer whose deadline is `<= now` to `fire`.
    pub(crate) fn advance(&mut self, now: u64, mut fire: impl FnMut(T)) {
        if now < self.elapsed {
            return;
        }
        loop {
            let next = (0..LEVELS).find_map(|l| {
                self.level_expiration(l)
                    .map(|(slot, deadline)| (l, slot, deadline))
            });
            let Some((level, slot, deadline)) = next else {
                break;
            };
            if deadline > now {
                break;
            }
            self.elapsed = self.elapsed.max(deadline);
            // Take the whole slot; fire what is due at the slot's start, and cascade the
            // rest to lower levels, so timers fire in deadline order even across a big jump.
            let mut cur = self.heads[level][slot];
            self.heads[level][slot] = NIL;
            self.occupied[level] &= !(1 << slot);
            while cur != NIL {
                let next = self.entries[cur as usize].next;
                if self.entries[cur as usize].deadline <= self.elapsed {
                    fire(self.release(cur));
                } else {
                    self.link(cur);
                }
                cur = next;
            }
        }
        self.elapsed = now;
    }
}
