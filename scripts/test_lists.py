#!/usr/bin/env python3
"""What scripts/test.sh iterates over, read from Cargo.toml and the test sources, so
that a new feature or server test needs no edit of the test command.

  test_lists.py features        every cargo feature but `default`, one per line
  test_lists.py ran LOG         fails unless every module of the server test binary
                                (and the local conformance module) passed a test in
                                the `cargo test` output LOG
"""
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def manifest() -> dict:
    with open(ROOT / "Cargo.toml", "rb") as f:
        return tomllib.load(f)


def features() -> list[str]:
    return [f for f in manifest()["features"] if f != "default"]


def modules(test: str) -> list[str]:
    """The `mod` items of a test binary's root file (its `path` in Cargo.toml)."""
    targets = {t["name"]: t for t in manifest().get("test", [])}
    path = targets.get(test, {}).get("path", f"tests/{test}/main.rs")
    src = (ROOT / path).read_text()
    return [m for m in re.findall(r"^mod (\w+);", src, re.M) if m != "common"]


def ran(log_path: str) -> None:
    log = Path(log_path).read_text()
    need = modules("remote") + ["conformance"]
    counts = {m: len(re.findall(rf"^test {m}::\S+ \.\.\. ok$", log, re.M)) for m in need}
    missing = [m for m, n in counts.items() if n == 0]
    if missing:
        sys.exit(f"server test modules that ran no test: {', '.join(missing)}")
    print("server tests ran: " + ", ".join(f"{m} ({n})" for m, n in counts.items()))


def main() -> None:
    match sys.argv[1:]:
        case ["features"]:
            print("\n".join(features()))
        case ["ran", log]:
            ran(log)
        case _:
            sys.exit(__doc__)


if __name__ == "__main__":
    main()
