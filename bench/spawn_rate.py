#!/usr/bin/env python3
"""The spawn rate achieved: N fast_http_users asked at N users/s (1,000, 5,000, 18,000) against
nginx on 127.0.0.1, each user making one request and then waiting (so the machine's time goes
to starting users, not to load). Prints users_spawned against user_count and the summary's
achieved_spawn_rate for each rate, three rounds each, and the median.

    CARGO_TARGET_DIR=/var/tmp/ld-target python3 bench/spawn_rate.py [--no-build]

The open-files limit must allow the largest count plus nginx's connections (20,000 here:
18,000 users is the most this machine allows).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ldbench  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--rates", default="1000,5000,18000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ldbench.raise_nofile()
    binaries = ldbench.build(["load-density-cli"], ["load-density"], skip=args.no_build)
    exe = os.path.join(binaries, "load-density")
    print(ldbench.machine())
    with ldbench.Nginx(worker_connections=40000, rlimit_nofile=45000) as nginx:
        for rate in [int(r) for r in args.rates.split(",")]:
            achieved = []
            for round_ in range(args.repeat):
                start_test = ldbench.nginx_start_test(
                    nginx, rate, 4, {"method": "get", "request_url": "/index.html"},
                    wait_time={"constant": 30})
                start_test["spawn_rate"] = rate
                measured = ldbench.run_measured(
                    ldbench.pin(ldbench.GENERATOR_CPU) + [exe, "run-str", ldbench.load_density_doc(start_test)],
                    timeout=120)
                summary = None
                for line in measured.stdout.strip().splitlines():
                    result = json.loads(line)
                    if result.get("command") == "LD_start_test":
                        summary = result.get("ok")
                if summary is None:
                    raise SystemExit(f"no summary: {measured.stdout[-2000:]} {measured.stderr[-2000:]}")
                rate_achieved = summary.get("achieved_spawn_rate") or 0.0
                achieved.append(rate_achieved)
                print(f"rate {rate}/s round {round_ + 1}: users_spawned {summary['users_spawned']} "
                      f"of {summary['user_count']}, achieved_spawn_rate {rate_achieved:.0f}/s, "
                      f"failures {summary['totals']['failures']}")
            print(f"rate {rate}/s: median achieved {ldbench.median(achieved):.0f}/s")


if __name__ == "__main__":
    main()
