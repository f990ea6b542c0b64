//! The audit trail: typed events, each hash-chained to the previous one, written to an
//! [`AuditSink`] (a JSON-lines file or memory), and [`verify`] to detect a changed,
//! removed, reordered or inserted record. The chain head can be exported so a caller can
//! anchor it in an outside ledger.
//!
//! ```text
//! hash(n) = SHA-256("kekring/v1/audit" || seq (u64 BE) || time (u64 BE) || hash(n-1)
//!                   || canonical event)
//! hash(-1) = 32 zero bytes;  canonical event = the event's serde_json encoding (typed,
//!                                             fixed field order, no whitespace)
//! ```
//!
//! No key material is ever part of an event; backend key identifiers appear only as their
//! last 12 characters.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
    /// The previous record's hash (hex; 64 zeros for the first).
    pub prev: String,
    /// What happened.
    pub event: AuditEvent,
    /// This record's hash (hex).
    pub hash: String,
}

/// The end of a chain: what a caller anchors in an outside ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// How many records the chain holds.
    pub len: u64,
    /// The last record's hash (hex; 64 zeros for an empty chain).
    pub hash: String,
}

impl ChainHead {
    /// The head of an empty chain.
    pub fn genesis() -> Self {
        Self {
            len: 0,
            hash: hex(&[0u8; 32]),
        }
    }
}

/// Why an audit operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The chain is broken at this record: changed, removed, reordered or inserted.
    #[error("audit chain broken at record {seq}: {reason}")]
    Broken {
        /// The first record that does not verify.
        seq: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A line of an audit file is not a record.
    #[error("audit line {line} is malformed: {message}")]
    Malformed {
        /// The line number (from 1).
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// Writing or reading the sink failed.
    #[error("audit I/O: {0}")]
    Io(#[from] std::io::Error),
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

fn record_hash(seq: u64, time: UnixTime, prev: &[u8; 32], event: &AuditEvent) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"kekring/v1/audit");
    h.update(seq.to_be_bytes());
    h.update(time.to_be_bytes());
    h.update(prev);
    h.update(serde_json::to_vec(event).unwrap_or_default());
    h.finalize().into()
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
}

/// Appends hash-chained records to a sink. Cheap to clone and share.
#[derive(Clone, Debug)]
pub struct AuditLog {
    sink: Arc<dyn AuditSink>,
    state: Arc<Mutex<ChainState>>,
}

impl AuditLog {
    /// A new chain on `sink`.
    pub fn new(sink: Arc<dyn AuditSink>) -> Self {
        Self {
            sink,
            state: Arc::new(Mutex::new(ChainState {
                next_seq: 0,
                head: [0; 32],
            })),
        }
    }

    /// Continues an existing chain whose verified head is `head`.
    ///
    /// # Errors
    /// [`AuditError::Broken`] for a head that is not a hash.
    pub fn resume(sink: Arc<dyn AuditSink>, head: &ChainHead) -> Result<Self, AuditError> {
        let h = unhex32(&head.hash).ok_or(AuditError::Broken {
            seq: head.len,
            reason: "head is not a SHA-256 hash",
        })?;
        Ok(Self {
            sink,
            state: Arc::new(Mutex::new(ChainState {
                next_seq: head.len,
                head: h,
            })),
        })
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
        let hash = record_hash(st.next_seq, time, &st.head, &event);
        let record = AuditRecord {
            seq: st.next_seq,
            time,
            prev: hex(&st.head),
            event,
            hash: hex(&hash),
        };
        self.sink.write(&record)?;
        st.next_seq = st.next_seq.saturating_add(1);
        st.head = hash;
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

    /// The current head, for anchoring outside.
    pub fn head(&self) -> ChainHead {
        self.state
            .lock()
            .map(|st| ChainHead {
                len: st.next_seq,
                hash: hex(&st.head),
            })
            .unwrap_or_else(|_| ChainHead::genesis())
    }
}

/// Verifies a whole chain from its first record; returns its head. Records cut from
/// the *end* leave a shorter valid chain: compare the head with one anchored elsewhere
/// to detect that.
///
/// # Errors
/// [`AuditError::Broken`] at the first record that was changed, removed, reordered or
/// inserted.
pub fn verify(records: &[AuditRecord]) -> Result<ChainHead, AuditError> {
    verify_from(&ChainHead::genesis(), records)
}

/// Verifies records that continue the chain at `anchor` (for example a head anchored
/// in an outside ledger, or the head of an earlier verified file).
///
/// # Errors
/// As [`verify`].
pub fn verify_from(anchor: &ChainHead, records: &[AuditRecord]) -> Result<ChainHead, AuditError> {
    let mut expected_seq = anchor.len;
    let mut prev = unhex32(&anchor.hash).ok_or(AuditError::Broken {
        seq: anchor.len,
        reason: "anchor is not a SHA-256 hash",
    })?;
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
        let h = record_hash(r.seq, r.time, &prev, &r.event);
        if unhex32(&r.hash) != Some(h) {
            return Err(broken("hash mismatch: the record was changed"));
        }
        prev = h;
        expected_seq = expected_seq.saturating_add(1);
    }
    Ok(ChainHead {
        len: expected_seq,
        hash: hex(&prev),
    })
}
