"""`make demo`: the gating example DAG in real Airflow against the local GES emulator.

Starts the emulator (a separate process, as a user would), starts a manual backup of a graph
through the GES API, runs ``example_ges_backup_gate`` with ``dag.test()`` while that backup is
still running, and prints which backup let the ETL through. No cloud account, nothing leaves
127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
BACKUP_SECONDS = 12  # how long the emulated backup runs: the sensor must wait for it
POKE_SECONDS = 2


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def start_emulator() -> tuple[subprocess.Popen[str], dict[str, Any]]:
    command = [
        sys.executable,
        "-m",
        "airflow_provider_ges.emulator",
        "--port=0",
        "--graphs=3",
        "--backups=24",
        f"--backup-duration={BACKUP_SECONDS}",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("export AIRFLOW_CONN_GES_DEFAULT="):
            return process, json.loads(line.split("=", 1)[1].strip().strip("'"))
    raise SystemExit("the emulator did not start")


def ges(conn: dict[str, Any], method: str, path: str) -> Any:
    """One GES call straight over HTTP, with the hook's cached token."""
    import requests

    from airflow_provider_ges.hooks.ges import GesHook

    url = f"{conn['host']}/v1.0/{conn['extra']['project_id']}{path}"
    reply = requests.request(method, url, headers={"X-Auth-Token": GesHook().get_token()}, timeout=10)
    reply.raise_for_status()
    return reply.json()


def return_value(dag_run: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key="return_value")
            .one_or_none()
        )
        return None if row is None else row.value


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="ges-demo-airflow-"))
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "airflow_provider_ges" / "example_dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "PYTHONWARNINGS": "ignore",
        }
    )
    warnings.simplefilter("ignore")
    emulator, conn = start_emulator()
    try:
        os.environ["AIRFLOW_CONN_GES_DEFAULT"] = json.dumps(conn)
        say(f"GES + IAM emulator listening on {conn['host']} (project {conn['extra']['project_id']})")
        return run_demo(conn)
    finally:
        emulator.terminate()
        emulator.wait(10)
        shutil.rmtree(home, ignore_errors=True)
        say("emulator stopped")


def run_demo(conn: dict[str, Any]) -> int:
    from airflow.utils.db import initdb

    from airflow_provider_ges._compat import dag_bag

    say("preparing a throw-away Airflow home (SQLite metadata DB)")
    initdb()
    graph = ges(conn, "GET", "/graphs?offset=0&limit=10")["graphs"][0]
    tonight = datetime.now(timezone.utc).replace(microsecond=0)
    job = ges(conn, "POST", f"/graphs/{graph['id']}/backups")["jobId"]
    say(f"tonight's run starts at {tonight:%H:%M:%S} UTC, and so does a backup of graph {graph['name']!r}")
    say(f"  (GES job {job}: backing_up for {BACKUP_SECONDS} s, older backups don't count)")

    bag = dag_bag(str(ROOT / "airflow_provider_ges" / "example_dags"))
    dag = bag.get_dag("example_ges_backup_gate")
    sensor = dag.get_task("wait_for_backup")
    sensor.poke_interval = POKE_SECONDS  # the DAG says 5 minutes; a demo can't wait that long
    say(f"running {dag.dag_id} in Airflow (dag.test); the sensor defers, polling every {POKE_SECONDS} s")
    started = time.monotonic()
    dag_run = dag.test(logical_date=tonight, run_conf={"graph_name": graph["name"]})
    elapsed = time.monotonic() - started

    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    say(
        f"DAG run {dag_run.state} in {elapsed:.1f} s: "
        + ", ".join(f"{k}={v}" for k, v in sorted(states.items()))
    )
    backup = return_value(dag_run, "wait_for_backup")
    if dag_run.state != "success" or not backup:
        say("the ETL did not run: see the Airflow output above")
        return 1
    say(
        f"the ETL was let through by backup {backup['name']!r} (id {backup['id']}): "
        f"{backup['status']}, {backup['backupMethod']}, {backup['startTime']} -> {backup['endTime']} UTC"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
