//! Read-mostly state and counters split into per-thread shards.
//!
//! Threads sharing one `Envelope` (or one `LocalBackend`) read the same caches and bump
//! the same counters on every operation. With one lock or one atomic, every such access
//! is a read-modify-write of a cache line the other core owns, and the line travels
//! between cores on every object. Here each thread uses its own shard (its own cache
//! line), so the common path writes only to lines no other thread touches; a thread
//! reads another shard only for a rare write (a new key) or a counter snapshot.

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// At most this many shards per structure.
const MAX_SHARDS: usize = 16;

/// Shards per structure: the machine's parallelism (a power of two, at most
/// [`MAX_SHARDS`]), read once. More threads than shards share shards (correct, just
/// contended again); each shard costs memory (a counter set is 128 bytes per shard).
fn shard_count() -> usize {
    static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COUNT.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .next_power_of_two()
            .min(MAX_SHARDS)
    })
}

/// One shard on its own cache lines (128 bytes covers adjacent-line prefetch).
#[repr(align(128))]
#[derive(Debug, Default)]
struct Padded<T>(T);

/// The calling thread's shard: threads are numbered in the order they first ask.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % shard_count();
    }
    INDEX.with(|i| *i)
}

/// A value behind one lock per shard. Readers lock their own shard; caches fill their own
/// shard; a writer that must be seen by every reader updates all shards.
#[derive(Debug)]
pub(crate) struct Sharded<T> {
    shards: Box<[Padded<RwLock<T>>]>,
}

impl<T> Sharded<T> {
    /// Every shard starts as `make()`.
    pub(crate) fn new(mut make: impl FnMut() -> T) -> Self {
        Self {
            shards: (0..shard_count())
                .map(|_| Padded(RwLock::new(make())))
                .collect(),
        }
    }

    /// The calling thread's shard.
    pub(crate) fn local(&self) -> &RwLock<T> {
        // `shard_index() < shard_count() == shards.len()`; the fallback is never taken.
        match self.shards.get(shard_index()) {
            Some(s) => &s.0,
            None => &self.first().0,
        }
    }

    fn first(&self) -> &Padded<RwLock<T>> {
        // Built with shard_count() >= 1 shards.
        #[allow(clippy::indexing_slicing)]
        &self.shards[0]
    }

    /// Every shard, in a fixed order (writers lock them one at a time in this order).
    /// Only the local backend's key table writes to every shard.
    #[cfg_attr(not(feature = "local"), allow(dead_code))]
    pub(crate) fn all(&self) -> impl Iterator<Item = &RwLock<T>> {
        self.shards.iter().map(|s| &s.0)
    }
}

/// A set of `N` counters, one copy per shard; a snapshot sums the shards.
#[derive(Debug)]
pub(crate) struct ShardedCounters<const N: usize> {
    shards: Box<[Padded<[AtomicU64; N]>]>,
}

impl<const N: usize> Default for ShardedCounters<N> {
    fn default() -> Self {
        Self {
            shards: (0..shard_count())
                .map(|_| Padded(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
        }
    }
}

impl<const N: usize> ShardedCounters<N> {
    /// Adds one to counter `which` (`which < N`) in the calling thread's shard.
    pub(crate) fn bump(&self, which: usize) {
        if let Some(c) = self.shards.get(shard_index()).and_then(|s| s.0.get(which)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The sum of counter `which` over all shards.
    pub(crate) fn sum(&self, which: usize) -> u64 {
        self.shards
            .iter()
            .filter_map(|s| s.0.get(which))
            .map(|c| c.load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sum_over_threads() {
        let c = ShardedCounters::<3>::default();
        std::thread::scope(|s| {
            for _ in 0..20 {
                s.spawn(|| {
                    for _ in 0..100 {
                        c.bump(1);
                    }
                    c.bump(2);
                });
            }
        });
        assert_eq!(c.sum(0), 0);
        assert_eq!(c.sum(1), 2000);
        assert_eq!(c.sum(2), 20);
    }

    #[test]
    fn a_write_to_all_shards_is_seen_by_every_thread() {
        let v = Sharded::new(|| 0u32);
        for s in v.all() {
            *s.write().unwrap() = 7;
        }
        std::thread::scope(|s| {
            for _ in 0..20 {
                s.spawn(|| assert_eq!(*v.local().read().unwrap(), 7));
            }
        });
        // A local write stays local to the shard.
        *v.local().write().unwrap() = 9;
        assert_eq!(v.all().filter(|s| *s.read().unwrap() == 9).count(), 1);
    }
}
