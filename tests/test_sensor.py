"""GesBackupSensor's rules, driven through its public methods against requests-mock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_ges._compat import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)
from airflow_provider_ges.models import datetime_to_ms
from airflow_provider_ges.sensors.ges import GesBackupSensor
from airflow_provider_ges.triggers.ges import GesBackupTrigger
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
    assert "b-00002" in message and "g1" in message and "2026-11-29T04:00:00+00:00" in message


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
