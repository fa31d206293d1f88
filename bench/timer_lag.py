#!/usr/bin/env python3
"""How late a 1 ms timer fires on the users' threads during a full-rate fast_http run.

Run on demand (never part of the test suite), from the workspace root:

    CARGO_TARGET_DIR=/var/tmp/ld-target python3 bench/timer_lag.py [--seconds 10] \
        [--users 50] [--repeat 3] [--binary PATH ...] [--no-build]

Builds `ld-bench-timer-lag` (bench/targets) unless `--binary` names one or more builds to
compare (say, one built from main and one from a branch: each is run in turn, per round).
Starts nginx (one worker, `/index.html`) on 127.0.0.1. Each round runs every binary once:
the binary spawns one probe task per runtime worker thread, which loops on a 1 ms
`tokio::time::sleep` and records how much longer than 1 ms each sleep took, and one probe
that sleeps 1 ms on LoadDensity's start clock (which wakes within microseconds, so its lag
is the wait for a worker thread alone), first 2 s with no load (the baseline: tokio's timer
has a 1 ms tick), then during USERS `fast_http_user`s without wait for SECONDS. The goal
(issue #17): p99 lag under load <= 1 ms. With `--pin`, load-density runs on CPU 0 alone
(one worker thread) and nginx on the other CPU, as in the throughput benchmarks; without it,
load-density's threads share both CPUs with nginx.

Checks, or the script stops: the run reports 0 failures and some requests. Prints one JSON
line per run and, per binary, the median over rounds of the loaded p50/p99/p99.9/max lag.
With `--floor`, each round also runs each binary with the bare Tokio HTTP floor as its load
(bench/targets `floor::http`: the same connections and requests, nothing recorded), so the
lag LoadDensity adds stands beside the lag any Tokio-based generator shows on this machine.
"""

import argparse
import json
import os
import subprocess
import sys

import ldbench


def run(binary, nginx, users, seconds, pin, floor=False):
    cmd = ((ldbench.pin(ldbench.GENERATOR_CPU) if pin else [])
           + [binary, nginx.host, str(users), str(seconds)] + (["--floor"] if floor else []))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode != 0:
        raise SystemExit(f"{binary} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["failures"] or not result["requests"]:
        raise SystemExit(f"{binary}: {result['failures']} failures, {result['requests']} requests")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--binary", action="append", default=[])
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--floor", action="store_true",
                        help="also run each binary with the bare Tokio HTTP floor as the load "
                             "(`--floor`): the lag any Tokio-based generator shows here")
    parser.add_argument("--pin", action="store_true",
                        help="run load-density on its own CPU (taskset, as http_vs_wrk.py and "
                             "exporters.py do), apart from nginx's")
    args = parser.parse_args()
    binaries = args.binary
    if not binaries:
        private = ldbench.build(["ld-bench-targets"], ["ld-bench-timer-lag"], skip=args.no_build)
        binaries = [os.path.join(private, "ld-bench-timer-lag")]
    print(json.dumps({"machine": ldbench.machine(), "pinned": args.pin}))
    loads = [(b, False) for b in binaries] + ([(b, True) for b in binaries] if args.floor else [])
    results = {load: [] for load in loads}
    with ldbench.Nginx() as nginx:
        for round_ in range(args.repeat):
            order = loads if round_ % 2 == 0 else list(reversed(loads))
            for binary, floor in order:
                result = run(binary, nginx, args.users, args.seconds, args.pin, floor)
                result["binary"] = binary
                print(json.dumps(result), flush=True)
                results[(binary, floor)].append(result)
    for (binary, floor), runs in results.items():
        summary = {key: ldbench.median([r["load"][key] for r in runs])
                   for key in ("p50_us", "p99_us", "p999_us", "max_us")}
        summary["idle_p99_us"] = ldbench.median([r["idle"]["p99_us"] for r in runs])
        precise = {key: ldbench.median([r["precise_load"][key] for r in runs])
                   for key in ("p50_us", "p99_us", "p999_us", "max_us")}
        precise["idle_p99_us"] = ldbench.median([r["precise_idle"]["p99_us"] for r in runs])
        summary["requests_per_cpu_s"] = ldbench.median(
            [r["requests"] / r["cpu_s"] for r in runs if r["cpu_s"] > 0])
        print(json.dumps({"binary": binary, "load_by": "floor" if floor else "load-density",
                          "median": summary,
                          "goal_p99_le_1ms": summary["p99_us"] <= 1000,
                          "precise_median": precise,
                          "precise_goal_p99_le_1ms": precise["p99_us"] <= 1000}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
