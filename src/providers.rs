//! Key backends, one file each, each behind its own cargo feature.
//!
//! | module | feature | KEKs |
//! |---|---|---|
//! | [`local`] | `local` (default) | software AES-256, RSA-OAEP, P-256, ML-KEM and hybrid KEKs in process memory |

#[cfg(feature = "local")]
pub mod local;
