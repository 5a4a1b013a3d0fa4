//! A user-name lookup whose work does not depend on whether the name is
//! present.
//!
//! A hash map answers a miss sooner than a hit (a hit also loads and compares
//! the stored key), which lets a precise enough clock tell known user names
//! from unknown ones. Here every lookup hashes the name with two keyed
//! SipHash instances (a 128-bit key), picks one bucket of [`WAYS`] slots by
//! that key, and compares *every* slot of the bucket with constant-time
//! selects: the same loads and the same arithmetic for a known and an unknown
//! name. Which bucket is read depends on the keyed hash only, not on presence.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// Slots per bucket.
const WAYS: usize = 8;

#[derive(Clone, Copy, Default)]
struct Slot {
    hi: u64,
    lo: u64,
    /// 1-based position of the entry; 0 for an empty slot.
    at: u32,
}

#[derive(Clone)]
pub(crate) struct NameIndex {
    keys: (RandomState, RandomState),
    buckets: Vec<[Slot; WAYS]>,
    mask: usize,
}

impl Default for NameIndex {
    fn default() -> Self {
        Self {
            keys: (RandomState::new(), RandomState::new()),
            buckets: vec![[Slot::default(); WAYS]],
            mask: 0,
        }
    }
}

fn key(keys: &(RandomState, RandomState), name: &str) -> (u64, u64) {
    (keys.0.hash_one(name), keys.1.hash_one(name))
}

impl NameIndex {
    /// An index of `names`; the i-th name (0-based) is found at `i + 1`.
    pub(crate) fn build(names: &[&str]) -> Self {
        let mut buckets_len = (names.len() / 4 + 1).next_power_of_two();
        loop {
            let keys = (RandomState::new(), RandomState::new());
            let mut buckets = vec![[Slot::default(); WAYS]; buckets_len];
            let mask = buckets_len - 1;
            let mut full = false;
            for (i, name) in names.iter().enumerate() {
                let (hi, lo) = key(&keys, name);
                match buckets[(lo as usize) & mask].iter_mut().find(|s| s.at == 0) {
                    Some(slot) => {
                        *slot = Slot {
                            hi,
                            lo,
                            at: u32::try_from(i + 1).unwrap_or(u32::MAX),
                        }
                    }
                    None => {
                        full = true;
                        break;
                    }
                }
            }
            if !full {
                return Self {
                    keys,
                    buckets,
                    mask,
                };
            }
            // An unlucky bucket overflowed: more buckets and fresh keys.
            buckets_len *= 2;
        }
    }

    /// The 1-based position of `name`, or 0 when it is absent. Two names
    /// share a 128-bit keyed hash with negligible probability, and the keys
    /// are random and never leave the process.
    pub(crate) fn find(&self, name: &str) -> u32 {
        let (hi, lo) = key(&self.keys, name);
        let mut found = 0u32;
        // `mask` is one less than the (power-of-two) number of buckets.
        let bucket = &self.buckets[(lo as usize) & self.mask];
        for slot in bucket {
            let hit = slot.hi.ct_eq(&hi) & slot.lo.ct_eq(&lo) & !slot.at.ct_eq(&0);
            found = u32::conditional_select(&found, &slot.at, hit);
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_name_and_misses_others() {
        let names: Vec<String> = (0..5000).map(|i| format!("user{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let index = NameIndex::build(&refs);
        for (i, name) in refs.iter().enumerate() {
            assert_eq!(index.find(name) as usize, i + 1);
        }
        for i in 5000..10_000 {
            assert_eq!(index.find(&format!("user{i}")), 0);
        }
        assert_eq!(index.find(""), 0);
    }

    #[test]
    fn empty_index_finds_nothing() {
        assert_eq!(NameIndex::default().find("x"), 0);
        assert_eq!(NameIndex::build(&[]).find("x"), 0);
    }
}
