//! A memo of GL position texts, shared by threads: a million donors share a few tens of
//! thousands of position typings, so loading or importing them learns each text once.

use std::hash::BuildHasher;
use std::sync::Mutex;

use rustc_hash::{FxBuildHasher, FxHashMap};

/// Shards, so parallel readers rarely wait on one lock.
const SHARDS: usize = 32;
/// Past this many entries a shard stops learning (a pathological file cannot grow it).
const SHARD_LIMIT: usize = 1 << 16;

/// Position text → what the caller worked out from it (its locus, its canonical text…).
pub struct PositionCache<V> {
    shards: Vec<Mutex<FxHashMap<Box<str>, V>>>,
}

impl<V: Clone> Default for PositionCache<V> {
    fn default() -> Self {
        PositionCache::new()
    }
}

impl<V: Clone> PositionCache<V> {
    pub fn new() -> PositionCache<V> {
        PositionCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// The value remembered for `text`, else `compute(text)`, remembered while its shard
    /// has room. `compute` runs without a lock held.
    pub fn get_or_compute(&self, text: &str, compute: impl FnOnce(&str) -> V) -> V {
        let shard = &self.shards[(FxBuildHasher.hash_one(text) as usize) % SHARDS];
        if let Some(hit) = lock(shard).get(text) {
            return hit.clone();
        }
        let value = compute(text);
        let mut shard = lock(shard);
        if shard.len() < SHARD_LIMIT {
            shard.insert(text.into(), value.clone());
        }
        value
    }
}

/// A shard, also after a panic elsewhere (the map is never left half-changed).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_text_is_computed_once() {
        let cache = PositionCache::new();
        let mut calls = 0;
        for _ in 0..3 {
            let v = cache.get_or_compute("A*01:01", |t| {
                calls += 1;
                t.len()
            });
            assert_eq!(v, 7);
        }
        assert_eq!(calls, 1);
    }
}
