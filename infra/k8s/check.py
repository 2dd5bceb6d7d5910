#!/usr/bin/env python3
"""Renders every overlay of infra/k8s and checks what it renders.

    python3 infra/k8s/check.py [--tollgate target/debug/tollgate]

For each overlay: `kubectl kustomize` renders it, `kubernetes-validate --strict` checks every
resource against the Kubernetes schemas (the Prometheus Operator's ServiceMonitor has none there:
it is checked here for the fields it needs), and then the gateway's own promises:
- readiness on /readyz, liveness on /healthz, a preStop sleep, and a grace period that covers the
  preStop plus the configuration's server.shutdown_timeout_s;
- resource requests on every container, non-root, no privilege escalation;
- every secret key the pods read from the Secret the overlay generates;
- the configuration passes `tollgate check-config` with the Secret's values as the environment;
- trial: one replica, Recreate, a claim mounted where its SQLite URL points, no HPA or PDB;
- production: Postgres and Redis URLs, an HPA on CPU, a PDB and the migration Job.
Exits 1 with every failure listed.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
failures: list[str] = []


def check(ok: bool, what: str):
    if not ok:
        failures.append(what)


def render(overlay: Path) -> list[dict]:
    out = subprocess.run(["kubectl", "kustomize", str(overlay)], check=True, text=True,
                         capture_output=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(out)
    validate = shutil.which("kubernetes-validate") or str(Path(sys.executable).parent / "kubernetes-validate")
    v = subprocess.run([validate, "--strict", "--quiet", f.name], text=True, capture_output=True)
    for line in (v.stdout + v.stderr).splitlines():
        if "ERROR" in line or ("WARN" in line and "ServiceMonitor" not in line):
            failures.append(f"{overlay.name}: {line}")
    check(v.returncode == 0, f"{overlay.name}: kubernetes-validate exited {v.returncode}")
    os.unlink(f.name)
    return [d for d in yaml.safe_load_all(out) if d]


def count(docs, kind) -> int:
    return sum(1 for d in docs if d["kind"] == kind)


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return found[0] if len(found) == 1 else None


def check_pods(name: str, docs: list[dict], secret: dict, tollgate: str | None):
    dep = one(docs, "Deployment", "tollgate")
    check(dep is not None, f"{name}: one Deployment")
    if dep is None:
        return
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{name}: readiness on /readyz")
    check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{name}: liveness on /healthz")
    pre = c["lifecycle"]["preStop"]["exec"]["command"]
    check(pre[0] == "sleep", f"{name}: a preStop sleep")
    config = one(docs, "ConfigMap")
    settings = tomllib.loads(config["data"]["tollgate.toml"])
    shutdown = settings.get("server", {}).get("shutdown_timeout_s", 30)
    check(pod["terminationGracePeriodSeconds"] >= int(pre[1]) + shutdown,
          f"{name}: the grace period covers the preStop and shutdown_timeout_s ({shutdown} s)")
    for ctr in [c] + [j["spec"]["template"]["spec"]["containers"][0]
                      for j in docs if j["kind"] == "Job"]:
        check("requests" in ctr.get("resources", {}), f"{name}: {ctr['name']} has resource requests")
        check(ctr["securityContext"]["allowPrivilegeEscalation"] is False,
              f"{name}: {ctr['name']} cannot escalate")
    check(pod["securityContext"]["runAsNonRoot"] is True, f"{name}: pods run as non-root")
    check(c["envFrom"][0]["secretRef"]["name"] == secret["metadata"]["name"],
          f"{name}: the pods read the overlay's Secret")
    mon = one(docs, "ServiceMonitor")
    check(mon is not None and mon["spec"]["endpoints"][0]["path"] == "/metrics"
          and mon["spec"]["endpoints"][0]["bearerTokenSecret"]["key"] == "TOLLGATE_METRICS_TOKEN"
          and "TOLLGATE_METRICS_TOKEN" in secret_data(secret),
          f"{name}: the ServiceMonitor scrapes /metrics with the metrics token in the Secret")
    if tollgate:
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
            f.write(config["data"]["tollgate.toml"])
        env = {"PATH": os.environ.get("PATH", ""), **secret_data(secret)}
        r = subprocess.run([tollgate, "check-config", "--config", f.name], env=env, text=True,
                           capture_output=True)
        check(r.returncode == 0, f"{name}: tollgate check-config: {r.stdout}{r.stderr}".strip())
        os.unlink(f.name)


def secret_data(secret: dict) -> dict:
    import base64
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tollgate", help="a tollgate binary, to run check-config on the configuration")
    a = ap.parse_args()
    if not shutil.which("kubectl"):
        sys.exit("kubectl is needed to render the overlays (kubectl kustomize)")
    for overlay in sorted((HERE / "overlays").iterdir()):
        docs = render(overlay)
        secret = one(docs, "Secret", "tollgate-secrets")
        check(secret is not None, f"{overlay.name}: a tollgate-secrets Secret")
        if secret is None:
            continue
        values = secret_data(secret)
        check_pods(overlay.name, docs, secret, a.tollgate)
        dep = one(docs, "Deployment", "tollgate")
        if overlay.name == "trial":
            url = values.get("TOLLGATE_DATABASE_URL", "")
            check(url.startswith("sqlite:"), "trial: SQLite")
            mounts = [m["mountPath"] for m in dep["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]]
            check(any(url.removeprefix("sqlite:").startswith(m + "/") for m in mounts),
                  f"trial: the SQLite file {url} is on a mounted volume {mounts}")
            check(one(docs, "PersistentVolumeClaim") is not None, "trial: a claim for the data")
            check(dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate",
                  "trial: one replica, Recreate")
            check(count(docs, "HorizontalPodAutoscaler") == 0 and count(docs, "PodDisruptionBudget") == 0,
                  "trial: no autoscaler or disruption budget")
            check("TOLLGATE_REDIS_URL" not in values, "trial: no Redis")
        elif overlay.name == "production":
            check(values.get("TOLLGATE_DATABASE_URL", "").startswith("postgres://"), "production: Postgres")
            check(values.get("TOLLGATE_REDIS_URL", "").startswith("redis://"), "production: Redis")
            hpa = one(docs, "HorizontalPodAutoscaler")
            check(hpa is not None and hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu",
                  "production: an HPA on CPU")
            check(one(docs, "PodDisruptionBudget") is not None, "production: a PDB")
            job = one(docs, "Job", "tollgate-migrate")
            check(job is not None and job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"],
                  "production: the migration Job")
        else:
            failures.append(f"an overlay this check does not know: {overlay.name}")
        print(f"{overlay.name}: {len(docs)} resources rendered and checked")
    if failures:
        print("\n".join(["FAILED:"] + failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
