#!/usr/bin/env python3
"""Fail when a source file or a function grows past the house limits (issue 18).

- A source file may hold at most FILE_LIMIT lines of non-test code (inline `#[cfg(test)]` modules and
  files reached only through them do not count; comments and blank lines do).
- A function may span at most FN_LIMIT lines, signature to closing brace.

Only the workspace's own crates under services/ are checked; tests/, vendor/ and generated code are not.
Usage: python3 infra/check/sizes.py [--all]   (--all lists every file and function near a limit)
"""

from __future__ import annotations

import re
import sys

from imports import ROOT, matching_brace, workspace_crates

FILE_LIMIT = 500
FN_LIMIT = 60
FN = re.compile(r"\bfn\s+(\w+)\s*(?:<[^{;]*?>)?\s*\(")


def functions(src: str):
    """(name, first line, line count) of every fn with a body."""
    for m in FN.finditer(src):
        # the body opens at the first `{` after the signature that is not inside parentheses/generics
        depth, j = 0, m.end() - 1
        while j < len(src):
            c = src[j]
            if c in "(<[":
                depth += 1
            elif c in ")>]":
                depth -= 1 if not (c == ">" and src[j - 1] == "-") else 0
            elif c == ";" and depth <= 0:
                j = -1  # a declaration without a body
                break
            elif c == "{" and depth <= 0:
                break
            j += 1
        if j < 0 or j >= len(src):
            continue
        end = matching_brace(src, j)
        first = src.count("\n", 0, m.start()) + 1
        last = src.count("\n", 0, end) + 1
        yield m.group(1), first, last - first + 1


def main() -> int:
    show_all = "--all" in sys.argv
    problems = []
    seen = set()
    for crate in workspace_crates():
        if not crate.name.startswith("services/"):
            continue
        for module, file in crate.files.items():
            if file in seen:
                continue
            seen.add(file)
            code = crate.code[module]
            rel = file.relative_to(ROOT)
            lines = len(code.rstrip().splitlines())
            if lines > FILE_LIMIT or (show_all and lines > FILE_LIMIT * 0.8):
                problems.append((lines > FILE_LIMIT, f"{rel}: {lines} lines of non-test code (limit {FILE_LIMIT})"))
            for name, first, count in functions(code):
                if count > FN_LIMIT or (show_all and count > FN_LIMIT * 0.8):
                    problems.append((count > FN_LIMIT, f"{rel}:{first}: fn {name} is {count} lines (limit {FN_LIMIT})"))
    over = [text for bad, text in problems if bad]
    for bad, text in problems:
        if bad or show_all:
            print(("OVER " if bad else "near ") + text)
    if over:
        print(f"{len(over)} file(s)/function(s) over the limits: split them by concern")
        return 1
    print(f"every file is at most {FILE_LIMIT} lines and every function at most {FN_LIMIT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
