#!/usr/bin/env bash
# Runs every fuzz target (go test -fuzz) for a given time, one after the
# other, and prints a Markdown table: target, package, time, executions,
# new corpus entries, findings. Not part of CI: `go test ./...` already
# replays the checked-in seeds under testdata/fuzz on every run.
#
#   scripts/fuzz.sh                        # every target, 5 minutes each
#   FUZZTIME=30s scripts/fuzz.sh           # a quick pass
#   scripts/fuzz.sh FuzzSAMLResponse       # only targets matching a regexp
#   PARALLEL=1 scripts/fuzz.sh             # fuzz workers per target (default: all cores)
#   MINIMIZE=5s                            # time to minimize each new input (default 5s)
#
# A finding is a failing input: go test writes it under the package's
# testdata/fuzz/<Target>/ (commit it once fixed: it becomes a regression
# seed) and this script exits 1. The full output of each run is kept in
# $LOGDIR (default a temporary folder, printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-5m}
PARALLEL=${PARALLEL:-$(nproc)}
# Go minimizes each new interesting input for up to 60 s by default, and
# the run shows "0/sec" meanwhile; a few seconds keeps the time fuzzing.
MINIMIZE=${MINIMIZE:-5s}
FILTER=${1:-.}
LOGDIR=${LOGDIR:-$(mktemp -d)}
mkdir -p "$LOGDIR"

# Each package's fuzz targets, as "package target" lines (read from the
# test sources: compiling every package just to list them is slow).
targets=()
while IFS=: read -r file name; do
  targets+=("./$(dirname "$file") $name")
done < <(git grep -h -o -E '^func Fuzz[A-Za-z0-9_]+' -- '*_test.go' >/dev/null 2>&1 &&
  git grep -o -E '^func Fuzz[A-Za-z0-9_]+' -- '*_test.go' | sed 's/func //')

found=0
echo "Fuzzing on $(uname -m), $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ //') ($(nproc) cores), $(go version | cut -d' ' -f3), $(date -u +%Y-%m-%d)"
echo
echo "| target | package | time | executions | new corpus | findings |"
echo "|---|---|---|---|---|---|"
for entry in "${targets[@]}"; do
  pkg=${entry% *}; name=${entry#* }
  [[ "$name" =~ $FILTER ]] || continue
  log="$LOGDIR/$name.log"
  status=ok
  go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$MINIMIZE" -parallel "$PARALLEL" "$pkg" >"$log" 2>&1 || status=fail
  # The last progress line carries the totals: "execs: N (R/sec), new interesting: K (total: T)".
  last=$(grep -E 'fuzz: elapsed: .*execs: ' "$log" | tail -n1 || true)
  execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
  newc=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
  if [ "$status" = fail ]; then
    found=1
    finding="FAILED: see $log"
  else
    finding=none
  fi
  echo "| $name | ${pkg#./} | $FUZZTIME | ${execs:-?} | ${newc:-?} | $finding |"
done
echo
echo "logs: $LOGDIR"
exit $found
