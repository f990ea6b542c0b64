#!/usr/bin/env python3
"""Print the latest `cargo bench` results of this package as a Markdown table.

Reads criterion's `target/criterion/<group>/<id>/new/estimates.json` and prints, per
operation and size, each implementation's median time and its ratio to kekring's
(below 1 = faster than kekring). Run from benches/peers after `cargo bench`.
"""

import json
import pathlib
import sys

IDS = ["kekring", "kekring-aws-lc", "kekring-aws-lc-in-place", "raw-aes256-gcm", "raw-aws-lc", "raw-aws-lc-in-place", "aws-esdk", "tink", "kms-aead"]
SIZES = ["64B", "1KiB", "64KiB", "1MiB"]


def fmt(ns: float) -> str:
    for unit, scale in (("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def main() -> int:
    root = pathlib.Path(__file__).resolve().parent / "target" / "criterion"
    print("| op | size | " + " | ".join(IDS) + " |")
    print("|---|---|" + "---|" * len(IDS))
    for op in ("seal", "open"):
        for size in SIZES:
            medians = {}
            for ident in IDS:
                f = root / f"{op}_{size}" / ident / "new" / "estimates.json"
                if f.exists():
                    medians[ident] = json.loads(f.read_text())["median"]["point_estimate"]
            base = medians.get("kekring")
            cells = []
            for ident in IDS:
                if ident not in medians:
                    cells.append("—")
                elif ident == "kekring" or base is None:
                    cells.append(fmt(medians[ident]))
                else:
                    cells.append(f"{fmt(medians[ident])} ({medians[ident] / base:.2f}x)")
            print(f"| {op} | {size} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
