//! `JoinIndex`: customer → join number, for a queue of up to millions.
//!
//! The queue already stores every customer once, in `joiners` (their join
//! number is their index). The index only has to find that number again, so
//! it stores no keys: each slot holds a join number and the top 32 bits of the
//! customer's hash (the tag). The tag also chooses the slot (its low bits), so
//! growing the table re-places entries straight from the old slots, in order,
//! without rereading `joiners` or rehashing: a resize streams through memory
//! instead of missing the cache once per entry. A probe compares tags first
//! and reads `joiners` only on a match; the bits a tag has beyond those the
//! slot implies (11 at one million fans) make a false match rare.
//! Open addressing with linear probing at a load of at most one half keeps
//! probes in one cache line. At one million fans the table is 16 MiB (2^21
//! slots of 8 bytes), against about 35 MiB for a general-purpose map of
//! `u64 → u32`, and a lookup is one random access into memory that fits the
//! last-level cache. Derived from `joiners`: never serialized, rebuilt on load.

use crate::ids::CustomerId;
use crate::shuffle::mix64;

const EMPTY: u32 = u32::MAX;
const MIN_SLOTS: usize = 16;

#[derive(Clone, Copy, Debug)]
struct Slot {
    tag: u32,
    join_number: u32,
}

const VACANT: Slot = Slot {
    tag: 0,
    join_number: EMPTY,
};

/// See the module documentation.
#[derive(Clone, Debug, Default)]
pub struct JoinIndex {
    slots: Vec<Slot>,
    len: usize,
}

/// The tag of a customer: the top half of a full-avalanche hash.
fn tag(customer: CustomerId) -> u32 {
    let top = mix64(customer.0) >> 32;
    u32::try_from(top).unwrap_or(0)
}

impl JoinIndex {
    /// An index of `joiners`, whose join numbers are their positions.
    pub fn build(joiners: &[CustomerId]) -> JoinIndex {
        let capacity = joiners
            .len()
            .saturating_mul(2)
            .max(MIN_SLOTS)
            .next_power_of_two();
        let mut slots = vec![VACANT; capacity];
        for (join_number, &customer) in joiners.iter().enumerate() {
            let join_number = u32::try_from(join_number).unwrap_or(EMPTY);
            place(
                &mut slots,
                Slot {
                    tag: tag(customer),
                    join_number,
                },
            );
        }
        JoinIndex {
            slots,
            len: joiners.len(),
        }
    }

    /// How many customers are indexed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nobody is indexed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The join number of `customer`, looking keys up in `joiners`.
    pub fn get(&self, customer: CustomerId, joiners: &[CustomerId]) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let tag = tag(customer);
        let mut i = tag as usize;
        loop {
            i &= mask;
            let slot = self.slots[i];
            if slot.join_number == EMPTY {
                return None;
            }
            if slot.tag == tag && joiners.get(slot.join_number as usize) == Some(&customer) {
                return Some(slot.join_number);
            }
            i += 1;
        }
    }

    /// Reads the slot where a lookup of `customer` starts, so that a batch
    /// can bring all its slots into cache before it is applied (the loads are
    /// independent, so the CPU overlaps their misses). Returns the slot's
    /// contents only so the read cannot be optimized away.
    pub fn touch(&self, customer: CustomerId) -> u32 {
        if self.slots.is_empty() {
            return 0;
        }
        self.slots[tag(customer) as usize & (self.slots.len() - 1)].join_number
    }

    /// Indexes `customer` (not yet indexed) under `join_number`.
    pub fn insert(&mut self, customer: CustomerId, join_number: u32) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow((self.slots.len() * 2).max(MIN_SLOTS));
        }
        place(
            &mut self.slots,
            Slot {
                tag: tag(customer),
                join_number,
            },
        );
        self.len += 1;
    }

    fn grow(&mut self, slots: usize) {
        let mut grown = vec![VACANT; slots.next_power_of_two()];
        for &slot in self.slots.iter().filter(|s| s.join_number != EMPTY) {
            place(&mut grown, slot);
        }
        self.slots = grown;
    }
}

/// Puts `slot` in the first vacant place from where its tag points.
fn place(slots: &mut [Slot], slot: Slot) {
    let mask = slots.len() - 1;
    let mut i = slot.tag as usize;
    loop {
        i &= mask;
        if slots[i].join_number == EMPTY {
            slots[i] = slot;
            return;
        }
        i += 1;
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_joiner_and_nobody_else_across_growth() {
        let mut joiners = Vec::new();
        let mut index = JoinIndex::default();
        for i in 0..10_000u64 {
            let customer = CustomerId(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            assert_eq!(index.get(customer, &joiners), None);
            index.insert(customer, i as u32);
            joiners.push(customer);
        }
        for (j, &customer) in joiners.iter().enumerate() {
            assert_eq!(index.get(customer, &joiners), Some(j as u32));
        }
        assert_eq!(index.get(CustomerId(12345), &joiners), None);
        let rebuilt = JoinIndex::build(&joiners);
        assert!(
            joiners
                .iter()
                .enumerate()
                .all(|(j, &c)| rebuilt.get(c, &joiners) == Some(j as u32))
        );
        assert!(index.slots.len() <= 4 * joiners.len());
    }
}
