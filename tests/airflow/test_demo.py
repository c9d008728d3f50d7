"""`make demo` works: the demo script runs the gating DAG against the emulator and says which backup won."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "scripts" / "demo.py"


def test_demo_lets_the_etl_through_on_the_new_backup() -> None:
    result = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "DAG run success" in out and "wait_for_backup=success" in out and "run_etl=success" in out
    assert "the ETL was let through by backup" in out and ": success, manual," in out
    assert "Emulator-Passw0rd" not in out + result.stderr
    assert out.rstrip().endswith("[demo] emulator stopped")
