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
import subprocess
import sys
import tempfile

import ldbench

VENV = "/var/tmp/ld-bench-venv"
VENV_PYTHON = os.path.join(VENV, "bin", "python")
PY_PACKAGE = "je-load-density[websocket]"
RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "py_loaddensity_runner.py")
PACING = {"between": [0.1, 0.2]}


def ensure_venv():
    if not os.path.exists(VENV_PYTHON):
        print(f"creating {VENV} and installing {PY_PACKAGE} with pip")
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    probe = subprocess.run([VENV_PYTHON, "-c", "import je_load_density, websocket"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pip = subprocess.run([VENV_PYTHON, "-m", "pip", "install", "-q", PY_PACKAGE],
                             capture_output=True, text=True)
        if pip.returncode != 0:
            raise SystemExit(f"pip install {PY_PACKAGE} failed ({pip.returncode}); the comparison "
                             f"cannot run:\n{pip.stdout[-2000:]}\n{pip.stderr[-3000:]}")
    version = subprocess.run([VENV_PYTHON, "-c",
                              "import importlib.metadata as m; print(m.version('je_load_density'), "
                              "m.version('locust'), m.version('websocket-client'))"],
                             capture_output=True, text=True, check=True).stdout.split()
    return {"je_load_density": version[0], "locust": version[1], "websocket-client": version[2]}


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


def run_python(targets, protocol, tasks, args, nowait=False):
    kwargs = {"user_detail_dict": {"user": USER_TYPE[protocol]}, "user_count": args.users,
              "spawn_rate": args.users, "test_time": args.seconds, "tasks": tasks}
    before = targets.stats()
    with tempfile.TemporaryDirectory(prefix="ld-bench-py-") as cwd:  # it writes a log file in cwd
        m = ldbench.run_measured(ldbench.pin(ldbench.GENERATOR_CPU)
                                 + [VENV_PYTHON, RUNNER, json.dumps(kwargs)]
                                 + (["--nowait"] if nowait else []),
                                 timeout=args.seconds + 120, cwd=cwd)
    after = targets.stats()
    if m.returncode != 0:
        raise SystemExit(f"the Python runner failed ({m.returncode}): {m.stderr[-3000:]}")
    result = next((json.loads(line[len("RESULT "):]) for line in m.stdout.splitlines()
                   if line.startswith("RESULT ")), None)
    if result is None:
        raise SystemExit(f"the Python runner printed no RESULT line: {m.stdout[-2000:]}")
    own = f"{result['records']} records + {result['errors']} errors"
    if result["errors"]:
        own += f" (first: {result['first_error']})"
    return measured(m, after[COUNTER[protocol]] - before[COUNTER[protocol]], own, result["errors"])


def run_rust(binary, targets, protocol, tasks, args, pacing):
    start_test = {"user_detail_dict": {"user": USER_TYPE[protocol]}, "user_count": args.users,
                  "spawn_rate": args.users, "test_time": args.seconds, "print_stats": False,
                  "tasks": tasks}
    if pacing:
        start_test["wait_time"] = pacing
    before = targets.stats()
    m = ldbench.run_measured(ldbench.pin(ldbench.GENERATOR_CPU)
                             + [binary, "run-str", ldbench.load_density_doc(start_test)],
                             timeout=args.seconds + 120)
    after = targets.stats()
    totals = ldbench.load_density_totals(m)
    if totals["failures"]:
        raise SystemExit(f"load-density saw {totals['failures']} failures: {m.stderr[-2000:]}")
    return measured(m, after[COUNTER[protocol]] - before[COUNTER[protocol]],
                    f"{totals['requests']} requests recorded", totals["failures"])


def run_floor(bin_dir, targets, args):
    """ld-bench-floor: bare Tokio WebSocket round trips, nothing recorded (the floor)."""
    before = targets.stats()
    m = ldbench.run_measured(ldbench.pin(ldbench.GENERATOR_CPU)
                             + [os.path.join(bin_dir, "ld-bench-floor"), targets.addresses["ws"] + "/echo",
                                str(args.seconds), str(args.users)],
                             timeout=args.seconds + 120)
    after = targets.stats()
    if m.returncode != 0:
        raise SystemExit(f"ld-bench-floor failed ({m.returncode}): {m.stderr[-2000:]}")
    own = json.loads(m.stdout.strip().splitlines()[-1])["messages"]
    return measured(m, after["ws_messages"] - before["ws_messages"], f"{own} round trips", 0)


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

    versions = ensure_venv()
    bin_dir = ldbench.build(["load-density-cli", "ld-bench-targets"],
                            ["load-density", "ld-bench-targets", "ld-bench-floor"], skip=args.no_build)
    binary = os.path.join(bin_dir, "load-density")
    print(f"machine: {ldbench.machine()}")
    print(f"python side: {versions} in {VENV}")
    # je_load_density imports Locust lazily; importing both is what a run pays before starting.
    imp = ldbench.run_measured([VENV_PYTHON, "-c", "import je_load_density, locust"], timeout=120,
                               cwd=tempfile.gettempdir())
    print(f"python side: `import je_load_density, locust` alone costs {imp.cpu:.2f} CPU s "
          f"(included in each python run's CPU below)")
    summary = {"versions": versions}
    with ldbench.Targets(bin_dir) as targets:
        print(f"targets: {targets.addresses} (ld-bench-targets, 1 worker thread, CPU {ldbench.TARGET_CPU}); "
              f"generators on CPU {ldbench.GENERATOR_CPU}; {args.users} users, {args.seconds} s per run, "
              f"{args.steps} steps per iteration")
        for protocol in protocols:
            tasks = tasks_for(protocol, targets.addresses, args.steps)
            print(f"== {protocol}: step {json.dumps(tasks[-1])}")
            runs = {"python": [], "rust": [], "python-nowait": [], "rust-nowait": []}
            if protocol == "tcp" and args.rust_read_until:
                runs["rust-read-until"] = []
            if protocol == "ws" and args.floor:
                runs["floor"] = []
            ratios = []
            ratios_nowait = []
            for i in range(args.repeat):
                order = list(runs)
                if i % 2 == 1:
                    order = order[1:] + order[:1]
                this = {}
                for kind in order:
                    if kind == "python":
                        this[kind] = run_python(targets, protocol, tasks, args)
                    elif kind == "rust":
                        this[kind] = run_rust(binary, targets, protocol, tasks, args, PACING)
                    elif kind == "python-nowait":
                        this[kind] = run_python(targets, protocol, tasks, args, nowait=True)
                    elif kind == "rust-nowait":
                        this[kind] = run_rust(binary, targets, protocol, tasks, args, None)
                    elif kind == "floor":
                        this[kind] = run_floor(bin_dir, targets, args)
                    else:
                        this[kind] = run_rust(binary, targets, protocol,
                                              tasks_for(protocol, targets.addresses, args.steps, True),
                                              args, PACING)
                ratio = this["rust"]["rate"] / this["python"]["rate"]
                ratio_nowait = this["rust-nowait"]["rate"] / this["python-nowait"]["rate"]
                ratios.append(ratio)
                ratios_nowait.append(ratio_nowait)
                print(f"round {i + 1} (order: {', '.join(order)}):")
                for kind, r in this.items():
                    runs[kind].append(r)
                    print(f"  {kind:<15} {r['messages']:>8} messages (server count; tool: {r['own_count']}), "
                          f"{r['cpu']:6.2f} CPU s in {r['wall']:5.2f} s wall, "
                          f"{r['messages'] / r['wall']:>8.0f} msg/s, {r['rate']:>8.0f} msg per CPU-second")
                print(f"  ratio rust / python (same pacing, per CPU-second): {ratio:.1f}x; "
                      f"rust-nowait / python-nowait (both at full speed): {ratio_nowait:.1f}x")
                if "floor" in this:
                    print(f"  floor / python-nowait (the most a Tokio generator could reach): "
                          f"{this['floor']['rate'] / this['python-nowait']['rate']:.1f}x; "
                          f"rust-nowait / floor: {this['rust-nowait']['rate'] / this['floor']['rate']:.2f}")
            s = {kind: {"msg_per_cpu_s": round(ldbench.median([r["rate"] for r in rs])),
                        "msg_per_s": round(ldbench.median([r["messages"] / r["wall"] for r in rs])),
                        "cpu_s": round(ldbench.median([r["cpu"] for r in rs]), 2)}
                 for kind, rs in runs.items()}
            s["ratio_median"] = round(ldbench.median(ratios), 2)
            s["ratios"] = [round(r, 2) for r in ratios]
            s["ratio_nowait_median"] = round(ldbench.median(ratios_nowait), 2)
            s["ratios_nowait"] = [round(r, 2) for r in ratios_nowait]
            summary[protocol] = s
            rates = ", ".join(f"{kind} {s[kind]['msg_per_cpu_s']}" for kind in runs)
            print(f"median over {args.repeat} rounds ({protocol}), msg per CPU-second: {rates}; "
                  f"ratio same pacing {s['ratio_median']:.1f}x, "
                  f"ratio both at full speed {s['ratio_nowait_median']:.1f}x (target >= 20x)")
    print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
