#!/usr/bin/env python3
"""Memory per simulated user: 10,000 fast_http users against a local nginx, versus 1 user.

Run on demand (never part of the test suite), from the workspace root:

    CARGO_TARGET_DIR=/var/tmp/ld-target python3 bench/memory_per_user.py [--users 10000] \
        [--seconds 20] [--spawn-rate 2000] [--repeat 3]

Needs nginx and GNU time (Debian packages `nginx-light`, `time`); builds the release
`load-density` binary. Each round runs load-density twice back to back, with 1 user and with
--users users, both with `wait_time: {"constant": 1}` (one request per user per second, one
kept-alive connection per user) for --seconds against nginx (one worker, worker_connections
and its open-files limit raised for 10k connections, pinned to the last CPU; load-density
pinned to CPU 0, its soft open-files limit raised to the hard limit in the child). The peak
RSS of the generator process is its ru_maxrss as GNU `/usr/bin/time -f %M` reports it
(os.wait4's own ru_maxrss would include this driver's RSS, which Linux carries over
fork+exec); the VmHWM sampled from /proc/PID/status every 0.5 s is printed beside it:

    KiB per user = (peak(N users) - peak(1 user)) / (N - 1)

A steady-state figure is printed too: the same difference of the median VmRSS sampled over
the last 40% of the run (all users spawned, before shutdown).

Target <= 10 KiB per user. Reference figures, not measured here: Locust ~26 KiB per user,
Goose ~46 KiB per user.

Each pair is run twice: with the default record store (every request kept as a record, up to
1,000,000, which grows with the request count, not the user count) and with
`record_capacity: 0` (statistics only, like Locust), so the per-user figure can be read
without the records of the 10k run's ~10k requests per second.

Checks, or the script stops: 0 failures; all users spawned; nginx's stub_status saw at least
N open connections at once during the N-user run. All traffic goes to 127.0.0.1.
"""

import argparse
import json
import os
import shutil
import sys

import ldbench


def run(binary, nginx, users, seconds, spawn_rate, record_capacity):
    start_test = {
        "user_detail_dict": {"user": "fast_http_user"},
        "user_count": users,
        "spawn_rate": spawn_rate,
        "test_time": seconds,
        "host": nginx.host,
        "wait_time": {"constant": 1},
        "print_stats": False,
        "tasks": [{"method": "get", "request_url": "/index.html"}],
    }
    if record_capacity is not None:
        start_test["record_capacity"] = record_capacity
    peak_active = [0]

    def sample(_pid, _elapsed):
        peak_active[0] = max(peak_active[0], nginx.status()["active"] - 1)

    m = ldbench.run_measured(
        ldbench.pin(ldbench.GENERATOR_CPU) + [binary, "run-str", ldbench.load_density_doc(start_test)],
        timeout=seconds + 120, preexec_fn=ldbench.raise_nofile, sample_every=0.5, on_sample=sample,
        gnu_time_maxrss=True)
    totals = ldbench.load_density_totals(m)
    result = json.loads(m.stdout.strip().splitlines()[-1])["ok"]
    if totals["failures"]:
        raise SystemExit(f"{users} users: {totals['failures']} failures: {m.stderr[-2000:]}")
    if result.get("users_spawned") != users:
        raise SystemExit(f"{users} users asked, {result.get('users_spawned')} spawned")
    if peak_active[0] < users:
        raise SystemExit(f"{users} users, but nginx saw at most {peak_active[0]} open connections")
    steady = [rss for t, rss in m.samples if 0.6 * seconds <= t <= seconds - 0.5]
    return {"users": users, "requests": totals["requests"], "maxrss_kib": m.maxrss_kib,
            "steady_kib": ldbench.median(steady),
            "hwm_kib": m.hwm_kib, "cpu": m.cpu, "wall": m.wall, "nginx_peak_open": peak_active[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--spawn-rate", type=float, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-build", action="store_true",
                        help="use the release binary already in $CARGO_TARGET_DIR")
    args = parser.parse_args()
    if not shutil.which("nginx"):
        raise SystemExit("nginx is needed (apt-get install nginx-light)")
    if not os.access("/usr/bin/time", os.X_OK):
        raise SystemExit("GNU time is needed for a clean peak RSS (apt-get install time)")
    soft, hard = ldbench.nofile_limit()
    if hard < args.users + 100:
        raise SystemExit(f"the open-files hard limit ({hard}) is below {args.users} users")
    bin_dir = ldbench.build(["load-density-cli"], ["load-density"], skip=args.no_build)
    binary = os.path.join(bin_dir, "load-density")
    print(f"machine: {ldbench.machine()}; open files soft/hard {soft}/{hard} (child: {hard})")
    variants = (("default record store", None), ("record_capacity 0", 0))
    per_user = {name: [] for name, _ in variants}
    steady_per_user = {name: [] for name, _ in variants}
    with ldbench.Nginx(worker_connections=args.users + 4096, rlimit_nofile=2 * args.users + 8192) as nginx:
        print(f"target: nginx on {nginx.host}/index.html (1 worker, CPU {ldbench.TARGET_CPU}); "
              f"load-density on CPU {ldbench.GENERATOR_CPU}; wait_time constant 1 s, "
              f"{args.seconds} s per run, spawn_rate {args.spawn_rate:g}/s")
        for i in range(args.repeat):
            print(f"round {i + 1}:")
            for name, capacity in variants:
                one = run(binary, nginx, 1, args.seconds, args.spawn_rate, capacity)
                many = run(binary, nginx, args.users, args.seconds, args.spawn_rate, capacity)
                kib = (many["maxrss_kib"] - one["maxrss_kib"]) / (args.users - 1)
                steady_kib = (many["steady_kib"] - one["steady_kib"]) / (args.users - 1)
                per_user[name].append(kib)
                steady_per_user[name].append(steady_kib)
                for r in (one, many):
                    print(f"  {name:<21} {r['users']:>6} users: peak RSS {r['maxrss_kib']:>8} KiB "
                          f"(VmHWM sampled {r['hwm_kib']:>8} KiB, steady VmRSS {r['steady_kib']:>8.0f} KiB), "
                          f"{r['requests']:>7} requests, {r['cpu']:5.2f} CPU s, "
                          f"nginx peak open connections {r['nginx_peak_open']}")
                print(f"  {name:<21} -> {kib:.2f} KiB per user from peaks, {steady_kib:.2f} from steady RSS")
    summary = {name: {"kib_per_user_median": round(ldbench.median(v), 2),
                      "kib_per_user": [round(x, 2) for x in v],
                      "steady_kib_per_user_median": round(ldbench.median(steady_per_user[name]), 2)}
               for name, v in per_user.items()}
    for name, s in summary.items():
        print(f"median over {args.repeat} rounds, {name}: {s['kib_per_user_median']:.2f} KiB per user "
              f"from peaks ({s['steady_kib_per_user_median']:.2f} from steady RSS) "
              f"(target <= 10; Locust ~26, Goose ~46, reference figures not measured here)")
    print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
