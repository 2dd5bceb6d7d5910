#!/usr/bin/env python3
"""Tollgate benchmark harness: the gateway against the mock provider, and the mock directly.

One command (from the repository root):

    python3 infra/bench/bench.py            # builds release binaries, runs every phase

For each phase it drives the mock provider directly (the floor) and then through the gateway,
with `oha` (a Rust load generator from crates.io: `cargo install oha --locked`):
  * fixed request rates, open loop with latency correction (500 and 2000 req/s by default),
  * fixed concurrency, closed loop (64 connections): the maximum throughput,
for non-streaming and streaming chat completions. It prints added latency (gateway minus direct)
at p50/p90/p99, requests/s, the gateway's CPU time per request (from /proc/PID/stat) and its peak
RSS (VmHWM, reset before each phase through /proc/PID/clear_refs). Raw oha output is kept in
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLK_TCK = os.sysconf("SC_CLK_TCK")
KEY = "tg-bench-operator-key"

CONFIG = """
[server]
host = "127.0.0.1"
port = 0
workers = {workers}

[database]
url = "sqlite:{db}"

[log]
level = "warn"

[providers.mock]
preset = "mock"
base_url = "{mock}/v1"

[deployments.mock]
provider = "mock"
model = "mock-gpt"
region = "local"

[models.bench]
deployments = ["mock"]
"""


def body(model, stream):
    b = {"model": model, "max_tokens": 16,
         "messages": [{"role": "user", "content": "Say hello to the benchmark harness please"}]}
    if stream:
        b["stream"] = True
    return json.dumps(b)


def spawn(cmd, env=None):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    line = p.stdout.readline().strip()
    if "listening on" not in line:
        p.kill()
        sys.exit(f"{cmd[0]} did not start: {line!r}")
    return p, line.rsplit(" ", 1)[-1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def reset_peak_rss(pid):
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def redis_stats(url):
    """(CPU seconds used by redis-server, EVAL/EVALSHA calls so far), from INFO over redis-cli."""
    if not url or not shutil.which("redis-cli"):
        return None
    out = subprocess.run(["redis-cli", "-u", url, "info", "all"], capture_output=True, text=True).stdout
    cpu, calls = 0.0, 0
    for line in out.splitlines():
        if line.startswith(("used_cpu_sys:", "used_cpu_user:")):
            cpu += float(line.split(":", 1)[1])
        elif line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
            calls += int(line.split("calls=", 1)[1].split(",", 1)[0])
    return cpu, calls


def postgres_cpu_seconds():
    """CPU seconds used so far by every running `postgres` process (server and backends)."""
    total = 0.0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if (d / "comm").read_text().strip() != "postgres":
                continue
            total += cpu_seconds(d.name)
        except OSError:
            continue
    return total


def machine_busy_seconds():
    """CPU seconds the whole machine spent not idle (every core, every process), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


STEPS = {"auth": "tollgate_auth_duration_seconds",
         "admission": "tollgate_admission_duration_seconds",
         "budget_hold": "tollgate_budget_hold_duration_seconds",
         "metering_commit": "tollgate_metering_commit_wait_seconds"}


def scrape_steps(gw_url, token):
    """The gateway's step histograms from `GET /metrics`: {step: [(upper bound s, cumulative count)]},
    or None when the binary has no /metrics (an older build)."""
    import urllib.error
    import urllib.request
    req = urllib.request.Request(f"{gw_url}/metrics", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req) as res:
            text = res.read().decode()
    except urllib.error.HTTPError:
        return None
    steps = {}
    for step, name in STEPS.items():
        buckets = []
        for line in text.splitlines():
            if line.startswith(name + "_bucket{le=\""):
                le, count = line[len(name) + 12:].split("\"} ")
                buckets.append((float("inf") if le == "+Inf" else float(le), int(count)))
        steps[step] = buckets
    return steps


def step_quantiles(before, after):
    """{step: {"n", "p50_ms", "p99_ms"}} over what the phase observed; a quantile is the upper bound
    of the bucket it falls in (a bound, not an interpolation)."""
    if not before or not after:
        return None
    out = {}
    for step in STEPS:
        delta = [(le, a - b) for (le, a), (_, b) in zip(after[step], before[step])]
        n = delta[-1][1] if delta else 0
        q = lambda f: next((le * 1000 for le, c in delta if c >= f * n), float("nan")) if n else None
        out[step] = {"n": n, "p50_ms": q(0.5), "p99_ms": q(0.99)}
    return out


def oha(url, payload, duration, rate, conns, headers):
    cmd = ["oha", "-z", f"{duration}s", "-c", str(conns), "--no-tui", "--output-format", "json",
           "-m", "POST", "-T", "application/json", "-d", payload]
    if rate:
        cmd += ["-q", str(rate), "--latency-correction"]
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run(cmd + [url], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def count_ok(result):
    return sum(v for k, v in result.get("statusCodeDistribution", {}).items() if k == "200")


def tenant_key(gateway, cfg, env, gw_url, billing=False):
    """A tenant and key with every limit set (high enough never to refuse), via the admin API; with
    `billing`, also daily/monthly/total spend limits and a postpaid credit limit (so every request
    takes a budget hold and settles it)."""
    import urllib.request
    token = subprocess.run([gateway, "--config", str(cfg), "token", "--subject", "bench",
                            "--role", "admin"], env=env, check=True, capture_output=True, text=True).stdout.strip()
    limits = {"requests_per_minute": 100_000_000, "tokens_per_minute": 100_000_000_000, "max_concurrent": 100_000}
    tenant_fields = {}
    if billing:
        limits.update({"daily_spend_usd": "1000000", "monthly_spend_usd": "1000000", "total_spend_usd": "1000000"})
        tenant_fields = {"billing_mode": "postpaid", "credit_limit_units": 10**18, "markup_percent": "10"}

    def post(path, body):
        req = urllib.request.Request(f"{gw_url}/admin/api{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "content-type": "application/json"})
        with urllib.request.urlopen(req) as res:
            return json.load(res)

    tenant = post("/tenants", {"name": "bench", "limits": limits, **tenant_fields})
    return post(f"/tenants/{tenant['id']}/keys", {"name": "bench", "limits": limits})["key"]


def prepare(target, args, workers, mock_workers, prefix):
    """A temp dir, the mock provider started, the gateway's configuration and environment (`args`:
    redis, database, billing, gateway_bin), and, with billing, the demo prices imported. Returns
    (tmp, mock process, mock url, config path, env, gateway binary)."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    mock, mock_url = spawn([str(target / "mock-provider"), "--port", "0", "--workers", str(mock_workers)])
    cfg = Path(tmp) / "tollgate.toml"
    cfg.write_text(CONFIG.format(workers=workers, db=Path(tmp) / "bench.db", mock=mock_url))
    env = dict(os.environ, TOLLGATE_OPERATOR_KEY=KEY, TOLLGATE_JWT_SECRET="bench-jwt-secret-0123456789abcdef0123")
    env.pop("TOLLGATE_DATABASE_URL", None)
    env.pop("TOLLGATE_REDIS_URL", None)
    if args.redis:
        env["TOLLGATE_REDIS_URL"] = args.redis
    if args.database:
        env["TOLLGATE_DATABASE_URL"] = args.database
    gateway = args.gateway_bin or str(target / "tollgate")
    if args.billing:
        # The measured binary runs the commands too: it migrates the database to its own schema.
        subprocess.run([gateway, "--config", str(cfg), "prices", "import", "--from", "none",
                        "--overrides", str(ROOT / "infra" / "demo" / "prices.toml")], env=env, check=True,
                       capture_output=True)
    return tmp, mock, mock_url, cfg, env, gateway


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per phase (default 10)")
    ap.add_argument("--rates", default="500,2000",
                    help="open-loop rates, req/s (default 500,2000; empty: only the closed-loop phase)")
    ap.add_argument("--connections", type=int, default=64, help="closed-loop connections (default 64)")
    ap.add_argument("--workers", type=int, default=1, help="gateway worker threads (default 1)")
    ap.add_argument("--mock-workers", type=int, default=1)
    ap.add_argument("--only", choices=["plain", "stream"], help="run one kind only")
    ap.add_argument("--no-build", action="store_true", help="use the existing release binaries")
    ap.add_argument("--auth", choices=["operator", "tenant"], default="operator",
                    help="authenticate with the operator key (no admission) or a tenant key whose key and "
                         "tenant have requests/min, tokens/min and concurrency limits (never reached)")
    ap.add_argument("--redis", metavar="URL", help="keep admission state in this Redis (with --auth tenant); "
                                                  "also reports Redis's CPU and script calls per request")
    ap.add_argument("--database", metavar="URL", help="database URL (default: a SQLite file in a temp dir)")
    ap.add_argument("--billing", action="store_true",
                    help="price the model (infra/demo/prices.toml imported first) and, with --auth tenant, give the "
                         "tenant and key spend limits and a credit limit: every request is held, settled and posted")
    ap.add_argument("--gateway-bin", metavar="PATH", help="gateway binary to measure (default: the release build)")
    args = ap.parse_args()

    if not shutil.which("oha"):
        sys.exit("oha is not installed: cargo install oha --locked")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "tollgate", "-p", "mock-provider"], cwd=ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"

    tmp, mock, mock_url, cfg, env, gateway = prepare(target, args, args.workers, args.mock_workers, "tollgate-bench-")
    gw, gw_url = spawn([gateway, "serve", "--config", str(cfg)], env)
    auth = [f"Authorization: Bearer {KEY}"]
    viewer = subprocess.run([gateway, "--config", str(cfg), "token", "--subject", "bench-metrics",
                             "--role", "viewer"], env=env, check=True, capture_output=True, text=True).stdout.strip()
    if args.auth == "tenant":
        auth = [f"Authorization: Bearer {tenant_key(gateway, cfg, env, gw_url, args.billing)}"]

    pg = bool(args.database and args.database.startswith("postgres"))
    phases = []
    kinds = [k for k in ("plain", "stream") if args.only in (None, k)]
    rates = [int(r) for r in args.rates.split(",") if r]
    try:
        for kind in kinds:
            stream = kind == "stream"
            for rate in rates + [None]:
                conns = args.connections if rate is None else max(64, rate // 10)
                label = f"{'streaming' if stream else 'non-streaming'} @ " + (f"{rate} req/s" if rate else f"{conns} conns (max)")
                # Warm both paths (connection pools, allocator) before measuring.
                oha(f"{mock_url}/v1/chat/completions", body("mock-gpt", stream), 1, rate, conns, [])
                oha(f"{gw_url}/v1/chat/completions", body("bench", stream), 1, rate, conns, auth)
                direct = oha(f"{mock_url}/v1/chat/completions", body("mock-gpt", stream), args.duration, rate, conns, [])
                reset_peak_rss(gw.pid)
                cpu0 = cpu_seconds(gw.pid)
                redis0 = redis_stats(args.redis)
                steps0 = scrape_steps(gw_url, viewer)
                pg0 = postgres_cpu_seconds() if pg else None
                busy0 = machine_busy_seconds()
                via = oha(f"{gw_url}/v1/chat/completions", body("bench", stream), args.duration, rate, conns, auth)
                cpu1 = cpu_seconds(gw.pid)
                redis1 = redis_stats(args.redis)
                steps1 = scrape_steps(gw_url, viewer)
                pg1 = postgres_cpu_seconds() if pg else None
                busy1 = machine_busy_seconds()
                ok = count_ok(via)
                total = sum(via.get("statusCodeDistribution", {}).values())
                p = lambda r, q: r["latencyPercentiles"][q] * 1000  # ms
                row = {
                    "phase": label,
                    "direct_rps": direct["summary"]["requestsPerSec"],
                    "gateway_rps": via["summary"]["requestsPerSec"],
                    "gateway_ok": ok,
                    "gateway_non_200": total - ok,
                    "errors": via.get("errorDistribution", {}),
                    "added_p50_ms": p(via, "p50") - p(direct, "p50"),
                    "added_p90_ms": p(via, "p90") - p(direct, "p90"),
                    "added_p99_ms": p(via, "p99") - p(direct, "p99"),
                    "direct_p50_ms": p(direct, "p50"),
                    "direct_p99_ms": p(direct, "p99"),
                    "gateway_p50_ms": p(via, "p50"),
                    "gateway_p99_ms": p(via, "p99"),
                    "cpu_us_per_req": (cpu1 - cpu0) / max(ok, 1) * 1e6,
                    "peak_rss_mib": peak_rss_mib(gw.pid),
                    # Redis's own CPU and script calls per request (oha's requests still in flight
                    # at a phase's end count in Redis but not in `ok`: a slight overestimate).
                    "redis_cpu_us_per_req": (redis1[0] - redis0[0]) / max(ok, 1) * 1e6 if redis0 else None,
                    "redis_scripts_per_req": (redis1[1] - redis0[1]) / max(ok, 1) if redis0 else None,
                    # Postgres's CPU (all its processes) and the whole machine's busy CPU
                    # (oha and the mock included) per gateway request.
                    "postgres_cpu_us_per_req": (pg1 - pg0) / max(ok, 1) * 1e6 if pg else None,
                    "machine_cpu_us_per_req": (busy1 - busy0) / max(ok, 1) * 1e6,
                    # The gateway's own step timings (`GET /metrics`) over the phase.
                    "steps": step_quantiles(steps0, steps1),
                    "raw": {"direct": direct, "gateway": via},
                }
                phases.append(row)
                print(f"{label}: gateway {row['gateway_rps']:.0f} req/s, added p50 {row['added_p50_ms']:.3f} ms, "
                      f"p99 {row['added_p99_ms']:.3f} ms, {row['cpu_us_per_req']:.1f} µs CPU/req, "
                      f"non-200 {row['gateway_non_200']}", file=sys.stderr, flush=True)
    finally:
        gw.terminate()
        gw.wait(timeout=30)
        mock.terminate()
        mock.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)

    print("\n| phase | direct req/s | gateway req/s | added p50 | added p90 | added p99 | gateway p99 | CPU µs/req | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in phases:
        print(f"| {r['phase']} | {r['direct_rps']:,.0f} | {r['gateway_rps']:,.0f} | {r['added_p50_ms']:.3f} ms | "
              f"{r['added_p90_ms']:.3f} ms | {r['added_p99_ms']:.3f} ms | {r['gateway_p99_ms']:.3f} ms | "
              f"{r['cpu_us_per_req']:.1f} | {r['peak_rss_mib']:.1f} MiB |")
    if args.redis:
        print("\n| phase | Redis CPU µs/req | Redis scripts/req |")
        print("|---|---:|---:|")
        for r in phases:
            print(f"| {r['phase']} | {r['redis_cpu_us_per_req']:.1f} | {r['redis_scripts_per_req']:.2f} |")
    print("\n| phase | machine CPU µs/req |" + (" Postgres CPU µs/req |" if pg else ""))
    print("|---|---:|" + ("---:|" if pg else ""))
    for r in phases:
        extra = f" {r['postgres_cpu_us_per_req']:.1f} |" if pg else ""
        print(f"| {r['phase']} | {r['machine_cpu_us_per_req']:.1f} |{extra}")
    if any(r["steps"] and any(v["n"] for v in r["steps"].values()) for r in phases):
        print("\n| phase | " + " | ".join(f"{s} p50 / p99 (n)" for s in STEPS) + " |")
        print("|---|" + "---:|" * len(STEPS))
        fmt = lambda v: f"≤{v['p50_ms'] * 1000:.0f} / ≤{v['p99_ms'] * 1000:.0f} µs ({v['n']})" if v["n"] else "–"
        for r in phases:
            if r["steps"]:
                print(f"| {r['phase']} | " + " | ".join(fmt(r["steps"][s]) for s in STEPS) + " |")
    # oha reports requests still in flight when a timed phase ends as "aborted due to deadline":
    # not failures of the gateway.
    real_errors = lambda r: {k: v for k, v in r["errors"].items() if k != "aborted due to deadline"}
    bad = [r for r in phases if r["gateway_non_200"] or real_errors(r)]
    for r in bad:
        print(f"warning: {r['phase']}: {r['gateway_non_200']} non-200 responses, errors {real_errors(r)}")
    out_dir = ROOT / "infra" / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / time.strftime("bench-%Y%m%d-%H%M%S.json")
    out.write_text(json.dumps({"args": vars(args), "phases": phases}, indent=1))
    print(f"\nraw results: {out.relative_to(ROOT)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
