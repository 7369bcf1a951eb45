# Sourced by perf/pgo.sh and bench/instructions.sh: sets `profdata` to an llvm-profdata of
# the LLVM rustc uses (rustup's llvm-tools component, or Debian's llvm-N), or exits.
llvm=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
profdata=""
for candidate in "$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-profdata" \
    "$(command -v "llvm-profdata-$llvm" || true)"; do
    if [ -x "$candidate" ] && "$candidate" --version | grep -q "LLVM version $llvm\."; then
        profdata=$candidate
        break
    fi
done
if [ -z "$profdata" ]; then
    echo "no llvm-profdata of LLVM $llvm (the LLVM rustc uses):" \
        "rustup component add llvm-tools, or apt-get install -y llvm-$llvm" >&2
    exit 1
fi
