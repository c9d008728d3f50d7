"""GesBackupSensor's rules, driven through its public methods against requests-mock."""

from __future__ import annotations

import asyncio
import logging
import warnings
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.triggers.base import TaskFailedEvent, TaskSkippedEvent, TaskSuccessEvent, TriggerEvent

from airflow_provider_ges._compat import (
    STARTS_FROM_TRIGGER,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)
from airflow_provider_ges.hooks.ges import GesHook
from airflow_provider_ges.models import datetime_to_ms
from airflow_provider_ges.sensors.ges import SINCE_RUN_START, GesBackupSensor, GesJobSensor
from airflow_provider_ges.triggers.ges import (
    GesBackupSensorTrigger,
    GesBackupTrigger,
    GesJobSensorTrigger,
    gate_of,
    task_end,
)
from tests.conftest import PASSWORD, TOKEN
from tests.helpers import (
    BACKUPS_URL,
    GRAPHS_URL,
    TOKEN_URL,
    backup,
    graph_backups_url,
    paged,
    serve_project,
    token_reply,
)

NOW = datetime(2026, 11, 29, 2, 0, tzinfo=timezone.utc)


def at(hours: float) -> int:
    """A start timestamp ``hours`` after NOW, in ms."""
    return datetime_to_ms(NOW + timedelta(hours=hours))


def sensor(**kwargs: Any) -> GesBackupSensor:
    kwargs.setdefault("graph_name", "g1")
    kwargs.setdefault("newer_than", None)  # these tests call poke() directly: no template rendering
    return GesBackupSensor(task_id="wait", deferrable=kwargs.pop("deferrable", False), **kwargs)


@pytest.fixture
def serve(ges_conn: Any, requests_mock: Any) -> Any:
    requests_mock.post(TOKEN_URL, **token_reply())

    def _serve(*items: dict[str, Any]) -> None:
        serve_project(requests_mock, list(items))

    return _serve


def test_passes_on_the_newest_success_and_returns_it(serve: Any) -> None:
    serve(
        backup(1, status="success", start_ms=at(1)),
        backup(2, status="success", start_ms=at(3)),
        backup(3, status="failed", start_ms=at(4)),
        backup(4, graph="other", status="success", start_ms=at(5)),
    )
    outcome = sensor(newer_than=NOW).poke({})
    assert outcome.is_done
    assert outcome.xcom_value["id"] == "b-00002"
    assert outcome.xcom_value["graph_name"] == "g1" and outcome.xcom_value["startTimestamp"] == at(3)


def test_newer_than_excludes_older_backups(serve: Any) -> None:
    serve(backup(1, status="success", start_ms=at(-1)), backup(2, status="backing_up", start_ms=at(1)))
    assert not sensor(newer_than=NOW.isoformat()).poke({}).is_done
    assert sensor(newer_than=None).poke({}).xcom_value["id"] == "b-00001"


def test_backup_method_filters(serve: Any) -> None:
    serve(backup(1, status="success", method="auto", start_ms=at(1)))
    assert not sensor(backup_method="manual").poke({}).is_done
    assert sensor(backup_method="auto").poke({}).is_done


def test_graph_id_uses_the_per_graph_listing(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    requests_mock.get(graph_backups_url("id-g1"), json=paged([backup(1, status="success", start_ms=at(1))]))
    assert GesBackupSensor(task_id="w", graph_id="id-g1", newer_than=None, deferrable=False).poke({}).is_done


def test_graph_name_is_looked_up_once_then_only_that_graph_is_listed(serve: Any, requests_mock: Any) -> None:
    serve(
        backup(1, status="backing_up", start_ms=at(1)),
        backup(2, graph="other", status="success", start_ms=at(2)),
    )
    waiting = sensor(newer_than=NOW)
    for _ in range(3):
        assert not waiting.poke({}).is_done
    gets = [r.url.split("?")[0] for r in requests_mock.request_history if r.method == "GET"]
    assert gets == [GRAPHS_URL] + [graph_backups_url("id-g1")] * 3


def test_graph_name_not_found_filters_the_whole_project(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    requests_mock.get(GRAPHS_URL, json={"graphCount": 0, "graphs": []})  # deleted; its backups live on
    requests_mock.get(BACKUPS_URL, json=paged([backup(1, status="success", start_ms=at(1))]))
    assert sensor().poke({}).xcom_value["id"] == "b-00001"


def test_graph_list_refused_falls_back_to_the_project_listing(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    denied = {"errorCode": "GES.7041", "errorMessage": "no permission"}
    requests_mock.get(GRAPHS_URL, status_code=403, json=denied)  # may list backups, not graphs
    requests_mock.get(BACKUPS_URL, json=paged([backup(1, status="success", start_ms=at(1))]))
    waiting = sensor()
    assert waiting.poke({}).xcom_value["id"] == "b-00001"
    assert waiting.poke({}).is_done
    graph_lists = [r for r in requests_mock.request_history if r.url.startswith(GRAPHS_URL + "?")]
    assert len(graph_lists) == 1  # refused once, not asked again


def test_newest_failed_fails_fast_naming_backup_graph_and_time(serve: Any) -> None:
    serve(backup(1, status="backing_up", start_ms=at(1)), backup(2, status="failed", start_ms=at(2)))
    with pytest.raises(AirflowFailException) as err:
        sensor(newer_than=NOW).poke({})
    message = str(err.value)
    assert "b-00002" in message and "g1" in message and "2026-11-29T04:00:00Z" in message


@pytest.mark.parametrize(
    "items",
    [
        [],
        [backup(1, status="backing_up", start_ms=at(1))],
        [backup(1, status="failed", start_ms=at(1)), backup(2, status="backing_up", start_ms=at(2))],
        [backup(1, status="mystery_state", start_ms=at(1))],
    ],
)
def test_keeps_waiting_otherwise(serve: Any, items: list[dict[str, Any]]) -> None:
    serve(*items)
    assert not sensor(newer_than=NOW).poke({}).is_done


def test_failed_backup_waited_out_when_asked(serve: Any) -> None:
    serve(backup(1, status="failed", start_ms=at(1)))
    assert not sensor(fail_on_failure=False).poke({}).is_done


@pytest.mark.parametrize("deferrable", [False, True])
def test_soft_fail_skips_instead_of_failing(serve: Any, deferrable: bool) -> None:
    serve(backup(1, status="failed", start_ms=at(1)))
    with pytest.raises(AirflowSkipException):
        sensor(soft_fail=True, mode="poke", deferrable=deferrable).execute({})


def test_transient_errors_mean_wait_not_fail(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    requests_mock.get(BACKUPS_URL, status_code=503, text="busy")
    requests_mock.get(GRAPHS_URL, status_code=503, text="busy")
    s = sensor()
    s.hook.retry_base_delay = 0
    assert not s.poke({}).is_done


def test_auth_errors_fail_the_task(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, status_code=401, json={"error": {"code": 401, "message": "wrong password"}})
    from airflow_provider_ges.exceptions import GesAuthError

    with pytest.raises(GesAuthError, match="wrong password") as err:
        sensor().poke({})  # graph_name: its look-up fails on the token, which is never asked again
    assert PASSWORD not in str(err.value)
    assert [r.method for r in requests_mock.request_history] == ["POST"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"graph_name": None}, "exactly one of graph_id or graph_name"),
        ({"graph_id": "x"}, "exactly one of graph_id or graph_name"),
        ({"backup_method": "nightly"}, "backup_method"),
        ({"newer_than": "last tuesday"}, "newer_than"),
        ({"newer_than": 12345}, "newer_than"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sensor(**kwargs)


def test_templated_fields_and_template_accepted() -> None:
    s = sensor(newer_than="{{ data_interval_start }}")
    assert set(s.template_fields) == {"graph_id", "graph_name", "newer_than", "backup_method", "ges_conn_id"}


def test_deferrable_defaults_to_airflow_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "true")
    assert GesBackupSensor(task_id="w", graph_name="g1").deferrable is True
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "false")
    assert GesBackupSensor(task_id="w", graph_name="g1").deferrable is False


def test_deferrable_checks_once_then_defers_with_its_timeout(serve: Any) -> None:
    serve(backup(1, status="backing_up", start_ms=at(1)))
    s = sensor(deferrable=True, newer_than=NOW, timeout=600, poke_interval=7)
    with pytest.raises(TaskDeferred) as deferred:
        s.execute({})
    assert deferred.value.timeout == timedelta(seconds=600)
    assert deferred.value.method_name == "execute_complete"
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == "airflow_provider_ges.triggers.ges.GesBackupTrigger"
    assert kwargs["ges_conn_id"] == "ges_default" and kwargs["poll_interval"] == 7
    assert kwargs["found_graph_id"] == "id-g1"  # found while checking: the trigger needs no look-up
    assert kwargs["gate"]["graph_name"] == "g1" and kwargs["gate"]["newer_than"] == NOW.isoformat().replace(
        "+00:00", "Z"
    )
    assert TOKEN not in repr(kwargs) and PASSWORD not in repr(kwargs)
    again = GesBackupTrigger(**kwargs)
    assert again.serialize() == (classpath, kwargs)


def test_deferrable_passes_without_deferring_when_already_done(serve: Any) -> None:
    serve(backup(1, status="success", start_ms=at(1)))
    assert sensor(deferrable=True).execute({})["id"] == "b-00001"


def test_execute_complete_returns_or_raises() -> None:
    s = sensor()
    assert s.execute_complete({}, {"status": "success", "backup": {"id": "b1"}}) == {"id": "b1"}
    with pytest.raises(AirflowFailException, match="boom"):
        s.execute_complete({}, {"status": "failed", "backup": {"id": "b1"}, "message": "boom"})
    with pytest.raises(AirflowSensorTimeout):
        s.execute_complete({}, {"status": "timeout", "message": "late"})
    with pytest.raises(RuntimeError, match="no token"):
        s.execute_complete({}, {"status": "error", "message": "no token"})


# --- start_from_trigger ----------------------------------------------------------------------------

needs_start_path = pytest.mark.skipif(
    not STARTS_FROM_TRIGGER, reason="Airflow < 3.3 never starts a task there"
)


def started(**kwargs: Any) -> GesBackupSensor:
    kwargs.setdefault("graph_name", "{{ params.graph }}")
    return GesBackupSensor(task_id="wait", start_from_trigger=True, **kwargs)


@needs_start_path
def test_start_from_trigger_hands_the_unrendered_arguments_to_the_trigger() -> None:
    s = started(max_age=3600, poke_interval=7, timeout=600, retries=0)
    assert s.deferrable is True and s.start_from_trigger is True  # implied: it waits in the triggerer
    args = s.start_trigger_args
    assert args is not None and args.next_method == "execute_complete"
    assert args.trigger_cls == "airflow_provider_ges.triggers.ges.GesBackupSensorTrigger"
    assert args.timeout == timedelta(seconds=600)
    assert args.trigger_kwargs == {
        "ges_conn_id": "ges_default",
        "graph_id": None,
        "graph_name": "{{ params.graph }}",
        "newer_than": SINCE_RUN_START,
        "max_age": 3600.0,
        "backup_method": None,
        "fail_on_failure": True,
        "poll_interval": 7.0,
        "ending": {"soft_fail": False, "retries": 0, "xcom": True},
    }
    assert GesBackupSensor.start_trigger_args is None  # the class attribute is left alone
    trigger = GesBackupSensorTrigger(**args.trigger_kwargs)
    assert trigger.serialize() == (args.trigger_cls, args.trigger_kwargs)


@needs_start_path
def test_the_triggerer_renders_the_templated_arguments_before_the_gate_is_built() -> None:
    """As Airflow 3.3's triggerer does: the trigger's ``task_instance`` is the task's, whose
    template fields that are also trigger kwargs get rendered on the trigger."""
    s = started(backup_method="{{ params.method }}")
    trigger = GesBackupSensorTrigger(**s.start_trigger_args.trigger_kwargs)  # type: ignore[union-attr]
    trigger.task_instance = SimpleNamespace(task=s, task_id="wait")  # type: ignore[assignment]
    assert set(trigger.template_fields) == {
        "graph_id",
        "graph_name",
        "newer_than",
        "backup_method",
        "ges_conn_id",
    }
    # a manual run without a logical date: no data interval, so the run's run_after
    run = SimpleNamespace(run_after=NOW)
    context = {"params": {"graph": "movies", "method": "auto"}, "data_interval_start": None, "dag_run": run}
    trigger.render_template_fields(context=context)  # type: ignore[arg-type]
    gate = gate_of(trigger)
    assert (gate.graph_name, gate.backup_method, gate.newer_than) == ("movies", "auto", NOW)
    assert gate.max_age is None and gate.fail_on_failure is True


@needs_start_path
def test_the_job_sensor_starts_from_trigger_too() -> None:
    s = GesJobSensor(task_id="j", graph_name="g1", job_id="{{ params.job }}", start_from_trigger=True)
    args = s.start_trigger_args
    assert args is not None and args.trigger_cls.endswith(".GesJobSensorTrigger")
    assert args.trigger_kwargs is not None and args.trigger_kwargs["job_id"] == "{{ params.job }}"
    assert GesJobSensorTrigger(**args.trigger_kwargs).serialize()[1] == args.trigger_kwargs


def test_start_from_trigger_needs_deferrable() -> None:
    with pytest.raises(
        ValueError, match=r"start_from_trigger=True .* needs deferrable=True; got deferrable=False"
    ):
        started(deferrable=False)


@pytest.mark.parametrize(
    ("refusal", "kwargs", "why"),
    [
        ("Airflow 3.2.2 never starts a task in the triggerer (3.3 does)", {}, "Airflow 3.2.2 never starts"),
        (None, {"graph_name": object()}, "graph_name=<object"),
    ],
)
def test_start_from_trigger_falls_back_to_the_worker_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, refusal: str | None, kwargs: dict[str, Any], why: str
) -> None:
    monkeypatch.setattr("airflow_provider_ges.sensors.ges.start_from_trigger_refusal", lambda: refusal)
    with pytest.warns(UserWarning) as warned:
        s = started(**kwargs)
    assert len(warned) == 1
    message = str(warned[0].message)
    assert message.startswith("wait: start_from_trigger=True ignored, it starts in a worker and defers: ")
    assert why in message
    assert s.start_from_trigger is False and s.start_trigger_args is None and s.deferrable is True


def test_on_this_airflow_start_from_trigger_warns_only_where_it_cannot_start_there() -> None:
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        s = started()
    assert s.start_from_trigger is STARTS_FROM_TRIGGER
    assert len(warned) == (0 if STARTS_FROM_TRIGGER else 1)


SUCCESS = {"status": "success", "backup": {"id": "b1"}}
FAILED = {"status": "failed", "backup": {"id": "b1"}, "message": "Backup 'b1' failed"}


@pytest.mark.parametrize(
    ("event", "ending", "ends"),
    [
        (SUCCESS, {"soft_fail": False, "retries": 2, "xcom": False}, (TaskSuccessEvent, None)),
        (FAILED, {"soft_fail": False, "retries": 0, "xcom": True}, (TaskFailedEvent, None)),
        (FAILED, {"soft_fail": True, "retries": 2, "xcom": True}, (TaskSkippedEvent, None)),
    ],
)
def test_a_sensor_started_in_the_triggerer_ends_there(
    event: dict[str, Any], ending: dict[str, Any], ends: tuple[type, Any], caplog: pytest.LogCaptureFixture
) -> None:
    end = task_end(event, "backup", ending, logging.getLogger("t"))
    assert type(end) is ends[0] and end.xcoms == ends[1]  # type: ignore[attr-defined]
    if event is FAILED:
        assert "Backup 'b1' failed" in caplog.text  # the task's log says why


@pytest.mark.parametrize(
    ("event", "ending", "raised"),
    [
        (FAILED, {"soft_fail": False, "retries": 2, "xcom": True}, AirflowFailException),  # retries: no retry
        (
            {"status": "timeout", "message": "late"},
            {"soft_fail": False, "retries": 0, "xcom": True},
            AirflowSensorTimeout,
        ),
        (
            {"status": "error", "message": "no token"},
            {"soft_fail": False, "retries": 0, "xcom": True},
            RuntimeError,
        ),
        (SUCCESS, {"soft_fail": False, "retries": 0, "xcom": True}, None),  # a worker pushes the XCom
        (FAILED, None, AirflowFailException),  # deferred from a worker: it resumes there as today
        (SUCCESS, None, None),
    ],
)
def test_anything_else_resumes_in_a_worker_as_a_deferred_sensor(
    event: dict[str, Any], ending: dict[str, Any] | None, raised: type[Exception] | None
) -> None:
    end = task_end(event, "backup", ending, logging.getLogger("t"))
    assert type(end) is TriggerEvent and end.payload == event
    if raised is None:
        assert sensor().execute_complete({}, end.payload) == {"id": "b1"}
    else:
        with pytest.raises(raised):
            sensor().execute_complete({}, end.payload)


def logged(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """What was logged: Airflow's structlog writes to stdout, the stdlib to caplog."""
    return capsys.readouterr().out + caplog.text


def run_trigger(trigger: Any) -> list[Any]:
    async def collect() -> list[Any]:
        return [event async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), 30))


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_the_started_trigger_passes(ges_connection: Any) -> None:
    emu = ges_connection
    emu.add_graph("movies")
    made = emu.add_backup("movies", status="success", start=NOW)
    kwargs = {"ges_conn_id": "ges_default", "graph_name": "movies", "newer_than": NOW.isoformat()}
    ending = {"soft_fail": False, "retries": 0, "xcom": False}
    (end,) = run_trigger(GesBackupSensorTrigger(**kwargs, poll_interval=0.05, ending=ending))
    assert type(end) is TaskSuccessEvent and end.xcoms is None
    (end,) = run_trigger(
        GesBackupSensorTrigger(**kwargs, poll_interval=0.05, ending={**ending, "xcom": True})
    )
    assert type(end) is TriggerEvent and end.payload["backup"]["id"] == made["id"]  # a worker pushes it


@pytest.mark.ges_emulator(graphs=0, backups=0)
@pytest.mark.parametrize("case", ["failed backup", "missing graph"])
def test_the_started_trigger_fails_fast(
    ges_connection: Any, case: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    emu = ges_connection
    emu.add_graph("movies")
    emu.add_backup("movies", status="failed", start=NOW)
    graph = "movies" if case == "failed backup" else "moveis"
    ending = {"soft_fail": False, "retries": 0, "xcom": True}
    trigger = GesBackupSensorTrigger(
        ges_conn_id="ges_default",
        graph_name=graph,
        newer_than=NOW.isoformat(),
        poll_interval=0.05,
        ending=ending,
    )
    (end,) = run_trigger(trigger)
    assert type(end) is TaskFailedEvent
    assert (
        "failed, and no later backup succeeded" if case == "failed backup" else "No graph named 'moveis'"
    ) in logged(capsys, caplog)


@pytest.mark.ges_emulator(graphs=0, backups=0)
def test_the_started_job_trigger_resolves_the_graph_name(
    ges_connection: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    emu = ges_connection
    graph = emu.add_graph("movies")
    job_id = GesHook("ges_default").create_backup(graph["id"])
    ending = {"soft_fail": False, "retries": 0, "xcom": True}  # a worker pushes the job
    (end,) = run_trigger(
        GesJobSensorTrigger(
            ges_conn_id="ges_default", graph_name="movies", job_id=job_id, poll_interval=0.05, ending=ending
        )
    )
    assert type(end) is TriggerEvent and end.payload["job"]["jobId"] == job_id
    (end,) = run_trigger(
        GesJobSensorTrigger(
            ges_conn_id="ges_default", graph_name="nope", job_id=job_id, poll_interval=0.05, ending=ending
        )
    )
    assert type(end) is TaskFailedEvent and "No graph named 'nope'" in logged(capsys, caplog)
