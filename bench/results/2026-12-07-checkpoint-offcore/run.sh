#!/bin/bash
# run.sh CONFIG TAG [RATE] [SENDER_CPU]: one trial. Run from the repository root after
# `cargo build --release`; results in /tmp/ckb/TAG.{out,json}. With SENDER_CPU the load
# generator is pinned there (the one-core configs pin sheaf's core to CPU 1).
cfg=$1; tag=$2; rate=${3:-1000000}; pin=${4:+taskset -c $4}
mkdir -p /tmp/ckb && rm -rf /tmp/ckb/data
target/release/sheaf run --config "$cfg" > /dev/null 2> /tmp/ckb/$tag.err &
pid=$!
for i in $(seq 50); do curl -sf localhost:6001/health >/dev/null && break; sleep 0.2; done
$pin target/release/sheaf-load --protocol statsd --connections 1 --series 1000000 --rate "$rate" \
  --duration 20 --warmup 5 --replay --pid $pid --json-out /tmp/ckb/$tag.json > /tmp/ckb/$tag.out 2>&1
kill -TERM $pid; wait $pid
