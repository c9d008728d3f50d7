"""Benchmark 2: what importing our sensor and operator adds to a DAG file's parse, beside ``HttpSensor``.

The figure is the time to import the modules *after* ``import airflow.sdk`` (which every DAG file
pays anyway, ~4 s here), in a process that has imported nothing else of ours or of the HTTP
provider. Two ways, both reported:

- forked: a parent imports ``airflow.sdk`` once, calls ``gc.freeze()``, then forks one child per
  sample (alternating ours and HTTP) that imports the target and reports its time. That is how
  Airflow 3's DAG processor parses a file (a fork of a process that has Airflow loaded and its
  objects frozen), and it makes 30 samples cheap;
- fresh: whole new interpreters (``python -c``), a few per target, as a cross-check.

Then one ``python -X importtime`` run of ours lists where the time goes (self time per module).

    python benchmarks/bench_import.py [--quick] [--forks 30] [--fresh 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Row, emit, isolate_airflow, median

isolate_airflow()

TARGETS = {
    "ours": "import airflow_provider_ges.sensors.ges, airflow_provider_ges.operators.ges",
    "HttpSensor": "from airflow.providers.http.sensors.http import HttpSensor",
}
TARGET_MS = 15.0
# cwd of the ``python -c`` children: not the repo, whose package would shadow the installed one
HOME = os.environ["AIRFLOW_HOME"]
TIME_IT = """
import sys, time, json
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
{target}
t2 = time.perf_counter()
print(json.dumps([t1 - t0, t2 - t1]))
"""


def compile_package() -> int:
    """Write our package's bytecode (``__pycache__``, git-ignored), as an installed wheel has it.

    An editable install under ``PYTHONDONTWRITEBYTECODE=1`` (this machine sets it) has none, so
    every import would compile our modules from source (~50-70 ms more), a cost no user pays;
    Airflow's own bytecode is written at install time (``uv pip install --compile-bytecode``).
    Returns how many files had to be compiled.
    """
    code = (
        "import compileall, os, sys, airflow_provider_ges as p;"
        " before = sum(len(f) for _, _, f in os.walk(os.path.dirname(p.__file__)));"
        " compileall.compile_dir(os.path.dirname(p.__file__), quiet=1);"
        " print(sum(len(f) for _, _, f in os.walk(os.path.dirname(p.__file__))) - before)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True, cwd=HOME
    )
    return int(out.stdout.strip().splitlines()[-1])


def forked_sample(target: str) -> float:
    """Fork; the child imports ``target`` and writes how long it took. Seconds."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: time the import, report, leave without cleanup
        os.close(read_end)
        try:
            start = time.perf_counter()
            exec(target, {})
            os.write(write_end, repr(time.perf_counter() - start).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        reply = pipe.read()
    os.waitpid(pid, 0)
    if not reply:
        raise RuntimeError(f"the forked child failed to run {target!r}")
    return float(reply)


def fresh_sample(target: str) -> tuple[float, float]:
    """A new interpreter: (seconds for ``import airflow.sdk``, seconds for ``target`` after it)."""
    code = TIME_IT.format(target=target)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True, cwd=HOME
    )
    sdk, extra = json.loads(out.stdout.strip().splitlines()[-1])
    return float(sdk), float(extra)


def importtime(target: str) -> list[tuple[str, int]]:
    """(module, self µs) of every module ``target`` imports after airflow.sdk (``-X importtime``)."""
    code = f"import airflow.sdk, sys; print('MARK', file=sys.stderr, flush=True); {target}"
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=HOME,
    )
    rows: list[tuple[str, int]] = []
    for line in out.stderr.split("MARK", 1)[-1].splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[0].split(":")[1].strip().isdigit():
            rows.append((parts[2].strip(), int(parts[0].split(":")[1])))
    return rows


def top_modules(rows: list[tuple[str, int]], count: int = 6) -> str:
    return ", ".join(f"{name} {own / 1000:.1f}" for name, own in sorted(rows, key=lambda r: -r[1])[:count])


def top_packages(rows: list[tuple[str, int]], count: int = 6) -> str:
    """Self time summed per top-level package (``airflow.providers.http`` kept apart)."""
    sums: dict[str, int] = {}
    for name, own in rows:
        key = "airflow.providers.http" if name.startswith("airflow.providers.http") else name.split(".")[0]
        sums[key] = sums.get(key, 0) + own
    return ", ".join(
        f"{name} {own / 1000:.0f}" for name, own in sorted(sums.items(), key=lambda r: -r[1])[:count]
    )


def http_available() -> bool:
    from importlib.util import find_spec

    try:
        return find_spec("airflow.providers.http") is not None
    except ModuleNotFoundError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 forks and 1 fresh process per target")
    parser.add_argument("--forks", type=int)
    parser.add_argument("--fresh", type=int)
    args = parser.parse_args()
    forks = args.forks or (10 if args.quick else 30)
    fresh = args.fresh if args.fresh is not None else (1 if args.quick else 3)

    compiled = compile_package()
    sdk_start = time.perf_counter()
    import airflow.sdk  # noqa: F401  (the parent every fork starts from)

    sdk_seconds = time.perf_counter() - sdk_start
    gc.freeze()  # as Airflow's DAG processor does before it forks (no copy-on-write GC passes)
    targets = dict(TARGETS) if http_available() else {"ours": TARGETS["ours"]}
    forked: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(forks):
        for name, target in targets.items():  # alternate, so drift hits both alike
            forked[name].append(forked_sample(target) * 1000)
    fresh_ms: dict[str, list[float]] = {name: [] for name in targets}
    fresh_sdk: list[float] = []
    for _ in range(fresh):
        for name, target in targets.items():
            sdk, extra = fresh_sample(target)
            fresh_sdk.append(sdk)
            fresh_ms[name].append(extra * 1000)

    ours, http = median(forked["ours"]), median(forked["HttpSensor"]) if "HttpSensor" in forked else None
    bench = "2 import"
    rows = [
        Row(
            bench,
            f"sensor + operator modules after `import airflow.sdk`, ms (median of {forks} forks)",
            f"{ours:.1f}",
            f"{http:.1f}" if http else "not installed",
            f"{ours / http:.2f}" if http else "",
            f"<= {TARGET_MS:g} and <= HttpSensor",
            ours <= TARGET_MS and (http is None or ours <= http),
            goal="5 import",
        ),
    ]
    if fresh:
        f_ours = median(fresh_ms["ours"])
        f_http = median(fresh_ms["HttpSensor"]) if "HttpSensor" in fresh_ms else None
        rows.append(
            Row(
                bench,
                f"the same in fresh interpreters, ms (median of {fresh}; `import airflow.sdk` itself: "
                f"{median(fresh_sdk):.1f} s)",
                f"{f_ours:.1f}",
                f"{f_http:.1f}" if f_http else "",
                f"{f_ours / f_http:.2f}" if f_http else "",
                f"<= {TARGET_MS:g}",
                f_ours <= TARGET_MS,
            )
        )
    ours_rows = importtime(TARGETS["ours"])
    notes = [
        f"-X importtime, ours: {sum(own for _, own in ours_rows) / 1000:.1f} ms in {len(ours_rows)} modules;"
        f" top self times (ms): {top_modules(ours_rows)}"
    ]
    if "HttpSensor" in targets:
        http_rows = importtime(TARGETS["HttpSensor"])
        notes.append(
            f"-X importtime, HttpSensor: {sum(own for _, own in http_rows) / 1000:.0f} ms in"
            f" {len(http_rows)} modules; by package (ms): {top_packages(http_rows)}"
        )
    else:
        notes.append("apache-airflow-providers-http is not installed: no HttpSensor comparison")
    notes.append(f"parent's `import airflow.sdk` took {sdk_seconds:.1f} s")
    notes.append(f"bytecode of our package written first: {compiled} new files (0: it was there already)")
    emit(rows, notes)


if __name__ == "__main__":
    main()
