"""Shared helpers for the end-to-end benchmarks in bench/ (imported by the scripts, not run).

- `build(*packages)`: `cargo build --release -p ...`, returns the release directory.
- `Nginx`: a throwaway nginx on 127.0.0.1 (pinned to the last CPU), with `stub_status` at
  `/nginx_status` so a driver can read the requests nginx served and its open connections.
- `Targets`: the `ld-bench-targets` binary (testkit WebSocket/TCP/UDP echo and HTTP servers),
  pinned to the last CPU, with its counters read through `stats` on its stdin.
- `nginx_start_test(...)`: the `start_test` of a `fast_http_user` run against that nginx.
- `wait_listening(proc, port, name)`: waits for a server we started to accept connections.
- `run_measured(cmd)`: runs one generator process to completion (bounded by a timeout) and
  returns its own CPU time and peak RSS from `os.wait4`, plus sampled `VmHWM`.
- `machine()`: the facts RESULTS.md quotes (date, nproc, load average).

All traffic goes to 127.0.0.1. Only processes started here are signalled, by PID.
"""

import atexit
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_DIR = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
CPUS = os.cpu_count() or 1


def build(packages, binaries, skip=False):
    """Builds `packages` in release mode (unless `skip`), then copies `binaries` out of the
    shared target directory into a private temporary directory, so another build in the
    shared tree cannot replace a binary in the middle of a benchmark. Returns that directory,
    removed when the script exits.
    """
    if not skip:
        cmd = ["cargo", "build", "--release", "-q"]
        for package in packages:
            cmd += ["-p", package]
        subprocess.run(cmd, cwd=ROOT, check=True)
    release = os.path.join(TARGET_DIR, "release")
    private = tempfile.mkdtemp(prefix="ld-bench-bin-")
    atexit.register(shutil.rmtree, private, True)
    for name in binaries:
        source = os.path.join(release, name)
        if not os.path.exists(source):
            raise SystemExit(f"{source} is missing (build it, or drop --no-build)")
        shutil.copy2(source, private)
        built = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(os.path.getmtime(source)))
        print(f"binary: {source} (built {built})")
    return private


def pin(cpu):
    """A `taskset -c CPU` prefix, or nothing on a one-CPU machine."""
    if CPUS > 1 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu)]
    return []


GENERATOR_CPU = 0
TARGET_CPU = CPUS - 1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_nofile():
    """preexec_fn: raise the soft open-files limit of the child to its hard limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def nofile_limit():
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def machine():
    """Date (UTC), nproc, load average and kernel, for the report."""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "nproc": CPUS,
        "loadavg": open("/proc/loadavg").read().split()[:3],
        "kernel": os.uname().release,
    }


def median(values):
    return statistics.median(values) if values else float("nan")


@dataclass
class Measured:
    """What one generator process did."""
    cmd: list
    stdout: str
    stderr: str
    returncode: int
    wall: float
    cpu_user: float
    cpu_sys: float
    maxrss_kib: int          # ru_maxrss of the child (KiB on Linux)
    hwm_kib: int = 0          # highest VmHWM sampled from /proc/PID/status
    samples: list = field(default_factory=list)

    @property
    def cpu(self):
        return self.cpu_user + self.cpu_sys


def _proc_status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _only_child(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = f.read().split()
        return int(children[0]) if children else None
    except (OSError, ValueError):
        return None


def run_measured(cmd, timeout, cwd=None, env=None, preexec_fn=None, sample_every=0.25,
                 on_sample=None, gnu_time_maxrss=False):
    """Runs `cmd` to completion and measures that one process with `os.wait4`.

    The CPU time is the child's own (and of children it waited for), never the driver's or a
    server's. `taskset` execs the command, so the PID is the generator itself. Output goes to
    temporary files (no pipe can fill up). Past `timeout` seconds the child is killed (by PID)
    and an error raised. `on_sample(pid, elapsed)` is called at each sample while it runs.

    ru_maxrss from wait4 is not the generator's own peak when the generator is small: Linux
    carries the forked driver's RSS (this Python, ~20 MB) over the exec into ru_maxrss. With
    `gnu_time_maxrss`, the command runs under GNU `/usr/bin/time -f %M` (a small C process
    that forks it), whose report of its child's ru_maxrss is clean; `maxrss_kib` is then that
    figure, and VmHWM is sampled from the generator (time's child) rather than from time.
    """
    time_file = None
    if gnu_time_maxrss:
        time_file = tempfile.NamedTemporaryFile("r", prefix="ld-bench-time-", delete=False)
        cmd = ["/usr/bin/time", "-f", "%M", "-o", time_file.name] + list(cmd)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=cwd, env=env,
                                preexec_fn=preexec_fn, text=True)
        hwm = 0
        samples = []
        done = False
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid == proc.pid:
                    done = True
                    break
                elapsed = time.monotonic() - start
                if elapsed > timeout:
                    raise RuntimeError(f"{cmd[0]} ran past {timeout} s and was killed")
                target = _only_child(proc.pid) if gnu_time_maxrss else proc.pid
                if target:
                    hwm = max(hwm, _proc_status_kib(target, "VmHWM"))
                    samples.append((round(elapsed, 2), _proc_status_kib(target, "VmRSS")))
                if on_sample:
                    on_sample(target, elapsed)
                time.sleep(sample_every)
        finally:
            if not done:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                    os.wait4(proc.pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        maxrss = usage.ru_maxrss
        if time_file is not None:
            with time_file:
                lines = time_file.read().split()
            os.unlink(time_file.name)
            if proc.returncode == 0:
                maxrss = int(lines[-1])
        return Measured(cmd=cmd, stdout=out.read(), stderr=err.read(), returncode=proc.returncode,
                        wall=wall, cpu_user=usage.ru_utime, cpu_sys=usage.ru_stime,
                        maxrss_kib=maxrss, hwm_kib=hwm, samples=samples)


def load_density_doc(start_test):
    return json.dumps([["LD_start_test", start_test]])


def load_density_totals(measured):
    """The `totals` of the last `LD_start_test` line the binary printed."""
    if measured.returncode != 0:
        raise RuntimeError(f"load-density failed ({measured.returncode}): {measured.stderr[-2000:]}")
    for line in reversed(measured.stdout.strip().splitlines()):
        result = json.loads(line)
        if result.get("command") == "LD_start_test":
            if "ok" not in result:
                raise RuntimeError(f"LD_start_test failed: {line[:2000]}")
            return result["ok"]["totals"]
    raise RuntimeError(f"no LD_start_test result in: {measured.stdout[-2000:]}")


def terminate(proc):
    """SIGTERM to a server process we started (if it still runs), SIGKILL after 10 s."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def wait_listening(proc, port, name, log=lambda: "", within=10):
    """Waits until something accepts connections on 127.0.0.1:`port`. Raises (with its stderr
    and `log()`) when `proc` exits first; returns False when `within` seconds pass first."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {proc.stderr.read()} {log()}".rstrip())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def nginx_start_test(nginx, users, seconds, task, **extra):
    """The `start_test` of a `fast_http_user` run of `task` against `nginx`: `users` users all
    started at once, no console statistics; `extra` adds keys (`variables`, say)."""
    return {
        "user_detail_dict": {"user": "fast_http_user"},
        "user_count": users,
        "spawn_rate": 100000,
        "test_time": seconds,
        "host": nginx.host,
        "print_stats": False,
        "tasks": [task],
        **extra,
    }


class Nginx:
    """nginx serving `/index.html` ("ok\\n", 3 bytes) and `/nginx_status` on 127.0.0.1."""

    def __init__(self, worker_connections=4096, rlimit_nofile=None):
        self.workdir = tempfile.mkdtemp(prefix="ld-bench-nginx-")
        os.chmod(self.workdir, 0o755)  # workers run unprivileged and must read the docroot
        self.port = free_port()
        root = os.path.join(self.workdir, "www")
        os.makedirs(root)
        with open(os.path.join(root, "index.html"), "w") as f:
            f.write("ok\n")
        rlimit = f"worker_rlimit_nofile {rlimit_nofile};" if rlimit_nofile else ""
        w = self.workdir
        self.conf = os.path.join(w, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(f"""
worker_processes 1;
daemon off;
pid {w}/nginx.pid;
error_log {w}/error.log warn;
{rlimit}
events {{ worker_connections {worker_connections}; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path {w}/body;
    proxy_temp_path {w}/proxy;
    fastcgi_temp_path {w}/fastcgi;
    uwsgi_temp_path {w}/uwsgi;
    scgi_temp_path {w}/scgi;
    server {{
        listen 127.0.0.1:{self.port} backlog=4096;
        root {root};
        location / {{ }}
        location = /nginx_status {{ stub_status; }}
    }}
}}
""")
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(pin(TARGET_CPU) + ["nginx", "-c", self.conf, "-p", self.workdir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if not wait_listening(self.proc, self.port, "nginx"):
            self.__exit__(None, None, None)
            raise RuntimeError("nginx did not start listening within 10 s")
        # nginx must serve 200 with the expected body before anything is measured.
        with urllib.request.urlopen(self.url("/index.html"), timeout=5) as response:
            body = response.read()
            if response.status != 200 or body != b"ok\n":
                raise RuntimeError(f"nginx answered {response.status} {body!r}")
        return self

    def __exit__(self, *exc):
        terminate(self.proc)  # the nginx master we started; it stops its worker
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def host(self):
        return f"http://127.0.0.1:{self.port}"

    def url(self, path):
        return self.host + path

    def status(self):
        """stub_status: {"active", "requests", "reading", "writing", "waiting"}.

        `requests` counts the status requests themselves too (one per call).
        """
        with urllib.request.urlopen(self.url("/nginx_status"), timeout=5) as response:
            text = response.read().decode()
        active = int(re.search(r"Active connections:\s*(\d+)", text).group(1))
        accepts, handled, requests = map(int, re.search(r"\n\s*(\d+)\s+(\d+)\s+(\d+)", text).groups())
        rww = re.search(r"Reading:\s*(\d+)\s*Writing:\s*(\d+)\s*Waiting:\s*(\d+)", text)
        return {"active": active, "accepts": accepts, "requests": requests,
                "reading": int(rww.group(1)), "writing": int(rww.group(2)),
                "waiting": int(rww.group(3))}


class Targets:
    """The `ld-bench-targets` process: testkit servers plus their counters."""

    def __init__(self, release_dir, threads=1):
        self.cmd = pin(TARGET_CPU) + [os.path.join(release_dir, "ld-bench-targets"),
                                      "--threads", str(threads)]
        self.proc = None
        self.addresses = None

    def __enter__(self):
        # The open-files limit raised: the memory benchmarks hold thousands of connections.
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1, preexec_fn=raise_nofile)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("ld-bench-targets exited before printing its addresses")
        self.addresses = json.loads(line)
        return self

    def stats(self):
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=10)
