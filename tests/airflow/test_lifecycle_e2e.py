"""The backup lifecycle through real Airflow runs (``dag.test()``, SQLite) against the emulator:
create (both wait modes, attach, failed job), prune (dry run and not), restore (good and refused
backups), and the job sensor."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_ges.emulator import GesEmulator
from airflow_provider_ges.hooks.ges import GesHook
from tests.airflow.test_e2e import airflow_db, flip_after_polls, load_dag, only, run  # noqa: F401 (airflow_db: a fixture)

WAITS = {"sync": False, "deferrable": True}
FAST = {"graphs": 0, "backups": 0, "backup_duration": 0.5, "graph_action_duration": 0.3}
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def xcom(dag: Any, dag_run: Any, task_id: str, key: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dag.dag_id, run_id=dag_run.run_id, task_id=task_id, key=key)
            .one_or_none()
        )
        return None if row is None else row.value


def restored_from(graph: dict[str, Any]) -> Any:
    """The emulator's record of the backup a graph was started from (v1 or v2 spelling)."""
    return graph.get("restoredBackupId", graph.get("restored_backup_id"))


def tune(dag: Any, task_id: str, **attrs: Any) -> Any:
    task = dag.get_task(task_id)
    for name, value in {"poll_interval": 0.2, "timeout": 30.0, **attrs}.items():
        setattr(task, name, value)
    return dag


def restore_dag(**changes: Any) -> Any:
    """The restore example's restore task alone (dag.test() cannot answer its approval), tuned."""
    return tune(only(load_dag("example_ges_restore_graph"), "restore_graph"), "restore_graph", **changes)


@pytest.fixture
def movies(ges_connection: GesEmulator, airflow_db: None) -> tuple[GesEmulator, dict[str, Any]]:  # noqa: F811
    graph = ges_connection.add_graph("movies")
    ges_connection.add_graph("other_graph")
    ges_connection.add_backup("movies", status="success", start=NOW - timedelta(days=1))
    return ges_connection, graph


# --- create ----------------------------------------------------------------------------------


@pytest.mark.ges_emulator(**FAST)
@pytest.mark.parametrize("wait", WAITS)
def test_backup_then_etl_waits_for_the_new_backup(
    movies: tuple[GesEmulator, dict[str, Any]], wait: str
) -> None:
    emu, graph = movies
    before = {b["id"] for b in emu.backups()}
    dag = tune(load_dag("example_ges_backup_then_etl"), "backup_graph", deferrable=WAITS[wait])

    dag_run, states, xcoms = run(dag)

    assert states == {"backup_graph": "success", "run_etl": "success"}
    new = xcoms["backup_graph"]
    assert new["id"] not in before
    assert new["status"] == "success" and new["backupMethod"] == "manual"
    assert new["graphId"] == graph["id"] and new["graph_name"] == "movies"
    assert xcoms["run_etl"] == new["id"]
    job_id = xcom(dag, dag_run, "backup_graph", "job_id")
    assert emu.job(graph["id"], job_id)["status"] == "success"
    assert emu.counters["create_backup"] == 1


@pytest.mark.ges_emulator(**FAST)
@pytest.mark.parametrize("wait", WAITS)
def test_a_running_backup_is_attached_to_not_doubled(
    movies: tuple[GesEmulator, dict[str, Any]], wait: str
) -> None:
    emu, _graph = movies
    running = emu.add_backup("movies", status="backing_up", start=NOW)
    emu.reset_counters()
    flipper = flip_after_polls(emu, running["id"], "success", polls=3)  # ends mid-wait
    dag = tune(load_dag("example_ges_backup_then_etl"), "backup_graph", deferrable=WAITS[wait])

    dag_run, states, xcoms = run(dag)
    flipper.join()

    assert states == {"backup_graph": "success", "run_etl": "success"}
    assert xcoms["backup_graph"]["id"] == running["id"]
    assert xcoms["backup_graph"]["status"] == "success"
    assert emu.counters["create_backup"] == 0
    assert xcom(dag, dag_run, "backup_graph", "backup_id") == running["id"]


@pytest.mark.ges_emulator(**FAST)
@pytest.mark.parametrize("wait", WAITS)
def test_a_failed_backup_job_fails_the_task_and_skips_the_etl(
    movies: tuple[GesEmulator, dict[str, Any]], wait: str
) -> None:
    emu, _graph = movies
    emu.fail_next_job(reason="disk full")
    dag = tune(load_dag("example_ges_backup_then_etl"), "backup_graph", deferrable=WAITS[wait], retries=3)

    dag_run, states, _ = run(dag)

    assert states == {"backup_graph": "failed", "run_etl": "upstream_failed"}
    assert dag_run.state == "failed"
    assert emu.counters["create_backup"] == 1  # AirflowFailException: no retries


# --- prune -----------------------------------------------------------------------------------


def retention_graph(emu: GesEmulator) -> dict[str, set[str]]:
    """A graph holding manual, auto, running and failed backups of every age; which ones the
    example's rule (keep the newest 4 manual successes, only older than 4 weeks go) deletes."""
    day = timedelta(days=1)
    add = emu.add_backup
    keep = {b["id"] for b in emu.backups()}  # the fixture's manual success, a day old: newest 4
    go: set[str] = set()
    keep |= {add("movies", status="success", start=NOW - n * day)["id"] for n in (2, 3, 4)}
    keep.add(add("movies", status="success", start=NOW - 10 * day)["id"])  # 5th, but not old
    go |= {add("movies", status="success", start=NOW - n * day)["id"] for n in (30, 40)}
    go.add(add("movies", status="failed", start=NOW - 35 * day)["id"])
    keep.add(add("movies", status="failed", start=NOW - 2 * day)["id"])  # failed but young
    keep.add(add("movies", status="success", method="auto", start=NOW - 50 * day)["id"])
    keep.add(add("movies", status="backing_up", start=NOW - 60 * day)["id"])  # running: never
    keep.add(add("other_graph", status="success", start=NOW - 90 * day)["id"])  # another graph
    return {"keep": keep, "go": go}


@pytest.mark.ges_emulator(**FAST)
def test_prune_dry_run_then_prune(movies: tuple[GesEmulator, dict[str, Any]]) -> None:
    emu, _graph = movies
    expected = retention_graph(emu)
    emu.reset_counters()

    _dag_run, states, xcoms = run(load_dag("example_ges_prune_backups"))

    assert states == {"preview_prune": "success", "prune": "success"}
    assert {b["id"] for b in xcoms["preview_prune"]} == expected["go"]
    assert [b["id"] for b in xcoms["prune"]] == [b["id"] for b in xcoms["preview_prune"]]
    left = {b["id"] for b in emu.backups()}
    assert left == expected["keep"]
    assert emu.counters["delete_backup"] == len(expected["go"])


@pytest.mark.ges_emulator(**FAST)
def test_prune_dry_run_only_deletes_nothing(movies: tuple[GesEmulator, dict[str, Any]]) -> None:
    emu, _graph = movies
    expected = retention_graph(emu)
    everything = {b["id"] for b in emu.backups()}
    dag = load_dag("example_ges_prune_backups")
    dag.get_task("prune").only_report = True

    _dag_run, states, xcoms = run(dag)

    assert states == {"preview_prune": "success", "prune": "success"}
    assert {b["id"] for b in xcoms["prune"]} == expected["go"]
    assert {b["id"] for b in emu.backups()} == everything
    assert emu.counters["delete_backup"] == 0


@pytest.mark.ges_emulator(**FAST)
def test_prune_never_takes_the_newest_successful_backup(movies: tuple[GesEmulator, dict[str, Any]]) -> None:
    emu, _graph = movies
    newest = emu.backups()[0]["id"]
    emu.add_backup("movies", status="failed", start=NOW - timedelta(hours=1))
    dag = load_dag("example_ges_prune_backups")
    for task_id in ("preview_prune", "prune"):
        tune(dag, task_id, keep_last=0, older_than=NOW.isoformat())
        del dag.get_task(task_id).poll_interval, dag.get_task(task_id).timeout

    _dag_run, states, xcoms = run(dag)

    assert states["prune"] == "success"
    assert newest not in {b["id"] for b in xcoms["prune"]}
    assert newest in {b["id"] for b in emu.backups()}
    assert len(xcoms["prune"]) == 1  # the failed one


# --- restore ---------------------------------------------------------------------------------


@pytest.mark.ges_emulator(**FAST)
@pytest.mark.parametrize("wait", WAITS)
def test_restore_from_a_good_backup(movies: tuple[GesEmulator, dict[str, Any]], wait: str) -> None:
    emu, graph = movies
    good = emu.backups(graph["id"])[0]
    dag = restore_dag(deferrable=WAITS[wait])

    dag_run, states, xcoms = run(dag, run_conf={"backup_id": good["id"]})

    assert states == {"restore_graph": "success"}
    assert emu.restores == [(graph["id"], good["id"])]
    shown = emu.find_graph(graph["id"])
    assert shown is not None and str(shown["status"]) == "200"
    assert restored_from(shown) == good["id"]
    assert xcoms["restore_graph"]["id"] == graph["id"]
    assert restored_from(xcoms["restore_graph"]) == good["id"]
    assert emu.job(graph["id"], xcom(dag, dag_run, "restore_graph", "stop_job_id"))["jobName"] == "StopGraph"
    assert emu.job(graph["id"], xcom(dag, dag_run, "restore_graph", "job_id"))["status"] == "success"


@pytest.mark.ges_emulator(**FAST)
def test_restore_starts_a_stopped_graph_from_the_backup(movies: tuple[GesEmulator, dict[str, Any]]) -> None:
    emu, graph = movies
    good = emu.backups(graph["id"])[0]
    hook = GesHook(retry_base_delay=0.001)
    hook.stop_graph(graph["id"])
    dag = restore_dag(deferrable=False)

    _dag_run, states, _ = run(dag, run_conf={"backup_id": good["id"]})  # waits out 901 (stopping)

    assert states == {"restore_graph": "success"}
    assert emu.restores == [(graph["id"], good["id"])]
    assert str(hook.get_graph(graph["id"]).status) == "200"


@pytest.mark.ges_emulator(**FAST)
@pytest.mark.parametrize("bad", ["failed", "running", "other graph", "unknown", "empty"])
def test_restore_refuses_a_bad_backup_and_leaves_the_graph_running(
    movies: tuple[GesEmulator, dict[str, Any]], bad: str
) -> None:
    emu, graph = movies
    backup_id = {
        "failed": lambda: emu.add_backup("movies", status="failed")["id"],
        "running": lambda: emu.add_backup("movies", status="backing_up")["id"],
        "other graph": lambda: emu.add_backup("other_graph", status="success")["id"],
        "unknown": lambda: "no-such-backup",
        "empty": lambda: "",
    }[bad]()
    if bad == "running":
        emu.set_backup_status_later(backup_id, "success", 30)  # still running during the run
    emu.reset_counters()
    dag = restore_dag(retries=2)

    _dag_run, states, _ = run(dag, run_conf={"backup_id": backup_id})

    assert states == {"restore_graph": "failed"}
    assert emu.restores == []
    assert emu.counters["graph_action"] == 0  # never stopped
    shown = emu.find_graph(graph["id"])
    assert shown is not None and str(shown["status"]) in ("200", "903")
    assert "restoredBackupId" not in shown


# --- job sensor ------------------------------------------------------------------------------

SENSOR_MODES = {
    "poke": {"mode": "poke", "deferrable": False},
    "reschedule": {"mode": "reschedule", "deferrable": False},
    "deferrable": {"mode": "poke", "deferrable": True},
}


@pytest.mark.ges_emulator(**FAST)
@pytest.mark.parametrize("mode", SENSOR_MODES)
@pytest.mark.parametrize("outcome", ["success", "failed"])
def test_job_sensor(movies: tuple[GesEmulator, dict[str, Any]], mode: str, outcome: str) -> None:
    emu, graph = movies
    if outcome == "failed":
        emu.fail_next_job(reason="disk full")
    emu.backup_duration = 1.0
    job_id = GesHook(retry_base_delay=0.001).create_backup(graph["id"])

    dag = load_dag("example_ges_wait_for_job")
    sensor = dag.get_task("wait_for_job")
    for name, value in {**SENSOR_MODES[mode], "poke_interval": 0.2, "timeout": 30}.items():
        setattr(sensor, name, value)

    _dag_run, states, xcoms = run(dag, run_conf={"job_id": job_id})

    if outcome == "success":
        assert states == {"wait_for_job": "success", "report": "success"}
        assert xcoms["wait_for_job"]["jobId"] == job_id
        assert xcoms["wait_for_job"]["status"] == "success"
        assert xcoms["report"] == "success"
    else:
        assert states == {"wait_for_job": "failed", "report": "upstream_failed"}
