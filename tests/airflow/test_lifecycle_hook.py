"""The lifecycle calls of GesHook/GesAsyncHook: create, job status, delete, show/stop/start a graph;
which POSTs are retried and which are not."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_ges.emulator import GesEmulator
from airflow_provider_ges.endpoints import graph_action_request
from airflow_provider_ges.exceptions import GesApiError, GesNotFoundError, GesTransientError
from airflow_provider_ges.hooks.ges import GesAsyncHook, GesHook, resend_is_safe
from airflow_provider_ges.models import Job, JobStatus
from tests.conftest import ENDPOINT, PROJECT
from tests.helpers import TOKEN_URL, token_reply

GRAPH_URL = f"{ENDPOINT}/v1.0/{PROJECT}/graphs/g-1"
FAST = {"graphs": 1, "backups": 2, "backup_duration": 0.3, "graph_action_duration": 0.1}


def hook() -> GesHook:
    return GesHook(retry_base_delay=0.001)


def wait_job(h: GesHook, graph_id: str, job_id: str, timeout: float = 5.0) -> Job:
    deadline = time.monotonic() + timeout
    while not (job := h.get_job(graph_id, job_id)).is_terminal:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return job


@pytest.mark.ges_emulator(**FAST)
def test_create_backup_then_job_succeeds_and_backup_is_listed(ges_connection: GesEmulator) -> None:
    emu = ges_connection
    graph = emu.graphs()[0]
    h = hook()
    job_id = h.create_backup(graph["id"])
    job = wait_job(h, graph["id"], job_id)
    assert job.status is JobStatus.SUCCESS or job.status == "success"
    assert job.outcome == "success" and job.fail_reason is None
    assert job.begin_time is not None and job.begin_time.tzinfo is not None
    assert job.end_time is not None and job.end_time >= job.begin_time
    assert job.job_id == job_id
    assert len(h.list_backups(graph["id"], status="success", backup_method="manual")) >= 1


@pytest.mark.ges_emulator(**FAST)
def test_create_on_a_graph_being_backed_up_is_raised_at_once_not_retried(ges_connection: GesEmulator) -> None:
    emu = ges_connection
    graph = emu.graphs()[0]
    emu.add_backup(graph["name"], status="backing_up")
    emu.reset_counters()
    with pytest.raises(GesTransientError) as err:
        hook().create_backup(graph["id"])
    assert err.value.error_code == "GES.7002"
    assert emu.counters["create_backup"] == 1  # GES.7002 means: attach, never retry into it


@pytest.mark.ges_emulator(**FAST, backup_quota=2)
def test_quota_reached_is_raised(ges_connection: GesEmulator) -> None:
    graph = ges_connection.graphs()[0]
    with pytest.raises(GesApiError, match=r"GES\.7019"):
        hook().create_backup(graph["id"])


@pytest.mark.ges_emulator(**FAST)
def test_failed_job_carries_its_reason(ges_connection: GesEmulator) -> None:
    emu = ges_connection
    graph = emu.graphs()[0]
    emu.fail_next_job(reason="disk full")
    h = hook()
    job = wait_job(h, graph["id"], h.create_backup(graph["id"]))
    assert job.outcome == "failed" and job.fail_reason == "disk full"
    assert "disk full" in job.describe("graph 'x'")


@pytest.mark.ges_emulator(**FAST)
def test_stop_then_start_from_a_backup(ges_connection: GesEmulator) -> None:
    emu = ges_connection
    graph = emu.graphs()[0]
    good = emu.add_backup(graph["name"], status="success")
    h = hook()
    assert h.get_graph(graph["id"]).status == "200"
    assert wait_job(h, graph["id"], h.stop_graph(graph["id"])).is_success
    assert h.get_graph(graph["id"]).status == "900"
    assert wait_job(h, graph["id"], h.start_graph(graph["id"], backup_id=good["id"])).is_success
    shown = h.get_graph(graph["id"])
    assert shown.status == "200"
    assert emu.restores == [(graph["id"], good["id"])]
    extra = shown.model_extra or {}
    assert extra.get("restoredBackupId", extra.get("restored_backup_id")) == good["id"]


@pytest.mark.ges_emulator(**FAST)
def test_delete_backup_and_missing_ones(ges_connection: GesEmulator) -> None:
    emu = ges_connection
    graph = emu.graphs()[0]
    victim = emu.add_backup(graph["name"], status="success")
    h = hook()
    h.delete_backup(graph["id"], victim["id"])
    assert victim["id"] not in {b["id"] for b in emu.backups()}
    with pytest.raises(GesNotFoundError, match=r"GES\.7024"):
        h.delete_backup(graph["id"], victim["id"])
    with pytest.raises(GesNotFoundError, match=r"GES\.7000"):
        h.get_graph("no-such-graph")
    with pytest.raises(GesNotFoundError, match=r"GES\.8301"):
        h.get_job(graph["id"], "no-such-job")


@pytest.mark.ges_emulator(**FAST)
def test_deleting_a_running_backup_is_refused_at_once(ges_connection: GesEmulator) -> None:
    emu = ges_connection
    graph = emu.graphs()[0]
    running = emu.add_backup(graph["name"], status="backing_up")
    emu.reset_counters()
    with pytest.raises(GesTransientError, match=r"GES\.7002"):
        hook().delete_backup(graph["id"], running["id"])
    assert emu.counters["delete_backup"] == 1


@pytest.mark.ges_emulator(**FAST)
def test_async_hook_runs_the_same_calls(ges_connection: GesEmulator) -> None:
    graph = ges_connection.graphs()[0]

    async def go() -> tuple[str, Job]:
        async with GesAsyncHook(retry_base_delay=0.001) as h:
            job_id = await h.create_backup(graph["id"])
            while not (job := await h.get_job(graph["id"], job_id)).is_terminal:
                await asyncio.sleep(0.05)
            return (await h.get_graph(graph["id"])).status or "", job

    status, job = asyncio.run(go())
    assert job.is_success and status == "200"


# --- which POSTs retry (requests-mock: exact replies) ---------------------------------------


@pytest.mark.parametrize(
    ("reply", "retried"),
    [
        ({"status_code": 429, "json": {"error_code": "APIGW.0308", "error_msg": "throttled"}}, True),
        ({"status_code": 503, "json": {"error_code": "APIGW.0503", "error_msg": "unavailable"}}, True),
        ({"status_code": 500, "json": {"error_code": "APIGW.0500", "error_msg": "boom"}}, False),
        ({"status_code": 502, "text": "bad gateway"}, False),
        ({"status_code": 504, "text": "timeout"}, False),
        ({"status_code": 400, "json": {"errorCode": "GES.7006", "errorMessage": "engine"}}, False),
        ({"status_code": 400, "json": {"errorCode": "GES.7002", "errorMessage": "backing up"}}, False),
        ({"status_code": 200, "text": "<html>garbled</html>"}, False),
    ],
)
@pytest.mark.parametrize("call", ["create", "stop", "start"])
def test_posts_retry_only_what_the_service_cannot_have_acted_on(
    ges_conn: Any, requests_mock: Any, reply: dict[str, Any], retried: bool, call: str
) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    url = f"{GRAPH_URL}/backups" if call == "create" else f"{GRAPH_URL}/action"
    mock = requests_mock.post(url, [reply, {"json": {"jobId": "j-1"}}])
    h = hook()
    run = {
        "create": lambda: h.create_backup("g-1"),
        "stop": lambda: h.stop_graph("g-1"),
        "start": lambda: h.start_graph("g-1", backup_id="b-1"),
    }[call]
    if retried:
        assert run() == "j-1"
        assert mock.call_count == 2
    else:
        with pytest.raises(GesApiError):
            run()
        assert mock.call_count == 1


def test_a_dropped_connection_after_sending_a_create_is_not_resent(ges_conn: Any, requests_mock: Any) -> None:
    import requests

    requests_mock.post(TOKEN_URL, **token_reply())
    mock = requests_mock.post(f"{GRAPH_URL}/backups", exc=requests.exceptions.ConnectionError("reset"))
    with pytest.raises(GesTransientError):
        hook().create_backup("g-1")
    assert mock.call_count == 1


def test_get_job_and_delete_retry_every_transient_error(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    job = requests_mock.get(
        f"{GRAPH_URL}/jobs/j-1/status",
        [{"status_code": 502, "text": "x"}, {"json": {"jobId": "j-1", "status": "running"}}],
    )
    delete = requests_mock.delete(
        f"{GRAPH_URL}/backups/b-1", [{"status_code": 500, "json": {}}, {"json": {}}]
    )
    h = hook()
    assert h.get_job("g-1", "j-1").outcome == "waiting"
    h.delete_backup("g-1", "b-1")
    assert job.call_count == 2 and delete.call_count == 2


def test_start_body_names_the_backup_and_stop_has_none(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, **token_reply())
    mock = requests_mock.post(f"{GRAPH_URL}/action", json={"jobId": "j"})
    h = hook()
    h.stop_graph("g-1")
    h.start_graph("g-1")
    h.start_graph("g-1", backup_id="b-9")
    sent = [(r.qs["action_id"], r.body) for r in mock.request_history]
    assert sent == [(["stop"], None), (["start"], None), (["start"], b'{"graph_backup_id": "b-9"}')]


def test_resend_rule_and_request_checks() -> None:
    assert resend_is_safe(GesTransientError("x", status_code=429))
    assert not resend_is_safe(GesTransientError("x"))  # no reply at all
    with pytest.raises(ValueError, match="action"):
        graph_action_request(None, "g", "restart")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "status", "outcome"),
    [
        ("pending", JobStatus.PENDING, "waiting"),
        ("waiting", JobStatus.WAITING, "waiting"),  # the SDK's ListJobs state
        ("running", JobStatus.RUNNING, "waiting"),
        ("success", JobStatus.SUCCESS, "success"),
        ("failed", JobStatus.FAILED, "failed"),
        ("paused", "paused", "waiting"),  # undocumented: kept as text, waited on, never a pass
        (None, None, "waiting"),
    ],
)
def test_job_model(raw: str | None, status: Any, outcome: str) -> None:
    job = Job.model_validate_json(
        f'{{"jobId": "j", "status": {"null" if raw is None else repr(raw).replace(chr(39), chr(34))},'
        ' "beginTime": "2026-01-02T03:04:05", "endTime": "garbled", "jobProgress": 0.5, "extra": 1}'
    )
    assert job.status == status and job.outcome == outcome
    assert job.documented == (status in set(JobStatus))
    assert job.begin_time == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert job.end_time is None  # garbled: unknown, not a crash
    assert job.to_api()["extra"] == 1
