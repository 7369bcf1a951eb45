#!/usr/bin/env python3
"""Helpers of perf/scaling-profile.sh.

  scaling_diff.py window START END THREAD_REGEX < perf-script-output > filtered
      keeps the samples of threads whose name matches THREAD_REGEX (at its start) taken between START
      and END (seconds on the clock perf recorded with, CLOCK_MONOTONIC), and names every
      such thread "shard core", so that one core's stacks and two cores' stacks fold alike.

  scaling_diff.py compare ONE.folded TWO.folded [--top N]
      CPU milliseconds of each run (folded counts are cpu-clock periods in nanoseconds), the
      difference in percent, and the functions whose self time changed most: where the
      extra CPU of the run on two cores went, for the same work.
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


def self_ms(path):
    cost = collections.Counter()
    with open(path) as f:
        for line in f:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            cost[stack.split(";")[-1]] += float(n) / 1e6
    return cost


def compare(one, two, top):
    a, b = self_ms(one), self_ms(two)
    ta, tb = sum(a.values()), sum(b.values())
    print(f"CPU in the timed window: 1 core {ta:.0f} ms, 2 cores {tb:.0f} ms ({(tb / ta - 1) * 100:+.1f} %)")
    print(f"{'1 core':>8} {'2 cores':>8} {'change':>8}  function (self time, ms)")
    for k in sorted(set(a) | set(b), key=lambda k: -abs(b[k] - a[k]))[:top]:
        print(f"{a[k]:8.0f} {b[k]:8.0f} {b[k] - a[k]:+8.0f}  {k[:100]}")


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
    args = p.parse_args()
    if args.cmd == "window":
        window(args.start, args.end, args.threads)
    else:
        compare(args.one, args.two, args.top)


if __name__ == "__main__":
    main()
