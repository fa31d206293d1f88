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

4. Thresholds per user group (with the end-to-end rounds): the same load split over two user
   groups (`a`, `b`, same target), without thresholds and with 8 conditions scoped to the
   groups (`user_groups[i].thresholds` and `{group:a}` keys), which makes both groups keep
   statistics of their own.
5. Instruction counts (--callgrind, load-independent): the generator under
   `valgrind --tool=callgrind` for a fixed number of requests (`shared_iterations`, 10 users),
   in each of the four modes above; prints instructions (Ir) per request and the wall time
   (the monitor evaluates once per wall second, and callgrind makes the run ~50x longer, so
   the per-evaluation cost is given apart: (Ir with - Ir without) / seconds). With
   --callgrind only, the other parts are skipped.

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


# The same 8 conditions, scoped to two user groups.
GROUP_THRESHOLDS = {
    "a": {
        "response_time": ["p(95)<2000", "p(99)<5000", "avg<1000"],
        "failure_rate": [{"threshold": "rate<0.5", "abort_on_fail": True, "delay_abort_eval": 5}],
    },
    "b": {"response_time{type:GET}": ["med<1000"], "requests": ["rate>1", "count>0"]},
    "top": {"response_time{name:/get,group:a}": ["p(99)<5000"]},
}

# The four modes: (name, two groups, thresholds).
MODES = [("plain", False, False), ("thresholds", False, True),
         ("groups", True, False), ("group thresholds", True, True)]


def start_test_of(url, users, groups, thresholds):
    """The `start_test` keywords of a mode (without its duration or model)."""
    task = [{"method": "get", "request_url": "/get", "name": "/get"}]
    start_test = {"user_count": users, "spawn_rate": users, "host": url,
                  "print_stats": False, "record_capacity": 0}
    if groups:
        start_test["user_groups"] = [
            dict({"name": name, "user": "fast_http_user", "tasks": task},
                 **({"thresholds": GROUP_THRESHOLDS[name]} if thresholds else {}))
            for name in ("a", "b")]
        if thresholds:
            start_test["thresholds"] = GROUP_THRESHOLDS["top"]
    else:
        start_test["tasks"] = task
        if thresholds:
            start_test["thresholds"] = THRESHOLDS
    return start_test


def run_load(binary, url, users, seconds, groups, thresholds):
    start_test = start_test_of(url, users, groups, thresholds)
    start_test["test_time"] = seconds
    cmd = ldbench.pin(ldbench.GENERATOR_CPU) + [binary, "run-str", ldbench.load_density_doc(start_test)]
    measured = ldbench.run_measured(cmd, timeout=seconds + 60, preexec_fn=ldbench.raise_nofile)
    totals = ldbench.load_density_totals(measured)
    if totals["failures"]:
        raise SystemExit(f"failures in the run: {totals}")
    return {"requests": totals["requests"], "cpu": measured.cpu, "wall": measured.wall,
            "per_cpu_s": totals["requests"] / measured.cpu}


def e2e_rounds(bin_dir, args):
    binary = os.path.join(bin_dir, "load-density")
    runs = {name: [] for name, _, _ in MODES}
    with ldbench.Targets(bin_dir) as targets:
        url = targets.addresses["http"]
        for round_ in range(args.repeat):
            order = MODES if round_ % 2 == 0 else list(reversed(MODES))
            for name, groups, thresholds in order:
                r = run_load(binary, url, args.users, args.seconds, groups, thresholds)
                runs[name].append(r)
                print(f"round {round_ + 1} {name:>16}: "
                      f"{r['requests']:>8} requests, {r['cpu']:6.2f} CPU s in {r['wall']:5.2f} s, "
                      f"{r['per_cpu_s']:9.0f} req/CPU-s, {r['requests'] / r['wall']:9.0f} req/s")
    med = {name: ldbench.median([r["per_cpu_s"] for r in runs[name]]) for name in runs}
    p, t = med["plain"], med["thresholds"]
    g, gt = med["groups"], med["group thresholds"]
    print(f"median req/CPU-s: plain {p:.0f}, with thresholds {t:.0f}, ratio {t / p:.3f}")
    print(f"median req/CPU-s: two groups {g:.0f}, with group thresholds {gt:.0f}, "
          f"ratio {gt / g:.3f}")
    return {"plain_per_cpu_s": round(p), "thresholds_per_cpu_s": round(t), "ratio": round(t / p, 3),
            "groups_per_cpu_s": round(g), "group_thresholds_per_cpu_s": round(gt),
            "group_ratio": round(gt / g, 3),
            "rounds": {name: [round(r["per_cpu_s"]) for r in runs[name]] for name in runs},
            "plain_rps": round(ldbench.median([r["requests"] / r["wall"] for r in runs["plain"]]))}


def callgrind_ir(path):
    """The total instructions (Ir) of a callgrind output file."""
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError(f"no summary line in {path}")


def callgrind_rounds(bin_dir, args):
    import tempfile
    binary = os.path.join(bin_dir, "load-density")
    rows = {}
    with ldbench.Targets(bin_dir) as targets, tempfile.TemporaryDirectory() as tmp:
        url = targets.addresses["http"]
        for name, groups, thresholds in MODES:
            start_test = start_test_of(url, 10, groups, thresholds)
            model = {"type": "shared_iterations", "users": 10, "iterations": args.requests}
            if groups:
                # Half of the iterations each.
                model["iterations"] = args.requests // 2
                for group in start_test["user_groups"]:
                    group["load_model"] = dict(model, users=5)
            else:
                start_test["load_model"] = model
            start_test["test_time"] = 600
            out = os.path.join(tmp, name.replace(" ", "_") + ".out")
            cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                   binary, "run-str", ldbench.load_density_doc(start_test)]
            measured = ldbench.run_measured(cmd, timeout=900, preexec_fn=ldbench.raise_nofile)
            totals = ldbench.load_density_totals(measured)
            if totals["failures"] or totals["requests"] != args.requests:
                raise SystemExit(f"{name}: {totals}")
            ir = callgrind_ir(out)
            rows[name] = {"ir": ir, "requests": totals["requests"], "wall_s": round(measured.wall, 1),
                          "ir_per_request": round(ir / totals["requests"])}
            print(f"callgrind {name:>16}: {ir:>15,} Ir for {totals['requests']} requests = "
                  f"{ir / totals['requests']:,.0f} Ir/request, {measured.wall:.1f} s wall")
    for base, other in (("plain", "thresholds"), ("groups", "group thresholds")):
        extra = rows[other]["ir"] - rows[base]["ir"]
        per_s = extra / rows[other]["wall_s"]
        print(f"{other} vs {base}: {extra:+,} Ir ({extra / args.requests:+,.0f} Ir/request, "
              f"{100 * extra / rows[base]['ir']:+.2f} %), i.e. at most {per_s:,.0f} Ir per wall "
              f"second of the run (one evaluation)")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--no-e2e", action="store_true")
    parser.add_argument("--callgrind", action="store_true",
                        help="only the instruction counts under callgrind (part 5)")
    parser.add_argument("--thresholds-only", action="store_true",
                        help="only the end-to-end thresholds rounds (parts 3 and 4)")
    parser.add_argument("--requests", type=int, default=20_000,
                        help="requests per callgrind run (even)")
    args = parser.parse_args()
    print(json.dumps(ldbench.machine()))
    bin_dir = ldbench.build(["ld-bench-targets", "load-density-cli"],
                            ["ld-bench-reports", "ld-bench-targets", "load-density"], args.no_build)
    if args.thresholds_only:
        print("SUMMARY " + json.dumps({"thresholds_e2e": e2e_rounds(bin_dir, args)}))
        return
    if args.callgrind:
        print("SUMMARY " + json.dumps({"callgrind": callgrind_rounds(bin_dir, args)}))
        return
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
