#!/usr/bin/env python3
"""Instructions per fast_http request (valgrind callgrind), for one or more load-density
binaries measured in the same run: a figure the machine's load does not move.

Run on demand (never part of the test suite), from the workspace root:

    CARGO_TARGET_DIR=/var/tmp/ld-target python3 bench/callgrind_per_request.py \\
        [--users 10] [--short 4] [--long 8] [--baseline PATH-TO-ANOTHER-load-density]

Each binary runs twice under `valgrind --tool=callgrind` against nginx (one worker): `--users`
fast_http users, no wait, `GET /index.html`, `record_capacity: 0`, for --short and then --long
seconds. Instructions per request = (Ir(long) - Ir(short)) / (requests(long) -
requests(short)): start-up, plan compilation and shutdown cancel out. Everything the process
executes counts (user code, tokio, the statistics collector; not the kernel). Checked: 0
failures, and nginx's request counter agrees with load-density's within the users in flight.
With --floor, the Tokio floor (`ld-bench-floor`, bench/targets: the same connections, a
pre-encoded GET each, replies counted in bytes, nothing parsed past the first, timed or
recorded) is measured the same way, so the difference is what load-density does per request
beyond the least any Tokio-based client does.
Needs valgrind and nginx; builds the release `load-density` binary unless --no-build.
"""

import argparse
import json
import os
import re
import shutil
import sys
import tempfile

import ldbench


def callgrind(binary, nginx, users, seconds, workdir, floor=False):
    out = os.path.join(workdir, f"callgrind.{os.path.basename(binary)}.{seconds}")
    if floor:
        command = [binary, nginx.url("/index.html"), str(seconds), str(users)]
    else:
        start_test = ldbench.nginx_start_test(nginx, users, seconds,
                                              {"method": "get", "request_url": "/index.html"},
                                              record_capacity=0)
        command = [binary, "run-str", ldbench.load_density_doc(start_test)]
    before = nginx.status()["requests"]
    m = ldbench.run_measured(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + command,
        timeout=seconds * 10 + 300)
    served = nginx.status()["requests"] - before - 1
    if floor:
        if m.returncode != 0:
            raise SystemExit(f"{binary} failed ({m.returncode}): {m.stderr[-2000:]}")
        totals = {"requests": json.loads(m.stdout.strip().splitlines()[-1])["requests"],
                  "failures": 0}
    else:
        totals = ldbench.load_density_totals(m)
    if totals["failures"]:
        raise SystemExit(f"{binary}: {totals['failures']} failures: {m.stderr[-2000:]}")
    if abs(served - totals["requests"]) > users:
        raise SystemExit(f"{binary}: counted {totals['requests']} requests, nginx served {served}")
    with open(out) as f:
        found = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M)
    if not found:
        raise SystemExit(f"no instruction total in {out}")
    return {"requests": totals["requests"], "ir": int(found.group(1)), "wall": m.wall}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--short", type=int, default=4)
    parser.add_argument("--long", type=int, default=8)
    parser.add_argument("--baseline", help="another load-density binary to measure beside this one")
    parser.add_argument("--floor", action="store_true",
                        help="also measure the Tokio floor, ld-bench-floor")
    parser.add_argument("--no-build", action="store_true",
                        help="use the release binary already in $CARGO_TARGET_DIR")
    args = parser.parse_args()
    for tool in ("valgrind", "nginx"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed")
    bin_dir = ldbench.build(["load-density-cli", "ld-bench-targets"],
                            ["load-density"] + (["ld-bench-floor"] if args.floor else []),
                            skip=args.no_build)
    binaries = {"this build": os.path.join(bin_dir, "load-density")}
    if args.baseline:
        binaries["baseline"] = args.baseline
    if args.floor:
        binaries["floor"] = os.path.join(bin_dir, "ld-bench-floor")
    print(f"machine: {ldbench.machine()}")
    summary = {}
    with ldbench.Nginx() as nginx, tempfile.TemporaryDirectory(prefix="ld-callgrind-") as workdir:
        print(f"target: nginx on {nginx.host}/index.html; {args.users} users, no wait; "
              f"{args.short} s and {args.long} s under callgrind")
        for name, binary in binaries.items():
            floor = name == "floor"
            short = callgrind(binary, nginx, args.users, args.short, workdir, floor)
            long = callgrind(binary, nginx, args.users, args.long, workdir, floor)
            per_request = (long["ir"] - short["ir"]) / (long["requests"] - short["requests"])
            summary[name] = {"binary": binary, "short": short, "long": long,
                             "instructions_per_request": round(per_request)}
            print(f"  {name:<10} {binary}: {short['requests']} requests in {short['ir']} Ir, "
                  f"{long['requests']} requests in {long['ir']} Ir -> {per_request:,.0f} instructions per request")
    if args.baseline:
        ratio = summary["this build"]["instructions_per_request"] / summary["baseline"]["instructions_per_request"]
        print(f"this build / baseline: {ratio:.3f}")
    if args.floor:
        beyond = (summary["this build"]["instructions_per_request"]
                  - summary["floor"]["instructions_per_request"])
        print(f"this build does {beyond:,} instructions per request more than the floor")
    print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
