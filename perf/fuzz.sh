#!/usr/bin/env bash
# Runs sheaf's fuzz targets (fuzz/fuzz_targets/) with cargo-fuzz (libFuzzer), each for a given
# time, starting from the committed corpora in fuzz/corpus/. A crash, a timeout, a leak or an
# input past the memory limit fails the run: the input is kept in fuzz/artifacts/TARGET/ and
# `cargo fuzz run TARGET fuzz/artifacts/TARGET/<file>` replays it.
#
#   perf/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    (default: 60 s, every target)
#
#   SANITIZER=address|none  address (ASan and LeakSanitizer) needs a nightly toolchain; the
#                           default is address when `cargo +nightly` works, else none, which
#                           builds on stable and still catches panics, aborts and timeouts.
#   KEEP=1                  add what the run found to fuzz/corpus/TARGET and minimise it
#                           (cargo fuzz cmin); without it the committed corpus is only read.
#   FORK=N                  N fuzzing processes per target (libFuzzer -fork).
#   DEV=1                   an unoptimised build (cargo fuzz --dev): runs slower, for debugging.
#
# Prints, per target, the executions it ran, and the total at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
cargo fuzz --version >/dev/null 2>&1 || {
  echo "fuzz.sh: cargo-fuzz is missing: cargo install --locked cargo-fuzz" >&2
  exit 2
}
toolchain=+stable
profile=()
[ "${DEV:-0}" = 1 ] && profile=(--dev)
sanitizer="${SANITIZER:-}"
if [ -z "$sanitizer" ]; then
  if cargo +nightly --version >/dev/null 2>&1; then sanitizer=address; else sanitizer=none; fi
fi
[ "$sanitizer" != none ] && toolchain=+nightly
targets=("$@")
[ ${#targets[@]} -eq 0 ] && mapfile -t targets < <(cargo $toolchain fuzz list --fuzz-dir fuzz)

cargo $toolchain fuzz build --fuzz-dir fuzz "${profile[@]}" -s "$sanitizer" >&2
total=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  scratch="$(mktemp -d)"
  corpora=("$scratch" "fuzz/corpus/$t")
  [ "${KEEP:-0}" = 1 ] && corpora=("fuzz/corpus/$t")
  log="$scratch.log"
  flags=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
  [ -n "${FORK:-}" ] && flags+=(-fork="$FORK")
  status=0
  cargo $toolchain fuzz run --fuzz-dir fuzz "${profile[@]}" -s "$sanitizer" "$t" "${corpora[@]}" -- "${flags[@]}" >"$log" 2>&1 || status=$?
  # stat::number_of_executed_units is the count over every fork; "Done N runs" the plain one.
  runs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | awk '{s+=$1} END {print s+0}')"
  [ "$runs" = 0 ] && runs="$(grep -oE '^Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -1 || echo 0)"
  runs="${runs:-0}"
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "fuzz.sh: $t failed after $runs executions (exit $status); see fuzz/artifacts/$t/" >&2
    rm -rf "$scratch" "$log"
    exit 1
  fi
  printf '%-20s %12d executions in %ss (%s)\n' "$t" "$runs" "$seconds" "$sanitizer"
  total=$((total + runs))
  rm -rf "$scratch" "$log"
  if [ "${KEEP:-0}" = 1 ]; then
    cargo $toolchain fuzz cmin --fuzz-dir fuzz "${profile[@]}" -s "$sanitizer" "$t" "fuzz/corpus/$t" >/dev/null 2>&1
  fi
done
printf '%-20s %12d executions\n' total "$total"
