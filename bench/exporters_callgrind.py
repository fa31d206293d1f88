#!/usr/bin/env python3
"""Callgrind instruction counts of a fixed-count fast_http run against nginx, per exporter
mode (bench/RESULTS.md, "Exporters' cost"). Run on demand, from the workspace root:

    python3 bench/exporters_callgrind.py BINARY LABEL ITERATIONS MODE...

MODE is none, prometheus, influxdb, otel or all. Each mode runs `BINARY run-str` under
`valgrind --tool=callgrind` with a `shared_iterations` load model (10 users, ITERATIONS
requests in all) against a throwaway nginx on 127.0.0.1, and prints one JSON line: the
instructions counted, the requests, and instructions per request. Output files go to
/tmp/LABEL-run-MODE.out. Callgrind counts user-space instructions only (no kernel time), and
time-driven work (exports every second) grows with valgrind's slowdown: read the per-request
figure as an upper bound, and examples/sink_cost.rs for each exporter's own cost.
"""
import json
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ldbench  # noqa: E402

binary, label, iterations = sys.argv[1], sys.argv[2], int(sys.argv[3])
modes = sys.argv[4:]
with ldbench.Nginx() as nginx:
    for mode in modes:
        start = ldbench.nginx_start_test(nginx, 10, 600, {"method": "get", "request_url": "/index.html", "name": "index"},
            load_model={"type": "shared_iterations", "users": 10, "iterations": iterations, "max_duration": 600})
        del start["test_time"]
        on = {"prometheus", "influxdb", "otel"} if mode == "all" else {mode}
        starts, stops = [], []
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("127.0.0.1", 0))
        if "prometheus" in on:
            starts.append(["LD_start_prometheus_exporter", {"port": 0}]); stops.append(["LD_stop_prometheus_exporter"])
        if "influxdb" in on:
            starts.append(["LD_start_influxdb_sink", {"transport": "udp", "host": "127.0.0.1", "port": udp.getsockname()[1]}]); stops.append(["LD_stop_influxdb_sink"])
        if "otel" in on:
            starts.append(["LD_start_opentelemetry_exporter", {"endpoint": f"http://127.0.0.1:{ldbench.free_port()}", "export_interval_ms": 1000}]); stops.append(["LD_stop_opentelemetry_exporter"])
        actions = [*starts, ["LD_start_test", start], *stops]
        out = f"/tmp/{label}-run-{mode}.out"
        p = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary, "run-str", json.dumps(actions)],
                           capture_output=True, text=True, timeout=1200)
        totals = None
        for line in p.stdout.splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("command") == "LD_start_test":
                totals = r.get("ok", {}).get("totals")
        ir = None
        with open(out) as f:
            for line in f:
                if line.startswith("summary:"):
                    ir = int(line.split()[1])
        req = totals["requests"] if totals else None
        print(json.dumps({"label": label, "mode": mode, "instructions": ir, "requests": req,
                          "failures": totals and totals["failures"],
                          "per_request": ir / req if req else None}), flush=True)
        udp.close()
