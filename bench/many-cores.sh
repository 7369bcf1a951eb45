#!/usr/bin/env bash
# Measures how sheaf scales over shard cores on a host with CPUs to spare, where the load
# generator and the kernel's loopback work can stay off the shard cores (the 2-CPU dev box
# cannot: there the sender shares the shard cores' CPUs). Two steps, since such a host may
# have no Rust toolchain:
#
#   bench/many-cores.sh pack [--pgo]     # here: build, strip into .many-cores/ (git-ignored)
#   bench/many-cores.sh run [OUT_DIR]    # there, from the repository root, with .many-cores/
#
# `pack` builds target/release/{sheaf,sheaf-load} (with --pgo, sheaf from target/pgo/release,
# built by perf/pgo.sh first) and the `scaling` bench, and copies them stripped of debug info
# (symbols stay, for perf) into .many-cores/bin, small enough to carry to another machine.
# `run` needs python3 and writes into OUT_DIR (default bench/results):
#   * many-cores-sweep.json / .svg: bench/sweep.py --replay, shard cores 1, 2, 4, 8 (those
#     that leave at least 2 CPUs for the control thread and the sender), m3msg and StatsD at
#     100k series, m3msg at 10k/100k/1M series on the most cores; ratios to one core;
#   * many-cores-scaling.txt: the `scaling` bench (decode, hand-off and apply alone) on
#     1, 2, 4, 8 and 16 pinned cores (those the host has), 3 rounds, median ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
kit=.many-cores

case "${1:-}" in
pack)
    pgo=false
    [ "${2:-}" = "--pgo" ] && pgo=true
    cargo build --release -p sheaf -p sheaf-bench
    exe=$(cargo bench -p sheaf-bench --bench scaling --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "scaling" and m.get("executable"):
        print(m["executable"])')
    sheaf=target/release/sheaf
    if $pgo; then
        sheaf=target/pgo/release/sheaf
        [ -x "$sheaf" ] || { echo "$sheaf is missing: run perf/pgo.sh first" >&2; exit 1; }
    fi
    mkdir -p "$kit/bin"
    grep -qx "/$kit/" .git/info/exclude 2>/dev/null || echo "/$kit/" >>.git/info/exclude
    objcopy --strip-debug "$sheaf" "$kit/bin/sheaf"
    objcopy --strip-debug target/release/sheaf-load "$kit/bin/sheaf-load"
    objcopy --strip-debug "$exe" "$kit/bin/scaling"
    git rev-parse HEAD >"$kit/bin/COMMIT"
    $pgo && echo pgo >>"$kit/bin/COMMIT"
    du -sh "$kit/bin"
    echo "carry $kit and run: bash bench/many-cores.sh run \$OUT"
    ;;
run)
    out=${2:-bench/results}
    mkdir -p "$out"
    [ -x "$kit/bin/sheaf" ] || { echo "$kit/bin is missing: bench/many-cores.sh pack first" >&2; exit 1; }
    ncpu=$(nproc)
    shard_counts=$(python3 -c "print(','.join(str(n) for n in (1, 2, 4, 8) if n <= $ncpu - 2) or '1')")
    scaling_counts=$(python3 -c "print(','.join(str(n) for n in (1, 2, 4, 8, 16) if n <= $ncpu))")
    echo "host: $ncpu CPUs; sweep over shard cores $shard_counts; scaling bench over $scaling_counts" >&2
    "$kit/bin/scaling" --bench --cores "$scaling_counts" --rounds 3 >"$out/many-cores-scaling.txt" 2>&1 ||
        echo "scaling bench failed (see $out/many-cores-scaling.txt)" >&2
    python3 bench/sweep.py --bin-dir "$kit/bin" --replay --duration 5 --shard-cores "$shard_counts" \
        --out "$out/many-cores-sweep"
    grep -E "^cores .*median|^cores [0-9]+:" "$out/many-cores-scaling.txt" || true
    ;;
*)
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
