#!/usr/bin/env python3
"""Lists import cycles between the crate's top-level modules.

    python3 scripts/module_cycles.py            # prints the module graph; exit 1 on a cycle

A top-level module is `src/<name>.rs` together with everything under `src/<name>/`
(a module and its children are one unit: a child naming its parent's types is how a
module is split across files, not a layering problem). Every path a file names is
resolved to the module it points into: `crate::a::...`, `super::...` and `self::...`
(relative to the file's own module), in `use` trees (nested groups included) and in
code. An edge A -> B means a file of A names something inside B.

Also fails when a module names an item of the crate root (`crate::Error`,
`crate::keystore`, or `super::Item` from a top-level module): the root only re-exports,
and such an import hides which module it depends on.

`lib.rs` (the crate root) and `src/bin/` are left out. Comment lines and `#[cfg(test)]`
test modules are ignored, since test code may reach anywhere. Reads source text only: no
build needed.
"""

import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"


def module_path(path: pathlib.Path) -> list[str] | None:
    rel = path.relative_to(SRC)
    if rel.parts[0] == "bin" or rel.as_posix() == "lib.rs":
        return None
    return [p.removesuffix(".rs") for p in rel.parts]


def strip(text: str) -> str:
    """Drops `#[cfg(test)] mod ... { ... }` blocks, line comments and string literals."""
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
        code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', line.split("//", 1)[0])
        out.append(code)
        i += 1
    return "\n".join(out)


def use_paths(tree: str, prefix: list[str]) -> list[list[str]]:
    """Expands a `use` tree (`a::b::{c, d::{e}}`) into full paths."""
    tree = tree.strip()
    if not tree:
        return []
    depth = 0
    for i, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                head = [p for p in tree[:i].split("::") if p]
                inner = tree[i + 1 : tree.rindex("}")]
                parts, d, start = [], 0, 0
                for j, c in enumerate(inner):
                    if c == "{":
                        d += 1
                    elif c == "}":
                        d -= 1
                    elif c == "," and d == 0:
                        parts.append(inner[start:j])
                        start = j + 1
                parts.append(inner[start:])
                out = []
                for p in parts:
                    out += use_paths(p, prefix + head)
                return out
            depth += 1
    name = tree.split(" as ")[0].strip()
    return [prefix + [p for p in name.split("::") if p]]


def resolve(path: list[str], here: list[str]) -> list[str] | None:
    """An absolute module path (from the crate root) for a `crate`/`super`/`self` path."""
    if not path or path[0] not in ("crate", "super", "self"):
        return None
    base: list[str] = []
    rest = path
    if rest[0] == "crate":
        base, rest = [], rest[1:]
    else:
        base = list(here)
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                base = base[:-1]
            rest = rest[1:]
    return base + rest


def main() -> int:
    files = sorted(SRC.rglob("*.rs"))
    modules = sorted({m[0] for f in files if (m := module_path(f))})
    edges: dict[str, set[str]] = {m: set() for m in modules}
    root_items: list[str] = []
    for f in files:
        here = module_path(f)
        if here is None:
            continue
        text = strip(f.read_text())
        paths: list[list[str]] = []
        for m in re.finditer(r"\buse\s+((?:crate|super|self)\b[^;]*);", text, re.S):
            paths += use_paths(re.sub(r"\s+", " ", m.group(1)), [])
        code = re.sub(r"\buse\s+[^;]*;", "", text, flags=re.S)
        for m in re.finditer(r"\b(?:crate|super|self)(?:::\w+)+", code):
            paths.append(m.group(0).split("::"))
        for p in paths:
            target = resolve(p, here)
            if target is None:
                continue
            if not target:
                continue
            top = target[0]
            if top in edges:
                if top != here[0]:
                    edges[here[0]].add(top)
            else:
                root_items.append(f"{f.relative_to(SRC.parent)}: {'::'.join(p)}")

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
    for r in sorted(set(root_items)):
        print(f"NAMES A CRATE-ROOT ITEM (import it from its module): {r}", file=sys.stderr)
    if cycles or root_items:
        return 1
    print("no cycle between top-level modules, no import of crate-root items")
    return 0


if __name__ == "__main__":
    sys.exit(main())
