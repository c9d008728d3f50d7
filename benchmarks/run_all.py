"""Run every benchmark, each in its own process, and print one table (``make bench``).

    python benchmarks/run_all.py [--quick] [--only listing,import,triggers,triggers-frozen,sensor]

First the goals of issue 14, each figure beside its target, then every row of every benchmark.
``--quick`` (fewer rounds and forks) takes 3-5 minutes on the 2-core machine, a full run 6-9.

Each benchmark is a script in this folder that prints its rows as one ``BENCH-RESULT {json}`` line;
its other output (Airflow's log lines) is kept out of the way and shown only if it fails. Nothing
here is part of ``make test``: timings on a shared machine are noisy, so read the ratios (both
sides measured in the same run) rather than the absolute numbers.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULT_MARK, Row

BENCHMARKS = {  # name: (script and its arguments, time limit in seconds)
    "listing": (("bench_listing.py",), 600),
    "import": (("bench_import.py",), 600),
    "triggers": (("bench_triggers.py",), 300),
    # the same, had the triggerer frozen its start-up heap (as Airflow's DAG processor does)
    "triggers-frozen": (("bench_triggers.py", "--gc-freeze"), 300),
    "sensor": (("bench_sensor_cost.py",), 180),
}
COLUMNS = ("#", "metric", "ours", "other", "ours/other", "target", "")
GOAL_COLUMNS = ("goal", "benchmark", "metric", "figure", "target", "")


def run(argv: tuple[str, ...], limit: float, quick: bool) -> tuple[list[Row], list[str], float]:
    script, *args = argv
    here = Path(__file__).resolve().parent
    cmd = [sys.executable, str(here / script), *args, *(["--quick"] if quick else [])]
    start = time.monotonic()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return [Row(script, f"did not finish in {limit:g} s", "-", ok=False)], [], time.monotonic() - start
    elapsed = time.monotonic() - start
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            result = json.loads(line[len(RESULT_MARK) :])
            return [Row(**row) for row in result["rows"]], result["notes"], elapsed
    tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
    return [Row(script, f"failed (exit {done.returncode})", "-", ok=False)], [tail], elapsed


def table(rows: list[Row]) -> str:
    cells = [COLUMNS] + [
        (
            r.bench,
            r.metric,
            r.ours,
            r.other,
            r.ratio,
            r.target,
            "" if r.ok is None else ("ok" if r.ok else "MISSED"),
        )
        for r in rows
    ]
    lines = ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in cells]
    lines.insert(1, "|" + "|".join(" --- " for _ in COLUMNS) + "|")
    return "\n".join(lines)


def goals(rows: list[Row]) -> str:
    """The rows that measure a goal, in goal order: figure (with ratio) beside target."""
    cells = [GOAL_COLUMNS] + [
        (
            r.goal,
            r.bench,
            r.metric,
            f"{r.ours} vs {r.other} = {r.ratio}" if r.ratio else r.ours,
            r.target,
            "" if r.ok is None else ("ok" if r.ok else "MISSED"),
        )
        for r in sorted((r for r in rows if r.goal), key=lambda r: r.goal)
    ]
    lines = ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in cells]
    lines.insert(1, "|" + "|".join(" --- " for _ in GOAL_COLUMNS) + "|")
    return "\n".join(lines)


def commit() -> str:
    """The commit measured, and whether the package differs from it (others may be editing)."""
    here = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "airflow_provider_ges"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return "commit unknown"
    changed = [f for f in dirty if f.startswith("airflow_provider_ges/")]
    return f"commit {head}" + (f" + uncommitted {', '.join(changed)}" if changed else "")


def machine() -> str:
    from importlib.metadata import version

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{date.today().isoformat()}, {commit()}, {os.cpu_count()} cores (load average at the end"
        f" {load}), Python {platform.python_version()}, Airflow {version('apache-airflow')},"
        f" httpx {version('httpx')}, requests {version('requests')}, pydantic {version('pydantic')},"
        f" huaweicloudsdkges {version('huaweicloudsdkges')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (3-5 minutes)")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    home = tempfile.mkdtemp(prefix="ges-bench-airflow-")  # one private Airflow home for all the children
    atexit.register(shutil.rmtree, home, True)
    os.environ.update(AIRFLOW_HOME=home, GES_BENCH_PRIVATE_HOME="1", AIRFLOW__CORE__LOAD_EXAMPLES="False")
    rows: list[Row] = []
    notes: list[str] = []
    total = time.monotonic()
    for name in names:
        argv, limit = BENCHMARKS[name]
        print(f"running {' '.join(argv)} ...", end=" ", flush=True)
        bench_rows, bench_notes, elapsed = run(argv, limit, args.quick)
        print(f"{elapsed:.0f} s", flush=True)
        rows += bench_rows
        notes += bench_notes
    print(f"\nGES provider benchmarks: {machine()}{' (--quick)' if args.quick else ''}\n")
    print("Goals (issue 14):\n")
    print(goals(rows))
    print("\nEvery row:\n")
    print(table(rows))
    print()
    for note in notes:
        print(f"- {note}")
    missed, targets = sum(1 for r in rows if r.ok is False), sum(1 for r in rows if r.ok is not None)
    print(f"\n{missed} of {targets} targets missed; {time.monotonic() - total:.0f} s in all")


if __name__ == "__main__":
    main()
