"""The example DAGs run in real Airflow (``dag.test()``, SQLite) against the emulator.

The gating DAG is run with its sensor in poke, reschedule and deferrable modes while the emulator
flips tonight's backup mid-wait; the downstream ETL task must see that backup through XCom.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_ges._compat import dag_bag
from airflow_provider_ges.emulator import GesEmulator
from airflow_provider_ges.triggers.ges import GesBackupTrigger
from tests.conftest import EXAMPLE_DAGS

MODES = {
    "poke": {"mode": "poke", "deferrable": False},
    "reschedule": {"mode": "reschedule", "deferrable": False},
    "deferrable": {"mode": "poke", "deferrable": True},
}


@pytest.fixture(scope="session")
def airflow_db() -> None:
    from airflow.utils.db import initdb

    initdb()


def load_dag(dag_id: str) -> Any:
    bag = dag_bag(str(EXAMPLE_DAGS))
    assert not bag.import_errors
    return bag.get_dag(dag_id)


def run(dag: Any, **kwargs: Any) -> tuple[Any, dict[str, str], dict[str, Any]]:
    """Run a DAG in-process; return the run, task states and return values."""
    from airflow.models.xcom import XComModel
    from airflow.providers.standard.operators.hitl import HITLOperator
    from airflow.utils.session import create_session

    asks = [t.task_id for t in dag.tasks if isinstance(t, HITLOperator)]
    assert not asks, f"dag.test() would wait for a person forever ({asks}): run only(dag, task_id)"
    dag_run = dag.test(**kwargs)
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    with create_session() as session:
        rows = session.query(XComModel).filter_by(
            dag_id=dag.dag_id, run_id=dag_run.run_id, key="return_value"
        )
        xcoms = {row.task_id: row.value for row in rows}
    return dag_run, states, xcoms


def only(dag: Any, task_id: str) -> Any:
    """The DAG with just ``task_id`` (none of its upstream tasks): e.g. the restore of
    ``example_ges_restore_graph`` without the approval, which ``dag.test()`` cannot give."""
    return dag.partial_subset(task_ids=[task_id], include_upstream=False)


def flip_after_polls(emu: GesEmulator, backup_id: str, status: str, polls: int) -> threading.Thread:
    """Change a backup's status once the sensor has looked ``polls`` times: a flip mid-wait."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        while emu.counters["list_graph_backups"] < polls and time.monotonic() < deadline:
            time.sleep(0.05)
        emu.set_backup_status(backup_id, status)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def night(ges_connection: GesEmulator, airflow_db: None) -> Iterator[tuple[GesEmulator, datetime]]:
    """An emulator with graph 'movies' and an old successful backup, and the run's logical date."""
    logical_date = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    ges_connection.add_graph("movies")
    ges_connection.add_backup("movies", status="success", start=logical_date - timedelta(hours=2))
    yield ges_connection, logical_date


def gate_dag(mode: str, **sensor_args: Any) -> Any:
    dag = load_dag("example_ges_backup_gate")
    sensor = dag.get_task("wait_for_backup")
    for name, value in {**MODES[mode], "poke_interval": 0.5, "timeout": 60, **sensor_args}.items():
        setattr(sensor, name, value)
    return dag


@pytest.mark.ges_emulator(graphs=0, backups=0)
@pytest.mark.parametrize("mode", MODES)
def test_gate_waits_for_tonights_backup_then_runs_etl(
    night: tuple[GesEmulator, datetime], mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu, logical_date = night
    trigger_runs: list[GesBackupTrigger] = []
    real_run = GesBackupTrigger.run

    def counted_run(self: GesBackupTrigger) -> Any:
        trigger_runs.append(self)
        return real_run(self)

    monkeypatch.setattr(GesBackupTrigger, "run", counted_run)
    tonight = emu.add_backup("movies", status="backing_up", start=logical_date + timedelta(minutes=30))
    flipper = flip_after_polls(emu, tonight["id"], "success", polls=3)

    dag_run, states, xcoms = run(gate_dag(mode), logical_date=logical_date)
    flipper.join()

    assert states == {"wait_for_backup": "success", "run_etl": "success"}
    assert dag_run.state == "success"
    assert xcoms["wait_for_backup"]["id"] == tonight["id"]
    assert xcoms["wait_for_backup"]["status"] == "success"
    assert xcoms["wait_for_backup"]["graph_name"] == "movies"
    assert xcoms["run_etl"] == tonight["id"]
    assert emu.counters["list_graph_backups"] >= 3  # it waited through the flip
    # graph_name was turned into the graph's id once per try (deferrable: the trigger got the id;
    # reschedule: at most once a look), then each look read that graph's listing only
    most = emu.counters["list_graph_backups"] if mode == "reschedule" else 1
    assert 1 <= emu.counters["list_graphs"] <= most
    assert emu.counters["list_backups"] == 0
    assert emu.counters["tokens_issued"] == 1
    assert len(trigger_runs) == (1 if mode == "deferrable" else 0)  # deferred once, to the triggerer


@pytest.mark.ges_emulator(graphs=0, backups=0)
@pytest.mark.parametrize("mode", MODES)
def test_failed_backup_fails_the_gate_fast(night: tuple[GesEmulator, datetime], mode: str) -> None:
    emu, logical_date = night
    tonight = emu.add_backup("movies", status="backing_up", start=logical_date + timedelta(minutes=30))
    flip_after_polls(emu, tonight["id"], "failed", polls=2)

    started = time.monotonic()
    dag_run, states, _ = run(gate_dag(mode), logical_date=logical_date)

    assert states == {"wait_for_backup": "failed", "run_etl": "upstream_failed"}
    assert dag_run.state == "failed"
    assert time.monotonic() - started < 30  # not the 60 s timeout
    assert emu.counters["list_graph_backups"] <= 4  # failed on the first look after the flip


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_soft_fail_skips_the_gate_and_the_etl(night: tuple[GesEmulator, datetime]) -> None:
    emu, logical_date = night
    emu.add_backup("movies", status="failed", start=logical_date + timedelta(minutes=30))
    _dag_run, states, _ = run(gate_dag("deferrable", soft_fail=True), logical_date=logical_date)
    assert states == {"wait_for_backup": "skipped", "run_etl": "skipped"}


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_timeout_when_no_backup_comes(night: tuple[GesEmulator, datetime]) -> None:
    _, logical_date = night
    _dag_run, states, _ = run(gate_dag("deferrable", timeout=2), logical_date=logical_date)
    assert states["wait_for_backup"] == "failed"


@pytest.mark.ges_emulator(graphs=3, backups=30, seed=7)
def test_list_dag_reports_failed_backups_of_the_last_day(
    ges_connection: GesEmulator, airflow_db: None
) -> None:
    emu = ges_connection
    since = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=1)
    graphs = [g["name"] for g in emu.graphs()]
    for hours, graph in [(2, graphs[0]), (5, graphs[1]), (9, graphs[0]), (30, graphs[2])]:
        emu.add_backup(graph, status="failed", start=since + timedelta(days=1, hours=-hours))
    since_ms = int(since.timestamp() * 1000)
    expected = sorted(
        (b for b in emu.backups() if b["status"] == "failed" and b["startTimestamp"] >= since_ms),
        key=lambda b: b["startTimestamp"],
        reverse=True,
    )
    per_graph: dict[str, int] = {}
    for b in expected:
        per_graph[b["graph_name"]] = per_graph.get(b["graph_name"], 0) + 1
    assert sum(per_graph.values()) >= 3 and per_graph[graphs[0]] >= 2

    _dag_run, states, xcoms = run(load_dag("example_ges_list_backups"), logical_date=since)

    assert states == {"list_failed_backups": "success", "report": "success"}
    assert [b["id"] for b in xcoms["list_failed_backups"]] == [b["id"] for b in expected]
    assert xcoms["report"] == per_graph


def test_example_dags_import_without_touching_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import BaseHook

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("connection looked up at parse time")

    monkeypatch.setattr(BaseHook, "get_connection", forbidden)
    monkeypatch.delenv("AIRFLOW_CONN_GES_DEFAULT", raising=False)
    bag = dag_bag(str(EXAMPLE_DAGS))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {
        "example_ges_backup_asset",
        "example_ges_backup_gate",
        "example_ges_list_backups",
        "example_ges_backup_then_etl",
        "example_ges_delete_backup",
        "example_ges_export_backup",
        "example_ges_prune_backups",
        "example_ges_restore_graph",
        "example_ges_wait_for_job",
    }


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_restore_example_tells_the_approver_what_the_graph_loses(night: tuple[GesEmulator, datetime]) -> None:
    """``describe_restore`` (before the approval) shows the backup and what restoring throws away;
    it reads backups only. The approval gates the restore (tests/deployment/test_lifecycle.py)."""
    emu, _ = night
    good = emu.backups()[0]
    dag = load_dag("example_ges_restore_graph")
    assert dag.get_task("approve_restore").upstream_task_ids == {"describe_restore"}
    assert dag.get_task("restore_graph").upstream_task_ids == {"approve_restore"}

    _run, states, xcoms = run(only(dag, "describe_restore"), run_conf={"backup_id": good["id"]})

    assert states == {"describe_restore": "success"}
    start = datetime.fromtimestamp(good["startTimestamp"] / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    end = datetime.fromtimestamp(good["endTimestamp"] / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    body = xcoms["describe_restore"]
    for shown in (
        good["id"],
        good["name"],
        f"started {start} UTC",
        f"ended {end} UTC",
        f"size {good['size']} MB",
    ):
        assert shown in body, (shown, body)
    assert f"loses everything written since {start} UTC**, and it is stopped" in body, body
    assert emu.counters["graph_action"] == 0 and emu.jobs("movies") == []


@pytest.mark.ges_emulator(graphs=0, backups=0)
@pytest.mark.parametrize("bad", ["failed", "unknown", "empty"])
def test_restore_example_refuses_a_bad_backup_before_asking(
    night: tuple[GesEmulator, datetime], bad: str
) -> None:
    from airflow_provider_ges.example_dags.example_ges_restore_graph import describe_restore

    emu, _ = night
    backup_id, why = {
        "failed": (lambda: str(emu.add_backup("movies", status="failed")["id"]), "is failed, not success"),
        "unknown": (lambda: "no-such-backup", "it has no backup 'no-such-backup'"),
        "empty": (lambda: "", "backup_id rendered to '': give the id of one"),
    }[bad]
    with pytest.raises(ValueError, match=re.escape(why)):
        describe_restore.function("movies", backup_id())
    assert emu.counters["graph_action"] == 0
