#!/usr/bin/env python3
"""Where an idle user's memory goes: `memory_per_user.py`'s run under valgrind massif.

Run on demand (never part of the test suite), from the workspace root, after a release build:

    CARGO_TARGET_DIR=/var/tmp/ld-target python3 bench/memory_massif.py fast_http [--users 1000] \\
        [--out /tmp/massif.out]

Runs `load-density` with `--users` users of the protocol (fast_http against nginx, websocket
or socket against the testkit echo servers; `wait_time: {"constant": 1}`, 12 s, spawn rate
500/s, `record_capacity: 0`) under `valgrind --tool=massif`, then prints the top-level
allocation sites of the peak snapshot with their bytes per user and the first LoadDensity,
tokio or tungstenite frame under each. All traffic goes to 127.0.0.1.
"""

import argparse
import os
import subprocess

import ldbench
import memory_per_user as mpu

FRAMES = ("load_density", "tungstenite", "tokio::runtime", "tokio::net")


def peak_sites(path, users, min_bytes):
    """(bytes, first interesting frame) of each top-level node of the peak snapshot."""
    with open(path) as f:
        lines = f.read().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("heap_tree=peak"))
    sites = []
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if line.startswith("snapshot="):
            break
        depth = len(line) - len(line.lstrip(" "))
        parts = line.strip().split(" ", 2)
        if depth != 1 or len(parts) < 2 or int(parts[1]) < min_bytes:
            continue
        frame = ""
        for below in lines[i + 1:i + 80]:
            if len(below) - len(below.lstrip(" ")) <= 1:
                break
            if any(name in below for name in FRAMES):
                frame = below.strip().split(" ", 2)[-1]
                break
        sites.append((int(parts[1]), frame))
    return sites


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocol", choices=("fast_http", "websocket", "socket"))
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--out", default="/tmp/ld-massif.out")
    args = parser.parse_args()
    bin_dir = os.path.join(ldbench.TARGET_DIR, "release")
    binary = os.path.join(bin_dir, "load-density")
    if args.protocol == "fast_http":
        target = mpu.FastHttpTarget(args.users)
    else:
        target = mpu.TestkitTarget(args.protocol, bin_dir)
    with target:
        start_test = {"user_detail_dict": {"user": target.user}, "user_count": args.users,
                      "spawn_rate": 500, "test_time": 12, "wait_time": {"constant": 1},
                      "print_stats": False, "tasks": target.tasks, "record_capacity": 0}
        if target.host:
            start_test["host"] = target.host
        command = ["valgrind", "--tool=massif", "--threshold=0.5", f"--massif-out-file={args.out}",
                   binary, "run-str", ldbench.load_density_doc(start_test)]
        run = subprocess.run(command, capture_output=True, text=True, timeout=600,
                             preexec_fn=ldbench.raise_nofile)
        if run.returncode != 0:
            raise SystemExit(f"load-density under massif failed: {run.stderr[-2000:]}")
    print(f"{args.protocol}, {args.users} users: heap at the peak, by allocation site")
    for size, frame in peak_sites(args.out, args.users, min_bytes=20 * args.users):
        print(f"  {size:>10} B  {size / args.users:8.0f} B per user  {frame[:150]}")


if __name__ == "__main__":
    main()
