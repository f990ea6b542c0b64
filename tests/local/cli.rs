//! End-to-end tests of the `kekring` binary on the embedded key store: keygen, seal,
//! open, inspect, rotate, rewrap, retire, revoke, break-glass, inventory, audit verify,
//! and the exit codes for bad input (2), policy (3), key state (4) and decryption (6).
// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};

use crate::common::cli::{Cli, object_args};

impl Cli {
    /// Runs a command that a debug build stops, as a crash would, between saving the
    /// key store and appending to the audit trail; checks that it did.
    fn crash_after_state_save(&self, args: &[&str]) {
        let out = self
            .command(args)
            .env("KEKRING_TEST_CRASH_AFTER_STATE_SAVE", "1")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(9),
            "the simulated crash did not happen"
        );
    }

    /// `revoke` of `acme/docs/v1`.
    fn revoke_docs_v1(&self) {
        self.ok(&[
            &["revoke"],
            &scope("docs")[..],
            &["--version", "1", "--reason", "stolen"],
        ]
        .concat());
    }

    /// `keygen` of an AES-KW KEK for `acme/docs`.
    fn keygen_docs(&self) {
        self.ok(&[
            &["keygen"],
            &scope("docs")[..],
            &["--algorithm", "aes256-kw"],
        ]
        .concat());
    }
}

fn scope(purpose: &str) -> [&str; 4] {
    ["--tenant", "acme", "--purpose", purpose]
}

#[test]
fn full_lifecycle_through_the_cli() {
    let c = Cli::new("life");
    std::fs::write(c.work.join("plain.txt"), b"quarterly numbers").unwrap();
    let s = scope("docs");
    c.ok(&[
        &["keygen"],
        &s[..],
        &["--algorithm", "ml-kem-768", "--cadence-days", "90"],
    ]
    .concat());
    for name in ["a", "b", "c"] {
        let out = c.path(&format!("objs/{name}"));
        c.ok(&object_args(
            "seal",
            &s,
            name,
            "restricted",
            "plain.txt",
            &out,
        ));
    }
    let inspect = c.ok(&["inspect", "--json", &c.path("objs/a")]);
    let v: serde_json::Value = serde_json::from_str(inspect.trim()).unwrap();
    assert_eq!(v["classification"], "restricted");
    assert_eq!(v["wraps"][0]["algorithm"], "ml-kem-768");
    assert_eq!(v["wraps"][0]["kek"]["version"], 1);
    c.ok(&object_args(
        "open",
        &s,
        "a",
        "restricted",
        &c.path("objs/a"),
        "out.txt",
    ));
    assert_eq!(
        std::fs::read(c.work.join("out.txt")).unwrap(),
        b"quarterly numbers"
    );

    // Rotate, then retirement is refused while files still use v1.
    c.ok(&[&["rotate"], &s[..]].concat());
    assert_eq!(
        c.code(
            &[
                &["retire"],
                &s[..],
                &["--version", "1", "--dir", &c.path("objs")]
            ]
            .concat()
        ),
        4
    );
    let out = c.ok(&[&["rewrap"], &s[..], &["--dir", &c.path("objs")]].concat());
    assert!(out.contains("re-wrapped 3 of 3"), "{out}");
    let inv = c.ok(&["inventory", "--json", "--dir", &c.path("objs")]);
    let inv: serde_json::Value = serde_json::from_str(inv.trim()).unwrap();
    assert_eq!(inv["objects"]["per_kek"]["acme/docs/v2"], 3);
    assert!(inv["objects"]["per_kek"].get("acme/docs/v1").is_none());
    // Still inside the overlap window: retirement waits unless forced (audited).
    assert_eq!(
        c.code(
            &[
                &["retire"],
                &s[..],
                &["--version", "1", "--dir", &c.path("objs")]
            ]
            .concat()
        ),
        4
    );
    c.ok(&[
        &["retire"],
        &s[..],
        &["--version", "1", "--dir", &c.path("objs"), "--force"],
    ]
    .concat());
    c.ok(&object_args(
        "open",
        &s,
        "b",
        "restricted",
        &c.path("objs/b"),
        "out.txt",
    ));

    // Revoke v2: opens are denied with the key-state exit code.
    c.ok(&[
        &["revoke"],
        &s[..],
        &["--version", "2", "--reason", "incident 9"],
    ]
    .concat());
    assert_eq!(
        c.code(&object_args(
            "open",
            &s,
            "b",
            "restricted",
            &c.path("objs/b"),
            "o"
        )),
        4
    );
    // Break glass: a new KEK, then migrate the files (audited).
    c.ok(&[&["keygen"], &s[..], &["--algorithm", "ml-kem-768"]].concat());
    assert_eq!(
        c.code(&[&["rewrap"], &s[..], &["--dir", &c.path("objs")]].concat()),
        4
    );
    let out = c.ok(&[
        &["rewrap"],
        &s[..],
        &[
            "--dir",
            &c.path("objs"),
            "--break-glass",
            "incident 9 migration",
        ],
    ]
    .concat());
    assert!(out.contains("re-wrapped 3 of 3"), "{out}");
    c.ok(&object_args(
        "open",
        &s,
        "c",
        "restricted",
        &c.path("objs/c"),
        "out.txt",
    ));
    assert_eq!(
        std::fs::read(c.work.join("out.txt")).unwrap(),
        b"quarterly numbers"
    );

    // The audit chain verifies, and a tampered line is caught.
    let out = c.ok(&["audit", "verify"]);
    assert!(out.starts_with("audit chain OK"), "{out}");
    let audit_path = c.home.join("audit.jsonl");
    let text = std::fs::read_to_string(&audit_path).unwrap();
    assert!(text.contains("break-glass-rewrap") && text.contains("incident 9 migration"));
    std::fs::write(&audit_path, text.replace("incident 9\"", "incident 8\"")).unwrap();
    assert_eq!(c.code(&["audit", "verify"]), 7);
    std::fs::remove_dir_all(&c.work).unwrap();
}

#[test]
fn exit_codes_distinguish_failures() {
    let c = Cli::new("codes");
    std::fs::write(c.work.join("plain.txt"), b"x").unwrap();
    c.ok(&[
        &["keygen"],
        &scope("ecdh")[..],
        &["--algorithm", "p256-ecdh-es"],
    ]
    .concat());
    // Policy: Restricted data under a classical KEK.
    let out = c.path("objs/r");
    assert_eq!(
        c.code(&object_args(
            "seal",
            &scope("ecdh"),
            "r",
            "restricted",
            "plain.txt",
            &out
        )),
        3
    );
    c.ok(&object_args(
        "seal",
        &scope("ecdh"),
        "r",
        "internal",
        "plain.txt",
        &out,
    ));
    // Bad input: not a kekring file; an unknown algorithm; another tenant's context.
    std::fs::write(c.work.join("junk"), b"junk").unwrap();
    assert_eq!(c.code(&["inspect", &c.path("junk")]), 2);
    assert_eq!(
        c.code(&[&["keygen"], &scope("x")[..], &["--algorithm", "des"]].concat()),
        2
    );
    assert_eq!(
        c.code(&[
            "open",
            "--tenant",
            "globex",
            "--purpose",
            "ecdh",
            "--object",
            "r",
            "--class",
            "internal",
            "--in",
            &out,
            "--out",
            "o"
        ]),
        2
    );
    // Decryption failure: another object id.
    assert_eq!(
        c.code(&object_args(
            "open",
            &scope("ecdh"),
            "other",
            "internal",
            &out,
            "o"
        )),
        6
    );
    // A wrong master secret is refused, and the store is untouched.
    let before = std::fs::read(c.home.join("keys.kks")).unwrap();
    let wrong = Cli {
        home: c.home.clone(),
        work: c.work.clone(),
        secret: "not the right master secret!",
        env: Vec::new(),
    };
    assert_eq!(wrong.code(&["inventory"]), 6);
    assert_eq!(std::fs::read(c.home.join("keys.kks")).unwrap(), before);
    assert!(Path::new(&out).exists());
    std::fs::remove_dir_all(&c.work).unwrap();
}

/// Every file of the home directory but the lock.
fn home_files(home: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(home)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().unwrap() != "lock")
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    out.sort();
    out
}

/// Makes the home hold exactly `files` (besides the lock).
fn restore(home: &Path, files: &[(PathBuf, Vec<u8>)]) {
    for (p, _) in home_files(home) {
        std::fs::remove_file(p).unwrap();
    }
    for (p, b) in files {
        std::fs::write(p, b).unwrap();
    }
}

/// Issue 10, item 2: the CLI's state cannot be edited or rolled back without the master
/// secret: a revoked KEK stays revoked. (Before the fix, replacing "revoked" by "active"
/// in ring.json, or deleting ring.json and running keygen, revived it.)
#[test]
fn state_edited_or_rolled_back_without_the_secret_is_refused() {
    let c = Cli::new("tamper");
    std::fs::write(c.work.join("plain.txt"), b"numbers").unwrap();
    let s = scope("docs");
    c.keygen_docs();
    let sealed = c.path("objs/a");
    c.ok(&object_args(
        "seal",
        &s,
        "a",
        "internal",
        "plain.txt",
        &sealed,
    ));
    let before_revoke = home_files(&c.home);
    c.revoke_docs_v1();
    let after_revoke = home_files(&c.home);
    let open = object_args("open", &s, "a", "internal", &c.path("objs/a"), "out.txt");
    assert_eq!(c.code(&open), 4);
    restore(&c.home, &after_revoke);
    let store = c.home.join("keys.kks");

    // 1. The key state is nowhere in clear; flipping any byte of the store is refused.
    for (p, b) in &after_revoke {
        if p.file_name().unwrap() != "audit.jsonl" {
            assert!(
                !String::from_utf8_lossy(b).contains("\"revoked\""),
                "{p:?} holds the key state in clear"
            );
        }
    }
    let mut edited = std::fs::read(&store).unwrap();
    let mid = edited.len() / 2;
    edited[mid] ^= 1;
    std::fs::write(&store, edited).unwrap();
    assert_ne!(c.code(&open), 0, "an edited store was accepted");
    assert!(!c.work.join("out.txt").exists());
    restore(&c.home, &after_revoke);

    // 2. The store rolled back to its copy from before the revocation (the trail keeps the
    //    revocation's record): refused as rolled back.
    let old_store = &before_revoke.iter().find(|(p, _)| p == &store).unwrap().1;
    std::fs::write(&store, old_store).unwrap();
    assert_eq!(
        c.code(&open),
        7,
        "a rolled-back store revived a revoked KEK"
    );
    assert!(!c.work.join("out.txt").exists());
    restore(&c.home, &after_revoke);

    // 3. A plain ring.json beside the store (the old layout) is refused, not read.
    std::fs::write(c.home.join("ring.json"), "{}").unwrap();
    assert_eq!(c.code(&open), 7);
    restore(&c.home, &after_revoke);

    // 4. The store deleted: no fresh store beside an existing trail, so no keygen, and
    //    the object stays closed.
    std::fs::remove_file(&store).unwrap();
    assert_eq!(
        c.code(&[&["keygen"], &s[..], &["--algorithm", "aes256-kw"]].concat()),
        7
    );
    assert!(
        !store.exists(),
        "a fresh store was created beside the trail"
    );
    assert_ne!(c.code(&open), 0);
    restore(&c.home, &after_revoke);

    // The untouched home still denies with the key-state code.
    assert_eq!(c.code(&open), 4);
    assert!(!c.work.join("out.txt").exists());
    std::fs::remove_dir_all(&c.work).unwrap();
}

/// Issue 10, item 3: cutting the audit trail's last record, or rewriting a record with
/// a recomputed chain, is detected without any flag.
#[test]
fn a_cut_or_rewritten_audit_trail_is_detected_without_a_flag() {
    use kekring::audit::AuditRecord;
    use sha2::{Digest, Sha256};
    let c = Cli::new("audit-cut");
    c.keygen_docs();
    c.revoke_docs_v1();
    let path = c.home.join("audit.jsonl");
    let original = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    assert!(lines.len() >= 2);

    // 1. Drop the last record.
    let cut = lines[..lines.len() - 1].join("\n") + "\n";
    std::fs::write(&path, cut).unwrap();
    assert_ne!(c.code(&["audit", "verify"]), 0, "a cut trail verified");
    assert_ne!(c.code(&["inventory"]), 0, "a command ran on a cut trail");
    std::fs::write(&path, &original).unwrap();
    assert_eq!(c.code(&["audit", "verify"]), 0);

    // 2. Rewrite the revocation's reason and recompute every hash after it, as anyone
    //    who can write the file can with an unkeyed chain.
    let mut records: Vec<AuditRecord> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut prev = [0u8; 32];
    for r in &mut records {
        let mut e = serde_json::to_value(&r.event).unwrap();
        if e["event"]["reason"] == "stolen" {
            e["event"]["reason"] = "routine".into();
            r.event = serde_json::from_value(e).unwrap();
        }
        let mut h = Sha256::new();
        h.update(b"kekring/v1/audit");
        h.update(r.seq.to_be_bytes());
        h.update(r.time.to_be_bytes());
        h.update(prev);
        h.update(serde_json::to_vec(&r.event).unwrap());
        let hash: [u8; 32] = h.finalize().into();
        r.prev = hex::encode(prev);
        r.mac = hex::encode(hash);
        prev = hash;
    }
    let forged: String = records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    assert!(forged.contains("routine") && !forged.contains("stolen"));
    std::fs::write(&path, forged).unwrap();
    assert_ne!(
        c.code(&["audit", "verify"]),
        0,
        "a rewritten trail verified"
    );
    assert_ne!(
        c.code(&["inventory"]),
        0,
        "a command ran on a rewritten trail"
    );
    std::fs::remove_dir_all(&c.work).unwrap();
}

/// Issue 10, item 12: `open --out` writes the plaintext readable by its owner only, and
/// a broken audit chain exits with a code the README lists (7).
#[cfg(unix)]
#[test]
fn plaintext_is_written_0600_and_a_broken_chain_exits_7() {
    use std::os::unix::fs::PermissionsExt;
    let c = Cli::new("mode");
    std::fs::write(c.work.join("plain.txt"), b"numbers").unwrap();
    let s = scope("docs");
    c.keygen_docs();
    let sealed = c.path("objs/a");
    c.ok(&object_args(
        "seal",
        &s,
        "a",
        "internal",
        "plain.txt",
        &sealed,
    ));
    let open = object_args("open", &s, "a", "internal", &c.path("objs/a"), "out.txt");
    c.ok(&open);
    let mode = std::fs::metadata(c.work.join("out.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "plaintext written with mode {mode:o}");

    let path = c.home.join("audit.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("acme", "acmf", 1)).unwrap();
    assert_eq!(c.code(&["audit", "verify"]), 7);
    std::fs::remove_dir_all(&c.work).unwrap();
}

/// Issue 10, item 2: `destroy` removes the key material from the store.
#[test]
fn destroy_removes_the_key_material() {
    let c = Cli::new("destroy");
    let s = scope("docs");
    c.keygen_docs();
    c.revoke_docs_v1();
    c.ok(&[
        &["destroy"],
        &s[..],
        &["--version", "1", "--dir", &c.path("objs")],
    ]
    .concat());
    let secret = kekring::keystore::MasterSecret::new(c.secret).unwrap();
    let store = kekring::keystore::KeyStore::open(c.home.join("keys.kks"), &secret).unwrap();
    assert_eq!(
        store.locators().count(),
        0,
        "destroyed material is still stored"
    );
    let inv = c.ok(&["inventory", "--json"]);
    assert!(inv.contains("\"destroyed\""), "{inv}");
    std::fs::remove_dir_all(&c.work).unwrap();
}

/// A crash after the key store is saved but before the trail has the command's records
/// loses nothing: the next command appends them from the store.
#[test]
fn a_crash_between_store_and_trail_loses_no_record() {
    let c = Cli::new("crash");
    let s = scope("docs");
    c.keygen_docs();
    let before = std::fs::read_to_string(c.home.join("audit.jsonl")).unwrap();
    c.crash_after_state_save(
        &[
            &["revoke"],
            &s[..],
            &["--version", "1", "--reason", "stolen"],
        ]
        .concat(),
    );
    assert_eq!(
        std::fs::read_to_string(c.home.join("audit.jsonl")).unwrap(),
        before,
        "the trail changed before the crash point"
    );
    let verified = c.ok(&["audit", "verify"]);
    assert!(verified.starts_with("audit chain OK"), "{verified}");
    let after = std::fs::read_to_string(c.home.join("audit.jsonl")).unwrap();
    assert!(after.contains("stolen"), "the revocation's record was lost");
    let inv = c.ok(&["inventory", "--json"]);
    assert!(inv.contains("\"revoked\""), "{inv}");
    std::fs::remove_dir_all(&c.work).unwrap();
}

/// A crash after a destruction is recorded but before the key is deleted leaves the
/// record and the key; running `destroy` again deletes it. The key is never gone
/// without its record.
#[test]
fn a_destroy_interrupted_after_its_record_finishes_on_the_next_run() {
    let c = Cli::new("destroy-crash");
    let s = scope("docs");
    c.keygen_docs();
    c.revoke_docs_v1();
    let objs = c.path("objs");
    let destroy = [&["destroy"], &s[..], &["--version", "1", "--dir", &objs]].concat();
    c.crash_after_state_save(&destroy);
    let secret = kekring::keystore::MasterSecret::new(c.secret).unwrap();
    let keys = || {
        kekring::keystore::KeyStore::open(c.home.join("keys.kks"), &secret)
            .unwrap()
            .locators()
            .count()
    };
    assert_eq!(keys(), 1, "the key went before its record was saved");
    c.ok(&["audit", "verify"]);
    let trail = std::fs::read_to_string(c.home.join("audit.jsonl")).unwrap();
    assert!(
        trail.contains("\"destroyed\""),
        "the destruction's record is missing"
    );
    c.ok(&destroy);
    assert_eq!(keys(), 0);
    std::fs::remove_dir_all(&c.work).unwrap();
}

/// A final trail line torn by a crash (no newline) is cut, and the chain still
/// verifies; cutting a committed record the same way is caught (exit 7).
#[test]
fn a_torn_trail_tail_is_cut_but_a_torn_record_is_caught() {
    let c = Cli::new("torn");
    c.keygen_docs();
    let trail = c.home.join("audit.jsonl");
    let committed = std::fs::read(&trail).unwrap();
    let mut torn = committed.clone();
    torn.extend_from_slice(b"{\"seq\":9,\"ti");
    std::fs::write(&trail, &torn).unwrap();
    let verified = c.ok(&["audit", "verify"]);
    assert!(verified.starts_with("audit chain OK"), "{verified}");
    assert_eq!(
        std::fs::read(&trail).unwrap(),
        committed,
        "the torn tail stayed"
    );
    // The last committed record's newline gone: that record is cut, and the store's
    // audit head says one is missing.
    std::fs::write(&trail, &committed[..committed.len() - 1]).unwrap();
    assert_eq!(c.code(&["audit", "verify"]), 7);
    std::fs::remove_dir_all(&c.work).unwrap();
}
