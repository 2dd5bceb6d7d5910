#!/usr/bin/env python3
"""The container files parse and name only what exists (no container engine is needed).

    python3 infra/check/containers.py

- infra/docker/Dockerfile: every instruction is known; `COPY --from` names an earlier stage; other
  COPY sources exist in the build context (the repository); the binaries it copies out of the
  builder and runs are the workspace's binaries; the runtime stage runs as a non-root user and
  has a HEALTHCHECK on /healthz.
- infra/compose/compose.yaml: YAML; every service has an image or a build whose context and
  Dockerfile exist; every bind-mounted file exists; every depends_on names a service; the
  gateway replicas' configuration passes `tollgate check-config` when a binary is given
  (--tollgate); nginx's upstreams are the compose file's gateway services.
- infra/compose/prometheus.yml: scrapes every gateway service, with the metrics token the
  gateways are given. infra/grafana: the dashboard is JSON whose every query names a metric the
  gateway exposes (a gateway's `/metrics` text given with --metrics, else the names in the
  gateway's source), and the provisioning files are YAML.
Exits 1 with every failure listed. Needs PyYAML.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
                "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
failures: list[str] = []


def check(ok: bool, what: str):
    if not ok:
        failures.append(what)


def instructions(path: Path) -> list[tuple[str, str]]:
    """(instruction, arguments), continuation lines joined, comments dropped."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def workspace_bins() -> set[str]:
    bins = set()
    for cargo in ROOT.glob("services/*/Cargo.toml"):
        text = cargo.read_text()
        bins.update(re.findall(r'\[\[bin\]\]\s*name\s*=\s*"([^"]+)"', text))
        if (cargo.parent / "src/main.rs").exists():
            bins.add(re.search(r'^name\s*=\s*"([^"]+)"', text, re.M).group(1))
    return bins


def check_dockerfile(path: Path):
    stages, runtime = [], []
    bins = workspace_bins()
    for word, rest in instructions(path):
        check(word in INSTRUCTIONS, f"Dockerfile: unknown instruction {word}")
        if word == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            stages.append(m.group(2) or m.group(1))
            runtime = []
            continue
        runtime.append((word, rest))
        if word == "COPY":
            args = rest.split()
            flags = [x for x in args if x.startswith("--")]
            paths = [x for x in args if not x.startswith("--")]
            source = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
            if source:
                check(source in stages[:-1], f"Dockerfile: COPY --from={source} is not an earlier stage")
                for src in paths[:-1]:
                    name = Path(src).name
                    if "/target/release/" in src:
                        check(name in bins, f"Dockerfile: {name} is not a workspace binary")
            else:
                for src in paths[:-1]:
                    check((ROOT / src).exists(), f"Dockerfile: COPY source {src} does not exist")
    final = dict((w, r) for w, r in runtime)
    check("USER" in final and not final["USER"].startswith(("0", "root")),
          "Dockerfile: the runtime stage runs as a non-root user")
    check("/healthz" in final.get("HEALTHCHECK", ""), "Dockerfile: a HEALTHCHECK on /healthz")
    entry = re.findall(r'"([^"]+)"', final.get("ENTRYPOINT", ""))
    check(bool(entry) and entry[0] in bins, f"Dockerfile: the entrypoint {entry} is a workspace binary")
    check((ROOT / ".dockerignore").exists() and "target" in (ROOT / ".dockerignore").read_text(),
          ".dockerignore keeps target/ out of the build context")


def check_compose(path: Path, tollgate: str | None):
    doc = yaml.safe_load(path.read_text())
    services = doc.get("services", {})
    check(bool(services), "compose: no services")
    base = path.parent
    for name, svc in services.items():
        check("image" in svc or "build" in svc, f"compose: {name} has no image or build")
        build = svc.get("build")
        if build:
            context = (base / build.get("context", ".")).resolve()
            check(context.is_dir(), f"compose: {name}'s build context {context} does not exist")
            check((context / build.get("dockerfile", "Dockerfile")).exists(),
                  f"compose: {name}'s Dockerfile does not exist")
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                check((base / source).exists(), f"compose: {name} mounts {source}, which does not exist")
            else:
                check(source in (doc.get("volumes") or {}), f"compose: {name} mounts an undeclared volume {source}")
        depends = svc.get("depends_on", [])
        for dep in (depends if isinstance(depends, list) else depends.keys()):
            check(dep in services, f"compose: {name} depends on {dep}, which is not a service")
    gateways = sorted(n for n, s in services.items()
                      if s.get("command", [None])[0] == "serve")
    check(len(gateways) >= 2, f"compose: two gateway replicas ({gateways})")
    nginx = (base / "nginx.conf").read_text()
    upstreams = sorted(re.findall(r"server\s+([\w-]+):8080;", nginx))
    check(upstreams == gateways, f"nginx upstreams {upstreams} are the gateways {gateways}")
    if tollgate and gateways:
        g = services[gateways[0]]
        config = next(v.split(":")[0] for v in g["volumes"] if v.endswith("tollgate.toml:ro"))
        env = {"PATH": os.environ.get("PATH", "")}
        for k, v in g["environment"].items():
            env[k] = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v))
        r = subprocess.run([tollgate, "check-config", "--config", str(base / config)], env=env,
                           text=True, capture_output=True)
        check(r.returncode == 0, f"compose: tollgate check-config: {r.stdout}{r.stderr}".strip())


def check_monitoring(compose: Path, exposed: str):
    doc = yaml.safe_load(compose.read_text())
    services = doc.get("services", {})
    gateways = sorted(n for n, s in services.items() if s.get("command", [None])[0] == "serve")
    prom = yaml.safe_load((compose.parent / "prometheus.yml").read_text())
    job = prom["scrape_configs"][0]
    targets = sorted(t for c in job["static_configs"] for t in c["targets"])
    check(targets == [f"{g}:8080" for g in gateways], f"prometheus scrapes {targets}, not the gateways {gateways}")
    token = job.get("authorization", {}).get("credentials")
    for g in gateways:
        check(services[g]["environment"].get("TOLLGATE_METRICS_TOKEN") == token,
              f"compose: {g}'s TOLLGATE_METRICS_TOKEN is not prometheus.yml's credential")
    check("prometheus" in services and "grafana" in services, "compose: Prometheus and Grafana")
    grafana = ROOT / "infra/grafana"
    for f in grafana.glob("provisioning/*/*.yaml"):
        check(isinstance(yaml.safe_load(f.read_text()), dict), f"{f} is not a YAML mapping")
    dash = json.loads((grafana / "tollgate.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    check(len(exprs) >= 10, f"the dashboard has {len(exprs)} queries")
    for e in exprs:
        for name in re.findall(r"\btollgate_[a-z_]+", e):
            check(re.search(rf"\b{name}\b", exposed) is not None,
                  f"the dashboard queries {name}, which the gateway does not expose")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tollgate", help="a tollgate binary, to run check-config on the replicas' configuration")
    ap.add_argument("--metrics", help="a gateway's /metrics text (else the metric names in its source)")
    a = ap.parse_args()
    check_dockerfile(ROOT / "infra/docker/Dockerfile")
    check_compose(ROOT / "infra/compose/compose.yaml", a.tollgate)
    if a.metrics:
        exposed = Path(a.metrics).read_text()
    else:
        # Families are named in expose.rs; a histogram's samples add _bucket/_sum/_count, a
        # counter's _total.
        names = re.findall(r'"(tollgate_[a-z_]+)"', (ROOT / "services/tollgate/src/metrics/expose.rs").read_text())
        exposed = " ".join(f"{n} {n}_bucket {n}_sum {n}_count {n}_total" for n in names)
    check_monitoring(ROOT / "infra/compose/compose.yaml", exposed)
    if failures:
        print("\n".join(["FAILED:"] + failures))
        sys.exit(1)
    print("the Dockerfile and the compose file parse and name what exists")


if __name__ == "__main__":
    main()
