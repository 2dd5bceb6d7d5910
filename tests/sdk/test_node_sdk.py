"""The official OpenAI Node SDK (npm `openai`, pinned in tests/node/package.json) against the same
gateway: runs tests/node/sdk.test.mjs with `node --test`. Needs `node` (18 or later) and the
package installed (`npm ci --prefix tests/node`); without them this test fails and says so."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from conftest import OPERATOR_KEY, Stack

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def test_node_sdk(stack: Stack) -> None:
    node = shutil.which("node")
    assert node, "node is not installed (Debian: apt-get install nodejs npm)"
    assert (NODE_DIR / "node_modules" / "openai").is_dir(), "run `npm ci --prefix tests/node` first"
    env = dict(os.environ, TOLLGATE_BASE_URL=stack.base_url, TOLLGATE_KEY=OPERATOR_KEY)
    run = subprocess.run([node, "--test", "--test-reporter=tap", "sdk.test.mjs"], cwd=NODE_DIR, env=env, text=True,
                         capture_output=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "# fail 0" in run.stdout and "# pass 3" in run.stdout, run.stdout
