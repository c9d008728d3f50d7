"""``GesRestoreGraphOperator`` retried by a real scheduler (tests/deployment.py), not ``dag.test()``.

The restore's first try loses the start's reply (``504:scope=start:after=1:count=1``: GES starts the
graph from the backup, the client gets a gateway error) and then times out while GES still runs the
start job; the scheduler retries it after its ``retry_delay``, and the second try must find this
run's start job in GES's job list and wait for it: never stop the graph again, never restore twice.

The timing: the stop job takes ``STOP_SECONDS``, so the first try sends the start well within its
``timeout`` (``TIMEOUT``, in tests/deployment_dags/ges_restore_retry.py); once the stop job exists
the emulator's ``graph_action_duration`` becomes the start job's length, picked per wait mode so
that the start outlasts the first try plus the retry's scheduling (with several seconds to spare)
and ends within the second try's ``timeout``. Runtimes and margins are printed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

pytest.register_assert_rewrite("tests.deployment")
pytest_plugins = ("tests.deployment",)

from tests.deployment import Deployment, wait_for  # noqa: E402
from tests.deployment import say as deployment_say  # noqa: E402

TASK = "restore_graph"
#: The operator's ``timeout`` in the DAGs (tests/deployment_dags/ges_restore_retry.py).
TIMEOUT = 10
#: How long the stop job runs (well inside the first try's ``timeout``).
STOP_SECONDS = 4.0
#: How long the start job runs, per wait mode: longer than the first try's wait plus the retry's
#: way to its first look (so the retry finds the job still running), shorter than that plus the
#: retry's own ``timeout``. In the worker the first try times out ``TIMEOUT`` s after it began, about
#: ``STOP_SECONDS`` + 0.5 s before the start: with 14 s the retry may take about 7 s (past its 1 s
#: ``retry_delay``) to look, and has at least 2.5 s of its ``timeout`` to spare even when it looks as
#: soon as Airflow allows. Deferred, the first try's start wait gets a fresh ``TIMEOUT`` in the
#: triggerer, and a worker then fails the try: 21 s leaves about 9 s for that and the retry's look.
START_SECONDS = {"worker": 14.0, "deferrable": 21.0}
LOST_START = "504:scope=start:after=1:count=1"
FOUND_START = re.compile(r"waiting for the start job|was started by this run")


def say(request: pytest.FixtureRequest, text: str) -> None:
    deployment_say(request.config, text)


@pytest.fixture(autouse=True)
def _clean_emulator(airflow_deployment: Deployment) -> Iterator[None]:
    """No faults and the default job length around each test; a failed test's unfinished runs are
    marked failed (through REST) so nothing keeps calling the emulator under the next one."""
    d = airflow_deployment
    default = d.emulator.graph_action_duration
    d.emulator.set_faults(None)
    yield
    d.emulator.set_faults(None)
    d.emulator.graph_action_duration = default
    for mode in START_SECONDS:
        dag_id = f"ges_restore_retry_{mode}"
        for run in d.runs(dag_id):
            if run["state"] not in ("success", "failed"):
                d.request(
                    "PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}", json={"state": "failed"}
                )


def log_time(log: str, pattern: re.Pattern[str] | str) -> datetime | None:
    """The timestamp of the first line of a ``Deployment.task_log`` text matching ``pattern``."""
    for line in log.splitlines():
        if re.search(pattern, line):
            stamp = line.split(" ", 1)[0]
            try:
                return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            except ValueError:
                return None
    return None


def ges_time(value: str | None) -> datetime | None:
    """A job's ``beginTime``/``endTime`` (UTC, no zone) as an aware datetime."""
    return None if not value else datetime.fromisoformat(value).replace(tzinfo=timezone.utc)


def seconds(a: datetime | None, b: datetime | None) -> float | None:
    return None if a is None or b is None else round((b - a).total_seconds(), 1)


@pytest.mark.parametrize("mode", list(START_SECONDS))
def test_restore_retried_by_the_scheduler_after_a_lost_start_reply(
    airflow_deployment: Deployment, request: pytest.FixtureRequest, mode: str
) -> None:
    """Try 1 stops the graph, starts it from the backup (the reply is lost: 504), sees the start
    job in GES's job list and waits for it, and times out; the scheduler runs try 2, which finds
    the run's start job, waits for it and succeeds: one stop, one start, one restore."""
    d = airflow_deployment
    emu = d.emulator
    dag_id = f"ges_restore_retry_{mode}"
    graph_name = f"restore_retry_{mode}"
    graph_id = str(emu.add_graph(graph_name)["id"])
    backup_id = str(emu.add_backup(graph_name, status="success")["id"])
    emu.graph_action_duration = STOP_SECONDS
    emu.set_faults(LOST_START)
    emu.reset_counters()
    restores_before = len(emu.restores)  # the emulator's list spans the module's tests

    t0 = time.monotonic()
    run_id = d.trigger(dag_id, conf={"graph_name": graph_name, "backup_id": backup_id})
    # The stop is under way (with the short duration): make the start, still to come, a long one.
    wait_for("the restore's stop job", lambda: "StopGraph" in emu.job_names(graph_name), 90, 0.02)
    emu.graph_action_duration = START_SECONDS[mode]
    t_stop = time.monotonic()
    wait_for("the restore's start job", lambda: "StartGraph" in emu.job_names(graph_name), 60, 0.05)
    t_start = time.monotonic()
    state = d.wait_run(dag_id, run_id, timeout=120)
    t_done = time.monotonic()

    ti = d.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{TASK}")
    history = d.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{TASK}/tries")["task_instances"]
    tries = {t["try_number"]: t["state"] for t in history}
    logs = {n: d.task_log(dag_id, run_id, TASK, n) for n in sorted(tries)}
    jobs = emu.jobs(graph_name)
    start_job = next((j for j in jobs if j["jobName"] == "StartGraph"), {})
    found_at = log_time(logs.get(2, ""), FOUND_START)
    margins = {
        "trigger -> stop job (s)": round(t_stop - t0, 1),
        "stop job -> start job (s)": round(t_start - t_stop, 1),
        "start job -> run done (s)": round(t_done - t_start, 1),
        "run (s)": round(t_done - t0, 1),
        "start job length (s)": seconds(
            ges_time(start_job.get("beginTime")), ges_time(start_job.get("endTime"))
        ),
        "try 2 found the start job, s before it ended": seconds(found_at, ges_time(start_job.get("endTime"))),
        "tries": tries,
    }
    say(request, f"restore retried by the scheduler ({mode}): {margins}")
    context = {
        "margins": margins,
        "jobs": jobs,
        "mismatches": d.state_mismatches(dag_id, run_id, TASK),
        **logs,
    }

    # The scenario took place: the start's reply was lost once, and try 1 failed while GES started.
    assert emu.counters["replies_lost"] == 1, context
    assert ti["try_number"] == 2, ("no retry: try 1 did not time out while the start job ran", context)
    assert state == "success", context
    assert ti["state"] == "success", context
    assert sorted(tries) == [1, 2] and tries[2] == "success", context
    assert tries[1] in ("failed", "up_for_retry"), context
    assert "reply was lost" in logs[1], logs[1]
    assert f"waiting for the start job {start_job['jobId']}" in logs[1], logs[1]  # read, not resent
    timed_out = f"did not end within {TIMEOUT}s" if mode == "worker" else "did not end in time"
    assert timed_out in logs[1], logs[1]  # (the worker's names TIMEOUT: it matches the DAG's)

    # GES did each thing once: one stop, one start from the backup; the graph runs from it.
    assert emu.job_names(graph_name) == ["StopGraph", "StartGraph"], jobs
    assert [j["status"] for j in jobs] == ["success", "success"], jobs
    assert emu.restores[restores_before:] == [(graph_id, backup_id)]
    graph = emu.graph(graph_id)
    assert graph["status"] == "200", graph
    assert graph.get("restoredBackupId") == backup_id, graph

    # Try 2 found this run's start job and waited for it; it sent nothing.
    assert FOUND_START.search(logs[2]), logs[2]
    assert start_job["jobId"] in logs[2], logs[2]
    assert "Stopping graph" not in logs[2] and "Starting graph" not in logs[2], logs[2]
    assert "reply was lost" not in logs[2], logs[2]
    assert d.xcom(dag_id, run_id, TASK)["restoredBackupId"] == backup_id
    assert emu.counters["graph_action"] == 2, emu.counters
