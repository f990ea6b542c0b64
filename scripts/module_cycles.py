#!/usr/bin/env python3
"""Lists import cycles between the crate's top-level modules.

    python3 scripts/module_cycles.py            # prints the module graph; exit 1 on a cycle

Also fails when a module names an item through the crate root's re-exports
(`crate::Error` instead of `crate::error::Error`): such an import hides which module it
depends on.

A top-level module is `src/<name>.rs` together with everything under `src/<name>/`
(a module and its children are one unit: a child naming its parent's types is how a
module is split across files, not a layering problem). An edge A -> B means a file of A
names `crate::B` (in a `use` or a path), or `super::` from a top-level child of the crate
root. `lib.rs` (the crate root, which re-exports) and `src/bin/` are left out. Comment
lines and `#[cfg(test)]` test modules are ignored, since test code may reach anywhere.

Reads source text only: no build needed.
"""

import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"


def top_module(path: pathlib.Path) -> str | None:
    rel = path.relative_to(SRC)
    parts = rel.parts
    if parts[0] == "bin" or rel.as_posix() == "lib.rs":
        return None
    return parts[0].removesuffix(".rs")


def strip_tests(text: str) -> str:
    """Drops `#[cfg(test)] mod ... { ... }` blocks and comment lines."""
    out = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == "#[cfg(test)]" and i + 1 < len(lines) and re.match(
            r"\s*(pub(\(crate\))?\s+)?mod\s+\w+\s*\{", lines[i + 1]
        ):
            depth = 0
            i += 1
            while i < len(lines):
                depth += lines[i].count("{") - lines[i].count("}")
                i += 1
                if depth <= 0:
                    break
            continue
        if not line.lstrip().startswith("//"):
            out.append(line)
        i += 1
    return "\n".join(out)


def main() -> int:
    files = sorted(SRC.rglob("*.rs"))
    modules = sorted({m for f in files if (m := top_module(f))})
    edges: dict[str, set[str]] = {m: set() for m in modules}
    reexports: list[str] = []
    pat = re.compile(r"\bcrate::(\w+)")
    use_group = re.compile(r"\buse\s+crate::\{([^;]*)\};", re.S)
    for f in files:
        src = top_module(f)
        if src is None:
            continue
        text = strip_tests(f.read_text())
        targets = set(pat.findall(text))
        for group in use_group.findall(text):
            targets.update(re.findall(r"(?:^|[,{]\s*)(\w+)", group))
        for t in targets:
            if t in edges and t != src:
                edges[src].add(t)
            elif t not in edges and t[:1].isupper():
                reexports.append(f"{f.relative_to(SRC.parent)}: crate::{t}")

    # Tarjan's strongly connected components.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    sccs: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for m in modules:
        if m not in index:
            visit(m)

    for m in modules:
        print(f"{m:12} -> {', '.join(sorted(edges[m])) or '(nothing)'}")
    cycles = [c for c in sccs if len(c) > 1]
    for c in cycles:
        print(f"CYCLE: {' <-> '.join(c)}", file=sys.stderr)
    for r in sorted(set(reexports)):
        print(f"THROUGH A CRATE-ROOT RE-EXPORT: {r}", file=sys.stderr)
    if cycles or reexports:
        return 1
    print("no cycle between top-level modules, no import through crate-root re-exports")
    return 0


if __name__ == "__main__":
    sys.exit(main())
