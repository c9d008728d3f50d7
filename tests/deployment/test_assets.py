"""``example_ges_backup_asset`` in a real deployment (tests/deployment/stack.py): an asset watcher in the
triggerer, asset-triggered runs from the scheduler. ``dag.test()`` does not run watchers.

The tests run in order on one deployment and one graph (``movies``), each building on the last:
the watcher starts (pre-existing successes start nothing), new successes start one run each, a
backup still ``backing_up`` starts nothing until it succeeds, and the triggerer is SIGKILLed and
restarted while a backup succeeds. The watcher polls every second (``GES_EXAMPLE_POLL_INTERVAL``);
it is the only thing polling the emulator, so its listing counter counts the watcher's polls.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_ges._compat import AIRFLOW_VERSION, HAS_ASSET_STATE_STORE
from airflow_provider_ges.triggers.ges import GesBackupEventTrigger
from tests.deployment.stack import Deployment, wait_for

# Asset-triggered runs need the scheduler to create runs (the fixture turns that off by default).
DEPLOYMENT_CONFIG = {"SCHEDULER__USE_JOB_SCHEDULE": "True"}
DAG_ID = "example_ges_backup_asset"
TASK = "run_etl"
GRAPH = "movies"
POLL = 1.0
#: After a fire, the watermark is stored this much later; and some polls to be sure nothing repeats.
SETTLE = GesBackupEventTrigger.commit_delay + 4 * POLL

#: Counts observed, printed at the end of the module.
OBSERVED: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def _example_settings() -> Iterator[None]:
    """The example DAG's graph and poll interval, in the environment the deployment passes on
    (autouse: set before the module's deployment starts)."""
    saved = {k: os.environ.get(k) for k in ("GES_EXAMPLE_GRAPH", "GES_EXAMPLE_POLL_INTERVAL")}
    os.environ.update({"GES_EXAMPLE_GRAPH": GRAPH, "GES_EXAMPLE_POLL_INTERVAL": str(POLL)})
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def report(request: pytest.FixtureRequest) -> None:
    """The counts observed, on the terminal even while pytest captures output (for the CI log)."""
    line = f"asset watcher (Airflow {AIRFLOW_VERSION}) observed: {OBSERVED}"
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        print(line, file=sys.stderr)
        return
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write_line(line)


def listings(d: Deployment) -> int:
    return d.emulator.counters["list_graph_backups"]


def wait_polls(d: Deployment, n: int, timeout: float = 90.0) -> None:
    since = listings(d)
    wait_for(f"{n} polls of the watcher after {since}", lambda: listings(d) >= since + n, timeout, 0.2)


def runs(d: Deployment) -> list[dict[str, Any]]:
    return sorted(d.runs(DAG_ID), key=lambda r: (r["run_after"], r["dag_run_id"]))


def wait_runs(d: Deployment, count: int, timeout: float = 90.0) -> list[dict[str, Any]]:
    """Wait for ``count`` runs, all finished; fail at once if there are more."""

    def ready() -> list[dict[str, Any]] | None:
        d.check_alive()
        found = runs(d)
        assert len(found) <= count, f"{len(found)} runs, expected {count}: {found}"
        if len(found) == count and all(r["state"] in ("success", "failed") for r in found):
            return found
        return None

    return wait_for(f"{count} finished runs of {DAG_ID}", ready, timeout, 0.5)


def run_backup_ids(d: Deployment, run: dict[str, Any]) -> list[str]:
    """The backups a run's ETL task saw (its XCom), after checking it succeeded."""
    assert run["state"] == "success", (run, d.task_log(DAG_ID, run["dag_run_id"], TASK))
    assert run["run_type"] == "asset_triggered", run
    value = d.xcom(DAG_ID, run["dag_run_id"], TASK)
    return list(value["backup_ids"])


def success(d: Deployment, **kwargs: Any) -> str:
    return str(d.emulator.add_backup(GRAPH, status="success", **kwargs)["id"])


@pytest.fixture(scope="module")
def watching(airflow_deployment: Deployment) -> dict[str, Any]:
    """Two successes (and a failure) exist; then the DAG is unpaused and its watcher starts."""
    d = airflow_deployment
    state = {"old": [success(d), success(d)], "fired": []}
    d.emulator.add_backup(GRAPH, status="failed")
    d.unpause(DAG_ID)
    # The watcher registers when the file is parsed unpaused (re-parsed at most every 30 s).
    wait_for("the watcher's first poll", lambda: listings(d) > 0, 120, 0.5)
    state["started"] = time.monotonic()
    return state


def test_pre_existing_successes_start_no_run(
    airflow_deployment: Deployment, watching: dict[str, Any]
) -> None:
    d = airflow_deployment
    wait_polls(d, 6)
    assert runs(d) == []
    OBSERVED["runs for 2 pre-existing successes"] = 0


def test_a_new_success_starts_exactly_one_run_that_sees_it(
    airflow_deployment: Deployment, watching: dict[str, Any]
) -> None:
    d = airflow_deployment
    new = success(d)
    t0 = time.monotonic()
    (run,) = wait_runs(d, 1)
    latency = time.monotonic() - t0
    assert run_backup_ids(d, run) == [new]
    log = d.task_log(DAG_ID, run["dag_run_id"], TASK)
    assert f"(id {new}" in log and "ETL reads graph 'movies'" in log, log
    time.sleep(SETTLE)
    wait_polls(d, 3)
    assert len(runs(d)) == 1
    watching["fired"].append(new)
    OBSERVED["runs for 1 new success"] = 1
    OBSERVED["backup success -> run finished (s)"] = round(latency, 1)


def test_a_backing_up_backup_starts_nothing_until_it_succeeds(
    airflow_deployment: Deployment, watching: dict[str, Any]
) -> None:
    d = airflow_deployment
    before = len(runs(d))
    running = str(d.emulator.add_backup(GRAPH, status="backing_up")["id"])
    wait_polls(d, 5)
    assert len(runs(d)) == before
    d.emulator.set_backup_status(running, "success")
    found = wait_runs(d, before + 1)
    assert run_backup_ids(d, found[-1]) == [running]
    time.sleep(SETTLE)
    wait_polls(d, 3)
    assert len(runs(d)) == before + 1
    watching["fired"].append(running)
    OBSERVED["runs while backing_up"] = 0
    OBSERVED["runs once it succeeded"] = 1


def test_triggerer_sigkilled_and_restarted_while_a_backup_succeeds(
    airflow_deployment: Deployment, watching: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    """On Airflow >= 3.3 the watermark is in the asset state store: the backup that succeeded while
    the triggerer was down starts exactly one run after the restart, and no earlier backup starts
    another. On 3.1/3.2 (memory only) the restarted watcher's first poll is a new baseline: that
    backup starts no run (documented), no earlier one repeats, and the next new one runs once."""
    d = airflow_deployment
    before = runs(d)
    time.sleep(GesBackupEventTrigger.commit_delay + 2 * POLL)  # the last report is stored
    d.kill_triggerer(signal.SIGKILL)
    killed_at = listings(d)
    during = success(d)
    time.sleep(3)
    assert listings(d) == killed_at, "a poll with no triggerer running"
    assert len(runs(d)) == len(before)
    d.start_triggerer()
    wait_for("the restarted watcher's first poll", lambda: listings(d) > killed_at, 120, 0.5)
    if HAS_ASSET_STATE_STORE:
        found = wait_runs(d, len(before) + 1)
        assert run_backup_ids(d, found[-1]) == [during]
        time.sleep(SETTLE)
        wait_polls(d, 3)
        found = runs(d)
        assert len(found) == len(before) + 1
        OBSERVED["runs for the backup that succeeded while the triggerer was down"] = 1
    else:
        time.sleep(SETTLE)
        wait_polls(d, 3)
        assert len(runs(d)) == len(before)  # the new baseline took it
        after = success(d)
        found = wait_runs(d, len(before) + 1)
        assert run_backup_ids(d, found[-1]) == [after]
        OBSERVED["runs for the backup that succeeded while the triggerer was down (memory only)"] = 0
    seen = [i for run in found for i in run_backup_ids(d, run)]
    assert len(seen) == len(set(seen)), f"a backup ran twice: {seen}"
    assert not set(seen) & set(watching["old"]), "a pre-existing success started a run"
    OBSERVED["runs in all"] = len(found)
    report(request)
