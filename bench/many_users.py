#!/usr/bin/env python3
"""18,000 users connected at once, in little memory: mqtt_user against mosquitto and
websocket_user against the testkit echo server (issue #17, goal 3).

Run on demand (never part of the test suite), from the workspace root:

    CARGO_TARGET_DIR=/var/tmp/ld-target python3 bench/many_users.py [--users 18000] \\
        [--spawn-rate 1000] [--hold 30] [--protocol mqtt] [--protocol websocket]

- mqtt: one mosquitto with two listeners on 127.0.0.1 (its open-files soft limit raised to the
  hard limit), two user groups of --users/2 `mqtt_user`s, one per listener, each publishing
  QoS 0 every 10 s (`wait_time: {"constant": 10}`). mosquitto's own
  `$SYS/broker/clients/connected` (minus its value before the run) must reach --users.
- websocket: the testkit WebSocket echo server (`ld-bench-targets`, one thread), --users
  `websocket_user`s, a `sendrecv` every 10 s; the server's connection counter must grow by
  exactly --users (each user keeps its one connection).

Each run lasts the spawn time (--users / --spawn-rate) plus --hold seconds. Checked, or the
script stops: every user spawned, 0 failures, the connection count above. Reported: the peak
RSS of the load-density process (GNU `time -f %M`; goal <= 384 MiB), its CPU seconds, the
requests made. The open-files hard limit of this machine is 20,000 per process, which bounds
--users.
"""

import argparse
import json
import os
import sys
import time

import ldbench

GOAL_MIB = 384


def run_load_density(binary, start_test, seconds, on_sample):
    m = ldbench.run_measured(
        ldbench.pin(ldbench.GENERATOR_CPU) + [binary, "run-str", ldbench.load_density_doc(start_test)],
        timeout=seconds + 180, preexec_fn=ldbench.raise_nofile, sample_every=0.5, on_sample=on_sample,
        gnu_time_maxrss=True)
    totals = ldbench.load_density_totals(m)
    result = json.loads(m.stdout.strip().splitlines()[-1])["ok"]
    return m, totals, result


def check(name, users, totals, result, connected):
    problems = []
    if totals["failures"]:
        problems.append(f"{totals['failures']} failures")
    if result.get("users_spawned") != users:
        problems.append(f"{result.get('users_spawned')} users spawned of {users}")
    if connected < users:
        problems.append(f"the server saw at most {connected} connections at once")
    return problems


def run_mqtt(binary, args):
    import mqtt_vs_python
    half = args.users // 2
    seconds = int(args.users / args.spawn_rate) + args.hold
    with mqtt_vs_python.Mosquitto(listeners=2, raise_nofile=True) as broker:
        connected_counter = mqtt_vs_python.SysCounter(broker.port, topic="$SYS/broker/clients/connected")
        try:
            groups = [{"name": f"listener{i + 1}", "user": "mqtt_user", "wait_time": {"constant": 10},
                       "tasks": [{"method": "publish", "broker": f"127.0.0.1:{port}", "topic": f"bench/many/{i}",
                                  "payload": "hello", "qos": 0, "name": f"publish listener{i + 1}"}]}
                      for i, port in enumerate(broker.ports)]
            start_test = {"user_count": 2 * half, "spawn_rate": args.spawn_rate, "test_time": seconds,
                          "print_stats": False, "record_capacity": 0, "user_groups": groups}
            peak = [0]
            # This script's own $SYS clients, as the broker counts them.
            before = connected_counter.settled(quiet=2.5)

            def sample(_pid, _elapsed):
                with connected_counter.lock:
                    value = connected_counter.value or 0
                peak[0] = max(peak[0], value - before)

            print(f"mqtt: mosquitto ({broker.version}) listeners {broker.ports}, {2 * half} users "
                  f"({half} per listener), QoS 0 every 10 s, {seconds} s")
            m, totals, result = run_load_density(binary, start_test, seconds, sample)
            # $SYS is refreshed every second: give the last value a moment.
            time.sleep(1.5)
            sample(None, None)
        finally:
            connected_counter.close()
    return summarise("mqtt", 2 * half, m, totals, result, peak[0],
                     "mosquitto $SYS/broker/clients/connected, peak")


def run_websocket(binary, bin_dir, args):
    seconds = int(args.users / args.spawn_rate) + args.hold
    with ldbench.Targets(bin_dir) as targets:
        before = targets.stats()["ws_connections"]
        start_test = {"user_detail_dict": {"user": "websocket_user"}, "user_count": args.users,
                      "spawn_rate": args.spawn_rate, "test_time": seconds, "print_stats": False,
                      "record_capacity": 0, "wait_time": {"constant": 10},
                      "tasks": [{"method": "sendrecv", "url": targets.addresses["ws"] + "/echo",
                                 "payload": "hello", "expect": "hello", "name": "echo"}]}
        print(f"websocket: testkit echo server {targets.addresses['ws']}, {args.users} users, "
              f"a sendrecv every 10 s, {seconds} s")
        m, totals, result = run_load_density(binary, start_test, seconds, None)
        made = targets.stats()["ws_connections"] - before
    # Cumulative: with no failures, every user made exactly one connection and kept it.
    if made != args.users:
        print(f"  the server counted {made} connections for {args.users} users (reconnects?)")
    return summarise("websocket", args.users, m, totals, result, made,
                     "connections the server accepted (each user keeps one)")


def summarise(name, users, m, totals, result, connected, how):
    problems = check(name, users, totals, result, connected)
    mib = m.maxrss_kib / 1024
    print(f"  {name}: peak RSS {mib:.1f} MiB (goal <= {GOAL_MIB}), {connected} connected ({how}), "
          f"{totals['requests']} requests, {totals['failures']} failures, {m.cpu:.1f} CPU s in {m.wall:.1f} s")
    if problems:
        print(f"  {name}: FAILED: {'; '.join(problems)}")
    return {"users": users, "peak_rss_mib": round(mib, 1), "connected": connected,
            "requests": totals["requests"], "failures": totals["failures"], "cpu_s": round(m.cpu, 2),
            "wall_s": round(m.wall, 1), "ok": not problems and mib <= GOAL_MIB, "problems": problems}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=18000)
    parser.add_argument("--spawn-rate", type=float, default=1000)
    parser.add_argument("--hold", type=int, default=30, help="seconds after the last user spawned")
    parser.add_argument("--protocol", action="append", choices=("mqtt", "websocket"))
    parser.add_argument("--no-build", action="store_true",
                        help="use the release binaries already in $CARGO_TARGET_DIR")
    args = parser.parse_args()
    soft, hard = ldbench.nofile_limit()
    if hard < args.users + 200:
        raise SystemExit(f"the open-files hard limit ({hard}) is below {args.users} users")
    bin_dir = ldbench.build(["load-density-cli", "ld-bench-targets"], ["load-density", "ld-bench-targets"],
                            skip=args.no_build)
    binary = os.path.join(bin_dir, "load-density")
    print(f"machine: {ldbench.machine()}; open files soft/hard {soft}/{hard}")
    summary = {}
    for protocol in args.protocol or ["mqtt", "websocket"]:
        if protocol == "mqtt":
            summary["mqtt"] = run_mqtt(binary, args)
        else:
            summary["websocket"] = run_websocket(binary, bin_dir, args)
    print("SUMMARY " + json.dumps(summary))
    return 0 if all(s["ok"] for s in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
