#!/usr/bin/env python3
"""The end-to-end cost of placeholders: fast_http requests per CPU-second with a
placeholder-heavy task versus the same request without placeholders, same nginx, same run.

Run on demand (never part of the test suite), from the workspace root:

    CARGO_TARGET_DIR=/var/tmp/ld-target python3 bench/placeholders.py [--seconds 10] \
        [--users 50] [--repeat 3] [--no-criterion]

Needs nginx (Debian package `nginx-light`); builds the release `load-density` binary. nginx
(one worker) is pinned to the last CPU, load-density to CPU 0. Each round runs, back to back
and alternating which goes first, 50 fast_http users (no wait) for --seconds with

- plain:        GET /index.html                                   (name "plain")
- placeholders: GET /index.html?u=${uuid()}&n=${randint(1,1000)}&v=${var.x}
                with header `X-Name: ${faker.name}` (variables: {"x": "bench"};
                name "placeholders")

and prints requests per generator CPU-second (requests / user + sys CPU seconds of the
load-density process, from os.wait4) for both, the CPU microseconds per request, and the
relative cost (1 - placeholders rate / plain rate), median over the rounds. Both runs must have
0 failures (nginx serves the static file whatever the query string).

Both tasks have a `name`. Without one, a task whose URL has placeholders is recorded under the
URL as written (one statistics entry per task, not one per distinct URL); `--unnamed-probe`
checks that case once, for 2 s: the placeholder task without `name`, with its peak RSS.

Then (unless --no-criterion) it runs the criterion micro-benchmark of template rendering,
`cargo bench -p load-density-core --bench resolve`, and prints its estimates. All traffic goes
to 127.0.0.1.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys

import ldbench

PLAIN = {"method": "get", "request_url": "/index.html", "name": "plain"}
PLACEHOLDERS = {
    "method": "get",
    "request_url": "/index.html?u=${uuid()}&n=${randint(1,1000)}&v=${var.x}",
    "headers": {"X-Name": "${faker.name}"},
    "name": "placeholders",
}


VARIABLES = {"x": "bench"}  # what ${var.x} in the placeholder task reads


def run(binary, nginx, users, seconds, task):
    before = nginx.status()["requests"]
    doc = ldbench.load_density_doc(ldbench.nginx_start_test(nginx, users, seconds, task,
                                                             variables=VARIABLES))
    m = ldbench.run_measured(ldbench.pin(ldbench.GENERATOR_CPU) + [binary, "run-str", doc],
                             timeout=seconds + 60)
    served = nginx.status()["requests"] - before - 1
    totals = ldbench.load_density_totals(m)
    if totals["failures"]:
        raise SystemExit(f"{totals['failures']} failures: {m.stderr[-2000:]}")
    if abs(served - totals["requests"]) > users:
        raise SystemExit(f"load-density counted {totals['requests']} requests, nginx served {served}")
    return {"requests": totals["requests"], "cpu": m.cpu, "wall": m.wall,
            "rate": totals["requests"] / m.cpu, "us_per_request": 1e6 * m.cpu / totals["requests"]}


def unnamed_probe(binary, nginx, users):
    """The placeholder task without a name, 2 s: CPU per request and peak RSS."""
    task = {k: v for k, v in PLACEHOLDERS.items() if k != "name"}
    doc = ldbench.load_density_doc(ldbench.nginx_start_test(nginx, users, 2, task,
                                                             variables=VARIABLES))
    m = ldbench.run_measured(ldbench.pin(ldbench.GENERATOR_CPU) + [binary, "run-str", doc],
                             timeout=120, gnu_time_maxrss=True)
    totals = ldbench.load_density_totals(m)
    result = {"requests": totals["requests"], "failures": totals["failures"], "cpu": round(m.cpu, 2),
              "wall": round(m.wall, 2), "us_per_request": round(1e6 * m.cpu / totals["requests"], 2),
              "peak_rss_kib": m.maxrss_kib}
    print(f"unnamed probe (placeholder task without name, 2 s): {result}")
    return result


def criterion():
    """Runs the resolve criterion bench; returns {bench name: "time: [low est high]"}."""
    print("running: cargo bench -p load-density-core --bench resolve")
    proc = subprocess.run(["cargo", "bench", "-q", "-p", "load-density-core", "--bench", "resolve"],
                          cwd=ldbench.ROOT, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        print(f"criterion bench failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return None
    found = {}
    for m in re.finditer(r"(resolve/\S+)\s+time:\s+\[([^\]]+)\]", proc.stdout):
        found[m.group(1)] = m.group(2)
    for name, estimate in found.items():
        print(f"  {name:<38} time: [{estimate}]")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-criterion", action="store_true",
                        help="skip cargo bench -p load-density-core --bench resolve")
    parser.add_argument("--unnamed-probe", action="store_true",
                        help="also run the placeholder task without a name once, for 2 s")
    parser.add_argument("--no-build", action="store_true",
                        help="use the release binary already in $CARGO_TARGET_DIR")
    args = parser.parse_args()
    if not shutil.which("nginx"):
        raise SystemExit("nginx is needed (apt-get install nginx-light)")
    bin_dir = ldbench.build(["load-density-cli"], ["load-density"], skip=args.no_build)
    binary = os.path.join(bin_dir, "load-density")
    print(f"machine: {ldbench.machine()}")
    print(f"plain task:        {json.dumps(PLAIN)}")
    print(f"placeholders task: {json.dumps(PLACEHOLDERS)}")
    rounds = []
    with ldbench.Nginx() as nginx:
        print(f"target: nginx on {nginx.host} (1 worker, CPU {ldbench.TARGET_CPU}); load-density on "
              f"CPU {ldbench.GENERATOR_CPU}; {args.users} fast_http users, {args.seconds} s per run")
        for i in range(args.repeat):
            if i % 2 == 0:
                plain = run(binary, nginx, args.users, args.seconds, PLAIN)
                heavy = run(binary, nginx, args.users, args.seconds, PLACEHOLDERS)
            else:
                heavy = run(binary, nginx, args.users, args.seconds, PLACEHOLDERS)
                plain = run(binary, nginx, args.users, args.seconds, PLAIN)
            cost = 1 - heavy["rate"] / plain["rate"]
            rounds.append({"plain": plain, "placeholders": heavy, "cost": cost})
            print(f"round {i + 1}:")
            for name, r in (("plain", plain), ("placeholders", heavy)):
                print(f"  {name:<13} {r['requests']:>9} requests, {r['cpu']:6.2f} CPU s in "
                      f"{r['wall']:5.2f} s wall, {r['rate']:>8.0f} req per CPU-second, "
                      f"{r['us_per_request']:5.2f} CPU us per request")
            print(f"  relative cost of the placeholders: {100 * cost:.1f}% fewer requests per CPU-second "
                  f"({heavy['us_per_request'] - plain['us_per_request']:+.2f} CPU us per request)")
        probe = unnamed_probe(binary, nginx, args.users) if args.unnamed_probe else None
    summary = {
        "plain_req_per_cpu_s": round(ldbench.median([r["plain"]["rate"] for r in rounds])),
        "placeholders_req_per_cpu_s": round(ldbench.median([r["placeholders"]["rate"] for r in rounds])),
        "plain_us_per_request": round(ldbench.median([r["plain"]["us_per_request"] for r in rounds]), 2),
        "placeholders_us_per_request": round(
            ldbench.median([r["placeholders"]["us_per_request"] for r in rounds]), 2),
        "cost_median": round(ldbench.median([r["cost"] for r in rounds]), 4),
        "costs": [round(r["cost"], 4) for r in rounds],
    }
    print(f"median over {len(rounds)} rounds: plain {summary['plain_req_per_cpu_s']} req per CPU-second "
          f"({summary['plain_us_per_request']} us/request), placeholders "
          f"{summary['placeholders_req_per_cpu_s']} ({summary['placeholders_us_per_request']} us/request); "
          f"placeholders cost {100 * summary['cost_median']:.1f}% of requests per CPU-second")
    if probe:
        summary["unnamed_probe"] = probe
    if not args.no_criterion:
        summary["criterion"] = criterion()
    print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
