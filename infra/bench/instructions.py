#!/usr/bin/env python3
"""Instructions per request: the gateway under valgrind's callgrind, which counts user-space
instructions instead of timing them, so the figure repeats run after run whatever else the
machine is doing (kernel work, such as TCP and fsync, is not counted).

    python3 infra/bench/instructions.py --auth tenant --billing          # metering on SQLite
    python3 infra/bench/instructions.py --auth tenant --top 25           # where admission's go

It starts the mock provider and the gateway (release build, 1 worker, the bench's configuration),
sends warm-up requests with collection off, then counts the instructions of `--requests` more
(oha, `--concurrency` connections) and prints instructions per request; `--top N` also prints the
N functions with the most inclusive instructions (callgrind_annotate). Compare two builds or two
configurations by their per-request figures; background timers (the lease sweeper, the SQLite
checkpointer) run on wall-clock time and add a little that does not scale with requests.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the bench's configuration, tenant setup and process helpers)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000, help="counted requests (default 2000)")
    ap.add_argument("--warmup", type=int, default=300, help="uncounted requests first (default 300)")
    ap.add_argument("--concurrency", type=int, default=8, help="oha connections (default 8)")
    ap.add_argument("--stream", action="store_true", help="streaming requests")
    ap.add_argument("--auth", choices=["operator", "tenant"], default="operator")
    ap.add_argument("--billing", action="store_true", help="price the model and give the tenant spend limits")
    ap.add_argument("--redis", metavar="URL")
    ap.add_argument("--database", metavar="URL")
    ap.add_argument("--gateway-bin", metavar="PATH")
    ap.add_argument("--keep", metavar="FILE", help="copy the counted callgrind dump here (for callgrind_annotate)")
    ap.add_argument("--top", type=int, default=0, help="also print the N costliest functions (inclusive)")
    args = ap.parse_args()
    for tool in ("valgrind", "callgrind_control", "oha"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed")

    target = Path(os.environ.get("CARGO_TARGET_DIR", bench.ROOT / "target")) / "release"
    tmp, mock, mock_url, cfg, env, gateway = bench.prepare(target, args, 1, 1, "tollgate-instr-")
    out = Path(tmp) / "callgrind.out"
    gw, gw_url = bench.spawn(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                              gateway, "serve", "--config", str(cfg)], env)
    try:
        auth = [f"Authorization: Bearer {bench.KEY}"]
        if args.auth == "tenant":
            auth = [f"Authorization: Bearer {bench.tenant_key(gateway, cfg, env, gw_url, args.billing)}"]
        url = f"{gw_url}/v1/chat/completions"
        payload = bench.body("bench", args.stream)

        def load(n):
            cmd = ["oha", "-n", str(n), "-c", str(args.concurrency), "--no-tui", "--output-format", "json",
                   "-m", "POST", "-T", "application/json", "-d", payload]
            for h in auth:
                cmd += ["-H", h]
            res = subprocess.run(cmd + [url], check=True, capture_output=True, text=True).stdout
            return bench.count_ok(json.loads(res))

        load(args.warmup)
        subprocess.run(["callgrind_control", "-i", "on", str(gw.pid)], check=True, capture_output=True)
        ok = load(args.requests)
        subprocess.run(["callgrind_control", "-i", "off", str(gw.pid)], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "-d", str(gw.pid)], check=True, capture_output=True)
    finally:
        gw.terminate()
        gw.wait(timeout=60)
        mock.terminate()
        mock.wait(timeout=10)
    dumps = sorted(Path(tmp).glob("callgrind.out*"))
    total = 0
    for d in dumps:
        for line in d.read_text(errors="replace").splitlines():
            m = re.match(r"totals:\s+(\d+)", line)
            if m:
                total += int(m.group(1))
                break
    print(f"{ok} requests answered 200 of {args.requests}; {total:,} instructions; "
          f"{total / max(ok, 1):,.0f} instructions per request")
    biggest = max(dumps, key=lambda d: d.stat().st_size)
    if args.keep:
        shutil.copyfile(biggest, args.keep)
    if args.top:
        ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(biggest)],
                             capture_output=True, text=True).stdout
        lines = [l for l in ann.splitlines() if re.match(r"\s*[\d,]+ \(", l)]
        for l in lines[: args.top]:
            print(l[:200])
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok == args.requests else 1


if __name__ == "__main__":
    sys.exit(main())
