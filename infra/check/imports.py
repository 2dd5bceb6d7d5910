#!/usr/bin/env python3
"""Fail when a crate's source files import each other in a circle.

Cargo already refuses circles between crates; this script looks inside each crate of the workspace.
Every source file is a node (`foo.rs`, `foo/mod.rs`, `lib.rs`, ...); file A depends on file B when
A names an item of B's module, by a `use` or by a path in code (`crate::b::X`, `super::X`, `b::X` for
a child module `b`). Test code (`#[cfg(test)]` modules and files only reached through them) is left
out: a test module importing its parent is not a design circle. Declaring `mod b;` is not an edge.

Prints every strongly connected component of more than one file and exits 1 if there is one.
Usage: python3 infra/check/imports.py [--graph] [--root WORKSPACE]   (tests: infra/check/test_checks.py)
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if "--root" in sys.argv:  # another workspace (the checker's own test builds one)
    ROOT = Path(sys.argv[sys.argv.index("--root") + 1]).resolve()


def strip_comments_and_strings(src: str) -> str:
    """Blank out comments, string and char literals (keeping newlines), so paths in them are not read."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', src[i:i + 8]) and not (i and (src[i - 1].isalnum() or src[i - 1] == "_")):
            hashes = re.match(r"r(#*)\"", src[i:]).group(1)
            end = src.find('"' + hashes, i + 2 + len(hashes))
            end = n if end < 0 else end + 1 + len(hashes)
            out.append(re.sub(r"[^\n]", " ", src[i:end]))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append(re.sub(r"[^\n]", " ", src[i:j + 1]))
            i = j + 1
        elif c == "'":
            # a char literal ('a', '\n', '\u{..}') or a lifetime ('a): only blank the literal
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", src[i:i + 12])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching_brace(src: str, open_at: int) -> int:
    depth = 0
    for j in range(open_at, len(src)):
        if src[j] == "{":
            depth += 1
        elif src[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(src)


CFG_TEST_MOD = re.compile(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*([;{])")
MOD_DECL = re.compile(r"(?:#\[path\s*=[^\]]*\]\s*)?(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;")


def remove_test_code(src: str) -> tuple[str, set[str]]:
    """Drop inline `#[cfg(test)] mod x { .. }` bodies; return the names of `#[cfg(test)] mod x;` files."""
    test_mods: set[str] = set()
    while True:
        m = CFG_TEST_MOD.search(src)
        if not m:
            return src, test_mods
        if m.group(2) == ";":
            test_mods.add(m.group(1))
            src = src[:m.start()] + " " * (m.end() - m.start()) + src[m.end():]
        else:
            end = matching_brace(src, m.end() - 1)
            src = src[:m.start()] + re.sub(r"[^\n]", " ", src[m.start():end + 1]) + src[end + 1:]


class Crate:
    def __init__(self, name: str, src_dir: Path, roots: list[Path]):
        self.name = name
        self.src_dir = src_dir
        self.files: dict[tuple[str, ...], Path] = {}  # module path -> file
        self.code: dict[tuple[str, ...], str] = {}
        for root in roots:
            self.load(root, ())

    def load(self, file: Path, module: tuple[str, ...]) -> None:
        if module in self.files:
            return
        src, test_mods = remove_test_code(strip_comments_and_strings(file.read_text()))
        self.files[module] = file
        self.code[module] = src
        directory = file.parent if file.name in ("mod.rs", "lib.rs", "main.rs") else file.with_suffix("")
        for m in MOD_DECL.finditer(src):
            name = m.group(1)
            if name in test_mods:
                continue
            for candidate in (directory / f"{name}.rs", directory / name / "mod.rs"):
                if candidate.exists():
                    self.load(candidate, module + (name,))
                    break

    def children(self, module: tuple[str, ...]) -> set[str]:
        return {m[-1] for m in self.files if len(m) == len(module) + 1 and m[:-1] == module}

    def resolve(self, module: tuple[str, ...], segments: list[str]) -> tuple[str, ...] | None:
        """The deepest file-backed module a path names, or None for paths outside the crate."""
        if not segments:
            return None
        first = segments[0]
        if first == "crate":
            base, rest = (), segments[1:]
        elif first == "self":
            base, rest = module, segments[1:]
        elif first == "super":
            base, rest = module, segments
            while rest and rest[0] == "super":
                base, rest = base[:-1], rest[1:]
        elif first in self.children(module):
            base, rest = module, segments
        else:
            return None
        for seg in rest:
            if base + (seg,) in self.files:
                base = base + (seg,)
            else:
                break
        return base

    def edges(self) -> dict[tuple[str, ...], set[tuple[str, ...]]]:
        graph: dict[tuple[str, ...], set[tuple[str, ...]]] = {m: set() for m in self.files}
        for module, src in self.code.items():
            for path in paths_in(src):
                target = self.resolve(module, path)
                if target is not None and target != module:
                    graph[module].add(target)
        return graph


USE = re.compile(r"\buse\s+([^;]+);")
PATH = re.compile(r"\b((?:crate|super|self|[a-z_][a-z0-9_]*)(?:\s*::\s*(?:super|[A-Za-z_][A-Za-z0-9_]*))+)")


def expand_use(tree: str, prefix: list[str]) -> list[list[str]]:
    """`a::{b::C, d}` -> [[a, b, C], [a, d]]."""
    tree = tree.strip()
    if not tree:
        return []
    brace = tree.find("{")
    if brace < 0:
        segs = [s.strip() for s in tree.split(" as ")[0].split("::") if s.strip()]
        return [prefix + segs]
    head = [s.strip() for s in tree[:brace].split("::") if s.strip()]
    inner = tree[brace + 1:tree.rfind("}")]
    parts, depth, start = [], 0, 0
    for i, c in enumerate(inner):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    result = []
    for part in parts:
        part = part.strip()
        if part == "self":
            result.append(prefix + head)
        elif part:
            result.extend(expand_use(part, prefix + head))
    return result


def paths_in(src: str) -> list[list[str]]:
    found = []
    for m in USE.finditer(src):
        found.extend(expand_use(m.group(1).replace("\n", " "), []))
    without_uses = USE.sub(" ", src)
    for m in PATH.finditer(without_uses):
        found.append([s.strip() for s in m.group(1).split("::")])
    return found


def strongly_connected(graph):
    index, low, on_stack, stack, result = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        work = [(v, iter(sorted(graph[v])))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, successors = work[-1]
            advanced = False
            for w in successors:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    advanced = True
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == node:
                        break
                if len(component) > 1:
                    result.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def workspace_crates() -> list[Crate]:
    manifest = tomllib.loads((ROOT / "Cargo.toml").read_text())
    crates = []
    for member in manifest["workspace"]["members"]:
        src = ROOT / member / "src"
        roots = [p for p in (src / "lib.rs", src / "main.rs") if p.exists()]
        # lib.rs and main.rs are separate crates when both exist
        for root in roots:
            crates.append(Crate(f"{member}:{root.name}", src, [root]))
    return crates


def main() -> int:
    show_graph = "--graph" in sys.argv
    circles = 0
    for crate in workspace_crates():
        graph = crate.edges()
        name = lambda m: str(crate.files[m].relative_to(ROOT))
        if show_graph:
            for m in sorted(graph):
                for t in sorted(graph[m]):
                    print(f"{name(m)} -> {name(t)}")
        for component in strongly_connected(graph):
            circles += 1
            print(f"circle in {crate.name} ({len(component)} files):")
            members = set(component)
            for m in component:
                inside = sorted(name(t) for t in graph[m] if t in members)
                print(f"  {name(m)} -> {', '.join(inside)}")
    if circles:
        print(f"{circles} import circle(s): move the names to where they belong (see README, Architecture)")
        return 1
    print(f"no import circles in {len(workspace_crates())} crate roots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
