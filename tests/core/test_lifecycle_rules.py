"""The lifecycle rules without Airflow runs: prune selection, finding the new backup, argument
checks, graph names, attach on GES.7002, delete refusals, and GesJobTrigger's events."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_ges._compat import AirflowFailException
from airflow_provider_ges.emulator import GesEmulator
from airflow_provider_ges.enums import BackupMethod
from airflow_provider_ges.exceptions import GesTransientError
from airflow_provider_ges.hooks.ges import GesHook
from airflow_provider_ges.models import Backup, Graph
from airflow_provider_ges.operators.ges import (
    GesCreateBackupOperator,
    GesDeleteBackupOperator,
    GesPruneBackupsOperator,
    GesRestoreGraphOperator,
    find_new_backup,
    prune_table,
    resolve_graph_id,
    select_prune,
)
from airflow_provider_ges.sensors.ges import GesJobSensor
from airflow_provider_ges.triggers.ges import GesJobTrigger

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def b(
    n: int, *, status: str = "success", method: str = "manual", days: float = 0, graph: str = "g"
) -> Backup:
    start = T0 - timedelta(days=days)
    return Backup.model_validate(
        {
            "id": f"b{n}",
            "name": f"{graph}-{n}",
            "backupMethod": method,
            "graphId": graph,
            "status": status,
            "startTimestamp": int(start.timestamp() * 1000),
        }
    )


def deleted(decisions: Any) -> list[str]:
    return [d.backup.id for d in decisions if d.delete]


MANUAL = BackupMethod.MANUAL


# --- prune selection -------------------------------------------------------------------------


def test_keep_last_keeps_the_newest_successful_and_deletes_the_rest() -> None:
    backups = [b(1, days=1), b(2, days=2), b(3, days=3), b(4, status="failed", days=4), b(5, days=5)]
    assert deleted(select_prune(backups, keep_last=2, cutoff=None, backup_method=MANUAL)) == [
        "b3",
        "b4",
        "b5",
    ]


def test_failed_backups_never_count_as_kept() -> None:
    backups = [b(1, status="failed", days=1), b(2, days=2), b(3, days=3)]
    assert deleted(select_prune(backups, keep_last=2, cutoff=None, backup_method=MANUAL)) == ["b1"]


def test_both_rules_must_agree() -> None:
    backups = [b(n, days=n * 10) for n in range(1, 6)]  # 10..50 days old
    cutoff = T0 - timedelta(days=25)
    decisions = select_prune(backups, keep_last=1, cutoff=cutoff, backup_method=MANUAL)
    assert deleted(decisions) == ["b3", "b4", "b5"]  # b2 is beyond keep_last but younger
    only_age = select_prune(backups, keep_last=None, cutoff=cutoff, backup_method=MANUAL)
    assert deleted(only_age) == ["b3", "b4", "b5"]


def test_running_other_methods_and_the_newest_success_never_go() -> None:
    backups = [
        b(1, method="auto", days=1),  # newest success of the graph, any method
        b(2, status="backing_up", days=90),
        b(3, status="weird", days=90),
        b(4, method="auto", days=90),
        b(5, days=90),
    ]
    decisions = select_prune(backups, keep_last=0, cutoff=T0, backup_method=MANUAL)
    assert deleted(decisions) == ["b5"]
    reasons = {d.backup.id: d.reason for d in decisions}
    assert reasons["b1"] == "newest successful backup of the graph"
    assert "not finished" in reasons["b2"] and "not finished" in reasons["b3"]
    assert "auto, not manual" in reasons["b4"]
    everything = select_prune(backups, keep_last=0, cutoff=T0, backup_method=None)
    assert deleted(everything) == ["b4", "b5"]


def test_the_newest_success_stays_even_when_every_rule_says_go() -> None:
    backups = [b(1, days=100), b(2, status="failed", days=101)]
    assert deleted(select_prune(backups, keep_last=0, cutoff=T0, backup_method=MANUAL)) == ["b2"]


def test_a_backup_without_start_time_is_not_aged_out() -> None:
    undated = Backup.model_validate({"id": "x", "status": "success", "backupMethod": "manual"})
    backups = [b(1, days=1), undated]
    assert deleted(select_prune(backups, keep_last=None, cutoff=T0, backup_method=MANUAL)) == []


def test_no_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="keep_last or older_than"):
        select_prune([b(1)], keep_last=None, cutoff=None, backup_method=None)


def test_prune_table_names_every_backup_and_why() -> None:
    decisions = select_prune([b(1, days=1), b(2, days=40)], keep_last=1, cutoff=None, backup_method=MANUAL)
    table = prune_table(decisions, dry_run=True)
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["decision", "id"]
    assert lines[1].startswith("keep") and "b1" in lines[1]
    assert lines[2].startswith("would delete") and "b2" in lines[2] and "beyond the 1 newest" in lines[2]


# --- finding the new backup ------------------------------------------------------------------


def test_new_backup_is_a_new_id_of_the_graph_started_after_the_job() -> None:
    since = T0
    old = b(1, days=0)  # same start, but listed before the create
    other_graph = b(2, graph="h")
    auto = b(3, method="auto")
    earlier = b(4, days=1)
    ours = b(5, days=-0.0001)
    found = find_new_backup([old, other_graph, auto, earlier, ours], before=["b1"], graph_id="g", since=since)
    assert found is not None and found.id == "b5"
    assert find_new_backup([old, earlier], before=["b1"], graph_id="g", since=since) is None


def test_of_two_new_backups_the_one_closest_to_the_job_start_wins() -> None:
    near, far = b(1, days=-1 / 86400), b(2, days=-1)
    found = find_new_backup([far, near], before=[], graph_id="g", since=T0)
    assert found is not None and found.id == "b1"


# --- arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: GesCreateBackupOperator(task_id="t"), "graph_id or graph_name"),
        (
            lambda: GesCreateBackupOperator(task_id="t", graph_id="a", graph_name="b"),
            "graph_id or graph_name",
        ),
        (lambda: GesCreateBackupOperator(task_id="t", graph_id="a", poll_interval=0), "poll_interval"),
        (lambda: GesCreateBackupOperator(task_id="t", graph_id="a", timeout=-1), "timeout"),
        (lambda: GesDeleteBackupOperator(task_id="t", graph_id="a", backup_id=""), "backup_id"),
        (lambda: GesPruneBackupsOperator(task_id="t", graph_id="a"), "keep_last or older_than"),
        (lambda: GesPruneBackupsOperator(task_id="t", graph_id="a", keep_last=-1), "keep_last"),
        (lambda: GesPruneBackupsOperator(task_id="t", graph_id="a", keep_last=True), "keep_last"),
        (lambda: GesPruneBackupsOperator(task_id="t", graph_id="a", older_than="soon"), "older_than"),
        (lambda: GesPruneBackupsOperator(task_id="t", graph_id="a", older_than=timedelta(0)), "older_than"),
        (
            lambda: GesPruneBackupsOperator(task_id="t", graph_id="a", keep_last=1, backup_method="manaul"),
            "backup_method",
        ),
        (lambda: GesRestoreGraphOperator(task_id="t", graph_id="a", backup_id="  "), "backup_id"),
        (lambda: GesJobSensor(task_id="t", graph_id="a", job_id=""), "job_id"),
        (lambda: GesJobSensor(task_id="t", job_id="j"), "graph_id or graph_name"),
    ],
)
def test_bad_arguments_fail_at_construction(make: Any, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        make()


def test_templates_are_accepted_at_construction_and_fields_templated() -> None:
    GesPruneBackupsOperator(
        task_id="t", graph_name="{{ params.g }}", older_than="{{ ds }}", backup_method="{{ params.m }}"
    )
    GesRestoreGraphOperator(task_id="r", graph_name="{{ params.g }}", backup_id="{{ params.backup_id }}")
    assert set(GesCreateBackupOperator.template_fields) == {"graph_id", "graph_name", "ges_conn_id"}
    assert {"backup_id", "graph_name"} <= set(GesRestoreGraphOperator.template_fields)
    assert {"backup_id", "graph_name"} <= set(GesDeleteBackupOperator.template_fields)
    assert {"older_than", "backup_method"} <= set(GesPruneBackupsOperator.template_fields)
    assert {"job_id", "graph_id", "graph_name"} <= set(GesJobSensor.template_fields)


def test_prune_cutoff_from_an_age_a_time_or_empty() -> None:
    op = GesPruneBackupsOperator(task_id="t", graph_id="a", older_than=timedelta(days=7))
    cutoff = op.cutoff()
    assert cutoff is not None
    assert abs((datetime.now(timezone.utc) - timedelta(days=7) - cutoff).total_seconds()) < 5
    op.older_than = "2026-01-02T03:04:05"
    assert op.cutoff() == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    op.older_than = ""
    with pytest.raises(ValueError, match="older_than"):
        op.cutoff()


# --- against the emulator, without Airflow runs ----------------------------------------------


class FakeTI:
    def __init__(self, try_number: int = 1) -> None:
        self.xcom: dict[str, Any] = {}
        self.try_number = try_number

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value

    def xcom_pull(self, task_ids: str, key: str) -> Any:
        return self.xcom.get(key)


def ctx() -> Any:
    return {"ti": FakeTI()}


FAST = {"graphs": 0, "backups": 0, "backup_duration": 0.3, "graph_action_duration": 0.1}


@pytest.mark.ges_emulator(**FAST)
def test_unknown_graph_name_names_the_graphs_there_are(ges_connection: GesEmulator) -> None:
    ges_connection.add_graph("movies")
    ges_connection.add_graph("sales_graph")
    with pytest.raises(AirflowFailException, match=r"No graph named 'moovies'.*'movies', 'sales_graph'"):
        resolve_graph_id(GesHook(), None, "moovies")


def test_several_graphs_with_one_name_need_an_id() -> None:
    class Hook:
        def find_graph_id(self, name: str) -> None:
            return None

        def iter_graphs(self) -> list[Graph]:
            return [Graph(id="1", name="x"), Graph(id="2", name="x")]

    with pytest.raises(AirflowFailException, match="Several graphs are named 'x'"):
        resolve_graph_id(Hook(), None, "x")  # type: ignore[arg-type]


@pytest.mark.ges_emulator(**FAST)
def test_ges_7002_on_create_attaches_to_the_running_backup(
    ges_connection: GesEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = ges_connection
    graph = emu.add_graph("movies")
    op = GesCreateBackupOperator(task_id="t", graph_name="movies", poll_interval=0.1, timeout=10)
    real_list = GesHook.iter_backups
    calls = {"n": 0}
    running: dict[str, Any] = {}

    def racing(self: GesHook, graph_id: Any = None, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:  # the first look sees nothing running; then someone starts a backup
            listed = list(real_list(self, graph_id, **kw))
            running.update(emu.add_backup("movies", status="backing_up"))
            emu.set_backup_status_later(running["id"], "success", 0.5)
            return iter(listed)
        return real_list(self, graph_id, **kw)

    monkeypatch.setattr(GesHook, "iter_backups", racing)
    context = ctx()
    result = op.execute(context)
    assert result["id"] == running["id"] and result["status"] == "success"
    assert context["ti"].xcom == {"job_id": None, "backup_id": running["id"]}
    assert emu.counters["create_backup"] == 1  # answered GES.7002, not retried
    assert graph["id"] == result["graphId"]


@pytest.mark.ges_emulator(**FAST, backup_quota=1)
def test_quota_fails_the_task_without_retries(ges_connection: GesEmulator) -> None:
    ges_connection.add_graph("movies")
    ges_connection.add_backup("movies", status="success")
    with pytest.raises(AirflowFailException, match="quota"):
        GesCreateBackupOperator(task_id="t", graph_name="movies").execute(ctx())


@pytest.mark.ges_emulator(**FAST)
def test_a_lost_create_reply_with_nothing_running_is_raised(
    ges_connection: GesEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    ges_connection.add_graph("movies")

    def lost(self: GesHook, graph_id: str) -> str:
        raise GesTransientError("no reply", method="POST", path="/backups")

    monkeypatch.setattr(GesHook, "start_backup", lost)
    monkeypatch.setattr("airflow_provider_ges.operators.ges.LISTING_PAUSE", 0.0)
    with pytest.raises(GesTransientError):
        GesCreateBackupOperator(task_id="t", graph_name="movies").execute(ctx())


@pytest.mark.ges_emulator(**FAST)
def test_a_failed_job_fails_with_its_reason(ges_connection: GesEmulator) -> None:
    ges_connection.add_graph("movies")
    ges_connection.fail_next_job(reason="disk full")
    op = GesCreateBackupOperator(task_id="t", graph_name="movies", poll_interval=0.1, deferrable=False)
    with pytest.raises(AirflowFailException, match="disk full"):
        op.execute(ctx())


@pytest.mark.ges_emulator(**FAST)
def test_without_waiting_the_job_id_is_returned(ges_connection: GesEmulator) -> None:
    graph = ges_connection.add_graph("movies")
    context = ctx()
    job_id = GesCreateBackupOperator(task_id="t", graph_name="movies", wait_for_completion=False).execute(
        context
    )
    assert context["ti"].xcom["job_id"] == job_id
    assert ges_connection.job(graph["id"], job_id)["jobName"] == "BackupGraph"


@pytest.mark.ges_emulator(**FAST)
def test_delete_refuses_running_and_newest_and_handles_missing(ges_connection: GesEmulator) -> None:
    emu = ges_connection
    emu.add_graph("movies")
    old = emu.add_backup("movies", status="success", start=T0 - timedelta(days=3))
    newest = emu.add_backup("movies", status="success", start=T0)
    running = emu.add_backup("movies", status="backing_up", start=T0 - timedelta(days=9))

    def delete(backup_id: str, **kw: Any) -> Any:
        return GesDeleteBackupOperator(task_id="d", graph_name="movies", backup_id=backup_id, **kw).execute(
            ctx()
        )

    with pytest.raises(AirflowFailException, match="backing_up"):
        delete(running["id"])
    with pytest.raises(AirflowFailException, match="newest successful"):
        delete(newest["id"])
    assert delete(old["id"])["id"] == old["id"]
    assert delete(old["id"]) is None  # missing_ok
    with pytest.raises(AirflowFailException, match="no backup"):
        delete(old["id"], missing_ok=False)
    assert {b["id"] for b in emu.backups()} == {newest["id"], running["id"]}


# --- GesJobTrigger ---------------------------------------------------------------------------


def trigger_events(trigger: GesJobTrigger) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


@pytest.mark.ges_emulator(**FAST)
@pytest.mark.parametrize("outcome", ["success", "failed"])
def test_job_trigger_yields_one_event(ges_connection: GesEmulator, outcome: str) -> None:
    graph = ges_connection.add_graph("movies")
    if outcome == "failed":
        ges_connection.fail_next_job(reason="disk full")
    job_id = GesHook().create_backup(graph["id"])
    trigger = GesJobTrigger(
        ges_conn_id="ges_default", graph_id=graph["id"], job_id=job_id, poll_interval=0.05, echo={"k": [1]}
    )
    (event,) = trigger_events(trigger)
    assert event["status"] == outcome
    assert event["job"]["jobId"] == job_id
    assert event["graph_id"] == graph["id"] and event["job_id"] == job_id and event["echo"] == {"k": [1]}
    if outcome == "failed":
        assert "disk full" in event["message"]
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_ges.triggers.ges.GesJobTrigger"
    assert GesJobTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert "token" not in str(kwargs).lower()


@pytest.mark.ges_emulator(**FAST)
def test_job_trigger_timeout_and_error_events(ges_connection: GesEmulator) -> None:
    graph = ges_connection.add_graph("movies")
    ges_connection.backup_duration = 30
    job_id = GesHook().create_backup(graph["id"])
    started = time.monotonic()
    (event,) = trigger_events(
        GesJobTrigger(
            ges_conn_id="ges_default",
            graph_id=graph["id"],
            job_id=job_id,
            poll_interval=0.05,
            end_time=time.time() + 0.3,
        )
    )
    assert event["status"] == "timeout" and time.monotonic() - started < 5
    (event,) = trigger_events(GesJobTrigger(ges_conn_id="ges_default", graph_id=graph["id"], job_id="nope"))
    assert event["status"] == "error" and "GES.8301" in event["message"]


@pytest.mark.ges_emulator(**FAST, faults="503:every=2")
def test_job_trigger_waits_out_transient_errors(ges_connection: GesEmulator) -> None:
    graph = ges_connection.add_graph("movies")
    hook = GesHook(retry_base_delay=0.001)
    job_id = hook.create_backup(graph["id"])  # 503 before acting: retried
    (event,) = trigger_events(
        GesJobTrigger(ges_conn_id="ges_default", graph_id=graph["id"], job_id=job_id, poll_interval=0.05)
    )
    assert event["status"] == "success"
    assert ges_connection.counters["fault_503"] >= 1
