"""Worker task starts and worker CPU for 100 deferrable gates, with and without ``start_from_trigger``.

A real deployment (tests/deployment/stack.py: PostgreSQL, LocalExecutor, API server, scheduler,
dag-processor, triggerer, the emulator): one DAG of 100 ``GesBackupSensor`` tasks (``do_xcom_push=False``:
gates), each on its own graph, run once per mode:

- ``deferrable``: each gate starts in a worker, looks once, defers; resumes in a worker to end;
- ``start_from_trigger``: the scheduler defers each gate straight into the triggerer, which ends it.

Each run: trigger, add a running backup per graph, wait until all 100 are deferred, flip every
backup to success, wait for the run. Measured per mode:

- worker task starts: the scheduler's "Received executor event" lines for the run's gates (one per
  workload a LocalExecutor worker ran);
- worker CPU seconds: user + system time of the scheduler's process group but the scheduler itself
  (the LocalExecutor's workers and their task processes, reaped ones included: a worker's children
  count in its ``cutime``/``cstime``, a reaped worker in the scheduler's), before and after the run;
- triggerer CPU seconds (its process group, the same way) and wall time from trigger to success.

Needs PostgreSQL (as the deployment tests do). Runnable by hand, not part of ``make test``::

    python benchmarks/bench_start_from_trigger.py [--gates 100]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Row, emit  # noqa: E402

from tests.deployment.stack import Deployment, group_members, wait_for  # noqa: E402

MODES = {"deferrable": "deferrable=True", "start_from_trigger": "start_from_trigger=True"}

DAG_FILE = """
from datetime import datetime
from airflow.sdk import DAG
from airflow_provider_ges.sensors.ges import GesBackupSensor

for mode, option in {modes!r}.items():
    with DAG(dag_id=f"bench_gates_{{mode}}", schedule=None, start_date=datetime(2026, 1, 1),
             catchup=False, max_active_tasks=128, default_args={{"retries": 0}}):
        for i in range({gates}):
            GesBackupSensor(task_id=f"gate_{{i:03d}}", graph_name=f"bench_{{i:03d}}", poke_interval=2,
                            timeout=900, do_xcom_push=False, **{{option.split("=")[0]: True}})
"""


def cpu_seconds(pgid: int, *, leader: bool) -> float:
    """User + system CPU of a process group and its reaped children; ``leader`` False: leave out the
    leader's own time (count only its reaped children)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in group_members(pgid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
        total += cutime + cstime + (utime + stime if leader or pid != pgid else 0)
    return total / tick


def executor_events(d: Deployment, dag_id: str, run_id: str) -> int:
    key = f"TaskInstanceKey(dag_id={dag_id!r}, task_id='gate_"
    return sum(
        1
        for line in d.scheduler_log().splitlines()
        if "Received executor event" in line and key in line and f"run_id={run_id!r}" in line
    )


def measure(d: Deployment, mode: str, gates: int) -> dict[str, float]:
    dag_id = f"bench_gates_{mode}"
    scheduler, triggerer = d.processes["scheduler"].pid, d.triggerer.pid
    workers0, trig0 = cpu_seconds(scheduler, leader=False), cpu_seconds(triggerer, leader=True)
    t0 = time.monotonic()
    run_id = d.trigger(dag_id)
    now = datetime.now(timezone.utc)
    backups = [
        d.emulator.add_backup(f"bench_{i:03d}", status="backing_up", start=now)["id"] for i in range(gates)
    ]

    def all_deferred() -> bool:
        d.check_alive()
        states = [ti["state"] for ti in d.task_instances(dag_id, run_id)]
        assert not {"failed", "up_for_retry"} & set(states), d.states(dag_id, run_id)
        return len(states) == gates and all(s == "deferred" for s in states)

    wait_for(f"{gates} deferred gates", all_deferred, timeout=600, interval=1)
    t_deferred = time.monotonic()
    if mode == "deferrable":  # apache/airflow#67287: see Deployment.released
        d.wait_released(dag_id, run_id, "gate_000", timeout=120)
        wait_for(
            "every deferring worker's end", lambda: executor_events(d, dag_id, run_id) >= gates, 120, 0.5
        )
    for backup_id in backups:
        d.emulator.set_backup_status(backup_id, "success")
    state = d.wait_run(dag_id, run_id, timeout=600)
    t_done = time.monotonic()
    time.sleep(2)  # the last workers' exits reach /proc and the scheduler's log
    states = d.states(dag_id, run_id)
    assert state == "success" and all(v == ("success", 1) for v in states.values()), states
    return {
        "worker task starts": executor_events(d, dag_id, run_id),
        "worker CPU s": round(cpu_seconds(scheduler, leader=False) - workers0, 1),
        "triggerer CPU s": round(cpu_seconds(triggerer, leader=True) - trig0, 1),
        "trigger -> all deferred s": round(t_deferred - t0, 1),
        "trigger -> success s": round(t_done - t0, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--gates", type=int, default=100)
    args = parser.parse_args()
    d = Deployment(Path(tempfile.mkdtemp(prefix="ges-bench-sft-")))
    (d.dags / "bench_gates.py").write_text(DAG_FILE.format(modes=MODES, gates=args.gates))
    for i in range(args.gates):
        d.emulator.add_graph(f"bench_{i:03d}")
    try:
        d.start()
        wait_for(
            "the benchmark DAGs parsed",
            lambda: all(d.get("/api/v2/dags", dag_id_pattern=f"bench_gates_{m}")["dags"] for m in MODES),
            120,
            1,
        )
        results = {mode: measure(d, mode, args.gates) for mode in MODES}
    finally:
        d.stop()
    worker, started = results["deferrable"], results["start_from_trigger"]
    rows = [
        Row(
            "start_from_trigger",
            f"{args.gates} gates: {metric}",
            str(started[metric]),
            str(worker[metric]),
            f"{worker[metric] / started[metric]:.1f}x" if started[metric] else "",
        )
        for metric in worker
    ]
    emit(
        rows,
        [f"ours: start_from_trigger=True; other: deferrable=True (worker looks, then defers): {results}"],
    )


if __name__ == "__main__":
    main()
