#!/usr/bin/env bash
# Instructions per value of one shard core's user-space ingest path (decode, hash, batch,
# apply; no kernel), counted by valgrind's cachegrind: the same on every run of a build, so
# two builds can be compared on a noisy host where timings cannot (bench/README.md).
#
#   bench/instructions.sh                    # StatsD 100k series and m3msg 1M series
#   bench/instructions.sh --passes 5 --json bench/results/instructions-$(date +%F).json
#   bench/instructions.sh --bin /tmp/instructions-old   # a bench binary built earlier
#
# Each case runs `benches/instructions.rs` twice under cachegrind, with 0 passes and with P
# (both start with one pass that creates every series), and divides the difference by the
# values of P passes. Needs valgrind (`apt-get install -y valgrind`); a case takes ~1 minute.
set -euo pipefail
cd "$(dirname "$0")/.."

passes=3
json=""
bin=""
while [ $# -gt 0 ]; do
    case "$1" in
        --passes) passes=$2; shift 2 ;;
        --json) json=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install -y valgrind" >&2; exit 1; }
if [ -z "$bin" ]; then
    bin=$(cargo bench -p sheaf-bench --bench instructions --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "instructions" and m.get("executable"):
        print(m["executable"])')
fi

# Instructions cachegrind counted for one run of the bench binary.
count() {
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$bin" "$@" 2>&1 >/dev/null |
        awk '/I *refs:/ { gsub(",", "", $NF); print $NF }'
}

results=()
for case in "statsd 100000" "m3msg 1000000"; do
    set -- $case
    protocol=$1 series=$2
    base=$(count --protocol "$protocol" --series "$series" --passes 0)
    with=$(count --protocol "$protocol" --series "$series" --passes "$passes")
    values=$("$bin" --protocol "$protocol" --series "$series" --passes 0 | sed 's/.*values_per_pass \([0-9]*\).*/\1/')
    per_value=$(python3 -c "print(round(($with - $base) / ($passes * $values), 1))")
    echo "$protocol $series series: $per_value instructions per value ($passes passes of $values values)"
    results+=("{\"protocol\": \"$protocol\", \"series\": $series, \"passes\": $passes, \"values_per_pass\": $values, \"instructions_per_value\": $per_value}")
done

if [ -n "$json" ]; then
    commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    dirty=$(git diff --quiet 2>/dev/null && echo false || echo true)
    cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    {
        echo "{\"date\": \"$(date -u +%FT%TZ)\", \"commit\": \"$commit\", \"dirty\": $dirty, \"cpu\": \"$cpu\","
        echo " \"valgrind\": \"$(valgrind --version)\", \"cases\": ["
        (IFS=,; echo "  ${results[*]}")
        echo "]}"
    } >"$json"
    python3 -m json.tool "$json" >/dev/null
    echo "wrote $json"
fi
