#!/usr/bin/env bash
# Bounded load test on this machine: starts Gatehouse on a loopback port
# with a fresh SQLite database (or GATEHOUSE_DATABASE_URL), then sends
# client_credentials token requests and JWKS reads for a fixed time.
#   scripts/load.sh                 # RS256, 15 s per run, 16 workers
#   ALG=ES256 DURATION=30s scripts/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ALG=${ALG:-RS256}
DURATION=${DURATION:-15s}
CONCURRENCY=${CONCURRENCY:-16}
PORT=${PORT:-18090}
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat > "$work/gatehouse.yaml" <<YAML
clients:
  - id: load
    secret: \${LOAD_SECRET}
    grant_types: [client_credentials]
    scopes: [reports:read]
YAML
go build -o "$work/gatehouse" ./cmd/gatehouse
go build -o "$work/loadtest" ./examples/loadtest

export LOAD_SECRET=$secret
GATEHOUSE_ADDR=127.0.0.1:$PORT GATEHOUSE_CONFIG="$work/gatehouse.yaml" GATEHOUSE_SIGNING_ALG=$ALG \
  GATEHOUSE_RATE_LIMIT=0 GATEHOUSE_LOG_LEVEL=warn GATEHOUSE_DEV_LOGIN=false \
  GATEHOUSE_DATABASE_URL=${GATEHOUSE_DATABASE_URL:-$work/gatehouse.db} \
  "$work/gatehouse" > "$work/gatehouse.log" 2>&1 &
pid=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done

echo "== $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), signing $ALG"
"$work/loadtest" -url "http://127.0.0.1:$PORT" -client load -secret "$secret" -path /auth/token \
  -duration "$DURATION" -concurrency "$CONCURRENCY"
"$work/loadtest" -url "http://127.0.0.1:$PORT" -path /.well-known/jwks.json \
  -duration "$DURATION" -concurrency "$CONCURRENCY"
