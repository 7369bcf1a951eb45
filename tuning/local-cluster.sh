#!/usr/bin/env bash
# Starts a local etcd and three sheaf nodes on loopback (RF=3 would need 3 isolation groups;
# this is RF=3, one shard set, racks a/b/c), initialises the placement through node 1's HTTP
# API, and leaves everything running. Stop it all with: kill $(cat /tmp/sheaf-cluster/*.pid)
#   bash tuning/local-cluster.sh            (build first: cargo build --release)
set -euo pipefail
dir=/tmp/sheaf-cluster
bin=${SHEAF_BIN:-target/release/sheaf}
mkdir -p "$dir"
etcd --name local --data-dir "$dir/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster local=http://127.0.0.1:2380 >"$dir/etcd.log" 2>&1 &
echo $! >"$dir/etcd.pid"
instances=()
for n in 1 2 3; do
  rack=$(printf "\\x$(printf %x $((96 + n)))")   # a, b, c
  cat >"$dir/node$n.yaml" <<YAML
host_id: node$n
num_shards: 64
cores: [0]
pin_cores: false
http: {listen_address: "127.0.0.1:60${n}1"}
m3msg: {server: {listen_address: "127.0.0.1:60${n}0"}}
statsd:
  udp: {listen_address: "127.0.0.1:81${n}5"}
  tcp: {enabled: false}
aggregator:
  flush: {handlers: [{json: {path: "$dir/node$n.jsonl"}}]}
cluster:
  etcd: {endpoints: ["127.0.0.1:2379"]}
YAML
  "$bin" run --config "$dir/node$n.yaml" 2>"$dir/node$n.log" &
  echo $! >"$dir/node$n.pid"
  instances+=("{\"id\":\"node$n\",\"isolation_group\":\"rack-$rack\",\"zone\":\"embedded\",\"weight\":100,\"endpoint\":\"127.0.0.1:60${n}0\",\"hostname\":\"node$n\",\"port\":60${n}0}")
done
sleep 2
body="{\"num_shards\":64,\"replication_factor\":3,\"instances\":[$(IFS=,; echo "${instances[*]}")]}"
curl -sf -X POST -d "$body" http://127.0.0.1:6011/api/v1/services/m3aggregator/placement/init >/dev/null
sleep 3
for n in 1 2 3; do
  printf 'node%s: ' "$n"; curl -s "http://127.0.0.1:60${n}1/status" | grep -o '"flushStatus":{[^}]*}'
done
echo "StatsD to any node: echo 'a.b:1|c' | nc -u -w0 127.0.0.1 8115; output in $dir/node*.jsonl"
