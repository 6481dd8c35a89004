#!/usr/bin/env bash
# Bounded load test on this machine (docs/performance.md#load): for each
# signing algorithm, starts Gatehouse on a loopback port with a fresh
# database, makes root@load.test an administrator, and runs the load tool
# (examples/loadtest) once per mode. The refresh mode first measures the
# machine's signing ceiling and reports refreshes as a share of it.
#
#   scripts/load.sh                                  # SQLite, every alg and mode
#   LOAD_POSTGRES_DSN=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
#     ALGS=RS256 MODES=refresh scripts/load.sh       # a fresh schema per run
#   GATEHOUSE_BIN=/tmp/old/gatehouse scripts/load.sh # another build of Gatehouse
#
# Settings: ALGS (RS256 ES256 EdDSA), MODES (refresh client_credentials
# token_exchange introspect me signin jwks), DURATION (12s), CONCURRENCY
# (16), PERMISSIONS (20: the users' role in organization "load"), PORT
# (18090), LOAD_POSTGRES_DSN (PostgreSQL server for a private schema per
# run; else SQLite in a temporary folder), GATEHOUSE_BIN (else built from
# this tree), LOADTEST_BIN (else built from this tree), SERVER_ENV (more
# GATEHOUSE_* settings, space-separated).
set -euo pipefail
cd "$(dirname "$0")/.."
ALGS=${ALGS:-RS256 ES256 EdDSA}
MODES=${MODES:-refresh client_credentials token_exchange introspect me signin jwks}
DURATION=${DURATION:-12s}
CONCURRENCY=${CONCURRENCY:-16}
PERMISSIONS=${PERMISSIONS:-20}
PORT=${PORT:-18090}
work=$(mktemp -d)
pid=
schema=
cleanup() {
  if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [[ -n $schema ]]; then psql -q "$LOAD_POSTGRES_DSN" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat > "$work/gatehouse.yaml" <<YAML
clients:
  - id: load                      # the application under load (client_secret_basic)
    secret: \${LOAD_SECRET}
    redirect_uris: [http://127.0.0.1:9/load/callback]
    grant_types: [authorization_code, refresh_token, client_credentials, "urn:ietf:params:oauth:grant-type:token-exchange"]
    scopes: [reports:read]
    introspect_any: true
  - id: load-admin                # the administrator's console: makes the organization and its role
    public: true
    redirect_uris: [http://127.0.0.1:9/admin/callback]
    audience: [gatehouse-admin]
org_sync:
  rules:
    - {match: "dev:group:load", org: load, role: load}
YAML
bin=${GATEHOUSE_BIN:-}
if [[ -z $bin ]]; then
  go build -o "$work/gatehouse" ./cmd/gatehouse
  bin=$work/gatehouse
fi
lt=${LOADTEST_BIN:-}
if [[ -z $lt ]]; then
  go build -o "$work/loadtest" ./examples/loadtest
  lt=$work/loadtest
fi

export LOAD_SECRET=$secret
results=()
for alg in $ALGS; do
  if [[ -n ${LOAD_POSTGRES_DSN:-} ]]; then
    schema=load_$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
    psql -q "$LOAD_POSTGRES_DSN" -c "CREATE SCHEMA $schema" >/dev/null
    sep='?'; [[ $LOAD_POSTGRES_DSN == *\?* ]] && sep='&'
    db="$LOAD_POSTGRES_DSN${sep}search_path=$schema"
    dbname="PostgreSQL (schema $schema)"
  else
    rm -f "$work"/gatehouse.db*
    db=$work/gatehouse.db
    dbname="SQLite (WAL)"
  fi
  # shellcheck disable=SC2086 # SERVER_ENV is a list of settings
  env GATEHOUSE_ADDR=127.0.0.1:$PORT GATEHOUSE_ISSUER=http://127.0.0.1:$PORT GATEHOUSE_CONFIG="$work/gatehouse.yaml" \
    GATEHOUSE_SIGNING_ALG="$alg" GATEHOUSE_RATE_LIMIT=0 GATEHOUSE_LOG_LEVEL=warn GATEHOUSE_DEV_LOGIN=true \
    GATEHOUSE_DATABASE_URL="$db" ${SERVER_ENV:-} sh -c '"$1" migrate up && "$1" admin grant root@load.test' _ "$bin" \
    > "$work/setup.log" 2>&1 || { cat "$work/setup.log"; exit 1; }
  # shellcheck disable=SC2086
  env GATEHOUSE_ADDR=127.0.0.1:$PORT GATEHOUSE_ISSUER=http://127.0.0.1:$PORT GATEHOUSE_CONFIG="$work/gatehouse.yaml" \
    GATEHOUSE_SIGNING_ALG="$alg" GATEHOUSE_RATE_LIMIT=0 GATEHOUSE_LOG_LEVEL=warn GATEHOUSE_DEV_LOGIN=true \
    GATEHOUSE_DATABASE_URL="$db" ${SERVER_ENV:-} "$bin" serve > "$work/gatehouse.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { cat "$work/gatehouse.log"; exit 1; }

  echo "=== $alg on $dbname, $(nproc) cores, $(uptime | sed 's/.*load average/load average/')"
  for mode in $MODES; do
    pgcpu=false; [[ -n ${LOAD_POSTGRES_DSN:-} ]] && pgcpu=true
    "$lt" -url "http://127.0.0.1:$PORT" -client load -secret "$secret" -mode "$mode" \
      -duration "$DURATION" -concurrency "$CONCURRENCY" -permissions "$PERMISSIONS" \
      -user-prefix "load-$alg-$mode" -server-pid "$pid" -postgres-cpu=$pgcpu | tee "$work/out.txt" || true
    results+=("$(grep '^RESULT' "$work/out.txt" || echo "RESULT mode=$mode alg=$alg failed")")
  done

  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  if [[ -n $schema ]]; then PGOPTIONS=--client-min-messages=warning psql -q "$LOAD_POSTGRES_DSN" -c "DROP SCHEMA $schema CASCADE" >/dev/null; schema=; fi
done

echo
echo "=== summary ($(date -u +%Y-%m-%dT%H:%MZ), $(uptime | sed 's/.*load average/load average/'))"
printf '%s\n' "${results[@]}"
