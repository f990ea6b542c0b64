#!/usr/bin/env bash
# Fuzz every target for a while (default 30 s each), seeded from the committed vectors.
#   scripts/fuzz.sh            # smoke run, 30 s per target
#   FUZZ_SECONDS=3600 scripts/fuzz.sh decode_sealed   # a long campaign on one target
# cargo-fuzz needs nightly flags; on the stable toolchain RUSTC_BOOTSTRAP=1 enables them.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-30}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode_wrapped_dek decode_sealed open open_stream)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
if ! command -v c++ >/dev/null 2>&1; then
  echo "== installing a C++ compiler (libFuzzer is C++)"
  apt-get update -qq && apt-get install -y -qq g++
fi

echo "== seeding corpora from tests/data/vectors_v1.json"
python3 - <<'PY'
import json, os, hashlib
doc = json.load(open("tests/data/vectors_v1.json"))
def put(target, data):
    d = f"fuzz/corpus/{target}"
    os.makedirs(d, exist_ok=True)
    open(f"{d}/seed-{hashlib.sha256(data).hexdigest()[:16]}", "wb").write(data)
for v in doc["positive"] + doc["negative"]:
    b = bytes.fromhex(v["bytes_hex"])
    if v["kind"] == "sealed":
        put("decode_sealed", b)
        put("open", b)
        if b[5:7] == b"\x00\x02":
            put("open_stream", b)
        if len(b) >= 10:
            n = int.from_bytes(b[8:10], "big")
            put("decode_wrapped_dek", b[10:10 + n])
    else:
        put("decode_wrapped_dek", b)
        put("open", b)
PY

export RUSTC_BOOTSTRAP=1
summary=()
for t in "${targets[@]}"; do
  echo "== fuzzing $t for ${seconds}s"
  log="$(mktemp)"
  # -rss_limit_mb keeps a runaway allocation a finding instead of an OOM kill.
  cargo fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 \
    -print_final_stats=1 2>&1 | tee "$log" | grep -E '^(#[0-9]+\s+(INITED|DONE)|Done|==[0-9]+==|SUMMARY)' || true
  status=${PIPESTATUS[0]}
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
  summary+=("$t: ${runs:-?} executions, exit $status")
  if [ "$status" -ne 0 ]; then
    echo "fuzz target $t failed; see fuzz/artifacts/$t" >&2
    tail -40 "$log" >&2
    exit 1
  fi
  rm -f "$log"
done
echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
