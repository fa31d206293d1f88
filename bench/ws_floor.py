#!/usr/bin/env python3
"""WebSocket sendrecv: load-density against the bare-Tokio floor (`ld-bench-floor`), in the
same run (issue #17, goal 4: load-density >= 0.95 of the floor).

Run on demand (never part of the test suite), from the workspace root:

    CARGO_TARGET_DIR=/var/tmp/ld-target python3 bench/ws_floor.py [--seconds 15] [--users 20] \\
        [--steps 50] [--repeat 3] [--baseline PATH-TO-ANOTHER-load-density]

The same load as section 4's `rust-nowait` and `floor` columns (`vs_python_loaddensity.py
--floor`, which also runs the Python tool): 20 users, no wait, one iteration = `connect` then 50
`sendrecv` of "hello" against the testkit echo server (`ld-bench-targets`, one thread, the last
CPU); `ld-bench-floor` runs 20 connections of pre-encoded frames, nothing parsed, timed or
recorded; `tungstenite` is the same floor through tokio-tungstenite (`ld-bench-floor
--tungstenite`: `send(Message::text("hello"))` then the next message, nothing timed or recorded),
the least any generator built on that library does; `measured` is that one with each round
trip timed (two clock reads) and recorded into an HDR histogram, the least a load tester built
on it does. Messages are the server's counts; rate = messages / CPU seconds of the generator
(os.wait4). The order rotates from round to round. `--baseline` adds another load-density
binary (an older build) to each round.
"""

import argparse
import json
import os
import sys

import ldbench
import vs_python_loaddensity as vs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", help="another load-density binary to run in each round")
    parser.add_argument("--no-build", action="store_true",
                        help="use the release binaries already in $CARGO_TARGET_DIR")
    args = parser.parse_args()
    bin_dir = ldbench.build(["load-density-cli", "ld-bench-targets"],
                            ["load-density", "ld-bench-targets", "ld-bench-floor"], skip=args.no_build)
    binary = os.path.join(bin_dir, "load-density")
    print(f"machine: {ldbench.machine()}")
    rounds = []
    with ldbench.Targets(bin_dir) as targets:
        tasks = vs.tasks_for("ws", targets.addresses, args.steps)
        runners = {"load-density": lambda: vs.run_rust(binary, targets, "ws", tasks, args, None),
                   "floor": lambda: vs.run_floor(bin_dir, targets, args),
                   "tungstenite": lambda: vs.run_floor(bin_dir, targets, args, tungstenite=True),
                   "measured": lambda: vs.run_floor(bin_dir, targets, args, tungstenite=True,
                                                    timed=True)}
        if args.baseline:
            runners["baseline"] = lambda: vs.run_rust(args.baseline, targets, "ws", tasks, args, None)
        print(f"target: {targets.addresses['ws']}/echo (ld-bench-targets, 1 thread, CPU {ldbench.TARGET_CPU}); "
              f"generators on CPU {ldbench.GENERATOR_CPU}; {args.users} users, {args.seconds} s, "
              f"connect + {args.steps} sendrecv per iteration")
        names = list(runners)
        for i in range(args.repeat):
            order = names[i % len(names):] + names[:i % len(names)]
            results = {name: runners[name]() for name in order}
            rounds.append(results)
            print(f"round {i + 1} (order {', '.join(order)}):")
            for name in names:
                r = results[name]
                print(f"  {name:<13} {r['messages']:>9} messages ({r['own_count']}), {r['cpu']:6.2f} CPU s, "
                      f"{r['rate']:>8.0f} msg per CPU-second, {r['rate'] / results['floor']['rate']:.3f} of the floor")
    summary = {name: {"msg_per_cpu_s": round(ldbench.median([r[name]["rate"] for r in rounds])),
                      "of_floor_median": round(ldbench.median([r[name]["rate"] / r["floor"]["rate"]
                                                               for r in rounds]), 3),
                      "of_floor": [round(r[name]["rate"] / r["floor"]["rate"], 3) for r in rounds]}
               for name in names}
    print("median: " + "; ".join(f"{n} {s['msg_per_cpu_s']} msg/CPU-s ({s['of_floor_median']:.3f} of the floor)"
                                 for n, s in summary.items()) + " (goal: load-density >= 0.95)")
    print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
