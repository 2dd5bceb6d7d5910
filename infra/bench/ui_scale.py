#!/usr/bin/env python3
"""The web UI's pages against a large SQLite store: how long each takes to serve.

    python3 infra/bench/ui_scale.py --gateway-bin target/release/tollgate            # 10M records
    python3 infra/bench/ui_scale.py --records 1000000 --db /tmp/ui-1m.db --reuse       # smaller, kept

It migrates a fresh SQLite database with the gateway itself, then seeds it straight in SQL (in
one transaction per table): `--tenants` tenants, `--keys` keys spread over them, and `--records`
request records over the last `--days` UTC days. Keys are drawn skewed, as traffic is (the key
index is `keys × u⁴` for a uniform u: a third of the records come from the first 1% of keys), each
record one of three models and two providers, one in fifty refused. The rollups (per day and key,
per day and model, per month and key) are then computed from the records with the migrations' own
backfill statements (the gateway's writers keep them so as they write).

It times every operator page (the usage explorer at its default ranges and groupings), the
portal's pages for a member of the busiest tenant, and then two reports over a range that is not
whole calendar months.

Then it starts the gateway on that database, signs an operator in, and fetches each page
`--runs` times after one warm-up, printing min / p50 / p90 / max milliseconds as the client sees
them on loopback (server time plus well under a millisecond). `--reuse` skips the seeding when the
database file exists.
"""
import argparse
import html
import http.cookiejar
import os
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DAY_MS = 86_400_000
MODELS = ["gpt-test", "gpt-big", "claude-test"]
PROVIDERS = ["mock", "mock-eu"]


def migrate(gateway: str, db: Path):
    env = dict(os.environ, TOLLGATE_DATABASE_URL=f"sqlite:{db}")
    env.pop("TOLLGATE_CONFIG", None)
    subprocess.run([gateway, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)


def seed(db: Path, tenants: int, keys: int, records: int, days: int):
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    now = int(time.time() * 1000)
    t0 = time.time()
    with con:
        con.executemany(
            "INSERT INTO tenants (id, name, status, billing_mode, credit_limit_units, policy, limits,"
            " created_at_ms, updated_at_ms) VALUES (?, ?, 'active', 'postpaid', NULL, '{}', '{}', ?, ?)",
            ((f"ten_{i:06d}", f"Tenant {i:06d}", now, now) for i in range(tenants)),
        )
        con.executemany(
            "INSERT INTO api_keys (id, tenant_id, name, env, public_id, key_hash, label, status,"
            " limits, metadata, created_at_ms, updated_at_ms) VALUES (?, ?, ?, 'live', ?, ?, ?,"
            " 'active', '{}', '{}', ?, ?)",
            (
                (f"key_{i:07d}", f"ten_{i % tenants:06d}", f"key {i}", f"p{i:011d}",
                 i.to_bytes(32, "big"), f"tg-live-p{i:011d}-…abcd", now, now)
                for i in range(keys)
            ),
        )
    print(f"seeded {tenants} tenants and {keys} keys in {time.time() - t0:.1f} s", flush=True)
    t0 = time.time()
    start = (now // DAY_MS - days + 1) * DAY_MS
    span = now - start
    rng = random.Random(7)
    batch = 200_000
    with con:
        for lo in range(0, records, batch):
            rows = []
            for n in range(lo, min(records, lo + batch)):
                k = int(keys * rng.random() ** 4)
                at = start + rng.randrange(span)
                refused = rng.random() < 0.02
                prompt, completion = rng.randrange(10, 2000), rng.randrange(1, 800)
                cost = (prompt + 100 * completion) * 1000
                rows.append((
                    f"req_{at:012x}{n:020x}", at, MODELS[n % 3], PROVIDERS[k % 2],
                    429 if refused else 200, "error" if refused else "ok",
                    None if refused else prompt, None if refused else completion,
                    f"ten_{k % tenants:06d}", f"key_{k:07d}",
                    None if refused else cost, None if refused else cost * 6 // 5,
                ))
            con.executemany(
                "INSERT INTO request_log (id, created_at_ms, endpoint, public_model, provider,"
                " stream, status, outcome, attempts, prompt_tokens, completion_tokens, latency_ms,"
                " tenant_id, key_id, cost_nanos, price_nanos) VALUES (?, ?, 'chat', ?, ?, 0, ?, ?,"
                " 1, ?, ?, 100, ?, ?, ?, ?)",
                rows,
            )
            print(f"  {min(records, lo + batch):,} records", flush=True)
    print(f"seeded {records:,} records in {time.time() - t0:.1f} s", flush=True)
    t0 = time.time()
    daily = (ROOT / "migrations/sqlite/20261210010000_create_usage_daily.sql").read_text()
    coarse = (ROOT / "migrations/sqlite/20261210020000_create_usage_summaries.sql").read_text()
    with con:
        for table in ("usage_daily", "usage_daily_models", "usage_monthly_keys"):
            con.execute(f"DELETE FROM {table}")
        con.execute(daily[daily.index("INSERT INTO usage_daily"):])
        con.executescript("BEGIN;" + coarse[coarse.index("INSERT INTO usage_daily_models"):]
                          + "COMMIT;")
    counts = {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
              for t in ("usage_daily", "usage_daily_models", "usage_monthly_keys")}
    print(f"rolled up in {time.time() - t0:.1f} s: "
          + ", ".join(f"{t} {n:,} rows" for t, n in counts.items()), flush=True)
    con.execute("ANALYZE")
    con.close()


def start_gateway(gateway: str, db: Path):
    cfg = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    cfg.write('[server]\nhost = "127.0.0.1"\nport = 0\n\n[providers.mock]\npreset = "mock"\n'
              'base_url = "http://127.0.0.1:9/v1"\n\n[deployments.d]\nprovider = "mock"\n'
              'model = "m"\n\n[models.gpt-test]\ndeployments = ["d"]\n\n[ui]\ncookie_secure = false\n')
    cfg.close()
    env = dict(os.environ, TOLLGATE_DATABASE_URL=f"sqlite:{db}", TOLLGATE_LOG="warn")
    env.pop("TOLLGATE_CONFIG", None)
    proc = subprocess.Popen([gateway, "serve", "--config", cfg.name], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    url = line.strip().rsplit(" ", 1)[-1]
    if not url.startswith("http://"):
        proc.kill()
        sys.exit(f"the gateway did not start: {line!r}")
    return proc, url


def sign_in(gateway: str, db: Path, url: str):
    env = dict(os.environ, TOLLGATE_DATABASE_URL=f"sqlite:{db}",
               TOLLGATE_OPERATOR_PASSWORD="bench password, long enough")
    env.pop("TOLLGATE_CONFIG", None)
    subprocess.run([gateway, "operator", "create", "bench"], env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{url}/admin/login").read().decode()
    csrf = re.search(r'name="_csrf" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"_csrf": csrf, "name": "bench",
                                   "password": "bench password, long enough"}).encode()
    opener.open(f"{url}/admin/login", data=form).read()
    return opener


def portal_sign_in(admin, url: str, tenant: str):
    """A member of `tenant`, invited from the tenant page and signed in by the link."""
    page = admin.open(f"{url}/admin/tenants/{tenant}").read().decode()
    csrf = re.search(r'name="_csrf" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"_csrf": csrf, "email": f"bench{time.time_ns()}@member.test"})
    body = html.unescape(admin.open(f"{url}/admin/tenants/{tenant}/members",
                                    data=form.encode()).read().decode())
    link = re.search(r"/portal/link/[A-Za-z0-9_]+", body).group(0)
    member = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = member.open(url + link).read().decode()
    csrf = re.search(r'name="_csrf" value="([^"]+)"', page).group(1)
    member.open(url + link, data=urllib.parse.urlencode({"_csrf": csrf}).encode()).read()
    return member


def time_pages(opener, url: str, pages, runs: int):
    print(f"\n| page | min | p50 | p90 | max | bytes |\n|---|---:|---:|---:|---:|---:|")
    for path in pages:
        opener.open(url + path).read()
        times = []
        size = 0
        for _ in range(runs):
            t = time.perf_counter()
            body = opener.open(url + path).read()
            times.append((time.perf_counter() - t) * 1000)
            size = len(body)
        times.sort()
        p90 = times[min(len(times) - 1, int(len(times) * 0.9))]
        print(f"| `{path}` | {times[0]:.1f} | {statistics.median(times):.1f} | {p90:.1f} |"
              f" {times[-1]:.1f} | {size:,} |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateway-bin", default=str(ROOT / "target/release/tollgate"))
    ap.add_argument("--db", default="/tmp/tollgate-ui-scale.db")
    ap.add_argument("--tenants", type=int, default=10_000)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--reuse", action="store_true", help="keep an existing database")
    a = ap.parse_args()
    db = Path(a.db)
    if not (a.reuse and db.exists()):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        migrate(a.gateway_bin, db)
        seed(db, a.tenants, a.keys, a.records, a.days)
    proc, url = start_gateway(a.gateway_bin, db)
    try:
        opener = sign_in(a.gateway_bin, db, url)
        busy = "ten_000000"
        pages = [
            "/admin", "/admin/tenants", "/admin/tenants?q=Tenant%200099",
            f"/admin/tenants/{busy}", f"/admin/tenants/{busy}/edit", "/admin/tenants/new",
            "/admin/usage", "/admin/usage?group=model", "/admin/usage?group=provider",
            "/admin/usage?group=day,model&from=" + time.strftime("%Y-%m-%d",
                                                                time.gmtime(time.time() - 29 * 86400)),
            "/admin/usage?group=tenant", "/admin/usage?group=key",
            "/admin/usage?group=tenant,key", "/admin/usage.csv?group=tenant",
            f"/admin/usage?group=day,model&tenant={busy}", f"/admin/usage?group=key&tenant={busy}",
            "/admin/invoices", "/admin/audit", "/admin/deployments", "/admin/prices",
        ]
        time_pages(opener, url, pages, a.runs)
        member = portal_sign_in(opener, url, busy)
        time_pages(member, url, ["/portal", "/portal/keys", "/portal/invoices"], a.runs)
        # Reports over other ranges: grouped by tenant or key across every tenant, a range that
        # is not whole months adds up daily rows.
        today = time.gmtime()
        month_ago = time.gmtime(time.time() - 29 * 86400)
        last30 = f"from={time.strftime('%Y-%m-%d', month_ago)}&to={time.strftime('%Y-%m-%d', today)}"
        time_pages(opener, url, [f"/admin/usage?group=tenant&{last30}",
                                 f"/admin/usage?group=key&{last30}"], a.runs)
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
