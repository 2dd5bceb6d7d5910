#!/usr/bin/env bash
# The compose topology without containers, for machines with no container engine (CI): the mock
# provider, two gateway replicas on a fresh Postgres database and the shared Redis, nginx in
# front with infra/compose/nginx.conf (its upstreams pointed at the replicas' ports), then
# infra/compose/smoke.py through nginx. Needs the debug binaries (cargo build --workspace --bins),
# nginx, and Postgres and Redis running (TOLLGATE_TEST_POSTGRES, TOLLGATE_TEST_REDIS).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${TOLLGATE_BIN_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/debug}
PG=${TOLLGATE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS=${TOLLGATE_TEST_REDIS:-redis://127.0.0.1:6379}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "FATAL: nginx is not installed"; exit 1; }

work=$(mktemp -d)
db="tollgate_smoke_$$"
pids=()
cleanup() {
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2> /dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
  wait 2> /dev/null || true
  psql "$PG" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" > /dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

psql "$PG" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
psql "$PG" -qc "CREATE DATABASE $db"
export TOLLGATE_DATABASE_URL="${PG%/*}/$db"
export TOLLGATE_OPERATOR_KEY=tg-smoke-operator-key
export TOLLGATE_JWT_SECRET=smoke-jwt-secret-0123456789abcdef0123
export TOLLGATE_METRICS_TOKEN=smoke-metrics-token-0123456789

mock_port=$(free_port)
"$BIN/mock-provider" --port "$mock_port" > "$work/mock.log" 2>&1 &
pids+=($!)
sed -e "s#http://mock:9100#http://127.0.0.1:$mock_port#" -e 's#host = "0.0.0.0"#host = "127.0.0.1"#' \
  infra/compose/tollgate.toml > "$work/tollgate.toml"
"$BIN/tollgate" migrate
"$BIN/tollgate" prices import --overrides infra/demo/prices.toml --note smoke > /dev/null

ports=()
for i in 1 2; do
  port=$(free_port)
  TOLLGATE_PORT=$port TOLLGATE_REDIS_URL=$REDIS "$BIN/tollgate" serve --config "$work/tollgate.toml" \
    > "$work/gateway-$i.log" 2>&1 &
  pids+=($!)
  ports+=("$port")
done
for port in "${ports[@]}"; do
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" > /dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$port/readyz" > /dev/null || { cat "$work"/gateway-*.log; echo "FATAL: a replica did not start"; exit 1; }
done

lb=$(free_port)
sed -e "s#server gateway-1:8080;#server 127.0.0.1:${ports[0]};#" \
    -e "s#server gateway-2:8080;#server 127.0.0.1:${ports[1]};#" \
    -e "s#listen 8080;#listen 127.0.0.1:$lb;#" \
    -e "s#^http {#http {\n    access_log off;\n    client_body_temp_path $work/body;\n    proxy_temp_path $work/proxy;#" \
    infra/compose/nginx.conf > "$work/nginx.conf"
grep -q "127.0.0.1:${ports[1]}" "$work/nginx.conf" || { echo "FATAL: nginx.conf's upstreams changed"; exit 1; }
"$NGINX" -p "$work" -c "$work/nginx.conf" -g "pid $work/nginx.pid; error_log $work/nginx-error.log;"
for _ in $(seq 1 50); do [ -f "$work/nginx.pid" ] && break; sleep 0.1; done

echo "balancer 127.0.0.1:$lb -> replicas ${ports[*]}; mock $mock_port; database $db"
if ! python3 infra/compose/smoke.py --url "http://127.0.0.1:$lb" --cli "$BIN/tollgate" \
    --replica "http://127.0.0.1:${ports[0]}" --replica "http://127.0.0.1:${ports[1]}" \
    --metrics-token "$TOLLGATE_METRICS_TOKEN"; then
  tail -n 20 "$work"/gateway-*.log "$work/nginx-error.log" || true
  exit 1
fi
