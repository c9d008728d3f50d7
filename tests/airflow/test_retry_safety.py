"""Safe to retry, through real Airflow runs (``dag.test()``, ``retries=1``) against the emulator with
a reply lost after GES acted: every try reads what GES shows, and no step that changes something
is sent twice (docs/lifecycle.md, "Safe to retry")."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_ges.emulator import GesEmulator
from tests.airflow.test_e2e import airflow_db, load_dag, run  # noqa: F401 (airflow_db: a fixture)
from tests.airflow.test_lifecycle_e2e import WAITS, restore_dag, tune

NOW = datetime.now(timezone.utc).replace(microsecond=0)
FAST = {"graphs": 0, "backups": 0, "backup_duration": 0.5, "graph_action_duration": 0.5}
RETRY = {"retries": 1, "retry_delay": timedelta(seconds=0)}


@pytest.fixture
def movies(ges_connection: GesEmulator, airflow_db: None) -> tuple[GesEmulator, dict[str, Any]]:  # noqa: F811
    graph = ges_connection.add_graph("movies")
    ges_connection.add_backup("movies", status="success", start=NOW - timedelta(days=1))
    return ges_connection, graph


def manual_backups(emu: GesEmulator) -> list[dict[str, Any]]:
    return [b for b in emu.backups() if b["backupMethod"] == "manual" and b["startTimestamp"] > 0]


def tries(dag_run: Any, task_id: str) -> int:
    return next(ti.try_number for ti in dag_run.get_task_instances() if ti.task_id == task_id)


# --- create --------------------------------------------------------------------------------------


@pytest.mark.ges_emulator(graphs=0, backups=0, backup_duration=0.0, graph_action_duration=0.3)
@pytest.mark.parametrize("wait", WAITS)
@pytest.mark.parametrize("fault", ["504", "drop"])
def test_a_lost_create_reply_is_followed_by_a_read_not_a_second_create(
    movies: tuple[GesEmulator, dict[str, Any]], wait: str, fault: str
) -> None:
    emu, graph = movies
    before = {b["id"] for b in emu.backups()}
    emu.set_faults(f"{fault}:scope=create:after=1:count=1")  # the backup ends before the reply is read
    dag = tune(load_dag("example_ges_backup_then_etl"), "backup_graph", deferrable=WAITS[wait], **RETRY)

    dag_run, states, xcoms = run(dag)

    assert states == {"backup_graph": "success", "run_etl": "success"}
    assert tries(dag_run, "backup_graph") == 1
    assert emu.counters["replies_lost"] == 1
    assert emu.counters["create_backup"] == 1  # read after the lost reply, never sent again
    made = [b for b in emu.backups(graph["id"]) if b["id"] not in before]
    assert len(made) == 1 and xcoms["backup_graph"]["id"] == made[0]["id"]


@pytest.mark.ges_emulator(graphs=0, backups=0, backup_duration=1.5, graph_action_duration=0.3)
@pytest.mark.parametrize("wait", WAITS)
def test_a_retry_after_a_timeout_adopts_the_backup_its_first_try_started(
    movies: tuple[GesEmulator, dict[str, Any]], wait: str
) -> None:
    emu, graph = movies
    before = {b["id"] for b in emu.backups()}
    dag = tune(
        load_dag("example_ges_backup_then_etl"),
        "backup_graph",
        deferrable=WAITS[wait],
        timeout=0.5,
        retries=1,
        retry_delay=timedelta(seconds=1.5),  # the backup finishes before the retry
    )

    dag_run, states, xcoms = run(dag)

    assert states == {"backup_graph": "success", "run_etl": "success"}
    assert tries(dag_run, "backup_graph") == 2
    assert emu.counters["create_backup"] == 1
    made = [b for b in emu.backups(graph["id"]) if b["id"] not in before]
    assert [b["id"] for b in made] == [xcoms["backup_graph"]["id"]]
    assert made[0]["status"] == "success"


@pytest.mark.ges_emulator(**FAST)
@pytest.mark.parametrize("wait", WAITS)
@pytest.mark.parametrize("end", ["failed", "deleted"])
def test_an_attached_backup_that_fails_or_goes_fails_the_task_in_both_paths(
    movies: tuple[GesEmulator, dict[str, Any]], wait: str, end: str
) -> None:
    emu, _graph = movies
    running = emu.add_backup("movies", status="backing_up", start=NOW)

    def finish() -> None:
        deadline = time.monotonic() + 20
        while emu.counters["list_graph_backups"] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        if end == "failed":
            emu.set_backup_status(running["id"], "failed")
        else:
            emu.remove_backup(running["id"])
        # a later backup that succeeds must not be taken for the attached one
        emu.add_backup("movies", status="success", start=datetime.now(timezone.utc))

    thread = threading.Thread(target=finish, daemon=True)
    thread.start()
    dag = tune(load_dag("example_ges_backup_then_etl"), "backup_graph", deferrable=WAITS[wait], timeout=20)

    _dag_run, states, _ = run(dag)
    thread.join()

    assert states == {"backup_graph": "failed", "run_etl": "upstream_failed"}
    assert emu.counters["create_backup"] == 0


@pytest.mark.ges_emulator(**FAST, job_pending=0.6, job_wait_state="waiting")
def test_a_waiting_job_is_waited_for(movies: tuple[GesEmulator, dict[str, Any]]) -> None:
    _emu, graph = movies
    dag = tune(load_dag("example_ges_backup_then_etl"), "backup_graph", deferrable=False)

    _dag_run, states, xcoms = run(dag)

    assert states == {"backup_graph": "success", "run_etl": "success"}
    assert xcoms["backup_graph"]["graphId"] == graph["id"]


# --- restore -------------------------------------------------------------------------------------


def restore(emu: GesEmulator, graph: dict[str, Any], wait: str, **attrs: Any) -> tuple[Any, dict[str, Any]]:
    good = emu.backups(graph["id"])[0]
    dag = restore_dag(deferrable=WAITS[wait], **attrs)
    dag_run, states, _ = run(dag, run_conf={"backup_id": good["id"]})
    return dag_run, {"states": states, "good": good["id"]}


@pytest.mark.ges_emulator(**FAST)
@pytest.mark.parametrize("wait", WAITS)
@pytest.mark.parametrize("call", ["stop", "start"])
def test_a_lost_stop_or_start_reply_restores_once(
    movies: tuple[GesEmulator, dict[str, Any]], wait: str, call: str
) -> None:
    emu, graph = movies
    emu.set_faults(f"504:scope={call}:after=1:count=1")

    dag_run, seen = restore(emu, graph, wait, **RETRY)

    assert seen["states"] == {"restore_graph": "success"}
    assert tries(dag_run, "restore_graph") == 1  # read what GES shows and went on
    assert emu.counters["replies_lost"] == 1
    assert emu.job_names("movies") == ["StopGraph", "StartGraph"]
    assert emu.restores == [(graph["id"], seen["good"])]
    assert str(emu.graph(graph["id"])["status"]) == "200"


@pytest.mark.ges_emulator(graphs=0, backups=0, backup_duration=0.5, graph_action_duration=2.5)
@pytest.mark.parametrize("wait", WAITS)
def test_retries_after_timeouts_find_the_runs_stop_and_start_jobs(
    movies: tuple[GesEmulator, dict[str, Any]], wait: str
) -> None:
    emu, graph = movies

    dag_run, seen = restore(emu, graph, wait, timeout=2.0, retries=2, retry_delay=timedelta(seconds=0))

    assert seen["states"] == {"restore_graph": "success"}
    assert tries(dag_run, "restore_graph") == 3  # the stop, then the start, outlived a try's timeout
    assert emu.job_names("movies") == ["StopGraph", "StartGraph"]
    assert emu.restores == [(graph["id"], seen["good"])]


@pytest.mark.ges_emulator(**FAST)
@pytest.mark.parametrize("wait", WAITS)
def test_a_backup_deleted_while_the_graph_stops_rolls_the_graph_back(
    movies: tuple[GesEmulator, dict[str, Any]], wait: str
) -> None:
    emu, graph = movies
    good = emu.backups(graph["id"])[0]["id"]

    def prune_meanwhile() -> None:
        deadline = time.monotonic() + 20
        while str(emu.graph(graph["id"])["status"]) != "901" and time.monotonic() < deadline:
            time.sleep(0.02)
        emu.remove_backup(good)

    thread = threading.Thread(target=prune_meanwhile, daemon=True)
    thread.start()
    dag_run, seen = restore(emu, graph, wait, **RETRY)
    thread.join()

    assert seen["states"] == {"restore_graph": "failed"}
    assert tries(dag_run, "restore_graph") == 1  # no retry into a second stop
    assert emu.job_names("movies") == ["StopGraph", "StartGraph"]  # the start: without the backup
    assert emu.restores == []
    assert str(emu.graph(graph["id"])["status"]) == "200"  # running again, its data as before


@pytest.mark.ges_emulator(**FAST)
def test_a_resized_graph_is_waited_for(movies: tuple[GesEmulator, dict[str, Any]]) -> None:
    emu, graph = movies
    emu.set_graph_status("movies", "206", then="200", after=1.0)

    _dag_run, seen = restore(emu, graph, "sync")

    assert seen["states"] == {"restore_graph": "success"}
    assert emu.restores == [(graph["id"], seen["good"])]


# --- delete and prune ----------------------------------------------------------------------------


def prune_dag(**attrs: Any) -> Any:
    """The prune example (its preview a dry run), the prune's rule replaced by ``attrs``, retried once."""
    dag = load_dag("example_ges_prune_backups")
    for task_id in ("preview_prune", "prune"):
        for name, value in {**RETRY, **attrs}.items():
            setattr(dag.get_task(task_id), name, value)
    return dag


@pytest.mark.ges_emulator(**FAST)
def test_a_delete_whose_reply_was_lost_counts_as_deleted(movies: tuple[GesEmulator, dict[str, Any]]) -> None:
    emu, _graph = movies
    old = [emu.add_backup("movies", status="success", start=NOW - timedelta(days=n)) for n in (5, 6)]
    emu.set_faults("drop:scope=delete:after=1:count=1")
    delete = tune(load_dag("example_ges_delete_backup"), "delete_backup", missing_ok=False, **RETRY)
    del delete.get_task("delete_backup").poll_interval, delete.get_task("delete_backup").timeout
    _run, states, xcoms = run(delete, run_conf={"backup_id": old[0]["id"]})
    assert states == {"delete_backup": "success"}  # missing_ok=False, yet gone after its DELETE: deleted
    assert xcoms["delete_backup"]["id"] == old[0]["id"]

    emu.set_faults("drop:scope=delete:after=1:count=1")
    _run, states, xcoms = run(prune_dag(keep_last=1, older_than=None))
    assert states == {"preview_prune": "success", "prune": "success"}
    assert [b["id"] for b in xcoms["prune"]] == [old[1]["id"]]
    assert emu.counters["replies_lost"] == 2
    assert {b["id"] for b in emu.backups()}.isdisjoint(b["id"] for b in old)


@pytest.mark.ges_emulator(**FAST)
def test_prune_refuses_an_empty_backup_method(movies: tuple[GesEmulator, dict[str, Any]]) -> None:
    from airflow_provider_ges.operators.ges import GesPruneBackupsOperator

    emu, _graph = movies
    for n in (2, 3, 4):
        emu.add_backup("movies", status="success", method="auto", start=NOW - timedelta(days=n))
    with pytest.raises(ValueError, match="backup_method is ''"):
        GesPruneBackupsOperator(task_id="p", graph_name="movies", keep_last=0, backup_method="")

    _run, states, _ = run(
        prune_dag(keep_last=0, older_than=None, backup_method="{{ params.get('method', '') }}")
    )

    assert states == {"preview_prune": "failed", "prune": "upstream_failed"}
    assert emu.counters["delete_backup"] == 0
    assert len([b for b in emu.backups() if b["backupMethod"] == "auto"]) == 3
