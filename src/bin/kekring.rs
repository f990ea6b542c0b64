//! `kekring`: keys, sealing, rotation and audit on the embedded local key store.
//!
//! State lives in a home directory (`--home`, or `KEKRING_HOME`, default `.kekring`):
//! `keys.kks` (the key store, sealed under `KEKRING_MASTER_SECRET` or
//! `KEKRING_MASTER_SECRET_FILE`), `ring.json` (the key ring) and `audit.jsonl` (the audit
//! chain). Exit codes: 0 success, 1 other failure, 2 bad input or usage, 3 refused by
//! policy, 4 refused by key state, 5 backend failure, 6 decryption failed.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use kekring::audit::{self, AuditLog, ChainHead, JsonLinesSink};
use kekring::envelope::{BulkItem, BulkItemKind, BulkOptions, RewrapOutcome};
use kekring::format::{SealedHeader, WrappedDek};
use kekring::keystore::{KdfParams, KeyStore, KeyStoreError, MasterSecret};
use kekring::lifecycle::{Cadence, KeyRing, LifecycleError, NewKek, SharedKeyRing, scan_objects};
use kekring::{
    BackendId, Classification, Clock, Context, Envelope, Error, KekRef, SystemClock, WrapAlgorithm,
};

#[derive(Parser)]
#[command(
    name = "kekring",
    version,
    about = "Envelope encryption with the embedded local key store"
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
        /// Wrap algorithm (aes256-kw, aes256-gcm, ml-kem-768, ml-kem-1024, p256-ml-kem-768, rsa3072-oaep-sha256, ...).
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
    /// Opens a sealed file.
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
    Rotate {
        #[command(flatten)]
        scope: Scope,
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
    /// Retires a deprecated KEK after its window, refusing while files in `--dir` still use it.
    Retire {
        #[command(flatten)]
        scope: Scope,
        /// Version to retire.
        #[arg(long)]
        version: u32,
        /// Directory of sealed files to check.
        #[arg(long)]
        dir: PathBuf,
        /// Retire even with objects left (audited).
        #[arg(long)]
        force: bool,
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
    /// Verifies the hash chain and prints its head.
    Verify {
        /// The head hash anchored elsewhere: also detects records cut from the end.
        #[arg(long)]
        expect_head: Option<String>,
    },
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::Malformed(_) | Error::Misuse(_) | Error::Context(_) => 2,
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

impl From<audit::AuditError> for Failure {
    fn from(e: audit::AuditError) -> Self {
        Self {
            code: 1,
            message: format!("audit: {e}"),
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

struct Home {
    dir: PathBuf,
    store: KeyStore,
    ring: SharedKeyRing,
    audit: AuditLog,
    /// Held for the whole command: one command changes the home directory at a time.
    _lock: std::fs::File,
}

/// Writes through a hidden, uniquely named temporary file in the same directory (never a
/// name another file could have), fsync, rename, directory fsync.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
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
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
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

impl Home {
    fn open(dir: &Path) -> Result<Self, Failure> {
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
        let store = KeyStore::open_or_create(dir.join("keys.kks"), &secret, KdfParams::default())?;
        let ring_path = dir.join("ring.json");
        let ring = if ring_path.exists() {
            KeyRing::from_json(&std::fs::read_to_string(&ring_path)?)?
        } else {
            KeyRing::new()
        };
        let audit_path = dir.join("audit.jsonl");
        let head = if audit_path.exists() {
            audit::verify(&JsonLinesSink::read(&audit_path)?)?
        } else {
            ChainHead::genesis()
        };
        let audit = AuditLog::resume(Arc::new(JsonLinesSink::open(&audit_path)?), &head)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            store,
            ring: SharedKeyRing::new(ring),
            audit,
            _lock: lock,
        })
    }

    fn save_ring(&self) -> Result<(), Failure> {
        write_atomic(
            &self.dir.join("ring.json"),
            self.ring.snapshot().to_json().as_bytes(),
        )
    }

    fn envelope(&self) -> Result<Envelope, Failure> {
        Ok(Envelope::builder()
            .backend(Arc::new(self.store.backend()?))
            .key_ring(self.ring.clone())
            .audit(self.audit.clone())
            .build()?)
    }

    fn transition(
        &mut self,
        f: impl FnOnce(
            &KeyRing,
        )
            -> Result<(KeyRing, Vec<kekring::lifecycle::LifecycleEvent>), LifecycleError>,
    ) -> Result<(), Failure> {
        // Compute, audit, then save: no saved state change goes unaudited.
        let now = SystemClock.now();
        let (next, events) = f(&self.ring.snapshot())?;
        self.audit.append_lifecycle(now, events)?;
        self.ring = SharedKeyRing::new(next);
        self.save_ring()?;
        Ok(())
    }

    /// Generates the KEK in the key store only once the ring transition it is for has been
    /// tried on a copy of the ring: a refused transition leaves no orphan key.
    #[allow(clippy::too_many_arguments)]
    fn new_key(
        &mut self,
        scope: &Scope,
        version: u32,
        algorithm: WrapAlgorithm,
        overlap_seconds: u64,
        cadence: Option<Cadence>,
        transition: impl Fn(
            &KeyRing,
            NewKek,
        ) -> Result<
            (KeyRing, Vec<kekring::lifecycle::LifecycleEvent>),
            LifecycleError,
        >,
    ) -> Result<(), Failure> {
        let reference =
            KekRef::new(&scope.tenant, &scope.purpose, version).map_err(|e| bad(e.to_string()))?;
        let locator = reference.to_string();
        let mut new = NewKek::new(reference, BackendId::Local, locator.clone(), algorithm)
            .overlap_seconds(overlap_seconds);
        if let Some(c) = cadence {
            new = new.cadence(c);
        }
        transition(&self.ring.snapshot(), new.clone())?;
        if self.store.get(&locator).is_none() {
            self.store.generate(&locator, algorithm)?;
            self.store.save()?;
        }
        self.transition(|r| transition(r, new))
    }
}

fn context(scope: &Scope, object: &str, class: &str) -> Result<Context, Failure> {
    let class = Classification::parse(class).map_err(|e| bad(e.to_string()))?;
    Ok(Context::new(&scope.tenant, &scope.purpose, object, class)?)
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
    if let Command::Audit {
        command: AuditCommand::Verify { expect_head },
    } = &cli.command
    {
        let path = cli.home.join("audit.jsonl");
        let records = JsonLinesSink::read(&path)?;
        let head = audit::verify(&records)?;
        if let Some(expected) = expect_head
            && *expected != head.hash
        {
            return Err(Failure {
                code: 1,
                message: format!(
                    "audit chain head is {}, expected {expected}: records were cut or added",
                    head.hash
                ),
            });
        }
        println!("audit chain OK: {} records, head {}", head.len, head.hash);
        return Ok(());
    }
    let mut home = Home::open(&cli.home)?;
    match cli.command {
        Command::Keygen {
            scope,
            algorithm,
            cadence_days,
            overlap_days,
        } => {
            let alg = WrapAlgorithm::from_name(&algorithm)
                .ok_or_else(|| bad(format!("unknown algorithm {algorithm}")))?;
            let next = home
                .ring
                .read(|r| {
                    r.records()
                        .filter(|k| {
                            k.reference.tenant().as_str() == scope.tenant
                                && k.reference.purpose().as_str() == scope.purpose
                        })
                        .map(|k| k.reference.version())
                        .max()
                })
                .map_or(1, |v| v.saturating_add(1));
            let now = SystemClock.now();
            home.new_key(
                &scope,
                next,
                alg,
                overlap_days.saturating_mul(86_400),
                cadence_days.map(|days| Cadence { days }),
                |r, new| r.register(new, now),
            )?;
            println!(
                "generated {}/{}/v{next} ({alg})",
                scope.tenant, scope.purpose
            );
        }
        Command::Seal { object: o } => {
            let ctx = context(&o.scope, &o.object, &o.class)?;
            let sealed =
                pollster::block_on(home.envelope()?.seal(&ctx, &std::fs::read(&o.input)?))?;
            write_atomic(&o.output, &sealed)?;
        }
        Command::Open { object: o } => {
            let ctx = context(&o.scope, &o.object, &o.class)?;
            let plain = pollster::block_on(home.envelope()?.open(&ctx, &std::fs::read(&o.input)?))?;
            write_atomic(&o.output, &plain)?;
        }
        Command::Rotate { scope } => {
            let (tenant, purpose) = (
                kekring::Name::new("tenant", &scope.tenant).map_err(|e| bad(e.to_string()))?,
                kekring::Name::new("purpose", &scope.purpose).map_err(|e| bad(e.to_string()))?,
            );
            let current = home
                .ring
                .read(|r| r.active(&tenant, &purpose).cloned())
                .ok_or_else(|| Failure {
                    code: 4,
                    message: format!("{tenant}/{purpose} has no active KEK"),
                })?;
            let next = current.reference.version().saturating_add(1);
            let now = SystemClock.now();
            home.new_key(
                &scope,
                next,
                current.algorithm,
                current.overlap_seconds,
                current.cadence,
                |r, new| r.rotate(new, now),
            )?;
            println!(
                "rotated {tenant}/{purpose}: v{} deprecated, v{next} active",
                current.reference.version()
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
            home.transition(|ring| ring.revoke(&r, now, &reason))?;
            println!("revoked {r}");
        }
        Command::Retire {
            scope,
            version,
            dir,
            force,
        } => {
            let r = KekRef::new(&scope.tenant, &scope.purpose, version)
                .map_err(|e| bad(e.to_string()))?;
            let all = files(&dir)?;
            let scan = scan_objects(all.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
            let outstanding = scan.outstanding(&r);
            let now = SystemClock.now();
            home.transition(|ring| ring.retire(&r, now, outstanding, force))?;
            println!("retired {r}");
        }
        Command::Rewrap {
            scope,
            dir,
            concurrency,
            break_glass,
        } => {
            let env = home.envelope()?;
            let mut items = Vec::new();
            for (name, bytes) in files(&dir)? {
                let (h, _) =
                    SealedHeader::decode_prefix(&bytes).map_err(|e| bad(format!("{name}: {e}")))?;
                let ctx = Context::new(
                    &scope.tenant,
                    &scope.purpose,
                    &name,
                    h.wrapped_dek().classification().clone(),
                )?;
                items.push(BulkItem::new(name, ctx, BulkItemKind::Sealed, bytes));
            }
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
                        write_atomic(&dir.join(id), &bytes)?;
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
                    let outcome = pollster::block_on(env.danger_break_glass_rewrap(
                        &item.context,
                        BulkItemKind::Sealed,
                        &item.bytes,
                        &reason,
                    ));
                    record(&item.id, outcome)?;
                }
            } else {
                let report = pollster::block_on(env.bulk_rewrap(
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
                        k.locator_tail.trim_start_matches('…'),
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
        Command::Inspect { .. } | Command::Audit { .. } => {}
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
