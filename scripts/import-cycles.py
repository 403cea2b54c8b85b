#!/usr/bin/env python3
"""Lists import cycles between the files of each crate's src/.

A file depends on another when it names a path into it (`crate::a::b`,
`super::x`, or a `use` of those). Tests (`#[cfg(test)]` modules at the end
of a file) are left out: they may use the whole crate. Exits 1 if a cycle
spans more than MAX files (docs/ARCHITECTURE.md: dependencies point one
way; a pair that names each other is tolerated).

    python3 scripts/import-cycles.py [crate-dir ...]
"""

import re
import sys
from pathlib import Path

MAX = 2
CRATES = [".", "omen-files", "omen-learned", "omen-rowstore", "omen-colstore", "omen-tier", "omen-sync", "omen-sql"]


def module_files(src: Path) -> dict[tuple[str, ...], Path]:
    """Module path (as a tuple) -> file, for every .rs file under src."""
    modules = {}
    for f in src.rglob("*.rs"):
        parts = list(f.relative_to(src).with_suffix("").parts)
        if parts[-1] == "mod" or parts == ["lib"] or parts == ["main"]:
            parts = parts[:-1]
        modules[tuple(parts)] = f
    return modules


def code_of(f: Path) -> str:
    text = f.read_text()
    cut = text.find("#[cfg(test)]")
    text = text if cut < 0 else text[:cut]
    # Comments name files without depending on them.
    return "\n".join(line.split("//")[0] for line in text.splitlines())


def paths_in(code: str) -> list[list[str]]:
    """Every crate:: / super:: path, with `use a::{b, c::d}` groups expanded."""
    out = []
    for m in re.finditer(r"\b(crate|super|self)((?:::\w+)+)(::\{)?", code):
        head = [m.group(1)] + m.group(2).strip(":").split("::")
        if m.group(3):
            depth, i = 1, m.end()
            while depth and i < len(code):
                depth += {"{": 1, "}": -1}.get(code[i], 0)
                i += 1
            for item in re.split(r",", re.sub(r"\{[^{}]*\}", "", code[m.end() : i - 1])):
                item = item.strip().split(" as ")[0]
                if item and item != "self":
                    out.append(head + item.split("::"))
        out.append(head)
    return out


def resolve(path: list[str], here: tuple[str, ...], is_mod_file: bool, modules) -> tuple[str, ...] | None:
    if path[0] == "crate":
        base, rest = (), path[1:]
    else:
        base = here if is_mod_file else here[:-1]
        rest = path[1:]
        if path[0] == "super":
            base = base[:-1]
    best = None
    for n in range(len(rest) + 1):
        cand = base + tuple(rest[:n])
        if cand in modules:
            best = cand
    return best


def cycles(crate: Path) -> list[list[str]]:
    src = crate / "src"
    modules = module_files(src)
    graph: dict[tuple, set] = {m: set() for m in modules}
    for m, f in modules.items():
        is_mod_file = f.name in ("mod.rs", "lib.rs", "main.rs")
        for p in paths_in(code_of(f)):
            target = resolve(p, m, is_mod_file, modules)
            # A module's own mod.rs re-exporting its children is not a dependency back.
            if target is not None and target != m and not (is_mod_file and target[: len(m)] == m):
                graph[m].add(target)
    # Tarjan's strongly connected components.
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(str(modules[w].relative_to(crate)))
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    crates = sys.argv[1:] or CRATES
    worst = 0
    for c in crates:
        for comp in cycles(root / c):
            worst = max(worst, len(comp))
            print(f"{c}: cycle of {len(comp)} files: {', '.join(comp)}")
    print(f"largest import cycle: {worst} files (limit {MAX})")
    return 1 if worst > MAX else 0


if __name__ == "__main__":
    sys.exit(main())
