#!/usr/bin/env bash
# Resident memory per series at N counter series (default 1M, 20-byte ids), one policy.
#
#   bench/memory.sh                      # 1M counters, both phases below
#   bench/memory.sh --series 200000 --mix 60,20,20 --id-len 40
#   bench/memory.sh --extra-policy 1m:40d     # every series in a second policy too
#   bench/memory.sh --config 'data_plane: {handoff_queue_batches: 16}'   # a top-level config line
#
# Starts a fresh `target/release/sheaf` (2 shard cores, 64 shards, JSON sink to /dev/null),
# reads its idle RSS, drives it with `sheaf-load --protocol m3msg` over N series, then over 2N
# (N more), and prints RSS per series over idle at N, and the marginal RSS per series from N
# to 2N (what a series costs once the fixed buffers of ingest and flush exist):
#   * before any flush (policy 1h:2d), and
#   * after flush rounds (policy 10s:2d, 25 s after each load).
# Needs `cargo build --release` first. Ports 127.0.0.1:16000/16001 must be free.
set -euo pipefail
cd "$(dirname "$0")/.."

series=1000000
mix=100,0,0
id_len=20
extra_policy=""
extra_config=""
while [ $# -gt 0 ]; do
    case "$1" in
        --series) series=$2; shift 2 ;;
        --mix) mix=$2; shift 2 ;;
        --id-len) id_len=$2; shift 2 ;;
        --extra-policy) extra_policy=", \"$2\""; shift 2 ;;
        --config) extra_config="$extra_config$2"$'\n'; shift 2 ;;
        *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
done

work=$(mktemp -d)
trap 'kill $(cat "$work"/pid 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT

rss_of() { awk '/^VmRSS/ {print $2 * 1024}' "/proc/$1/status"; }

metric() { # name: summed over all label sets
    curl -s http://127.0.0.1:16001/metrics | awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $2} END {printf "%.0f\n", s}'
}

load() { # series
    target/release/sheaf-load --protocol m3msg --m3msg 127.0.0.1:16000 --admin 127.0.0.1:16001 \
        --series "$1" --mix "$mix" --id-len "$id_len" --duration 8 --connections 2 >"$work/load.txt" 2>&1
}

phase() { # label policy wait-after-load
    local label=$1 policy=$2 wait=$3
    cat >"$work/config.yaml" <<EOF
cores: [0, 1]
num_shards: 64
statsd: {udp: {enabled: false}, tcp: {enabled: false}}
m3msg: {server: {listen_address: "127.0.0.1:16000"}}
http: {listen_address: "127.0.0.1:16001"}
aggregator:
  default_storage_policies: ["$policy"$extra_policy]
  flush: {handlers: [{json: {path: /dev/null}}]}
$extra_config
EOF
    target/release/sheaf run --config "$work/config.yaml" 2>"$work/sheaf.log" &
    echo $! >"$work/pid"
    local pid idle rss1 held1 rss2 held2
    pid=$(cat "$work/pid")
    for _ in $(seq 100); do curl -sf http://127.0.0.1:16001/health >/dev/null && break; sleep 0.1; done
    sleep 1
    idle=$(rss_of "$pid")
    load "$series"
    sleep "$wait"
    rss1=$(rss_of "$pid")
    held1=$(metric sheaf_series)
    load $((series * 2))
    sleep "$wait"
    rss2=$(rss_of "$pid")
    held2=$(metric sheaf_series)
    printf '%s (mix %s, policies %s%s)\n' "$label" "$mix" "$policy" "$extra_policy"
    printf '  idle %d MB; %d series: %d MB, %.1f B/series over idle; %d series: %d MB\n' \
        $((idle >> 20)) "$held1" $((rss1 >> 20)) "$(echo "($rss1 - $idle) / $held1" | bc -l)" "$held2" $((rss2 >> 20))
    printf '  marginal: %.1f B per added series\n' "$(echo "($rss2 - $rss1) / ($held2 - $held1)" | bc -l)"
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
}

# 1h windows: the loads end long before the first one closes.
phase "before any flush" 1h:2d 1
# 10s windows: 25 s after each load, two rounds have emitted every series.
phase "after flush rounds" 10s:2d 25
