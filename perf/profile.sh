#!/usr/bin/env bash
# Profiles sheaf under load and renders a flamegraph.
#
#   perf/profile.sh [--case statsd-100k|statsd-100k-core0|m3msg-1m|m3msg-1m-core0] [--seconds N] [--pid PID]
#                   [--out FILE.svg] [--load-cpus LIST] [-- extra sheaf-load arguments]
#
# Without --pid it builds sheaf and sheaf-load in release mode with frame pointers
# (target/profiling), starts sheaf with perf/cases/CASE.yaml, drives it with sheaf-load,
# records with `perf record -e cpu-clock -g` (hardware counters are not available on every
# host; cpu-clock is), falls back to DWARF unwinding if frame-pointer call graphs fail, and
# renders the SVG with inferno. With --pid it attaches to a running sheaf and only records.
# --load-cpus runs sheaf-load under `taskset -c LIST` (keep it off the shard cores of the case).
set -euo pipefail
cd "$(dirname "$0")/.."
case_name=statsd-100k
seconds=10
pid=""
out=""
load_cpus=""
while [ $# -gt 0 ]; do
  case "$1" in
    --case) case_name=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --pid) pid=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --load-cpus) load_cpus=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
extra_load=("$@")
out=${out:-perf/results/${case_name}-$(date +%Y%m%d-%H%M%S).svg}
mkdir -p "$(dirname "$out")"
source perf/tools.sh
bin=$CARGO_TARGET_DIR/release
started=""
cleanup() { [ -n "$started" ] && kill -TERM "$started" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
if [ -z "$pid" ]; then
  RUSTFLAGS="-C force-frame-pointers=yes" cargo build --release -p sheaf -p sheaf-bench
  "$bin/sheaf" run --config "perf/cases/$case_name.yaml" 2>/tmp/sheaf-profile.log &
  pid=$!
  started=$pid
  for _ in $(seq 100); do curl -sf 127.0.0.1:6001/health >/dev/null && break; sleep 0.1; done
  case "$case_name" in
    m3msg-*) load=(--protocol m3msg --series 1000000) ;;
    *) load=(--protocol statsd --series 100000) ;;
  esac
  pin=()
  [ -n "$load_cpus" ] && pin=(taskset -c "$load_cpus")
  "${pin[@]}" "$bin/sheaf-load" "${load[@]}" --duration $((seconds + 2)) --pid "$pid" "${extra_load[@]}" &
  sleep 1
fi
data=$(mktemp /tmp/sheaf-perf.XXXXXX.data)
if ! perf record -e cpu-clock -F 997 -g -p "$pid" -o "$data" -- sleep "$seconds" 2>/tmp/sheaf-perf-record.log; then
  echo "frame-pointer call graphs failed; retrying with DWARF unwinding" >&2
  perf record -e cpu-clock -F 499 --call-graph dwarf -p "$pid" -o "$data" -- sleep "$seconds"
fi
wait_load=$(jobs -p | grep -v "^$started\$" || true)
perf script -i "$data" 2>/dev/null | inferno-collapse-perf | inferno-flamegraph --title "sheaf $case_name" > "$out"
rm -f "$data"
[ -n "$wait_load" ] && wait $wait_load 2>/dev/null || true
echo "flamegraph: $out"
