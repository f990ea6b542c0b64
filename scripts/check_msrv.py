#!/usr/bin/env python3
"""Checks the MSRV stated in Cargo.toml (`rust-version`) against the build's dependencies.

    python3 scripts/check_msrv.py

Every package the build resolves, with every feature on, must declare a `rust-version`
no newer than kekring's (a package that declares none is reported, not failed). Together
with clippy's `incompatible_msrv` lint, which flags any standard-library API kekring
uses that is newer than its `rust-version`, this checks the stated MSRV without a second
toolchain (only the machine's own toolchain can be installed here). Exit 1 on a package
that needs a newer Rust.
"""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def version(v: str) -> tuple[int, ...]:
    parts = [int(p) for p in v.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main() -> int:
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--all-features", "--locked"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    packages = {p["id"]: p for p in meta["packages"]}
    root = meta["resolve"]["root"]
    msrv = packages[root]["rust_version"]
    if not msrv:
        print("Cargo.toml states no rust-version", file=sys.stderr)
        return 1
    # Every package reachable from kekring through normal and build dependencies (the
    # ones a user's build compiles; dev-dependencies are the tests' own).
    deps = {n["id"]: n for n in meta["resolve"]["nodes"]}
    seen, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for d in deps[pid]["deps"]:
            kinds = {k["kind"] for k in d["dep_kinds"]}
            if kinds - {"dev"}:
                todo.append(d["pkg"])
    newer, undeclared = [], []
    for pid in sorted(seen - {root}):
        p = packages[pid]
        rv = p.get("rust_version")
        if rv is None:
            undeclared.append(f"{p['name']} {p['version']}")
        elif version(rv) > version(msrv):
            newer.append(f"{p['name']} {p['version']} needs Rust {rv}")
    print(f"kekring rust-version {msrv}: {len(seen) - 1} dependencies checked, "
          f"{len(undeclared)} declare no rust-version")
    for n in newer:
        print(f"NEEDS A NEWER RUST: {n}", file=sys.stderr)
    return 1 if newer else 0


if __name__ == "__main__":
    sys.exit(main())
