//! End-to-end tests of the `kekring` binary on the embedded key store: keygen, seal,
//! open, inspect, rotate, rewrap, retire, revoke, break-glass, inventory, audit verify,
//! and the exit codes for bad input (2), policy (3), key state (4) and decryption (6).
#![cfg(feature = "cli")]
// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Cli {
    home: PathBuf,
    work: PathBuf,
    secret: &'static str,
}

impl Cli {
    fn new(name: &str) -> Self {
        let work = std::env::temp_dir().join(format!("kekring-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(work.join("objs")).unwrap();
        Self {
            home: work.join("home"),
            work,
            secret: "a master secret for the CLI tests",
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kekring"))
            .args(args)
            .env("KEKRING_HOME", &self.home)
            .env("KEKRING_MASTER_SECRET", self.secret)
            .env_remove("KEKRING_MASTER_SECRET_FILE")
            .current_dir(&self.work)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kekring {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn code(&self, args: &[&str]) -> i32 {
        self.run(args).status.code().unwrap()
    }

    fn path(&self, p: &str) -> String {
        self.work.join(p).to_str().unwrap().to_owned()
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
        c.ok(&[
            &["seal"],
            &s[..],
            &[
                "--object",
                name,
                "--class",
                "restricted",
                "--in",
                "plain.txt",
                "--out",
                &out,
            ],
        ]
        .concat());
    }
    let inspect = c.ok(&["inspect", "--json", &c.path("objs/a")]);
    let v: serde_json::Value = serde_json::from_str(inspect.trim()).unwrap();
    assert_eq!(v["classification"], "restricted");
    assert_eq!(v["wraps"][0]["algorithm"], "ml-kem-768");
    assert_eq!(v["wraps"][0]["kek"]["version"], 1);
    c.ok(&[
        &["open"],
        &s[..],
        &[
            "--object",
            "a",
            "--class",
            "restricted",
            "--in",
            &c.path("objs/a"),
            "--out",
            "out.txt",
        ],
    ]
    .concat());
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
    c.ok(&[
        &["open"],
        &s[..],
        &[
            "--object",
            "b",
            "--class",
            "restricted",
            "--in",
            &c.path("objs/b"),
            "--out",
            "out.txt",
        ],
    ]
    .concat());

    // Revoke v2: opens are denied with the key-state exit code.
    c.ok(&[
        &["revoke"],
        &s[..],
        &["--version", "2", "--reason", "incident 9"],
    ]
    .concat());
    assert_eq!(
        c.code(
            &[
                &["open"],
                &s[..],
                &[
                    "--object",
                    "b",
                    "--class",
                    "restricted",
                    "--in",
                    &c.path("objs/b"),
                    "--out",
                    "o"
                ]
            ]
            .concat()
        ),
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
    c.ok(&[
        &["open"],
        &s[..],
        &[
            "--object",
            "c",
            "--class",
            "restricted",
            "--in",
            &c.path("objs/c"),
            "--out",
            "out.txt",
        ],
    ]
    .concat());
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
    assert_eq!(c.code(&["audit", "verify"]), 1);
    std::fs::remove_dir_all(&c.work).unwrap();
}

#[test]
fn exit_codes_distinguish_failures() {
    let c = Cli::new("codes");
    std::fs::write(c.work.join("plain.txt"), b"x").unwrap();
    c.ok(&[
        &["keygen"],
        &scope("rsa")[..],
        &["--algorithm", "rsa3072-oaep-sha256"],
    ]
    .concat());
    // Policy: Restricted data under RSA.
    let out = c.path("objs/r");
    assert_eq!(
        c.code(
            &[
                &["seal"],
                &scope("rsa")[..],
                &[
                    "--object",
                    "r",
                    "--class",
                    "restricted",
                    "--in",
                    "plain.txt",
                    "--out",
                    &out
                ]
            ]
            .concat()
        ),
        3
    );
    c.ok(&[
        &["seal"],
        &scope("rsa")[..],
        &[
            "--object",
            "r",
            "--class",
            "internal",
            "--in",
            "plain.txt",
            "--out",
            &out,
        ],
    ]
    .concat());
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
            "rsa",
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
        c.code(
            &[
                &["open"],
                &scope("rsa")[..],
                &[
                    "--object", "other", "--class", "internal", "--in", &out, "--out", "o"
                ]
            ]
            .concat()
        ),
        6
    );
    // A wrong master secret is refused, and the store is untouched.
    let before = std::fs::read(c.home.join("keys.kks")).unwrap();
    let wrong = Cli {
        home: c.home.clone(),
        work: c.work.clone(),
        secret: "not the right master secret!",
    };
    assert_eq!(wrong.code(&["inventory"]), 6);
    assert_eq!(std::fs::read(c.home.join("keys.kks")).unwrap(), before);
    assert!(Path::new(&out).exists());
    std::fs::remove_dir_all(&c.work).unwrap();
}
