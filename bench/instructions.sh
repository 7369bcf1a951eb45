#!/usr/bin/env bash
# Instructions per value of one shard core's user-space ingest path (decode, hash, batch,
# apply; no kernel), counted by valgrind's cachegrind, and per value a flush emits (callgrind,
# inside `flush_shard` only: 100k series of the 60/20/20 mix, 1M counters): the same on every
# run of a build, so two builds can be compared on a noisy host where timings cannot
# (bench/README.md).
#
#   bench/instructions.sh                    # StatsD 100k series and m3msg 1M series
#   bench/instructions.sh --passes 5 --json bench/results/instructions-$(date +%F).json
#   bench/instructions.sh --bin /tmp/instructions-old   # a bench binary built earlier
#   bench/instructions.sh --plain            # without the committed profile (SHEAF_PGO=0)
#   bench/instructions.sh --pgo              # with a profile trained on this bench itself
#   bench/instructions.sh --by-line          # and where they go, by source line (ir_by_line.py)
#
# The default build is the release build users get, with the committed profile
# (perf/pgo/sheaf.profdata, see perf/README.md); --plain builds without it, in target/plain.
# Each case runs `benches/instructions.rs` twice under cachegrind, with 0 passes and with P
# (both start with one pass that creates every series), and divides the difference by the
# values of P passes. Needs valgrind (`apt-get install -y valgrind`); a case takes ~1 minute.
# With --pgo the bench is built twice, the second time with the profile of a run of the first
# (target/pgo-bench-gen, target/pgo-bench; needs llvm-profdata, see perf/pgo.sh): what a
# change does to the build users should run, with less of the register-allocation noise a
# plain build shows from one change to the next.
set -euo pipefail
cd "$(dirname "$0")/.."

passes=3
json=""
bin=""
pgo=""
plain=""
by_line=""
while [ $# -gt 0 ]; do
    case "$1" in
        --passes) passes=$2; shift 2 ;;
        --json) json=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        --pgo) pgo=1; shift ;;
        --plain) plain=1; shift ;;
        --by-line) by_line=1; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install -y valgrind" >&2; exit 1; }
# Builds the bench (with the environment given) and prints its path.
build() {
    env "$@" cargo bench -p sheaf-bench --bench instructions --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "instructions" and m.get("executable"):
        print(m["executable"])'
}
if [ -n "$pgo" ]; then
    source perf/pgo/find-profdata.sh
    raw=$(pwd)/target/pgo-bench-gen/profile-raw
    profile=$(pwd)/target/pgo-bench/instructions.profdata
    rm -rf "$raw"
    mkdir -p "$(dirname "$profile")"
    trained=$(build CARGO_TARGET_DIR=target/pgo-bench-gen RUSTFLAGS="-Cprofile-generate=$raw")
    "$trained" --protocol statsd --passes 2 >/dev/null
    "$trained" --protocol m3msg --series 1000000 --passes 1 >/dev/null
    "$trained" --protocol flush --passes 2 >/dev/null
    "$profdata" merge -o "$profile" "$raw"
    bin=$(build CARGO_TARGET_DIR=target/pgo-bench RUSTFLAGS="-Cprofile-use=$profile")
elif [ -n "$plain" ]; then
    bin=$(build SHEAF_PGO=0 CARGO_TARGET_DIR=target/plain)
elif [ -z "$bin" ]; then
    bin=$(build)
fi
[ -x "$bin" ] || { echo "the instructions bench did not build" >&2; exit 1; }

# One run of the bench binary under cachegrind: prints the instructions it counted and the
# values of one pass (from the bench's own output).
count() {
    local out
    out=$(valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$bin" "$@" 2>&1)
    echo "$(awk '/I *refs:/ { gsub(",", "", $NF); print $NF }' <<<"$out") $(sed -n 's/.*values_per_pass \([0-9]*\).*/\1/p' <<<"$out")"
}

# The flush case under callgrind, counting only what `flush_shard` executes (the refill of
# the windows before each flush is not counted): prints the instructions and the values
# emitted per pass.
count_flush() {
    local out
    out=$(valgrind --tool=callgrind --toggle-collect='*flush_shard*' --callgrind-out-file=/dev/null "$bin" "$@" 2>&1)
    echo "$(awk '/Collected :/ { print $NF }' <<<"$out") $(sed -n 's/.*values_per_pass \([0-9]*\).*/\1/p' <<<"$out")"
}

results=()
for case in "statsd 100000" "m3msg 1000000" "flush 100000 60,20,20" "flush 1000000 100,0,0"; do
    set -- $case
    protocol=$1 series=$2 mix=${3:-60,20,20}
    counter=count
    [ "$protocol" = flush ] && counter=count_flush
    read -r base values < <($counter --protocol "$protocol" --series "$series" --mix "$mix" --passes 0)
    read -r with _ < <($counter --protocol "$protocol" --series "$series" --mix "$mix" --passes "$passes")
    per_value=$(python3 -c "print(round(($with - $base) / ($passes * $values), 1))")
    echo "$protocol $series series (mix $mix): $per_value instructions per value ($passes passes of $values values)"
    if [ -n "$by_line" ] && [ "$protocol" != flush ]; then
        # callgrind, unlike this cachegrind, can dump a count per instruction address.
        for p in 0 "$passes"; do
            valgrind --tool=callgrind --dump-instr=yes --dump-line=no --compress-pos=no --compress-strings=no \
                --callgrind-out-file="target/callgrind-$protocol-$p.out" "$bin" \
                --protocol "$protocol" --series "$series" --passes "$p" >/dev/null 2>&1
        done
        for view in "--function CoreAggregator::apply --view outer" "--view inner"; do
            # shellcheck disable=SC2086 # the view is two options
            python3 bench/ir_by_line.py "$bin" "target/callgrind-$protocol-0.out" \
                "target/callgrind-$protocol-$passes.out" "$((passes * values))" $view --top 20
        done
    fi
    results+=("{\"protocol\": \"$protocol\", \"series\": $series, \"mix\": \"$mix\", \"passes\": $passes, \"values_per_pass\": $values, \"instructions_per_value\": $per_value}")
done

if [ -n "$json" ]; then
    commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    dirty=$(git diff --quiet 2>/dev/null && echo false || echo true)
    cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    {
        echo "{\"date\": \"$(date -u +%FT%TZ)\", \"commit\": \"$commit\", \"dirty\": $dirty, \"pgo\": $([ -n "$pgo" ] && echo true || echo false), \"cpu\": \"$cpu\","
        echo " \"valgrind\": \"$(valgrind --version)\", \"cases\": ["
        (IFS=,; echo "  ${results[*]}")
        echo "]}"
    } >"$json"
    python3 -m json.tool "$json" >/dev/null
    echo "wrote $json"
fi
