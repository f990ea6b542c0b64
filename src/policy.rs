//! Classification profiles: which KEK algorithms may protect which data classification.
//!
//! A [`Profile`] maps each classification to a rule: a set of allowed algorithm families,
//! plus algorithms allowed or denied one by one. The `Envelope` checks the profile for
//! every KEK a DEK is about to be wrapped under, before any backend is called; a refusal
//! is [`PolicyError`]. A classification the profile does not name
//! is refused (fail closed), so every custom label needs a rule.
//!
//! # The default profile
//!
//! | classification | allowed families |
//! |---|---|
//! | `Public` | every family |
//! | `Internal` | symmetric-256, classical asymmetric, post-quantum, hybrid |
//! | `Confidential` | symmetric-256, hybrid, post-quantum |
//! | `Restricted` | symmetric-256, post-quantum, hybrid |
//!
//! Asymmetric wraps of Restricted data must use a post-quantum KEM; the hybrid
//! (P-256 + ML-KEM-768) counts, since it stays secure while its ML-KEM half holds, and
//! RSA-OAEP or P-256 alone are refused. Confidential data admits the same families by
//! default: the two classes differ in what a caller adds (for example
//! [`Profile::deny_algorithm`] of ML-KEM-768 for Restricted, to require ML-KEM-1024).
//!
//! RSA with a 2048-bit modulus (a KMS `RSA_2048` key) is refused for every
//! classification: it is below the 3072 bits local RSA keys must have; allow it
//! explicitly with [`Profile::allow_algorithm`] where an existing key must be used.
//!
//! Symmetric 256-bit KEKs (AES-256 locally, in a KMS or an HSM) are allowed for every
//! class: Grover's algorithm leaves them about 128-bit security against a quantum
//! adversary, so they are quantum-resistant. A user who wants the stricter reading
//! ("Restricted only under a post-quantum KEM, never a symmetric KEK") uses
//! [`Profile::strict_post_quantum`] or removes the family with [`Profile::deny_family`].

use std::collections::{BTreeMap, BTreeSet};

use crate::error::PolicyError;
use crate::format::{Classification, Family, WrapAlgorithm};

/// What one classification allows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    families: BTreeSet<Family>,
    allowed: BTreeSet<WrapAlgorithm>,
    denied: BTreeSet<WrapAlgorithm>,
}

impl Rule {
    /// Whether the rule admits `algorithm`: denied algorithms lose, then explicitly
    /// allowed ones win, then the family decides.
    pub fn allows(&self, algorithm: WrapAlgorithm) -> bool {
        if self.denied.contains(&algorithm) {
            return false;
        }
        self.allowed.contains(&algorithm) || self.families.contains(&algorithm.family())
    }

    /// The allowed families.
    pub fn families(&self) -> impl Iterator<Item = Family> + '_ {
        self.families.iter().copied()
    }
}

/// A named map from classification to [`Rule`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    name: String,
    rules: BTreeMap<Classification, Rule>,
}

/// RSA with a 2048-bit modulus: under the 3072 bits (about 128-bit strength) NIST SP
/// 800-57 asks of keys protecting data past 2030. Refused for every classification by
/// the default profile, as local RSA keys below 3072 bits are refused at import; a KMS
/// RSA-2048 key needs an explicit [`Profile::allow_algorithm`].
const RSA_2048: [WrapAlgorithm; 2] = [
    WrapAlgorithm::RsaOaepSha256_2048,
    WrapAlgorithm::RsaOaepSha256Ik2048,
];

impl Default for Profile {
    /// The default profile (see the module documentation).
    fn default() -> Self {
        use Classification::*;
        use Family::*;
        let mut p = Self::empty("default")
            .allow_families(Public, &Family::ALL)
            .allow_families(
                Internal,
                &[Symmetric256, ClassicalAsymmetric, PostQuantum, Hybrid],
            )
            .allow_families(Confidential, &[Symmetric256, Hybrid, PostQuantum])
            .allow_families(Restricted, &[Symmetric256, PostQuantum, Hybrid]);
        for class in [Public, Internal, Confidential, Restricted] {
            for alg in RSA_2048 {
                p = p.deny_algorithm(class.clone(), alg);
            }
        }
        p
    }
}

impl Profile {
    /// A profile that allows nothing: every classification must be given a rule.
    pub fn empty(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            rules: BTreeMap::new(),
        }
    }

    /// The default profile without symmetric KEKs for `Restricted`: Restricted data only
    /// under ML-KEM or the hybrid KEM.
    pub fn strict_post_quantum() -> Self {
        let mut p = Self::default().deny_family(Classification::Restricted, Family::Symmetric256);
        p.name = "strict-post-quantum".to_owned();
        p
    }

    /// The profile's name (it appears in policy errors).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Allows a family for a classification.
    #[must_use]
    pub fn allow_family(mut self, class: Classification, family: Family) -> Self {
        self.rules.entry(class).or_default().families.insert(family);
        self
    }

    /// Allows several families for a classification.
    #[must_use]
    pub fn allow_families(mut self, class: Classification, families: &[Family]) -> Self {
        let rule = self.rules.entry(class).or_default();
        rule.families.extend(families.iter().copied());
        self
    }

    /// Removes a family from a classification's rule.
    #[must_use]
    pub fn deny_family(mut self, class: Classification, family: Family) -> Self {
        self.rules
            .entry(class)
            .or_default()
            .families
            .remove(&family);
        self
    }

    /// Allows one algorithm for a classification, whatever its family.
    #[must_use]
    pub fn allow_algorithm(mut self, class: Classification, algorithm: WrapAlgorithm) -> Self {
        let rule = self.rules.entry(class).or_default();
        rule.denied.remove(&algorithm);
        rule.allowed.insert(algorithm);
        self
    }

    /// Denies one algorithm for a classification, whatever its family.
    #[must_use]
    pub fn deny_algorithm(mut self, class: Classification, algorithm: WrapAlgorithm) -> Self {
        let rule = self.rules.entry(class).or_default();
        rule.allowed.remove(&algorithm);
        rule.denied.insert(algorithm);
        self
    }

    /// The rule for a classification, if the profile names it.
    pub fn rule(&self, class: &Classification) -> Option<&Rule> {
        self.rules.get(class)
    }

    /// Checks that `algorithm` may wrap a DEK for `class` data.
    ///
    /// # Errors
    /// [`PolicyError::AlgorithmNotAllowed`], or [`PolicyError::UnknownClassification`]
    /// when the profile has no rule for `class`.
    pub fn check(
        &self,
        class: &Classification,
        algorithm: WrapAlgorithm,
    ) -> Result<(), PolicyError> {
        let rule = self
            .rules
            .get(class)
            .ok_or_else(|| PolicyError::UnknownClassification {
                profile: self.name.clone(),
                classification: class.clone(),
            })?;
        if rule.allows(algorithm) {
            Ok(())
        } else {
            Err(PolicyError::AlgorithmNotAllowed {
                profile: self.name.clone(),
                classification: class.clone(),
                algorithm,
                family: algorithm.family(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Classification::*;

    #[test]
    fn default_profile_matches_the_design() {
        let p = Profile::default();
        for alg in WrapAlgorithm::ALL {
            if RSA_2048.contains(&alg) {
                for class in [Public, Internal, Confidential, Restricted] {
                    assert!(p.check(&class, alg).is_err(), "{alg} for {class}");
                }
                continue;
            }
            assert!(p.check(&Public, alg).is_ok());
            assert!(p.check(&Internal, alg).is_ok());
            let classical = alg.family() == Family::ClassicalAsymmetric;
            assert_eq!(p.check(&Confidential, alg).is_ok(), !classical, "{alg}");
            assert_eq!(p.check(&Restricted, alg).is_ok(), !classical, "{alg}");
        }
        assert!(
            p.check(&Restricted, WrapAlgorithm::RsaOaepSha256_4096)
                .is_err()
        );
        assert!(p.check(&Restricted, WrapAlgorithm::P256EcdhEs).is_err());
        assert!(p.check(&Restricted, WrapAlgorithm::MlKem768).is_ok());
        assert!(
            p.check(&Restricted, WrapAlgorithm::HybridP256MlKem768)
                .is_ok()
        );
        assert!(p.check(&Restricted, WrapAlgorithm::Aes256Kw).is_ok());
        assert!(p.check(&Restricted, WrapAlgorithm::Aes256KwIk).is_ok());
        // RSA-2048 in a KMS: refused unless allowed one by one.
        let allowed = p.allow_algorithm(Internal, WrapAlgorithm::RsaOaepSha256Ik2048);
        assert!(
            allowed
                .check(&Internal, WrapAlgorithm::RsaOaepSha256Ik2048)
                .is_ok()
        );
    }

    #[test]
    fn custom_labels_fail_closed_until_named() {
        let pci = Classification::custom("pci").unwrap();
        let p = Profile::default();
        assert!(matches!(
            p.check(&pci, WrapAlgorithm::Aes256Kw),
            Err(PolicyError::UnknownClassification { .. })
        ));
        let p = p.allow_family(pci.clone(), Family::Symmetric256);
        assert!(p.check(&pci, WrapAlgorithm::Aes256Kw).is_ok());
        assert!(p.check(&pci, WrapAlgorithm::MlKem768).is_err());
    }

    #[test]
    fn strict_and_per_algorithm_rules() {
        let p = Profile::strict_post_quantum();
        assert!(p.check(&Restricted, WrapAlgorithm::Aes256Kw).is_err());
        assert!(p.check(&Restricted, WrapAlgorithm::MlKem1024).is_ok());
        let p = Profile::default().deny_algorithm(Restricted, WrapAlgorithm::MlKem768);
        assert!(p.check(&Restricted, WrapAlgorithm::MlKem768).is_err());
        assert!(p.check(&Restricted, WrapAlgorithm::MlKem1024).is_ok());
        let p = p.allow_algorithm(Restricted, WrapAlgorithm::RsaOaepSha256_4096);
        assert!(
            p.check(&Restricted, WrapAlgorithm::RsaOaepSha256_4096)
                .is_ok()
        );
    }
}
