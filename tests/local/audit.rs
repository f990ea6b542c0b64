//! The audit chain: a changed, removed, reordered or inserted record is detected; a chain
//! rewritten without the key is detected; a cut is detected against the anchored head;
//! the JSON-lines sink round-trips and can be resumed; events carry locators only as
//! their last 12 characters.
// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;

use kekring::audit::{
    AuditError, AuditEvent, AuditKey, AuditLog, ChainHead, JsonLinesSink, MemorySink, verify,
    verify_anchored, verify_from,
};
use kekring::lifecycle::{KeyRing, NewKek};
use kekring::{BackendId, KekRef, WrapAlgorithm};

fn key() -> AuditKey {
    AuditKey::from_bytes([7; 32])
}

fn bulk(i: u64) -> AuditEvent {
    AuditEvent::BulkRewrap {
        processed: i,
        rewrapped: i,
        already_current: 0,
        failed: 0,
    }
}

fn chain_under(k: AuditKey, n: u64) -> Vec<kekring::audit::AuditRecord> {
    let sink = Arc::new(MemorySink::new());
    let log = AuditLog::new(sink.clone(), k);
    for i in 0..n {
        log.append(1000 + i, bulk(i)).unwrap();
    }
    assert_eq!(log.head().len, n);
    sink.records()
}

fn chain(n: u64) -> Vec<kekring::audit::AuditRecord> {
    chain_under(key(), n)
}

#[test]
fn every_kind_of_tampering_is_detected() {
    let good = chain(6);
    let head = verify(&key(), &good).unwrap().head;
    assert_eq!(head.len, 6);
    assert_eq!(head.mac, good[5].mac);

    let broken_at = |records: &[kekring::audit::AuditRecord]| match verify(&key(), records) {
        Err(AuditError::Broken { seq, .. }) => seq,
        other => panic!("tampering not detected: {other:?}"),
    };
    // Changed event.
    let mut changed = good.clone();
    changed[2].event = bulk(99);
    assert_eq!(broken_at(&changed), 2);
    // Changed time.
    let mut t = good.clone();
    t[3].time += 1;
    assert_eq!(broken_at(&t), 3);
    // Removed.
    let mut removed = good.clone();
    removed.remove(1);
    assert_eq!(broken_at(&removed), 2);
    // Reordered.
    let mut reordered = good.clone();
    reordered.swap(3, 4);
    assert_eq!(broken_at(&reordered), 4);
    // Inserted (a record copied from another chain, renumbered).
    let mut inserted = good.clone();
    let mut extra = chain(3)[2].clone();
    extra.seq = 2;
    inserted.insert(2, extra);
    assert_eq!(broken_at(&inserted), 2);
    // Rewritten whole, with a consistent chain, by someone without the key.
    let forged = chain_under(AuditKey::from_bytes([8; 32]), 6);
    assert_eq!(broken_at(&forged), 0);
    // Cut from the end: a valid shorter chain, refused against the anchored head.
    let truncated = &good[..4];
    assert!(verify(&key(), truncated).is_ok());
    assert!(matches!(
        verify_anchored(&key(), &head, truncated),
        Err(AuditError::Truncated {
            anchored: 6,
            found: 4
        })
    ));
    // Longer than the anchor is fine (appends not yet anchored); another chain is not.
    let at4 = verify(&key(), truncated).unwrap().head;
    assert!(verify_anchored(&key(), &at4, &good).is_ok());
    let other_head = ChainHead {
        len: 4,
        mac: "ab".repeat(32),
    };
    assert!(matches!(
        verify_anchored(&key(), &other_head, &good),
        Err(AuditError::Diverged { seq: 3 })
    ));
}

#[test]
fn a_continuation_verifies_under_the_evolved_key_alone() {
    // Records verify under k(0), and a continuation verifies from its anchor under the
    // evolved key k(n) alone, and not under k(0).
    let good = chain(5);
    let head3 = verify(&key(), &good[..3]).unwrap().head;
    let k3 = key().evolved(3).unwrap();
    assert_eq!(
        verify_from(&head3, &k3, &good[3..]).unwrap().head,
        verify(&key(), &good).unwrap().head
    );
    assert!(verify_from(&head3, &key(), &good[3..]).is_err());
    assert_eq!(format!("{k3:?}"), "AuditKey([REDACTED])");
}

#[test]
fn json_lines_sink_round_trips_resumes_and_anchors() {
    let dir = std::env::temp_dir().join(format!("kekring-audit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.jsonl");

    // Lifecycle events from real transitions, with a long locator.
    let arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let (ring, events) = KeyRing::new()
        .register(
            NewKek::new(
                KekRef::new("acme", "docs", 1).unwrap(),
                BackendId::AwsKms,
                arn,
                WrapAlgorithm::Aes256Opaque,
            )
            .key_id(kekring::backend::KeyIdentity::new(arn)),
            10,
        )
        .unwrap();
    let log = AuditLog::new(Arc::new(JsonLinesSink::open(&path).unwrap()), key());
    log.append_lifecycle(10, events).unwrap();
    let (_, events) = ring
        .revoke(&KekRef::new("acme", "docs", 1).unwrap(), 20, "incident 42")
        .unwrap();
    log.append_lifecycle(20, events).unwrap();
    let anchor = log.head();

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains("111122223333"),
        "full locator in the audit trail"
    );
    assert!(text.contains("567890ab"));
    let records = JsonLinesSink::read(&path).unwrap();
    assert_eq!(verify(&key(), &records).unwrap().head, anchor);

    // A new process continues the chain, checked against the anchor it stored.
    let resumed = AuditLog::open_json_lines(&path, &key(), &anchor).unwrap();
    resumed.append(30, bulk(1)).unwrap();
    let all = JsonLinesSink::read(&path).unwrap();
    assert_eq!(verify(&key(), &all).unwrap().head, resumed.head());
    let later = resumed.head();

    // The last line cut, or a line edited, is refused at open with no flag.
    let full = std::fs::read_to_string(&path).unwrap();
    let cut: String = full.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, &cut).unwrap();
    assert!(matches!(
        AuditLog::open_json_lines(&path, &key(), &later),
        Err(AuditError::Truncated { .. })
    ));
    std::fs::write(&path, full.replace("incident 42", "incident 43")).unwrap();
    assert!(matches!(
        AuditLog::open_json_lines(&path, &key(), &later),
        Err(AuditError::Broken { seq: 1, .. })
    ));
    std::fs::write(&path, "not json\n").unwrap();
    assert!(matches!(
        JsonLinesSink::read(&path),
        Err(AuditError::Malformed { line: 1, .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
