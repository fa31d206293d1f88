#!/usr/bin/env python3
"""fast_http_user against a local nginx, beside wrk, in the same run.

Run on demand (not part of the tests):

    python3 bench/http_vs_wrk.py [--seconds 10] [--connections 50]

Needs nginx and wrk (Debian packages `nginx-light` or `nginx`, and `wrk`) and builds the
release `load-density` binary. nginx is pinned to the last CPU, each generator to CPU 0 (on a
machine with one CPU nothing is pinned). Prints requests per generator CPU-second
(requests / (user + sys CPU seconds of the generator process)) for both tools and their ratio.
All traffic goes to 127.0.0.1.
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_DIR = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pin(cpu):
    if os.cpu_count() and os.cpu_count() > 1 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu)]
    return []


def run_measured(cmd):
    """Runs cmd to completion; returns (stdout, cpu_seconds, wall_seconds)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=600)
    wall = time.monotonic() - start
    # The rusage of all waited-for children, taken as a difference around this child.
    return out, err, proc.returncode, wall


def child_cpu():
    r = os.times()
    return r.children_user + r.children_system


def start_nginx(port, workdir):
    root = os.path.join(workdir, "www")
    os.makedirs(root)
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("ok\n")
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
""")
    last_cpu = (os.cpu_count() or 1) - 1
    proc = subprocess.Popen(pin(last_cpu) + ["nginx", "-c", conf, "-p", workdir])
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("nginx did not start")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--task", default='{"method": "get", "request_url": "/index.html"}',
                        help="the task JSON load-density runs")
    args = parser.parse_args()

    for tool in ("nginx", "wrk", "cargo"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed (apt-get install nginx-light wrk)")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "load-density-cli"], cwd=ROOT, check=True)
    binary = os.path.join(TARGET_DIR, "release", "load-density")

    workdir = tempfile.mkdtemp(prefix="ld-bench-")
    os.chmod(workdir, 0o755)  # nginx workers run unprivileged and must read the docroot
    port = free_port()
    nginx = start_nginx(port, workdir)
    try:
        url = f"http://127.0.0.1:{port}/index.html"
        # wrk: one thread, N connections, pinned to CPU 0.
        before = child_cpu()
        out, err, code, wall = run_measured(
            pin(0) + ["wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds}s", url])
        wrk_cpu = child_cpu() - before
        if code != 0:
            raise SystemExit(f"wrk failed: {err}")
        m = re.search(r"(\d+) requests in", out)
        wrk_requests = int(m.group(1)) if m else 0
        if "Non-2xx or 3xx responses" in out:
            raise SystemExit(f"wrk saw errors: {out}")

        task = json.loads(args.task)
        doc = [["LD_start_test", {
            "user_detail_dict": {"user": "fast_http_user"},
            "user_count": args.connections,
            "spawn_rate": 100000,
            "test_time": args.seconds,
            "host": f"http://127.0.0.1:{port}",
            "print_stats": False,
            "tasks": [task],
        }]]
        before = child_cpu()
        out, err, code, ld_wall = run_measured(pin(0) + [binary, "run-str", json.dumps(doc)])
        ld_cpu = child_cpu() - before
        if code != 0:
            raise SystemExit(f"load-density failed ({code}): {err[-2000:]}")
        result = json.loads(out.strip().splitlines()[-1])
        totals = result["ok"]["totals"]
        ld_requests, ld_failures = totals["requests"], totals["failures"]
        if ld_failures:
            raise SystemExit(f"load-density saw {ld_failures} failures")

        wrk_rate = wrk_requests / wrk_cpu if wrk_cpu else 0.0
        ld_rate = ld_requests / ld_cpu if ld_cpu else 0.0
        print(f"target: nginx on 127.0.0.1:{port}, {args.connections} connections, {args.seconds} s")
        print(f"wrk:          {wrk_requests:>9} requests, {wrk_cpu:6.2f} CPU s, "
              f"{wrk_requests / wall:>9.0f} req/s, {wrk_rate:>9.0f} req per CPU-second")
        print(f"load-density: {ld_requests:>9} requests, {ld_cpu:6.2f} CPU s, "
              f"{ld_requests / ld_wall:>9.0f} req/s, {ld_rate:>9.0f} req per CPU-second")
        print(f"ratio (load-density / wrk, requests per CPU-second): {ld_rate / wrk_rate:.2f}x")
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
