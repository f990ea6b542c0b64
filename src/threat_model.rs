//! The threat model, in a few lines.
//!
//! **Protected.** The confidentiality and integrity of each object against anyone who
//! can read or modify stored blobs but cannot use the KEK: the payload is AES-256-GCM
//! under a fresh per-object DEK, and the DEK is only stored wrapped. Blobs cannot be
//! moved between tenants, objects or classifications: the caller's context is bound into
//! every wrap and authenticated with the payload, and header claims about KEKs are
//! checked against the caller's context and configured keys (never trusted). A ciphertext
//! opens under exactly one DEK (key commitment). Profiles keep data of a classification
//! from being wrapped under algorithms it does not allow, such as classical RSA or ECDH
//! for data that must survive a quantum adversary; the profile is checked again at open
//! on the copy used, so a classical copy of Restricted data is refused however it was
//! made.
//!
//! **Who may have made an object.** Public-key KEKs (ML-KEM, the hybrid, P-256, RSA) give
//! confidentiality, not sender authenticity, as in HPKE's base mode and age: anyone
//! holding a tenant's public key (or encrypt-only rights on a remote KEK) can wrap a DEK
//! of their choosing and build an object that opens for that tenant, purpose and
//! classification. Such a party cannot make an object that opens under another purpose
//! (every copy must be under the reader's purpose or a copy scope it configures, and the
//! binding names the purpose) or another classification. Bind an authenticated value
//! into the associated data when the writer matters.
//!
//! **The audit trail and the CLI's state.** Audit records are MAC-chained under a key the
//! writer holds, evolving with every record, and a chain is checked against the head
//! stored in authenticated state: rewriting, reordering or cutting records is detected
//! by anyone holding the chain's first key. The CLI keeps its key ring and audit head
//! sealed in the key store; rolling back the whole home directory to an older consistent
//! copy is detected only against a head kept outside it.
//!
//! **Not protected.** The metadata in headers is plaintext: anyone holding a blob can read
//! its tenant, purpose, KEK version, classification and wrap algorithm. Whoever can modify
//! a blob can also remove or corrupt its wrapped copies (the wrapped DEK is outside the
//! payload AAD so that re-wraps leave the payload alone): that makes the object
//! unreadable, as deleting it would, never readable under another key or context. A compromised process that holds a DEK or can call the backend; a
//! KEK backend that is itself compromised; traffic analysis (object sizes are visible);
//! rollback of a whole object to an older valid version of itself (bind a version into the
//! associated data to detect it); denial of service by deleting blobs.
//!
//! **Side channels.** The RustCrypto AES and GHASH implementations are constant-time on
//! CPUs with AES-NI and CLMUL (runtime-detected) and use bitsliced software otherwise;
//! commitment comparison is constant-time (`subtle`).
