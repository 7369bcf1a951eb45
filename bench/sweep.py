#!/usr/bin/env python3
"""Throughput sweeps of a release sheaf, driven by sheaf-load over loopback.

    python3 bench/sweep.py [--duration 6] [--replay] [--shard-cores 1,2,4,8]
                           [--series 10000,100000,1000000] [--bin-dir DIR] [--sheaf PATH]
                           [--out bench/results/sweep-DATE]

Runs, each against a fresh `sheaf run` (stopped by SIGTERM afterwards):
  * cores:  each count of --shard-cores (default: 1 and every CPU of this host); m3msg (TCP,
            one metric per message, all acked: capacity without loss) and StatsD (UDP,
            ingested rate at saturation) with 100k series;
  * series: each count of --series over m3msg with the most shard cores.
Where the host has CPUs to spare (more than the most shard cores asked for), the shard cores
are pinned to CPUs 0..n-1, the control thread to the next CPU, and sheaf-load to the CPUs
after that (to the control thread's CPU when that is the only one left), the same CPUs for
every run: the sender and the kernel's loopback work then stay off the shard cores, and the
ratio to one core is sheaf's own scaling. Otherwise everything shares every CPU, as on the
2-CPU dev box, and the 2-core figures measure the box rather than sheaf.
Writes OUT.json (every sheaf-load report, the placement and the machine) and OUT.svg (two
panels: ingested values/s against shard cores, and against distinct series), and prints a
table of the ratios to one shard core.
--replay passes `--replay` to sheaf-load (frames and datagrams encoded once and resent), so
that the sender takes less of the host's CPU.
Needs `cargo build --release` first (target/release/sheaf, target/release/sheaf-load), or
--bin-dir naming a folder with both (a host without a toolchain); --sheaf overrides the
sheaf binary alone (e.g. target/pgo/release/sheaf from perf/pgo.sh).
"""
import argparse, json, os, signal, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Placement:
    """Which CPUs run shard cores, the control thread and the load generator."""

    def __init__(self, cpus, most_shard_cores):
        self.cpus = sorted(cpus)
        spare = self.cpus[most_shard_cores:]
        self.dedicated = bool(spare)
        self.control_cpu = spare[0] if spare else None
        self.load_cpus = (spare[1:] or spare) if spare else list(self.cpus)

    def shard_cpus(self, n):
        return self.cpus[:n]

    def describe(self):
        if not self.dedicated:
            return "sheaf and sheaf-load share every CPU over loopback"
        return (f"shard cores on CPUs {self.cpus[0]}.., control thread on CPU {self.control_cpu}, "
                f"sheaf-load on CPUs {self.load_cpus[0]}-{self.load_cpus[-1]} over loopback")


def run_case(bins, place, n, protocol, series, duration, workdir, replay=False):
    cores = place.shard_cpus(n)
    cfg = os.path.join(workdir, "sheaf.yaml")
    with open(cfg, "w") as f:
        f.write(f"cores: {json.dumps(cores)}\n")
        if place.control_cpu is not None:
            f.write(f"control_cpu: {place.control_cpu}\n")
        f.write("aggregator:\n  flush:\n    handlers:\n"
                f"      - json: {{path: {os.path.join(workdir, 'out.jsonl')}}}\n")
    sheaf = subprocess.Popen([bins["sheaf"], "run", "--config", cfg], stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(workdir, "sheaf.log"), "w"))
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen("http://127.0.0.1:6001/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        report = os.path.join(workdir, "report.json")
        # Enough senders to keep every shard core busy: SO_REUSEPORT spreads connections and
        # UDP flows over the cores by a hash, so a few per core even out the spread.
        conns = max(4, 2 * n) if protocol == "m3msg" else max(2, 4 * n if place.dedicated else n)
        load_cpus = set(place.load_cpus)
        subprocess.run([bins["load"], "--protocol", protocol, "--series", str(series), "--duration", str(duration),
                        "--connections", str(conns), "--pid", str(sheaf.pid), "--json-out", report]
                       + (["--replay"] if replay else []),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       preexec_fn=lambda: os.sched_setaffinity(0, load_cpus))
        with open(report) as f:
            r = json.load(f)
    finally:
        sheaf.send_signal(signal.SIGTERM)
        sheaf.wait(timeout=60)
    rate = r["sheaf"]["ingest_values_per_s"]
    cpu = (r.get("cpu") or {}).get("values_per_cpu_s")
    print(f"{protocol:6} cores={n} series={series:>8}: {rate/1e6:6.2f} M values/s ingested, "
          f"{(cpu or 0)/1e6:5.2f} M per sheaf CPU-second", file=sys.stderr)
    return {"protocol": protocol, "shard_cores": n, "shard_cpus": cores, "series": series,
            "ingest_values_per_s": rate, "values_per_cpu_s": cpu, "sender_connections": conns, "report": r}


def svg(results, machine):
    w, h, pad = 900, 380, 60
    def panel(x0, title, xs_label, points_by_proto, xlog=False):
        import math
        out = [f'<text x="{x0 + 200}" y="24" font-size="15" text-anchor="middle">{title}</text>']
        allx = [x for pts in points_by_proto.values() for x, _ in pts]
        ally = [y for pts in points_by_proto.values() for _, y in pts] + [0]
        if not allx:
            return out
        fx = (lambda v: math.log10(v)) if xlog else (lambda v: v)
        xmin, xmax = fx(min(allx)), fx(max(allx))
        xmax = xmax if xmax > xmin else xmin + 1
        ymax = max(ally) * 1.15 or 1
        px = lambda v: x0 + pad + (fx(v) - xmin) / (xmax - xmin) * (400 - 2 * pad)
        py = lambda v: h - pad - v / ymax * (h - 2 * pad)
        out.append(f'<line x1="{x0+pad}" y1="{h-pad}" x2="{x0+400-pad}" y2="{h-pad}" stroke="black"/>')
        out.append(f'<line x1="{x0+pad}" y1="{pad}" x2="{x0+pad}" y2="{h-pad}" stroke="black"/>')
        for i in range(5):
            v = ymax * i / 4
            out.append(f'<text x="{x0+pad-6}" y="{py(v)+4}" font-size="11" text-anchor="end">{v/1e6:.1f}M</text>')
        for x in sorted(set(allx)):
            label = f"{x//1000}k" if x >= 1000 and x < 10**6 else (f"{x//10**6}M" if x >= 10**6 else str(x))
            out.append(f'<text x="{px(x)}" y="{h-pad+16}" font-size="11" text-anchor="middle">{label}</text>')
        out.append(f'<text x="{x0+200}" y="{h-12}" font-size="12" text-anchor="middle">{xs_label}</text>')
        colors = {"m3msg": "#1f77b4", "statsd": "#d62728"}
        for i, (proto, pts) in enumerate(sorted(points_by_proto.items())):
            pts = sorted(pts)
            c = colors.get(proto, "#333")
            out.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (
                c, " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)))
            for x, y in pts:
                out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{c}"/>')
                out.append(f'<text x="{px(x)+5:.1f}" y="{py(y)-6:.1f}" font-size="10">{y/1e6:.2f}M</text>')
            out.append(f'<text x="{x0+pad+10}" y="{pad+14+16*i}" font-size="12" fill="{c}">{proto}</text>')
        return out
    by_cores, by_series = {}, {}
    for r in results:
        if r["kind"] == "cores":
            by_cores.setdefault(r["protocol"], []).append((r["shard_cores"], r["ingest_values_per_s"]))
        else:
            by_series.setdefault(r["protocol"], []).append((r["series"], r["ingest_values_per_s"]))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h+30}" font-family="sans-serif">',
             '<rect width="100%" height="100%" fill="white"/>']
    parts += panel(0, "ingested values/s vs shard cores (100k series)", "shard cores", by_cores)
    parts += panel(450, "ingested values/s vs series (m3msg)", "distinct series (log)", by_series, xlog=True)
    parts.append(f'<text x="10" y="{h+20}" font-size="11">{machine}</text></svg>')
    return "\n".join(parts)


def counts(text):
    return sorted({int(x) for x in text.split(",") if x.strip()})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=6)
    ap.add_argument("--replay", action="store_true")
    ap.add_argument("--shard-cores", default=None, help="comma-separated counts (default: 1 and every CPU)")
    ap.add_argument("--series", default="10000,100000,1000000", help="m3msg series counts ('' for none)")
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "target/release"))
    ap.add_argument("--sheaf", default=None, help="sheaf binary (default: BIN_DIR/sheaf)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/results/sweep-" + time.strftime("%Y-%m-%d")))
    a = ap.parse_args()
    cpus = os.sched_getaffinity(0)
    core_counts = counts(a.shard_cores) if a.shard_cores else sorted({1, len(cpus)})
    if not core_counts or core_counts[0] < 1 or core_counts[-1] > len(cpus):
        sys.exit(f"--shard-cores must be between 1 and {len(cpus)}")
    bins = {"sheaf": a.sheaf or os.path.join(a.bin_dir, "sheaf"), "load": os.path.join(a.bin_dir, "sheaf-load")}
    for b in bins.values():
        if not os.access(b, os.X_OK):
            sys.exit(f"{b}: not found (cargo build --release, or --bin-dir / --sheaf)")
    place = Placement(cpus, core_counts[-1])
    print(f"placement: {place.describe()}", file=sys.stderr)
    results = []
    with tempfile.TemporaryDirectory() as d:
        for proto in ("m3msg", "statsd"):
            for n in core_counts:
                r = run_case(bins, place, n, proto, 100_000, a.duration, d, a.replay)
                r["kind"] = "cores"
                results.append(r)
        for series in counts(a.series):
            r = run_case(bins, place, core_counts[-1], "m3msg", series, a.duration, d, a.replay)
            r["kind"] = "series"
            results.append(r)
    scaling = {}
    for proto in ("m3msg", "statsd"):
        rows = {r["shard_cores"]: r for r in results if r["kind"] == "cores" and r["protocol"] == proto}
        one = rows.get(1)
        for n, r in sorted(rows.items()):
            ratio = r["ingest_values_per_s"] / one["ingest_values_per_s"] if one else None
            scaling.setdefault(proto, []).append({"shard_cores": n, "values_per_s": r["ingest_values_per_s"],
                                                  "ratio_to_one_core": ratio})
            print(f"{proto:6} {n:3} shard cores: {r['ingest_values_per_s']/1e6:7.2f} M values/s"
                  + (f", {ratio:.2f} x one core" if ratio else ""))
    machine = results[0]["report"].get("machine", {})
    desc = f'{machine.get("nproc", len(cpus))} CPUs, {machine.get("cpu_model", "?")}, kernel {machine.get("kernel", "?")}; {place.describe()}'
    placement = {"dedicated": place.dedicated, "control_cpu": place.control_cpu, "load_cpus": place.load_cpus}
    with open(a.out + ".json", "w") as f:
        json.dump({"machine": machine, "placement": placement, "scaling": scaling, "results": results}, f, indent=1)
    with open(a.out + ".svg", "w") as f:
        f.write(svg(results, desc))
    print(f"wrote {a.out}.json and {a.out}.svg", file=sys.stderr)


if __name__ == "__main__":
    main()
