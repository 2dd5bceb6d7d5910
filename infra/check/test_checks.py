#!/usr/bin/env python3
"""The house checkers catch what they are for: a circle between two files, a parent and child
importing each other, a function over the limit; and pass a tree without them. Run by .ci/run."""

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def workspace(files: dict[str, str]) -> Path:
    root = Path(tempfile.mkdtemp())
    (root / "Cargo.toml").write_text('[workspace]\nmembers = ["services/demo"]\n')
    for name, text in files.items():
        path = root / "services" / "demo" / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def run(script: str, root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HERE / script), "--root", str(root)],
                          capture_output=True, text=True)


def expect(ok: bool, what: str, result: subprocess.CompletedProcess) -> None:
    if (result.returncode == 0) != ok:
        sys.exit(f"FAIL: {what}: exit {result.returncode}\n{result.stdout}{result.stderr}")
    print(f"ok: {what}")


LIB = "mod a;\nmod b;\nmod p;\n"
clean = workspace({
    "lib.rs": LIB,
    "a.rs": "use crate::b::B;\npub struct A(B);\n",
    "b.rs": "pub struct B;\n#[cfg(test)]\nmod tests { use crate::a::A; }\n",
    "p/mod.rs": "mod c;\npub use c::C;\n",
    "p/c.rs": "pub struct C;\n",
})
expect(True, "a tree without circles passes", run("imports.py", clean))
circle = workspace({
    "lib.rs": LIB,
    "a.rs": "use crate::b::B;\npub struct A(B);\n",
    "b.rs": "pub fn f() -> Option<crate::a::A> { None }\n",
    "p/mod.rs": "mod c;\n",
    "p/c.rs": "",
})
expect(False, "two files naming each other fail", run("imports.py", circle))
parent = workspace({
    "lib.rs": LIB,
    "a.rs": "",
    "b.rs": "",
    "p/mod.rs": "mod c;\npub use c::C;\npub struct P;\n",
    "p/c.rs": "use super::P;\npub struct C(P);\n",
})
expect(False, "a parent and a child importing each other fail", run("imports.py", parent))
long_fn = "pub fn f() {\n" + "    let _ = 1;\n" * 70 + "}\n"
sizes = workspace({"lib.rs": long_fn})
expect(False, "a 72-line function fails the size check", run("sizes.py", sizes))
expect(True, "a short function passes", run("sizes.py", workspace({"lib.rs": "pub fn f() {}\n"})))
