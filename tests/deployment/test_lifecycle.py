"""``GesRestoreGraphOperator`` retried by a real scheduler (tests/deployment/stack.py), not ``dag.test()``.

The restore's first try loses the start's reply (``504:scope=start:after=1:count=1``: GES starts the
graph from the backup, the client gets a gateway error) and then times out while GES still runs the
start job; the scheduler retries it after its ``retry_delay``, and the second try must find this
run's start job in GES's job list and wait for it: never stop the graph again, never restore twice.

The timing: the stop job takes ``STOP_SECONDS``, so the first try sends the start well within its
``timeout`` (``TIMEOUT``, in tests/deployment/dags/ges_restore_retry.py); once the stop job exists
the emulator's ``graph_action_duration`` becomes the start job's length, picked per wait mode so
that the start outlasts the first try plus the retry's scheduling (with several seconds to spare)
and ends within the second try's ``timeout``. Runtimes and margins are printed.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_ges._compat import AIRFLOW_V_3_3_PLUS
from tests.deployment.stack import Deployment, wait_for
from tests.deployment.stack import say as deployment_say

TASK = "restore_graph"
#: The operator's ``timeout`` in the DAGs (tests/deployment/dags/ges_restore_retry.py).
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

#: Export then import (tests/deployment/dags/ges_export_import.py), per wait mode: how long GES's
#: export job and then its import job run. Short, but in the deferrable mode longer than the way from
#: the task's deferral to the scheduler taking the deferring worker's exit (``Deployment.released``):
#: a trigger that fires before that meets Airflow's stale-event race (apache/airflow#67287), which
#: would fail the test on Airflow's bug, not the provider's. The test prints that margin: the
#: scheduler took it about 1.4-1.6 s after the job began here, so 3 s leaves about 1.5 s to spare.
JOB_SECONDS = {"worker": 1.0, "deferrable": 3.0}
LOST_EXPORT = "504:scope=export:after=1:count=1"
EXPORT, IMPORT = "export_backup", "import_backup"

#: The emulator settings the tests change (put back after each), and the DAGs whose unfinished runs
#: a failed test leaves (failed through REST after it).
DURATIONS = ("graph_action_duration", "export_duration", "import_duration")
DAG_IDS = [f"ges_restore_retry_{m}" for m in START_SECONDS] + [f"ges_export_import_{m}" for m in JOB_SECONDS]


def say(request: pytest.FixtureRequest, text: str) -> None:
    deployment_say(request.config, text)


@pytest.fixture(autouse=True)
def _clean_emulator(airflow_deployment: Deployment) -> Iterator[None]:
    """No faults and the default job length around each test; a failed test's unfinished runs are
    marked failed (through REST) so nothing keeps calling the emulator under the next one."""
    d = airflow_deployment
    emu = d.emulator
    defaults = {name: getattr(emu, name) for name in DURATIONS}
    emu.set_faults(None)
    yield
    emu.set_faults(None)
    for name, value in defaults.items():
        setattr(emu, name, value)
    for dag_id in DAG_IDS:
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


def watch_run(
    d: Deployment, dag_id: str, run_id: str, graphs: dict[str, str], timeout: float
) -> tuple[str, dict[str, float]]:
    """Wait for the run to end, noting (seconds from now) when each graph's first job appeared and
    ended (``graphs``: label -> graph name) and, for each task, when the scheduler took its first
    worker's exit (``Deployment.released``: for a deferred task, the deferring worker's). Returns the
    run's state and those times."""
    t0 = time.monotonic()
    seen: dict[str, float] = {}
    state = ""
    next_rest = 0.0

    def note(what: str) -> None:
        seen.setdefault(what, round(time.monotonic() - t0, 1))

    while time.monotonic() - t0 < timeout:
        for label, graph in graphs.items():
            jobs = d.emulator.jobs(graph)
            if jobs:
                note(f"{label} job started")
                if jobs[0]["status"] in ("success", "failed"):
                    note(f"{label} job ended")
        log = d.scheduler_log()
        for task in (EXPORT, IMPORT):
            if d._released(log, dag_id, run_id, task, -1, 1):
                note(f"{task} worker released")
        if time.monotonic() >= next_rest:
            d.check_alive()
            state = d.run(dag_id, run_id)["state"]
            if state in ("success", "failed"):
                note("run done")
                return state, seen
            next_rest = time.monotonic() + 0.5
        time.sleep(0.1)
    return state, seen


@pytest.mark.parametrize("mode", list(JOB_SECONDS))
def test_export_then_import_with_a_lost_export_reply(
    airflow_deployment: Deployment, request: pytest.FixtureRequest, mode: str
) -> None:
    """Export a successful backup of graph A to ``ges-dr/A/<dir>`` (from the run's params), then
    import that path (the export's XCom) into graph B. The export's reply is lost once
    (``504:scope=export:after=1:count=1``: GES starts the export job, the client gets a gateway
    error): the operator must read GES's jobs, find the job and wait for it, not send the export
    again. GES then did one export of A and one import into B, whose one new backup the import
    task returns."""
    d = airflow_deployment
    emu = d.emulator
    dag_id = f"ges_export_import_{mode}"
    source, target = f"export_source_{mode}", f"import_target_{mode}"
    emu.add_graph(source)
    target_id = str(emu.add_graph(target)["id"])
    backup_id = str(emu.add_backup(source, status="success")["id"])
    export_dir = f"dr-{mode}"
    path = f"ges-dr/{source}/{export_dir}"
    emu.export_duration = emu.import_duration = JOB_SECONDS[mode]
    emu.set_faults(LOST_EXPORT)
    emu.reset_counters()
    exports_before = len(emu.exports)  # the emulator's list spans the module's tests

    t0 = time.monotonic()
    conf = {"source_graph": source, "target_graph": target, "backup_id": backup_id, "export_dir": export_dir}
    run_id = d.trigger(dag_id, conf=conf)
    state, seen = watch_run(d, dag_id, run_id, {"export": source, "import": target}, timeout=120)
    runtime = round(time.monotonic() - t0, 1)

    tis = {t: d.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{t}") for t in (EXPORT, IMPORT)}
    logs = {t: d.task_log(dag_id, run_id, t, max(1, ti["try_number"])) for t, ti in tis.items()}
    export_jobs, import_jobs = emu.jobs(source), emu.jobs(target)
    margins: dict[str, object] = {"run (s)": runtime, **seen}
    if mode == "deferrable":
        # The trigger may fire only after the scheduler took the deferring worker's exit.
        for label, task in (("export", EXPORT), ("import", IMPORT)):
            end, released = seen.get(f"{label} job ended"), seen.get(f"{task} worker released")
            margins[f"{label}: worker released, s before its job ended"] = (
                None if end is None or released is None else round(end - released, 1)
            )
    say(request, f"export then import ({mode}): {margins}")
    context = {
        "state": state,
        "margins": margins,
        "tis": {t: (ti["state"], ti["try_number"]) for t, ti in tis.items()},
        "export jobs": export_jobs,
        "import jobs": import_jobs,
        "counters": dict(emu.counters),
        "mismatches": {t: d.state_mismatches(dag_id, run_id, t) for t in (EXPORT, IMPORT)},
        **logs,
    }

    # Both tasks succeeded, each in its one try.
    assert state == "success", context
    for task, ti in tis.items():
        assert (ti["state"], ti["try_number"]) == ("success", 1), (task, context)

    # The export's reply was lost once; the task read GES's jobs, found the job and did not resend.
    assert emu.counters["replies_lost"] == 1, context
    assert emu.counters["export_backup"] == 1, context
    assert emu.counters["import_backup"] == 1, context
    assert emu.counters["v2_requests"] >= 2, context  # the export and the import, at least
    assert emu.job_names(source) == ["ExportBackup"], export_jobs
    assert emu.job_names(target) == ["ImportBackup"], import_jobs
    assert [j["status"] for j in export_jobs + import_jobs] == ["success", "success"], context
    export_job_id = export_jobs[0]["jobId"]
    export_log = logs[EXPORT]
    assert export_log.count("reply was lost") == 1, export_log
    assert "reading GES's jobs" in export_log, export_log
    assert f"this run's export job {export_job_id}" in export_log, export_log  # found it, not resent
    assert "reply was lost" not in logs[IMPORT], logs[IMPORT]

    # GES exported the backup to the path once, and the export task says so.
    assert emu.exports[exports_before:] == [(backup_id, path)], emu.exports
    assert d.xcom(dag_id, run_id, EXPORT, key="job_id") == export_job_id
    exported = d.xcom(dag_id, run_id, EXPORT)
    assert (exported["backup_id"], exported["export_path"]) == (backup_id, path), exported
    assert exported["job"]["jobId"] == export_job_id, exported

    # Graph B has exactly one new backup, imported from the path, and the import task returned it.
    assert d.xcom(dag_id, run_id, IMPORT, key="job_id") == import_jobs[0]["jobId"]
    backups = emu.backups(target_id)
    assert [(b["backupMethod"], b["status"]) for b in backups] == [("import", "success")], backups
    imported = d.xcom(dag_id, run_id, IMPORT)
    assert imported["id"] == backups[0]["id"], (imported, backups)
    assert imported["backupMethod"] == "import", imported
    assert f"Imported {path} as backup" in logs[IMPORT], logs[IMPORT]


# --- example_ges_restore_graph: a person approves (or rejects) the restore, through REST ----------


RESTORE_DAG, DESCRIBE, APPROVAL = "example_ges_restore_graph", "describe_restore", "approve_restore"
DAG_IDS.append(RESTORE_DAG)  # a failed test's unfinished runs are failed after it (_clean_emulator)
#: 3.3 parks a human-in-the-loop task in ``awaiting_input``; 3.1 and 3.2 defer it to ``HITLTrigger``.
ASKING = "awaiting_input" if AIRFLOW_V_3_3_PLUS else "deferred"
#: How long GES's stop and start jobs run: the restore defers on them, and a trigger that fires
#: before the scheduler took the deferring worker's exit meets apache/airflow#67287 (see JOB_SECONDS).
RESTORE_JOB_SECONDS = 5.0


@pytest.fixture(scope="module")
def _example_restore_polls_fast() -> Iterator[None]:
    """The example's restore looks every second (``GES_EXAMPLE_POLL_INTERVAL``, in the environment
    the deployment passes on)."""
    saved = os.environ.get("GES_EXAMPLE_POLL_INTERVAL")
    os.environ["GES_EXAMPLE_POLL_INTERVAL"] = "1"
    yield
    if saved is None:
        os.environ.pop("GES_EXAMPLE_POLL_INTERVAL", None)
    else:
        os.environ["GES_EXAMPLE_POLL_INTERVAL"] = saved


@pytest.fixture(scope="module")
def airflow_deployment(_example_restore_polls_fast: None, airflow_deployment: Deployment) -> Deployment:
    """The plugin's deployment (tests/deployment/stack.py), started once that environment is set."""
    return airflow_deployment


def hitl_path(run_id: str) -> str:
    return f"/api/v2/dags/{RESTORE_DAG}/dagRuns/{run_id}/taskInstances/{APPROVAL}/-1/hitlDetails"


def ask_and_answer(d: Deployment, graph_name: str, backup_id: str, option: str) -> tuple[str, dict[str, Any]]:
    """Trigger the example, wait for the approval to be asked, answer ``option`` through REST (as a
    person in "Required Actions" does); returns the run id and what the person was shown."""
    run_id = d.trigger(RESTORE_DAG, conf={"graph_name": graph_name, "backup_id": backup_id})
    d.wait_task_state(RESTORE_DAG, run_id, APPROVAL, {ASKING}, timeout=120)
    asked = dict(d.get(hitl_path(run_id)))
    d.wait_released(RESTORE_DAG, run_id, APPROVAL)  # the asking worker's exit taken (#67287)
    d.request("PATCH", hitl_path(run_id), json={"chosen_options": [option], "params_input": {}})
    return run_id, asked


def assert_shown(asked: dict[str, Any], graph_name: str, backup: dict[str, Any]) -> None:
    """The approval names the backup (id, name, times, size) and what the graph loses."""
    start = datetime.fromtimestamp(backup["startTimestamp"] / 1000, timezone.utc)
    assert asked["options"] == ["Approve", "Reject"], asked
    assert asked["subject"] == f"Restore GES graph {graph_name} from backup {backup['id']}?", asked
    body = asked["body"]
    for shown in (backup["id"], backup["name"], f"size {backup['size']} MB"):
        assert shown in body, (shown, body)
    assert f"loses everything written since {start:%Y-%m-%d %H:%M:%S} UTC" in body, body
    assert "stopped while it restarts from the backup" in body, body


def test_example_restore_approved_through_rest(
    airflow_deployment: Deployment, request: pytest.FixtureRequest
) -> None:
    """Approved: the restore stops the graph and starts it from the backup (one stop, one start)."""
    d = airflow_deployment
    emu = d.emulator
    graph_name = "hitl_approved"
    graph_id = str(emu.add_graph(graph_name)["id"])
    backup = emu.add_backup(graph_name, status="success")
    emu.graph_action_duration = RESTORE_JOB_SECONDS
    restores_before = len(emu.restores)

    t0 = time.monotonic()
    run_id, asked = ask_and_answer(d, graph_name, str(backup["id"]), "Approve")
    t_answer = time.monotonic()
    assert not emu.jobs(graph_name), "the graph was touched before the approval"
    state = d.wait_run(RESTORE_DAG, run_id, timeout=180)
    say(
        request,
        f"example restore approved: asked and answered {t_answer - t0:.1f} s after the trigger, run done"
        f" {time.monotonic() - t_answer:.1f} s after the answer ({ASKING} while asking)",
    )
    states = d.states(RESTORE_DAG, run_id)
    context = {
        "states": states,
        "jobs": emu.jobs(graph_name),
        "log": d.task_log(RESTORE_DAG, run_id, "restore_graph"),
    }

    assert_shown(asked, graph_name, backup)
    assert state == "success", context
    assert states == {DESCRIBE: ("success", 1), APPROVAL: ("success", 1), "restore_graph": ("success", 1)}, (
        context
    )
    assert d.get(hitl_path(run_id))["chosen_options"] == ["Approve"]
    assert emu.job_names(graph_name) == ["StopGraph", "StartGraph"], context
    assert [j["status"] for j in emu.jobs(graph_name)] == ["success", "success"], context
    assert emu.restores[restores_before:] == [(graph_id, str(backup["id"]))]
    assert emu.graph(graph_id).get("restoredBackupId") == str(backup["id"])
    assert d.xcom(RESTORE_DAG, run_id, "restore_graph")["restoredBackupId"] == str(backup["id"])


def test_example_restore_rejected_through_rest(airflow_deployment: Deployment) -> None:
    """Rejected: the restore is skipped; GES sees no stop (no job at all) and the graph keeps running."""
    d = airflow_deployment
    emu = d.emulator
    graph_name = "hitl_rejected"
    graph_id = str(emu.add_graph(graph_name)["id"])
    backup = emu.add_backup(graph_name, status="success")
    restores_before = len(emu.restores)
    emu.reset_counters()

    run_id, asked = ask_and_answer(d, graph_name, str(backup["id"]), "Reject")
    state = d.wait_run(RESTORE_DAG, run_id, timeout=120)
    states = d.states(RESTORE_DAG, run_id)

    assert_shown(asked, graph_name, backup)
    assert state == "success", states  # a "Reject" is an answer, not a failure
    assert states == {DESCRIBE: ("success", 1), APPROVAL: ("success", 1), "restore_graph": ("skipped", 0)}, (
        states
    )
    assert d.get(hitl_path(run_id))["chosen_options"] == ["Reject"]  # (a rejection pushes no XCom)
    assert emu.jobs(graph_name) == [] and emu.counters["graph_action"] == 0, emu.counters
    assert emu.restores[restores_before:] == []
    assert str(emu.graph(graph_id)["status"]) == "200"
