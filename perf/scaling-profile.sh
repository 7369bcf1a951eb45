#!/usr/bin/env bash
# Where the extra CPU of two shard cores goes: profiles the `scaling` bench (m3msg decode,
# hand-off and apply on pinned cores, no sender, no kernel) on 1 and on 2 cores doing the
# same work, keeps only the samples of the timed part (not the set-up), and renders a
# flamegraph of each and a differential one (red: more time on 2 cores, blue: less).
#
#   perf/scaling-profile.sh [--series N] [--passes P] [--out DIR]
#
# Writes DIR/scaling-1-core.svg, DIR/scaling-2-cores.svg, DIR/scaling-2-vs-1-diff.svg (default
# DIR: perf/results) and prints the CPU each run spent in its timed part and the functions
# whose self time changed most. Same needs as perf/profile.sh (perf, inferno, frame pointers).
set -euo pipefail
cd "$(dirname "$0")/.."
series=1000000
passes=40
out=perf/results
while [ $# -gt 0 ]; do
  case "$1" in
    --series) series=$2; shift 2 ;;
    --passes) passes=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
source perf/tools.sh
bin=$(RUSTFLAGS="-C force-frame-pointers=yes" cargo bench -p sheaf-bench --bench scaling --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "scaling" and m.get("executable"):
        print(m["executable"])')
[ -x "$bin" ] || { echo "the scaling bench did not build" >&2; exit 1; }
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for cores in 1 2; do
  perf record -q -k CLOCK_MONOTONIC -e cpu-clock -F 997 -g -o "$work/$cores.data" \
    "$bin" --bench --cores "$cores" --series "$series" --passes "$passes" 2>"$work/$cores.err" | grep '^round'
  read -r start end < <(sed -n 's/.*timed window (CLOCK_MONOTONIC s): \([0-9.]*\) \([0-9.]*\)/\1 \2/p' "$work/$cores.err")
  # The executors are named `scaling-CORE-ID`; the main thread only waits in the timed part.
  perf script -i "$work/$cores.data" 2>/dev/null |
    python3 perf/scaling_diff.py window "$start" "$end" 'scaling-[0-9]+-' |
    inferno-collapse-perf >"$work/$cores.folded"
done
inferno-flamegraph --title "scaling bench, 1 shard core, timed part ($series series, $passes passes)" \
  <"$work/1.folded" >"$out/scaling-1-core.svg"
inferno-flamegraph --title "scaling bench, 2 shard cores, timed part ($series series, $passes passes)" \
  <"$work/2.folded" >"$out/scaling-2-cores.svg"
inferno-diff-folded "$work/1.folded" "$work/2.folded" |
  inferno-flamegraph --title "2 shard cores against 1, same work: red is more time on 2 cores" \
    >"$out/scaling-2-vs-1-diff.svg"
python3 perf/scaling_diff.py compare "$work/1.folded" "$work/2.folded"
echo "wrote $out/scaling-1-core.svg $out/scaling-2-cores.svg $out/scaling-2-vs-1-diff.svg"
