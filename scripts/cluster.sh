#!/usr/bin/env bash
# A Gatehouse cluster on this machine, loopback only (docs/operations.md):
# a PostgreSQL server of its own (a fresh data folder; installed from
# Debian's packages when missing), a Redis of its own, three replicas
# built once with `go build`, a fake upstream OpenID Connect provider
# (examples/fakeidp), the example backend (examples/backend) and HAProxy
# in front, health-checking /readyz. Everything lives in one state folder
# (pids, logs, configuration) and `down` stops it all.
#
#   scripts/cluster.sh up        # start (fresh database each time)
#   scripts/cluster.sh status    # what runs, /readyz of each replica, HAProxy's view
#   scripts/cluster.sh soak      # the mixed-traffic soak through HAProxy (DURATION, default 60s)
#   scripts/cluster.sh fault NAME [seconds]
#                                # kill-replica | restart-postgres | stop-redis | upstream-down | rotate-key
#   scripts/cluster.sh chaos     # the soak with every fault at its time (DURATION, default 600s)
#   scripts/cluster.sh down      # stop everything and remove the state folder
#
# The cluster's own PostgreSQL and Redis run on their own ports, so the
# faults that stop them touch nothing else on the machine. Settings:
# CLUSTER_DIR (/tmp/gatehouse-cluster), CLUSTER_PORT_BASE (18100: HAProxy
# on it, replicas on +1..+3, the backend on +10, HAProxy's stats on +90,
# PostgreSQL on +332, Redis on +279, the fake provider on +600 and +601),
# GATEHOUSE_BIN (else built from this tree), KEY_PUBLISH_LEAD (150s),
# JWKS_MAX_AGE (60s).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=${CLUSTER_DIR:-/tmp/gatehouse-cluster}
base=${CLUSTER_PORT_BASE:-18100}
lb_port=$base
stats_port=$((base + 90))
backend_port=$((base + 10))
pg_port=$((base + 332))
redis_port=$((base + 279))
idp_port=$((base + 600))
idp_admin_port=$((base + 601))
replicas=(1 2 3)
issuer=http://127.0.0.1:$lb_port
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { echo "cluster: $*" >&2; exit 1; }
replica_port() { echo $((base + $1)); }
pid_of() { [[ -f $dir/pids/$1.pid ]] && cat "$dir/pids/$1.pid"; }
alive() { local p; p=$(pid_of "$1") && [[ -n $p ]] && kill -0 "$p" 2>/dev/null; }
as_pg() { runuser -u postgres -- "$@"; }
pg_ctl() { as_pg "$pgbin/pg_ctl" -D "$dir/pg" -l "$dir/logs/postgres.log" -w -t 30 "$@" >/dev/null; }

# wait_for CMD...: up to 30 s.
wait_for() {
  for _ in $(seq 1 150); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

# gh_env: the settings every replica (and the CLI) runs with.
gh_env() {
  # shellcheck disable=SC1091
  source "$dir/secrets.env"
  # shellcheck disable=SC1091
  source "$dir/settings.env" # what `up` was given, for replicas restarted later
  export GATEHOUSE_ISSUER=$issuer GATEHOUSE_CONFIG=$dir/gatehouse.yaml \
    GATEHOUSE_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/gatehouse?sslmode=disable" \
    GATEHOUSE_REDIS_URL=redis://127.0.0.1:$redis_port/0 GATEHOUSE_RATE_LIMIT=${RATE_LIMIT:-100000} \
    GATEHOUSE_SECRET_KEY GATEHOUSE_DEV_LOGIN=false GATEHOUSE_AUTO_MIGRATE=false GATEHOUSE_LOG_LEVEL=${LOG_LEVEL:-warn} \
    GATEHOUSE_TRUSTED_PROXIES=127.0.0.1/32 GATEHOUSE_DB_MAX_OPEN_CONNS=${DB_MAX_OPEN_CONNS:-20} \
    GATEHOUSE_KEY_PUBLISH_LEAD=${KEY_PUBLISH_LEAD:-150s} GATEHOUSE_JWKS_MAX_AGE=${JWKS_MAX_AGE:-60s} \
    LOAD_SECRET UPSTREAM_SECRET KB_BACKEND_SECRET
}

start_replica() {
  local n=$1 port
  port=$(replica_port "$n")
  (gh_env; GATEHOUSE_ADDR=127.0.0.1:$port setsid "$dir/bin/gatehouse" serve >>"$dir/logs/gatehouse-$n.log" 2>&1 &
    echo $! >"$dir/pids/gatehouse-$n.pid")
  wait_for curl -sf "http://127.0.0.1:$port/readyz" || die "replica $n did not become ready: see $dir/logs/gatehouse-$n.log"
  log "replica $n ready on 127.0.0.1:$port (pid $(pid_of "gatehouse-$n"))"
}

start_postgres() {
  pg_ctl -o "-p $pg_port -c listen_addresses=127.0.0.1 -k $dir/pgsock -c max_connections=200 -c fsync=on" start
  wait_for "$pgbin/pg_isready" -h 127.0.0.1 -p "$pg_port" -q || die "PostgreSQL did not start: see $dir/logs/postgres.log"
}

start_redis() {
  redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --daemonize yes \
    --pidfile "$dir/pids/redis.pid" --logfile "$dir/logs/redis.log" >/dev/null
  wait_for redis-cli -p "$redis_port" ping || die "Redis did not start: see $dir/logs/redis.log"
}

up() {
  [[ -d $dir ]] && die "$dir exists: run '$0 down' first"
  if [[ -z $pgbin ]] || ! command -v redis-server >/dev/null || ! command -v haproxy >/dev/null; then
    [[ $(id -u) == 0 ]] || die "PostgreSQL, Redis and HAProxy are needed (apt-get install postgresql redis-server haproxy)"
    log "installing what is missing (postgresql redis-server haproxy)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server haproxy >/dev/null
    pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  fi
  mkdir -p "$dir"/{bin,pids,logs,pgsock}
  chmod 755 "$dir"
  touch "$dir/.gatehouse-cluster" # what `down` checks before removing $dir
  rand() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
  cat >"$dir/secrets.env" <<ENV
GATEHOUSE_SECRET_KEY=$(rand)$(rand)
LOAD_SECRET=$(rand)
UPSTREAM_SECRET=$(rand)
KB_BACKEND_SECRET=$(rand)
ENV
  chmod 600 "$dir/secrets.env"
  cat >"$dir/settings.env" <<ENV
RATE_LIMIT=${RATE_LIMIT:-100000}
LOG_LEVEL=${LOG_LEVEL:-warn}
DB_MAX_OPEN_CONNS=${DB_MAX_OPEN_CONNS:-20}
KEY_PUBLISH_LEAD=${KEY_PUBLISH_LEAD:-150s}
JWKS_MAX_AGE=${JWKS_MAX_AGE:-60s}
ENV

  log "building gatehouse, fakeidp, backend and loadtest"
  if [[ -n ${GATEHOUSE_BIN:-} ]]; then cp "$GATEHOUSE_BIN" "$dir/bin/gatehouse"; else go build -o "$dir/bin/gatehouse" ./cmd/gatehouse; fi
  go build -o "$dir/bin/fakeidp" ./examples/fakeidp
  go build -o "$dir/bin/backend" ./examples/backend
  go build -o "$dir/bin/loadtest" ./examples/loadtest

  log "PostgreSQL $(basename "$(dirname "$pgbin")") on 127.0.0.1:$pg_port (data in $dir/pg)"
  install -d -o postgres -g postgres "$dir/pg" "$dir/pgsock"
  chown postgres "$dir/logs"
  as_pg "$pgbin/initdb" -D "$dir/pg" -U postgres --auth=trust -E UTF8 >"$dir/logs/initdb.log" 2>&1 \
    || die "initdb failed: see $dir/logs/initdb.log"
  start_postgres
  "$pgbin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -qc "CREATE DATABASE gatehouse" >/dev/null

  log "Redis on 127.0.0.1:$redis_port"
  start_redis

  log "fake upstream provider on 127.0.0.1:$idp_port (steering on $idp_admin_port)"
  (source "$dir/secrets.env"; FAKEIDP_CLIENT_SECRET=$UPSTREAM_SECRET setsid "$dir/bin/fakeidp" -addr "127.0.0.1:$idp_port" \
    -admin-addr "127.0.0.1:$idp_admin_port" -client-id gatehouse -key "$dir/fakeidp.pem" >>"$dir/logs/fakeidp.log" 2>&1 &
    echo $! >"$dir/pids/fakeidp.pid")
  wait_for curl -sf "http://127.0.0.1:$idp_port/.well-known/openid-configuration" || die "fakeidp did not start"

  cat >"$dir/gatehouse.yaml" <<YAML
clients:
  - id: load                      # the application under load
    secret: \${LOAD_SECRET}
    redirect_uris: [http://127.0.0.1:9/load/callback]
    grant_types: [authorization_code, refresh_token, client_credentials, "urn:ietf:params:oauth:grant-type:token-exchange"]
    audience: [kb-api]
    introspect_any: true
  - id: load-admin                # the administrators' console
    public: true
    redirect_uris: [http://127.0.0.1:9/admin/callback]
    audience: [gatehouse-admin]
  - id: kb-backend                # the example backend: API keys
    secret: \${KB_BACKEND_SECRET}
    redirect_uris: [http://127.0.0.1:9/kb/callback]
    grant_types: [client_credentials, "urn:ietf:params:oauth:grant-type:token-exchange"]
    audience: [kb-api]
providers:
  - name: upstream
    type: oidc
    issuer: http://127.0.0.1:$idp_port
    client_id: gatehouse
    client_secret: \${UPSTREAM_SECRET}
    insecure_allow_http: true
    trusted_email: true
    claims: {groups: groups}
org_sync:
  rules:
    - {match: "oidc:group:load", org: load, role: load}
YAML

  log "migrations and the first administrator"
  (gh_env; "$dir/bin/gatehouse" migrate up && "$dir/bin/gatehouse" admin grant root@load.test) >"$dir/logs/setup.log" 2>&1 \
    || { cat "$dir/logs/setup.log"; die "setup failed"; }
  for n in "${replicas[@]}"; do start_replica "$n"; done

  log "HAProxy on 127.0.0.1:$lb_port (stats on 127.0.0.1:$stats_port)"
  {
    cat <<CFG
global
    maxconn 4096
    log stdout format raw local0 notice
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 2
    option redispatch
    option http-keep-alive
frontend gatehouse
    bind 127.0.0.1:$lb_port
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 1s fall 2 rise 2 maxconn 256
CFG
    for n in "${replicas[@]}"; do echo "    server r$n 127.0.0.1:$(replica_port "$n") check"; done
    cat <<CFG
frontend stats
    bind 127.0.0.1:$stats_port
    stats enable
    stats uri /
CFG
  } >"$dir/haproxy.cfg"
  haproxy -c -q -f "$dir/haproxy.cfg" || die "haproxy.cfg is not valid"
  setsid haproxy -f "$dir/haproxy.cfg" -db >>"$dir/logs/haproxy.log" 2>&1 &
  echo $! >"$dir/pids/haproxy.pid"
  wait_for curl -sf "$issuer/readyz" || die "HAProxy does not answer: see $dir/logs/haproxy.log"

  log "example backend on 127.0.0.1:$backend_port"
  (source "$dir/secrets.env"; GATEHOUSE_ISSUER=$issuer BACKEND_ADDR=127.0.0.1:$backend_port BACKEND_AUDIENCE=kb-api \
    BACKEND_CLIENT_ID=kb-backend BACKEND_CLIENT_SECRET=$KB_BACKEND_SECRET setsid "$dir/bin/backend" >>"$dir/logs/backend.log" 2>&1 &
    echo $! >"$dir/pids/backend.pid")
  wait_for curl -sf "http://127.0.0.1:$backend_port/readyz" || die "backend not ready: see $dir/logs/backend.log"
  log "up: $issuer (state in $dir)"
}

status() {
  [[ -d $dir ]] || { echo "no cluster ($dir missing)"; return 1; }
  for name in postgres redis fakeidp gatehouse-1 gatehouse-2 gatehouse-3 haproxy backend; do
    case $name in
      postgres) if "$pgbin/pg_isready" -h 127.0.0.1 -p "$pg_port" -q; then s=up; else s=down; fi ;;
      *) if alive "$name"; then s="up (pid $(pid_of "$name"))"; else s=down; fi ;;
    esac
    printf '  %-12s %s\n' "$name" "$s"
  done
  for n in "${replicas[@]}"; do
    printf '  /readyz r%s  %s\n' "$n" "$(curl -s -m 4 "http://127.0.0.1:$(replica_port "$n")/readyz" || echo unreachable)"
  done
  echo "  HAProxy's view:"
  curl -s -m 2 "http://127.0.0.1:$stats_port/;csv" | awk -F, '$1=="replicas" && $2 ~ /^r/ {printf "    %s %s\n", $2, $18}' || true
}

stop_pid() {
  local name=$1 p
  p=$(pid_of "$name") || return 0
  if [[ -n $p ]] && kill -0 "$p" 2>/dev/null; then
    kill "$p" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null || true
  fi
  rm -f "$dir/pids/$name.pid"
}

down() {
  [[ -d $dir ]] || { echo "no cluster ($dir missing)"; return 0; }
  # CLUSTER_DIR is removed whole: only a directory `up` made (the marker,
  # or the layout of a cluster started before it).
  [[ -f $dir/.gatehouse-cluster || (-f $dir/secrets.env && -f $dir/settings.env && -d $dir/pids) ]] ||
    die "$dir was not made by '$0 up' (no .gatehouse-cluster in it): not removing it"
  for name in backend haproxy gatehouse-1 gatehouse-2 gatehouse-3 fakeidp; do stop_pid "$name"; done
  redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  stop_pid redis
  if [[ -n $pgbin && -f $dir/pg/postmaster.pid ]]; then pg_ctl -m fast stop || true; fi
  rm -rf "$dir"
  log "down"
}

# fail_open: each replica's gatehouse_rate_limit_fail_open_total.
fail_open() {
  local n out=()
  for n in "${replicas[@]}"; do
    out+=("r$n $(curl -s -m 3 "http://127.0.0.1:$(replica_port "$n")/metrics" | awk '$1=="gatehouse_rate_limit_fail_open_total"{print $2}')")
  done
  echo "rate-limit fail-open so far: ${out[*]}"
}

# fault NAME [seconds]: one fault, logged with its times in faults.log.
fault() {
  [[ -d $dir ]] || die "no cluster"
  local name=${1:-} secs=${2:-}
  note() { log "$*" | tee -a "$dir/faults.log"; }
  case $name in
    kill-replica)
      local n=${REPLICA:-2}
      note "fault kill-replica: SIGKILL replica $n (pid $(pid_of "gatehouse-$n"))"
      kill -9 "$(pid_of "gatehouse-$n")"
      sleep "${secs:-5}"
      note "fault kill-replica: restarting replica $n"
      start_replica "$n" | tee -a "$dir/faults.log"
      ;;
    restart-postgres)
      note "fault restart-postgres: stopping PostgreSQL (fast)"
      pg_ctl -m fast stop
      sleep "${secs:-5}"
      note "fault restart-postgres: starting PostgreSQL"
      start_postgres
      note "fault restart-postgres: PostgreSQL accepts connections"
      ;;
    stop-redis)
      note "fault stop-redis: stopping Redis ($(fail_open))"
      redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
      sleep "${secs:-30}"
      note "fault stop-redis: starting Redis"
      start_redis
      note "fault stop-redis: Redis answers ($(fail_open))"
      ;;
    upstream-down)
      # With RESTART_REPLICA=N, replica N restarts 10 s into the outage: it
      # starts without the upstream's discovery (degraded) and gets it back
      # when the upstream returns.
      local t=${secs:-60} i r=${RESTART_REPLICA:-}
      note "fault upstream-down: discovery and JWKS unreachable for ${t}s ($(curl -s "http://127.0.0.1:$idp_admin_port/stats"))"
      curl -sf -X POST "http://127.0.0.1:$idp_admin_port/down" >/dev/null
      for ((i = 0; i < t; i += 10)); do
        sleep $((t - i < 10 ? t - i : 10))
        if [[ -n $r && $i == 0 ]]; then
          note "  restarting replica $r (SIGTERM) while the upstream is down"
          stop_pid "gatehouse-$r"
          start_replica "$r" | tee -a "$dir/faults.log"
        fi
        for n in "${replicas[@]}"; do
          note "  /readyz r$n: $(curl -s -m 4 "http://127.0.0.1:$(replica_port "$n")/readyz")"
        done
      done
      curl -sf -X POST "http://127.0.0.1:$idp_admin_port/up" >/dev/null
      note "fault upstream-down: discovery and JWKS back ($(curl -s "http://127.0.0.1:$idp_admin_port/stats"))"
      if [[ -n $r ]]; then
        local w=0
        until curl -s -m 4 "http://127.0.0.1:$(replica_port "$r")/readyz" | grep -q '"status":"ready"'; do
          sleep 1; w=$((w + 1)); ((w < 120)) || break
        done
        note "  replica $r /readyz after ${w}s: $(curl -s -m 4 "http://127.0.0.1:$(replica_port "$r")/readyz")"
      fi
      ;;
    rotate-key)
      local n=${REPLICA:-1}
      note "fault rotate-key: gatehouse keys rotate with replica $n's settings"
      (gh_env; "$dir/bin/gatehouse" keys rotate) 2>&1 | tee -a "$dir/faults.log"
      ;;
    backend-refusals)
      # Not a fault: what the example backend refused, by reason.
      note "backend refusals so far: $(grep -o '"reason":"[^"]*","description":"[^"]*"' "$dir/logs/backend.log" | sort | uniq -c | tr '\n' ';' || true)"
      ;;
    *) die "unknown fault '${name}': kill-replica, restart-postgres, stop-redis, upstream-down or rotate-key" ;;
  esac
}

soak() {
  [[ -d $dir ]] || die "no cluster: run '$0 up' first"
  # shellcheck disable=SC1091
  source "$dir/secrets.env"
  local urls=()
  for n in "${replicas[@]}"; do urls+=("http://127.0.0.1:$(replica_port "$n")"); done
  "$dir/bin/loadtest" -mode mix -url "$issuer" -client load -secret "$LOAD_SECRET" -provider upstream \
    -duration "${DURATION:-60s}" -concurrency "${CONCURRENCY:-12}" -progress 10s \
    -backend "http://127.0.0.1:$backend_port" -replicas "$(IFS=,; echo "${urls[*]}")" \
    -upstream-admin "http://127.0.0.1:$idp_admin_port" -user-prefix "soak-$(date +%s)" "$@"
}

# chaos: the soak for DURATION (600s) with each fault at its time, one
# after the other; the soak's output goes to $dir/chaos.txt and the
# faults' times to $dir/faults.log.
chaos() {
  [[ -d $dir ]] || die "no cluster: run '$0 up' first"
  local d=${DURATION:-600s} t0
  d=${d%s}
  ((d >= 420)) || die "chaos needs DURATION of at least 420s (the faults take 6 minutes)"
  : >"$dir/faults.log"
  DURATION=${d}s soak "$@" >"$dir/chaos.txt" 2>&1 &
  local soak_pid=$!
  t0=$(date +%s)
  at() { local s=$(($1 - ($(date +%s) - t0))); ((s > 0)) && sleep "$s"; return 0; }
  at 45;  fault kill-replica 5
  at 90;  fault restart-postgres 5
  at 135; fault stop-redis 20
  at 180; fault rotate-key
  at 240; RESTART_REPLICA=3 fault upstream-down 60
  at $((d - 30)); fault backend-refusals
  wait "$soak_pid" || true
  fault backend-refusals
  log "chaos done: $dir/chaos.txt, $dir/faults.log"
  grep '^RESULT' "$dir/chaos.txt" || true
}

case ${1:-} in
  chaos) shift; chaos "$@" ;;
  up) up ;;
  down) down ;;
  status) status ;;
  fault) shift; fault "$@" ;;
  soak) shift; soak "$@" ;;
  *) echo "usage: $0 up|down|status|soak|fault NAME [seconds]" >&2; exit 2 ;;
esac
