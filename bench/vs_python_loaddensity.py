#!/usr/bin/env python3
"""LoadDensity (Rust) beside the Python LoadDensity (je_load_density): messages per generator
CPU-second for WebSocket `sendrecv` and TCP request/reply, same task JSON, same servers, same
run.

Run on demand (never part of the test suite), from the workspace root:

    CARGO_TARGET_DIR=/var/tmp/ld-target python3 bench/vs_python_loaddensity.py \
        [--seconds 15] [--users 20] [--steps 50] [--repeat 3] [--protocols ws,tcp]

Builds the release `load-density` and `ld-bench-targets` binaries. Creates the virtualenv
/var/tmp/ld-bench-venv with `pip install "je-load-density[websocket]"` when it is missing
(PyPI through pip; the script stops with pip's error if that fails). `ld-bench-targets` (the
testkit WebSocket and TCP echo servers, one Tokio worker thread) is pinned to the last CPU,
each generator to CPU 0.

For each protocol, each round runs back to back (the Python tool first in odd rounds, last in
even ones), with --users users spawned at --users per second for --seconds:

- python:       je_load_density.start_test(...) through bench/py_loaddensity_runner.py. Its
                users wait 0.1-0.2 s between iterations; that is hard-coded in the Python
                version (spec §1.4) and cannot be configured;
- rust:         load-density with the same task list and `wait_time: {"between": [0.1, 0.2]}`,
                the same pacing, so both tools are asked for the same work;
- python-nowait: the Python tool with its user class's `wait_time` set to `constant(0)` by
                the runner (a monkeypatch, its best case for throughput);
- rust-nowait:  load-density with the same task list and no wait (its default).

With --floor, each ws round also runs `ld-bench-floor` (in ld-bench-targets): one Tokio
runtime with the generators' thread count, --users connections doing bare round trips of a
pre-encoded "hello" frame, nothing parsed, timed or recorded. Its messages per CPU-second over
python-nowait's is the highest ratio any Tokio-based generator could show on this machine.

Two ratios are printed: rust / python (the same work at the same pacing: both tools idle
between bursts, so fixed costs per wake-up weigh in), and rust-nowait / python-nowait (both
generators as busy as they can be: the capacity per CPU-second).

One iteration is --steps request/reply steps (so the fixed pacing does not leave the Python
tool idle):

- ws:  {"method": "connect", "url": WS}, then --steps x
       {"method": "sendrecv", "url": WS, "payload": "hello", "expect": "hello", "name": "echo"}
- tcp: --steps x {"target": TCP, "payload": "ping\\n", "expect_bytes": 5,
       "expect_substring": "ping", "name": "echo"}

`expect_bytes` frames the TCP reply because the Python version has no `read_until` (it
ignores the key and would not read the reply at all); load-density also accepts
`"read_until": "\\n"`, and `--rust-read-until` adds a rust run with it. The Python version opens
a TCP connection per step, load-density keeps one per user: each tool's own behaviour.

Messages are counted by the servers for both tools (WebSocket data frames received, TCP lines
received; differences of `stats` taken around each run), never from the tools' own records;
the tools' own counts are printed beside them as a cross-check. CPU is user + sys seconds of
the generator process alone, from os.wait4 (for the Python tool this includes importing Locust
and gevent, ~0.45 CPU s; the script prints that import cost once). Ratio = rust messages per CPU-second /
python messages per CPU-second (target >= 20x). All traffic goes to 127.0.0.1.
"""

import argparse
import json
import os
import sys

import ldbench
import pyside


def tasks_for(protocol, addresses, steps, read_until=False):
    if protocol == "ws":
        url = addresses["ws"] + "/echo"
        step = {"method": "sendrecv", "url": url, "payload": "hello", "expect": "hello", "name": "echo"}
        return [{"method": "connect", "url": url, "name": "connect"}] + [dict(step) for _ in range(steps)]
    if read_until:
        step = {"target": addresses["tcp"], "payload": "ping\n", "read_until": "\n",
                "expect_substring": "ping", "name": "echo"}
    else:
        step = {"target": addresses["tcp"], "payload": "ping\n", "expect_bytes": 5,
                "expect_substring": "ping", "name": "echo"}
    return [dict(step) for _ in range(steps)]


USER_TYPE = {"ws": "websocket_user", "tcp": "socket_user"}
COUNTER = {"ws": "ws_messages", "tcp": "tcp_messages"}


def start_test(protocol, tasks, args):
    return {"user_detail_dict": {"user": USER_TYPE[protocol]}, "user_count": args.users,
            "spawn_rate": args.users, "test_time": args.seconds, "tasks": tasks}


def run_python(targets, protocol, tasks, args, nowait=False):
    before = targets.stats()
    m, result = pyside.run_python(start_test(protocol, tasks, args), args.seconds, nowait=nowait)
    after = targets.stats()
    own = f"{result['records']} records + {result['errors']} errors"
    if result["errors"]:
        own += f" (first: {result['first_error']})"
    return measured(m, after[COUNTER[protocol]] - before[COUNTER[protocol]], own, result["errors"])


def run_rust(binary, targets, protocol, tasks, args, pacing):
    config = {**start_test(protocol, tasks, args), "print_stats": False}
    if pacing:
        config["wait_time"] = pacing
    before = targets.stats()
    m, totals = pyside.run_rust(binary, config, args.seconds)
    after = targets.stats()
    if totals["failures"]:
        raise SystemExit(f"load-density saw {totals['failures']} failures: {m.stderr[-2000:]}")
    return measured(m, after[COUNTER[protocol]] - before[COUNTER[protocol]],
                    f"{totals['requests']} requests recorded", totals["failures"])


def run_floor(bin_dir, targets, args, tungstenite=False, timed=False):
    """ld-bench-floor: bare Tokio WebSocket round trips, nothing recorded (the floor); with
    `tungstenite`, the same round trips through tokio-tungstenite (the library's floor), and
    with `timed` as well each one timed and recorded (a load tester's floor)."""
    before = targets.stats()
    m = ldbench.run_measured(ldbench.pin(ldbench.GENERATOR_CPU)
                             + [os.path.join(bin_dir, "ld-bench-floor"), targets.addresses["ws"] + "/echo",
                                str(args.seconds), str(args.users)]
                             + (["--tungstenite"] if tungstenite else [])
                             + (["--measured"] if timed else []),
                             timeout=args.seconds + 120)
    after = targets.stats()
    if m.returncode != 0:
        raise SystemExit(f"ld-bench-floor failed ({m.returncode}): {m.stderr[-2000:]}")
    own = json.loads(m.stdout.strip().splitlines()[-1])["messages"]
    return measured(m, after["ws_messages"] - before["ws_messages"], f"{own} round trips", 0)


def print_floor(results):
    """After a round with a floor run: how the floor and load-density compare."""
    if "floor" in results:
        print(f"  floor / python-nowait (the most a Tokio generator could reach): "
              f"{results['floor']['rate'] / results['python-nowait']['rate']:.1f}x; "
              f"rust-nowait / floor: {results['rust-nowait']['rate'] / results['floor']['rate']:.2f}")


def measured(m, messages, own, failures):
    return {"messages": messages, "cpu": m.cpu, "wall": m.wall, "rate": messages / m.cpu,
            "own_count": own, "failures": failures}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50, help="request/reply steps per iteration")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--protocols", default="ws,tcp")
    parser.add_argument("--rust-read-until", action="store_true",
                        help="also run load-density's TCP task with read_until instead of expect_bytes")
    parser.add_argument("--floor", action="store_true",
                        help="also run ld-bench-floor (bare Tokio WebSocket round trips, nothing "
                             "recorded) against the WebSocket server: the most any Tokio "
                             "generator can do per CPU-second on this machine")
    parser.add_argument("--no-build", action="store_true",
                        help="use the release binaries already in $CARGO_TARGET_DIR")
    args = parser.parse_args()
    protocols = [p for p in args.protocols.split(",") if p]
    if any(p not in USER_TYPE for p in protocols):
        raise SystemExit(f"--protocols takes ws and/or tcp, got {args.protocols}")

    versions = pyside.ensure_venv(["je-load-density[websocket]"], "je_load_density, websocket",
                                  ["je_load_density", "locust", "websocket-client"])
    bin_dir = ldbench.build(["load-density-cli", "ld-bench-targets"],
                            ["load-density", "ld-bench-targets", "ld-bench-floor"], skip=args.no_build)
    binary = os.path.join(bin_dir, "load-density")
    print(f"machine: {ldbench.machine()}")
    print(f"python side: {versions} in {pyside.VENV}")
    # je_load_density imports Locust lazily; importing both is what a run pays before starting.
    imp = pyside.import_cost(["je_load_density", "locust"])
    print(f"python side: `import je_load_density, locust` alone costs {imp:.2f} CPU s "
          f"(included in each python run's CPU below)")
    summary = {"versions": versions}
    with ldbench.Targets(bin_dir) as targets:
        print(f"targets: {targets.addresses} (ld-bench-targets, 1 worker thread, CPU {ldbench.TARGET_CPU}); "
              f"generators on CPU {ldbench.GENERATOR_CPU}; {args.users} users, {args.seconds} s per run, "
              f"{args.steps} steps per iteration")
        for protocol in protocols:
            tasks = tasks_for(protocol, targets.addresses, args.steps)
            print(f"== {protocol}: step {json.dumps(tasks[-1])}")
            runners = {
                "python": lambda: run_python(targets, protocol, tasks, args),
                "rust": lambda: run_rust(binary, targets, protocol, tasks, args, pyside.PACING),
                "python-nowait": lambda: run_python(targets, protocol, tasks, args, nowait=True),
                "rust-nowait": lambda: run_rust(binary, targets, protocol, tasks, args, None),
            }
            if protocol == "tcp" and args.rust_read_until:
                read_until = tasks_for(protocol, targets.addresses, args.steps, read_until=True)
                runners["rust-read-until"] = lambda: run_rust(binary, targets, protocol, read_until,
                                                              args, pyside.PACING)
            if protocol == "ws" and args.floor:
                runners["floor"] = lambda: run_floor(bin_dir, targets, args)
            runs, ratios, ratios_nowait = pyside.compare_rounds(
                args.repeat, runners,
                lambda r: (f"{r['messages']:>8} messages (server count; tool: {r['own_count']}), "
                           f"{r['cpu']:6.2f} CPU s in {r['wall']:5.2f} s wall, "
                           f"{r['messages'] / r['wall']:>8.0f} msg/s, {r['rate']:>8.0f} msg per CPU-second"),
                after_round=print_floor)
            s = pyside.ratio_summary(runs, ratios, ratios_nowait, lambda rs: {
                "msg_per_cpu_s": round(ldbench.median([r["rate"] for r in rs])),
                "msg_per_s": round(ldbench.median([r["messages"] / r["wall"] for r in rs])),
                "cpu_s": round(ldbench.median([r["cpu"] for r in rs]), 2)})
            summary[protocol] = s
            rates = ", ".join(f"{kind} {s[kind]['msg_per_cpu_s']}" for kind in runs)
            print(f"median over {args.repeat} rounds ({protocol}), msg per CPU-second: {rates}; "
                  f"ratio same pacing {s['ratio_median']:.1f}x, "
                  f"ratio both at full speed {s['ratio_nowait_median']:.1f}x (target >= 20x)")
    print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
