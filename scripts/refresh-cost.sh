#!/usr/bin/env bash
# Instructions per refresh grant in Gatehouse's process, counted by
# callgrind: repeatable on a busy machine, where timings are not.
#
#   scripts/refresh-cost.sh [app test binary ...]
#
# Each binary is built by `go test -c -o X ./app/` (default: this tree's,
# built to a temporary folder). For each database in DBS (sqlite postgres)
# and algorithm in ALGS (ES256 RS256) it runs TestRefreshCostWindow under
# callgrind with instrumentation off, turns it on once the chain is warm,
# counts N refreshes (200), and prints instructions per refresh. Several
# binaries are run interleaved, ROUNDS times (1), to compare builds.
# PostgreSQL: GATEHOUSE_TEST_POSTGRES_DSN (its server's instructions are
# not counted: only Gatehouse's process).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200}
DBS=${DBS:-sqlite postgres}
ALGS=${ALGS:-ES256 RS256}
ROUNDS=${ROUNDS:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
	go test -c -o "$work/app.test" ./app/
	bins=("$work/app.test")
fi

wait_for() { # file pid log
	while [ ! -e "$1" ]; do
		kill -0 "$2" 2>/dev/null || { echo "the run ended before $1:" >&2; cp "$3" "${TMPDIR:-/tmp}/refresh-cost-failed.log"; tail -5 "$3" >&2; return 1; }
		sleep 0.2
	done
}

run() { # binary db alg
	local d="$work/run.$RANDOM$RANDOM"
	mkdir -p "$d"
	# No asynchronous preemption: its signals crash Go programs under
	# valgrind now and then.
	( cd app && GODEBUG=asyncpreemptoff=1 GATEHOUSE_COST_SYNC="$d" GATEHOUSE_COST_DB="$2" GATEHOUSE_COST_ALG="$3" GATEHOUSE_COST_N="$N" \
		exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$d/cg.out" \
		"$1" -test.run '^TestRefreshCostWindow$' -test.count=1 -test.timeout 2h >"$d/log" 2>&1 ) &
	local pid=$!
	wait_for "$d/ready" "$pid" "$d/log"
	callgrind_control -i on "$pid" >/dev/null 2>&1
	touch "$d/go"
	wait_for "$d/done" "$pid" "$d/log"
	callgrind_control -d "$pid" >/dev/null 2>&1
	callgrind_control -i off "$pid" >/dev/null 2>&1
	touch "$d/exit"
	wait "$pid" || { cat "$d/log" >&2; return 1; }
	local ir
	ir=$(grep -h '^summary:' "$d"/cg.out.*1 2>/dev/null | head -1 | awk '{print $2}')
	[ -n "$ir" ] || { echo "no dump in $d" >&2; ls "$d" >&2; return 1; }
	printf '%-40s %-8s %-6s %6d refreshes  %12d instructions/refresh\n' "$(basename "$1")" "$2" "$3" "$N" $((ir / N))
}

for _ in $(seq "$ROUNDS"); do
	for db in $DBS; do
		for alg in $ALGS; do
			for b in "${bins[@]}"; do
				run "$(realpath "$b")" "$db" "$alg"
			done
		done
	done
done
