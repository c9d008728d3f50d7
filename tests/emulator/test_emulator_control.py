"""The control API (``/__emulator__/...``), in-process (the ``ctl`` CLI: test_emulator_cli.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import requests

from airflow_provider_ges.emulator import GesEmulator
from airflow_provider_ges.emulator.api import Request

from .test_emulator import Client, assert_ges_error
from .test_emulator_lifecycle import wait_for


def control(emu: GesEmulator, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(method, f"{emu.url}/__emulator__/{path}", json=body, timeout=5)


def ok(emu: GesEmulator, method: str, path: str, body: Any = None) -> Any:
    response = control(emu, method, path, body)
    assert response.status_code == 200, response.text
    return response.json()


def refused(response: requests.Response, status: int, text: str) -> None:
    assert response.status_code == status, response.text
    assert text in response.json()["error"]


@pytest.fixture
def emu() -> Iterator[GesEmulator]:
    with GesEmulator(
        graphs=2, backups=4, seed=1, backup_duration=0.1, graph_action_duration=0.1, control=True
    ) as e:
        yield e


def test_disabled_by_default(ges_emulator: GesEmulator) -> None:
    refused(control(ges_emulator, "GET", "stats"), 403, "control=True (CLI: --control)")
    refused(control(ges_emulator, "POST", "graphs", {"name": "movies"}), 403, "disabled")
    assert ges_emulator.find_graph("movies") is None


@pytest.mark.parametrize("client", ["192.0.2.7", "::ffff:10.0.0.1", "2001:db8::1", ""])
def test_refused_for_non_loopback_clients(emu: GesEmulator, client: str) -> None:
    response = emu._api.handle(Request("GET", "/__emulator__/stats", client=client))  # no other address here
    assert response is not None and response.status == 403
    assert b"loopback clients only" in response.body
    for loopback in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        response = emu._api.handle(Request("GET", "/__emulator__/stats", client=loopback))
        assert response is not None and response.status == 200


def test_graphs_and_backups(emu: GesEmulator) -> None:
    graph = ok(emu, "POST", "graphs", {"name": "movies"})
    assert emu.find_graph("movies") == graph and graph["status"] == "200"
    backup = ok(
        emu, "POST", "backups", {"graph": "movies", "status": "backing_up", "start": "2026-01-02T03:04:05Z"}
    )
    assert backup == emu.backup(backup["id"]) and backup["graphId"] == graph["id"]
    assert (backup["status"], backup["backupMethod"], backup["startTimestamp"]) == (
        "backing_up",
        "manual",
        1767323045000,
    )
    auto = ok(
        emu,
        "POST",
        "backups",
        {"graph": graph["id"], "method": "auto", "start": 1767323045000, "duration": 0},
    )
    assert auto["startTime"] == "2026-01-02T03:04:05" and auto["endTime"] == auto["startTime"]
    assert auto["name"].endswith("_auto") and auto["status"] == "success"
    done = ok(emu, "PUT", f"backups/{backup['id']}/status", {"status": "success"})
    assert done["status"] == "success" and emu.backup(backup["id"]) == done
    assert ok(emu, "DELETE", "graphs/movies") == {"id": graph["id"]}
    assert emu.find_graph("movies")["status"] == "400"  # type: ignore[index]


def test_listings_and_a_backup_added_now(emu: GesEmulator) -> None:
    graphs = ok(emu, "GET", "graphs")
    assert graphs == emu.graphs() and len(graphs) == 2
    first, second = (g["name"] for g in graphs)
    assert ok(emu, "GET", "backups") == emu.backups()
    before = datetime.now(timezone.utc).timestamp() * 1000
    added = ok(emu, "POST", "backups", {"graph": first, "status": "failed"})
    assert before - 1000 <= added["startTimestamp"] <= datetime.now(timezone.utc).timestamp() * 1000
    assert added["endTimestamp"] == added["startTimestamp"]  # no start given: it starts and ends now
    timed = ok(emu, "POST", "backups", {"graph": first, "duration": 5, "start": 1767323045000})
    assert timed["endTimestamp"] == 1767323050000
    mine = ok(emu, "GET", f"backups?graph={first}")
    assert mine == emu.backups(graphs[0]["id"]) and mine[-2:] == [added, timed]
    assert ok(emu, "GET", f"backups?graph={graphs[1]['id']}&status=failed") == [
        b for b in emu.backups(graphs[1]["id"]) if b["status"] == "failed"
    ]
    assert ok(emu, "GET", f"backups?graph={first}&status=failed")[-1] == added
    assert all(b["graph_name"] == second for b in ok(emu, "GET", f"backups?graph={second}"))
    refused(control(emu, "GET", "backups?graph=nope"), 404, "no graph 'nope'")
    refused(
        control(emu, "GET", "backups?status=done"),
        400,
        "field 'status' is 'done', expected one of backing_up, success, failed",
    )


def test_every_control_reply_says_it_is_the_emulator(emu: GesEmulator, ges_emulator: GesEmulator) -> None:
    for response in (
        control(emu, "GET", "stats"),
        control(emu, "GET", "nothing-here"),
        control(ges_emulator, "GET", "stats"),  # disabled: 403
    ):
        assert response.headers["X-GES-Emulator"] == "control", response.status_code
    assert "X-GES-Emulator" not in Client(emu).get("/graphs").headers


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "text"),
    [
        ("PUT", "backups/nope/status", {"status": "success"}, 404, "no backup 'nope'"),
        ("POST", "backups", {"graph": "nope"}, 404, "no graph 'nope'"),
        ("POST", "backups", {}, 400, "'graph' is required"),
        ("POST", "backups", {"graph": "movies", "status": "done"}, 400, "backup status must be one of"),
        ("POST", "backups", {"graph": "movies", "duration": "long"}, 400, "'duration' has the wrong type"),
        ("POST", "backups", {"graph": "movies", "start": "yesterday"}, 400, "not an ISO 8601 time"),
        ("PUT", "faults", {"spec": "teapot:every=1"}, 400, "unknown fault kind"),
        ("POST", "fail-next-job", {"graph": "nope"}, 404, "no graph"),
        ("DELETE", "graphs/nope", None, 404, "no graph"),
        ("GET", "nothing-here", None, 404, "unknown control call GET /__emulator__/nothing-here"),
        ("POST", "graphs", [1], 400, "JSON object"),
        ("PUT", "graphs/nope/status", {"status": "206"}, 404, "no graph 'nope'"),
        ("PUT", "graphs/movies/status", {}, 400, "'status' is required"),
        (
            "PUT",
            "graphs/movies/status",
            {"status": "206", "after": "soon"},
            400,
            "'after' has the wrong type",
        ),
        ("PUT", "graphs/movies/status", {"status": "400"}, 400, "delete_graph"),
        ("PUT", "faults", {"spec": "429:after=1"}, 400, "fault kind '429' cannot take 'after'"),
        ("PUT", "settings", {"job_wait_state": "queued"}, 400, "job_wait_state must be one of"),
        ("PUT", "settings", {"job_pending": -1}, 400, "'job_pending' must not be negative"),
        ("PUT", "settings", {"job_pending": "1"}, 400, "'job_pending' has the wrong type"),
        ("PUT", "settings", {"colour": "red"}, 400, "unknown setting 'colour'"),
    ],
)
def test_errors(emu: GesEmulator, method: str, path: str, body: Any, status: int, text: str) -> None:
    emu.add_graph("movies")
    refused(control(emu, method, path, body), status, text)


def test_stats_faults_and_failing_jobs(emu: GesEmulator) -> None:
    client = Client(emu)
    client.get("/graphs")
    stats = ok(emu, "GET", "stats")
    assert (
        stats == emu.counters and stats["list_graphs"] == 1 and stats["requests"] == 1
    )  # control calls don't count
    assert ok(emu, "PUT", "faults", {"spec": "503:every=2"}) == {"spec": "503:every=2"}
    assert [client.get("/graphs").status_code for _ in range(2)] == [200, 503]
    ok(emu, "PUT", "faults", {"spec": ""})
    assert client.get("/graphs").status_code == 200
    graph = emu.graphs()[1]
    assert ok(emu, "POST", "fail-next-job", {"graph": graph["name"], "reason": "disk full"}) == {
        "graph_id": graph["id"],
        "reason": "disk full",
    }
    job_id = client.ok("POST", f"/graphs/{graph['id']}/backups")["jobId"]
    emu.set_backup_status(emu.backups(graph["id"])[-1]["id"], "failed")
    assert client.ok("GET", f"/graphs/{graph['id']}/jobs/{job_id}/status")["failReason"] == "disk full"


def test_control_paths_are_not_ges_paths(emu: GesEmulator) -> None:
    """The GES API behaves the same with control on: auth, routing, counters."""
    assert_ges_error(Client(emu).get("/graphs/unknown"), 400, "GES.7000")
    assert requests.get(f"{emu.url}/__emulator__", timeout=5).status_code == 404  # the bare prefix is no call
    assert emu.counters["not_found"] == 1


def test_graph_status_after_faults_and_settings(emu: GesEmulator) -> None:
    client = Client(emu)
    graph = emu.graphs()[0]
    shown = ok(emu, "PUT", f"graphs/{graph['name']}/status", {"status": "206", "then": "200", "after": 0.2})
    assert shown["status"] == "206" and emu.graph(graph["id"])["status"] == "206"
    wait_for(lambda: emu.graph(graph["id"])["status"] == "200")
    spec = "504:scope=create:after=1:count=1"
    assert ok(emu, "PUT", "faults", {"spec": spec}) == {"spec": spec}
    assert client.call("POST", f"/graphs/{graph['id']}/backups").status_code == 504
    assert emu.job_names(graph["id"]) == ["BackupGraph"] and emu.counters["replies_lost"] == 1
    defaults = {
        "job_wait_state": "pending",
        "job_pending": 0.0,
        "graph_action_duration": 0.1,
        "backup_duration": 0.1,
    }
    assert ok(emu, "GET", "settings") == defaults
    refused(control(emu, "PUT", "settings", {"job_pending": 5, "job_wait_state": "queued"}), 400, "queued")
    assert emu.job_pending == 0.0  # a refused change changes nothing
    changed = ok(emu, "PUT", "settings", {"job_wait_state": "waiting", "job_pending": 5})
    assert changed == {**defaults, "job_wait_state": "waiting", "job_pending": 5}
    other = emu.graphs()[1]["id"]
    job_id = client.ok("POST", f"/graphs/{other}/action", params={"action_id": "stop"})["jobId"]
    assert emu.job(other, job_id)["status"] == "waiting"
