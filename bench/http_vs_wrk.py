#!/usr/bin/env python3
"""fast_http_user against a local nginx, beside wrk, in the same run.

Run on demand (never part of the test suite), from the workspace root:

    CARGO_TARGET_DIR=/var/tmp/ld-target python3 bench/http_vs_wrk.py [--seconds 10] \
        [--connections 50] [--repeat 3]

Needs nginx and wrk (Debian packages `nginx-light` and `wrk`); builds the release
`load-density` binary. nginx (one worker) is pinned to the last CPU, each generator to CPU 0.
Each round runs wrk (`-t1 -c50`), h2load (`--h1 -t1 -c50`, unless --no-h2load), the Tokio
floor (`ld-bench-floor`, in bench/targets: 50 bare keep-alive connections on one Tokio worker
thread, a pre-encoded GET each, replies counted in bytes, nothing parsed past the first,
timed or recorded; unless --no-floor), the measured floor (the same, but every response
parsed with httparse, timed with two clock reads and recorded into an HDR histogram: the
least a load tester does with LoadDensity's libraries) and load-density (50 fast_http users, no wait; each
--binary given, to compare builds) back to back for the same duration, reversing the order every other round; the script prints, per
round and as the median over rounds, requests per generator CPU-second = requests / (user +
sys CPU seconds of the generator process alone, from os.wait4) and each tool's ratio to wrk.

Checks, or the script stops: nginx answers 200 "ok"; wrk reports no non-2xx/3xx responses and
no socket errors; load-density reports 0 failures; nginx's own request counter (stub_status)
agrees with each tool's count within the in-flight requests. All traffic goes to 127.0.0.1;
every run is bounded by --seconds (and killed past a timeout).
"""

import argparse
import json
import os
import re
import shutil
import sys

import ldbench


def run_wrk(nginx, seconds, connections):
    before = nginx.status()["requests"]
    m = ldbench.run_measured(
        ldbench.pin(ldbench.GENERATOR_CPU)
        + ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", nginx.url("/index.html")],
        timeout=seconds + 60)
    served = nginx.status()["requests"] - before - 1
    if m.returncode != 0:
        raise SystemExit(f"wrk failed ({m.returncode}): {m.stderr}")
    found = re.search(r"(\d+) requests in", m.stdout)
    if not found:
        raise SystemExit(f"cannot read wrk's request count: {m.stdout}")
    if "Non-2xx or 3xx responses" in m.stdout or "Socket errors" in m.stdout:
        raise SystemExit(f"wrk saw errors:\n{m.stdout}")
    requests = int(found.group(1))
    check_served("wrk", requests, served, connections)
    return {"requests": requests, "cpu": m.cpu, "wall": m.wall, "served": served}


def run_h2load(nginx, seconds, connections):
    """h2load speaking HTTP/1.1 (`--h1`), the other C client, under the same conditions."""
    before = nginx.status()["requests"]
    m = ldbench.run_measured(
        ldbench.pin(ldbench.GENERATOR_CPU)
        + ["h2load", "--h1", "-t1", f"-c{connections}", f"-D{seconds}",
           nginx.url("/index.html")],
        timeout=seconds + 60)
    served = nginx.status()["requests"] - before - 1
    if m.returncode != 0:
        raise SystemExit(f"h2load failed ({m.returncode}): {m.stderr}")
    found = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored", m.stdout)
    if not found:
        raise SystemExit(f"cannot read h2load's request count: {m.stdout}")
    done, succeeded, failed, errored = (int(g) for g in found.groups())
    if failed or errored or succeeded != done:
        raise SystemExit(f"h2load saw errors:\n{m.stdout}")
    check_served("h2load", done, served, connections)
    return {"requests": done, "cpu": m.cpu, "wall": m.wall, "served": served}


def run_floor(floor_binary, nginx, seconds, connections, measured=False):
    """ld-bench-floor: the least a Tokio-based HTTP/1.1 client does per request; with
    `measured`, the least a load tester does (every response parsed, timed, recorded)."""
    before = nginx.status()["requests"]
    m = ldbench.run_measured(
        ldbench.pin(ldbench.GENERATOR_CPU)
        + [floor_binary, nginx.url("/index.html"), str(seconds), str(connections)]
        + (["--measured"] if measured else []),
        timeout=seconds + 60)
    served = nginx.status()["requests"] - before - 1
    if m.returncode != 0:
        raise SystemExit(f"ld-bench-floor failed ({m.returncode}): {m.stderr[-2000:]}")
    requests = json.loads(m.stdout.strip().splitlines()[-1])["requests"]
    check_served("tokio-floor", requests, served, connections)
    return {"requests": requests, "cpu": m.cpu, "wall": m.wall, "served": served}


def run_load_density(binary, nginx, seconds, users, task):
    before = nginx.status()["requests"]
    doc = ldbench.load_density_doc(ldbench.nginx_start_test(nginx, users, seconds, task))
    m = ldbench.run_measured(ldbench.pin(ldbench.GENERATOR_CPU) + [binary, "run-str", doc],
                             timeout=seconds + 60)
    served = nginx.status()["requests"] - before - 1
    totals = ldbench.load_density_totals(m)
    if totals["failures"]:
        raise SystemExit(f"load-density saw {totals['failures']} failures: {m.stderr[-2000:]}")
    check_served("load-density", totals["requests"], served, users)
    return {"requests": totals["requests"], "cpu": m.cpu, "wall": m.wall, "served": served,
            "rss_kib": m.maxrss_kib}


def check_served(tool, counted, served, in_flight):
    """nginx must have served what the tool counted, give or take the requests in flight."""
    if not counted or abs(served - counted) > in_flight:
        raise SystemExit(f"{tool} counted {counted} requests but nginx served {served}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--task", default='{"method": "get", "request_url": "/index.html"}',
                        help="the task JSON load-density runs")
    parser.add_argument("--no-build", action="store_true",
                        help="use the release binary already in $CARGO_TARGET_DIR")
    parser.add_argument("--binary", action="append", default=[],
                        help="a load-density binary to measure (repeat to compare builds, "
                             "say main's and a branch's, in the same run); default: build one")
    parser.add_argument("--baseline", action="append", default=[],
                        help="another load-density binary to run in each round, after the "
                             "--binary ones (or the one built)")
    parser.add_argument("--no-h2load", action="store_true",
                        help="leave h2load --h1 out of the rounds")
    parser.add_argument("--no-floor", action="store_true",
                        help="leave the Tokio floor (ld-bench-floor) out of the rounds")
    args = parser.parse_args()

    for tool in ("nginx", "wrk") + (() if args.no_h2load else ("h2load",)):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed (apt-get install nginx-light wrk nghttp2-client)")
    binaries = args.binary
    wanted = [] if binaries else ["load-density"]
    if not args.no_floor:
        wanted.append("ld-bench-floor")
    bin_dir = ldbench.build(["load-density-cli", "ld-bench-targets"], wanted,
                            skip=args.no_build) if wanted else None
    if not binaries:
        binaries = [os.path.join(bin_dir, "load-density")]
    binaries = binaries + args.baseline
    task = json.loads(args.task)
    print(f"machine: {ldbench.machine()}")
    rounds = []
    with ldbench.Nginx() as nginx:
        print(f"target: nginx on {nginx.host}/index.html (1 worker, CPU {ldbench.TARGET_CPU}); "
              f"generators on CPU {ldbench.GENERATOR_CPU}; {args.connections} connections/users, "
              f"{args.seconds} s per run")
        for i in range(args.repeat):
            runs = [("wrk", lambda: run_wrk(nginx, args.seconds, args.connections))]
            if not args.no_h2load:
                runs.append(("h2load", lambda: run_h2load(nginx, args.seconds, args.connections)))
            if not args.no_floor:
                floor_binary = os.path.join(bin_dir, "ld-bench-floor")
                runs.append(("tokio-floor", lambda: run_floor(
                    floor_binary, nginx, args.seconds, args.connections)))
                runs.append(("measured-floor", lambda: run_floor(
                    floor_binary, nginx, args.seconds, args.connections, measured=True)))
            for b, binary in enumerate(binaries):
                name = "load-density" if len(binaries) == 1 else f"load-density#{b + 1}"
                runs.append((name, lambda binary=binary: run_load_density(
                    binary, nginx, args.seconds, args.connections, task)))
            if i % 2 == 1:
                runs.reverse()
            results = {}
            for name, run in runs:
                results[name] = run()
                results[name]["rate"] = results[name]["requests"] / results[name]["cpu"]
            wrk = results["wrk"]
            round_ = {"results": results,
                      "ratios": {name: r["rate"] / wrk["rate"] for name, r in results.items()}}
            rounds.append(round_)
            print(f"round {i + 1}:")
            for name, r in results.items():
                print(f"  {name:<15} {r['requests']:>9} requests (nginx served {r['served']}), "
                      f"{r['cpu']:6.2f} CPU s in {r['wall']:5.2f} s wall, "
                      f"{r['requests'] / r['wall']:>8.0f} req/s, {r['rate']:>8.0f} req per "
                      f"CPU-second, {round_['ratios'][name]:.3f}x wrk")
    names = list(rounds[0]["results"])
    summary = {
        name: {
            "req_per_cpu_s": round(ldbench.median([r["results"][name]["rate"] for r in rounds])),
            "req_per_s": round(ldbench.median([r["results"][name]["requests"]
                                               / r["results"][name]["wall"] for r in rounds])),
            "ratio_to_wrk_median": round(ldbench.median([r["ratios"][name] for r in rounds]), 3),
            "ratios_to_wrk": [round(r["ratios"][name], 3) for r in rounds],
        }
        for name in names
    }
    summary["binaries"] = binaries
    for name in names:
        print(f"median over {len(rounds)} rounds: {name} {summary[name]['req_per_cpu_s']} req per "
              f"CPU-second, {summary[name]['ratio_to_wrk_median']:.3f}x wrk")
    for floor in ("tokio-floor", "measured-floor"):
        if floor not in names:
            continue
        for name in names:
            if name.startswith("load-density"):
                of_floor = ldbench.median([r["results"][name]["rate"]
                                           / r["results"][floor]["rate"] for r in rounds])
                summary[name][f"of_{floor.replace('-', '_')}_median"] = round(of_floor, 3)
                print(f"median over {len(rounds)} rounds: {name} / {floor} {of_floor:.3f}")
    print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
