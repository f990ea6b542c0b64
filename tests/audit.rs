//! The audit chain: a changed, removed, reordered or inserted record is detected; the
//! JSON-lines sink round-trips and can be resumed; heads anchor continuations; events
//! carry locators only as their last 12 characters.
// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;

use kekring::audit::{
    AuditError, AuditEvent, AuditLog, ChainHead, JsonLinesSink, MemorySink, verify, verify_from,
};
use kekring::lifecycle::{KeyRing, NewKek};
use kekring::{BackendId, KekRef, WrapAlgorithm};

fn chain(n: u64) -> Vec<kekring::audit::AuditRecord> {
    let sink = Arc::new(MemorySink::new());
    let log = AuditLog::new(sink.clone());
    for i in 0..n {
        log.append(
            1000 + i,
            AuditEvent::BulkRewrap {
                processed: i,
                rewrapped: i,
                already_current: 0,
                failed: 0,
            },
        )
        .unwrap();
    }
    assert_eq!(log.head().len, n);
    sink.records()
}

#[test]
fn every_kind_of_tampering_is_detected() {
    let good = chain(6);
    let head = verify(&good).unwrap();
    assert_eq!(head.len, 6);
    assert_eq!(head.hash, good[5].hash);

    let broken_at = |records: &[kekring::audit::AuditRecord]| match verify(records) {
        Err(AuditError::Broken { seq, .. }) => seq,
        other => panic!("tampering not detected: {other:?}"),
    };
    // Changed event.
    let mut changed = good.clone();
    changed[2].event = AuditEvent::BulkRewrap {
        processed: 99,
        rewrapped: 2,
        already_current: 0,
        failed: 0,
    };
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
    // Truncation at the end is only detectable against an anchored head.
    let truncated = &good[..4];
    assert!(verify(truncated).is_ok());
    assert_ne!(verify(truncated).unwrap(), head);
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
            ),
            10,
        )
        .unwrap();
    let log = AuditLog::new(Arc::new(JsonLinesSink::open(&path).unwrap()));
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
    assert_eq!(verify(&records).unwrap(), anchor);

    // A new process resumes the chain from the verified head.
    let resumed = AuditLog::resume(Arc::new(JsonLinesSink::open(&path).unwrap()), &anchor).unwrap();
    resumed
        .append(
            30,
            AuditEvent::BulkRewrap {
                processed: 1,
                rewrapped: 1,
                already_current: 0,
                failed: 0,
            },
        )
        .unwrap();
    let all = JsonLinesSink::read(&path).unwrap();
    assert_eq!(verify(&all).unwrap(), resumed.head());
    // The continuation verifies against the anchor alone.
    assert_eq!(verify_from(&anchor, &all[2..]).unwrap(), resumed.head());
    assert!(verify_from(&ChainHead::genesis(), &all[2..]).is_err());

    // A hand-edited line is caught.
    let edited = text.replace("incident 42", "incident 43");
    std::fs::write(&path, edited).unwrap();
    assert!(matches!(
        verify(&JsonLinesSink::read(&path).unwrap()),
        Err(AuditError::Broken { seq: 1, .. })
    ));
    std::fs::write(&path, "not json\n").unwrap();
    assert!(matches!(
        JsonLinesSink::read(&path),
        Err(AuditError::Malformed { line: 1, .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
