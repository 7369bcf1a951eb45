#!/usr/bin/env bash
# Where the CPUs go end to end, 1 shard core against N: one round of bench/scaling_e2e.py
# (StatsD over the Unix socket, `sheaf-load --replay` on the last CPU, blocking sends) with the
# whole host recorded during each run (`perf record -a -g -e cpu-clock`), rendered as
# flamegraphs whose root frames are the threads: the shard cores (named "shard core" in both,
# so that their stacks fold alike), the sender (`statsd-0`), the sink, and idle (`swapper`).
#
#   perf/scaling-e2e-profile.sh [--cores N] [--datagram-bytes B] [--lines-per-datagram L]
#                               [--out DIR]
#
# Writes DIR/scaling-e2e-1-core.svg, DIR/scaling-e2e-N-cores.svg and
# DIR/scaling-e2e-N-vs-1-diff.svg (default DIR: perf/results). The differential one is
# normalised (`inferno-diff-folded --normalize`): the runs ingest different amounts in the
# same time, so red is a larger share of the recording on N cores. Prints the round's rates,
# each thread's share of the host, and the functions whose cost per ingested line changed
# most. Needs perf, inferno (installed if missing) and root for `perf record -a`.
set -euo pipefail
cd "$(dirname "$0")/.."
cores=2
datagram_bytes=32768
lines=2000
out=perf/results
while [ $# -gt 0 ]; do
  case "$1" in
    --cores) cores=$2; shift 2 ;;
    --datagram-bytes) datagram_bytes=$2; shift 2 ;;
    --lines-per-datagram) lines=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
source perf/tools.sh
RUSTFLAGS="-C force-frame-pointers=yes" cargo build --release -p sheaf -p sheaf-bench
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 bench/scaling_e2e.py --rounds 1 --cores "$cores" --bin-dir "$CARGO_TARGET_DIR/release" \
  --datagram-bytes "$datagram_bytes" --lines-per-datagram "$lines" --perf-dir "$work" --out "$work/result"
many="$cores-cores"
for tag in 1-core "$many"; do
  # perf script starts each sample with the thread's name; shard cores are sheaf-core-CORE-ID.
  perf script -i "$work/0-$tag.data" 2>/dev/null |
    sed -E 's/^( *)sheaf-core-[0-9]+-[0-9]+ /\1shard core /' |
    inferno-collapse-perf >"$work/$tag.folded"
done
title="StatsD over the Unix socket, whole host"
inferno-flamegraph --title "$title, 1 shard core" <"$work/1-core.folded" >"$out/scaling-e2e-1-core.svg"
inferno-flamegraph --title "$title, $cores shard cores" <"$work/$many.folded" >"$out/scaling-e2e-$many.svg"
inferno-diff-folded --normalize "$work/1-core.folded" "$work/$many.folded" |
  inferno-flamegraph --title "$cores shard cores against 1, share of the host: red is more on $cores cores" \
    >"$out/scaling-e2e-$cores-vs-1-diff.svg"
# Lines ingested while perf recorded: the run's rate over the recording's length.
read -r v1 v2 < <(python3 - "$work/result.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
r = d["rounds"][0]["rate"]
print(r["one"] * d["perf_seconds"], r["many"] * d["perf_seconds"])
EOF
)
python3 perf/scaling_diff.py compare "$work/1-core.folded" "$work/$many.folded" --values "$v1" "$v2" --top 20
echo "wrote $out/scaling-e2e-1-core.svg $out/scaling-e2e-$many.svg $out/scaling-e2e-$cores-vs-1-diff.svg"
