#!/usr/bin/env python3
"""Instructions per fast_http request, counted by callgrind: a figure the machine's load does
not change.

Run on demand (never part of the test suite), from the workspace root:

    CARGO_TARGET_DIR=/var/tmp/ld-target python3 bench/instructions_per_request.py \
        [--binary PATH ...] [--small 2000] [--large 12000] [--no-build]

Builds the release `load-density` binary unless `--binary` names one or more builds to
compare (one built from main and one from a branch, say). Starts nginx (`/index.html`) on
127.0.0.1 and runs each binary twice under `valgrind --tool=callgrind`, with one
`fast_http_user` making exactly SMALL, then LARGE requests (`shared_iterations`, a task of
one GET). The instructions per request are (Ir(LARGE) - Ir(SMALL)) / (LARGE - SMALL): the
start-up and the end cancel out, what every further request costs (the user, the client,
the statistics and the records, the collector) stays. Checks, or the script stops: each run
reports exactly the requests asked and 0 failures. Prints one JSON line per binary.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import ldbench


def instructions(binary, nginx, requests):
    doc = ldbench.load_density_doc({
        "user_detail_dict": {"user": "fast_http_user"},
        "host": nginx.host,
        "print_stats": False,
        "load_model": {"type": "shared_iterations", "users": 1, "iterations": requests},
        "tasks": [{"method": "get", "request_url": "/index.html"}],
    })
    with tempfile.TemporaryDirectory(prefix="ld-callgrind-") as tmp:
        out = os.path.join(tmp, "callgrind.out")
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary, "run-str", doc],
            capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"{binary} under callgrind failed: {proc.stderr[-2000:]}")
        found = re.search(r"Collected\s*:\s*(\d+)", proc.stderr)
        if not found:
            with open(out) as f:
                found = re.search(r"^summary:\s*(\d+)", f.read(), re.M)
        if not found:
            raise SystemExit(f"no instruction count in callgrind's output: {proc.stderr[-2000:]}")
    totals = ldbench.load_density_totals(ldbench.Measured(
        cmd=[], returncode=0, stdout=proc.stdout, stderr=proc.stderr, wall=0.0,
        cpu_user=0.0, cpu_sys=0.0, maxrss_kib=0))
    if totals["requests"] != requests or totals["failures"]:
        raise SystemExit(f"{binary}: {totals['requests']} requests, {totals['failures']} failures"
                         f" (asked {requests})")
    return int(found.group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", action="append", default=[])
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=12000)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    binaries = args.binary
    if not binaries:
        private = ldbench.build(["load-density-cli"], ["load-density"], skip=args.no_build)
        binaries = [os.path.join(private, "load-density")]
    print(json.dumps({"machine": ldbench.machine()}))
    with ldbench.Nginx() as nginx:
        for binary in binaries:
            small = instructions(binary, nginx, args.small)
            large = instructions(binary, nginx, args.large)
            print(json.dumps({
                "binary": binary, "small": args.small, "large": args.large,
                "ir_small": small, "ir_large": large,
                "ir_per_request": (large - small) / (args.large - args.small),
            }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
