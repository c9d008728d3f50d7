"""The gate's rules through the public API: every kind of run, a typo'd graph name, a refused graph
list, the trigger's log lines, a server that caps ``limit``, ``max_age``."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_ges._compat import AirflowFailException, AirflowSkipException
from airflow_provider_ges.emulator import GesEmulator
from airflow_provider_ges.gate import BackupGate, Watch
from airflow_provider_ges.hooks.ges import GesHook
from airflow_provider_ges.models import Backup, Graph
from airflow_provider_ges.operators.ges import GesListBackupsOperator
from airflow_provider_ges.plans import Plan
from airflow_provider_ges.sensors.ges import GesBackupSensor
from airflow_provider_ges.triggers.ges import GesBackupTrigger
from tests import helpers
from tests.airflow.test_e2e import airflow_db, flip_after_polls, gate_dag, load_dag, run

__all__ = ["airflow_db"]  # the session fixture, shared with test_e2e

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def sensor(**kwargs: Any) -> GesBackupSensor:
    kwargs.setdefault("graph_name", "movies")
    kwargs.setdefault("newer_than", None)  # poke() is called directly here: nothing renders templates
    deferrable = kwargs.pop("deferrable", False)
    return GesBackupSensor(task_id="wait", deferrable=deferrable, poke_interval=0.1, **kwargs)


def logged(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> list[str]:
    """Lines logged: Airflow's structlog writes to stdout, the stdlib to caplog."""
    return capsys.readouterr().out.splitlines() + caplog.text.splitlines()


def trigger_events(trigger: GesBackupTrigger) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), 60))


# --- every kind of run: the default newer_than ---------------------------------------------------


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_gate_example_manual_run_without_logical_date(ges_connection: GesEmulator, airflow_db: None) -> None:
    """A manual run with no logical date (Airflow 3's default from the UI, CLI and REST): no data
    interval, so the backup must have started after the run's run_after."""
    emu = ges_connection
    emu.add_graph("movies")
    old = emu.add_backup("movies", status="success", start=NOW - timedelta(hours=3))
    tonight = emu.add_backup(
        "movies", status="backing_up", start=datetime.now(timezone.utc) + timedelta(seconds=5)
    )
    flip_after_polls(emu, tonight["id"], "success", polls=2)
    dag_run, states, xcoms = run(gate_dag("deferrable"), logical_date=None, run_conf={"graph_name": "movies"})
    assert dag_run.logical_date is None
    assert states == {"wait_for_backup": "success", "run_etl": "success"}
    assert xcoms["wait_for_backup"]["id"] == tonight["id"] != old["id"]


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_list_example_manual_run_without_logical_date(ges_connection: GesEmulator, airflow_db: None) -> None:
    emu = ges_connection
    emu.add_graph("movies")
    recent = emu.add_backup("movies", status="failed", start=NOW - timedelta(hours=2))
    emu.add_backup("movies", status="failed", start=NOW - timedelta(days=3))  # outside the day
    _, states, xcoms = run(load_dag("example_ges_list_backups"), logical_date=None)
    assert states == {"list_failed_backups": "success", "report": "success"}
    assert [b["id"] for b in xcoms["list_failed_backups"]] == [recent["id"]]


def test_default_newer_than_is_the_run_start_template() -> None:
    assert GesBackupSensor(task_id="w", graph_name="movies").newer_than == (
        "{{ data_interval_start | default(dag_run.run_after, true) }}"
    )


# --- a typo waits no six hours -------------------------------------------------------------------


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_unknown_graph_name_fails_at_once_naming_the_graphs_there_are(ges_connection: GesEmulator) -> None:
    emu = ges_connection
    emu.add_graph("movies")
    emu.add_graph("people")
    with pytest.raises(AirflowFailException) as err:
        sensor(graph_name="moveis").poke({})
    message = str(err.value)
    assert "'moveis'" in message and emu.project_id in message
    assert "'movies'" in message and "'people'" in message
    assert emu.counters["list_graphs"] == 1


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_unknown_graph_name_with_soft_fail_skips(ges_connection: GesEmulator) -> None:
    ges_connection.add_graph("movies")
    with pytest.raises(AirflowSkipException):
        sensor(graph_name="moveis", soft_fail=True, deferrable=True).execute({})


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_unknown_graph_name_fails_the_trigger_too(ges_connection: GesEmulator) -> None:
    ges_connection.add_graph("movies")
    trigger = GesBackupTrigger(ges_conn_id="ges_default", gate={"graph_name": "moveis"}, poll_interval=0.1)
    (event,) = trigger_events(trigger)
    assert event["status"] == "failed" and "'movies'" in event["message"]


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_backups_of_a_deleted_graph_still_count_for_its_name(ges_connection: GesEmulator) -> None:
    emu = ges_connection
    graph = emu.add_graph("movies")
    kept = emu.add_backup("movies", status="success", start=NOW - timedelta(hours=1))
    emu.delete_graph(graph["id"])  # no live graph has the name, but a backup does: no failure
    assert sensor().poke({}).xcom_value["id"] == kept["id"]


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_refused_graph_list_warns_once_and_waits(
    ges_connection: GesEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from airflow_provider_ges.exceptions import GesAuthError

    def refused(self: GesHook, config: Any, page_size: int = 100) -> Any:
        path = f"/v1.0/{config.project_id}/graphs"
        raise GesAuthError("no permission", status_code=403, error_code="GES.7041", method="GET", path=path)
        yield  # a plan

    monkeypatch.setattr(GesHook, "_graphs_plan", refused)
    s = sensor(graph_name="moveis")
    with caplog.at_level(logging.WARNING):
        assert not s.poke({}).is_done and not s.poke({}).is_done
    warnings = [line for line in logged(capsys, caplog) if "Cannot list the graphs" in line]
    assert len(warnings) == 1 and "GES.7041" in warnings[0]


# --- the trigger says what it sees -----------------------------------------------------------------


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_trigger_logs_each_look_rate_limited(
    ges_connection: GesEmulator, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    emu = ges_connection
    emu.add_graph("movies")
    backup = emu.add_backup("movies", status="backing_up", start=NOW)
    emu.set_backup_status_later(backup["id"], "success", 1.0)
    trigger = GesBackupTrigger(ges_conn_id="ges_default", gate={"graph_name": "movies"}, poll_interval=0.1)
    with caplog.at_level(logging.INFO):
        (event,) = trigger_events(trigger)
    assert event["status"] == "success"
    looks = [line for line in logged(capsys, caplog) if "Looked at graph" in line]
    assert emu.counters["list_graph_backups"] >= 5  # many looks...
    assert len(looks) == 2  # ...one line per change of what was seen
    assert "is backing_up" in looks[0] and "is success" in looks[1] and backup["id"] in looks[0]


def test_report_repeats_an_unchanged_line_only_every_few_minutes() -> None:
    from airflow_provider_ges.gate import LOG_EVERY, Verdict

    watch = Watch(BackupGate(graph_id="g"))
    waiting = Verdict("waiting", seen="the graph has no backups")
    assert watch.report(waiting, now=0.0) is not None
    assert watch.report(waiting, now=10.0) is None
    assert watch.report(waiting, now=LOG_EVERY.total_seconds() + 1) is not None


# --- a server that caps limit ----------------------------------------------------------------------


@pytest.mark.ges_emulator(graphs=2, backups=250, seed=7, max_limit=40)
def test_capped_server_listing_sensor_and_operator(
    ges_connection: GesEmulator, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    emu = ges_connection
    with caplog.at_level(logging.WARNING):
        backups = GesHook(retry_base_delay=0.0).list_backups()
    assert len(backups) == 250 == len({b.id for b in backups})
    assert sum("listing with limit=25" in line for line in logged(capsys, caplog)) == 1
    name = emu.graphs()[0]["name"]
    many = emu.add_graph("crowded")
    for n in range(60):  # more than one capped page in the graph's own listing
        emu.add_backup(many["id"], status="failed", start=NOW - timedelta(hours=2, minutes=n))
    good = emu.add_backup(many["id"], status="success", start=NOW - timedelta(hours=5))
    assert sensor(graph_name="crowded", fail_on_failure=False).poke({}).xcom_value["id"] == good["id"]
    listed = GesListBackupsOperator(task_id="list", graph_name=name).execute({})
    assert len(listed) == sum(1 for b in emu.backups() if b["graph_name"] == name)


# --- max_age ---------------------------------------------------------------------------------------


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_max_age_counts_only_recently_finished_backups(ges_connection: GesEmulator) -> None:
    emu = ges_connection
    emu.add_graph("movies")
    emu.add_backup("movies", status="success", start=NOW - timedelta(hours=30))
    assert not sensor(max_age=timedelta(hours=24)).poke({}).is_done
    fresh = emu.add_backup("movies", status="success", start=NOW - timedelta(hours=2))
    assert sensor(max_age=24 * 3600).poke({}).xcom_value["id"] == fresh["id"]
    emu.add_backup("movies", status="failed", start=NOW - timedelta(hours=40))  # old failure: ignored
    assert sensor(max_age=timedelta(hours=24)).poke({}).is_done


@pytest.mark.parametrize("bad", [timedelta(0), -5, "1h"])
def test_max_age_must_be_positive(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_age"):
        sensor(max_age=bad)


@pytest.mark.parametrize(
    ("kwargs", "named"), [({"status": "sucess"}, "status"), ({"backup_method": "auto "}, "backup_method")]
)
def test_unknown_filter_values_are_refused_listing_the_valid_ones(kwargs: dict[str, Any], named: str) -> None:
    from airflow_provider_ges.models import BackupFilter

    with pytest.raises(ValueError, match=f"{named} must be one of") as err:
        BackupFilter.of(**kwargs)
    assert "'success'" in str(err.value) or "'manual'" in str(err.value)


def test_bad_rendered_time_is_a_clear_error() -> None:
    s = sensor(newer_than="{{ params.when }}")
    s.newer_than = "yesterday"  # what a template might render to
    with pytest.raises(ValueError, match="newer_than: expected an ISO-8601 date-time, got 'yesterday'"):
        s.poke({})
    assert time.time()  # no network: the error came before any call


def test_list_operator_refuses_an_unknown_status_at_construction() -> None:
    with pytest.raises(ValueError, match="status must be one of 'backing_up', 'success', 'failed'"):
        GesListBackupsOperator(task_id="list", status="sucess")
    assert GesListBackupsOperator(task_id="list", status="{{ params.status }}").status  # rendered later


# --- a wait that explains itself (plain data) ------------------------------------------------------

CUT = datetime(2026, 12, 6, 21, 1, 29, tzinfo=timezone.utc)


def listed(*specs: tuple[int, str, datetime]) -> list[Backup]:
    """Backups of graph g1 (id id-g1): (n, method, start)."""
    return [
        Backup.model_validate(helpers.backup(n, method=method, start_ms=int(start.timestamp() * 1000)))
        for n, method, start in specs
    ]


def test_no_candidate_names_the_cutoff_and_the_newest_backup_it_ignored() -> None:
    backups = listed((1, "manual", CUT - timedelta(seconds=58)), (2, "manual", CUT - timedelta(hours=3)))
    verdict = BackupGate(graph_name="g1", newer_than=CUT).judge(backups, "id-g1")
    assert verdict.state == "waiting" and verdict.backup is None
    assert verdict.seen == (
        "no backup started at or after 2026-12-06T21:01:29Z (newer_than);"
        " newest: 'g1-1' (id b-00001) started 2026-12-06T21:00:31Z"
    )
    line = Watch(BackupGate(graph_name="g1"), found_graph_id="id-g1").report(verdict)
    assert line == f"Looked at graph 'g1' (id id-g1): {verdict.seen}"


def test_no_candidate_says_when_backup_method_excluded_the_newest() -> None:
    backups = listed((1, "manual", CUT + timedelta(minutes=1)), (2, "auto", CUT - timedelta(days=1)))
    gate = BackupGate(graph_id="id-g1", newer_than=CUT.replace(microsecond=250_000), backup_method="auto")
    seen = gate.judge(backups).seen
    assert seen == (
        "no backup started at or after 2026-12-06T21:01:29.250Z (newer_than), with backup_method 'auto';"
        " newest: 'g1-1' (id b-00001) started 2026-12-06T21:02:29Z, a 'manual' backup: excluded by"
        " backup_method"
    )


def test_no_candidate_names_the_max_age_cutoff_and_when_the_newest_finished() -> None:
    old = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=2)
    seen = BackupGate(graph_id="id-g1", max_age=timedelta(days=1)).judge(listed((1, "auto", old))).seen
    assert seen is not None and seen.startswith("no backup finished at or after ")
    assert "(max_age 1 day, 0:00:00); newest: 'g1-1' (id b-00001)" in seen
    finished = (old + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    assert seen.endswith(f"started {old.isoformat().replace('+00:00', 'Z')}, finished {finished}")


def test_no_candidate_says_when_the_graph_has_no_backups() -> None:
    other = [Backup.model_validate(helpers.backup(1, graph="g2"))]
    assert BackupGate(graph_name="g1", newer_than=CUT).judge(other).seen == "the graph has no backups"
    assert BackupGate(graph_id="id-g1").judge([]).seen == "the graph has no backups"


def test_a_candidate_is_named_with_its_status() -> None:
    backups = listed((1, "manual", CUT + timedelta(minutes=1)))
    assert BackupGate(graph_id="id-g1", newer_than=CUT).judge(backups).seen == (
        "newest candidate 'g1-1' (id b-00001) is success"
    )


def plan_result(plan: Plan[Any]) -> Any:
    """The result of a plan that needs no effect (its calls faked)."""
    with pytest.raises(StopIteration) as stop:
        plan.send(None)
    return stop.value.value


def test_a_missing_graph_fails_with_its_message_and_no_look_line() -> None:
    def graphs() -> Plan[list[Graph]]:
        return [Graph(id="id-g1", name="movies")]
        yield  # a plan

    def backups(graph_id: str | None) -> Plan[list[Backup]]:
        return listed((1, "manual", CUT))
        yield  # a plan

    watch = Watch(BackupGate(graph_name="moveis"), project_id="p1")
    verdict = plan_result(watch.look(graphs, backups))
    assert verdict.state == "failed" and verdict.seen is None
    assert verdict.message == "No graph named 'moveis': the project's graphs are 'movies' (project p1)"
    assert watch.report(verdict) is None
