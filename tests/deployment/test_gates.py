"""The provider in a real Airflow deployment (tests/deployment/stack.py): PostgreSQL, LocalExecutor, and the
API server, scheduler, dag-processor and triggerer as separate processes, against the emulator.

Runs are triggered and observed through the REST API, as a user or a CI system would: manual runs
with no logical date (``"logical_date": null``), so the gate's default ``newer_than`` is the run's
``run_after``; every backup a test waits for is therefore added *after* its run was triggered.

Each test uses graphs of its own, and leaves no run unfinished (see ``_no_run_left_behind``): tests
that read the emulator's request counters rely on nothing else polling it.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_ges._compat import STARTS_FROM_TRIGGER
from tests.deployment.stack import Deployment, wait_for
from tests.deployment.stack import say as deployment_say

EXAMPLE = "example_ges_backup_gate"
SENSOR = "wait_for_backup"
ETL = "run_etl"

#: Figures the tests measured, printed at the end of the module.
FIGURES: dict[str, Any] = {}


def say(request: pytest.FixtureRequest, text: str) -> None:
    """A line on the terminal even without ``-s`` (figures for the CI log)."""
    deployment_say(request.config, text)


def now() -> datetime:
    return datetime.now(timezone.utc)


def backing_up(d: Deployment, graph: str) -> str:
    """A backup of ``graph`` that starts now (after the run was triggered) and is still running."""
    return str(d.emulator.add_backup(graph, status="backing_up", start=now())["id"])


def new_graph(d: Deployment, name: str) -> str:
    return str(d.emulator.add_graph(name)["id"])


def looks(d: Deployment) -> int:
    """Backup listings served so far (one per look of a gate that found its graph's id)."""
    return d.emulator.counters["list_graph_backups"]


def wait_for_looks(d: Deployment, since: int, more: int = 1, timeout: float = 60.0) -> int:
    return wait_for(
        f"{more} more backup listing(s) after {since}",
        lambda: (n := looks(d)) >= since + more and n,
        timeout,
        0.1,
    )


@pytest.fixture(autouse=True)
def _no_run_left_behind(airflow_deployment: Deployment) -> Iterator[None]:
    """A failed test must not leave sensors polling the emulator under the next test: mark its
    unfinished runs failed (through REST, as an operator would)."""
    d = airflow_deployment
    d.emulator.set_faults(None)
    yield
    d.emulator.set_faults(None)
    for dag in d.get_all("/api/v2/dags", "dags"):
        for run in d.runs(dag["dag_id"]):
            if run["state"] not in ("success", "failed"):
                d.request(
                    "PATCH",
                    f"/api/v2/dags/{dag['dag_id']}/dagRuns/{run['dag_run_id']}",
                    json={"state": "failed"},
                )


def tries(d: Deployment, dag_id: str, run_id: str, task_id: str) -> list[int]:
    found = d.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
    return sorted({t["try_number"] for t in found["task_instances"]})


def assert_single_try(d: Deployment, dag_id: str, run_id: str, task_id: str) -> None:
    """The task ran once: try 1, and no other try in its history (no retry, no lost trigger).

    When Airflow itself retried it on a stale executor event, the message says so (its bug, named
    in ``Deployment.state_mismatches``), but the test still fails: we only avoid that race."""
    ti = d.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
    mismatches = d.state_mismatches(dag_id, run_id, task_id)
    why = f"Airflow's stale-executor-event race (apache/airflow#67287): {mismatches}" if mismatches else ""
    assert ti["try_number"] == 1, (why, ti)
    assert tries(d, dag_id, run_id, task_id) == [1], why


# --- the example, as a user copies it ----------------------------------------------------------------


def test_example_gate_manual_run_without_logical_date(
    airflow_deployment: Deployment, request: pytest.FixtureRequest
) -> None:
    """``example_ges_backup_gate`` (deferrable, 5-minute poke interval) triggered like the UI's
    Trigger button: no logical date, a ``conf`` graph name. The gate sees the new backup
    ``backing_up`` (in the worker's first look and the trigger's), then passes once it succeeded.

    The example polls every 5 minutes, which a test cannot wait for: after the flip the triggerer is
    restarted (SIGTERM, as a deploy does), and the restarted trigger's first look sees the success.
    The tests below check waits and restarts with a 2-second interval."""
    d = airflow_deployment
    graph_id = new_graph(d, "example_graph")
    run_id = d.trigger(EXAMPLE, conf={"graph_name": "example_graph"})
    run = d.run(EXAMPLE, run_id)
    assert run["logical_date"] is None and run["data_interval_start"] is None, run
    backup_id = backing_up(d, "example_graph")

    d.wait_task_state(EXAMPLE, run_id, SENSOR, {"deferred"}, timeout=90)
    seen = looks(d)
    wait_for_looks(d, seen, 1, timeout=30)  # the trigger's first look: still backing_up
    d.wait_released(EXAMPLE, run_id, SENSOR)  # apache/airflow#67287: see Deployment.released
    assert d.run(EXAMPLE, run_id)["state"] == "running"
    d.emulator.set_backup_status(backup_id, "success")
    d.kill_triggerer(signal.SIGTERM)
    d.start_triggerer()

    assert d.wait_run(EXAMPLE, run_id, timeout=120) == "success"
    assert d.states(EXAMPLE, run_id) == {SENSOR: ("success", 1), ETL: ("success", 1)}
    assert_single_try(d, EXAMPLE, run_id, SENSOR)
    backup = d.xcom(EXAMPLE, run_id, SENSOR)
    assert backup["id"] == backup_id and backup["status"] == "success"
    assert backup["graph_name"] == "example_graph"
    assert d.xcom(EXAMPLE, run_id, ETL) == backup_id
    log = d.task_log(EXAMPLE, run_id, SENSOR)  # the worker's lines and both triggers', merged
    assert f"(id {graph_id})" in log, log
    # the worker's first look and the first trigger's saw it running; the restarted trigger, done
    assert log.count(f"(id {backup_id}) is backing_up") >= 2, log
    assert f"(id {backup_id}) is success" in log, log
    assert re.search(rf"Backup \S+ \(id {backup_id}\) succeeded", log), log
    etl_log = d.task_log(EXAMPLE, run_id, ETL)
    assert "ETL reads graph 'example_graph'" in etl_log and backup_id in etl_log, etl_log
    say(request, f"example gate run without logical date: {d.run(EXAMPLE, run_id)['run_after']}")


def test_example_gate_backfill_uses_each_runs_data_interval(airflow_deployment: Deployment) -> None:
    """A backfill (REST ``POST /api/v2/backfills``) of ``example_ges_backup_gate``: each run has a
    data interval, so the gate's default ``newer_than`` is its ``data_interval_start``: the backup
    of that day passes it, an older one does not count."""
    d = airflow_deployment
    graph = "backfill_graph"
    new_graph(d, graph)
    day = datetime(2026, 11, 20, tzinfo=timezone.utc)
    d.emulator.add_backup(graph, status="success", start=day - timedelta(days=3))  # before the interval
    that_day = d.emulator.add_backup(graph, status="success", start=day + timedelta(hours=3))
    d.unpause(EXAMPLE)
    body = {
        "dag_id": EXAMPLE,
        "from_date": day.isoformat(),
        "to_date": (day + timedelta(hours=1)).isoformat(),
        "dag_run_conf": {"graph_name": graph},
        "reprocess_behavior": "none",
        "max_active_runs": 1,
    }
    d.request("POST", "/api/v2/backfills", json=body)
    run = wait_for(
        "the backfill run",
        lambda: next((r for r in d.runs(EXAMPLE) if r["run_type"] == "backfill"), None),
        60,
        0.5,
    )
    assert run["data_interval_start"] is not None, run
    assert d.wait_run(EXAMPLE, run["dag_run_id"], timeout=120) == "success"
    assert d.xcom(EXAMPLE, run["dag_run_id"], SENSOR)["id"] == that_day["id"]


# --- the modes, and the sensor's own lines in the task logs --------------------------------------------

MODE_DAGS = {"poke": "ges_gate_poke", "reschedule": "ges_gate_reschedule", "aksk": "ges_gate_aksk"}


def test_poke_reschedule_and_aksk_gates_wait_then_pass(
    airflow_deployment: Deployment, request: pytest.FixtureRequest
) -> None:
    """The gate in poke and reschedule mode (password auth) and deferrable with an AK/SK connection,
    side by side, each on its own graph: they wait while the backup is ``backing_up`` (their logs,
    read through REST, say so), pass once it succeeds, and the ETL task gets the backup."""
    d = airflow_deployment
    graphs = {mode: f"{mode}_graph" for mode in MODE_DAGS}
    graph_ids = {mode: new_graph(d, graph) for mode, graph in graphs.items()}
    runs = {mode: d.trigger(dag, conf={"graph_name": graphs[mode]}) for mode, dag in MODE_DAGS.items()}
    backups = {mode: backing_up(d, graph) for mode, graph in graphs.items()}

    def all_waiting() -> bool:
        for mode, dag in MODE_DAGS.items():
            if f"(id {backups[mode]}) is backing_up" not in d.task_log(dag, runs[mode], SENSOR):
                return False
        return True

    wait_for("every gate to log the running backup", all_waiting, timeout=90, interval=1)
    d.wait_released(MODE_DAGS["aksk"], runs["aksk"], SENSOR)  # apache/airflow#67287: see Deployment.released
    seen = looks(d)
    wait_for_looks(d, seen, 3, timeout=30)  # each keeps looking
    for mode, dag in MODE_DAGS.items():
        assert d.run(dag, runs[mode])["state"] == "running"
        d.emulator.set_backup_status(backups[mode], "success")

    for mode, dag in MODE_DAGS.items():
        run_id = runs[mode]
        state = d.wait_run(dag, run_id, timeout=90)
        assert state == "success", (mode, d.states(dag, run_id), d.task_log(dag, run_id, SENSOR))
        assert d.states(dag, run_id)[ETL] == ("success", 1), mode
        sensor_state, try_number = d.states(dag, run_id)[SENSOR]
        assert sensor_state == "success", mode
        if try_number != 1:
            # Only a retry that Airflow itself caused, proven from the scheduler's log, is let
            # through: reschedule mode's "finished with state success, but the task instance's
            # state attribute is queued" race (apache/airflow#71172). Anything else fails.
            mismatches = d.state_mismatches(dag, run_id, SENSOR)
            assert mode == "reschedule" and try_number == 2, (mode, try_number, mismatches)
            assert any("state attribute is queued" in m for m in mismatches), (mode, mismatches)
            say(request, f"reschedule gate hit apache/airflow#71172 (retried by Airflow): {mismatches[0]}")
        assert d.xcom(dag, run_id, SENSOR)["id"] == backups[mode]
        assert d.xcom(dag, run_id, ETL) == backups[mode]
        log = d.task_log(dag, run_id, SENSOR, try_number)
        # the sensor's own lines: the graph id found for the name, the looks, the backup that passed
        assert f"Looked at graph {graphs[mode]!r} (id {graph_ids[mode]})" in log, (mode, log)
        if try_number == 1:
            assert f"(id {backups[mode]}) is backing_up" in log, (mode, log)
        assert re.search(rf"Backup \S+ \(id {backups[mode]}\) succeeded", log), (mode, log)
    assert d.emulator.counters["auth_failures"] == 0


# --- the triggerer restarted while a gate is deferred ---------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_triggerer_restart_while_deferred(
    airflow_deployment: Deployment, request: pytest.FixtureRequest, sig: signal.Signals
) -> None:
    """The triggerer dies (SIGKILL: a crash; SIGTERM: a deploy) while a gate is deferred; a new
    triggerer picks the trigger up and keeps waiting; the backup then succeeds and the task
    completes in its first try (``retries=2``: a lost trigger would show as a second try)."""
    d = airflow_deployment
    dag, graph = "ges_gate_deferrable", f"restart_{sig.name.lower()}"
    new_graph(d, graph)
    run_id = d.trigger(dag, conf={"graph_name": graph})
    backup_id = backing_up(d, graph)
    d.wait_task_state(dag, run_id, SENSOR, {"deferred"}, timeout=90)
    wait_for_looks(d, looks(d), 1, timeout=30)  # the first triggerer is polling
    d.wait_released(dag, run_id, SENSOR)  # apache/airflow#67287: see Deployment.released

    t_kill = time.monotonic()
    d.kill_triggerer(sig)
    killed_at = looks(d)
    time.sleep(3)  # nobody polls while no triggerer runs
    assert looks(d) == killed_at, "a look with no triggerer running"
    assert d.get(f"/api/v2/dags/{dag}/dagRuns/{run_id}/taskInstances/{SENSOR}")["state"] == "deferred"
    t_start = time.monotonic()
    d.start_triggerer()
    wait_for_looks(d, killed_at, 1, timeout=90)
    t_pickup = time.monotonic()
    assert d.run(dag, run_id)["state"] == "running"
    d.emulator.set_backup_status(backup_id, "success")
    t_flip = time.monotonic()
    assert d.wait_run(dag, run_id, timeout=90) == "success"
    t_done = time.monotonic()

    assert d.states(dag, run_id) == {SENSOR: ("success", 1), ETL: ("success", 1)}
    assert_single_try(d, dag, run_id, SENSOR)
    assert d.xcom(dag, run_id, ETL) == backup_id
    # through REST, one log: the worker's look, the killed triggerer's and the new one's
    log = d.task_log(dag, run_id, SENSOR)
    assert log.count(f"(id {backup_id}) is backing_up") >= 3, log
    assert f"(id {backup_id}) is success" in log, log
    timeline = {
        "kill -> new triggerer started (test's own pause)": round(t_start - t_kill, 1),
        "new triggerer started -> its first look": round(t_pickup - t_start, 1),
        "kill -> first look of the new triggerer": round(t_pickup - t_kill, 1),
        "flip -> run success": round(t_done - t_flip, 1),
    }
    FIGURES[f"restart {sig.name}"] = timeline
    say(request, f"triggerer {sig.name} timeline (s): {timeline}")


# --- a failed backup -----------------------------------------------------------------------------------


def test_failed_backup_fails_the_gate_without_retries(airflow_deployment: Deployment) -> None:
    """The backup the gate waits on fails: the gate fails in its first try although the task has
    ``retries=2`` (a failed backup is not a transient error), and the ETL is ``upstream_failed``."""
    d = airflow_deployment
    dag, graph = "ges_gate_deferrable", "failing_graph"
    new_graph(d, graph)
    run_id = d.trigger(dag, conf={"graph_name": graph})
    backup_id = backing_up(d, graph)
    d.wait_task_state(dag, run_id, SENSOR, {"deferred"}, timeout=90)
    d.wait_released(dag, run_id, SENSOR)  # apache/airflow#67287: see Deployment.released
    d.emulator.set_backup_status(backup_id, "failed")

    assert d.wait_run(dag, run_id, timeout=90) == "failed"
    assert d.states(dag, run_id) == {SENSOR: ("failed", 1), ETL: ("upstream_failed", 0)}
    assert_single_try(d, dag, run_id, SENSOR)
    log = d.task_log(dag, run_id, SENSOR)
    assert backup_id in log and "failed" in log, log


# --- 100 deferred gates in one triggerer, under faults ------------------------------------------------


def test_hundred_deferred_gates_under_faults(
    airflow_deployment: Deployment, request: pytest.FixtureRequest
) -> None:
    """100 gates (one mapped task over 100 graphs) wait in one triggerer at once while the emulator
    answers every 7th request with 503 and every 11th with 429; one flip of all 100 backups and
    every gate passes in its first try.

    The faults start once all 100 are deferred: they are there for the triggers (the resumed tasks
    call nothing), and the workers' first looks would only take longer under them."""
    d = airflow_deployment
    dag = "ges_gate_fleet"
    fleet = [f"fleet_{i:03d}" for i in range(100)]
    for graph in fleet:
        new_graph(d, graph)
    rss_before = d.triggerer.rss()
    log_start = d.triggerer.log.stat().st_size
    d.emulator.reset_counters()
    t0 = time.monotonic()
    run_id = d.trigger(dag)
    backups = {graph: backing_up(d, graph) for graph in fleet}

    def all_deferred() -> bool:
        d.check_alive()
        states = [ti["state"] for ti in d.task_instances(dag, run_id) if ti["task_id"] == SENSOR]
        assert not {"failed", "up_for_retry", "success"} & set(states), d.states(dag, run_id)
        return len(states) == 100 and all(s == "deferred" for s in states)

    wait_for("100 deferred gates", all_deferred, timeout=240, interval=1)
    t_deferred = time.monotonic()
    d.wait_released(dag, run_id, SENSOR, list(range(100)))  # apache/airflow#67287: Deployment.released
    deferring = d.emulator.counters  # 100 workers' first looks, then the triggers' first looks
    d.emulator.reset_counters()
    d.emulator.set_faults("503:every=7,429:every=11")
    t_faults = time.monotonic()
    wait_for_looks(d, 0, 300, timeout=90)  # every trigger looked a few times under the faults
    rss_waiting = d.triggerer.rss()
    waiting = d.emulator.counters
    for backup_id in backups.values():
        d.emulator.set_backup_status(backup_id, "success")
    t_flip = time.monotonic()
    state = d.wait_run(dag, run_id, timeout=240)
    t_done = time.monotonic()
    counters = d.emulator.counters
    rss_after = d.triggerer.rss()
    with d.triggerer.log.open("rb") as log:
        log.seek(log_start)
        blocked = re.findall(rb"async thread was blocked for ([0-9.]+) seconds", log.read())

    states = d.states(dag, run_id)
    assert state == "success", {k: v for k, v in states.items() if v != ("success", 1)}
    assert all(v == ("success", 1) for v in states.values()), states
    assert d.xcom(dag, run_id, "count") == 100
    assert waiting["faults_injected"] > 0
    figures = {
        "trigger -> 100 deferred (s)": round(t_deferred - t0, 1),
        "faults -> flip: waiting under faults (s)": round(t_flip - t_faults, 1),
        "flip -> run success (s)": round(t_done - t_flip, 1),
        "until all deferred: token / graph-list / backup-list requests": (
            deferring["create_token"],
            deferring["list_graphs"],
            deferring["list_graph_backups"],
        ),
        "from the faults on (triggers only): token / graph-list / backup-list requests": (
            counters["create_token"],
            counters["list_graphs"],
            counters["list_graph_backups"],
        ),
        "project backup-list requests (both phases)": deferring["list_backups"] + counters["list_backups"],
        "faults from the faults on (503, 429)": (counters["fault_503"], counters["fault_429"]),
        "triggerer RSS kB per pid, before / 100 waiting / after": (rss_before, rss_waiting, rss_after),
        "triggerer 'async thread was blocked' warnings (seconds each)": [float(b) for b in blocked],
    }
    FIGURES["100 gates"] = figures
    say(request, f"100 deferred gates: {figures}")


# --- gates that start in the triggerer (start_from_trigger) ----------------------------------------------

STARTED = "ges_gate_start_from_trigger"
#: Airflow 3.1/3.2 never start a task in the triggerer: there the sensor warns once and defers from a
#: worker (tests/airflow/test_sensor.py checks that fallback), so these tests need 3.3.
needs_start_from_trigger = pytest.mark.skipif(
    not STARTS_FROM_TRIGGER, reason="Airflow < 3.3 starts no task in the triggerer"
)


def worker_ran(d: Deployment, dag_id: str, run_id: str, task_id: str) -> bool:
    """Whether a LocalExecutor worker ran any try of the task: the executor reports every workload it
    ran to the scheduler, which logs "Received executor event ..." for its task instance key."""
    key = f"TaskInstanceKey(dag_id={dag_id!r}, task_id={task_id!r}, run_id={run_id!r}, "
    return any(key in line and "Received executor event" in line for line in d.scheduler_log().splitlines())


def assert_no_worker(d: Deployment, dag_id: str, run_id: str, task_id: str) -> None:
    """No worker ran the task: no executor event for it, and its task instance has no hostname (a
    worker's task process sets it when it starts)."""
    ti = d.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
    assert not worker_ran(d, dag_id, run_id, task_id), ti
    assert not ti["hostname"], ti


@needs_start_from_trigger
def test_start_from_trigger_gate_waits_then_passes_with_no_worker(airflow_deployment: Deployment) -> None:
    """``start_from_trigger=True``: the scheduler defers the gate straight into the triggerer, which
    renders ``{{ params.graph_name }}`` and the default ``newer_than`` (the run's ``run_after``); it
    waits on a running backup (an older success does not count) and passes once it succeeded. No
    worker ran the gate (the ETL's worker is the signal's control)."""
    d = airflow_deployment
    graph = "started_graph"
    graph_id = new_graph(d, graph)
    old = d.emulator.add_backup(graph, status="success", start=now() - timedelta(hours=1))["id"]
    run_id = d.trigger(STARTED, conf={"graph_name": graph})
    backup_id = backing_up(d, graph)
    d.wait_task_state(STARTED, run_id, SENSOR, {"deferred"}, timeout=60)
    wait_for_looks(d, looks(d), 2, timeout=30)  # the trigger looks, and waits
    assert d.run(STARTED, run_id)["state"] == "running"
    d.emulator.set_backup_status(backup_id, "success")

    assert d.wait_run(STARTED, run_id, timeout=90) == "success"
    assert d.states(STARTED, run_id) == {SENSOR: ("success", 1), ETL: ("success", 1)}
    assert_single_try(d, STARTED, run_id, SENSOR)
    assert d.xcom(STARTED, run_id, ETL) == graph
    assert_no_worker(d, STARTED, run_id, SENSOR)
    wait_for("the ETL worker's executor event", lambda: worker_ran(d, STARTED, run_id, ETL), 30, 0.5)
    log = d.task_log(STARTED, run_id, SENSOR)  # the trigger's lines only
    assert f"(id {graph_id})" in log and f"(id {backup_id}) is backing_up" in log, log
    assert f"(id {backup_id}) is success" in log and old not in log, log


@needs_start_from_trigger
@pytest.mark.parametrize("case", ["failed backup", "missing graph"])
def test_start_from_trigger_gate_fails_fast_with_no_worker(airflow_deployment: Deployment, case: str) -> None:
    """A failed backup, or a graph name no graph has: the gate started in the triggerer fails there
    in its first try (the ETL ``upstream_failed``), saying why in its log, and no worker ran it."""
    d = airflow_deployment
    graph = "started_failing" if case == "failed backup" else "started_nowhere"
    if case == "failed backup":
        new_graph(d, graph)
    run_id = d.trigger(STARTED, conf={"graph_name": graph})
    if case == "failed backup":
        backup_id = backing_up(d, graph)
        d.wait_task_state(STARTED, run_id, SENSOR, {"deferred"}, timeout=60)
        wait_for_looks(d, looks(d), 1, timeout=30)
        d.emulator.set_backup_status(backup_id, "failed")

    assert d.wait_run(STARTED, run_id, timeout=90) == "failed"
    assert d.states(STARTED, run_id) == {SENSOR: ("failed", 1), ETL: ("upstream_failed", 0)}
    assert_single_try(d, STARTED, run_id, SENSOR)
    assert_no_worker(d, STARTED, run_id, SENSOR)
    log = d.task_log(STARTED, run_id, SENSOR)
    why = f"(id {backup_id}) of graph {graph!r}" if case == "failed backup" else f"No graph named {graph!r}"
    assert why in log, log


@needs_start_from_trigger
def test_start_from_trigger_job_sensor_passes_and_fails_fast_with_no_worker(
    airflow_deployment: Deployment,
) -> None:
    """``GesJobSensor(start_from_trigger=True)``: the triggerer renders the job id and graph name from
    params, finds the graph and waits for the job (a graph stop); it passes in a worker, which pushes
    the job to XCom (one workload: the resume, not a start). A graph name no graph has fails at once
    in the triggerer: no worker ran it."""
    d = airflow_deployment
    dag, task_id = "ges_job_start_from_trigger", "wait_for_job"
    graph_id = new_graph(d, "started_job_graph")
    from unittest import mock

    from airflow_provider_ges.hooks.ges import GesHook

    with mock.patch.dict("os.environ", d.emulator.connection_env("ges_default")):
        job_id = GesHook("ges_default").stop_graph(graph_id)
    passing = d.trigger(dag, conf={"graph_name": "started_job_graph", "job_id": job_id})
    failing = d.trigger(dag, conf={"graph_name": "no_such_graph", "job_id": job_id})

    assert d.wait_run(dag, passing, timeout=90) == "success"
    assert d.wait_run(dag, failing, timeout=90) == "failed"
    assert d.xcom(dag, passing, task_id)["jobId"] == job_id
    assert "No graph named 'no_such_graph'" in d.task_log(dag, failing, task_id)
    for run_id in (passing, failing):
        assert_single_try(d, dag, run_id, task_id)
    assert_no_worker(d, dag, failing, task_id)
    key = f"TaskInstanceKey(dag_id={dag!r}, task_id={task_id!r}, run_id={passing!r}, "
    assert (
        sum("Received executor event" in line and key in line for line in d.scheduler_log().splitlines()) == 1
    )


# --- secrets ---------------------------------------------------------------------------------------------


def test_no_secret_in_any_file_the_deployment_wrote(
    airflow_deployment: Deployment, request: pytest.FixtureRequest
) -> None:
    """Every file the deployment wrote (task logs, trigger logs, scheduler, dag-processor and
    triggerer logs, every process's output) is free of the password, the AK/SK secret key and every
    token the emulator issued. Runs last: it reads what the other tests made the deployment write;
    it makes a password run and an AK/SK run of its own first, so it stands alone too."""
    d = airflow_deployment
    own = {}
    for dag in ("ges_gate_deferrable", "ges_gate_aksk"):
        graph = f"secrets_{dag}"
        new_graph(d, graph)
        own[dag] = d.trigger(dag, conf={"graph_name": graph})
        d.emulator.set_backup_status(backing_up(d, graph), "success")
    for dag, run_id in own.items():
        assert d.wait_run(dag, run_id, timeout=90) == "success", dag

    emu = d.emulator
    tokens = emu.issued_tokens()
    assert tokens, "no token was issued: the password runs did not reach the emulator"
    secrets = {"password": emu.password, "secret key": emu.sk}
    secrets.update({f"token #{i} ({t[:12]}...)": t for i, t in enumerate(tokens)})
    # the masker would hide these, but a token is also caught by a fragment of it
    fragments = {f"token #{i} fragment": t[len(t) // 2 : len(t) // 2 + 40] for i, t in enumerate(tokens)}
    files = d.written_files()
    task_logs = [f for f in files if "dag_id=" in str(f)]
    assert task_logs, files
    leaks = []
    total = 0
    for path in files:
        data = path.read_bytes()
        total += len(data)
        for what, secret in {**secrets, **fragments}.items():
            if secret and secret.encode() in data:
                leaks.append(f"{what} in {path}")
    assert not leaks, leaks
    FIGURES["secrets"] = {"files": len(files), "bytes": total, "tokens": len(tokens)}
    say(
        request,
        f"secrets: {len(files)} files ({total} bytes, {len(task_logs)} task/trigger logs) free of the "
        f"password, the SK and {len(tokens)} token(s); start-up: "
        f"{ {k: round(v, 1) for k, v in d.timings.items()} }",
    )
