#!/usr/bin/env python3
"""Instructions per value by source line, inlined frames included.

cachegrind's own per-line view charges an instruction to the innermost frame that produced
it (`index.rs`, `uint_macros.rs`), which after inlining says little about which line of
sheaf to change. This reads two callgrind runs of the same binary (0 passes and P passes,
`--dump-instr=yes`), subtracts them per instruction address, maps each address to its chain
of inlined frames (`llvm-addr2line -i`), and charges it to a frame chosen by `--view`:

  outer   the outermost frame in a file of this repository (the line of `apply` or of the
          decoder's loop that led to it) -- the default
  inner   the innermost frame in this repository, with the library frame it called
  chain   the whole chain, innermost first

Run by `bench/instructions.sh --by-line`; by hand:

  ir_by_line.py BIN CALLGRIND_0 CALLGRIND_P VALUES [--function apply] [--view outer] [--top 30]
"""

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + "/"


def self_cost(path):
    """Self cost per (object, address) and the function of each, from a callgrind file
    written with --dump-instr=yes --compress-pos=no --compress-strings=no (one event, Ir)."""
    cost, function = collections.Counter(), {}
    obj = fn = None
    skip = False
    column = 1  # of the cost on a position line: after the address, and the line if dumped
    with open(path) as f:
        for line in f:
            if skip:  # the line after `calls=` is the inclusive cost of the call
                skip = False
                continue
            if line.startswith("positions:"):
                column = len(line.split()) - 1
            elif line.startswith("ob="):
                obj = line[3:].strip()
            elif line.startswith("fn="):
                fn = line[3:].strip()
            elif line.startswith("calls="):
                skip = True
            elif line.startswith("0x"):
                fields = line.split()
                key = (obj, int(fields[0], 16))
                cost[key] += int(fields[column])
                function[key] = fn
    return cost, function


def addr2line():
    for name in ["llvm-addr2line"] + [f"llvm-addr2line-{v}" for v in range(30, 13, -1)]:
        if shutil.which(name):
            return name
    sys.exit("llvm-addr2line is missing: apt-get install -y llvm (or llvm-NN)")


def frames_of(binary, addresses):
    out = subprocess.run(
        [addr2line(), "-e", binary, "-i", "-f", "-C", "--output-style=JSON"] + [hex(a) for a in addresses],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [entry["Symbol"] for entry in json.loads(out)]


def short(frame):
    name = frame["FileName"]
    name = name[len(REPO):] if name.startswith(REPO) else os.path.basename(name)
    return f"{name}:{frame['Line']}"


def source_text(key):
    """`   | the line` for a key naming a line of this repository, else nothing."""
    path, _, rest = key.partition(":")
    line = rest.split(" ")[0]
    try:
        with open(REPO + path) as f:
            text = f.readlines()[int(line) - 1].strip()
    except (OSError, ValueError, IndexError):
        return ""
    if int(line) < 1:  # no line information
        return ""
    return f"   | {text[:90]}"


def key_of(frames, view):
    own = [f for f in frames if f["FileName"].startswith(REPO)]
    if view == "chain":
        return " <- ".join(short(f) for f in frames)
    if view == "inner":
        frame = own[0] if own else frames[0]
        key = short(frame)
        return key if frames[0] is frame else f"{key} -> {short(frames[0])}"
    return short(own[-1] if own else frames[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("binary")
    p.add_argument("base", help="callgrind file of the 0-pass run")
    p.add_argument("run", help="callgrind file of the P-pass run")
    p.add_argument("values", type=float, help="values the P passes ingested")
    p.add_argument("--function", default="", help="only functions whose name contains this")
    p.add_argument("--view", choices=["outer", "inner", "chain"], default="outer")
    p.add_argument("--top", type=int, default=30)
    args = p.parse_args()

    base, _ = self_cost(args.base)
    run, function = self_cost(args.run)
    exe = os.path.basename(args.binary)
    diff = {k: v - base.get(k, 0) for k, v in run.items()}

    by_function = collections.Counter()
    for key, v in diff.items():
        by_function[re.sub(r"::h[0-9a-f]{16}$", "", function[key] or "?")] += v
    total = sum(diff.values())
    print(f"{total / args.values:.1f} instructions per value; by function:")
    for name, v in by_function.most_common(8):
        if v / args.values >= 0.5:
            print(f"  {v / args.values:7.1f}  {name}")

    mine = {
        a: v
        for (obj, a), v in diff.items()
        if obj and obj.endswith(exe) and v > 0 and args.function in (function[(obj, a)] or "")
    }
    addresses = sorted(mine)
    lines = collections.Counter()
    for address, frames in zip(addresses, frames_of(args.binary, addresses)):
        lines[key_of(frames, args.view)] += mine[address]
    print(f"by source line ({args.view} frame{', in ' + args.function if args.function else ''}):")
    for key, v in lines.most_common(args.top):
        print(f"  {v / args.values:7.1f}  {key}{source_text(key) if args.view != 'chain' else ''}")


if __name__ == "__main__":
    main()
