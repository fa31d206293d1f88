"""The Python LoadDensity side of the comparisons (imported by bench/mqtt_vs_python.py,
bench/grpc_vs_python.py and bench/vs_python_loaddensity.py, not run).

- `ensure_venv(requirements, probe)`: the virtualenv /var/tmp/ld-bench-venv (created when
  missing, as bench/vs_python_loaddensity.py does), with `requirements` installed by pip from
  PyPI when `import probe` fails; returns the installed versions of the packages that matter.
- `run_python(...)`: one `je_load_density.start_test(...)` through
  bench/py_loaddensity_runner.py, pinned to the generator CPU and measured with `os.wait4`.
- `proc_cpu(pid)`: the CPU seconds a running process (a server we started) has used so far,
  from /proc, to tell whether the server was the bottleneck of a run.
- `compare_rounds(...)` and `ratio_summary(...)`: the rounds every comparison runs (python,
  rust, python-nowait, rust-nowait, ...) and the medians and ratios it reports.
"""

import json
import os
import subprocess
import sys
import tempfile

import ldbench

VENV = "/var/tmp/ld-bench-venv"
VENV_PYTHON = os.path.join(VENV, "bin", "python")
RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "py_loaddensity_runner.py")
PACING = {"between": [0.1, 0.2]}  # the Python version's hard-coded wait_time (spec section 1.4)


def ensure_venv(requirements, probe, versions_of):
    """Makes sure `import probe` works in the venv, installing `requirements` (pip arguments)
    when it does not; stops the script with pip's own error when pip fails. Returns
    {package: version} for `versions_of`.
    """
    if not os.path.exists(VENV_PYTHON):
        print(f"creating {VENV}")
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    check = subprocess.run([VENV_PYTHON, "-c", f"import {probe}"], capture_output=True, text=True,
                           cwd=tempfile.gettempdir())
    if check.returncode != 0:
        print(f"installing {' '.join(requirements)} into {VENV} with pip")
        pip = subprocess.run([VENV_PYTHON, "-m", "pip", "install", "-q", *requirements],
                             capture_output=True, text=True)
        if pip.returncode != 0:
            raise SystemExit(f"pip install {' '.join(requirements)} failed ({pip.returncode}); the "
                             f"comparison cannot run:\n{pip.stdout[-2000:]}\n{pip.stderr[-3000:]}")
        check = subprocess.run([VENV_PYTHON, "-c", f"import {probe}"], capture_output=True,
                               text=True, cwd=tempfile.gettempdir())
        if check.returncode != 0:
            raise SystemExit(f"`import {probe}` still fails after pip install: {check.stderr[-3000:]}")
    script = ("import importlib.metadata as m, json, sys; "
              "print(json.dumps({p: m.version(p) for p in sys.argv[1:]}))")
    out = subprocess.run([VENV_PYTHON, "-c", script, *versions_of], capture_output=True, text=True,
                         check=True, cwd=tempfile.gettempdir()).stdout
    return json.loads(out)


def import_cost(modules):
    """CPU seconds of a fresh venv Python importing `modules` (what each Python run pays)."""
    m = ldbench.run_measured([VENV_PYTHON, "-c", "import " + ", ".join(modules)], timeout=120,
                             cwd=tempfile.gettempdir())
    if m.returncode != 0:
        raise SystemExit(f"importing {modules} failed: {m.stderr[-2000:]}")
    return m.cpu


def run_python(start_test, seconds, nowait=False, env=None):
    """Runs the Python LoadDensity once (pinned to the generator CPU, in a temporary working
    directory: it writes a log file there). Returns (Measured, RESULT dict)."""
    with tempfile.TemporaryDirectory(prefix="ld-bench-py-") as cwd:
        m = ldbench.run_measured(ldbench.pin(ldbench.GENERATOR_CPU)
                                 + [VENV_PYTHON, RUNNER, json.dumps(start_test)]
                                 + (["--nowait"] if nowait else []),
                                 timeout=seconds + 120, cwd=cwd, env=env)
    if m.returncode != 0:
        raise SystemExit(f"the Python runner failed ({m.returncode}): {m.stderr[-3000:]}")
    result = next((json.loads(line[len("RESULT "):]) for line in m.stdout.splitlines()
                   if line.startswith("RESULT ")), None)
    if result is None:
        raise SystemExit(f"the Python runner printed no RESULT line: {m.stdout[-2000:]}")
    return m, result


def run_rust(binary, start_test, seconds):
    """Runs `load-density run-str` once, pinned to the generator CPU. Returns (Measured,
    totals of the LD_start_test result)."""
    m = ldbench.run_measured(ldbench.pin(ldbench.GENERATOR_CPU)
                             + [binary, "run-str", ldbench.load_density_doc(start_test)],
                             timeout=seconds + 120)
    return m, ldbench.load_density_totals(m)


_TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """user + sys CPU seconds of a running process so far (0.0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def compare_rounds(repeat, runners, describe, after_round=None):
    """Runs every kind of `runners` (kind -> function returning a result dict whose "rate" is
    units per generator CPU-second) once per round, `repeat` rounds. Every other round starts
    one kind later, so no kind always runs first. Prints each round: every result through
    `describe(result)`, then the two ratios (rust / python at the same pacing, rust-nowait /
    python-nowait both at full speed), then whatever `after_round(results)` prints.
    Returns (runs: kind -> [result], ratios, ratios_nowait)."""
    runs = {kind: [] for kind in runners}
    ratios, ratios_nowait = [], []
    for i in range(repeat):
        order = list(runs)
        if i % 2 == 1:
            order = order[1:] + order[:1]
        this = {kind: runners[kind]() for kind in order}
        ratio = this["rust"]["rate"] / this["python"]["rate"]
        ratio_nowait = this["rust-nowait"]["rate"] / this["python-nowait"]["rate"]
        ratios.append(ratio)
        ratios_nowait.append(ratio_nowait)
        print(f"round {i + 1} (order: {', '.join(order)}):")
        for kind in runs:
            runs[kind].append(this[kind])
            print(f"  {kind:<15} {describe(this[kind])}")
        print(f"  ratio rust / python (same pacing, per CPU-second): {ratio:.1f}x; "
              f"rust-nowait / python-nowait (both at full speed): {ratio_nowait:.1f}x")
        if after_round is not None:
            after_round(this)
    return runs, ratios, ratios_nowait


def ratio_summary(runs, ratios, ratios_nowait, per_kind):
    """The SUMMARY entry of one comparison: `per_kind(results)` for every kind, plus the
    median and every round's ratio at the same pacing and at full speed."""
    s = {kind: per_kind(results) for kind, results in runs.items()}
    s["ratio_median"] = round(ldbench.median(ratios), 2)
    s["ratios"] = [round(r, 2) for r in ratios]
    s["ratio_nowait_median"] = round(ldbench.median(ratios_nowait), 2)
    s["ratios_nowait"] = [round(r, 2) for r in ratios_nowait]
    return s
