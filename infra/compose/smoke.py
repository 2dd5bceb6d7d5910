#!/usr/bin/env python3
"""Traffic through the compose topology's load balancer: one shared limit, one exact ledger.

    python3 infra/compose/smoke.py                      # against `docker compose up` (port 8080)
    python3 infra/compose/smoke.py --url http://127.0.0.1:18080 --cli target/debug/tollgate

The operator commands run through `--cli`: by default `tollgate` inside the first replica's
container; with a local binary, its environment must name the same database
(TOLLGATE_DATABASE_URL). It then:
1. waits until the balancer answers /readyz with the store and Redis ready;
2. creates a postpaid tenant and a key limited to RPM requests a minute;
3. sends 3 × RPM chat completions through the balancer (nginx spreads them over the replicas):
   RPM are admitted (200; a few more if the run took long enough for the bucket to refill) and
   the rest refused (429), and both replicas answered
   (the balancer's X-Served-By);
4. checks the tenant's ledger (`tollgate balance`): what it spent equals the sum of the
   admitted responses' x-tollgate-cost, to the nano-dollar;
5. with `--replica URL` for each replica (and `--metrics-token`), checks their /metrics: the
   requests, refusals and billed dollars the replicas counted during the run add up to what the
   client saw.
Exits 1 on any difference. Python's standard library only.
"""
import argparse
import json
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal

DEFAULT_CLI = "docker compose -f infra/compose/compose.yaml exec -T gateway-1 tollgate"


def cli(command: str, *args: str) -> dict:
    out = subprocess.run(shlex.split(command) + list(args), check=True, text=True,
                         capture_output=True).stdout
    return json.loads(out)


def post(url: str, key: str, body: dict):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"authorization": f"Bearer {key}",
                                          "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            res.read()
            return res.status, res.headers
    except urllib.error.HTTPError as e:
        e.read()
        return e.code, e.headers


def scrape(url: str, token: str) -> dict:
    """{(name, labels text): value} of a replica's /metrics."""
    req = urllib.request.Request(f"{url}/metrics", headers={"authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as res:
        text = res.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            name, _, labels = series.partition("{")
            out[(name, labels.rstrip("}"))] = float(value)
    return out


def counted(replicas: list, token: str) -> dict:
    """The smoke's figures summed over the replicas: 200s and 429s of its model, billed dollars."""
    totals = {"ok": 0.0, "limited": 0.0, "billed": 0.0}
    for url in replicas:
        for (name, labels), v in scrape(url, token).items():
            if name == "tollgate_requests_total" and 'model="gpt-demo"' in labels and 'status="200"' in labels:
                totals["ok"] += v
            elif name == "tollgate_refusals_total" and 'reason="rate_limit_exceeded"' in labels:
                totals["limited"] += v
            elif name == "tollgate_billed_usd_total" and 'model="gpt-demo"' in labels:
                totals["billed"] += v
    return totals


def wait_ready(url: str) -> dict:
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=5) as res:
                ready = json.loads(res.read())
                if ready.get("redis") == "ok":
                    return ready
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.time() > deadline:
            sys.exit(f"{url}/readyz did not report the store and Redis ready in 120 s")
        time.sleep(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8080", help="the load balancer")
    ap.add_argument("--cli", default=DEFAULT_CLI, help="how to run the tollgate operator commands")
    ap.add_argument("--rpm", type=int, default=10)
    ap.add_argument("--replica", action="append", default=[], help="a replica's URL, for its /metrics")
    ap.add_argument("--metrics-token", default="compose-metrics-token-change-me")
    a = ap.parse_args()
    failures = []

    ready = wait_ready(a.url)
    print(f"ready: {ready}")
    tenant = cli(a.cli, "tenant", "create", f"Smoke {time.time_ns()}", "--billing", "postpaid")["id"]
    created = cli(a.cli, "key", "create", tenant, "smoke")
    key, key_id = created["key"], created["record"]["id"]
    cli(a.cli, "key", "set-limits", tenant, key_id, "--rpm", str(a.rpm))

    before = counted(a.replica, a.metrics_token)
    statuses, served_by, charged = {}, set(), Decimal(0)
    body = {"model": "gpt-demo", "max_tokens": 8, "messages": [{"role": "user", "content": "smoke"}]}
    started = time.monotonic()
    for _ in range(3 * a.rpm):
        status, headers = post(f"{a.url}/v1/chat/completions", key, body)
        statuses[status] = statuses.get(status, 0) + 1
        served_by.add(headers.get("x-served-by"))
        if status == 200:
            charged += Decimal(headers["x-tollgate-cost"])
    # The bucket refills continuously (RPM a minute): a slow run may see a few more admitted.
    refilled = int((time.monotonic() - started) * a.rpm / 60)
    print(f"statuses {statuses}; served by {sorted(s for s in served_by if s)}; refilled {refilled}")
    ok = statuses.get(200, 0)
    if not (a.rpm <= ok <= a.rpm + refilled) or ok + statuses.get(429, 0) != 3 * a.rpm:
        failures.append(f"one shared limit of {a.rpm} (+{refilled} refilled): got {statuses}")
    if len({s for s in served_by if s}) < 2:
        failures.append(f"both replicas should answer: {served_by}")

    # The request log commits just after each response: give the last one a moment.
    for _ in range(50):
        spent = Decimal(cli(a.cli, "balance", tenant)["spent_usd"])
        if spent == charged:
            break
        time.sleep(0.1)
    print(f"ledger: spent {spent}, responses charged {charged}")
    if spent != charged or charged <= 0:
        failures.append(f"the ledger's spend {spent} is not the responses' {charged}")

    if a.replica:
        after = counted(a.replica, a.metrics_token)
        seen = {k: after[k] - before[k] for k in after}
        print(f"replicas' /metrics: {seen}")
        if seen["ok"] != statuses.get(200, 0) or seen["limited"] != statuses.get(429, 0):
            failures.append(f"the replicas counted {seen}, the client saw {statuses}")
        if abs(Decimal(str(seen["billed"])) - charged) > Decimal("0.000000001"):
            failures.append(f"the replicas billed {seen['billed']}, the responses charged {charged}")

    if failures:
        print("FAILED:\n" + "\n".join(failures))
        sys.exit(1)
    print("smoke: OK")


if __name__ == "__main__":
    main()
