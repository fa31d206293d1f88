#!/usr/bin/env python3
"""LoadDensity (Rust) `grpc_user` beside the Python LoadDensity `grpc_user`: unary calls per
generator CPU-second against the testkit gRPC service (`loadtest.Echo/Unary`), same users,
same duration, same server, same run.

Run on demand (never part of the test suite), from the workspace root:

    CARGO_TARGET_DIR=/var/tmp/ld-target python3 bench/grpc_vs_python.py \
        [--seconds 15] [--users 20] [--steps 50] [--repeat 3]

Builds the release `load-density` and `ld-bench-targets` binaries. Installs
`je-load-density[grpc]` (grpcio, protobuf) and `grpcio-tools` (for `grpc_tools.protoc`) into
the virtualenv /var/tmp/ld-bench-venv with pip when `import je_load_density, grpc,
grpc_tools.protoc` fails there.

The server: testkit's `GrpcTarget` (the `loadtest.Echo` service of testkit/proto/loadtest.proto)
inside `ld-bench-targets` (one Tokio worker thread, pinned to the last CPU), which counts the
calls to `Unary` as they arrive. Each generator is pinned to CPU 0.

The two tools describe the call differently (each one's own task language), with the same
request, the same target and --steps calls per iteration:

- load-density: `{"call": "loadtest.Echo/Unary", "target": "127.0.0.1:PORT",
  "payload": {"message": "hello", "id": 1}, "name": "unary"}`, with the group options
  `proto_files: [".../testkit/proto/loadtest.proto"]` and `import_paths: [".../testkit/proto"]`
  in `user_detail_dict` (descriptors compiled in-process at prepare, no generated code);
- Python: `{"stub_path": "loadtest_pb2_grpc.EchoStub", "request_path": "loadtest_pb2.EchoRequest",
  "method": "Unary", "target": "127.0.0.1:PORT", "payload": {"message": "hello", "id": 1},
  "name": "unary"}`, the stubs generated from the same .proto by `python -m grpc_tools.protoc`
  into a temporary directory put on its PYTHONPATH.

Each round runs (the Python tool first in odd rounds, last in even ones), with --users users
spawned at --users per second for --seconds: `python` (its users wait 0.1-0.2 s between
iterations, hard-coded), `rust` (`wait_time: {"between": [0.1, 0.2]}`, the same pacing),
`python-nowait` (its user class's `wait_time` set to `constant(0)`, its best case) and
`rust-nowait` (no wait, load-density's default).

Calls are counted by the server for both tools (`grpc_unary_calls` from `ld-bench-targets`'s
`stats`, taken around each run); each tool's own count is printed beside it. CPU = user + sys
seconds of the generator process alone (os.wait4; for the Python tool this includes importing
Locust, gevent and grpc, printed once). Ratio = rust calls per CPU-second / python calls per
CPU-second (target >= 20x). All traffic goes to 127.0.0.1.
"""

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile

import ldbench
import pyside

PAYLOAD = {"message": "hello", "id": 1}


def generate_stubs(proto, proto_dir):
    """`python -m grpc_tools.protoc` of the testkit .proto into a temporary directory (removed
    at exit); returns that directory."""
    out = tempfile.mkdtemp(prefix="ld-bench-grpc-stubs-")
    atexit.register(shutil.rmtree, out, True)
    protoc = subprocess.run([pyside.VENV_PYTHON, "-m", "grpc_tools.protoc", f"-I{proto_dir}",
                             f"--python_out={out}", f"--grpc_python_out={out}", proto],
                            capture_output=True, text=True)
    if protoc.returncode != 0:
        raise SystemExit(f"grpc_tools.protoc failed ({protoc.returncode}): {protoc.stderr[-3000:]}")
    check = subprocess.run([pyside.VENV_PYTHON, "-c",
                            "import loadtest_pb2, loadtest_pb2_grpc; "
                            "print(loadtest_pb2.EchoRequest(message='x', id=1).ByteSize())"],
                           capture_output=True, text=True, cwd=out)
    if check.returncode != 0:
        raise SystemExit(f"the generated stubs do not import: {check.stderr[-3000:]}")
    return out


def rust_tasks(target, steps):
    step = {"call": "loadtest.Echo/Unary", "target": target, "payload": dict(PAYLOAD), "name": "unary"}
    return [dict(step) for _ in range(steps)]


def python_tasks(target, steps):
    step = {"stub_path": "loadtest_pb2_grpc.EchoStub", "request_path": "loadtest_pb2.EchoRequest",
            "method": "Unary", "target": target, "payload": dict(PAYLOAD), "name": "unary"}
    return [dict(step) for _ in range(steps)]


def run_python(targets, tasks, args, stubs, nowait):
    start_test = {"user_detail_dict": {"user": "grpc_user"}, "user_count": args.users,
                  "spawn_rate": args.users, "test_time": args.seconds, "tasks": tasks}
    env = dict(os.environ)
    env["PYTHONPATH"] = stubs + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    before = targets.stats()
    server_before = pyside.proc_cpu(targets.proc.pid)
    m, result = pyside.run_python(start_test, args.seconds, nowait=nowait, env=env)
    server_cpu = pyside.proc_cpu(targets.proc.pid) - server_before
    after = targets.stats()
    note = f"{result['records']} records + {result['errors']} errors"
    if result["errors"]:
        note += f" (first: {result['first_error']})"
    return row(m, before, after, server_cpu, result["records"] + result["errors"], note,
               result["errors"])


def run_rust(binary, targets, tasks, args, pacing):
    proto = targets.addresses["grpc_proto"]
    start_test = {"user_detail_dict": {"user": "grpc_user", "proto_files": [proto],
                                       "import_paths": [targets.addresses["grpc_proto_dir"]]},
                  "user_count": args.users, "spawn_rate": args.users, "test_time": args.seconds,
                  "print_stats": False, "record_capacity": 0, "tasks": tasks}
    if pacing:
        start_test["wait_time"] = pacing
    before = targets.stats()
    server_before = pyside.proc_cpu(targets.proc.pid)
    m, totals = pyside.run_rust(binary, start_test, args.seconds)
    server_cpu = pyside.proc_cpu(targets.proc.pid) - server_before
    after = targets.stats()
    if totals["failures"]:
        raise SystemExit(f"load-density saw {totals['failures']} failures: {m.stderr[-2000:]}")
    return row(m, before, after, server_cpu, totals["requests"],
               f"{totals['requests']} requests recorded", totals["failures"])


def row(m, before, after, server_cpu, own, note, failures):
    calls = after["grpc_unary_calls"] - before["grpc_unary_calls"]
    return {"calls": calls, "connections": after["grpc_connections"] - before["grpc_connections"],
            "cpu": m.cpu, "wall": m.wall, "rate": calls / m.cpu, "server_cpu": server_cpu,
            "own": own, "own_note": note, "failures": failures}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50, help="unary calls per iteration")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-build", action="store_true",
                        help="use the release binaries already in $CARGO_TARGET_DIR")
    args = parser.parse_args()

    versions = pyside.ensure_venv(["je-load-density[grpc]", "grpcio-tools"],
                                  "je_load_density, grpc, grpc_tools.protoc",
                                  ["je_load_density", "locust", "grpcio", "grpcio-tools", "protobuf"])
    bin_dir = ldbench.build(["load-density-cli", "ld-bench-targets"],
                            ["load-density", "ld-bench-targets"], skip=args.no_build)
    binary = os.path.join(bin_dir, "load-density")
    print(f"machine: {ldbench.machine()}")
    print(f"python side: {versions} in {pyside.VENV}")
    imp = pyside.import_cost(["je_load_density", "locust", "grpc"])
    print(f"python side: `import je_load_density, locust, grpc` alone costs {imp:.2f} CPU s "
          f"(included in each python run's CPU below)")
    summary = {"versions": versions, "python_import_cpu_s": round(imp, 2)}
    with ldbench.Targets(bin_dir) as targets:
        if "grpc" not in targets.addresses:
            raise SystemExit("this ld-bench-targets has no gRPC target (rebuild it, or drop --no-build)")
        target = targets.addresses["grpc"]
        stubs = generate_stubs(targets.addresses["grpc_proto"], targets.addresses["grpc_proto_dir"])
        print(f"server: loadtest.Echo at {target} (ld-bench-targets, 1 worker thread, CPU "
              f"{ldbench.TARGET_CPU}); generators on CPU {ldbench.GENERATOR_CPU}; {args.users} users, "
              f"{args.seconds} s per run, {args.steps} calls per iteration; python stubs in {stubs}")
        print(f"rust step:   {json.dumps(rust_tasks(target, 1)[0])}")
        print(f"python step: {json.dumps(python_tasks(target, 1)[0])}")
        rust = rust_tasks(target, args.steps)
        python = python_tasks(target, args.steps)
        runners = {
            "python": lambda: run_python(targets, python, args, stubs, nowait=False),
            "rust": lambda: run_rust(binary, targets, rust, args, pyside.PACING),
            "python-nowait": lambda: run_python(targets, python, args, stubs, nowait=True),
            "rust-nowait": lambda: run_rust(binary, targets, rust, args, None),
        }
        runs, ratios, ratios_nowait = pyside.compare_rounds(args.repeat, runners, lambda r: (
            f"{r['calls']:>8} calls (server count; tool: {r['own_note']}), "
            f"{r['cpu']:6.2f} CPU s in {r['wall']:5.2f} s wall, "
            f"{r['calls'] / r['wall']:>7.0f} calls/s, {r['rate']:>7.0f} calls per CPU-second; "
            f"server {r['server_cpu']:.2f} CPU s, {r['connections']} connections"))
        s = pyside.ratio_summary(runs, ratios, ratios_nowait, lambda rs: {
            "calls_per_cpu_s": round(ldbench.median([r["rate"] for r in rs])),
            "calls_per_s": round(ldbench.median([r["calls"] / r["wall"] for r in rs])),
            "cpu_s": round(ldbench.median([r["cpu"] for r in rs]), 2),
            "runs": [[r["calls"], r["own"], round(r["cpu"], 2), round(r["wall"], 2),
                      round(r["server_cpu"], 2), r["connections"]] for r in rs]})
        summary["unary"] = s
        rates = ", ".join(f"{kind} {s[kind]['calls_per_cpu_s']}" for kind in runs)
        print(f"median over {args.repeat} rounds, unary calls per CPU-second: {rates}; "
              f"ratio same pacing {s['ratio_median']:.1f}x, "
              f"ratio both at full speed {s['ratio_nowait_median']:.1f}x (target >= 20x)")
    print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
