"""Fixtures for the official-OpenAI-Python-SDK conformance suite.

One session starts the real `mock-provider` and `tollgate` binaries on port 0 (each announces its
address as its first stdout line, which we read: there is no sleep to wait for start-up), with a
fresh database: a SQLite file in a temp dir, or, when `TOLLGATE_TEST_POSTGRES` names a Postgres
admin URL, a newly created database on that server (dropped again at the end).

Binaries: `TOLLGATE_BIN` / `MOCK_PROVIDER_BIN`, else `$CARGO_TARGET_DIR/debug/…` (default
`<repo>/target/debug/{tollgate,mock-provider}`)
(build them with `cargo build --workspace --bins`).
"""

from __future__ import annotations

import copy
import os
import secrets
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import jsonschema
import openai
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = Path(os.environ.get("OPENAI_OPENAPI_SPEC", REPO_ROOT.parent / "shared" / "specs" / "openai-openapi.yaml"))
SPEC_URI = "urn:openai:openapi"

#: The key clients present to the gateway.
OPERATOR_KEY = "tg-sdk-operator-key"
#: How long a binary may take to announce its address before the suite gives up (a bound, not a wait).
STARTUP_LIMIT_S = 30.0


def _binary(env_var: str, name: str) -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target")
    if not target.is_absolute():
        target = REPO_ROOT / target
    path = Path(os.environ.get(env_var) or target / "debug" / name)
    if not path.is_file():
        pytest.exit(
            f"{path} not found: build the binaries first (`cargo build --workspace --bins`) "
            f"or point {env_var} at it",
            returncode=3,
        )
    return path


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    url: str
    stderr_path: Path | None

    def stderr_tail(self, limit: int = 4000) -> str:
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")[-limit:]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=15)


def _first_line(popen: subprocess.Popen[bytes], name: str) -> str:
    """Reads the first stdout line, bounded by STARTUP_LIMIT_S (select on the pipe, no sleep)."""
    assert popen.stdout is not None
    fd = popen.stdout.fileno()
    deadline = time.monotonic() + STARTUP_LIMIT_S
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"{name} did not announce its address within {STARTUP_LIMIT_S}s")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:  # EOF: the process exited
            raise RuntimeError(f"{name} exited (status {popen.wait()}) before announcing its address")
        buf += chunk
    line = buf.split(b"\n", 1)[0].decode().strip()
    # Keep draining stdout so a chatty process can never block on a full pipe.
    threading.Thread(target=lambda: popen.stdout.read(), daemon=True).start()  # type: ignore[union-attr]
    return line


def _spawn(name: str, args: list[str], env: dict[str, str], stderr_path: Path | None) -> Proc:
    stderr = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        popen = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, env=env)
    finally:
        if stderr_path:
            stderr.close()  # type: ignore[union-attr]
    proc = Proc(name, popen, "", stderr_path)
    try:
        line = _first_line(popen, name)
        prefix = f"{name} listening on "
        if not line.startswith(prefix) or not line[len(prefix):].startswith("http://"):
            raise RuntimeError(f"{name}: unexpected first line {line!r}")
        proc.url = line[len(prefix):]
    except Exception as exc:
        proc.stop()
        raise RuntimeError(f"{exc}\n--- {name} stderr ---\n{proc.stderr_tail()}") from exc
    return proc


# Models of the gateway under test. Scripted failures are deployments whose upstream model id carries
# mock-provider directives after `@` (see services/mock-provider/src/directives.rs).
SCRIPTED = {
    "broken-500": "fail=500",  # upstream 5xx          -> 502 upstream_server_error
    "unavailable-503": "fail=503",  # upstream 503     -> 503 upstream_server_error
    "rate-limited-429": "fail=429,retry_after=3",  # -> 503 upstream_rate_limited + retry-after: 3
    "rejects-400": "fail=400",  # upstream 400         -> 400 upstream_rejected_request
    "hangs": "hang",  # no first byte in 1.5 s        -> 504 upstream_first_byte_timeout
    "malformed": "malformed",  # invalid JSON          -> 502 upstream_malformed_response
    "first-error": "first_error",  # error event before any content -> 502 upstream_stream_error
    "cut-after-2": "cut_after=2",  # connection dropped after 2 tokens: breaks mid-stream
}


def gateway_config(mock_url: str) -> str:
    """The e2e template (tests/e2e/src/lib.rs `config()`) plus the scripted models."""
    config = f"""
[server]
host = "127.0.0.1"
port = 0
workers = 2
body_read_timeout_ms = 1500

[upstream_defaults]
connect_timeout_ms = 1000
first_byte_timeout_ms = 1500
idle_timeout_ms = 1000
total_timeout_ms = 4000

[providers.mock]
preset = "mock"
base_url = "{mock_url}/v1"
api_key_env = "MOCK_PROVIDER_KEY"

[deployments.primary]
provider = "mock"
model = "mock-gpt"
region = "eu-west"
version = "2026-01-01"

[deployments.embed]
provider = "mock"
model = "mock-embed"
region = "eu-west"

[models.gpt-test]
deployments = ["primary"]
owned_by = "tests"
created = 1700000000

[models."org/gpt-slash"]
deployments = ["primary"]

[models.embed-test]
deployments = ["embed"]
"""
    # Other wire families (the mock speaks each), and a model with a fixed answer length.
    config += f"""
[providers.mock-anthropic]
preset = "mock-anthropic"
base_url = "{mock_url}/v1"
api_key_env = "MOCK_PROVIDER_KEY"

[providers.mock-gemini]
preset = "mock-gemini"
base_url = "{mock_url}/v1beta"
api_key_env = "MOCK_PROVIDER_KEY"

[providers.mock-bedrock]
preset = "mock-bedrock"
base_url = "{mock_url}"
aws_region = "us-east-1"

[deployments.bedrock]
provider = "mock-bedrock"
model = "anthropic.claude-mock-v1:0@tokens=6"

[deployments.bedrock-tools]
provider = "mock-bedrock"
model = "anthropic.claude-mock-v1:0@tool_call=get_weather,tokens=6"

[models.bedrock-test]
deployments = ["bedrock"]

[models.bedrock-tools]
deployments = ["bedrock-tools"]

[providers.mock-cohere]
preset = "mock-cohere"
base_url = "{mock_url}/v2"
api_key_env = "MOCK_PROVIDER_KEY"

[deployments.cohere]
provider = "mock-cohere"
model = "command-mock@tokens=6"

[deployments.cohere-tools]
provider = "mock-cohere"
model = "command-mock@tool_call=get_weather,tokens=6"

[models.cohere-test]
deployments = ["cohere"]

[models.cohere-tools]
deployments = ["cohere-tools"]

[deployments.claude]
provider = "mock-anthropic"
model = "claude-mock@tokens=6"

[deployments.gemini]
provider = "mock-gemini"
model = "gemini-mock@tokens=6"

[deployments.short]
provider = "mock"
model = "mock-gpt@tokens=6"

[models.claude-test]
deployments = ["claude"]

[models.gemini-test]
deployments = ["gemini"]

[models.short-test]
deployments = ["short"]

[deployments.claude-tools]
provider = "mock-anthropic"
model = "claude-mock@tool_call=get_weather,tokens=6"

[deployments.gemini-tools]
provider = "mock-gemini"
model = "gemini-mock@tool_call=get_weather,tokens=6"

[deployments.openai-tools]
provider = "mock"
model = "mock-gpt@tool_call=get_weather,tokens=6"

[models.claude-tools]
deployments = ["claude-tools"]

[models.gemini-tools]
deployments = ["gemini-tools"]

[models.openai-tools]
deployments = ["openai-tools"]
"""
    for name, directive in SCRIPTED.items():
        config += (
            f'\n[deployments.{name}]\nprovider = "mock"\nmodel = "mock-gpt@{directive}"\n'
            f'\n[models.{name}]\ndeployments = ["{name}"]\n'
        )
    return config


def _psql(admin_url: str, sql: str) -> None:
    psql = shutil.which("psql")
    if psql is None:
        pytest.exit("TOLLGATE_TEST_POSTGRES is set but `psql` is not on PATH", returncode=3)
    subprocess.run([psql, admin_url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql], check=True, capture_output=True)


def _database_url_for(admin_url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(admin_url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


@dataclass
class Stack:
    mock: Proc
    gateway: Proc
    database_url: str

    @property
    def base_url(self) -> str:
        return f"{self.gateway.url}/v1"


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    mock_bin = _binary("MOCK_PROVIDER_BIN", "mock-provider")
    tollgate_bin = _binary("TOLLGATE_BIN", "tollgate")
    workdir = Path(tempfile.mkdtemp(prefix="tollgate-sdk-"))
    admin_url = os.environ.get("TOLLGATE_TEST_POSTGRES", "").strip()
    pg_database = None
    procs: list[Proc] = []
    try:
        if admin_url:
            pg_database = f"tollgate_sdk_{secrets.token_hex(6)}"
            _psql(admin_url, f"CREATE DATABASE {pg_database}")
            database_url = _database_url_for(admin_url, pg_database)
        else:
            database_url = f"sqlite:{workdir / 'tollgate.db'}"

        base_env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
        mock = _spawn("mock-provider", [str(mock_bin), "--port", "0"], base_env, workdir / "mock.stderr.log")
        procs.append(mock)

        config_path = workdir / "tollgate.toml"
        config_path.write_text(gateway_config(mock.url))
        env = dict(
            base_env,
            TOLLGATE_OPERATOR_KEY=OPERATOR_KEY,
            TOLLGATE_DATABASE_URL=database_url,
            TOLLGATE_LOG="info",
            MOCK_PROVIDER_KEY="sk-mock-provider-secret",
        )
        gateway = _spawn(
            "tollgate",
            [str(tollgate_bin), "serve", "--config", str(config_path)],
            env,
            workdir / "tollgate.stderr.log",
        )
        procs.append(gateway)
        yield Stack(mock=mock, gateway=gateway, database_url=database_url)
    finally:
        for proc in reversed(procs):
            proc.stop()
        if pg_database:
            _psql(admin_url, f"DROP DATABASE IF EXISTS {pg_database} WITH (FORCE)")
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def anthropic_client(stack: Stack) -> Iterator["anthropic.Anthropic"]:
    import anthropic

    # The SDK appends /v1/messages to the base URL; the operator key goes as `x-api-key`.
    with anthropic.Anthropic(base_url=stack.gateway.url, api_key=OPERATOR_KEY, max_retries=0) as c:
        yield c


@pytest.fixture(scope="session")
def client(stack: Stack) -> Iterator[openai.OpenAI]:
    # Only base_url and api_key differ from the SDK defaults, plus max_retries=0: the SDK would
    # otherwise retry 5xx/timeouts twice with backoff, which only slows the failure tests down
    # (and would hide how many requests were made).
    with openai.OpenAI(base_url=stack.base_url, api_key=OPERATOR_KEY, max_retries=0) as c:
        yield c


# --------------------------------------------------------------------------------------------
# OpenAPI schema validation
# --------------------------------------------------------------------------------------------


def _nullable_to_json_schema(node: Any) -> Any:
    """Rewrites the OpenAPI 3.0 keyword `nullable: true`, which the 3.1 spec still uses in ~100
    places, into JSON Schema 2020-12 (the dialect of OpenAPI 3.1, which has no `nullable` and so
    would ignore it — then `finish_reason: null` in a stream chunk would fail `type: string`).

    `{..., nullable: true}` becomes `{anyOf: [{...}, {type: "null"}]}`: it is correct whatever the
    node holds (`type`, `enum`, a `$ref` with siblings, `allOf`), where adding "null" to `type`
    would not be (an `enum` without null, or a `$ref` without `type`). `nullable: false` is
    dropped. Only boolean values count, so a property *named* "nullable" is left alone.
    """
    if isinstance(node, list):
        return [_nullable_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _nullable_to_json_schema(value) for key, value in node.items()}
    nullable = out.get("nullable")
    if isinstance(nullable, bool):
        del out["nullable"]
        if nullable:
            return {"anyOf": [out, {"type": "null"}]}
    return out


def _absolute_refs(node: Any) -> Any:
    """Points the document-relative `$ref`s (`#/components/...`) of a copied schema at the spec."""
    if isinstance(node, list):
        return [_absolute_refs(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _absolute_refs(value) for key, value in node.items()}
    ref = out.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        out["$ref"] = SPEC_URI + ref
    return out


class SpecValidator:
    """Validates instances against `components.schemas.<Name>` of the official OpenAPI spec, with
    every `$ref` resolved against the whole spec document (a `referencing` registry holding it)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.schemas: dict[str, Any] = spec["components"]["schemas"]
        self._registry = Registry().with_resource(SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012))
        self._validators: dict[str, jsonschema.Draft202012Validator] = {}

    def validator(self, name: str, schema: dict[str, Any] | None = None) -> jsonschema.Draft202012Validator:
        if name not in self._validators:
            if schema is None:
                assert name in self.schemas, f"no schema {name!r} in the spec"
                schema = {"$ref": f"{SPEC_URI}#/components/schemas/{name}"}
            jsonschema.Draft202012Validator.check_schema(schema)
            self._validators[name] = jsonschema.Draft202012Validator(schema, registry=self._registry)
        return self._validators[name]

    def __call__(self, instance: Any, name: str) -> None:
        errors = sorted(self.validator(name).iter_errors(instance), key=lambda e: list(e.absolute_path))
        if errors:
            lines = [f"- at {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors[:10]]
            raise AssertionError(f"response does not match {name}:\n" + "\n".join(lines) + f"\ninstance: {instance!r}")

    def derived(self, name: str, base: str, edit: Callable[[dict[str, Any]], None]) -> None:
        """Registers `name`: a deep copy of schema `base` changed by `edit` (its `$ref`s still
        resolve against the spec)."""
        schema = _absolute_refs(copy.deepcopy(self.schemas[base]))
        edit(schema)
        self._validators.pop(name, None)
        self.validator(name, schema)


def _load_spec() -> dict[str, Any]:
    if not SPEC_PATH.is_file():
        pytest.exit(f"OpenAPI spec not found at {SPEC_PATH} (set OPENAI_OPENAPI_SPEC)", returncode=3)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader when PyYAML has libyaml
    with SPEC_PATH.open("rb") as f:
        return _nullable_to_json_schema(yaml.load(f, Loader=loader))


@pytest.fixture(scope="session")
def validate() -> SpecValidator:
    """`validate(instance, "SchemaName")` asserts that `instance` conforms to the spec's schema."""
    return SpecValidator(_load_spec())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On a failure, attach the tail of the gateway's log (stderr) to the report."""
    report = yield
    if report.failed and "stack" in getattr(item, "fixturenames", ()):
        stack = item.funcargs.get("stack") if hasattr(item, "funcargs") else None
        if isinstance(stack, Stack):
            report.sections.append(("tollgate stderr (tail)", stack.gateway.stderr_tail()))
    return report
