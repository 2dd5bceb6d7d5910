#!/usr/bin/env python3
"""Chaos run for routing (issue 5): three deployments behind one model — one healthy, one failing
a share of its requests at random, one slow — driven at a fixed rate through the gateway.

    python3 infra/bench/chaos.py                    # builds release binaries; 200 req/s for 60 s

Two phases, each a fixed-rate open loop with `oha` (latency-corrected):
  1. baseline: the model served by the healthy deployment alone;
  2. chaos: the same request to a model whose deployments are listed failing first, slow second,
     healthy last (the order a careless config would use), ranked by the `latency` strategy.
Every deployment answers after the same simulated service time (`--service-ms`, default 50 ms, a
fast provider); the slow one after `--slow-ms` (default 600 ms); the failing one fails
`--fail-pct` percent (default 30) with a 503 after its service time. It prints the success rate
and latency percentiles of both phases, p99(chaos) / p99(baseline), the gateway's CPU per request
and peak RSS, and the deployments' state from the admin API at the end. Raw results go to
infra/bench/results/ (git-ignored).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (spawn, oha, cpu_seconds, peak RSS helpers)

ROOT = bench.ROOT

CONFIG = """
[server]
host = "127.0.0.1"
port = 0
workers = {workers}

[database]
url = "sqlite:{db}"

[log]
level = "warn"

[routing]
strategy = "latency"

[providers.mock]
preset = "mock"
base_url = "{mock}/v1"

[deployments.healthy]
provider = "mock"
model = "mock-gpt@latency={service}"
region = "local"

[deployments.failing]
provider = "mock"
model = "mock-gpt@latency={service},fail=503,fail_pct={fail_pct}"
region = "local"

[deployments.slow]
provider = "mock"
model = "mock-gpt@latency={slow}"
region = "local"

[models.baseline]
deployments = ["healthy"]

[models.chaos]
deployments = ["failing", "slow", "healthy"]
"""


def summarize(result):
    codes = result.get("statusCodeDistribution", {})
    ok = sum(v for k, v in codes.items() if k == "200")
    errors = {k: v for k, v in result.get("errorDistribution", {}).items() if k != "aborted due to deadline"}
    total = sum(codes.values()) + sum(errors.values())
    p = lambda q: result["latencyPercentiles"][q] * 1000
    return {
        "requests": total,
        "ok": ok,
        "success_rate": ok / total if total else float("nan"),
        "status_codes": codes,
        "errors": errors,
        "p50_ms": p("p50"),
        "p90_ms": p("p90"),
        "p99_ms": p("p99"),
        "rps": result["summary"]["requestsPerSec"],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=200, help="req/s (default 200)")
    ap.add_argument("--duration", type=int, default=60, help="seconds per phase (default 60)")
    ap.add_argument("--service-ms", type=int, default=50)
    ap.add_argument("--slow-ms", type=int, default=600)
    ap.add_argument("--fail-pct", type=int, default=30)
    ap.add_argument("--workers", type=int, default=1, help="gateway worker threads (default 1)")
    ap.add_argument("--no-build", action="store_true", help="use the existing release binaries")
    args = ap.parse_args()
    if not shutil.which("oha"):
        sys.exit("oha is not installed: cargo install oha --locked")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "tollgate", "-p", "mock-provider"], cwd=ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"

    tmp = tempfile.mkdtemp(prefix="tollgate-chaos-")
    mock, mock_url = bench.spawn([str(target / "mock-provider"), "--port", "0", "--workers", "2"])
    cfg = Path(tmp) / "tollgate.toml"
    cfg.write_text(CONFIG.format(workers=args.workers, db=Path(tmp) / "chaos.db", mock=mock_url,
                                 service=args.service_ms, slow=args.slow_ms, fail_pct=args.fail_pct))
    env = dict(os.environ, TOLLGATE_OPERATOR_KEY=bench.KEY, TOLLGATE_JWT_SECRET="bench-jwt-secret-0123456789abcdef0123")
    env.pop("TOLLGATE_DATABASE_URL", None)
    env.pop("TOLLGATE_REDIS_URL", None)
    gw, gw_url = bench.spawn([str(target / "tollgate"), "serve", "--config", str(cfg)], env)
    auth = [f"Authorization: Bearer {bench.KEY}"]
    conns = max(64, args.rate // 2)
    phases = {}
    try:
        for name in ("baseline", "chaos"):
            bench.reset_peak_rss(gw.pid)
            cpu0 = bench.cpu_seconds(gw.pid)
            raw = bench.oha(f"{gw_url}/v1/chat/completions", bench.body(name, False), args.duration, args.rate,
                            conns, auth)
            cpu = bench.cpu_seconds(gw.pid)
            s = summarize(raw)
            s["cpu_us_per_req"] = (cpu - cpu0) / max(s["requests"], 1) * 1e6
            s["peak_rss_mib"] = bench.peak_rss_mib(gw.pid)
            s["raw"] = raw
            phases[name] = s
            print(f"{name}: {s['ok']}/{s['requests']} ok ({s['success_rate'] * 100:.3f}%), p50 {s['p50_ms']:.1f} ms, "
                  f"p90 {s['p90_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, {s['cpu_us_per_req']:.0f} µs CPU/req",
                  file=sys.stderr, flush=True)
        token = subprocess.run([str(target / "tollgate"), "--config", str(cfg), "token", "--subject", "chaos",
                                "--role", "viewer"], env=env, check=True, capture_output=True, text=True).stdout.strip()
        req = urllib.request.Request(f"{gw_url}/admin/api/deployments", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req) as res:
            deployments = json.load(res)["data"]
    finally:
        gw.terminate()
        gw.wait(timeout=30)
        stats = json.load(urllib.request.urlopen(f"{mock_url}/mock/stats"))
        mock.terminate()
        mock.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)

    base, chaos = phases["baseline"], phases["chaos"]
    print(f"\n{args.rate} req/s for {args.duration} s each; service {args.service_ms} ms, slow {args.slow_ms} ms, "
          f"failing {args.fail_pct}%\n")
    print("| phase | requests | success | p50 | p90 | p99 | CPU µs/req | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, s in phases.items():
        print(f"| {name} | {s['requests']:,} | {s['success_rate'] * 100:.3f}% | {s['p50_ms']:.1f} ms | "
              f"{s['p90_ms']:.1f} ms | {s['p99_ms']:.1f} ms | {s['cpu_us_per_req']:.0f} | {s['peak_rss_mib']:.1f} MiB |")
    ratio = chaos["p99_ms"] / base["p99_ms"]
    print(f"\np99 chaos / baseline: {ratio:.2f}×  (target ≤ 2×); success {chaos['success_rate'] * 100:.3f}% "
          f"(target ≥ 99.9%)")
    print("\n| deployment | health | circuit | times opened | window attempts | window failures | ttft p50 | samples |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for d in deployments:
        print(f"| {d['name']} | {d['health']} | {d['circuit']['state']} | {d['times_opened']} | "
              f"{d['window_attempts']} | {d['window_failures']} | {d['latency']['ttft_ms_p50']} | "
              f"{d['latency']['samples']} |")
    print(f"\nmock saw by model: {json.dumps(stats.get('by_model', {}))}")
    out_dir = ROOT / "infra" / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / time.strftime("chaos-%Y%m%d-%H%M%S.json")
    out.write_text(json.dumps({"args": vars(args), "phases": phases, "deployments": deployments}, indent=1))
    print(f"raw results: {out.relative_to(ROOT)}")
    ok = chaos["success_rate"] >= 0.999 and ratio <= 2.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
