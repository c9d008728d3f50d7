"""The emulator's lifecycle calls over HTTP: backups and their jobs, show graph, stop/start (restore),
the jobs list, backup quota and injected job failures."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_ges.emulator import GesEmulator

from .test_emulator import JOB_KEYS, Client, assert_ges_error

UTC_TEXT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
FAST = {"graphs": 2, "backups": 4, "backup_duration": 0.2, "graph_action_duration": 0.1}


@pytest.fixture
def client(ges_emulator: GesEmulator) -> Client:
    return Client(ges_emulator)


def wait_for(check: Callable[[], Any], timeout: float = 3.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return result


def status_of(client: Client, graph_id: str) -> str:
    return str(client.ok("GET", f"/graphs/{graph_id}")["graph"]["status"])


def job_of(client: Client, graph_id: str, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = client.ok("GET", f"/graphs/{graph_id}/jobs/{job_id}/status")
    return job


def finished(client: Client, graph_id: str, job_id: str) -> dict[str, Any] | None:
    job = job_of(client, graph_id, job_id)
    return job if job["status"] in ("success", "failed") else None


def action(client: Client, graph_id: str, action_id: str, **kw: Any) -> str:
    job_id: str = client.ok("POST", f"/graphs/{graph_id}/action", params={"action_id": action_id}, **kw)[
        "jobId"
    ]
    return job_id


def run(client: Client, graph_id: str, action_id: str, **kw: Any) -> dict[str, Any]:
    """Stop or start a graph and wait for the job to end; its final status reply."""
    job_id = action(client, graph_id, action_id, **kw)
    job: dict[str, Any] = wait_for(lambda: finished(client, graph_id, job_id))
    return job


def stopped_graph(client: Client) -> str:
    graph_id: str = client.emu.graphs()[0]["id"]
    assert run(client, graph_id, "stop")["status"] == "success"
    return graph_id


# --- backups and their jobs ---------------------------------------------------------------------------


@pytest.mark.ges_emulator(**FAST)
def test_backup_job_and_graph_status_follow_the_backup(client: Client) -> None:
    graph_id = client.emu.graphs()[0]["id"]
    assert status_of(client, graph_id) == "200"
    job_id = client.ok("POST", f"/graphs/{graph_id}/backups")["jobId"]
    assert status_of(client, graph_id) == "903"
    assert client.ok("GET", "/graphs")["graphs"][0]["status"] == "903"
    new = client.emu.backups(graph_id)[-1]
    assert (new["status"], new["backupMethod"]) == ("backing_up", "manual")
    job = job_of(client, graph_id, job_id)
    assert list(job) == JOB_KEYS
    assert (job["status"], job["jobName"], job["endTime"], job["jobProgress"]) == (
        "running",
        "BackupGraph",
        None,
        0,
    )
    assert UTC_TEXT.fullmatch(job["beginTime"])
    assert_ges_error(client.call("POST", f"/graphs/{graph_id}/backups"), 400, "GES.7002")
    assert_ges_error(client.call("DELETE", f"/graphs/{graph_id}/backups/{new['id']}"), 400, "GES.7002")
    job = wait_for(lambda: finished(client, graph_id, job_id))
    assert job["status"] == "success" and UTC_TEXT.fullmatch(job["endTime"]) and job["jobProgress"] == 1
    assert status_of(client, graph_id) == "200"
    assert client.ok("DELETE", f"/graphs/{graph_id}/backups/{new['id']}") == {}


@pytest.mark.ges_emulator(**FAST, job_pending=0.15)
def test_jobs_start_pending(client: Client) -> None:
    graph_id = client.emu.graphs()[0]["id"]
    job_id = client.ok("POST", f"/graphs/{graph_id}/backups")["jobId"]
    assert job_of(client, graph_id, job_id)["status"] == "pending"
    wait_for(lambda: job_of(client, graph_id, job_id)["status"] == "running", timeout=0.5)
    assert wait_for(lambda: finished(client, graph_id, job_id))["status"] == "success"


@pytest.mark.ges_emulator(**{**FAST, "backup_duration": 0.6}, job_pending=0.15, job_wait_state="waiting")
def test_jobs_can_wait_as_waiting(client: Client) -> None:
    graph_id = client.emu.graphs()[0]["id"]
    job_id = client.ok("POST", f"/graphs/{graph_id}/backups")["jobId"]
    assert job_of(client, graph_id, job_id)["status"] == "waiting"
    waiting = client.ok("GET", "/graphs/jobs", params={"status": "waiting"})["jobList"]
    assert [job["jobId"] for job in waiting] == [job_id]
    wait_for(lambda: job_of(client, graph_id, job_id)["status"] == "running", timeout=0.5)
    assert wait_for(lambda: finished(client, graph_id, job_id))["status"] == "success"
    client.emu.job_wait_state = "pending"
    job_id = action(client, graph_id, "stop")
    assert job_of(client, graph_id, job_id)["status"] == "pending"
    with pytest.raises(ValueError, match="job_wait_state must be one of"):
        client.emu.job_wait_state = "queued"  # type: ignore[assignment]
    assert client.emu.job_wait_state == "pending"


@pytest.mark.ges_emulator(graphs=1, backups=2, backup_duration=0.0, backup_quota=3)
def test_backup_quota(client: Client) -> None:
    graph_id = client.emu.graphs()[0]["id"]
    client.ok("POST", f"/graphs/{graph_id}/backups")
    response = client.call("POST", f"/graphs/{graph_id}/backups")
    assert_ges_error(response, 400, "GES.7019")
    assert "quota (3)" in response.json()["errorMessage"]
    client.emu.backup_quota = None
    client.ok("POST", f"/graphs/{graph_id}/backups")
    assert len(client.emu.backups(graph_id)) == 4


def test_delete_backup_refusals(client: Client) -> None:
    first, second = (g["id"] for g in client.emu.graphs())
    running = client.emu.add_backup(first, status="backing_up")
    assert status_of(client, first) == "903"  # any running backup counts, not only API-made ones
    assert_ges_error(client.call("DELETE", f"/graphs/{first}/backups/{running['id']}"), 400, "GES.7002")
    assert_ges_error(client.call("DELETE", f"/graphs/{second}/backups/{running['id']}"), 400, "GES.7024")
    assert_ges_error(client.call("DELETE", f"/graphs/{first}/backups/nope"), 400, "GES.7024")
    client.emu.set_backup_status(running["id"], "failed")
    assert status_of(client, first) == "200"
    assert client.ok("DELETE", f"/graphs/{first}/backups/{running['id']}") == {}


# --- one graph ----------------------------------------------------------------------------------------


def test_show_graph(client: Client) -> None:
    graph = client.emu.graphs()[1]
    assert client.ok("GET", f"/graphs/{graph['id']}") == {"graph": graph}
    assert client.emu.graph(graph["id"]) == graph
    assert_ges_error(client.get("/graphs/unknown"), 400, "GES.7000")
    client.emu.delete_graph(graph["id"])
    assert_ges_error(client.get(f"/graphs/{graph['id']}"), 400, "GES.7000")
    assert client.emu.counters["show_graph"] == 3


@pytest.mark.ges_emulator(**FAST)
def test_transitional_graph_status(client: Client) -> None:
    graph = client.emu.graphs()[0]
    shown = client.emu.set_graph_status(graph["name"], "206", then="200", after=0.3)
    assert shown["status"] == "206" and status_of(client, graph["id"]) == "206"
    assert client.ok("GET", "/graphs")["graphs"][0]["status"] == "206"
    # scaling out: refused like any state but running (and for start, stopped)
    assert_ges_error(client.call("POST", f"/graphs/{graph['id']}/backups"), 400, "GES.7001")
    for action_id, code in (("stop", "GES.7001"), ("start", "GES.7015")):
        response = client.call("POST", f"/graphs/{graph['id']}/action", params={"action_id": action_id})
        assert_ges_error(response, 400, code)
    wait_for(lambda: status_of(client, graph["id"]) == "200")
    assert run(client, graph["id"], "stop")["status"] == "success"
    assert client.emu.job_names(graph["name"]) == ["StopGraph"]  # the refused calls made no job


@pytest.mark.ges_emulator(**FAST)
def test_graph_status_changes_are_replaced_and_never_undelete(client: Client) -> None:
    first, second = (g["id"] for g in client.emu.graphs())
    client.emu.set_graph_status(first, "206", then="200", after=0.05)
    client.emu.set_graph_status(first, "211")  # replaces the scheduled change
    client.emu.set_graph_status(second, "210", then="200", after=0.05)
    client.emu.delete_graph(second)
    time.sleep(0.1)
    assert status_of(client, first) == "211"
    assert client.emu.find_graph(second)["status"] == "400"  # type: ignore[index]
    with pytest.raises(ValueError, match="no graph 'nope'"):
        client.emu.set_graph_status("nope", "206")
    with pytest.raises(ValueError, match="delete_graph"):
        client.emu.set_graph_status(first, "200", then="400")
    assert status_of(client, first) == "211"


# --- stop and start -----------------------------------------------------------------------------------


@pytest.mark.ges_emulator(**FAST)
def test_stop_then_start(client: Client) -> None:
    graph_id = client.emu.graphs()[0]["id"]
    assert_ges_error(
        client.call("POST", f"/graphs/{graph_id}/action", params={"action_id": "start"}), 400, "GES.7015"
    )
    job_id = action(client, graph_id, "stop")
    assert status_of(client, graph_id) == "901"
    assert_ges_error(
        client.call("POST", f"/graphs/{graph_id}/action", params={"action_id": "stop"}), 400, "GES.7003"
    )
    assert_ges_error(
        client.call("POST", f"/graphs/{graph_id}/action", params={"action_id": "start"}), 400, "GES.7003"
    )
    job = wait_for(lambda: finished(client, graph_id, job_id))
    assert (job["status"], job["jobName"], job["failReason"]) == ("success", "StopGraph", None)
    assert status_of(client, graph_id) == "900"
    assert_ges_error(
        client.call("POST", f"/graphs/{graph_id}/action", params={"action_id": "stop"}), 400, "GES.7003"
    )
    assert_ges_error(client.call("POST", f"/graphs/{graph_id}/backups"), 400, "GES.7001")
    job_id = action(client, graph_id, "start")
    assert status_of(client, graph_id) == "920"
    job = wait_for(lambda: finished(client, graph_id, job_id))
    assert (job["status"], job["jobName"]) == ("success", "StartGraph")
    graph = client.emu.graph(graph_id)
    assert graph["status"] == "200" and "restoredBackupId" not in graph
    assert client.emu.restores == [] and client.emu.counters["graph_action"] == 6


@pytest.mark.ges_emulator(**FAST)
def test_stop_while_backing_up_is_refused(client: Client) -> None:
    graph_id = client.emu.graphs()[0]["id"]
    client.ok("POST", f"/graphs/{graph_id}/backups")
    assert_ges_error(
        client.call("POST", f"/graphs/{graph_id}/action", params={"action_id": "stop"}), 400, "GES.7002"
    )


@pytest.mark.ges_emulator(**FAST)
def test_start_from_a_backup(client: Client) -> None:
    graph_id = stopped_graph(client)
    other_graph = client.emu.graphs()[1]["id"]
    good = client.emu.add_backup(graph_id, status="success")
    bad = client.emu.add_backup(graph_id, status="failed")
    foreign = client.emu.add_backup(other_graph, status="success")

    def start(backup_id: Any) -> Any:
        return client.call(
            "POST",
            f"/graphs/{graph_id}/action",
            params={"action_id": "start"},
            json={"graph_backup_id": backup_id},
        )

    assert_ges_error(start("nope"), 400, "GES.7024")
    assert_ges_error(start(foreign["id"]), 400, "GES.7024")
    assert_ges_error(start(bad["id"]), 400, "GES.0001")
    assert_ges_error(start(7), 400, "GES.0001")
    assert status_of(client, graph_id) == "900" and client.emu.restores == []
    job_id = start(good["id"]).json()["jobId"]
    assert client.emu.restores == [(graph_id, good["id"])]
    wait_for(lambda: finished(client, graph_id, job_id))
    graph = client.emu.graph(graph_id)
    assert graph["status"] == "200" and graph["restoredBackupId"] == good["id"]


@pytest.mark.ges_emulator(**FAST)
@pytest.mark.parametrize(
    ("params", "body"),
    [
        ({"action_id": "restart"}, None),
        ({}, None),
        ({"action_id": "start"}, b"{not json"),
        ({"action_id": "start"}, b"[]"),
    ],
)
def test_bad_action_requests(client: Client, params: dict[str, str], body: bytes | None) -> None:
    graph_id = stopped_graph(client)
    response = client.call("POST", f"/graphs/{graph_id}/action", params=params, data=body)
    if body == b"[]":  # not an object: no backup named, a plain start
        assert response.status_code == 200
    else:
        assert_ges_error(response, 400, "GES.0001")
    assert_ges_error(
        client.call("POST", "/graphs/unknown/action", params={"action_id": "stop"}), 400, "GES.7000"
    )


# --- injected failures --------------------------------------------------------------------------------


@pytest.mark.ges_emulator(**FAST)
def test_fail_next_job_backup(client: Client) -> None:
    first, second = (g["id"] for g in client.emu.graphs())
    client.emu.fail_next_job(second, reason="disk full")
    job_id = client.ok("POST", f"/graphs/{first}/backups")["jobId"]  # another graph: not this one
    assert wait_for(lambda: finished(client, first, job_id))["status"] == "success"
    job_id = client.ok("POST", f"/graphs/{second}/backups")["jobId"]
    job = wait_for(lambda: finished(client, second, job_id))
    assert (job["status"], job["failReason"]) == ("failed", "disk full")
    assert client.emu.backups(second)[-1]["status"] == "failed"
    assert status_of(client, second) == "200"
    job_id = client.ok("POST", f"/graphs/{second}/backups")["jobId"]  # one failure per call
    assert wait_for(lambda: finished(client, second, job_id))["status"] == "success"


@pytest.mark.ges_emulator(**FAST)
def test_fail_next_job_stop_and_start(client: Client) -> None:
    graph_id = client.emu.graphs()[0]["id"]
    client.emu.fail_next_job()
    job = run(client, graph_id, "stop")
    assert (job["status"], job["failReason"]) == ("failed", "StopGraph failed.")
    assert status_of(client, graph_id) == "200"  # a failed stop leaves it running
    assert run(client, graph_id, "stop")["status"] == "success"
    backup = client.emu.add_backup(graph_id)
    client.emu.fail_next_job(reason="no capacity")
    job_id = action(client, graph_id, "start", json={"graph_backup_id": backup["id"]})
    job = wait_for(lambda: finished(client, graph_id, job_id))
    assert (job["status"], job["failReason"]) == ("failed", "no capacity")
    graph = client.emu.graph(graph_id)
    assert graph["status"] == "900" and "restoredBackupId" not in graph  # a failed start leaves it stopped
    assert client.emu.restores == [(graph_id, backup["id"])]  # the request was accepted


# --- the jobs list ------------------------------------------------------------------------------------


@pytest.mark.ges_emulator(**FAST)
def test_list_jobs(client: Client) -> None:
    first, second = client.emu.graphs()
    backup_job = client.ok("POST", f"/graphs/{first['id']}/backups")["jobId"]
    stop_job = action(client, second["id"], "stop")
    body = client.ok("GET", "/graphs/jobs")
    assert body["jobCount"] == 2 and [j["jobId"] for j in body["jobList"]] == [backup_job, stop_job]
    assert body["jobList"] == client.emu.jobs()
    named = client.ok("GET", "/graphs/jobs", params={"graph_name": second["name"]})["jobList"]
    assert [j["jobId"] for j in named] == [stop_job]
    assert (
        client.ok("GET", "/graphs/jobs", params={"offset": 1, "limit": 1})["jobList"] == body["jobList"][1:]
    )
    wait_for(lambda: finished(client, second["id"], stop_job))
    done = client.ok("GET", "/graphs/jobs", params={"status": "success"})["jobList"]
    assert stop_job in [j["jobId"] for j in done]
    client.emu.max_limit = 5
    assert_ges_error(client.get("/graphs/jobs", limit=6), 400, "GES.0001")
    assert client.emu.counters["list_jobs"] == 5


@pytest.mark.ges_emulator(**FAST)
def test_jobs_list_stop_and_start_jobs_by_graph(client: Client) -> None:
    first, second = client.emu.graphs()
    client.ok("POST", f"/graphs/{second['id']}/backups")
    assert run(client, first["id"], "stop")["status"] == "success"
    assert run(client, first["id"], "start")["status"] == "success"
    listed = client.ok("GET", "/graphs/jobs", params={"graph_name": first["name"]})["jobList"]
    names = ["StopGraph", "StartGraph"]
    assert [job["jobName"] for job in listed] == names
    assert listed == client.emu.jobs(first["name"])
    assert all(UTC_TEXT.fullmatch(job["beginTime"]) for job in listed)
    assert listed[0]["beginTime"] <= listed[1]["beginTime"]
    assert client.emu.job_names(first["id"]) == client.emu.job_names(first["name"]) == names
    assert client.emu.job_names(second["name"]) == ["BackupGraph"]
    with pytest.raises(ValueError, match="no graph"):
        client.emu.job_names("nope")


@pytest.mark.ges_emulator(graphs=1, backups=0)
def test_settings_are_live(ges_emulator: GesEmulator) -> None:
    ges_emulator.graph_action_duration = 0.0
    ges_emulator.job_pending = 0.0
    client = Client(ges_emulator)
    graph_id = ges_emulator.graphs()[0]["id"]
    job_id = action(client, graph_id, "stop")
    assert job_of(client, graph_id, job_id)["status"] == "success"
    assert type(ges_emulator).graph_action_duration.__doc__
