#!/usr/bin/env python3
"""Soak: fast_http_user at full rate against a local nginx for 10 minutes, RSS sampled every 10 s.

Run on demand (never part of the test suite), from the workspace root:

    CARGO_TARGET_DIR=/var/tmp/ld-target python3 bench/soak.py [--seconds 600] \
        [--users 50] [--sample-every 10] [--warm-up 60] [--record-capacity 0] [--no-build]

Needs nginx (Debian package `nginx-light`); builds the release `load-density` binary. nginx
(one worker) is pinned to the last CPU, the generator to CPU 0. One run of `--users` fast_http
users with no wait, for `--seconds`. The record store is switched off by default
(`record_capacity: 0`): it is the one thing allowed to grow, up to its capacity. Every
`--sample-every` seconds the script reads the generator's VmRSS from /proc/PID/status.

It prints every sample, then the least-squares slope of RSS against time after `--warm-up`
seconds (KiB per minute), the drift that slope amounts to over the post-warm-up window, the
spread (max - min) after warm-up, the request count and rate, and the generator's CPU time.
Memory is called flat when the fitted drift over the post-warm-up window is below
`--max-drift-kib` (default 2048 KiB); otherwise the script exits 1.

Checks, or the script stops: nginx answers 200 "ok"; load-density reports 0 failures; nginx's
request counter agrees with load-density's count within the requests in flight. All traffic
goes to 127.0.0.1; the run is bounded by --seconds (and killed 120 s past it).
"""

import argparse
import json
import os
import shutil
import sys

import ldbench


def slope_per_second(points):
    """Least-squares slope of y against x, for [(x, y), ...] with at least two distinct x."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return sxy / sxx if sxx else 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--sample-every", type=float, default=10.0)
    parser.add_argument("--warm-up", type=float, default=60.0,
                        help="seconds left out of the slope")
    parser.add_argument("--record-capacity", type=int, default=0,
                        help="the run's record_capacity (0 switches the record store off)")
    parser.add_argument("--max-drift-kib", type=float, default=2048.0)
    parser.add_argument("--task", default='{"method": "get", "request_url": "/index.html"}')
    parser.add_argument("--no-build", action="store_true",
                        help="use the release binary already in $CARGO_TARGET_DIR")
    args = parser.parse_args()
    if args.warm_up + 2 * args.sample_every > args.seconds:
        raise SystemExit("--seconds must leave at least two samples after --warm-up")

    for tool in ("nginx", "cargo"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed (apt-get install nginx-light)")
    bin_dir = ldbench.build(["load-density-cli"], ["load-density"], skip=args.no_build)
    binary = os.path.join(bin_dir, "load-density")
    print(f"machine: {ldbench.machine()}")

    samples = []  # (seconds since start, VmRSS KiB)

    def on_sample(pid, elapsed):
        if pid and elapsed >= len(samples) * args.sample_every:
            rss = ldbench._proc_status_kib(pid, "VmRSS")
            if rss:
                samples.append((round(elapsed, 1), rss))
                print(f"  t={elapsed:6.1f} s  VmRSS {rss:>8} KiB", flush=True)

    with ldbench.Nginx() as nginx:
        print(f"target: nginx on {nginx.host}/index.html (1 worker, CPU {ldbench.TARGET_CPU}); "
              f"generator on CPU {ldbench.GENERATOR_CPU}; {args.users} users, no wait, "
              f"{args.seconds} s, record_capacity {args.record_capacity}", flush=True)
        before = nginx.status()["requests"]
        start_test = ldbench.nginx_start_test(nginx, args.users, args.seconds,
                                              json.loads(args.task),
                                              record_capacity=args.record_capacity)
        m = ldbench.run_measured(ldbench.pin(ldbench.GENERATOR_CPU)
                                 + [binary, "run-str", ldbench.load_density_doc(start_test)],
                                 timeout=args.seconds + 120, sample_every=0.5,
                                 on_sample=on_sample)
        served = nginx.status()["requests"] - before - 1
    totals = ldbench.load_density_totals(m)
    if totals["failures"]:
        raise SystemExit(f"load-density saw {totals['failures']} failures: {m.stderr[-2000:]}")
    if abs(served - totals["requests"]) > args.users:
        raise SystemExit(f"load-density counted {totals['requests']} requests, nginx served {served}")

    after = [(t, rss) for t, rss in samples if t >= args.warm_up]
    if len(after) < 2:
        raise SystemExit(f"only {len(after)} samples after warm-up")
    slope = slope_per_second(after)  # KiB per second
    window = after[-1][0] - after[0][0]
    drift = slope * window
    spread = max(r for _, r in after) - min(r for _, r in after)
    summary = {
        "requests": totals["requests"],
        "nginx_served": served,
        "req_per_s": round(totals["requests"] / m.wall),
        "cpu_s": round(m.cpu, 1),
        "wall_s": round(m.wall, 1),
        "peak_rss_kib": m.hwm_kib,
        "samples": len(samples),
        "rss_first_after_warm_up_kib": after[0][1],
        "rss_last_kib": after[-1][1],
        "slope_kib_per_min": round(slope * 60, 2),
        "fitted_drift_kib": round(drift, 1),
        "spread_after_warm_up_kib": spread,
        "flat": abs(drift) < args.max_drift_kib,
    }
    print(f"{totals['requests']} requests ({summary['req_per_s']} req/s; nginx served {served}), "
          f"{summary['cpu_s']} CPU s in {summary['wall_s']} s; {len(samples)} RSS samples")
    print(f"after {args.warm_up:.0f} s warm-up: RSS {after[0][1]} -> {after[-1][1]} KiB, "
          f"slope {summary['slope_kib_per_min']} KiB/min, fitted drift {drift:.0f} KiB over "
          f"{window:.0f} s, spread {spread} KiB -> {'flat' if summary['flat'] else 'GROWING'}")
    print("SAMPLES " + json.dumps(samples))
    print("SUMMARY " + json.dumps(summary))
    return 0 if summary["flat"] else 1


if __name__ == "__main__":
    sys.exit(main())
