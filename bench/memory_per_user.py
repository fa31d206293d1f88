#!/usr/bin/env python3
"""Memory per simulated user: 10,000 idle connected users against a local target, versus 1 user.

Protocols (`--protocol`, repeatable; fast_http when none is given): fast_http against nginx,
websocket and socket against the testkit echo servers (`ld-bench-targets`), mqtt against
mosquitto (its open-files limit raised to the hard limit). Goals (issue #17): fast_http
<= 4 KiB per user, websocket and socket <= 8 KiB, mqtt <= 16 KiB. The open connections at
once are checked per target: nginx's stub_status, the testkit's connection counters (every
user keeps one connection), mosquitto's `$SYS/broker/clients/connected`. The fast_http text
below describes the original (and default) run; the other protocols are run the same way.

Run on demand (never part of the test suite), from the workspace root:

    CARGO_TARGET_DIR=/var/tmp/ld-target python3 bench/memory_per_user.py [--users 10000] \
        [--seconds 20] [--spawn-rate 2000] [--repeat 3] [--protocol P ...] [--stats-only]

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

PROTOCOLS = ("fast_http", "websocket", "socket", "mqtt")


def run(binary, target, users, seconds, spawn_rate, record_capacity):
    """One load-density run of `users` idle-most-of-the-time users of `target.protocol`."""
    start_test = {
        "user_detail_dict": {"user": target.user},
        "user_count": users,
        "spawn_rate": spawn_rate,
        "test_time": seconds,
        "wait_time": {"constant": 1},
        "print_stats": False,
        "tasks": target.tasks,
    }
    if target.host:
        start_test["host"] = target.host
    if record_capacity is not None:
        start_test["record_capacity"] = record_capacity
    peak_open = [0]

    def sample(_pid, _elapsed):
        peak_open[0] = max(peak_open[0], target.open_connections())

    m = ldbench.run_measured(
        ldbench.pin(ldbench.GENERATOR_CPU) + [binary, "run-str", ldbench.load_density_doc(start_test)],
        timeout=seconds + 120, preexec_fn=ldbench.raise_nofile, sample_every=0.5, on_sample=sample,
        gnu_time_maxrss=True)
    totals = ldbench.load_density_totals(m)
    result = json.loads(m.stdout.strip().splitlines()[-1])["ok"]
    if totals["failures"]:
        raise SystemExit(f"{target.protocol}, {users} users: {totals['failures']} failures: {m.stderr[-2000:]}")
    if result.get("users_spawned") != users:
        raise SystemExit(f"{users} users asked, {result.get('users_spawned')} spawned")
    if peak_open[0] < users:
        raise SystemExit(f"{target.protocol}, {users} users, but the target saw at most {peak_open[0]} "
                         f"open connections at once")
    steady = [rss for t, rss in m.samples if 0.6 * seconds <= t <= seconds - 0.5]
    return {"users": users, "requests": totals["requests"], "maxrss_kib": m.maxrss_kib,
            "steady_kib": ldbench.median(steady),
            "hwm_kib": m.hwm_kib, "cpu": m.cpu, "wall": m.wall, "peak_open": peak_open[0]}


class FastHttpTarget:
    """nginx (one worker), `GET /index.html`; open connections from its stub_status."""
    protocol, user = "fast_http", "fast_http_user"
    tasks = [{"method": "get", "request_url": "/index.html"}]
    goal_kib = 4

    def __init__(self, users):
        self.server = ldbench.Nginx(worker_connections=users + 4096, rlimit_nofile=2 * users + 8192)

    def __enter__(self):
        self.server.__enter__()
        self.host = self.server.host
        return self

    def __exit__(self, *exc):
        self.server.__exit__(*exc)

    def open_connections(self):
        return self.server.status()["active"] - 1

    def describe(self):
        return f"nginx on {self.host}/index.html (1 worker)"


class TestkitTarget:
    """The testkit WebSocket or TCP echo server (`ld-bench-targets`, one thread). Open
    connections: the server's cumulative connection count minus the count before the run."""
    goal_kib = 8

    def __init__(self, protocol, bin_dir):
        self.protocol = protocol
        self.targets = ldbench.Targets(bin_dir)
        self.host = None
        self.before = 0

    def __enter__(self):
        self.targets.__enter__()
        addresses = self.targets.addresses
        if self.protocol == "websocket":
            self.user, self.counter = "websocket_user", "ws_connections"
            self.tasks = [{"method": "sendrecv", "url": addresses["ws"] + "/echo", "payload": "hello",
                           "expect": "hello", "name": "echo"}]
        else:
            self.user, self.counter = "socket_user", "tcp_connections"
            self.tasks = [{"target": addresses["tcp"], "payload": "ping\n", "read_until": "\n",
                           "name": "echo"}]
        return self

    def __exit__(self, *exc):
        self.targets.__exit__(*exc)

    def reset(self):
        self.before = self.targets.stats()[self.counter]

    def open_connections(self):
        # Cumulative: every user keeps one connection, so with no failures and no reconnects
        # the connections made during the run are the connections open at once.
        return self.targets.stats()[self.counter] - self.before

    def describe(self):
        return f"testkit {self.protocol} echo server (ld-bench-targets, 1 thread)"


class MqttTarget:
    """mosquitto (open-files limit raised); open connections from `$SYS/broker/clients/connected`
    minus its value before the run."""
    protocol, user, host = "mqtt", "mqtt_user", None
    goal_kib = 16

    def __init__(self):
        import mqtt_vs_python
        self.module = mqtt_vs_python
        self.broker = mqtt_vs_python.Mosquitto(raise_nofile=True)

    def __enter__(self):
        self.broker.__enter__()
        self.connected = self.module.SysCounter(self.broker.port, topic="$SYS/broker/clients/connected")
        # The broker's count before any run (this script's own $SYS clients).
        self.before = self.connected.settled(quiet=2.5)
        self.tasks = [{"method": "publish", "broker": f"127.0.0.1:{self.broker.port}", "topic": "bench/memory",
                       "payload": "hello", "qos": 0, "name": "publish"}]
        return self

    def __exit__(self, *exc):
        self.connected.close()
        self.broker.__exit__(*exc)


    def open_connections(self):
        with self.connected.lock:
            value = self.connected.value or 0
        return value - self.before

    def describe(self):
        return f"mosquitto ({self.broker.version}) on 127.0.0.1:{self.broker.port}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--spawn-rate", type=float, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--protocol", action="append", choices=PROTOCOLS,
                        help="fast_http (default), websocket, socket, mqtt; repeat for several")
    parser.add_argument("--stats-only", action="store_true",
                        help="only the `record_capacity: 0` runs (no record store)")
    parser.add_argument("--no-build", action="store_true",
                        help="use the release binaries already in $CARGO_TARGET_DIR")
    args = parser.parse_args()
    protocols = args.protocol or ["fast_http"]
    if "fast_http" in protocols and not shutil.which("nginx"):
        raise SystemExit("nginx is needed (apt-get install nginx-light)")
    if not os.access("/usr/bin/time", os.X_OK):
        raise SystemExit("GNU time is needed for a clean peak RSS (apt-get install time)")
    soft, hard = ldbench.nofile_limit()
    if hard < args.users + 100:
        raise SystemExit(f"the open-files hard limit ({hard}) is below {args.users} users")
    bin_dir = ldbench.build(["load-density-cli", "ld-bench-targets"], ["load-density", "ld-bench-targets"],
                            skip=args.no_build)
    binary = os.path.join(bin_dir, "load-density")
    print(f"machine: {ldbench.machine()}; open files soft/hard {soft}/{hard} (child: {hard})")
    variants = (("record_capacity 0", 0),) if args.stats_only else (
        ("default record store", None), ("record_capacity 0", 0))
    summary = {}
    for protocol in protocols:
        if protocol == "fast_http":
            target = FastHttpTarget(args.users)
        elif protocol == "mqtt":
            target = MqttTarget()
        else:
            target = TestkitTarget(protocol, bin_dir)
        per_user = {name: [] for name, _ in variants}
        steady_per_user = {name: [] for name, _ in variants}
        with target:
            print(f"{protocol}: target {target.describe()} on CPU {ldbench.TARGET_CPU}; load-density on CPU "
                  f"{ldbench.GENERATOR_CPU}; wait_time constant 1 s, {args.seconds} s per run, "
                  f"spawn_rate {args.spawn_rate:g}/s")
            for i in range(args.repeat):
                print(f"round {i + 1}:")
                for name, capacity in variants:
                    results = []
                    for users in (1, args.users):
                        if hasattr(target, "reset"):
                            target.reset()
                        results.append(run(binary, target, users, args.seconds, args.spawn_rate, capacity))
                    one, many = results
                    kib = (many["maxrss_kib"] - one["maxrss_kib"]) / (args.users - 1)
                    steady_kib = (many["steady_kib"] - one["steady_kib"]) / (args.users - 1)
                    per_user[name].append(kib)
                    steady_per_user[name].append(steady_kib)
                    for r in (one, many):
                        print(f"  {name:<21} {r['users']:>6} users: peak RSS {r['maxrss_kib']:>8} KiB "
                              f"(VmHWM sampled {r['hwm_kib']:>8} KiB, steady VmRSS {r['steady_kib']:>8.0f} KiB), "
                              f"{r['requests']:>7} requests, {r['cpu']:5.2f} CPU s, "
                              f"target's peak open connections {r['peak_open']}")
                    print(f"  {name:<21} -> {kib:.2f} KiB per user from peaks, {steady_kib:.2f} from steady RSS")
        for name, v in per_user.items():
            s = {"kib_per_user_median": round(ldbench.median(v), 2), "kib_per_user": [round(x, 2) for x in v],
                 "steady_kib_per_user_median": round(ldbench.median(steady_per_user[name]), 2),
                 "goal_kib": target.goal_kib}
            summary[f"{protocol} / {name}"] = s
            print(f"{protocol}: median over {args.repeat} rounds, {name}: {s['kib_per_user_median']:.2f} KiB per "
                  f"user from peaks ({s['steady_kib_per_user_median']:.2f} from steady RSS) "
                  f"(goal <= {target.goal_kib} KiB)")
    print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
