#!/usr/bin/env python3
"""CPU per value against offered rate: what sheaf costs at the loads hosts really run at.

    python3 bench/curve.py [--rates 0.1,0.25,0.5,1,2,4] [--connections 1,4]
                           [--protocol statsd|m3msg] [--series 100000] [--mix 60,20,20] [--duration 12]
                           [--warmup 3] [--idle 20] [--trials 1] [--sheaf PATH]
                           [--compare PATH] [--config YAML] [--variant LABEL=YAML]...
                           [--out bench/results/curve-DATE]

For every offered rate (millions of values per second; for StatsD one value per line) and
every sender connection count, a fresh `sheaf run` (its defaults, or --config) takes
sheaf-load's traffic for --duration seconds after --warmup, and the point records:

  * ns_per_value: sheaf's CPU time (user + system, every thread, from /proc) over the
    measured part, divided by the values it ingested;
  * loss: the share of sent values that sheaf did not ingest;
  * rss_mib, hwm_mib: sheaf's resident memory at the end of the run, and its peak.

--idle N first measures an idle sheaf (no input) for N seconds: `idle_core_share` is its CPU
time over the wall time, as a share of one core.

--compare PATH runs a second build at every point, alternated with the first (A, B, A, B for
--trials 2), so that a before/after pair shares the same minutes of a noisy machine;
--variant LABEL=CONFIG (repeatable) does the same for the first build under another config.

Writes OUT.json (every point with its sheaf-load report, the machine) and OUT.svg (ns of
CPU per value against offered rate, log scale, one line per build and connection count), and
prints a table. Needs `cargo build --release` (target/release/sheaf, sheaf-load), nothing
else on ports 6000, 6001 and 8125.
"""
import argparse, json, math, os, platform, signal, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU time of every thread of `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def memory_mib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out.get("VmRSS"), out.get("VmHWM")


class Sheaf:
    """A `sheaf run` for one point, stopped by SIGTERM."""

    def __init__(self, binary, config, workdir):
        args = [binary, "run"] + (["--config", config] if config else [])
        self.log = open(os.path.join(workdir, "sheaf.log"), "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.log)
        for _ in range(200):
            try:
                urllib.request.urlopen("http://127.0.0.1:6001/health", timeout=1)
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{binary} did not start; see {self.log.name}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.log.close()


def idle_point(binary, config, seconds, workdir):
    sheaf = Sheaf(binary, config, workdir)
    try:
        time.sleep(2)
        before, t0 = cpu_seconds(sheaf.proc.pid), time.monotonic()
        time.sleep(seconds)
        used, wall = cpu_seconds(sheaf.proc.pid) - before, time.monotonic() - t0
        rss, _ = memory_mib(sheaf.proc.pid)
    finally:
        sheaf.stop()
    return {"idle_seconds": wall, "idle_cpu_s": used, "idle_core_share": used / wall, "rss_mib": rss}


def load_point(a, binary, config, rate, conns, workdir):
    sheaf = Sheaf(binary, config, workdir)
    report = os.path.join(workdir, "report.json")
    try:
        subprocess.run([a.load, "--protocol", a.protocol, "--series", str(a.series), "--rate", str(int(rate)),
                        "--connections", str(conns), "--duration", str(a.duration), "--warmup", str(a.warmup),
                        "--replay", "--pid", str(sheaf.proc.pid), "--json-out", report, "--mix", a.mix],
                       check=True, stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, "load.log"), "w"))
        rss, hwm = memory_mib(sheaf.proc.pid)
        with open(report) as f:
            r = json.load(f)
    finally:
        sheaf.stop()
    ingested = r["sheaf"]["ingested_values"]
    cpu = r["cpu"]["sheaf_cpu_s"]
    return {"offered_per_s": rate, "connections": conns, "ingested_per_s": r["sheaf"]["ingest_values_per_s"],
            "ns_per_value": cpu * 1e9 / ingested if ingested else None, "sheaf_cpu_s": cpu,
            "loss": 1 - r["sheaf"]["ingested_over_sent"], "rss_mib": rss, "hwm_mib": hwm, "report": r}


def svg(points, title, subtitle):
    w, h, left, right, top, bottom = 760, 440, 70, 200, 50, 60
    pts = [p for p in points if p.get("ns_per_value")]
    if not pts:
        return "<svg xmlns='http://www.w3.org/2000/svg'/>"
    xs = [p["offered_per_s"] for p in pts]
    lx0, lx1 = math.log10(min(xs)), math.log10(max(xs))
    lx1 = lx1 if lx1 > lx0 else lx0 + 1
    ymax = max(p["ns_per_value"] for p in pts) * 1.15
    px = lambda v: left + (math.log10(v) - lx0) / (lx1 - lx0) * (w - left - right)
    py = lambda v: h - bottom - v / ymax * (h - top - bottom)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{w/2}" y="22" font-size="15" text-anchor="middle">{title}</text>',
           f'<text x="{w/2}" y="38" font-size="11" text-anchor="middle">{subtitle}</text>',
           f'<line x1="{left}" y1="{h-bottom}" x2="{w-right}" y2="{h-bottom}" stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h-bottom}" stroke="black"/>',
           f'<text x="{(left + w - right)/2}" y="{h-18}" font-size="12" text-anchor="middle">'
           'offered values/s (log)</text>',
           f'<text x="16" y="{(top + h - bottom)/2}" font-size="12" text-anchor="middle" '
           f'transform="rotate(-90 16 {(top + h - bottom)/2})">ns of sheaf CPU per value</text>']
    for i in range(6):
        v = ymax * i / 5
        out.append(f'<text x="{left-6}" y="{py(v)+4:.1f}" font-size="11" text-anchor="end">{v:.0f}</text>')
        out.append(f'<line x1="{left}" y1="{py(v):.1f}" x2="{w-right}" y2="{py(v):.1f}" stroke="#eee"/>')
    for x in sorted(set(xs)):
        out.append(f'<text x="{px(x):.1f}" y="{h-bottom+16}" font-size="11" text-anchor="middle">'
                   f'{x/1e6:g}M</text>')
    colors = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    series = {}
    for p in pts:
        series.setdefault((p["build"], p["connections"]), []).append(p)
    for i, ((build, conns), ps) in enumerate(sorted(series.items())):
        c = colors[i % len(colors)]
        by_rate = {}
        for p in ps:
            by_rate.setdefault(p["offered_per_s"], []).append(p["ns_per_value"])
        line = [(x, sorted(v)[len(v) // 2]) for x, v in sorted(by_rate.items())]
        out.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (
            c, " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in line)))
        for p in ps:
            lost = p["loss"] > 0.001
            out.append(f'<circle cx="{px(p["offered_per_s"]):.1f}" cy="{py(p["ns_per_value"]):.1f}" r="3.5" '
                       f'fill="{"white" if lost else c}" stroke="{c}"/>')
        for x, y in line:
            out.append(f'<text x="{px(x)+5:.1f}" y="{py(y)-6:.1f}" font-size="10" fill="{c}">{y:.0f}</text>')
        out.append(f'<text x="{w-right+10}" y="{top+16+18*i}" font-size="12" fill="{c}">'
                   f'{build}, {conns} socket{"s" if conns > 1 else ""}</text>')
    out.append(f'<text x="{w-right+10}" y="{top+16+18*len(series)+8}" font-size="10">open circle: '
               'loss &gt; 0.1 %</text></svg>')
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", default="0.1,0.25,0.5,1,2,4", help="offered rates, millions of values/s")
    p.add_argument("--connections", default="1,4", help="sender connection counts")
    p.add_argument("--protocol", default="statsd", choices=["statsd", "m3msg"])
    p.add_argument("--series", type=int, default=100_000)
    p.add_argument("--mix", default="60,20,20", help="counters,gauges,timers percentages (sheaf-load --mix)")
    p.add_argument("--duration", type=float, default=12)
    p.add_argument("--warmup", type=float, default=3)
    p.add_argument("--idle", type=float, default=20, help="seconds of idle measured first (0: none)")
    p.add_argument("--trials", type=int, default=1)
    p.add_argument("--sheaf", default=os.path.join(ROOT, "target/release/sheaf"))
    p.add_argument("--compare", help="a second sheaf binary, alternated with the first at every point")
    p.add_argument("--labels", default="", help="names of the two builds, comma-separated")
    p.add_argument("--config", help="a sheaf config (default: none, the embedded default)")
    p.add_argument("--variant", action="append", default=[], help="LABEL=CONFIG: the first build under CONFIG too")
    p.add_argument("--load", default=os.path.join(ROOT, "target/release/sheaf-load"))
    p.add_argument("--out", default=os.path.join(ROOT, "bench/results", "curve-" + time.strftime("%Y-%m-%d")))
    a = p.parse_args()
    binaries = [a.sheaf] + ([a.compare] if a.compare else [])
    labels = [s for s in a.labels.split(",") if s] or ["sheaf", "compare"][:len(binaries)]
    if len(labels) < len(binaries):
        labels = [os.path.basename(os.path.dirname(os.path.dirname(b))) or b for b in binaries]
    builds = [(label, binary, a.config) for label, binary in zip(labels, binaries)]
    for v in a.variant:
        label, _, config = v.partition("=")
        builds.append((label, a.sheaf, config or None))
    machine = {"cpus": os.cpu_count(), "kernel": platform.release(), "loadavg": open("/proc/loadavg").read().strip()}
    points, idle = [], []
    workdir = tempfile.mkdtemp(prefix="sheaf-curve-")
    if a.idle > 0:
        for _ in range(a.trials):
            for label, binary, config in builds:
                r = idle_point(binary, config, a.idle, workdir)
                r["build"] = label
                idle.append(r)
                print(f"{label:>10} idle: {100 * r['idle_core_share']:.2f} % of a core, "
                      f"RSS {r['rss_mib']:.0f} MiB", file=sys.stderr)
    for rate in [float(r) * 1e6 for r in a.rates.split(",")]:
        for conns in [int(c) for c in a.connections.split(",")]:
            for _ in range(a.trials):
                for label, binary, config in builds:
                    r = load_point(a, binary, config, rate, conns, workdir)
                    r["build"] = label
                    points.append(r)
                    print(f"{label:>10} {rate/1e6:5.2f} M/s x{conns}: {r['ns_per_value'] or 0:7.1f} ns/value, "
                          f"loss {100 * r['loss']:5.2f} %, RSS {r['rss_mib'] or 0:.0f} MiB "
                          f"(peak {r['hwm_mib'] or 0:.0f})", file=sys.stderr)
    params = {k: getattr(a, k) for k in ("protocol", "series", "mix", "duration", "warmup", "trials", "config")}
    with open(a.out + ".json", "w") as f:
        json.dump({"params": params, "builds": {label: {"binary": b, "config": c} for label, b, c in builds},
                   "machine": machine,
                   "idle": idle, "points": points}, f, indent=1)
    unit = "line" if a.protocol == "statsd" else "value"
    with open(a.out + ".svg", "w") as f:
        f.write(svg(points, f"sheaf: ns of CPU per {unit} against offered rate ({a.protocol})",
                    f"{a.series} series, {a.duration:g} s per point, {machine['cpus']} CPUs, "
                    f"kernel {machine['kernel']}"))
    print(f"wrote {a.out}.json and {a.out}.svg", file=sys.stderr)


if __name__ == "__main__":
    main()
