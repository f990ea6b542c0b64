//! The optional unwrap cache: unwrapped DEKs kept for a TTL and a number of uses, at most
//! `max_entries` of them, zeroized when evicted. A cached DEK is only returned after the
//! KEK's state was checked in the key ring for this very call, so revoking or disabling a
//! KEK denies cached unwraps at once; and when the ring's revocation epoch moves, every
//! entry whose KEK may no longer unwrap is dropped (and zeroized) on the next use.
//!
//! No stale copy of a DEK stays in memory: each key lives in its own heap allocation
//! (`Box<DataKey>`), so the map moves only pointers when it grows and a removed entry's
//! key is zeroized where it lives; the map's capacity is reserved up front (up to
//! [`RESERVE_CAP`] entries), so it does not even grow in the usual case; and every access
//! sweeps the entries whose TTL has passed (oldest first) instead of leaving them until
//! they are touched. [`crate::Envelope::sweep_cache`] sweeps without an access.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::context::Context;
use crate::format::{KekRef, WrappedEntry};
use crate::lifecycle::{SharedKeyRing, UnixTime};
use crate::secret::DataKey;

/// Limits of the unwrap cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long an entry lives, in seconds.
    pub ttl_seconds: u64,
    /// How many entries at most (oldest evicted first).
    pub max_entries: usize,
    /// How many times one entry may be used.
    pub max_uses: u32,
}

impl CacheConfig {
    /// A cache with these limits.
    pub fn new(ttl_seconds: u64, max_entries: usize, max_uses: u32) -> Self {
        Self {
            ttl_seconds,
            max_entries,
            max_uses,
        }
    }
}

/// Entries reserved at construction at most (a larger cache grows past it, moving only
/// the boxed keys' pointers).
pub(crate) const RESERVE_CAP: usize = 1 << 16;

struct Entry {
    /// Boxed: the key never moves when the map does.
    dek: Box<DataKey>,
    kek: KekRef,
    inserted: UnixTime,
    uses: u32,
}

struct State {
    epoch: u64,
    entries: HashMap<[u8; 32], Entry>,
    order: VecDeque<[u8; 32]>,
}

pub(crate) struct DekCache {
    config: CacheConfig,
    state: Mutex<State>,
}

fn cache_key(e: &WrappedEntry, ctx: &Context) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"kekring/v1/cache");
    h.update(e.algorithm().id().to_be_bytes());
    h.update([e.backend().id()]);
    let kek = e.kek().to_string();
    for part in [
        kek.as_bytes(),
        e.params(),
        e.wrapped(),
        ctx.binding().canonical_bytes(),
    ] {
        h.update(u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

impl DekCache {
    pub(crate) fn new(config: CacheConfig) -> Self {
        let reserve = config.max_entries.min(RESERVE_CAP);
        Self {
            config,
            state: Mutex::new(State {
                epoch: 0,
                entries: HashMap::with_capacity(reserve),
                order: VecDeque::with_capacity(reserve),
            }),
        }
    }

    /// Drops (and zeroizes) every entry whose TTL has passed at `now`. Entries are
    /// inserted in time order, so the sweep stops at the first live one; an entry
    /// inserted "later" than `now` (a clock that moved back) is kept until its own TTL.
    fn sweep(st: &mut State, ttl: u64, now: UnixTime) {
        while let Some(oldest) = st.order.front().copied() {
            let expired = st
                .entries
                .get(&oldest)
                .is_none_or(|v| now >= v.inserted.saturating_add(ttl));
            if !expired {
                break;
            }
            st.order.pop_front();
            st.entries.remove(&oldest);
        }
    }

    /// Sweeps expired entries without any other access.
    pub(crate) fn sweep_expired(&self, now: UnixTime) {
        if let Ok(mut st) = self.state.lock() {
            Self::sweep(&mut st, self.config.ttl_seconds, now);
        }
    }

    pub(crate) fn get(
        &self,
        e: &WrappedEntry,
        ctx: &Context,
        now: UnixTime,
        epoch: u64,
        ring: &SharedKeyRing,
    ) -> Option<DataKey> {
        let mut st = self.state.lock().ok()?;
        if st.epoch != epoch {
            // A revocation, disable or destruction happened: drop (and zeroize) every
            // DEK whose KEK may no longer unwrap.
            st.entries
                .retain(|_, v| ring.read(|r| r.get(&v.kek).is_some_and(|k| k.can_unwrap(now))));
            let State { entries, order, .. } = &mut *st;
            order.retain(|k| entries.contains_key(k));
            st.epoch = epoch;
        }
        Self::sweep(&mut st, self.config.ttl_seconds, now);
        let key = cache_key(e, ctx);
        let ttl = self.config.ttl_seconds;
        let max_uses = self.config.max_uses;
        let expired = st
            .entries
            .get(&key)
            .map(|v| now >= v.inserted.saturating_add(ttl) || v.uses >= max_uses)?;
        if expired {
            st.entries.remove(&key);
            st.order.retain(|k| *k != key);
            return None;
        }
        let v = st.entries.get_mut(&key)?;
        v.uses = v.uses.saturating_add(1);
        Some(v.dek.duplicate())
    }

    pub(crate) fn put(
        &self,
        e: &WrappedEntry,
        ctx: &Context,
        dek: &DataKey,
        kek: KekRef,
        now: UnixTime,
        epoch: u64,
    ) {
        if self.config.max_entries == 0 || self.config.max_uses == 0 {
            return;
        }
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if st.epoch != epoch {
            return;
        }
        Self::sweep(&mut st, self.config.ttl_seconds, now);
        let key = cache_key(e, ctx);
        if st.entries.contains_key(&key) {
            return;
        }
        while st.entries.len() >= self.config.max_entries {
            let Some(oldest) = st.order.pop_front() else {
                break;
            };
            st.entries.remove(&oldest);
        }
        st.entries.insert(
            key,
            Entry {
                dek: dek.boxed_copy(),
                kek,
                inserted: now,
                // The unwrap that filled the entry counts as its first use.
                uses: 1,
            },
        );
        st.order.push_back(key);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.state.lock().map(|s| s.entries.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{BackendId, Classification, WrapAlgorithm};
    use crate::lifecycle::{KeyRing, NewKek};

    fn entry(n: u8) -> WrappedEntry {
        WrappedEntry::new(
            WrapAlgorithm::Aes256Kw,
            BackendId::Local,
            KekRef::new("t", "p", 1).unwrap(),
            vec![],
            vec![n; 40],
        )
        .unwrap()
    }

    #[test]
    fn ttl_uses_capacity_and_epoch() {
        let kek = KekRef::new("t", "p", 1).unwrap();
        let ring = SharedKeyRing::new(KeyRing::new());
        ring.apply(|r| {
            r.register(
                NewKek::new(kek.clone(), BackendId::Local, "k", WrapAlgorithm::Aes256Kw),
                0,
            )
        })
        .unwrap();
        let ctx = Context::new("t", "p", "o", Classification::Internal).unwrap();
        let dek = DataKey::from_array([9; 32]);
        let c = DekCache::new(CacheConfig::new(100, 2, 3));
        c.put(&entry(1), &ctx, &dek, kek.clone(), 0, 0);
        // Two more uses allowed (the filling unwrap was the first), then gone.
        assert!(c.get(&entry(1), &ctx, 1, 0, &ring).is_some());
        assert!(c.get(&entry(1), &ctx, 1, 0, &ring).is_some());
        assert!(c.get(&entry(1), &ctx, 1, 0, &ring).is_none());
        // TTL.
        c.put(&entry(2), &ctx, &dek, kek.clone(), 10, 0);
        assert!(c.get(&entry(2), &ctx, 109, 0, &ring).is_some());
        assert!(c.get(&entry(2), &ctx, 110, 0, &ring).is_none());
        // Another context never hits.
        c.put(&entry(3), &ctx, &dek, kek.clone(), 10, 0);
        let other = Context::new("t", "p", "o2", Classification::Internal).unwrap();
        assert!(c.get(&entry(3), &other, 11, 0, &ring).is_none());
        // Capacity: the oldest is evicted.
        c.put(&entry(4), &ctx, &dek, kek.clone(), 10, 0);
        c.put(&entry(5), &ctx, &dek, kek.clone(), 10, 0);
        assert_eq!(c.len(), 2);
        assert!(c.get(&entry(3), &ctx, 11, 0, &ring).is_none());
        // A new epoch with the KEK revoked drops everything derived from it.
        let (_, _) = (ring.apply(|r| r.revoke(&kek, 20, "test")).unwrap(), ());
        let epoch = ring.read(KeyRing::revocation_epoch);
        assert!(c.get(&entry(5), &ctx, 21, epoch, &ring).is_none());
        assert_eq!(c.len(), 0);
    }

    /// Issue 10, item 6: the map never grows (growing moves entries and leaves the old
    /// slots unwiped), and expired entries are swept without being touched.
    #[test]
    fn no_regrowth_and_expired_entries_are_swept() {
        let kek = KekRef::new("t", "p", 1).unwrap();
        let ring = SharedKeyRing::new(KeyRing::new());
        ring.apply(|r| {
            r.register(
                NewKek::new(kek.clone(), BackendId::Local, "k", WrapAlgorithm::Aes256Kw),
                0,
            )
        })
        .unwrap();
        let ctx = Context::new("t", "p", "o", Classification::Internal).unwrap();
        let dek = DataKey::from_array([9; 32]);
        let c = DekCache::new(CacheConfig::new(100, 64, 1000));
        let capacity = c.state.lock().unwrap().entries.capacity();
        assert!(capacity >= 64, "capacity {capacity} not reserved up front");
        for n in 0..64u8 {
            c.put(&entry(n), &ctx, &dek, kek.clone(), 10, 0);
        }
        assert_eq!(c.state.lock().unwrap().entries.capacity(), capacity);
        // Past the TTL, touching one other entry sweeps every expired one.
        c.put(&entry(200), &ctx, &dek, kek.clone(), 500, 0);
        assert_eq!(c.len(), 1, "expired entries stayed in memory");
    }
}
