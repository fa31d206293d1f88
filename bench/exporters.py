#!/usr/bin/env python3
"""The cost of the exporters: fast_http requests per CPU-second against nginx with the
Prometheus exporter, the InfluxDB sink and the OpenTelemetry exporter on (each alone, and all
three), versus none, same nginx, same run. Also times LD_persist_records for 1,000,000 records
and the SQLite file size.

Run on demand (never part of the test suite), from the workspace root:

    CARGO_TARGET_DIR=/var/tmp/ld-target python3 bench/exporters.py [--seconds 10] \
        [--users 50] [--repeat 3] [--modes none,prometheus,influxdb,otel,all] \
        [--binary PATH] [--no-persist]

Needs nginx (Debian package `nginx-light`); builds the release `load-density` binary (and the
`persist_bench` example) unless --no-build or --binary. nginx (one worker) is pinned to the
last CPU, load-density to CPU 0. Each round runs every mode once, back to back, rotating which
goes first, 50 fast_http users (no wait, GET /index.html) for --seconds:

- none:       only LD_start_test;
- prometheus: LD_start_prometheus_exporter (a free port; this script scrapes /metrics every
              second), then LD_start_test, then the stop;
- influxdb:   LD_start_influxdb_sink over UDP to a socket this script reads (it counts the
              points: one per request);
- otel:       LD_start_opentelemetry_exporter to a free port nothing listens on (export every
              second; the exports fail, which costs the aggregation and encoding but not a
              collector's round trip);
- all:        the three together.

It prints requests per generator CPU-second (requests / user + sys CPU seconds of the
load-density process, which includes the exporters' threads) and each mode's relative cost
(1 - mode rate / none rate, within the round; goal < 3%), and the median over the rounds.
All traffic goes to 127.0.0.1.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import ldbench

TASK = {"method": "get", "request_url": "/index.html", "name": "index"}


class UdpCounter:
    """Counts InfluxDB line-protocol points arriving on a loopback UDP port."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.points = 0
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                data = self.sock.recv(1 << 16)
            except socket.timeout:
                continue
            self.points += data.count(b"\n")

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


class Scraper:
    """Scrapes the Prometheus exporter once a second, as a Prometheus server would."""

    def __init__(self, port):
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.scrapes = 0
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    response.read()
                self.scrapes += 1
            except OSError:
                pass
            time.sleep(1)

    def close(self):
        self.stop = True
        self.thread.join()


MODES = ("none", "prometheus", "influxdb", "otel", "all")


def run(binary, nginx, users, seconds, mode):
    start = ldbench.nginx_start_test(nginx, users, seconds, TASK)
    on = {"prometheus", "influxdb", "otel"} if mode == "all" else {mode}
    starts, stops = [], []
    udp = scraper = None
    if "prometheus" in on:
        prometheus_port = ldbench.free_port()
        starts.append(["LD_start_prometheus_exporter", {"port": prometheus_port}])
        stops.append(["LD_stop_prometheus_exporter"])
        scraper = Scraper(prometheus_port)
    if "influxdb" in on:
        udp = UdpCounter()
        starts.append(["LD_start_influxdb_sink",
                       {"transport": "udp", "host": "127.0.0.1", "port": udp.port}])
        stops.append(["LD_stop_influxdb_sink"])
    if "otel" in on:
        starts.append(["LD_start_opentelemetry_exporter",
                       {"endpoint": f"http://127.0.0.1:{ldbench.free_port()}",
                        "export_interval_ms": 1000}])
        stops.append(["LD_stop_opentelemetry_exporter"])
    actions = [*starts, ["LD_start_test", start], *stops]
    before = nginx.status()["requests"]
    m = ldbench.run_measured(ldbench.pin(ldbench.GENERATOR_CPU) + [binary, "run-str", json.dumps(actions)],
                             timeout=seconds + 90)
    served = nginx.status()["requests"] - before - 1
    totals = ldbench.load_density_totals(m)
    result = {"requests": totals["requests"], "cpu": m.cpu, "wall": m.wall,
              "user": m.cpu_user, "sys": m.cpu_sys, "rate": totals["requests"] / m.cpu}
    if scraper:
        scraper.close()
        result["scrapes"] = scraper.scrapes
    if udp:
        time.sleep(0.5)
        udp.close()
        result["influx_points"] = udp.points
    if totals["failures"]:
        raise SystemExit(f"{totals['failures']} failures: {m.stderr[-2000:]}")
    if abs(served - totals["requests"]) > users:
        raise SystemExit(f"load-density counted {totals['requests']} requests, nginx served {served}")
    return result


def persist(release_dir):
    """Runs the persist_bench example (1,000,000 records, 3 rounds); returns its SUMMARY."""
    binary = os.path.join(release_dir, "examples", "persist_bench")
    proc = subprocess.run([binary, "1000000"], capture_output=True, text=True, timeout=900)
    print(proc.stdout, end="")
    if proc.returncode != 0:
        raise SystemExit(f"persist_bench failed: {proc.stderr[-2000:]}")
    for line in proc.stdout.splitlines():
        if line.startswith("SUMMARY "):
            return json.loads(line[len("SUMMARY "):])
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", default="none,all",
                        help=f"comma-separated, from {', '.join(MODES)} (none is always run)")
    parser.add_argument("--binary", help="a load-density binary to measure (implies --no-build)")
    parser.add_argument("--no-persist", action="store_true", help="skip the 1,000,000-record persist")
    parser.add_argument("--no-build", action="store_true",
                        help="use the release binaries already in $CARGO_TARGET_DIR")
    args = parser.parse_args()
    modes = ["none"] + [m for m in args.modes.split(",") if m and m != "none"]
    for mode in modes:
        if mode not in MODES:
            raise SystemExit(f"--modes: unknown mode {mode!r} (known: {', '.join(MODES)})")
    if not shutil.which("nginx"):
        raise SystemExit("nginx is needed (apt-get install nginx-light)")
    if args.binary:
        binary = args.binary
        print(f"binary: {binary}")
    else:
        bin_dir = ldbench.build(["load-density-cli"], ["load-density"], skip=args.no_build)
        binary = os.path.join(bin_dir, "load-density")
    print(f"machine: {ldbench.machine()}")
    # The harness (the InfluxDB point counter, the Prometheus scraper) runs with the target,
    # off the generator's CPU: its threads would otherwise preempt load-density's and count
    # against the exporters in cache misses and context switches that no real collector,
    # running elsewhere, would cause.
    if ldbench.CPUS > 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {ldbench.TARGET_CPU})
    rounds = []
    with ldbench.Nginx() as nginx:
        print(f"target: nginx on {nginx.host} (1 worker, CPU {ldbench.TARGET_CPU}); load-density on "
              f"CPU {ldbench.GENERATOR_CPU}; {args.users} fast_http users, {args.seconds} s per run")
        for i in range(args.repeat):
            order = modes[i % len(modes):] + modes[:i % len(modes)]
            results = {mode: run(binary, nginx, args.users, args.seconds, mode) for mode in order}
            print(f"round {i + 1} (order: {', '.join(order)}):")
            costs = {}
            for mode in modes:
                r = results[mode]
                extra = "".join(f", {k} {r[k]}" for k in ("scrapes", "influx_points") if k in r)
                cost = ""
                if mode != "none":
                    costs[mode] = 1 - r["rate"] / results["none"]["rate"]
                    cost = f", cost {100 * costs[mode]:.1f}%"
                print(f"  {mode:<10} {r['requests']:>9} requests, {r['cpu']:6.2f} CPU s "
                      f"(user {r['user']:.2f}, sys {r['sys']:.2f}) in {r['wall']:5.2f} s wall, {r['rate']:>8.0f} req per CPU-second{cost}{extra}")
            rounds.append({"results": results, "costs": costs})
    summary = {"load_after": os.getloadavg()[0]}
    for mode in modes:
        summary[f"{mode}_req_per_cpu_s"] = round(ldbench.median([r["results"][mode]["rate"] for r in rounds]))
        if mode != "none":
            summary[f"{mode}_cost_median"] = round(ldbench.median([r["costs"][mode] for r in rounds]), 4)
            summary[f"{mode}_costs"] = [round(r["costs"][mode], 4) for r in rounds]
    if not args.no_persist:
        if not args.no_build:
            subprocess.run(["cargo", "build", "--release", "-p", "load-density", "--example",
                            "persist_bench"], cwd=ldbench.ROOT, check=True)
        summary["persist"] = persist(os.path.join(ldbench.TARGET_DIR, "release"))
    print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
