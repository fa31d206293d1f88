#!/usr/bin/env python3
"""Open workload models: achieved versus requested arrival rate, the corrected latency against
oha's, and memory at a high rate.

Run on demand (never part of the test suite), from the workspace root:

    CARGO_TARGET_DIR=/var/tmp/ld-target python3 bench/open_model.py [--seconds 30] \
        [--rates 1000,10000,50000] [--stall-rate 200] [--stall-seconds 20] [--repeat 1] \
        [--parts rate,stall,memory] [--baseline OTHER_BINARY] [--no-build]

Needs nginx and GNU time (Debian packages `nginx-light`, `time`) and oha, installed from
crates.io into a bench-local root when missing:

    cargo install oha --locked --root bench/.tools

Three parts (`--parts` picks some):

1. **rate**: for each rate R of --rates, `constant_arrival_rate` at R iterations/s for
   --seconds against nginx (`GET /index.html`, one request per iteration,
   `pre_allocated_users` R/100 (at least 10), `max_users` 5000, `record_capacity` 0), then the
   closed model at the same rate (R/100 users, at least 10, each paced with
   `constant_throughput` R/users). Reports the achieved rate (iterations / --seconds) and its
   error against R (goal <= 0.5 %), the start lag p50/p99 (how late the schedule's timer fired,
   `summary.generator`) and the generator's CPU microseconds per iteration for both models.
2. **stall**: the testkit target's `/stall/1000/4000` (it freezes 1 s out of every 4) at
   --stall-rate requests/s for --stall-seconds, 10 connections, with load-density
   (`constant_arrival_rate`, `pre_allocated_users` = `max_users` = 10, `when_busy` delay,
   `max_start_delay` 60 so nothing is dropped, as oha drops nothing) and with
   `oha --latency-correction -q RATE -c 10 -z SECONDS`: our corrected p50/p90/p99 against oha's
   (goal: within 10 %).
With `--baseline BINARY` (e.g. a build of main), the rate and stall parts also run that
binary, right before this one in the same round, for before/after figures.

3. **memory**: peak RSS (GNU time) of 50,000 iterations/s with 5,000 `max_users`, all
   pre-allocated, for --seconds.

The generator is pinned to CPU 0, the target to the last CPU. All traffic goes to 127.0.0.1.
Prints a final `SUMMARY {json}` line.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

import ldbench

TOOLS = os.path.join(ldbench.ROOT, "bench", ".tools")
CONNECTIONS = 10


def summary_of(measured):
    """The `start_test` summary of the last `LD_start_test` line the binary printed."""
    ldbench.load_density_totals(measured)
    for line in reversed(measured.stdout.strip().splitlines()):
        result = json.loads(line)
        if result.get("command") == "LD_start_test":
            return result["ok"]
    raise RuntimeError("no LD_start_test result")


def run_ld(binary, start_test, seconds, gnu_time=False):
    m = ldbench.run_measured(
        ldbench.pin(ldbench.GENERATOR_CPU) + [binary, "run-str", ldbench.load_density_doc(start_test)],
        timeout=seconds + 120, preexec_fn=ldbench.raise_nofile, gnu_time_maxrss=gnu_time)
    summary = summary_of(m)
    if summary["totals"]["failures"]:
        raise SystemExit(f"{summary['totals']['failures']} failures: {m.stderr[-2000:]}")
    return m, summary


def open_test(host, path, rate, seconds, pre, max_users, **model):
    return {
        "user_detail_dict": {"user": "fast_http_user"},
        "test_time": seconds + 60,
        "host": host,
        "print_stats": False,
        "record_capacity": 0,
        "load_model": {"type": "constant_arrival_rate", "rate": rate, "duration": seconds,
                       "pre_allocated_users": pre, "max_users": max_users, **model},
        "tasks": [{"method": "get", "request_url": path}],
    }


def closed_paced_test(host, rate, users, seconds):
    return {
        "user_detail_dict": {"user": "fast_http_user"},
        "user_count": users,
        "spawn_rate": 100000,
        "test_time": seconds,
        "host": host,
        "print_stats": False,
        "record_capacity": 0,
        "wait_time": {"constant_throughput": rate / users},
        "tasks": [{"method": "get", "request_url": "/index.html"}],
    }


def baseline_row(baseline, host, rate, users, seconds):
    """The same open and paced runs with the baseline binary (CPU per iteration, start lag)."""
    m, s = run_ld(baseline, open_test(host, "/index.html", rate, seconds, users, 5000), seconds)
    mc, sc = run_ld(baseline, closed_paced_test(host, rate, users, seconds), seconds)
    generator = s.get("generator") or {}
    iterations = s["totals"]["iterations"]
    closed_iterations = sc["totals"]["iterations"]
    return {
        "iterations": iterations,
        "start_lag_p50_ms": generator.get("start_lag_p50_ms"),
        "start_lag_p99_ms": generator.get("start_lag_p99_ms"),
        "cpu_us_per_iteration": round(m.cpu / max(iterations, 1) * 1e6, 2),
        "closed_cpu_us_per_iteration": round(mc.cpu / max(closed_iterations, 1) * 1e6, 2),
        "corrected_p50_ms": (s.get("latency_overall") or {}).get("corrected", {}).get("p50_ms"),
        "closed_corrected_p50_ms":
            (sc.get("latency_overall") or {}).get("corrected", {}).get("p50_ms"),
    }


def part_rate(binary, rates, seconds, baseline=None):
    rows = []
    with ldbench.Nginx(worker_connections=8192, rlimit_nofile=16384) as nginx:
        for rate in rates:
            users = max(10, rate // 100)
            before = baseline_row(baseline, nginx.host, rate, users, seconds) if baseline else None
            m, s = run_ld(binary, open_test(nginx.host, "/index.html", rate, seconds, users, 5000),
                          seconds)
            iterations = s["totals"]["iterations"]
            achieved = iterations / seconds
            error = abs(achieved - rate) / rate * 100
            generator = s.get("generator") or {}
            mc, sc = run_ld(binary, closed_paced_test(nginx.host, rate, users, seconds), seconds)
            closed_iterations = sc["totals"]["iterations"]
            row = {
                "rate": rate,
                "iterations": iterations,
                "dropped": s["totals"]["dropped_iterations"],
                "achieved_rate": round(achieved, 1),
                "error_percent": round(error, 3),
                "start_lag_p50_ms": generator.get("start_lag_p50_ms"),
                "start_lag_p99_ms": generator.get("start_lag_p99_ms"),
                "cpu_s": round(m.cpu, 2),
                "cpu_us_per_iteration": round(m.cpu / max(iterations, 1) * 1e6, 2),
                "corrected_p50_ms": (s.get("latency_overall") or {}).get("corrected", {}).get("p50_ms"),
                "corrected_p99_ms": (s.get("latency_overall") or {}).get("corrected", {}).get("p99_ms"),
                "closed_corrected_p50_ms":
                    (sc.get("latency_overall") or {}).get("corrected", {}).get("p50_ms"),
                "closed_users": users,
                "closed_iterations": closed_iterations,
                "closed_cpu_s": round(mc.cpu, 2),
                "closed_cpu_us_per_iteration": round(mc.cpu / max(closed_iterations, 1) * 1e6, 2),
                "saturated": generator.get("saturated"),
                "baseline": before,
            }
            rows.append(row)
            print(f"rate {rate:>6}/s: {iterations} iterations ({row['dropped']} dropped) in {seconds} s "
                  f"-> {achieved:.1f}/s, error {error:.3f} % (goal <= 0.5 %); start lag p50 "
                  f"{row['start_lag_p50_ms']} ms, p99 {row['start_lag_p99_ms']} ms; CPU "
                  f"{row['cpu_us_per_iteration']} us/iteration open vs "
                  f"{row['closed_cpu_us_per_iteration']} us closed ({users} paced users, "
                  f"{closed_iterations} iterations); corrected p50 open {row['corrected_p50_ms']} "
                  f"ms, paced {row['closed_corrected_p50_ms']} ms; generator saturated: "
                  f"{row['saturated']}")
            if before:
                print(f"   baseline ({baseline}): start lag p50 {before['start_lag_p50_ms']} ms, "
                      f"p99 {before['start_lag_p99_ms']} ms; CPU {before['cpu_us_per_iteration']} "
                      f"us/iteration open, {before['closed_cpu_us_per_iteration']} us paced; "
                      f"corrected p50 open {before['corrected_p50_ms']} ms, paced "
                      f"{before['closed_corrected_p50_ms']} ms")
    return rows


def oha_binary():
    local = os.path.join(TOOLS, "bin", "oha")
    if os.access(local, os.X_OK):
        return local
    found = shutil.which("oha")
    if found:
        return found
    raise SystemExit(f"oha is needed: cargo install oha --locked --root {TOOLS}")


def oha_percentiles(output):
    data = json.loads(output)
    table = data["latencyPercentiles"]
    return {p: table[f"p{p}"] * 1000 for p in (50, 90, 99)}


def stall_ours(binary, host, path, rate, seconds):
    m, s = run_ld(binary, open_test(host, path, rate, seconds, CONNECTIONS, CONNECTIONS,
                                     when_busy="delay", max_start_delay=60), seconds)
    corrected = s["per_name"][path]["corrected"]
    return s, {50: corrected["p50_ms"], 90: corrected["p90_ms"], 99: corrected["p99_ms"]}


def part_stall(binary, release, rate, seconds, baseline=None):
    oha = oha_binary()
    version = subprocess.run([oha, "--version"], capture_output=True, text=True).stdout.strip()
    with ldbench.Targets(release) as targets:
        host = targets.addresses["http"]
        path = "/stall/1000/4000"
        before = stall_ours(baseline, host, path, rate, seconds)[1] if baseline else None
        s, ours = stall_ours(binary, host, path, rate, seconds)
        generator = s.get("generator") or {}
        service = {50: s["totals"]["p50_ms"], 99: s["totals"]["p99_ms"]}
        cmd = ldbench.pin(ldbench.GENERATOR_CPU) + [
            oha, "--no-tui", "--output-format", "json", "--latency-correction",
            "-q", str(rate), "-c", str(CONNECTIONS), "-z", f"{seconds}s", host + path]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
        if done.returncode != 0:
            raise SystemExit(f"oha failed: {done.stderr[-2000:]}")
        theirs = oha_percentiles(done.stdout)
    ratios = {p: ours[p] / theirs[p] if theirs[p] else float("nan") for p in (50, 90, 99)}
    print(f"stall ({path}, {rate}/s, {seconds} s, {CONNECTIONS} connections): "
          f"load-density corrected p50/p90/p99 {ours[50]:.1f}/{ours[90]:.1f}/{ours[99]:.1f} ms "
          f"(service time p50 {service[50]:.1f}, p99 {service[99]:.1f} ms, "
          f"{s['totals']['iterations']} iterations, {s['totals']['dropped_iterations']} dropped); "
          f"{version} --latency-correction p50/p90/p99 "
          f"{theirs[50]:.1f}/{theirs[90]:.1f}/{theirs[99]:.1f} ms; ratios "
          + ", ".join(f"p{p} {ratios[p]:.2f}" for p in (50, 90, 99)) + " (goal 0.90-1.10); "
          f"start lag p50 {generator.get('start_lag_p50_ms')} ms, p99 "
          f"{generator.get('start_lag_p99_ms')} ms")
    if before:
        print(f"   baseline ({baseline}): corrected p50/p90/p99 "
              f"{before[50]:.2f}/{before[90]:.1f}/{before[99]:.1f} ms; ratios "
              + ", ".join(f"p{p} {before[p] / theirs[p]:.2f}" for p in (50, 90, 99) if theirs[p]))
    return {"rate": rate, "seconds": seconds, "ours_ms": ours, "oha_ms": theirs,
            "baseline_ms": before, "start_lag_ms": [generator.get("start_lag_p50_ms"),
                                                    generator.get("start_lag_p99_ms")],
            "ratios": {p: round(r, 3) for p, r in ratios.items()}, "service_ms": service,
            "oha": version}


def part_memory(binary, seconds):
    with ldbench.Nginx(worker_connections=12000, rlimit_nofile=24000) as nginx:
        m, s = run_ld(binary, open_test(nginx.host, "/index.html", 50000, seconds, 5000, 5000),
                      seconds, gnu_time=True)
    row = {"rate": 50000, "max_users": 5000, "peak_rss_kib": m.maxrss_kib,
           "iterations": s["totals"]["iterations"], "dropped": s["totals"]["dropped_iterations"],
           "cpu_s": round(m.cpu, 2)}
    print(f"memory: 50,000/s with 5,000 users pre-allocated for {seconds} s: peak RSS "
          f"{m.maxrss_kib / 1024:.1f} MiB; {row['iterations']} iterations, {row['dropped']} dropped")
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--rates", default="1000,10000,50000")
    parser.add_argument("--stall-rate", type=int, default=200)
    parser.add_argument("--stall-seconds", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--parts", default="rate,stall,memory")
    parser.add_argument("--baseline", metavar="BINARY",
                        help="another load-density binary (e.g. built from main) run beside this "
                             "one in the rate and stall parts, for before/after figures")
    parser.add_argument("--no-build", action="store_true",
                        help="use the release binaries already in $CARGO_TARGET_DIR")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if parts & {"rate", "memory"} and not shutil.which("nginx"):
        raise SystemExit("nginx is needed (apt-get install nginx-light)")
    if "memory" in parts and not os.access("/usr/bin/time", os.X_OK):
        raise SystemExit("GNU time is needed for a clean peak RSS (apt-get install time)")
    release = ldbench.build(["load-density-cli", "ld-bench-targets"],
                            ["load-density", "ld-bench-targets"], skip=args.no_build)
    binary = os.path.join(release, "load-density")
    print(f"machine: {ldbench.machine()}")
    summary = {}
    for round_ in range(args.repeat):
        print(f"round {round_ + 1}:")
        if "rate" in parts:
            summary.setdefault("rate", []).append(
                part_rate(binary, [int(r) for r in args.rates.split(",")], args.seconds,
                          args.baseline))
        if "stall" in parts:
            summary.setdefault("stall", []).append(
                part_stall(binary, release, args.stall_rate, args.stall_seconds, args.baseline))
        if "memory" in parts:
            summary.setdefault("memory", []).append(part_memory(binary, args.seconds))
    print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
