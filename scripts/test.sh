#!/usr/bin/env bash
# The one command that runs every test. Installs what it needs by itself.
#   scripts/test.sh                 # everything (about 19 minutes on 2 cores from a fresh clone)
#   FUZZ_SECONDS=0 scripts/test.sh  # skip the fuzzing smoke run
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A one-shot run from a clean clone gains nothing from incremental compilation, which
# would keep about 2 GB of session data on disk.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi
step() { printf '\n== %s (at %dm%02ds)\n' "$*" $((SECONDS / 60)) $((SECONDS % 60)); }

step "toolchain"
cargo --version
rustc --version
for c in rustfmt clippy; do
  if ! cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$c"
  fi
done
if ! command -v cc >/dev/null 2>&1 || ! command -v c++ >/dev/null 2>&1; then
  step "installing a C/C++ compiler"
  apt-get update -qq && apt-get install -y -qq gcc g++
fi
command -v python3 >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3; }
# The FIPS build of AWS-LC (feature aws-lc-fips, part of --all-features) builds with
# cmake and Go.
if ! command -v cmake >/dev/null 2>&1 || ! command -v go >/dev/null 2>&1; then
  step "installing cmake and Go (AWS-LC FIPS build)"
  apt-get update -qq && apt-get install -y -qq cmake golang-go
fi
# The bring-your-own-key tests generate keys with openssl at test time.
command -v openssl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq openssl; }

# cargo-deny from crates.io, at a pinned version (about 2 minutes to build once).
DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q "$DENY_VERSION"; then
  step "installing cargo-deny $DENY_VERSION"
  cargo install --locked "cargo-deny@$DENY_VERSION"
fi

step "format"
cargo fmt --all -- --check

step "house: no import cycle between top-level modules; the stated MSRV"
python3 scripts/module_cycles.py
python3 scripts/check_msrv.py
# bindgen 0.73 (the AWS-LC FIPS build) accepts syn 3 in its manifest but does not build
# with it; a re-resolution of the lock moves it there.
python3 - <<'PY'
import re, sys
lock = open("Cargo.lock").read()
block = re.search(r'name = "bindgen"\n(.*?)\n\n', lock, re.S)
if block and '"syn 3' in block.group(1):
    sys.exit('Cargo.lock: bindgen resolves to syn 3, which it does not build with; set its "syn 3.x" dependency line to the syn 2 entry')
PY

step "supply chain: licenses, duplicate versions, sources (deny.toml)"
# Advisories need the RustSec database from GitHub, which these machines cannot reach:
# see deny.toml for how and where that check runs.
cargo deny --locked check licenses bans sources

step "clippy (all targets, all features, warnings are errors)"
cargo clippy --all-targets --all-features -- -D warnings

step "clippy without default features"
cargo clippy --no-default-features --lib -- -D warnings

step "each feature builds alone (the list is Cargo.toml's)"
for f in $(python3 scripts/test_lists.py features); do
  cargo clippy --quiet --lib --no-default-features --features "$f" -- -D warnings
done

step "test servers: OpenBao (Transit, JWT and Kubernetes auth), LocalStack (KMS, STS), the project's fakes (KMS for ML-KEM and RSA keys, Kubernetes TokenReview)"
# Debian's python3 needs python3-venv for `python3 -m venv`; the servers install into
# virtualenvs cached by content under ~/.cache/kekring (about 40 s the first time).
python3 -c 'import ensurepip, venv' 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv; }
servers_dir="$(mktemp -d "${TMPDIR:-/tmp}/kekring-servers.XXXXXX")"
trap 'python3 scripts/servers.py stop "$servers_dir" >/dev/null 2>&1 || true' EXIT
python3 scripts/servers.py start "$servers_dir"
set -a
. "$servers_dir/env"
set +a

step "tests (all features; the remote backends against the servers above)"
test_log="$servers_dir/cargo-test.log"
cargo test --all-features 2>&1 | tee "$test_log"
# The server tests are gated on features (`required-features`), which cargo answers by
# leaving a test out without a word: fail unless every module of the server test binary
# (its list is tests/remote/main.rs) and the local conformance suite passed tests.
python3 scripts/test_lists.py ran "$test_log"

step "tests on the non-FIPS AWS-LC build (--all-features above links the FIPS one)"
cargo test --features aws-lc,tokio

step "tests without default features"
cargo test --no-default-features

step "docs (warnings are errors): all features, the default ones, none"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --no-default-features

step "quickstart (first run seals, second run opens)"
rm -rf .kekring-quickstart
cargo run --example quickstart
second="$(cargo run --example quickstart)"
printf '%s\n' "$second"
grep -q '^opened ' <<<"$second" || { echo "the second quickstart run did not open the object" >&2; exit 1; }
rm -rf .kekring-quickstart

step "backend examples against the test servers (configuration from the environment)"
AWS_ENDPOINT_URL_KMS="$KEKRING_TEST_KMS_ENDPOINT" AWS_REGION="$KEKRING_TEST_AWS_REGION" \
  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
  cargo run --quiet --all-features --example aws_kms
AWS_ENDPOINT_URL_KMS="$KEKRING_TEST_KMS_PQ_ENDPOINT" AWS_REGION="$KEKRING_TEST_AWS_REGION" \
  AWS_ACCESS_KEY_ID=AKIDKEKRINGTEST AWS_SECRET_ACCESS_KEY=kekring-test-secret \
  KEKRING_KMS_ALGORITHM=ml-kem-768 cargo run --quiet --all-features --example aws_kms
VAULT_ADDR="$KEKRING_TEST_VAULT_ADDR" VAULT_TOKEN="$KEKRING_TEST_VAULT_TOKEN" \
  cargo run --quiet --all-features --example vault_transit

step "benchmarks: each runs once (criterion's test mode), the peer comparison too"
# Every bench target (the remote one against the servers above), once per benchmark in
# the test profile: the timings mean nothing here, the code paths do.
cargo test --all-features --benches
cargo run --quiet --example stream_memory -- $((16 << 20))
# The peers (aws-esdk, tink, kms-aead) are their own cargo package with their own lock
# file; a debug build of it takes about 2.5 minutes on 2 cores.
(cd benches/peers && cargo test --locked --benches --features aws-lc)

seconds="${FUZZ_SECONDS:-30}"
if [ "$seconds" -gt 0 ]; then
  step "fuzzing smoke run (${seconds}s per target)"
  FUZZ_SECONDS="$seconds" scripts/fuzz.sh
fi

step "disk used by the build"
du -sh target benches/peers/target fuzz/target 2>/dev/null || true

step "all tests passed"
