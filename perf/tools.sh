# Sourced by the perf/ scripts: checks for perf, installs inferno (the flamegraph renderer)
# when it is missing, and points cargo at target/profiling, where the frame-pointer builds
# live, so that a normal build stays as it is.
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 1; }
if ! command -v inferno-flamegraph >/dev/null; then
  echo "installing inferno (flamegraph renderer)" >&2
  cargo install inferno
fi
export CARGO_TARGET_DIR=target/profiling
