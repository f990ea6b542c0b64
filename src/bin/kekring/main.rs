//! `kekring`: keys, sealing, rotation and audit on the embedded local key store, with
//! remote KEKs when built with `aws-kms` / `vault-transit`: `register` names a
//! customer's AWS KMS key or a Transit key version as a scope's KEK, and `rotate
//! --aws-kms-key ... | --transit-key ...` moves a scope to one (both check the key with a
//! wrap and an unwrap first). Remote credentials come from the services' own environment
//! variables (see `kekring/remote.rs`), never from the command line or the home.
//!
//! State lives in a home directory (`--home`, or `KEKRING_HOME`, default `.kekring`):
//! `keys.kks`, the key store sealed under `KEKRING_MASTER_SECRET` (or the file named by
//! `KEKRING_MASTER_SECRET_FILE`), which also holds the key ring and the head of the audit
//! trail; and `audit.jsonl`, the audit trail, each record MAC-chained under a key derived
//! from the master secret. Nothing in the home can be edited, cut or rolled back alone
//! without the master secret: the ring is authenticated with the keys, the trail with the
//! key store's anchor, and the key store is refused when the trail has records it does
//! not know of. Exit codes: 0 success, 1 other failure, 2 bad input or usage, 3 refused by
//! policy, 4 refused by key state, 5 backend failure, 6 decryption failed (or wrong
//! master secret), 7 the home's state was changed, cut or rolled back.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use kekring::audit::{self, AuditError, AuditKey, AuditLog, AuditRecord, ChainHead, MemorySink};
use kekring::backend::{KekSpec, KeyBackend, KeyIdentity};
use kekring::envelope::{BulkItem, BulkItemKind, BulkOptions, RetireOptions, RewrapOutcome};
use kekring::format::{SealedHeader, WrappedDek};
use kekring::keystore::{KdfParams, KeyStore, KeyStoreError, MasterSecret, StoreBackend};
use kekring::lifecycle::{Cadence, KeyRing, LifecycleError, NewKek, SharedKeyRing, scan_objects};
use kekring::{
    BackendId, Classification, Clock, Context, Envelope, Error, KekRef, MisuseError, SystemClock,
    WrapAlgorithm,
};
use serde::{Deserialize, Serialize};

mod remote;

/// Runs a future to completion on the tool's one runtime (a current-thread tokio
/// runtime: the remote backends' HTTP clients need one).
fn block_on<F: Future>(f: F) -> F::Output {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| {
                    eprintln!("kekring: cannot start the async runtime: {e}");
                    std::process::exit(1)
                })
        })
        .block_on(f)
}

#[derive(Parser)]
#[command(
    name = "kekring",
    version,
    about = "Envelope encryption with the embedded local key store and remote KEKs"
)]
struct Cli {
    /// State directory (key store, key ring, audit log).
    #[arg(long, env = "KEKRING_HOME", default_value = ".kekring", global = true)]
    home: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Scope {
    /// Tenant.
    #[arg(long)]
    tenant: String,
    /// Purpose.
    #[arg(long)]
    purpose: String,
}

/// The KEK to retire or destroy, and the files that must open without it.
#[derive(clap::Args, Clone)]
struct Retirement {
    #[command(flatten)]
    scope: Scope,
    /// Its version.
    #[arg(long)]
    version: u32,
    /// Directory of sealed files to check (file name = object id).
    #[arg(long)]
    dir: PathBuf,
    /// Unwrap only this many files, chosen at random (every header is still scanned).
    #[arg(long)]
    sample: Option<usize>,
    /// Go ahead even with files that still need it (audited); after a destruction they
    /// are unreadable.
    #[arg(long)]
    force: bool,
}

impl Retirement {
    fn kek(&self) -> Result<KekRef, Failure> {
        KekRef::new(&self.scope.tenant, &self.scope.purpose, self.version)
            .map_err(|e| bad(e.to_string()))
    }

    fn options(&self) -> RetireOptions {
        let opts = RetireOptions::new().force(self.force);
        match self.sample {
            Some(n) => opts.sample(n),
            None => opts,
        }
    }

    /// The files, as bulk items.
    fn items(&self) -> Result<Vec<BulkItem>, Failure> {
        items(&self.scope, &self.dir)
    }
}

/// Which object, and the files to read and write.
#[derive(clap::Args, Clone)]
struct ObjectArgs {
    #[command(flatten)]
    scope: Scope,
    /// Object id (bound into the object).
    #[arg(long)]
    object: String,
    /// Classification.
    #[arg(long)]
    class: String,
    /// Input file.
    #[arg(long = "in")]
    input: PathBuf,
    /// Output file.
    #[arg(long = "out")]
    output: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Generates a KEK in the key store and registers it as the scope's active KEK.
    Keygen {
        #[command(flatten)]
        scope: Scope,
        /// Wrap algorithm (aes256-kw, aes256-gcm-derived, ml-kem-768, ml-kem-1024, p256-ml-kem-768, rsa3072-oaep-sha256, ...).
        #[arg(long, default_value = "ml-kem-768")]
        algorithm: String,
        /// Rotation cadence in days.
        #[arg(long)]
        cadence_days: Option<u32>,
        /// Overlap window after rotation, in days.
        #[arg(long, default_value_t = 30)]
        overlap_days: u64,
    },
    /// Seals a file.
    Seal {
        #[command(flatten)]
        object: ObjectArgs,
    },
    /// Opens a sealed file (the plaintext is written readable by its owner only).
    Open {
        #[command(flatten)]
        object: ObjectArgs,
    },
    /// Prints a sealed object's or wrapped DEK's header (no key needed).
    Inspect {
        /// The file.
        file: PathBuf,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Rotates a scope: a successor KEK becomes active, the current one is deprecated.
    /// The successor is created beside the current KEK, or is the remote KEK named
    /// (checked with a wrap and an unwrap first).
    Rotate {
        #[command(flatten)]
        scope: Scope,
        #[command(flatten)]
        to: remote::RemoteKek,
    },
    /// Registers an existing remote KEK (an AWS KMS key, a Transit key version) as a
    /// scope's first active KEK, after checking it with a wrap and an unwrap.
    Register {
        #[command(flatten)]
        scope: Scope,
        #[command(flatten)]
        kek: remote::RemoteKek,
        /// Rotation cadence in days.
        #[arg(long)]
        cadence_days: Option<u32>,
        /// Overlap window after rotation, in days.
        #[arg(long, default_value_t = 30)]
        overlap_days: u64,
    },
    /// Revokes a KEK (irreversible).
    Revoke {
        #[command(flatten)]
        scope: Scope,
        /// Version to revoke.
        #[arg(long)]
        version: u32,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        reason: String,
    },
    /// Retires a deprecated KEK after its window, once every file in `--dir` opens without it.
    Retire {
        #[command(flatten)]
        target: Retirement,
    },
    /// Destroys a retired or revoked KEK's material, once every file in `--dir` opens without it.
    Destroy {
        #[command(flatten)]
        target: Retirement,
    },
    /// Re-wraps every sealed file in a directory under the current KEK (file name = object id).
    Rewrap {
        #[command(flatten)]
        scope: Scope,
        /// Directory of sealed files.
        #[arg(long)]
        dir: PathBuf,
        /// Files in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Read under a revoked KEK (audited), with this reason.
        #[arg(long)]
        break_glass: Option<String>,
    },
    /// Lists the key ring, optionally with which files in `--dir` use which KEK.
    Inventory {
        /// Directory of sealed files to scan.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Audit trail operations.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verifies the audit trail under its key and against the head the key store
    /// anchors, and prints its head.
    Verify {
        /// A head MAC anchored elsewhere (outside this home): also detects a rollback of
        /// the whole home to an older copy.
        #[arg(long)]
        expect_head: Option<String>,
    },
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    message: String,
}

/// The exit code for a home whose state was changed, cut or rolled back.
const TAMPERED: u8 = 7;

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        // A transition the key ring refused gets the key ring's codes, wherever it came
        // from (the ring itself or the envelope).
        let e = match e {
            Error::Misuse(MisuseError::Lifecycle(l)) => return l.into(),
            other => other,
        };
        let code = match &e {
            Error::Malformed(_) | Error::Misuse(_) | Error::Context(_) | Error::Config(_) => 2,
            Error::Policy(_) => 3,
            Error::KeyState(_) => 4,
            Error::Backend(_) | Error::Rng => 5,
            Error::Crypto => 6,
            _ => 1,
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

impl From<KeyStoreError> for Failure {
    fn from(e: KeyStoreError) -> Self {
        let code = match &e {
            KeyStoreError::MissingSecret
            | KeyStoreError::WeakSecret
            | KeyStoreError::Malformed(_) => 2,
            KeyStoreError::WrongSecretOrTampered => 6,
            _ => 1,
        };
        Self {
            code,
            message: format!("key store: {e}"),
        }
    }
}

impl From<LifecycleError> for Failure {
    fn from(e: LifecycleError) -> Self {
        let code = match &e {
            LifecycleError::Malformed(_)
            | LifecycleError::UnknownSchema(_)
            | LifecycleError::UnknownKek(_)
            | LifecycleError::DuplicateKek(_)
            | LifecycleError::BadSuccessor { .. } => 2,
            _ => 4,
        };
        Self {
            code,
            message: format!("key ring: {e}"),
        }
    }
}

impl From<AuditError> for Failure {
    fn from(e: AuditError) -> Self {
        let code = match &e {
            AuditError::Io(_) => 1,
            _ => TAMPERED,
        };
        Self {
            code,
            message: format!("audit trail: {e}"),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Self {
            code: 1,
            message: format!("I/O: {e}"),
        }
    }
}

fn bad(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

fn tampered(message: impl Into<String>) -> Failure {
    Failure {
        code: TAMPERED,
        message: message.into(),
    }
}

/// What the key store holds besides the keys: the key ring, the head of the audit trail
/// after the last command, and that command's records (written to the trail after the
/// store is saved, so a crash in between loses none: the next command appends them).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HomeState {
    ring: KeyRing,
    audit_head: ChainHead,
    pending: Vec<AuditRecord>,
}

const AUDIT_KEY_LABEL: &str = "kekring/cli/audit-chain";

/// Writes through a hidden, uniquely named temporary file in the same directory (never a
/// name another file could have) created with `mode` on Unix, fsync, rename, directory
/// fsync.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Failure> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(
        ".{name}.kekring-tmp-{}-{nanos}",
        std::process::id()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(&tmp)?;
    let written = f
        .write_all(bytes)
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    #[cfg(unix)]
    std::fs::File::open(&dir)?.sync_all()?;
    Ok(())
}

/// Plaintext is readable by its owner only; sealed files follow the umask.
const PLAINTEXT_MODE: u32 = 0o600;
const SEALED_MODE: u32 = 0o666;

/// Reads the audit trail, after cutting a final line torn by a crash (no trailing
/// newline): the store's pending records restore it.
fn read_trail(path: &Path) -> Result<Vec<AuditRecord>, Failure> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let bytes = std::fs::read(path)?;
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if complete != bytes.len() {
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(u64::try_from(complete).unwrap_or(0))?;
    }
    Ok(audit::JsonLinesSink::read(path)?)
}

fn append_trail(path: &Path, records: &[AuditRecord]) -> Result<(), Failure> {
    use kekring::audit::AuditSink;
    let sink = audit::JsonLinesSink::open(path)?;
    for r in records {
        sink.write(r)?;
    }
    Ok(())
}

struct Home {
    dir: PathBuf,
    /// The key store's keys, as the envelope's backend: KEKs it creates or destroys are
    /// saved into the store at once; the ring and audit head are saved at the end.
    backend: Arc<StoreBackend>,
    /// The remote backends the ring's KEKs or the command need.
    remotes: Vec<Arc<dyn KeyBackend>>,
    ring: SharedKeyRing,
    /// The command's audit records, buffered until the store has them.
    buffer: Arc<MemorySink>,
    log: AuditLog,
    env: Envelope,
    /// The ring's install counter when the home was opened (a change must be saved).
    ring_generation: u64,
    store_changed: bool,
    /// Held for the whole command: one command changes the home directory at a time.
    _lock: std::fs::File,
}

impl Home {
    /// Opens the home; `extra` names remote backends the command needs besides those
    /// of the KEKs in the ring.
    fn open(dir: &Path, extra: &BTreeSet<BackendId>) -> Result<Self, Failure> {
        std::fs::create_dir_all(dir)?;
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("lock"))?;
        lock.try_lock().map_err(|_| Failure {
            code: 1,
            message: "another kekring command is using this home directory".to_owned(),
        })?;
        let secret = MasterSecret::from_env_or_file()?;
        let store_path = dir.join("keys.kks");
        let trail_path = dir.join("audit.jsonl");
        if dir.join("ring.json").exists() {
            return Err(tampered(
                "this home has a ring.json: it was written by a kekring that kept the key ring \
                 outside the key store, which this version does not read",
            ));
        }
        let store = if store_path.exists() {
            KeyStore::open(&store_path, &secret)?
        } else {
            // Never a fresh store beside an existing trail: that is a deleted store.
            if std::fs::metadata(&trail_path).is_ok_and(|m| m.len() > 0) {
                return Err(tampered(
                    "the home has an audit trail but no key store: restore keys.kks; kekring \
                     does not start a fresh store beside existing state",
                ));
            }
            // A new home's state is written with the store, so no later crash can leave
            // keys in a store that holds no key ring.
            let mut store = KeyStore::create(&store_path, &secret, KdfParams::default())?;
            let initial = HomeState {
                ring: KeyRing::new(),
                audit_head: ChainHead::genesis(),
                pending: Vec::new(),
            };
            store.set_app_state(serde_json::to_vec(&initial).map_err(|e| Failure {
                code: 1,
                message: format!("could not encode the home state: {e}"),
            })?)?;
            store.save()?;
            store
        };
        let key = AuditKey::from_bytes(*store.derive_key(AUDIT_KEY_LABEL)?);
        let state: HomeState = if store.app_state().is_empty() {
            if store.locators().next().is_some() {
                return Err(tampered(
                    "the key store holds keys but no key ring: it was written by an earlier \
                     kekring or edited",
                ));
            }
            HomeState {
                ring: KeyRing::new(),
                audit_head: ChainHead::genesis(),
                pending: Vec::new(),
            }
        } else {
            serde_json::from_slice(store.app_state())
                .map_err(|e| tampered(format!("the key store's state does not parse: {e}")))?
        };
        // The trail must end exactly at the anchored head once the last command's
        // pending records are in; more records than the store knows means the store was
        // rolled back.
        let mut records = read_trail(&trail_path)?;
        let anchored = state.audit_head.len;
        let found = u64::try_from(records.len()).unwrap_or(u64::MAX);
        if found > anchored {
            return Err(tampered(format!(
                "the audit trail has {found} records but the key store anchors {anchored}: \
                 the key store was rolled back"
            )));
        }
        let missing: Vec<AuditRecord> = state
            .pending
            .iter()
            .filter(|r| r.seq >= found)
            .cloned()
            .collect();
        if found.saturating_add(u64::try_from(missing.len()).unwrap_or(0)) != anchored {
            return Err(AuditError::Truncated { anchored, found }.into());
        }
        records.extend(missing.iter().cloned());
        let verified = audit::verify_anchored(&key, &state.audit_head, &records)?;
        if verified.head != state.audit_head {
            return Err(AuditError::Diverged { seq: anchored }.into());
        }
        if !missing.is_empty() {
            append_trail(&trail_path, &missing)?;
        }
        // Pending records are cleared from the store once the trail has them.
        let store_changed = !state.pending.is_empty();
        let buffer = Arc::new(MemorySink::new());
        let log = AuditLog::resume(buffer.clone(), verified)?;
        let backend = Arc::new(StoreBackend::new(store)?);
        let mut needed: BTreeSet<BackendId> = state
            .ring
            .records()
            .map(|r| r.backend)
            .filter(|b| *b != BackendId::Local)
            .collect();
        needed.extend(extra.iter().copied());
        let remotes = remote::backends(&needed)?;
        let ring = SharedKeyRing::new(state.ring);
        let mut builder = Envelope::builder()
            .backend(backend.clone())
            .key_ring(ring.clone())
            .audit(log.clone());
        for r in &remotes {
            builder = builder.backend(r.clone());
        }
        let env = builder.build()?;
        let ring_generation = ring.read(KeyRing::generation);
        Ok(Self {
            dir: dir.to_path_buf(),
            backend,
            remotes,
            ring,
            buffer,
            log,
            env,
            ring_generation,
            store_changed,
            _lock: lock,
        })
    }

    /// The remote backend of kind `id` this command opened.
    fn remote(&self, id: BackendId) -> Result<&dyn KeyBackend, Failure> {
        self.remotes
            .iter()
            .find(|b| b.info().id == id)
            .map(|b| b.as_ref())
            .ok_or_else(|| bad(format!("no {id} backend is configured")))
    }

    /// Saves what the command changed. The ring, the keys, the audit head and the
    /// command's records go into the key store first; then the records are appended to
    /// the trail; then the store is saved again with no records pending. A crash after
    /// the first save leaves records pending, which the next command appends; once the
    /// append is confirmed, a trail shorter than the anchored head can only have been
    /// cut. Runs whether the command succeeded or not (denials are recorded too).
    fn finish(mut self) -> Result<(), Failure> {
        self.checkpoint()
    }

    /// Saves what happened so far (see [`Home::finish`]); the command may go on.
    fn checkpoint(&mut self) -> Result<(), Failure> {
        self.env.flush_audit()?;
        let pending = self.buffer.take();
        let ring = self.ring.snapshot();
        if pending.is_empty() && !self.store_changed && ring.generation() == self.ring_generation {
            return Ok(());
        }
        let head = self.log.head();
        if !pending.is_empty() {
            self.save_state(&ring, &head, &pending)?;
            // Debug builds only: the tests simulate a crash between the two writes.
            #[cfg(debug_assertions)]
            if std::env::var_os("KEKRING_TEST_CRASH_AFTER_STATE_SAVE").is_some() {
                std::process::exit(9);
            }
            append_trail(&self.dir.join("audit.jsonl"), &pending)?;
        }
        self.save_state(&ring, &head, &[])?;
        self.ring_generation = ring.generation();
        self.store_changed = false;
        Ok(())
    }

    fn save_state(
        &mut self,
        ring: &KeyRing,
        head: &ChainHead,
        pending: &[AuditRecord],
    ) -> Result<(), Failure> {
        #[derive(Serialize)]
        struct Out<'a> {
            ring: &'a KeyRing,
            audit_head: &'a ChainHead,
            pending: &'a [AuditRecord],
        }
        let bytes = serde_json::to_vec(&Out {
            ring,
            audit_head: head,
            pending,
        })
        .map_err(|e| Failure {
            code: 1,
            message: format!("could not encode the home state: {e}"),
        })?;
        self.backend.with_store(|store| {
            store.set_app_state(bytes)?;
            store.save()
        })??;
        Ok(())
    }
}

fn context(scope: &Scope, object: &str, class: &str) -> Result<Context, Failure> {
    let class = Classification::parse(class).map_err(|e| bad(e.to_string()))?;
    Ok(Context::new(&scope.tenant, &scope.purpose, object, class)?)
}

/// The reference a new KEK of the scope gets: the version after every one the ring has
/// had (a scope with an active KEK is refused by the ring when it is registered).
fn next_reference(
    ring: &SharedKeyRing,
    tenant: &kekring::Name,
    purpose: &kekring::Name,
) -> Result<KekRef, Failure> {
    let next = ring
        .read(|r| {
            r.records()
                .filter(|k| k.reference.tenant() == tenant && k.reference.purpose() == purpose)
                .map(|k| k.reference.version())
                .max()
        })
        .map_or(1, |v| v.saturating_add(1));
    KekRef::from_parts(tenant.clone(), purpose.clone(), next).map_err(|e| Error::from(e).into())
}

fn names(scope: &Scope) -> Result<(kekring::Name, kekring::Name), Failure> {
    Ok((
        kekring::Name::new("tenant", &scope.tenant).map_err(|e| bad(e.to_string()))?,
        kekring::Name::new("purpose", &scope.purpose).map_err(|e| bad(e.to_string()))?,
    ))
}

/// Every sealed file of `dir` as a bulk item of `scope` (file name = object id, the
/// classification from its header).
fn items(scope: &Scope, dir: &Path) -> Result<Vec<BulkItem>, Failure> {
    let mut out = Vec::new();
    for (name, bytes) in files(dir)? {
        let (h, _) =
            SealedHeader::decode_prefix(&bytes).map_err(|e| bad(format!("{name}: {e}")))?;
        let ctx = Context::new(
            &scope.tenant,
            &scope.purpose,
            &name,
            h.wrapped_dek().classification().clone(),
        )?;
        out.push(BulkItem::new(name, ctx, BulkItemKind::Sealed, bytes));
    }
    Ok(out)
}

fn report_check(what: &str, check: &kekring::envelope::RetireCheck) {
    for (id, e) in &check.unreadable {
        eprintln!("{id}: does not open without the KEK: {e}");
    }
    println!(
        "{what}: {} files scanned, {} name the KEK, {} opened without it, {} did not",
        check.scanned,
        check.outstanding,
        check.verified,
        check.unreadable.len()
    );
}

fn header_text(bytes: &[u8], json: bool) -> Result<String, Failure> {
    let (kind, dek) = match SealedHeader::decode_prefix(bytes) {
        Ok((h, len)) => (
            format!(
                "sealed object: suite 0x{:04x}, header {len} bytes, payload {} bytes",
                h.suite().id(),
                bytes.len().saturating_sub(len)
            ),
            h.wrapped_dek().clone(),
        ),
        Err(_) => (
            "wrapped DEK".to_owned(),
            WrappedDek::decode(bytes)
                .map_err(|e| bad(format!("not a sealed object or wrapped DEK: {e}")))?,
        ),
    };
    let entries: Vec<serde_json::Value> = dek
        .entries()
        .iter()
        .map(|e| serde_json::json!({
            "kek": e.kek(), "algorithm": e.algorithm(), "family": e.algorithm().family(),
            "backend": e.backend(), "params_len": e.params().len(), "wrapped_len": e.wrapped().len()
        }))
        .collect();
    if json {
        return Ok(serde_json::json!({"kind": kind, "classification": dek.classification(), "wraps": entries}).to_string());
    }
    let mut out = format!("{kind}\nclassification: {}\n", dek.classification());
    for e in dek.entries() {
        out.push_str(&format!(
            "wrap: KEK {} ({}, {}) on {}\n",
            e.kek(),
            e.algorithm(),
            e.algorithm().family(),
            e.backend()
        ));
    }
    Ok(out)
}

fn files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, Failure> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_file() && !e.file_name().to_string_lossy().starts_with('.') {
            out.push((
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path())?,
            ));
        }
    }
    out.sort();
    Ok(out)
}

fn run(cli: Cli) -> Result<(), Failure> {
    if let Command::Inspect { file, json } = &cli.command {
        println!("{}", header_text(&std::fs::read(file)?, *json)?);
        return Ok(());
    }
    let extra: BTreeSet<BackendId> = match &cli.command {
        Command::Rotate { to: kek, .. } | Command::Register { kek, .. } => {
            kek.target()?.map(|t| t.backend).into_iter().collect()
        }
        _ => BTreeSet::new(),
    };
    let mut home = Home::open(&cli.home, &extra)?;
    let result = command(&mut home, cli.command);
    let finished = home.finish();
    match (result, finished) {
        (Err(e), Err(f)) => Err(Failure {
            code: e.code,
            message: format!("{}; and saving the home failed: {}", e.message, f.message),
        }),
        (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(())) => Ok(()),
    }
}

fn command(home: &mut Home, command: Command) -> Result<(), Failure> {
    let env = home.env.clone();
    match command {
        Command::Keygen {
            scope,
            algorithm,
            cadence_days,
            overlap_days,
        } => {
            let alg = WrapAlgorithm::from_name(&algorithm)
                .ok_or_else(|| bad(format!("unknown algorithm {algorithm}")))?;
            let (tenant, purpose) = names(&scope)?;
            let reference = next_reference(&home.ring, &tenant, &purpose)?;
            let mut new = NewKek::new(reference.clone(), BackendId::Local, "", alg)
                .overlap_seconds(overlap_days.saturating_mul(86_400));
            if let Some(days) = cadence_days {
                new = new.cadence(Cadence { days });
            }
            let now = SystemClock.now();
            // Tried on a copy first, with an identity no key has: a refused registration
            // creates no key.
            let trial = new.clone().key_id(KeyIdentity::new("pending"));
            home.ring.read(|r| r.register(trial, now))?;
            // A fresh locator in the key store, saved before the ring names it.
            let created = block_on(
                home.backend
                    .create_kek(&KekSpec::new(alg, format!("{tenant}-{purpose}"))),
            )
            .map_err(Error::from)?;
            let key_id = home
                .backend
                .key_identity(&created.locator)
                .map_err(Error::from)?;
            new.locator = created.locator;
            let new = new.key_id(key_id);
            home.ring.apply(|r| r.register(new, now))?;
            println!("generated {reference} ({alg})");
        }
        Command::Register {
            scope,
            kek,
            cadence_days,
            overlap_days,
        } => {
            let target = kek.target()?.ok_or_else(|| {
                bad("name the KEK: --aws-kms-key with --aws-region, or --transit-key")
            })?;
            // The key as the ring will record it (an alias resolved to its key), and
            // which key that is.
            let target = remote::pinned(home.remote(target.backend)?, target)?;
            let key_id = home
                .remote(target.backend)?
                .key_identity(&target.locator)
                .map_err(Error::from)?;
            let (tenant, purpose) = names(&scope)?;
            let reference = next_reference(&home.ring, &tenant, &purpose)?;
            let mut new = NewKek::new(
                reference.clone(),
                target.backend,
                target.locator.clone(),
                target.algorithm,
            )
            .key_id(key_id)
            .overlap_seconds(overlap_days.saturating_mul(86_400));
            if let Some(days) = cadence_days {
                new = new.cadence(Cadence { days });
            }
            let now = SystemClock.now();
            // Tried on a copy first, then the key itself, then the ring.
            home.ring.read(|r| r.register(new.clone(), now))?;
            remote::probe(home.remote(target.backend)?, &target, &tenant, &purpose)?;
            home.ring.apply(|r| r.register(new, now))?;
            println!(
                "registered {reference} ({}, {})",
                target.backend, target.algorithm
            );
        }
        Command::Seal { object: o } => {
            let ctx = context(&o.scope, &o.object, &o.class)?;
            let sealed = block_on(env.seal(&ctx, &std::fs::read(&o.input)?))?;
            write_atomic(&o.output, &sealed, SEALED_MODE)?;
        }
        Command::Open { object: o } => {
            let ctx = context(&o.scope, &o.object, &o.class)?;
            let plain = block_on(env.open(&ctx, &std::fs::read(&o.input)?))?;
            write_atomic(&o.output, &plain, PLAINTEXT_MODE)?;
        }
        Command::Rotate { scope, to } => {
            let (tenant, purpose) = names(&scope)?;
            let next = match to.target()? {
                // A remote KEK that exists: checked, then installed as the successor (in
                // its stable form: rotate_kek_to resolves an alias to its key).
                Some(target) => {
                    remote::probe(home.remote(target.backend)?, &target, &tenant, &purpose)?;
                    block_on(env.rotate_kek_to(
                        &tenant,
                        &purpose,
                        target.backend,
                        target.locator,
                        target.algorithm,
                    ))?
                }
                // The envelope's one rotation path: the successor is created beside the
                // current KEK (a local one saved in the key store at once), then the
                // ring rotates (recorded in the trail).
                None => block_on(env.rotate_kek(&tenant, &purpose))?,
            };
            println!(
                "rotated {tenant}/{purpose}: v{} deprecated, v{} active",
                next.version().saturating_sub(1),
                next.version()
            );
        }
        Command::Revoke {
            scope,
            version,
            reason,
        } => {
            let r = KekRef::new(&scope.tenant, &scope.purpose, version)
                .map_err(|e| bad(e.to_string()))?;
            let now = SystemClock.now();
            home.ring.apply(|ring| ring.revoke(&r, now, &reason))?;
            println!("revoked {r}");
        }
        Command::Retire { target } => {
            let r = target.kek()?;
            let check = block_on(env.retire_kek(&r, target.items()?, target.options()))?;
            report_check("retire", &check);
            println!("retired {r}");
        }
        Command::Destroy { target } => {
            let r = target.kek()?;
            // The destruction is recorded (ring and audit trail saved) before the store
            // backend removes the material: a crash in between leaves a record and a key
            // to delete again, never a key gone without its record.
            let already = home.ring.read(|ring| {
                ring.get(&r)
                    .is_some_and(|k| k.state == kekring::lifecycle::KekState::Destroyed)
            });
            if !already {
                let check =
                    block_on(env.record_destruction(&r, target.items()?, target.options()))?;
                report_check("destroy", &check);
                home.checkpoint()?;
            }
            // Also finishes a destruction a crash interrupted after its record.
            block_on(env.delete_destroyed_kek(&r))?;
            println!("destroyed {r}: its key material is removed from the key store");
        }
        Command::Rewrap {
            scope,
            dir,
            concurrency,
            break_glass,
        } => {
            let items = items(&scope, &dir)?;
            let total = items.len();
            let tty = std::io::stderr().is_terminal();
            let mut failed = 0u64;
            let mut rewrapped = 0u64;
            let mut first_error: Option<Failure> = None;
            let mut record = |id: &str,
                              outcome: Result<(Vec<u8>, RewrapOutcome), Error>|
             -> Result<(), Failure> {
                match outcome {
                    Ok((bytes, RewrapOutcome::Rewrapped)) => {
                        write_atomic(&dir.join(id), &bytes, SEALED_MODE)?;
                        rewrapped += 1;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        failed += 1;
                        eprintln!("{id}: {e}");
                        first_error.get_or_insert(Failure::from(e));
                    }
                }
                Ok(())
            };
            if let Some(reason) = break_glass {
                for item in items {
                    let outcome = block_on(env.danger_break_glass_rewrap(
                        &item.context,
                        BulkItemKind::Sealed,
                        &item.bytes,
                        &reason,
                    ));
                    record(&item.id, outcome)?;
                }
            } else {
                let report = block_on(env.bulk_rewrap(
                    items,
                    BulkOptions::new(concurrency, 0),
                    |p, _, _| {
                        if tty {
                            eprint!("\rre-wrapping: {}/{total} ({} failed)", p.done, p.failed);
                        }
                    },
                ));
                if tty {
                    eprintln!();
                }
                for r in report.results {
                    record(&r.id, r.outcome)?;
                }
                if let Some(e) = report.audit_error {
                    return Err(e.into());
                }
            }
            println!("re-wrapped {rewrapped} of {total} files, {failed} failed");
            if let Some(mut f) = first_error {
                f.message = format!(
                    "{failed} files were not re-wrapped (first: {}); run again",
                    f.message
                );
                return Err(f);
            }
        }
        Command::Inventory { dir, json } => {
            let inv = home.ring.read(|r| r.inventory(SystemClock.now()));
            let scan = match dir {
                Some(d) => {
                    let all = files(&d)?;
                    Some(scan_objects(
                        all.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
                    ))
                }
                None => None,
            };
            if json {
                println!("{}", serde_json::json!({"inventory": inv, "objects": scan}));
            } else {
                for k in &inv.keks {
                    println!(
                        "{}  {}  {}  {}  backend {} …{}  next rotation {}  retire at {}",
                        k.kek,
                        k.state,
                        k.algorithm,
                        k.family,
                        k.backend,
                        k.key_tail.trim_start_matches('…'),
                        k.next_rotation_at.map_or("-".into(), |t| t.to_string()),
                        k.retire_at.map_or("-".into(), |t| t.to_string()),
                    );
                }
                if let Some(scan) = scan {
                    for (kek, n) in &scan.per_kek {
                        println!("objects under {kek}: {n}");
                    }
                }
            }
        }
        Command::Audit {
            command: AuditCommand::Verify { expect_head },
        } => {
            // Opening the home verified the trail under its key and its anchored head.
            let head = home.log.head();
            if let Some(expected) = expect_head
                && expected != head.mac
            {
                return Err(tampered(format!(
                    "audit trail head is {}, expected {expected}: the home was rolled back or \
                     records were added",
                    head.mac
                )));
            }
            println!("audit chain OK: {} records, head {}", head.len, head.mac);
        }
        Command::Inspect { .. } => {}
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("kekring: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
