//! Which stored objects name which KEK, from their headers alone (no key).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::format::KekRef;

/// Which objects are wrapped under which KEK, from a scan of stored blobs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ObjectScan {
    /// Per KEK (`tenant/purpose/vN`): how many objects carry a copy wrapped under it.
    pub per_kek: BTreeMap<String, u64>,
    /// Per KEK: the objects whose *every* copy is under it, which would become unreadable
    /// if it were retired now.
    pub only_under: BTreeMap<String, Vec<String>>,
    /// Objects that are neither a sealed object nor a wrapped DEK.
    pub unparsed: Vec<String>,
}

impl ObjectScan {
    /// Objects still wrapped under `kek` (the `outstanding` count for
    /// [`KeyRing::retire`](super::KeyRing::retire)).
    pub fn outstanding(&self, kek: &KekRef) -> u64 {
        self.per_kek.get(&kek.to_string()).copied().unwrap_or(0)
    }
}

/// Scans stored blobs (sealed objects or wrapped DEKs, by identifier) without any key:
/// headers only.
pub fn scan_objects<'a>(items: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> ObjectScan {
    use crate::format::{SealedHeader, WrappedDek};
    let mut scan = ObjectScan::default();
    for (id, bytes) in items {
        let dek = match SealedHeader::decode_prefix(bytes) {
            Ok((h, _)) => h.wrapped_dek().clone(),
            Err(_) => match WrappedDek::decode(bytes) {
                Ok(w) => w,
                Err(_) => {
                    scan.unparsed.push(id.to_owned());
                    continue;
                }
            },
        };
        let keks: Vec<String> = dek.entries().iter().map(|e| e.kek().to_string()).collect();
        for k in &keks {
            *scan.per_kek.entry(k.clone()).or_default() += 1;
        }
        if let [only] = keks.as_slice() {
            scan.only_under
                .entry(only.clone())
                .or_default()
                .push(id.to_owned());
        }
    }
    scan
}
