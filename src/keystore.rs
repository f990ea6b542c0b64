//! The embedded key store: local KEKs kept in one file, sealed under a master secret
//! stretched with Argon2id, written atomically. For users with no cloud account.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kekring::keystore::{KdfParams, KeyStore, MasterSecret};
//! use kekring::WrapAlgorithm;
//!
//! let secret = MasterSecret::from_env_or_file()?; // KEKRING_MASTER_SECRET(_FILE)
//! let mut store = KeyStore::open_or_create("keys.kks", &secret, KdfParams::default())?;
//! if store.get("acme/docs/v1").is_none() {
//!     store.generate("acme/docs/v1", WrapAlgorithm::MlKem768)?;
//!     store.save()?;
//! }
//! // A backend over the store's keys: KEKs it creates (rotation successors) are saved
//! // into the store before it returns them.
//! let backend = kekring::keystore::StoreBackend::new(store)?;
//! # Ok(()) }
//! ```
#![doc = include_str!("../docs/KEYSTORE.md")]

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::backend::local::{LocalBackend, LocalKek, MaterialKind};
use crate::backend::{
    BackendError, BackendInfo, KekChange, KekDescriptor, KekSpec, KeyBackend, KeyIdentity,
    ServiceOutcome, UnwrapRequest, UnwrapResponse, WrapRequest, WrapResponse,
};
use crate::crypto;
use crate::error::Error;
pub use crate::error::KeyStoreError;
use crate::format::reader::{Reader, check_len, put_vec_u16};
use crate::format::{FormatError, WrapAlgorithm};
use crate::locator::KekLocator;

const MAGIC: [u8; 4] = *b"KRKS";
/// Written by this version: version 1 plus the application state section.
const VERSION: u8 = 2;
/// Read for compatibility: keys only, no application state.
const VERSION_1: u8 = 1;
/// The key store versions this crate reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StoreVersion {
    /// Keys only.
    V1,
    /// Keys and the application state.
    V2,
}

/// Largest application state (the CLI keeps its key ring and audit head there).
pub const MAX_STATE_LEN: usize = 16 << 20;
const KDF_ARGON2ID: u8 = 1;
const HEADER_LEN: usize = 46;
const MAX_FILE_LEN: usize = 64 << 20;
const MAX_LOCATOR_LEN: usize = 1024;
const MAX_MATERIAL_LEN: usize = 8192;

/// Environment variable holding the master secret.
pub const SECRET_ENV: &str = "KEKRING_MASTER_SECRET";
/// Environment variable naming a file that holds the master secret.
pub const SECRET_FILE_ENV: &str = "KEKRING_MASTER_SECRET_FILE";
/// Shortest master secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 16;
/// Longest master secret file read, in bytes.
pub const MAX_SECRET_LEN: usize = 4096;

/// The master secret: zeroized on drop, never printed.
pub struct MasterSecret(Zeroizing<Vec<u8>>);

impl fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterSecret([REDACTED])")
    }
}

impl MasterSecret {
    /// Takes a secret (at least 16 bytes; use a long random passphrase or key).
    ///
    /// # Errors
    /// [`KeyStoreError::WeakSecret`] when shorter than 16 bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, KeyStoreError> {
        let s = Zeroizing::new(secret.into());
        if s.len() < MIN_SECRET_LEN {
            return Err(KeyStoreError::WeakSecret);
        }
        Ok(Self(s))
    }

    /// Reads the secret from the environment variable `var`.
    ///
    /// # Errors
    /// [`KeyStoreError::MissingSecret`] if unset or not UTF-8, or as [`MasterSecret::new`].
    pub fn from_env(var: &str) -> Result<Self, KeyStoreError> {
        let v = std::env::var(var).map_err(|_| KeyStoreError::MissingSecret)?;
        Self::new(v.into_bytes())
    }

    /// Reads the secret from a file (one trailing newline is dropped), at most
    /// [`MAX_SECRET_LEN`] bytes: a larger file (or a device that never ends) is refused
    /// without being read whole.
    ///
    /// # Errors
    /// [`KeyStoreError::Io`], [`KeyStoreError::Malformed`] for a file over the bound, or
    /// as [`MasterSecret::new`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyStoreError> {
        use std::io::Read;
        let limit = u64::try_from(MAX_SECRET_LEN)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let mut raw = Zeroizing::new(Vec::with_capacity(MAX_SECRET_LEN + 1));
        File::open(path)?.take(limit).read_to_end(&mut raw)?;
        check_len("master secret file", raw.len(), 0, MAX_SECRET_LEN)?;
        let mut bytes = raw;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        // Moved, not copied: the only copy stays zeroized on drop.
        Self::new(std::mem::take(&mut *bytes))
    }

    /// `KEKRING_MASTER_SECRET`, else the file named by `KEKRING_MASTER_SECRET_FILE`.
    ///
    /// # Errors
    /// [`KeyStoreError::MissingSecret`] when neither is set.
    pub fn from_env_or_file() -> Result<Self, KeyStoreError> {
        if std::env::var_os(SECRET_ENV).is_some() {
            return Self::from_env(SECRET_ENV);
        }
        match std::env::var_os(SECRET_FILE_ENV) {
            Some(p) => Self::from_file(p),
            None => Err(KeyStoreError::MissingSecret),
        }
    }
}

/// Argon2id cost parameters, recorded in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane (RFC 9106's second recommended option, single lane).
    fn default() -> Self {
        Self {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// The floor: 19 MiB, 2 passes, 1 lane (OWASP's minimum for Argon2id). For tests and
    /// constrained machines.
    pub const MINIMUM: KdfParams = KdfParams {
        m_cost_kib: 19 * 1024,
        t_cost: 2,
        p_cost: 1,
    };

    /// Also the bound on what a (possibly hostile) file may ask of `open` before it is
    /// authenticated: at most 256 MiB, 16 passes, 8 lanes.
    fn check(&self) -> Result<(), KeyStoreError> {
        if !(19 * 1024..=256 * 1024).contains(&self.m_cost_kib) {
            return Err(KeyStoreError::KdfParams("memory must be 19 MiB..=256 MiB"));
        }
        if !(2..=16).contains(&self.t_cost) {
            return Err(KeyStoreError::KdfParams("passes must be 2..=16"));
        }
        if !(1..=8).contains(&self.p_cost) {
            return Err(KeyStoreError::KdfParams("lanes must be 1..=8"));
        }
        Ok(())
    }

    fn derive(
        &self,
        secret: &MasterSecret,
        salt: &[u8; 16],
    ) -> Result<Zeroizing<[u8; 32]>, KeyStoreError> {
        self.check()?;
        let params = Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map_err(|_| KeyStoreError::KdfParams("rejected by Argon2"))?;
        let mut key = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(&secret.0, salt, key.as_mut_slice())
            .map_err(|_| KeyStoreError::KdfParams("rejected by Argon2"))?;
        Ok(key)
    }
}

/// Local KEKs in one sealed file. Keys are shared (`Arc`) with the [`StoreBackend`]
/// made from the store.
pub struct KeyStore {
    path: PathBuf,
    params: KdfParams,
    salt: [u8; 16],
    key: Zeroizing<[u8; 32]>,
    keys: BTreeMap<String, Arc<LocalKek>>,
    /// Application state sealed with the keys (empty when none).
    state: Vec<u8>,
    /// SHA-256 of the file as last read or written: a save refuses to overwrite a file
    /// someone else changed in between.
    on_disk: [u8; 32],
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("path", &self.path)
            .field("params", &self.params)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Where a save may be made to fail in tests (crash simulation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FailPoint {
    None,
    #[cfg(test)]
    AfterTempWrite,
}

impl KeyStore {
    /// Creates a new, empty store and writes it.
    ///
    /// # Errors
    /// [`KeyStoreError::AlreadyExists`] if the file exists; KDF or I/O errors.
    pub fn create(
        path: impl Into<PathBuf>,
        secret: &MasterSecret,
        params: KdfParams,
    ) -> Result<Self, KeyStoreError> {
        let path = path.into();
        if path.exists() {
            return Err(KeyStoreError::AlreadyExists(path));
        }
        let mut salt = [0u8; 16];
        crypto::fill_random(&mut salt).map_err(KeyStoreError::from)?;
        let key = params.derive(secret, &salt)?;
        let mut store = Self {
            path,
            params,
            salt,
            key,
            keys: BTreeMap::new(),
            state: Vec::new(),
            on_disk: [0; 32],
        };
        store.write(FailPoint::None, Mode::CreateNew)?;
        Ok(store)
    }

    /// Opens an existing store.
    ///
    /// # Errors
    /// [`KeyStoreError::NotFound`], [`KeyStoreError::WrongSecretOrTampered`],
    /// [`KeyStoreError::Malformed`], [`KeyStoreError::Key`] for an entry that fails to
    /// import, I/O errors.
    pub fn open(path: impl Into<PathBuf>, secret: &MasterSecret) -> Result<Self, KeyStoreError> {
        let path = path.into();
        let bytes = match read_bounded(&path)? {
            Some(b) => b,
            None => return Err(KeyStoreError::NotFound(path)),
        };
        Self::decode(path, &bytes, secret)
    }

    /// Opens the store, or creates an empty one if the file does not exist. A wrong
    /// secret or a damaged file is an error, never a fresh store.
    ///
    /// # Errors
    /// As [`KeyStore::open`] and [`KeyStore::create`].
    pub fn open_or_create(
        path: impl Into<PathBuf>,
        secret: &MasterSecret,
        params: KdfParams,
    ) -> Result<Self, KeyStoreError> {
        let path = path.into();
        match Self::open(path.clone(), secret) {
            Err(KeyStoreError::NotFound(_)) => Self::create(path, secret, params),
            other => other,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The KDF parameters recorded in the file.
    pub fn kdf_params(&self) -> KdfParams {
        self.params
    }

    /// Generates a KEK of any local algorithm under `locator` (not saved until
    /// [`KeyStore::save`]).
    ///
    /// # Errors
    /// [`KeyStoreError::DuplicateLocator`], or a generation error.
    pub fn generate(
        &mut self,
        locator: &str,
        algorithm: WrapAlgorithm,
    ) -> Result<KekLocator, KeyStoreError> {
        self.insert(locator, LocalKek::generate(algorithm)?)?;
        Ok(KekLocator::new(locator))
    }

    /// Adds a KEK (for example one imported from PEM).
    ///
    /// # Errors
    /// [`KeyStoreError::DuplicateLocator`], or [`KeyStoreError::Malformed`] for an empty
    /// or over-long locator.
    pub fn insert(&mut self, locator: &str, kek: LocalKek) -> Result<(), KeyStoreError> {
        if locator.is_empty() || locator.len() > MAX_LOCATOR_LEN {
            return Err(FormatError::LengthOutOfRange {
                field: "locator",
                len: locator.len(),
                min: 1,
                max: MAX_LOCATOR_LEN,
            }
            .into());
        }
        self.insert_shared(locator, Arc::new(kek))
    }

    /// Inserts a KEK already shared (also how a destroy whose save failed puts it back).
    fn insert_shared(&mut self, locator: &str, kek: Arc<LocalKek>) -> Result<(), KeyStoreError> {
        if self.keys.contains_key(locator) {
            return Err(KeyStoreError::DuplicateLocator(locator.to_owned()));
        }
        self.keys.insert(locator.to_owned(), kek);
        Ok(())
    }

    /// Removes a KEK (not saved until [`KeyStore::save`]). Returns whether it existed.
    pub fn remove(&mut self, locator: &str) -> bool {
        self.keys.remove(locator).is_some()
    }

    /// The KEK under `locator`.
    pub fn get(&self, locator: &str) -> Option<&Arc<LocalKek>> {
        self.keys.get(locator)
    }

    /// The locators, sorted.
    pub fn locators(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// The application state sealed with the keys (empty when none was set): bytes the
    /// application needs authenticated and rolled back only together with the keys. The
    /// CLI keeps its key ring and audit head here.
    pub fn app_state(&self) -> &[u8] {
        &self.state
    }

    /// Replaces the application state (not saved until [`KeyStore::save`]).
    ///
    /// # Errors
    /// [`KeyStoreError::Malformed`] when over [`MAX_STATE_LEN`] bytes.
    pub fn set_app_state(&mut self, state: Vec<u8>) -> Result<(), KeyStoreError> {
        check_len("application state", state.len(), 0, MAX_STATE_LEN)?;
        self.state = state;
        Ok(())
    }

    /// A 32-byte key for `label`, derived from the store's master key (the Argon2id
    /// output of the master secret): `HKDF-SHA-256(salt = "kekring/v1/keystore/derive",
    /// IKM = master key, info = label)`. Fixed for the life of the file; another label
    /// gives an independent key. The CLI keys its audit chain with one.
    ///
    /// # Errors
    /// [`KeyStoreError::Key`] if the derivation fails (it cannot for 32 bytes).
    pub fn derive_key(&self, label: &str) -> Result<Zeroizing<[u8; 32]>, KeyStoreError> {
        let mut out = Zeroizing::new([0u8; 32]);
        crypto::default_provider()
            .hkdf_sha256(
                b"kekring/v1/keystore/derive",
                self.key.as_slice(),
                &[label.as_bytes()],
                out.as_mut_slice(),
            )
            .map_err(|_| KeyStoreError::from(Error::Crypto))?;
        Ok(out)
    }

    /// Loads (shares) every key of the store into `local`.
    fn share_into(&self, local: &LocalBackend) -> Result<(), KeyStoreError> {
        for (loc, kek) in &self.keys {
            local.insert_shared(KekLocator::new(loc.clone()), kek.clone())?;
        }
        Ok(())
    }

    /// Writes the store atomically: temporary file, `fsync`, rename, directory `fsync`,
    /// under the store's write lock (`<file>.lock`).
    ///
    /// # Errors
    /// [`KeyStoreError::Locked`] while another writer saves, [`KeyStoreError::Conflict`]
    /// if the file changed since this store read or wrote it, I/O errors (the previous
    /// file is then intact), export errors.
    pub fn save(&mut self) -> Result<(), KeyStoreError> {
        self.write(FailPoint::None, Mode::Replace)
    }

    #[cfg(test)]
    fn save_inner(&mut self, fail: FailPoint) -> Result<(), KeyStoreError> {
        self.write(fail, Mode::Replace)
    }

    fn write(&mut self, fail: FailPoint, mode: Mode) -> Result<(), KeyStoreError> {
        let bytes = self.encode()?;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // One writer at a time; the lock is released when `_lock` drops.
        let lock_path = {
            let mut p = self.path.clone().into_os_string();
            p.push(".lock");
            PathBuf::from(p)
        };
        let _lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)?;
        _lock.try_lock().map_err(|e| match e {
            fs::TryLockError::WouldBlock => KeyStoreError::Locked,
            fs::TryLockError::Error(e) => KeyStoreError::Io(e),
        })?;
        if mode == Mode::Replace {
            let current = read_bounded(&self.path)?.ok_or(KeyStoreError::Conflict)?;
            if sha256(&current) != self.on_disk {
                return Err(KeyStoreError::Conflict);
            }
        }
        let mut suffix = [0u8; 6];
        crypto::fill_random(&mut suffix).map_err(KeyStoreError::from)?;
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "keystore".to_owned());
        let tmp = dir.join(format!(
            ".{name}.tmp-{}",
            suffix
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ));
        let result = (|| -> Result<(), KeyStoreError> {
            let mut opts = OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            drop(f);
            #[cfg(test)]
            if fail == FailPoint::AfterTempWrite {
                return Err(std::io::Error::other("injected crash before rename").into());
            }
            match mode {
                Mode::Replace => fs::rename(&tmp, &self.path)?,
                // A hard link fails if the path exists: creation never replaces a store
                // that appeared after the `exists` check.
                Mode::CreateNew => {
                    let linked = fs::hard_link(&tmp, &self.path);
                    let _ = fs::remove_file(&tmp);
                    linked.map_err(|e| match e.kind() {
                        std::io::ErrorKind::AlreadyExists => {
                            KeyStoreError::AlreadyExists(self.path.clone())
                        }
                        _ => KeyStoreError::Io(e),
                    })?;
                }
            }
            #[cfg(unix)]
            File::open(&dir)?.sync_all()?;
            Ok(())
        })();
        match &result {
            // A real crash runs no cleanup; the injected one must not either.
            Err(_) if fail == FailPoint::None => {
                let _ = fs::remove_file(&tmp);
            }
            Err(_) => {}
            // Under the lock no other save is in flight: leftovers are from crashes.
            Ok(()) => {
                remove_strays(&dir, &name);
                self.on_disk = sha256(&bytes);
            }
        }
        result
    }

    fn encode(&self) -> Result<Vec<u8>, KeyStoreError> {
        let exported = self
            .keys
            .iter()
            .map(|(loc, kek)| Ok((loc, kek.algorithm(), kek.export_material()?)))
            .collect::<Result<Vec<_>, Error>>()?;
        // Allocated once: growing the buffer would leave freed copies of keys behind.
        let size = 2
            + exported
                .iter()
                .map(|(loc, _, (_, m))| 2 + loc.len() + 3 + 2 + m.len())
                .sum::<usize>()
            + 4
            + self.state.len();
        let mut plain = Zeroizing::new(Vec::with_capacity(size));
        plain.extend_from_slice(
            &u16::try_from(self.keys.len())
                .map_err(|_| KeyStoreError::KdfParams("too many keys"))?
                .to_be_bytes(),
        );
        for (loc, algorithm, (kind, material)) in &exported {
            check_len("key material", material.len(), 1, MAX_MATERIAL_LEN)?;
            put_vec_u16(&mut plain, loc.as_bytes());
            plain.extend_from_slice(&algorithm.id().to_be_bytes());
            plain.push(match kind {
                MaterialKind::Private => 1,
                _ => 2,
            });
            put_vec_u16(&mut plain, material);
        }
        check_len("application state", self.state.len(), 0, MAX_STATE_LEN)?;
        plain.extend_from_slice(
            &u32::try_from(self.state.len())
                .map_err(|_| KeyStoreError::KdfParams("state too large"))?
                .to_be_bytes(),
        );
        plain.extend_from_slice(&self.state);
        let mut nonce = [0u8; 12];
        crypto::fill_random(&mut nonce).map_err(KeyStoreError::from)?;
        let mut out = Vec::with_capacity(HEADER_LEN + 4 + plain.len() + 16);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(KDF_ARGON2ID);
        out.extend_from_slice(&self.params.m_cost_kib.to_be_bytes());
        out.extend_from_slice(&self.params.t_cost.to_be_bytes());
        out.extend_from_slice(&self.params.p_cost.to_be_bytes());
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&nonce);
        let mut body = Zeroizing::new(plain.to_vec());
        let tag = crypto::default_provider()
            .aes256_gcm_seal(&self.key, &nonce, &out, &mut body)
            .map_err(|_| KeyStoreError::from(Error::Crypto))?;
        out.extend_from_slice(
            &u32::try_from(body.len())
                .map_err(|_| KeyStoreError::KdfParams("store too large"))?
                .to_be_bytes(),
        );
        out.extend_from_slice(&body);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    fn decode(path: PathBuf, bytes: &[u8], secret: &MasterSecret) -> Result<Self, KeyStoreError> {
        check_len("key store file", bytes.len(), 0, MAX_FILE_LEN)?;
        let mut r = Reader::new(bytes);
        let version = match crate::format::read_preamble(&mut r, &MAGIC, "key store")? {
            VERSION_1 => StoreVersion::V1,
            VERSION => StoreVersion::V2,
            other => return Err(FormatError::UnsupportedVersion(other).into()),
        };
        let kdf = r.u8()?;
        if kdf != KDF_ARGON2ID {
            return Err(FormatError::UnknownFlags(kdf).into());
        }
        let params = KdfParams {
            m_cost_kib: r.u32()?,
            t_cost: r.u32()?,
            p_cost: r.u32()?,
        };
        params.check()?;
        let salt = r.array::<16>()?;
        let nonce = r.array::<12>()?;
        let header = bytes
            .get(..HEADER_LEN)
            .ok_or(KeyStoreError::from(Error::Internal(
                "a key store header shorter than its fields",
            )))?;
        let len = usize::try_from(r.u32()?)
            .map_err(|_| KeyStoreError::from(Error::Internal("a u32 length beyond usize")))?;
        let mut body = Zeroizing::new(r.take(len)?.to_vec());
        let tag = r.array::<16>()?;
        r.finish()?;
        let key = params.derive(secret, &salt)?;
        crypto::default_provider()
            .aes256_gcm_open(&key, &nonce, header, &mut body, &tag)
            .map_err(|_| KeyStoreError::WrongSecretOrTampered)?;

        let mut p = Reader::new(&body);
        let count = p.u16()?;
        let mut keys = BTreeMap::new();
        let mut last: Option<String> = None;
        for _ in 0..count {
            let loc = p.vec_u16("locator", 1, MAX_LOCATOR_LEN)?;
            let loc = std::str::from_utf8(loc)
                .map_err(|_| FormatError::InvalidName { field: "locator" })?
                .to_owned();
            if last.as_ref().is_some_and(|l| *l >= loc) {
                // Sorted and unique: one canonical encoding per store.
                return Err(FormatError::DuplicateKek.into());
            }
            let algorithm = WrapAlgorithm::from_id(p.u16()?)?;
            let kind = match p.u8()? {
                1 => MaterialKind::Private,
                2 => MaterialKind::Public,
                other => return Err(FormatError::UnknownFlags(other).into()),
            };
            let material = p.vec_u16("key material", 1, MAX_MATERIAL_LEN)?;
            let kek = LocalKek::import_material(algorithm, kind, material)?;
            last = Some(loc.clone());
            keys.insert(loc, Arc::new(kek));
        }
        let state = if version == StoreVersion::V1 {
            Vec::new()
        } else {
            let n = usize::try_from(p.u32()?)
                .map_err(|_| KeyStoreError::from(Error::Internal("a u32 length beyond usize")))?;
            check_len("application state", n, 0, MAX_STATE_LEN)?;
            p.take(n)?.to_vec()
        };
        p.finish()?;
        Ok(Self {
            path,
            params,
            salt,
            key,
            keys,
            state,
            on_disk: sha256(bytes),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    CreateNew,
    Replace,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Reads at most `MAX_FILE_LEN + 1` bytes (a FIFO or a huge file cannot exhaust
/// memory); `None` when the file does not exist.
fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, KeyStoreError> {
    use std::io::Read;
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let limit = u64::try_from(MAX_FILE_LEN)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut bytes = Vec::new();
    f.take(limit).read_to_end(&mut bytes)?;
    check_len("key store file", bytes.len(), 0, MAX_FILE_LEN)?;
    Ok(Some(bytes))
}

/// Removes temporary files left by earlier interrupted saves (best effort).
fn remove_strays(dir: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// A local backend whose KEKs live in a [`KeyStore`]: it wraps and unwraps with the
/// store's keys, and what it creates or destroys is saved into the store before the call
/// returns, so a KEK created by a rotation (`Envelope::rotate_kek`) is still there after a
/// restart. Use it as `Arc<StoreBackend>` in an envelope.
///
/// Saving the store writes and `fsync`s a file inside `create_kek` / `destroy_kek`
/// (administrative calls, not per object); wraps and unwraps do no I/O.
pub struct StoreBackend {
    local: LocalBackend,
    store: std::sync::Mutex<KeyStore>,
}

impl fmt::Debug for StoreBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreBackend")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl StoreBackend {
    /// A backend over `store`'s keys, computing with RustCrypto.
    ///
    /// # Errors
    /// [`KeyStoreError::Key`] if a key cannot be loaded (locators are unique, so never
    /// in practice).
    pub fn new(store: KeyStore) -> Result<Self, KeyStoreError> {
        Self::with_local(store, LocalBackend::new())
    }

    /// A backend over `store`'s keys in `local` (for example one built with
    /// [`LocalBackend::with_crypto_provider`]), which should hold no keys of its own.
    ///
    /// # Errors
    /// As [`StoreBackend::new`]; [`KeyStoreError::Key`] when `local` already holds a
    /// locator of the store.
    pub fn with_local(store: KeyStore, local: LocalBackend) -> Result<Self, KeyStoreError> {
        store.share_into(&local)?;
        Ok(Self {
            local,
            store: std::sync::Mutex::new(store),
        })
    }

    /// Runs `f` with the store, for example to save application state with it. Keys added
    /// here are not seen by this backend: create them with `create_kek`.
    ///
    /// # Errors
    /// [`KeyStoreError::Io`] when the store's lock was poisoned by a panic.
    pub fn with_store<T>(&self, f: impl FnOnce(&mut KeyStore) -> T) -> Result<T, KeyStoreError> {
        let mut store = self
            .store
            .lock()
            .map_err(|_| std::io::Error::other("key store lock poisoned"))?;
        Ok(f(&mut store))
    }
}

fn unavailable(message: &str, e: KeyStoreError) -> BackendError {
    BackendError::Unavailable {
        message: message.to_owned(),
        source: Some(Box::new(e)),
    }
}

#[async_trait]
impl KeyBackend for StoreBackend {
    fn info(&self) -> &BackendInfo {
        self.local.info()
    }

    fn key_identity(&self, kek: &KekLocator) -> Result<KeyIdentity, BackendError> {
        self.local.key_identity(kek)
    }

    async fn wrap(&self, req: WrapRequest<'_>) -> Result<WrapResponse, BackendError> {
        self.local.wrap(req).await
    }

    async fn unwrap(&self, req: UnwrapRequest<'_>) -> Result<UnwrapResponse, BackendError> {
        self.local.unwrap(req).await
    }

    /// Generates the KEK into the store and saves the store, then makes it usable here.
    async fn create_kek(&self, spec: &KekSpec) -> Result<KekDescriptor, BackendError> {
        let locator = crate::backend::local::new_locator(self.local.info(), spec)?;
        let mut store = self.store.lock().map_err(|_| {
            unavailable(
                "key store lock poisoned",
                std::io::Error::other("poisoned").into(),
            )
        })?;
        store
            .generate(locator.as_str(), spec.algorithm)
            .map_err(|e| unavailable("could not generate the KEK", e))?;
        if let Err(e) = store.save() {
            // Not saved: not created.
            store.remove(locator.as_str());
            return Err(unavailable("could not save the key store", e));
        }
        let kek = store.get(locator.as_str()).cloned().ok_or_else(|| {
            unavailable(
                "the new KEK is missing",
                std::io::Error::other("missing").into(),
            )
        })?;
        drop(store);
        self.local
            .insert_shared(locator.clone(), kek)
            .map_err(|e| unavailable("could not load the new KEK", e.into()))?;
        Ok(KekDescriptor::new(locator, spec.algorithm))
    }

    /// Removes the KEK from the store and saves it, then from memory here.
    async fn destroy_kek(&self, change: KekChange<'_>) -> Result<ServiceOutcome, BackendError> {
        let kek = change.kek;
        let mut store = self.store.lock().map_err(|_| {
            unavailable(
                "key store lock poisoned",
                std::io::Error::other("poisoned").into(),
            )
        })?;
        let Some(material) = store.get(kek.as_str()).cloned() else {
            return Err(BackendError::KeyNotFound(kek.clone()));
        };
        store.remove(kek.as_str());
        if let Err(e) = store.save() {
            // Not saved: not destroyed.
            let _ = store.insert_shared(kek.as_str(), material);
            return Err(unavailable("could not save the key store", e));
        }
        drop(store);
        self.local
            .remove(kek)
            .map_err(|e| unavailable("could not unload the KEK", e.into()))?;
        Ok(ServiceOutcome::Applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kekring-ks-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn interrupted_write_keeps_the_previous_store() {
        let d = dir("crash");
        let path = d.join("keys.kks");
        let secret = MasterSecret::new("correct horse battery staple").unwrap();
        let mut store = KeyStore::create(&path, &secret, KdfParams::MINIMUM).unwrap();
        store.generate("one", WrapAlgorithm::Aes256Kw).unwrap();
        store.save().unwrap();
        let before = fs::read(&path).unwrap();

        store.generate("two", WrapAlgorithm::MlKem768).unwrap();
        let err = store.save_inner(FailPoint::AfterTempWrite).unwrap_err();
        assert!(matches!(err, KeyStoreError::Io(_)));
        // The crash left a complete temporary file beside an untouched store.
        assert_eq!(fs::read(&path).unwrap(), before);
        let strays: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert_eq!(strays.len(), 1);
        let reopened = KeyStore::open(&path, &secret).unwrap();
        assert_eq!(reopened.locators().collect::<Vec<_>>(), ["one"]);

        // The next save succeeds, clears the stray file, and the store has both keys.
        store.save().unwrap();
        assert!(
            fs::read_dir(&d)
                .unwrap()
                .filter_map(|e| e.ok())
                .all(|e| !e.file_name().to_string_lossy().contains(".tmp-"))
        );
        let reopened = KeyStore::open(&path, &secret).unwrap();
        assert_eq!(reopened.locators().collect::<Vec<_>>(), ["one", "two"]);
        fs::remove_dir_all(&d).unwrap();
    }
}
