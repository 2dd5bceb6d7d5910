#!/usr/bin/env bash
# Two-minute demo: the mock provider on :9100, the gateway on :8080 (SQLite, no other service),
# one chat completion through it, then both keep running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
export TOLLGATE_OPERATOR_KEY=${TOLLGATE_OPERATOR_KEY:-tg-demo-key}
export TOLLGATE_DEMO_PASSWORD=${TOLLGATE_DEMO_PASSWORD:-tollgate-demo-password}
cargo build --release -p tollgate -p mock-provider
# An operator for the admin web UI (kept if the demo database already has it).
TOLLGATE_OPERATOR_PASSWORD="$TOLLGATE_DEMO_PASSWORD" ./target/release/tollgate --config infra/demo/tollgate.toml \
  operator create admin --role admin > /dev/null 2>&1 || true
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
./target/release/mock-provider --port 9100 > /dev/null &
./target/release/tollgate serve --config infra/demo/tollgate.toml &
for _ in $(seq 1 50); do curl -sf http://127.0.0.1:8080/healthz > /dev/null && break; sleep 0.1; done
curl -sf http://127.0.0.1:9100/v1/models > /dev/null || { echo "mock provider did not start"; exit 1; }
echo
echo "--- POST /v1/chat/completions (model gpt-demo-fallback: the first deployment fails, the second serves)"
curl -s -D /dev/stderr http://127.0.0.1:8080/v1/chat/completions \
  -H "Authorization: Bearer $TOLLGATE_OPERATOR_KEY" -H "content-type: application/json" \
  -d '{"model":"gpt-demo-fallback","max_tokens":8,"messages":[{"role":"user","content":"Hello, Tollgate!"}]}' 2> >(grep -i '^x-' >&2)
echo
echo
echo "Gateway: http://127.0.0.1:8080/v1  key: $TOLLGATE_OPERATOR_KEY"
echo "Admin UI: http://127.0.0.1:8080/admin  (sign in as admin / $TOLLGATE_DEMO_PASSWORD; Ctrl-C to stop)"
wait
