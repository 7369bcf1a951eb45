#!/usr/bin/env python3
"""Helpers of perf/scaling-profile.sh.

  scaling_diff.py window START END THREAD_REGEX < perf-script-output > filtered
      keeps the samples of threads whose name matches THREAD_REGEX (at its start) taken between START
      and END (seconds on the clock perf recorded with, CLOCK_MONOTONIC), and names every
      such thread "shard core", so that one core's stacks and two cores' stacks fold alike.

  scaling_diff.py compare ONE.folded TWO.folded [--top N] [--values V1 V2]
      CPU milliseconds of each run (folded counts are cpu-clock periods in nanoseconds), the
      difference in percent, and the functions whose self time changed most: where the
      extra CPU of the run on two cores went, for the same work. With --values (what each
      recording ingested: perf/scaling-e2e-profile.sh, where the two runs do different
      amounts of work in the same time) it compares nanoseconds per value instead, and
      first gives each thread's share of the recording (the stacks' root frames).
"""

import argparse
import collections
import re
import sys

HEADER = re.compile(r"^(\S.*?)\s+(\d+)(?:/\d+)?\s+(?:\[\d+\]\s+)?(\d+\.\d+):")


def window(start, end, pattern):
    threads = re.compile(pattern)
    keep = False
    out = sys.stdout
    for line in sys.stdin:
        if line and not line[0].isspace() and line.strip():
            m = HEADER.match(line)
            keep = bool(m) and bool(threads.match(m.group(1))) and start <= float(m.group(3)) <= end
            if keep:
                line = "shard core" + line[len(m.group(1)) :]
        if keep:
            out.write(line)


def frame_ms(path, depth, skip_root=None):
    """CPU ms by the frame at `depth` of each folded stack (-1: the leaf, self time; 0: the
    root, which is the thread when perf script's output was folded with process names),
    leaving out the stacks whose root is `skip_root`."""
    cost = collections.Counter()
    with open(path) as f:
        for line in f:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            frames = stack.split(";")
            if frames[0] != skip_root:
                cost[frames[depth]] += float(n) / 1e6
    return cost


def self_ms(path, skip_root=None):
    return frame_ms(path, -1, skip_root)


def compare(one, two, top, values=None):
    if values is None:
        a, b = self_ms(one), self_ms(two)
        ta, tb = sum(a.values()), sum(b.values())
        print(f"CPU in the timed window: 1 core {ta:.0f} ms, 2 cores {tb:.0f} ms ({(tb / ta - 1) * 100:+.1f} %)")
        unit, fmt = "ms", "8.0f"
    else:
        ha, hb = frame_ms(one, 0), frame_ms(two, 0)
        ta, tb = sum(ha.values()), sum(hb.values())
        print(f"{'1 core':>8} {'2 cores':>8}  share of the recording, by thread")
        for k in sorted(set(ha) | set(hb), key=lambda k: -(ha[k] + hb[k]))[:8]:
            print(f"{ha[k] / ta * 100:7.1f}% {hb[k] / tb * 100:7.1f}%  {k}")
        # Idle (the kernel's `swapper` threads) left out; ms * 1e6 / values = ns per value.
        a = collections.Counter({k: v * 1e6 / values[0] for k, v in self_ms(one, "swapper").items()})
        b = collections.Counter({k: v * 1e6 / values[1] for k, v in self_ms(two, "swapper").items()})
        sa, sb = sum(a.values()), sum(b.values())
        print(f"CPU per value, idle left out: 1 core {sa:.1f} ns, 2 cores {sb:.1f} ns ({(sb / sa - 1) * 100:+.1f} %)")
        unit, fmt = "ns per value", "8.2f"
    print(f"{'1 core':>8} {'2 cores':>8} {'change':>8}  function (self time, {unit})")
    for k in sorted(set(a) | set(b), key=lambda k: -abs(b[k] - a[k]))[:top]:
        print(f"{a[k]:{fmt}} {b[k]:{fmt}} {b[k] - a[k]:+{fmt}}  {k[:100]}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("window")
    w.add_argument("start", type=float)
    w.add_argument("end", type=float)
    w.add_argument("threads")
    c = sub.add_parser("compare")
    c.add_argument("one")
    c.add_argument("two")
    c.add_argument("--top", type=int, default=15)
    c.add_argument("--values", type=float, nargs=2, default=None)
    args = p.parse_args()
    if args.cmd == "window":
        window(args.start, args.end, args.threads)
    else:
        compare(args.one, args.two, args.top, args.values)


if __name__ == "__main__":
    main()
