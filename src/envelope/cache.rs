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
    /// kept in insertion order with non-decreasing insertion times (see `put`), so the
    /// sweep stops at the first live one.
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

    /// When the ring's revocation epoch moved (a revocation, disable or destruction),
    /// drops (and zeroizes) every DEK whose KEK may no longer unwrap.
    fn purge_revoked(st: &mut State, now: UnixTime, epoch: u64, ring: &SharedKeyRing) {
        if st.epoch == epoch {
            return;
        }
        st.entries
            .retain(|_, v| ring.read(|r| r.get(&v.kek).is_some_and(|k| k.can_unwrap(now))));
        let State { entries, order, .. } = &mut *st;
        order.retain(|k| entries.contains_key(k));
        st.epoch = epoch;
    }

    /// Sweeps expired entries, and revoked ones when the epoch moved, without any other
    /// access.
    pub(crate) fn sweep_expired(&self, now: UnixTime, epoch: u64, ring: &SharedKeyRing) {
        if let Ok(mut st) = self.state.lock() {
            Self::purge_revoked(&mut st, now, epoch, ring);
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
        Self::purge_revoked(&mut st, now, epoch, ring);
        let ttl = self.config.ttl_seconds;
        Self::sweep(&mut st, ttl, now);
        let key = cache_key(e, ctx);
        let v = st.entries.get_mut(&key)?;
        if now >= v.inserted.saturating_add(ttl) {
            st.entries.remove(&key);
            st.order.retain(|k| *k != key);
            return None;
        }
        v.uses = v.uses.saturating_add(1);
        let dek = v.dek.duplicate();
        if v.uses >= self.config.max_uses {
            // Its last allowed use: gone now, not when next touched.
            st.entries.remove(&key);
            st.order.retain(|k| *k != key);
        }
        Some(dek)
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
        // The filling unwrap is the first use: with at most one use there is nothing
        // to keep.
        if self.config.max_entries == 0 || self.config.max_uses <= 1 {
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
        // Unwraps finish out of order (each `now` is read before its backend call): an
        // entry is never stamped earlier than the newest one, so insertion times never
        // decrease along `order` and the sweep can stop at the first live entry. An entry
        // may thus live past its TTL by at most the time its own backend call took.
        let newest = st
            .order
            .back()
            .and_then(|k| st.entries.get(k))
            .map_or(now, |v| v.inserted);
        st.entries.insert(
            key,
            Entry {
                dek: dek.boxed_copy(),
                kek,
                inserted: now.max(newest),
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

    /// An active KEK `t/p/v1` in a ring, a context under it and a DEK.
    fn fixture() -> (KekRef, SharedKeyRing, Context, DataKey) {
        let kek = KekRef::new("t", "p", 1).unwrap();
        let ring = SharedKeyRing::new(KeyRing::new());
        ring.apply(|r| {
            r.register(
                NewKek::new(kek.clone(), BackendId::Local, "k", WrapAlgorithm::Aes256Kw)
                    .key_id(crate::locator::KeyIdentity::new("k")),
                0,
            )
        })
        .unwrap();
        let ctx = Context::new("t", "p", "o", Classification::Internal).unwrap();
        (kek, ring, ctx, DataKey::from_array([9; 32]))
    }

    #[test]
    fn ttl_uses_capacity_and_epoch() {
        let (kek, ring, ctx, dek) = fixture();
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
        ring.apply(|r| r.revoke(&kek, 20, "test")).unwrap();
        let epoch = ring.read(KeyRing::revocation_epoch);
        assert!(c.get(&entry(5), &ctx, 21, epoch, &ring).is_none());
        assert_eq!(c.len(), 0);
    }

    /// Issue 10, item 6: the map never grows (growing moves entries and leaves the old
    /// slots unwiped), and expired entries are swept without being touched.
    #[test]
    fn no_regrowth_and_expired_entries_are_swept() {
        let (kek, ring, ctx, dek) = fixture();
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
        // An entry that used its last allowed use leaves at once.
        let c = DekCache::new(CacheConfig::new(100, 8, 2));
        c.put(&entry(1), &ctx, &dek, kek.clone(), 10, 0);
        assert!(c.get(&entry(1), &ctx, 11, 0, &ring).is_some());
        assert_eq!(c.len(), 0, "an exhausted entry stayed in memory");
        // Out-of-order fills never stamp an entry before the newest, so the sweep that
        // stops at the first live entry leaves no expired one behind it.
        c.put(&entry(2), &ctx, &dek, kek.clone(), 50, 0);
        c.put(&entry(3), &ctx, &dek, kek.clone(), 40, 0);
        c.sweep_expired(150, 0, &ring);
        assert_eq!(c.len(), 0);
        // A revocation is purged by a sweep without any other access.
        c.put(&entry(4), &ctx, &dek, kek.clone(), 200, 0);
        ring.apply(|r| r.revoke(&kek, 201, "test")).unwrap();
        c.sweep_expired(202, ring.read(KeyRing::revocation_epoch), &ring);
        assert_eq!(c.len(), 0, "a DEK under a revoked KEK stayed until touched");
    }

    /// A retirement moves the revocation epoch as a revocation does, so a retired KEK's
    /// cached DEKs leave memory at the next access or sweep. Before, retirement left the
    /// epoch where it was and such a DEK stayed until its TTL ran out.
    #[test]
    fn a_retired_keks_dek_leaves_at_the_next_sweep() {
        let (kek, ring, ctx, dek) = fixture();
        let v2 = NewKek::new(
            KekRef::new("t", "p", 2).unwrap(),
            BackendId::Local,
            "k2",
            WrapAlgorithm::Aes256Kw,
        )
        .key_id(crate::locator::KeyIdentity::new("k2"));
        ring.apply(|r| r.rotate(v2, 10)).unwrap();
        let c = DekCache::new(CacheConfig::new(1_000_000_000, 8, 1000));
        let epoch = ring.read(KeyRing::revocation_epoch);
        c.put(&entry(1), &ctx, &dek, kek.clone(), 11, epoch);
        assert_eq!(c.len(), 1);
        let window_end = ring
            .read(|r| r.get(&kek).and_then(|k| k.retire_at))
            .unwrap();
        ring.apply(|r| r.retire(&kek, window_end, 0, false))
            .unwrap();
        c.sweep_expired(window_end, ring.read(KeyRing::revocation_epoch), &ring);
        assert_eq!(c.len(), 0, "a DEK under a retired KEK stayed in memory");
    }
}
