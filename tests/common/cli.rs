//! The `kekring` binary driven from a test: a private work directory and home, the
//! master secret in the environment, and helpers that check the exit status (feature `cli`,
//! which builds the binary).
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::process::{Command, Output};

pub struct Cli {
    pub home: PathBuf,
    pub work: PathBuf,
    pub secret: &'static str,
    /// Variables set (`Some`) or removed (`None`) for every command, after the defaults.
    pub env: Vec<(String, Option<String>)>,
}

impl Cli {
    pub fn new(name: &str) -> Self {
        let work = std::env::temp_dir().join(format!("kekring-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(work.join("objs")).unwrap();
        Self {
            home: work.join("home"),
            work,
            secret: "a master secret for the CLI tests",
            env: Vec::new(),
        }
    }

    /// Every command runs with `name` set to `value`.
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), Some(value.to_owned())));
        self
    }

    /// Every command runs without `name`.
    pub fn without_env(mut self, name: &str) -> Self {
        self.env.push((name.to_owned(), None));
        self
    }

    pub fn command<S: AsRef<str>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kekring"));
        cmd.args(args.iter().map(AsRef::as_ref))
            .env("KEKRING_HOME", &self.home)
            .env("KEKRING_MASTER_SECRET", self.secret)
            .env_remove("KEKRING_MASTER_SECRET_FILE")
            .current_dir(&self.work);
        for (name, value) in &self.env {
            match value {
                Some(v) => cmd.env(name, v),
                None => cmd.env_remove(name),
            };
        }
        cmd
    }

    pub fn run<S: AsRef<str>>(&self, args: &[S]) -> Output {
        self.command(args).output().unwrap()
    }

    pub fn ok<S: AsRef<str> + std::fmt::Debug>(&self, args: &[S]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kekring {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn code<S: AsRef<str>>(&self, args: &[S]) -> i32 {
        self.run(args).status.code().unwrap()
    }

    pub fn path(&self, p: &str) -> String {
        self.work.join(p).to_str().unwrap().to_owned()
    }
}

/// `verb` (`seal` or `open`) of object `obj` of scope `s`, from `input` to `output`.
pub fn object_args(
    verb: &str,
    s: &[&str],
    obj: &str,
    class: &str,
    input: &str,
    output: &str,
) -> Vec<String> {
    let mut v = vec![verb];
    v.extend_from_slice(s);
    v.extend_from_slice(&[
        "--object", obj, "--class", class, "--in", input, "--out", output,
    ]);
    v.into_iter().map(str::to_owned).collect()
}
