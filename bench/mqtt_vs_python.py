#!/usr/bin/env python3
"""LoadDensity (Rust) `mqtt_user` beside the Python LoadDensity `mqtt_user`: publishes per
generator CPU-second at QoS 0 and QoS 1, same task JSON, same mosquitto broker, same run.

Run on demand (never part of the test suite), from the workspace root:

    CARGO_TARGET_DIR=/var/tmp/ld-target python3 bench/mqtt_vs_python.py \
        [--seconds 15] [--users 20] [--steps 50] [--repeat 3] [--qos 0,1]

Needs the Debian package `mosquitto` (the broker binary only; no clients). Builds the release
`load-density` binary. Installs `je-load-density[mqtt]` (paho-mqtt) into the virtualenv
/var/tmp/ld-bench-venv with pip when `import je_load_density, paho.mqtt.client` fails there.

The broker: a mosquitto we start on a free loopback port, with a generated configuration in
a temporary directory (`user root`, `persistence false`, anonymous, `sys_interval 1`), pinned
to the last CPU, stopped by its PID at the end. Each generator is pinned to CPU 0.

One iteration of a user is --steps publishes of the same task, for both tools:

    {"method": "publish", "broker": "127.0.0.1:PORT", "topic": "bench/t", "payload": "hello",
     "qos": 0|1, "name": "publish"}

Per QoS, each round runs (the Python tool first in odd rounds, last in even ones), with
--users users spawned at --users per second for --seconds:

- python:        je_load_density.start_test(...) through bench/py_loaddensity_runner.py; its
                 users wait 0.1-0.2 s between iterations (hard-coded in the Python version);
- rust:          load-density with the same tasks and `wait_time: {"between": [0.1, 0.2]}`;
- python-nowait: the Python tool with its user class's `wait_time` set to `constant(0)` (its
                 best case for throughput);
- rust-nowait:   load-density with no wait (its default).

Publishes are counted on the broker for both tools: mosquitto's
`$SYS/broker/publish/messages/received` (PUBLISH packets received from clients), taken
before and after each run once it has not changed for 4.5 s, by a tiny MQTT client in this
script that subscribes to it and pings the broker every 0.25 s so it refreshes `$SYS` (see
`SysCounter`). Nothing subscribes to `bench/t`, so the broker does no forwarding work.
Each tool's own count (load-density's recorded requests, the Python tool's records) is
printed beside it. CPU = user + sys seconds of the generator process alone (os.wait4; for the
Python tool this includes importing Locust and gevent, printed once). Ratio = rust publishes
per CPU-second / python publishes per CPU-second (target >= 20x). All traffic goes to
127.0.0.1.
"""

import argparse
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import ldbench
import pyside

TOPIC = "bench/t"
SYS_RECEIVED = "$SYS/broker/publish/messages/received"


def _remaining_length(n):
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text):
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def _read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise RuntimeError("mosquitto closed the $SYS connection")
        data += chunk
    return data


def _read_packet(sock):
    header = _read_exact(sock, 1)[0]
    length, shift = 0, 0
    while True:
        byte = _read_exact(sock, 1)[0]
        length += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return header, _read_exact(sock, length)


class SysCounter:
    """The broker's own count of PUBLISH packets received from clients: a tiny MQTT 3.1.1
    client (a thread of this script) subscribed to `$SYS/broker/publish/messages/received`,
    keeping the latest value and when it last changed.

    mosquitto refreshes `$SYS` only from its main loop, at most every `sys_interval` (plus a
    second: it compares whole seconds) and only when its loop wakes up; an idle broker can sit
    on a stale value. So the thread sends a PINGREQ every 0.25 s (each one wakes the loop) and
    `settled()` waits until the value has not changed for `quiet` seconds. (A first version read
    the retained value on a fresh connection twice, 1.2 s apart, and took two equal reads as
    final: both could be served before the pending refresh, which under-counted a run's last
    second.)
    """

    def __init__(self, port, topic=SYS_RECEIVED):
        self.topic = topic
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        body = (_utf8("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 30)
                + _utf8(f"ld-bench-sys-{os.getpid()}"))
        self.sock.sendall(bytes([0x10]) + _remaining_length(len(body)) + body)
        header, payload = _read_packet(self.sock)
        if header != 0x20 or payload[1] != 0:
            raise RuntimeError(f"mosquitto refused the $SYS connection: {header:#x} {payload!r}")
        body = struct.pack("!H", 1) + _utf8(topic) + b"\x00"
        self.sock.sendall(bytes([0x82]) + _remaining_length(len(body)) + body)
        self.lock = threading.Lock()
        self.value = None
        self.changed = time.monotonic()
        self.error = None
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, name="sys-counter", daemon=True)
        self.thread.start()

    def _loop(self):
        next_ping = time.monotonic()
        try:
            while not self.stopping:
                now = time.monotonic()
                if now >= next_ping:
                    self.sock.sendall(b"\xc0\x00")  # PINGREQ
                    next_ping = now + 0.25
                readable, _, _ = select.select([self.sock], [], [], max(0.0, next_ping - now))
                if not readable:
                    continue
                header, payload = _read_packet(self.sock)
                if header >> 4 != 3:  # SUBACK, PINGRESP
                    continue
                (n,) = struct.unpack("!H", payload[:2])
                if payload[2:2 + n].decode() != self.topic:
                    continue
                value = int(payload[2 + n:].decode())  # QoS 0: no packet id
                with self.lock:
                    if value != self.value:
                        self.value = value
                        self.changed = time.monotonic()
        except Exception as error:  # noqa: BLE001 - reported by settled()
            if not self.stopping:
                self.error = error

    def settled(self, quiet=4.5, limit=60.0):
        """The count once it has not changed for `quiet` seconds."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.error:
                raise RuntimeError(f"the $SYS counter connection failed: {self.error!r}")
            with self.lock:
                value, changed = self.value, self.changed
            if value is not None and time.monotonic() - changed >= quiet:
                return value
            time.sleep(0.1)
        raise RuntimeError(f"{self.topic} did not settle within {limit:.0f} s (another publisher?)")

    def close(self):
        self.stopping = True
        self.thread.join(timeout=5)
        try:
            self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        except OSError:
            pass
        self.sock.close()


class Mosquitto:
    """A mosquitto on a free 127.0.0.1 port, pinned to the last CPU, stopped by its PID."""

    def __init__(self, listeners=1, raise_nofile=False):
        """`listeners` ports on 127.0.0.1 (`self.ports`; `self.port` is the first); with
        `raise_nofile`, mosquitto's open-files soft limit is raised to the hard limit (for
        thousands of clients)."""
        self.raise_nofile = raise_nofile
        self.binary = shutil.which("mosquitto") or next(
            (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)), None)
        if not self.binary:
            raise SystemExit("mosquitto is not installed: apt-get install mosquitto")
        self.workdir = tempfile.mkdtemp(prefix="ld-bench-mosquitto-")
        self.ports = [ldbench.free_port() for _ in range(listeners)]
        self.port = self.ports[0]
        self.log = os.path.join(self.workdir, "mosquitto.log")
        self.conf = os.path.join(self.workdir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            # `user root`: when started as root, keep root instead of switching to the
            # `mosquitto` user (who could not write the log in our temporary directory).
            f.write(f"""user root
persistence false
log_dest file {self.log}
log_type error
log_type warning
sys_interval 1
allow_anonymous true
max_connections -1
""")
            # `allow_anonymous` and `max_connections` above are global; each listener after.
            for port in self.ports:
                f.write(f"listener {port} 127.0.0.1\n")
        self.proc = None
        self.counter = None

    def __enter__(self):
        self.proc = subprocess.Popen(ldbench.pin(ldbench.TARGET_CPU) + [self.binary, "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     preexec_fn=ldbench.raise_nofile if self.raise_nofile else None)
        for port in self.ports:
            if not ldbench.wait_listening(self.proc, port, "mosquitto", log=self.read_log):
                self.__exit__(None, None, None)
                raise RuntimeError("mosquitto did not start listening within 10 s")
        self.counter = SysCounter(self.port)
        self.version = subprocess.run([self.binary, "-h"], capture_output=True, text=True).stdout.split("\n")[0]
        return self

    def read_log(self):
        try:
            with open(self.log) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def __exit__(self, *exc):
        if self.counter:
            self.counter.close()
        ldbench.terminate(self.proc)
        shutil.rmtree(self.workdir, ignore_errors=True)


def tasks_for(port, qos, steps):
    step = {"method": "publish", "broker": f"127.0.0.1:{port}", "topic": TOPIC, "payload": "hello",
            "qos": qos, "name": "publish"}
    return [dict(step) for _ in range(steps)]


def measure(broker, run):
    """Runs `run()` between two settled broker counts; returns (published, broker CPU s, run's
    result)."""
    before = broker.counter.settled()
    cpu_before = pyside.proc_cpu(broker.proc.pid)
    result = run()
    after = broker.counter.settled()
    return after - before, pyside.proc_cpu(broker.proc.pid) - cpu_before, result


def run_python(broker, tasks, args, nowait):
    start_test = {"user_detail_dict": {"user": "mqtt_user"}, "user_count": args.users,
                  "spawn_rate": args.users, "test_time": args.seconds, "tasks": tasks}
    published, broker_cpu, (m, result) = measure(
        broker, lambda: pyside.run_python(start_test, args.seconds, nowait=nowait))
    own = result["records"] + result["errors"]
    note = f"{result['records']} records + {result['errors']} errors"
    if result["errors"]:
        note += f" (first: {result['first_error']})"
    return row(m, published, broker_cpu, own, note, result["errors"])


def run_rust(binary, broker, tasks, args, pacing):
    start_test = {"user_detail_dict": {"user": "mqtt_user"}, "user_count": args.users,
                  "spawn_rate": args.users, "test_time": args.seconds, "print_stats": False,
                  "record_capacity": 0, "tasks": tasks}
    if pacing:
        start_test["wait_time"] = pacing
    published, broker_cpu, (m, totals) = measure(
        broker, lambda: pyside.run_rust(binary, start_test, args.seconds))
    if totals["failures"]:
        raise SystemExit(f"load-density saw {totals['failures']} failures: {m.stderr[-2000:]}")
    return row(m, published, broker_cpu, totals["requests"], f"{totals['requests']} requests recorded",
               totals["failures"])


def row(m, published, broker_cpu, own, note, failures):
    return {"published": published, "cpu": m.cpu, "wall": m.wall, "rate": published / m.cpu,
            "broker_cpu": broker_cpu, "own": own, "own_note": note, "failures": failures}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50, help="publishes per iteration")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--qos", default="0,1", help="QoS levels to run, comma-separated (0, 1)")
    parser.add_argument("--no-build", action="store_true",
                        help="use the release binary already in $CARGO_TARGET_DIR")
    args = parser.parse_args()
    levels = [int(q) for q in args.qos.split(",") if q]
    if any(q not in (0, 1) for q in levels):
        raise SystemExit(f"--qos takes 0 and/or 1, got {args.qos}")

    versions = pyside.ensure_venv(["je-load-density[mqtt]"], "je_load_density, paho.mqtt.client",
                                  ["je_load_density", "locust", "paho-mqtt"])
    bin_dir = ldbench.build(["load-density-cli"], ["load-density"], skip=args.no_build)
    binary = os.path.join(bin_dir, "load-density")
    print(f"machine: {ldbench.machine()}")
    print(f"python side: {versions} in {pyside.VENV}")
    imp = pyside.import_cost(["je_load_density", "locust", "paho.mqtt.client"])
    print(f"python side: `import je_load_density, locust, paho.mqtt.client` alone costs {imp:.2f} CPU s "
          f"(included in each python run's CPU below)")
    summary = {"versions": versions, "python_import_cpu_s": round(imp, 2)}
    with Mosquitto() as broker:
        summary["broker"] = broker.version
        print(f"broker: {broker.version} on 127.0.0.1:{broker.port} (CPU {ldbench.TARGET_CPU}); generators on "
              f"CPU {ldbench.GENERATOR_CPU}; {args.users} users, {args.seconds} s per run, "
              f"{args.steps} publishes per iteration; counted by the broker ({SYS_RECEIVED})")
        for qos in levels:
            tasks = tasks_for(broker.port, qos, args.steps)
            print(f"== QoS {qos}: step {json.dumps(tasks[-1])}")
            runners = {
                "python": lambda: run_python(broker, tasks, args, nowait=False),
                "rust": lambda: run_rust(binary, broker, tasks, args, pyside.PACING),
                "python-nowait": lambda: run_python(broker, tasks, args, nowait=True),
                "rust-nowait": lambda: run_rust(binary, broker, tasks, args, None),
            }
            runs, ratios, ratios_nowait = pyside.compare_rounds(args.repeat, runners, lambda r: (
                f"{r['published']:>8} publishes (broker count; tool: {r['own_note']}), "
                f"{r['cpu']:6.2f} CPU s in {r['wall']:5.2f} s wall, "
                f"{r['published'] / r['wall']:>8.0f} pub/s, {r['rate']:>8.0f} pub per CPU-second; "
                f"broker {r['broker_cpu']:.2f} CPU s"))
            s = pyside.ratio_summary(runs, ratios, ratios_nowait, lambda rs: {
                "pub_per_cpu_s": round(ldbench.median([r["rate"] for r in rs])),
                "pub_per_s": round(ldbench.median([r["published"] / r["wall"] for r in rs])),
                "cpu_s": round(ldbench.median([r["cpu"] for r in rs]), 2),
                "runs": [[r["published"], r["own"], round(r["cpu"], 2), round(r["wall"], 2),
                          round(r["broker_cpu"], 2)] for r in rs]})
            summary[f"qos{qos}"] = s
            rates = ", ".join(f"{kind} {s[kind]['pub_per_cpu_s']}" for kind in runs)
            print(f"median over {args.repeat} rounds (QoS {qos}), publishes per CPU-second: {rates}; "
                  f"ratio same pacing {s['ratio_median']:.1f}x, "
                  f"ratio both at full speed {s['ratio_nowait_median']:.1f}x (target >= 20x)")
        log = broker.read_log().strip()
        if log:
            print(f"mosquitto log (errors and warnings):\n{log}")
    print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
