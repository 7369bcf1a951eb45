#!/usr/bin/env python3
"""End-to-end scaling: StatsD over sheaf's Unix datagram socket, 1 shard core against N.

    python3 bench/scaling_e2e.py [--rounds 6] [--cores 2] [--duration 6] [--warmup 2]
                                 [--series 100000] [--lines-per-datagram 2000]
                                 [--datagram-bytes 32768] [--bin-dir DIR] [--sheaf PATH]
                                 [--out bench/results/scaling-e2e-DATE] [--perf-dir DIR]
                                 [--unix-pause DURATION]

Each round starts a fresh `sheaf run` with `cores: [0]`, then one with `cores: [0..N-1]`
(the order alternates from round to round), both reading `statsd.unix.path`, and drives each
with `sheaf-load --statsd-transport unix --replay` as fast as it goes. A blocking send waits
while sheaf's socket queue is full, so the sender goes exactly as fast as sheaf drains and
nothing is dropped: the ingested rate is sheaf's throughput. sheaf-load runs on the last CPU
in both cases (on a 2-CPU host it shares CPU 1 with the second shard core).

Why a Unix socket: on loopback UDP the sender's CPU does the kernel's receive work too (~60 %
of sheaf's own cost per line), so on a host without spare CPUs the sender takes the CPU the
second core needs and the ratio measures the host. Over a Unix socket of large datagrams the
sender costs ~3-4 ns per line against sheaf's ~60, so the ratio is close to sheaf's own.

Prints, for each round, the ingested lines/s with 1 and N cores, their ratio, and lines per
sheaf CPU-second (sheaf's own efficiency: equal per CPU-second means it scales perfectly and
only the sender's share of the CPUs keeps the ratio under N); then the medians. Writes
OUT.json with every sheaf-load report and the machine.

With --perf-dir, each run also records the whole host (`perf record -a -g -e cpu-clock`) for
the measured part less half a second at each end, into DIR/ROUND-1-core.data and
DIR/ROUND-N-cores.data (`perf/scaling-e2e-profile.sh` renders them as flamegraphs).

`net.unix.max_dgram_qlen` is raised to 512 for the run when it is lower and writable (root),
and put back afterwards.
"""
import argparse, json, os, signal, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QLEN = "/proc/sys/net/unix/max_dgram_qlen"


def raise_qlen(want=512):
    """Raises the Unix datagram queue depth; returns the old value to put back, or None."""
    try:
        old = int(open(QLEN).read())
        if old >= want:
            return None
        open(QLEN, "w").write(str(want))
        return old
    except (OSError, ValueError) as e:
        print(f"note: could not raise {QLEN} ({e}); the queue stays shallow", file=sys.stderr)
        return None


def perf_seconds(args):
    """How long --perf-dir records each run: the measured part less half a second at each end."""
    return max(args.duration - 1.0, 1.0)


def one_run(args, sheaf_bin, load_bin, cores, workdir, tag, perf_data=None):
    sock = os.path.join(workdir, "statsd.sock")
    cfg = os.path.join(workdir, f"sheaf-{tag}.yaml")
    with open(cfg, "w") as f:
        f.write(f"cores: {json.dumps(cores)}\n")
        f.write("statsd:\n  udp: {enabled: false}\n  tcp: {enabled: false}\n")
        pause = f", small_read_pause: \"{args.unix_pause}\"" if args.unix_pause else ""
        f.write(f"  unix: {{path: \"{sock}\"{pause}}}\n")
        f.write("m3msg: {server: {enabled: false}}\n")
        f.write("aggregator:\n  flush:\n    handlers:\n      - json: {path: \"/dev/null\"}\n")
    log = open(os.path.join(workdir, f"sheaf-{tag}.log"), "w")
    sheaf = subprocess.Popen([sheaf_bin, "run", "--config", cfg], stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.time() + 20
        while not os.path.exists(sock):
            if sheaf.poll() is not None or time.time() > deadline:
                raise SystemExit(f"sheaf did not start; see {log.name}")
            time.sleep(0.05)
        time.sleep(0.5)
        report = os.path.join(workdir, f"load-{tag}.json")
        cpus = sorted(os.sched_getaffinity(0))
        cmd = ["taskset", "-c", str(cpus[-1]), load_bin, "--protocol", "statsd",
               "--statsd-transport", "unix", "--statsd-unix", sock, "--replay",
               "--connections", "1", "--series", str(args.series),
               "--lines-per-datagram", str(args.lines_per_datagram),
               "--datagram-bytes", str(args.datagram_bytes),
               "--duration", str(args.duration), "--warmup", str(args.warmup),
               "--pid", str(sheaf.pid), "--json-out", report]
        load = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        if perf_data:
            # sheaf-load measures after its warm-up: record from half a second into that.
            time.sleep(args.warmup + 0.5)
            subprocess.run(["perf", "record", "-q", "-a", "-g", "-e", "cpu-clock", "-F", "499", "-o", perf_data,
                            "--", "sleep", str(perf_seconds(args))],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if load.wait() != 0:
            raise SystemExit(f"sheaf-load failed ({load.returncode})")
        return json.load(open(report))
    finally:
        sheaf.send_signal(signal.SIGTERM)
        sheaf.wait(timeout=60)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--cores", type=int, default=2, help="shard cores of the second run of a round")
    ap.add_argument("--duration", type=float, default=6)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--lines-per-datagram", type=int, default=2000)
    ap.add_argument("--datagram-bytes", type=int, default=32768)
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "target/release"))
    ap.add_argument("--sheaf", default=None)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/results/scaling-e2e-" + time.strftime("%Y-%m-%d")))
    ap.add_argument("--unix-pause", default=None, help="statsd.unix.small_read_pause (default: sheaf's)")
    ap.add_argument("--perf-dir", default=None, help="record each run with perf into this folder")
    args = ap.parse_args()
    if args.perf_dir:
        os.makedirs(args.perf_dir, exist_ok=True)
    sheaf_bin = args.sheaf or os.path.join(args.bin_dir, "sheaf")
    load_bin = os.path.join(args.bin_dir, "sheaf-load")
    for b in (sheaf_bin, load_bin):
        if not os.access(b, os.X_OK):
            raise SystemExit(f"{b} missing: cargo build --release first")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < args.cores:
        raise SystemExit(f"{args.cores} shard cores need {args.cores} CPUs; this host lets us use {len(cpus)}")
    many = cpus[: args.cores]
    old_qlen = raise_qlen()
    rounds = []
    try:
        with tempfile.TemporaryDirectory(prefix="sheaf-scaling-e2e-") as workdir:
            for r in range(args.rounds):
                order = [("one", [cpus[0]]), ("many", many)]
                if r % 2:
                    order.reverse()
                got = {}
                for tag, cores in order:
                    perf_data = None
                    if args.perf_dir:
                        label = "1-core" if tag == "one" else f"{args.cores}-cores"
                        perf_data = os.path.join(args.perf_dir, f"{r}-{label}.data")
                    got[tag] = one_run(args, sheaf_bin, load_bin, cores, workdir, tag, perf_data)
                rate = {k: v["sheaf"]["ingest_values_per_s"] for k, v in got.items()}
                per_cpu = {k: v["cpu"]["values_per_cpu_s"] for k, v in got.items()}
                lost = {k: v["sent"]["values"] - v["sheaf"]["ingested_values"] for k, v in got.items()}
                row = {"round": r, "rate": rate, "values_per_cpu_s": per_cpu, "ratio": rate["many"] / rate["one"],
                       "per_cpu_ratio": per_cpu["many"] / per_cpu["one"], "sent_not_ingested": lost,
                       "loadgen_cpu_s": {k: v.get("loadgen_cpu_s") for k, v in got.items()}, "reports": got}
                rounds.append(row)
                print(f"round {r}: 1 core {rate['one'] / 1e6:6.2f} M lines/s, {args.cores} cores "
                      f"{rate['many'] / 1e6:6.2f} M: {row['ratio']:.2f}x; per sheaf CPU-second "
                      f"{per_cpu['one'] / 1e6:.2f} vs {per_cpu['many'] / 1e6:.2f} M ({row['per_cpu_ratio']:.2f}); "
                      f"sent but not ingested {lost['one']}, {lost['many']}", flush=True)
    finally:
        if old_qlen is not None:
            open(QLEN, "w").write(str(old_qlen))
    summary = {
        "median_ratio": statistics.median(r["ratio"] for r in rounds),
        "median_per_cpu_ratio": statistics.median(r["per_cpu_ratio"] for r in rounds),
        "median_rate_one": statistics.median(r["rate"]["one"] for r in rounds),
        "median_rate_many": statistics.median(r["rate"]["many"] for r in rounds),
    }
    print(f"median over {len(rounds)} rounds: {summary['median_ratio']:.2f}x throughput with {args.cores} "
          f"shard cores ({summary['median_rate_many'] / 1e6:.2f} vs {summary['median_rate_one'] / 1e6:.2f} M lines/s), "
          f"{summary['median_per_cpu_ratio']:.2f}x lines per sheaf CPU-second")
    machine = rounds[0]["reports"]["one"].get("machine") if rounds else None
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump({"tool": "bench/scaling_e2e.py", "params": vars(args), "machine": machine,
                   "perf_seconds": perf_seconds(args) if args.perf_dir else None,
                   "summary": summary, "rounds": rounds}, f, indent=1)
    print(f"written to {args.out}.json")


if __name__ == "__main__":
    main()
