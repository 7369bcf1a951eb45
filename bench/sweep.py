#!/usr/bin/env python3
"""Throughput sweeps of a release sheaf, driven by sheaf-load over loopback.

    python3 bench/sweep.py [--duration 6] [--replay] [--out bench/results/sweep-DATE]

Runs, each against a fresh `sheaf run` (stopped by SIGTERM afterwards):
  * cores:  1 and then every CPU of this host as shard cores; m3msg (TCP, one metric per
            message, all acked: capacity without loss) and StatsD (UDP, ingested rate at
            saturation) with 100k series;
  * series: 10k, 100k, 1M series over m3msg with all shard cores.
Writes OUT.json (every sheaf-load report plus the machine) and OUT.svg (two panels:
ingested values/s against shard cores, and against distinct series).
--replay passes `--replay` to sheaf-load (frames and datagrams encoded once and resent), so
that the sender takes less of the host's CPU.
Needs `cargo build --release` first (target/release/sheaf, target/release/sheaf-load).
"""
import argparse, json, os, signal, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHEAF = os.path.join(ROOT, "target/release/sheaf")
LOAD = os.path.join(ROOT, "target/release/sheaf-load")


def run_case(cores, protocol, series, duration, workdir, replay=False):
    cfg = os.path.join(workdir, "sheaf.yaml")
    with open(cfg, "w") as f:
        f.write(f"cores: {json.dumps(cores)}\naggregator:\n  flush:\n    handlers:\n"
                f"      - json: {{path: {os.path.join(workdir, 'out.jsonl')}}}\n")
    sheaf = subprocess.Popen([SHEAF, "run", "--config", cfg], stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(workdir, "sheaf.log"), "w"))
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen("http://127.0.0.1:6001/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        report = os.path.join(workdir, "report.json")
        conns = "4" if protocol == "m3msg" else str(max(2, len(cores)))
        subprocess.run([LOAD, "--protocol", protocol, "--series", str(series), "--duration", str(duration),
                        "--connections", conns, "--pid", str(sheaf.pid), "--json-out", report]
                       + (["--replay"] if replay else []),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(report) as f:
            r = json.load(f)
    finally:
        sheaf.send_signal(signal.SIGTERM)
        sheaf.wait(timeout=60)
    rate = r["sheaf"]["ingest_values_per_s"]
    cpu = (r.get("cpu") or {}).get("values_per_cpu_s")
    print(f"{protocol:6} cores={len(cores)} series={series:>8}: {rate/1e6:6.2f} M values/s ingested, "
          f"{(cpu or 0)/1e6:5.2f} M per sheaf CPU-second", file=sys.stderr)
    return {"protocol": protocol, "shard_cores": len(cores), "series": series, "ingest_values_per_s": rate,
            "values_per_cpu_s": cpu, "report": r}


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=6)
    ap.add_argument("--replay", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/results/sweep-" + time.strftime("%Y-%m-%d")))
    a = ap.parse_args()
    ncpu = len(os.sched_getaffinity(0))
    results = []
    with tempfile.TemporaryDirectory() as d:
        core_counts = sorted({1, ncpu})
        for proto in ("m3msg", "statsd"):
            for n in core_counts:
                r = run_case(list(range(n)), proto, 100_000, a.duration, d, a.replay)
                r["kind"] = "cores"
                results.append(r)
        for series in (10_000, 100_000, 1_000_000):
            r = run_case(list(range(ncpu)), "m3msg", series, a.duration, d, a.replay)
            r["kind"] = "series"
            results.append(r)
    machine = results[0]["report"].get("machine", {})
    desc = f'{machine.get("nproc", ncpu)} CPUs, {machine.get("cpu_model", "?")}, kernel {machine.get("kernel", "?")}; sheaf and sheaf-load share the CPUs over loopback'
    with open(a.out + ".json", "w") as f:
        json.dump({"machine": machine, "results": results}, f, indent=1)
    with open(a.out + ".svg", "w") as f:
        f.write(svg(results, desc))
    print(f"wrote {a.out}.json and {a.out}.svg", file=sys.stderr)


if __name__ == "__main__":
    main()
