"""What the benchmarks share: an isolated Airflow home, the emulator in its own process, stats, output.

Every benchmark prints its results as one ``BENCH-RESULT {json}`` line (rows of the summary table)
that ``run_all.py`` collects; run alone, it also prints the rows as text.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULT_MARK = "BENCH-RESULT "


def isolate_airflow() -> None:
    """A private AIRFLOW_HOME without example DAGs, set before anything imports Airflow."""
    if os.environ.get("GES_BENCH_PRIVATE_HOME") != "1":  # set by a parent run_all.py: share its home
        home = tempfile.mkdtemp(prefix="ges-bench-airflow-")
        atexit.register(shutil.rmtree, home, True)
        os.environ["AIRFLOW_HOME"] = home
        os.environ["GES_BENCH_PRIVATE_HOME"] = "1"
        os.environ["GES_TOKEN_CACHE_DIR"] = os.path.join(home, "token-cache")  # the host's token files
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"


@dataclass
class Row:
    """One line of the summary table. ``ok`` is None where there is no target."""

    bench: str
    metric: str
    ours: str
    other: str = ""
    ratio: str = ""
    target: str = ""
    ok: bool | None = None
    #: the goal of issue 14 this row measures ("" for context rows): run_all.py lists them first
    goal: str = ""


def emit(rows: Sequence[Row], notes: Sequence[str] = ()) -> None:
    """Print the rows for ``run_all.py`` (one JSON line) and for a human."""
    for row in rows:
        verdict = "" if row.ok is None else ("ok" if row.ok else "MISSED")
        print(
            f"  {row.metric}: ours {row.ours}  other {row.other or '-'}  {row.ratio}  {row.target} {verdict}"
        )
    for note in notes:
        print(f"  note: {note}")
    print(RESULT_MARK + json.dumps({"rows": [asdict(r) for r in rows], "notes": list(notes)}), flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def rss_mb() -> float:
    """Current resident set size of this process (Linux ``/proc``)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class EmulatorProcess:
    """``_emulator_server.py`` in its own process (its own core and GIL), driven over stdin/stdout.

    ``info`` holds what it printed on start (url, connections, pending backups); ``ask(command)``
    sends one command line and returns the JSON reply.
    """

    def __init__(self, *args: str) -> None:
        cmd = [sys.executable, str(BENCH_DIR / "_emulator_server.py"), *args]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info: dict[str, Any] = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # it answers every command at once; EOF means it died
        if not line:
            raise RuntimeError(f"the emulator process gave no answer (exit code {self.proc.poll()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def conn_env(self, auth: str = "password", conn_id: str = "ges_default") -> dict[str, str]:
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(self.info["connections"][auth])}

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.close()  # EOF: the server stops
                self.proc.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.terminate()
                self.proc.wait(timeout=15)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
