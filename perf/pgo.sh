#!/usr/bin/env bash
# Builds sheaf with profile-guided optimisation: an instrumented build ingests StatsD and
# m3msg from sheaf-load for a few seconds each, and the profile it writes guides a second
# build (inlining, block layout, register allocation along the paths that run per value).
#
#   perf/pgo.sh                   # → target/pgo/release/sheaf
#   perf/pgo.sh --seconds 20      # train longer
#
# Needs llvm-profdata of the LLVM major version rustc uses (`rustc -vV`), e.g.
# `apt-get install -y llvm-22` for LLVM 22. Uses ports 127.0.0.1:16000/16001/18125.
# The training runs one shard core, as `bench/README.md` measures one core.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=8
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

llvm=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
profdata=$(command -v "llvm-profdata-$llvm" || true)
if [ -z "$profdata" ]; then
    echo "llvm-profdata-$llvm is missing (rustc uses LLVM $llvm): apt-get install -y llvm-$llvm" >&2
    exit 1
fi

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

cat >"$work/config.yaml" <<YAML
cores: [0]
num_shards: 64
statsd: {udp: {listen_address: "127.0.0.1:18125"}, tcp: {enabled: false}}
m3msg: {server: {listen_address: "127.0.0.1:16000"}}
http: {listen_address: "127.0.0.1:16001"}
aggregator:
  default_storage_policies: ["10s:2d"]
  flush: {handlers: [{json: {path: /dev/null}}]}
YAML

# One training run: start the instrumented sheaf, drive it, stop it cleanly (the profile is
# written at exit).
train() {
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

echo "== training: StatsD, 100k series, 60/20/20"
train --protocol statsd --statsd-udp 127.0.0.1:18125 --series 100000 --connections 2 --rate 4000000
echo "== training: m3msg, 1M series, 60/20/20"
train --protocol m3msg --m3msg 127.0.0.1:16000 --series 1000000 --connections 2

"$profdata" merge -o "$profile" "$raw"

echo "== optimised build (target/pgo)"
CARGO_TARGET_DIR=target/pgo RUSTFLAGS="-Cprofile-use=$profile" \
    cargo build --release -p sheaf --bin sheaf
echo "built $root/target/pgo/release/sheaf"
