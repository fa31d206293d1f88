#!/usr/bin/env python3
"""Reports over a million records, and the cost of thresholds evaluated every second.

Run on demand (never part of the test suite), from the workspace root:

    CARGO_TARGET_DIR=/var/tmp/ld-target python3 bench/reports.py [--records 1000000] \
        [--repeat 3] [--seconds 10] [--users 50] [--no-build] [--no-e2e]

1. Reports. For each report (json, xml, csv, junit, html, summary) and a baseline (`none`),
   `ld-bench-reports report KIND RECORDS` (one process per report and round) fills the record
   store with RECORDS records, writes the report, and prints the write time, the bytes written
   and its VmHWM after filling and at the end. The growth of the peak while writing is the
   memory the report itself needed (the goal: a few MiB at most over the store). Median write
   time and largest growth over --repeat rounds.
2. Thresholds, in-process: `ld-bench-reports thresholds 100`: the run monitor's per-second work
   with 8 conditions (copy the statistics of 100 names and a million requests, evaluate),
   microseconds per evaluation = the share of one CPU it takes at one evaluation a second.
3. Thresholds, end to end (unless --no-e2e): `fast_http_user`s (no wait) against the HTTP
   target of `ld-bench-targets` (pinned to the last CPU; load-density on CPU 0), for --seconds,
   with and without 8 threshold conditions, back to back, alternating which goes first;
   requests per generator CPU-second (os.wait4), median over the rounds, and their ratio.

All traffic goes to 127.0.0.1; every run is bounded in time.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ldbench  # noqa: E402

REPORTS = ["none", "json", "xml", "csv", "junit", "html", "summary"]

THRESHOLDS = {
    "response_time": ["p(95)<2000", "p(99)<5000", "avg<1000"],
    "response_time{name:/get}": ["p(99)<5000"],
    "response_time{type:GET}": ["med<1000"],
    "failure_rate": [{"threshold": "rate<0.5", "abort_on_fail": True, "delay_abort_eval": 5}],
    "requests": ["rate>1", "count>0"],
}


def report_rounds(bin_dir, records, repeat):
    binary = os.path.join(bin_dir, "ld-bench-reports")
    rows = {}
    for kind in REPORTS:
        runs = []
        for _ in range(repeat):
            measured = ldbench.run_measured([binary, "report", kind, str(records)], timeout=600)
            if measured.returncode != 0:
                raise SystemExit(f"{kind}: {measured.stderr[-2000:]}")
            runs.append(json.loads(measured.stdout.strip().splitlines()[-1]))
        row = {
            "write_s": round(ldbench.median([r["write_s"] for r in runs]), 3),
            "bytes": runs[0]["bytes"],
            "store_peak_mib": round(max(r["hwm_store_kib"] for r in runs) / 1024, 1),
            "growth_mib": round(max(r["growth_kib"] for r in runs) / 1024, 2),
            "rounds_write_s": [round(r["write_s"], 3) for r in runs],
        }
        rows[kind] = row
        print(f"{kind:>8}: write {row['write_s']:7.3f} s (rounds {row['rounds_write_s']}), "
              f"{row['bytes'] / 1e6:8.1f} MB written, store peak {row['store_peak_mib']} MiB, "
              f"peak grew {row['growth_mib']} MiB while writing")
    return rows


def run_load(binary, url, users, seconds, thresholds):
    start_test = {
        "user_count": users, "spawn_rate": users, "test_time": seconds, "host": url,
        "print_stats": False, "record_capacity": 0,
        "tasks": [{"method": "get", "request_url": "/get", "name": "/get"}],
    }
    if thresholds:
        start_test["thresholds"] = THRESHOLDS
    cmd = ldbench.pin(ldbench.GENERATOR_CPU) + [binary, "run-str", ldbench.load_density_doc(start_test)]
    measured = ldbench.run_measured(cmd, timeout=seconds + 60, preexec_fn=ldbench.raise_nofile)
    totals = ldbench.load_density_totals(measured)
    if totals["failures"]:
        raise SystemExit(f"failures in the run: {totals}")
    return {"requests": totals["requests"], "cpu": measured.cpu, "wall": measured.wall,
            "per_cpu_s": totals["requests"] / measured.cpu}


def e2e_rounds(bin_dir, args):
    binary = os.path.join(bin_dir, "load-density")
    plain, with_t = [], []
    with ldbench.Targets(bin_dir) as targets:
        url = targets.addresses["http"]
        for round_ in range(args.repeat):
            order = [False, True] if round_ % 2 == 0 else [True, False]
            for thresholds in order:
                r = run_load(binary, url, args.users, args.seconds, thresholds)
                (with_t if thresholds else plain).append(r)
                print(f"round {round_ + 1} {'thresholds' if thresholds else 'plain     '}: "
                      f"{r['requests']:>8} requests, {r['cpu']:6.2f} CPU s in {r['wall']:5.2f} s, "
                      f"{r['per_cpu_s']:9.0f} req/CPU-s, {r['requests'] / r['wall']:9.0f} req/s")
    p = ldbench.median([r["per_cpu_s"] for r in plain])
    t = ldbench.median([r["per_cpu_s"] for r in with_t])
    print(f"median req/CPU-s: plain {p:.0f}, with thresholds {t:.0f}, ratio {t / p:.3f}")
    return {"plain_per_cpu_s": round(p), "thresholds_per_cpu_s": round(t), "ratio": round(t / p, 3),
            "plain_rps": round(ldbench.median([r["requests"] / r["wall"] for r in plain]))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--no-e2e", action="store_true")
    args = parser.parse_args()
    print(json.dumps(ldbench.machine()))
    bin_dir = ldbench.build(["ld-bench-targets", "load-density-cli"],
                            ["ld-bench-reports", "ld-bench-targets", "load-density"], args.no_build)
    summary = {"records": args.records, "reports": report_rounds(bin_dir, args.records, args.repeat)}
    measured = ldbench.run_measured([os.path.join(bin_dir, "ld-bench-reports"), "thresholds", "100"],
                                    timeout=600)
    summary["thresholds_in_process"] = json.loads(measured.stdout.strip().splitlines()[-1])
    print(f"thresholds, in process: {summary['thresholds_in_process']}")
    if not args.no_e2e:
        summary["thresholds_e2e"] = e2e_rounds(bin_dir, args)
    print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    main()
