#!/bin/bash
# run.sh CONFIG TAG : one trial
cfg=$1; tag=$2
rm -rf /tmp/ckb/data
/work/main/target/release/sheaf run --config $cfg > /dev/null 2> /tmp/ckb/$tag.err &
pid=$!
for i in $(seq 50); do curl -sf localhost:6001/health >/dev/null && break; sleep 0.2; done
/work/main/target/release/sheaf-load --protocol statsd --connections 1 --series 1000000 --rate 1000000 --duration 20 --warmup 5 --replay --pid $pid --json-out /tmp/ckb/$tag.json > /tmp/ckb/$tag.out 2>&1
kill -TERM $pid; wait $pid
