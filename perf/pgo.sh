#!/usr/bin/env bash
# Trains sheaf's profile-guided build: an instrumented build ingests StatsD and m3msg from
# sheaf-load, and the profile it writes guides the optimised build (inlining, block layout,
# register allocation along the paths that run per value).
#
#   perf/pgo.sh                   # → target/pgo/release/sheaf, built with the fresh profile
#   perf/pgo.sh --commit          # → perf/pgo/sheaf.profdata, the profile that every release
#                                 #   build of the repository applies (perf/pgo/rustc-wrapper)
#   perf/pgo.sh --seconds 20      # train longer
#
# Needs llvm-profdata of the LLVM rustc uses (`rustc -vV`): rustup's llvm-tools component
# (`rustup component add llvm-tools`) or Debian's llvm-N. Uses ports 127.0.0.1:16000/16001/18125.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=8
commit=""
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds=$2; shift 2 ;;
        --commit) commit=1; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

source perf/pgo/find-profdata.sh

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$(pwd)
# Fixed paths, so that RUSTFLAGS stay the same from run to run and cargo rebuilds only what
# changed (rustc tracks the profile's contents).
raw=$root/target/pgo-gen/profile-raw
profile=$root/target/pgo/sheaf.profdata
rm -rf "$raw"
mkdir -p "$(dirname "$profile")"

echo "== instrumented build (target/pgo-gen)"
CARGO_TARGET_DIR=target/pgo-gen RUSTFLAGS="-Cprofile-generate=$raw" \
    cargo build --release -p sheaf --bin sheaf
cargo build --release -p sheaf-bench --bin sheaf-load

# One training run: start the instrumented sheaf on CORES shard cores, drive it with
# sheaf-load, stop it cleanly (the profile is written at exit).
train() {
    local cores=$1
    shift
    cat >"$work/config.yaml" <<YAML
cores: [$cores]
pin_cores: false
num_shards: 64
statsd: {udp: {listen_address: "127.0.0.1:18125"}, tcp: {enabled: false}}
m3msg: {server: {listen_address: "127.0.0.1:16000"}}
http: {listen_address: "127.0.0.1:16001"}
aggregator:
  default_storage_policies: ["10s:2d"]
  flush: {handlers: [{json: {path: /dev/null}}]}
YAML
    target/pgo-gen/release/sheaf run --config "$work/config.yaml" 2>"$work/sheaf.log" &
    local pid=$!
    for _ in $(seq 100); do
        curl -sf http://127.0.0.1:16001/health >/dev/null && break
        sleep 0.1
    done
    target/release/sheaf-load --admin 127.0.0.1:16001 --duration "$seconds" --replay "$@" >/dev/null
    kill -TERM "$pid"
    wait "$pid"
}

# The loads the README's performance section measures: one core saturated, and two cores
# below saturation with one sender socket (values handed from the receiving core to the other).
echo "== training: StatsD, 100k series, 60/20/20, one core saturated"
train 0 --protocol statsd --statsd-udp 127.0.0.1:18125 --series 100000 --connections 2 --rate 4000000
echo "== training: StatsD, 100k series, two cores, one socket at 1M lines/s"
train 0,1 --protocol statsd --statsd-udp 127.0.0.1:18125 --series 100000 --connections 1 --rate 1000000
echo "== training: m3msg, 1M series, 60/20/20, one core"
train 0 --protocol m3msg --m3msg 127.0.0.1:16000 --series 1000000 --connections 2
echo "== training: m3msg, 1M series, two cores at 1M values/s"
train 0,1 --protocol m3msg --m3msg 127.0.0.1:16000 --series 1000000 --connections 2 --rate 1000000

# Sparse: functions that never ran are left out (6 MB rather than 22).
"$profdata" merge --sparse -o "$profile" "$raw"

if [ -n "$commit" ]; then
    cp "$profile" perf/pgo/sheaf.profdata
    echo "$llvm" >perf/pgo/llvm-version
    echo "wrote perf/pgo/sheaf.profdata (LLVM $llvm): cargo build --release now applies it"
    exit 0
fi

echo "== optimised build (target/pgo)"
CARGO_TARGET_DIR=target/pgo RUSTFLAGS="-Cprofile-use=$profile" \
    cargo build --release -p sheaf --bin sheaf
echo "built $root/target/pgo/release/sheaf"
