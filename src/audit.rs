//! The audit trail: typed events, each chained to the previous one by a MAC under a key
//! only the writer holds, written to an [`AuditSink`] (a JSON-lines file or memory);
//! [`verify`] detects a changed, removed, reordered or inserted record, and a chain
//! checked against an anchored head ([`verify_anchored`], [`AuditLog::open_json_lines`])
//! detects records cut from the end.
//!
//! ```text
//! mac(n)   = HMAC-SHA-256(k(n), "kekring/v1/audit" || seq (u64 BE) || time (u64 BE)
//!                               || mac(n-1) || canonical event)
//! k(n+1)   = HMAC-SHA-256(k(n), "kekring/v1/audit/next")
//! mac(-1)  = 32 zero bytes;  k(0) = the chain's AuditKey
//! canonical event = the event's serde_json encoding (typed, fixed field order, no
//!                   whitespace)
//! ```
//!
//! **Keyed**: without the key, no one who can write the sink can recompute the chain after
//! rewriting a record. **Forward-evolving**: a running writer keeps only the key of the
//! next record and erases each key once used, so a dump of its memory does not let anyone
//! forge the records it already wrote. Whoever holds `k(0)` (the verifier, and a process
//! that resumes a chain from its start) can compute every key: the CLI derives `k(0)`
//! from the master secret, so anyone holding that secret can rewrite its trail. **Anchored**: the head (record
//! count and last MAC) is what a caller stores in authenticated state, and a chain
//! shorter than, or diverging from, its anchor is refused.
//!
//! No key material is ever part of an event; backend key identifiers appear only as their
//! last 12 characters.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

pub use crate::error::AuditError;
use crate::format::{Classification, KekRef, Name, WrapAlgorithm};
use crate::lifecycle::{LifecycleEvent, UnixTime};

/// Something worth auditing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub enum AuditEvent {
    /// A key-ring transition (registered, rotated, deprecated, disabled, enabled,
    /// retired, revoked, destroyed).
    Lifecycle {
        /// What happened.
        event: LifecycleEvent,
    },
    /// The classification profile refused a wrap.
    WrapRefused {
        /// The KEK the wrap would have used.
        kek: KekRef,
        /// Its algorithm.
        algorithm: WrapAlgorithm,
        /// The data's classification.
        classification: Classification,
        /// The profile's name.
        profile: String,
    },
    /// Unwraps denied by the KEK's state.
    UnwrapDenied {
        /// The KEK.
        kek: KekRef,
        /// Its state.
        state: String,
        /// The tenant asking.
        tenant: Name,
        /// How many denials this record accounts for: this one and the ones of the same
        /// KEK and state counted, not written, since the previous record (repeats within
        /// the envelope's denial interval are coalesced).
        count: u64,
    },
    /// Copies not used at open because the profile does not allow their algorithm for
    /// the object's classification (a wrap the envelope would never have made).
    UnwrapRefused {
        /// The KEK of the copy.
        kek: KekRef,
        /// Its algorithm.
        algorithm: WrapAlgorithm,
        /// The object's classification.
        classification: Classification,
        /// The profile's name.
        profile: String,
        /// How many refusals this record accounts for (coalesced as `UnwrapDenied`).
        count: u64,
    },
    /// A DEK was read under a revoked KEK by the break-glass path, to be re-wrapped:
    /// recorded where the read is granted, before it happens.
    BreakGlassRewrap {
        /// The revoked KEK read under (the copy used).
        from: KekRef,
        /// The KEK the DEK was re-wrapped under.
        to: KekRef,
        /// The operator's stated reason.
        reason: String,
    },
    /// A bulk re-wrap finished (or stopped).
    BulkRewrap {
        /// Items looked at.
        processed: u64,
        /// Items re-wrapped.
        rewrapped: u64,
        /// Items already under the current KEK.
        already_current: u64,
        /// Items that failed (each reported to the caller).
        failed: u64,
    },
}

/// One record of the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Position in the chain, from 0.
    pub seq: u64,
    /// When it was appended (seconds since the Unix epoch).
    pub time: UnixTime,
    /// The previous record's MAC (hex; 64 zeros for the first).
    pub prev: String,
    /// What happened.
    pub event: AuditEvent,
    /// This record's MAC (hex).
    pub mac: String,
}

/// The end of a chain: what a caller anchors in authenticated state or an outside ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// How many records the chain holds.
    pub len: u64,
    /// The last record's MAC (hex; 64 zeros for an empty chain).
    pub mac: String,
}

impl ChainHead {
    /// The head of an empty chain.
    pub fn genesis() -> Self {
        Self {
            len: 0,
            mac: hex(&[0u8; 32]),
        }
    }
}

/// The secret key of an audit chain (`k(0)` for a new chain, or the evolved key at a
/// verified head): 32 bytes, zeroized on drop, never printed, not `Clone`.
pub struct AuditKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey([REDACTED])")
    }
}

impl AuditKey {
    /// A key from 32 secret bytes (for example derived from a master secret).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A fresh random key from the OS RNG.
    ///
    /// # Errors
    /// [`AuditError::Io`] when the OS RNG fails.
    pub fn generate() -> Result<Self, AuditError> {
        let mut k = Zeroizing::new([0u8; 32]);
        crate::crypto::fill_random(k.as_mut_slice())
            .map_err(|_| std::io::Error::other("the OS RNG failed"))?;
        Ok(Self(k))
    }

    /// `k(n)`: this key evolved `n` records on (the key a chain verified up to `n`
    /// records continues with; see [`verify_from`]). Only the holder of an earlier key
    /// can compute a later one, never the reverse.
    ///
    /// # Errors
    /// [`AuditError::Io`] if HMAC refuses the key (it cannot).
    pub fn evolved(&self, n: u64) -> Result<Self, AuditError> {
        let mut k = self.duplicate();
        for _ in 0..n {
            k = k.next()?;
        }
        Ok(k)
    }

    /// An explicit copy (for the verifier's own `k(0)`; the writer's evolves away).
    pub fn duplicate(&self) -> Self {
        Self(Zeroizing::new(*self.0))
    }

    fn hmac(&self) -> Result<Hmac, AuditError> {
        // HMAC takes keys of any length: this cannot fail for 32 bytes.
        <Hmac as KeyInit>::new_from_slice(self.0.as_slice())
            .map_err(|_| std::io::Error::other("HMAC refused the audit key").into())
    }

    fn mac(
        &self,
        seq: u64,
        time: UnixTime,
        prev: &[u8; 32],
        event: &AuditEvent,
    ) -> Result<[u8; 32], AuditError> {
        let event = serde_json::to_vec(event).map_err(std::io::Error::other)?;
        let mut m = self.hmac()?;
        m.update(b"kekring/v1/audit");
        m.update(&seq.to_be_bytes());
        m.update(&time.to_be_bytes());
        m.update(prev);
        m.update(&event);
        Ok(m.finalize().into_bytes().into())
    }

    /// The key of the next record.
    fn next(&self) -> Result<Self, AuditError> {
        let mut m = self.hmac()?;
        m.update(b"kekring/v1/audit/next");
        Ok(Self(Zeroizing::new(m.finalize().into_bytes().into())))
    }
}

type Hmac = hmac::Hmac<Sha256>;

/// A chain checked under its key: its head and the key of the record that would follow,
/// which [`AuditLog::resume`] continues with.
#[derive(Debug)]
pub struct Verified {
    /// The head of the verified chain.
    pub head: ChainHead,
    next_key: AuditKey,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    // Lower-case hex only: one spelling per hash.
    if s.len() != 64
        || !s
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Where records go.
pub trait AuditSink: Send + Sync + fmt::Debug {
    /// Persists one record.
    ///
    /// # Errors
    /// [`AuditError::Io`] when the record could not be stored.
    fn write(&self, record: &AuditRecord) -> Result<(), AuditError>;
}

/// Keeps records in memory (tests, or forwarding elsewhere).
#[derive(Debug, Default)]
pub struct MemorySink {
    records: Mutex<Vec<AuditRecord>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// The records written so far.
    pub fn records(&self) -> Vec<AuditRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Takes the records written so far, leaving the sink empty (a buffer that is
    /// persisted elsewhere, then emptied).
    pub fn take(&self) -> Vec<AuditRecord> {
        self.records
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }
}

impl AuditSink for MemorySink {
    fn write(&self, record: &AuditRecord) -> Result<(), AuditError> {
        self.records
            .lock()
            .map_err(|_| std::io::Error::other("audit memory sink poisoned"))?
            .push(record.clone());
        Ok(())
    }
}

/// Appends one JSON object per line to a file, flushed and synced per record.
#[derive(Debug)]
pub struct JsonLinesSink {
    path: PathBuf,
    file: Mutex<File>,
}

impl JsonLinesSink {
    /// Opens (creating if needed) `path` for appending.
    ///
    /// # Errors
    /// [`AuditError::Io`].
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, AuditError> {
        let path = path.into();
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Self {
            path,
            file: Mutex::new(file),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads every record of a JSON-lines audit file.
    ///
    /// # Errors
    /// [`AuditError::Malformed`] for a line that is not a record, [`AuditError::Io`].
    pub fn read(path: impl AsRef<Path>) -> Result<Vec<AuditRecord>, AuditError> {
        let f = File::open(path)?;
        let mut out = Vec::new();
        for (i, line) in BufReader::new(f).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let malformed = |message: String| AuditError::Malformed {
                line: i.saturating_add(1),
                message,
            };
            let record: AuditRecord =
                serde_json::from_str(&line).map_err(|e| malformed(e.to_string()))?;
            // Canonical lines only: anything the hash does not cover (extra fields,
            // other spellings, whitespace) is an edit.
            let canonical = serde_json::to_string(&record).map_err(|e| malformed(e.to_string()))?;
            if canonical != line {
                return Err(malformed("not in canonical form".to_owned()));
            }
            out.push(record);
        }
        Ok(out)
    }
}

impl AuditSink for JsonLinesSink {
    fn write(&self, record: &AuditRecord) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut f = self
            .file
            .lock()
            .map_err(|_| std::io::Error::other("audit file sink poisoned"))?;
        let before = f.metadata()?.len();
        let written = f.write_all(&line).and_then(|()| f.sync_data());
        if written.is_err() {
            // Never leave half a record behind: the next append would fuse with it.
            let _ = f.set_len(before);
        }
        Ok(written?)
    }
}

#[derive(Debug)]
struct ChainState {
    next_seq: u64,
    head: [u8; 32],
    /// The key of the next record; each is erased once used.
    key: AuditKey,
}

/// Appends MAC-chained records to a sink. Cheap to clone and share.
#[derive(Clone, Debug)]
pub struct AuditLog {
    sink: Arc<dyn AuditSink>,
    state: Arc<Mutex<ChainState>>,
}

impl AuditLog {
    /// A new chain on `sink` under `key` (its `k(0)`; keep a copy for verification).
    pub fn new(sink: Arc<dyn AuditSink>, key: AuditKey) -> Self {
        Self {
            sink,
            state: Arc::new(Mutex::new(ChainState {
                next_seq: 0,
                head: [0; 32],
                key,
            })),
        }
    }

    /// Continues a chain verified by [`verify`], [`verify_from`] or [`verify_anchored`].
    ///
    /// # Errors
    /// [`AuditError::Broken`] for a head that is not a MAC.
    pub fn resume(sink: Arc<dyn AuditSink>, verified: Verified) -> Result<Self, AuditError> {
        let h = unhex32(&verified.head.mac).ok_or(AuditError::Broken {
            seq: verified.head.len,
            reason: "head is not a 32-byte MAC",
        })?;
        Ok(Self {
            sink,
            state: Arc::new(Mutex::new(ChainState {
                next_seq: verified.head.len,
                head: h,
                key: verified.next_key,
            })),
        })
    }

    /// Opens (creating if needed) a JSON-lines audit file and continues its chain: every
    /// record is verified under `key` (the chain's `k(0)`), and the chain must contain
    /// `anchor` (the head stored in the caller's authenticated state after the last
    /// append it knows of): a chain cut short of it or rewritten before it is refused.
    /// Records after the anchor are accepted (appends the caller had not yet anchored).
    ///
    /// # Errors
    /// [`AuditError::Broken`], [`AuditError::Truncated`], [`AuditError::Diverged`],
    /// [`AuditError::Malformed`], [`AuditError::Io`].
    pub fn open_json_lines(
        path: impl AsRef<Path>,
        key: &AuditKey,
        anchor: &ChainHead,
    ) -> Result<Self, AuditError> {
        let path = path.as_ref();
        let records = if path.exists() {
            JsonLinesSink::read(path)?
        } else {
            Vec::new()
        };
        let verified = verify_anchored(key, anchor, &records)?;
        Self::resume(Arc::new(JsonLinesSink::open(path)?), verified)
    }

    /// Appends an event at `time`.
    ///
    /// # Errors
    /// The sink's error; the chain does not advance then.
    pub fn append(&self, time: UnixTime, event: AuditEvent) -> Result<AuditRecord, AuditError> {
        let mut st = self
            .state
            .lock()
            .map_err(|_| std::io::Error::other("audit chain poisoned"))?;
        let mac = st.key.mac(st.next_seq, time, &st.head, &event)?;
        let next = st.key.next()?;
        let record = AuditRecord {
            seq: st.next_seq,
            time,
            prev: hex(&st.head),
            event,
            mac: hex(&mac),
        };
        self.sink.write(&record)?;
        st.next_seq = st.next_seq.saturating_add(1);
        st.head = mac;
        // The used key is replaced (and zeroized on drop) by the next one.
        st.key = next;
        Ok(record)
    }

    /// Appends lifecycle events from a key-ring transition.
    ///
    /// # Errors
    /// As [`AuditLog::append`].
    pub fn append_lifecycle(
        &self,
        time: UnixTime,
        events: Vec<LifecycleEvent>,
    ) -> Result<(), AuditError> {
        for event in events {
            self.append(time, AuditEvent::Lifecycle { event })?;
        }
        Ok(())
    }

    /// The current head, for anchoring.
    pub fn head(&self) -> ChainHead {
        self.state
            .lock()
            .map(|st| ChainHead {
                len: st.next_seq,
                mac: hex(&st.head),
            })
            .unwrap_or_else(|_| ChainHead::genesis())
    }
}

/// Verifies a whole chain from its first record under `key` (its `k(0)`). Records cut
/// from the *end* leave a shorter valid chain: check against an anchored head
/// ([`verify_anchored`]) to detect that.
///
/// # Errors
/// [`AuditError::Broken`] at the first record that was changed, removed, reordered,
/// inserted, or written under another key.
pub fn verify(key: &AuditKey, records: &[AuditRecord]) -> Result<Verified, AuditError> {
    verify_from(&ChainHead::genesis(), key, records)
}

/// Verifies records that continue the chain at `anchor`, whose next key is `key` (the
/// `k(anchor.len)` of the chain).
///
/// # Errors
/// As [`verify`].
pub fn verify_from(
    anchor: &ChainHead,
    key: &AuditKey,
    records: &[AuditRecord],
) -> Result<Verified, AuditError> {
    let mut expected_seq = anchor.len;
    let mut prev = unhex32(&anchor.mac).ok_or(AuditError::Broken {
        seq: anchor.len,
        reason: "anchor is not a 32-byte MAC",
    })?;
    let mut key = key.duplicate();
    for r in records {
        let broken = |reason| AuditError::Broken { seq: r.seq, reason };
        if r.seq != expected_seq {
            return Err(broken(
                "sequence gap: a record was removed, inserted or reordered",
            ));
        }
        if unhex32(&r.prev) != Some(prev) {
            return Err(broken("does not link to the previous record"));
        }
        let m = key.mac(r.seq, r.time, &prev, &r.event)?;
        let given = unhex32(&r.mac).unwrap_or([0; 32]);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&m[..], &given[..])) {
            return Err(broken(
                "MAC mismatch: the record was changed or written without the key",
            ));
        }
        prev = m;
        key = key.next()?;
        expected_seq = expected_seq.saturating_add(1);
    }
    Ok(Verified {
        head: ChainHead {
            len: expected_seq,
            mac: hex(&prev),
        },
        next_key: key,
    })
}

/// Verifies a whole chain under `key` and checks that it contains `anchor` (the head the
/// caller stored after its last append): refused when shorter ([`AuditError::Truncated`])
/// or when its record at the anchor's position differs ([`AuditError::Diverged`]).
///
/// # Errors
/// As [`verify`], [`AuditError::Truncated`], [`AuditError::Diverged`].
pub fn verify_anchored(
    key: &AuditKey,
    anchor: &ChainHead,
    records: &[AuditRecord],
) -> Result<Verified, AuditError> {
    let verified = verify(key, records)?;
    if verified.head.len < anchor.len {
        return Err(AuditError::Truncated {
            anchored: anchor.len,
            found: verified.head.len,
        });
    }
    let at = match anchor.len.checked_sub(1) {
        // An empty anchor is contained in every chain.
        None => return Ok(verified),
        Some(i) => i,
    };
    let record = usize::try_from(at).ok().and_then(|i| records.get(i));
    if record.map(|r| r.mac.as_str()) != Some(anchor.mac.as_str()) {
        return Err(AuditError::Diverged { seq: at });
    }
    Ok(verified)
}
