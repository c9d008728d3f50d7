"""Fault injection and hostile-server options, parsed and over real HTTP."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import pytest
import requests

from airflow_provider_ges.emulator import FaultRule, Faults, GesEmulator, Hostile, parse_faults

from .test_emulator import Client, assert_ges_error
from .test_emulator_lifecycle import run, status_of, wait_for


def list_url(emu: GesEmulator, graph: str | None = None) -> str:
    base = f"{emu.url}/v1.0/{emu.project_id}/graphs"
    return f"{base}/{graph}/backups" if graph else f"{base}/backups"


def statuses(emu: GesEmulator, n: int, url: str | None = None) -> list[int]:
    session = requests.Session()
    session.headers["X-Auth-Token"] = emu.issue_token()
    return [session.get(url or list_url(emu), timeout=5).status_code for _ in range(n)]


def token_request(emu: GesEmulator) -> requests.Response:
    user = {"name": emu.user, "password": emu.password, "domain": {"name": emu.domain}}
    body = {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"project": {"id": emu.project_id}},
        }
    }
    return requests.post(f"{emu.url}/v3/auth/tokens", json=body, timeout=5)


# --- the spec -----------------------------------------------------------------------------------------


def test_parse_full_spec() -> None:
    faults = parse_faults(
        "429:every=5:retry_after=1, 500:every=7,ges7006:every=11,drop:every=13,html:every=17,"
        "latency:ms=50,stall:rate=0.5:s=2:scope=list,503:scope=iam:count=3,seed=42"
    )
    assert faults.seed == 42
    assert faults.rules[0] == FaultRule("429", every=5, retry_after=1.0)
    assert [r.kind for r in faults.rules] == [
        "429",
        "500",
        "ges7006",
        "drop",
        "html",
        "latency",
        "stall",
        "503",
    ]
    assert faults.rules[5].ms == 50
    assert faults.rules[6] == FaultRule("stall", rate=0.5, s=2.0, scope="list")
    assert faults.rules[7] == FaultRule("503", scope="iam", count=3)
    assert parse_faults("") == Faults()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("418", "unknown fault kind"),
        ("500:every=0", "at least 1"),
        ("500:every=x", "bad value"),
        ("500:often", "bad fault option"),
        ("500:colour=red", "bad fault option"),
        ("500:every=2:rate=0.1", "not both"),
        ("500:rate=2", "between 0 and 1"),
        ("500:scope=elsewhere", "unknown fault scope"),
        ("latency:ms=-1", "negative"),
        ("speed=3", "unknown fault setting"),
        ("429:after=1", "fault kind '429' cannot take 'after' (only drop, 500, 502, 504 can)"),
        ("stall:after=1", "fault kind 'stall' cannot take 'after'"),
        ("500:after=maybe", "bad value"),
        ("504:scope=restart", "unknown fault scope"),
    ],
)
def test_parse_rejects(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_faults(spec)


def test_parse_after_and_call_scopes() -> None:
    faults = parse_faults("504:scope=start:after=1:count=1,drop:scope=delete:after=true,500:after=0")
    assert faults.rules == (
        FaultRule("504", scope="start", after=True, count=1),
        FaultRule("drop", scope="delete", after=True),
        FaultRule("500"),
    )
    scopes = ["create", "delete", "stop", "start", "action"]
    spec = ",".join(f"502:scope={scope}" for scope in scopes)
    assert [rule.scope for rule in parse_faults(spec).rules] == scopes


# --- faults over HTTP ---------------------------------------------------------------------------------


@pytest.mark.ges_emulator(faults="429:every=3:retry_after=2")
def test_every_nth_request_gets_429(ges_emulator: GesEmulator) -> None:
    session = requests.Session()
    session.headers["X-Auth-Token"] = ges_emulator.issue_token()
    responses = [session.get(list_url(ges_emulator), timeout=5) for _ in range(7)]
    assert [r.status_code for r in responses] == [200, 200, 429, 200, 200, 429, 200]
    throttled = responses[2]
    assert throttled.headers["Retry-After"] == "2"
    assert throttled.json()["error_code"] == "APIGW.0308"
    assert ges_emulator.counters["fault_429"] == 2 and ges_emulator.counters["faults_injected"] == 2
    assert ges_emulator.counters["list_backups"] == 7


GATEWAY_CODES = [("500", "APIGW.0002"), ("502", "APIGW.0201"), ("503", "APIGW.0202"), ("504", "APIGW.0203")]


@pytest.mark.parametrize(("kind", "code"), GATEWAY_CODES)
def test_gateway_errors(kind: str, code: str) -> None:
    with GesEmulator(backups=2, faults=f"{kind}:every=2:retry_after=0.5") as emu:
        session = requests.Session()
        session.headers["X-Auth-Token"] = emu.issue_token()
        assert session.get(list_url(emu), timeout=5).status_code == 200
        response = session.get(list_url(emu), timeout=5)
        assert response.status_code == int(kind)
        body = response.json()
        assert body["error_code"] == code and body["error_msg"] and body["request_id"]
        assert "Retry-After" not in response.headers


@pytest.mark.ges_emulator(faults="ges7006:every=1:count=1,html:every=1:count=1")
def test_ges7006_then_html(ges_emulator: GesEmulator) -> None:
    session = requests.Session()
    session.headers["X-Auth-Token"] = ges_emulator.issue_token()
    first = session.get(list_url(ges_emulator), timeout=5)
    assert first.status_code == 400
    assert first.json() == {
        "errorCode": "GES.7006",
        "errorMessage": "The underlying graph engine has internal error.",
    }
    second = session.get(list_url(ges_emulator), timeout=5)  # the ges7006 rule is used up
    assert second.status_code == 200 and second.headers["Content-Type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        json.loads(second.text)
    assert session.get(list_url(ges_emulator), timeout=5).json()["backupCount"] == 12


@pytest.mark.ges_emulator(faults="drop:every=2")
def test_drop_closes_without_response(ges_emulator: GesEmulator) -> None:
    session = requests.Session()
    session.headers["X-Auth-Token"] = ges_emulator.issue_token()
    assert session.get(list_url(ges_emulator), timeout=5).status_code == 200
    with pytest.raises(requests.ConnectionError):
        session.get(list_url(ges_emulator), timeout=5)
    assert session.get(list_url(ges_emulator), timeout=5).status_code == 200
    assert ges_emulator.counters["fault_drop"] == 1


@pytest.mark.ges_emulator(faults="stall:every=2:s=0.3,latency:ms=40")
def test_stall_and_latency(ges_emulator: GesEmulator) -> None:
    session = requests.Session()
    session.headers["X-Auth-Token"] = ges_emulator.issue_token()
    times = []
    for _ in range(2):
        start = time.perf_counter()
        assert session.get(list_url(ges_emulator), timeout=5).status_code == 200
        times.append(time.perf_counter() - start)
    assert 0.04 <= times[0] < 0.3
    assert times[1] >= 0.34
    assert session.get(list_url(ges_emulator), timeout=5).status_code == 200  # third: latency only
    with pytest.raises(requests.Timeout):
        session.get(list_url(ges_emulator), timeout=0.2)  # fourth stalls past the client's timeout
    assert ges_emulator.counters["fault_stall"] == 2 and ges_emulator.counters["fault_latency"] == 4


@pytest.mark.ges_emulator(faults="503:scope=iam:count=2")
def test_token_endpoint_fails_then_recovers(ges_emulator: GesEmulator) -> None:
    first, second, third = (token_request(ges_emulator) for _ in range(3))
    for failed in (first, second):
        assert failed.status_code == 503
        assert failed.json()["error"]["code"] == 503
    assert third.status_code == 201
    assert statuses(ges_emulator, 3) == [200, 200, 200]  # iam scope leaves GES calls alone


@pytest.mark.ges_emulator(faults="500:scope=list")
def test_list_scope_spares_other_calls(ges_emulator: GesEmulator) -> None:
    graph = ges_emulator.graphs()[0]["id"]
    assert statuses(ges_emulator, 2) == [500, 500]
    assert statuses(ges_emulator, 1, list_url(ges_emulator, graph)) == [500]
    session = requests.Session()
    session.headers["X-Auth-Token"] = ges_emulator.issue_token()
    created = session.post(list_url(ges_emulator, graph), timeout=5)
    assert created.status_code == 200 and created.json()["jobId"]
    assert token_request(ges_emulator).status_code == 201


@pytest.mark.ges_emulator(faults="502:scope=all:every=2")
def test_all_scope_counts_every_request(ges_emulator: GesEmulator) -> None:
    assert token_request(ges_emulator).status_code == 201
    assert token_request(ges_emulator).status_code == 502
    assert statuses(ges_emulator, 2) == [200, 502]


def test_random_faults_are_reproducible() -> None:
    def run(seed: int) -> list[int]:
        with GesEmulator(backups=1, seed=seed, faults="500:rate=0.3") as emu:
            return statuses(emu, 40)

    first = run(7)
    assert first == run(7)
    assert 500 in first and 200 in first
    assert first != run(8)
    with GesEmulator(backups=1, faults=[FaultRule("503", rate=1.0)]) as emu:
        assert set(statuses(emu, 5)) == {503}


@pytest.mark.ges_emulator(faults="429:every=2,500:every=3")
def test_first_firing_rule_wins(ges_emulator: GesEmulator) -> None:
    assert statuses(ges_emulator, 6) == [200, 429, 500, 429, 200, 429]
    counters = ges_emulator.counters
    assert (counters["fault_429"], counters["fault_500"], counters["faults_injected"]) == (3, 1, 4)


def test_set_faults_at_runtime(ges_emulator: GesEmulator) -> None:
    assert statuses(ges_emulator, 2) == [200, 200]
    ges_emulator.set_faults("504:every=1")
    assert statuses(ges_emulator, 2) == [504, 504]
    ges_emulator.set_faults(Faults((FaultRule("503", every=2),)))
    assert statuses(ges_emulator, 2) == [200, 503]
    ges_emulator.set_faults(None)
    assert statuses(ges_emulator, 2) == [200, 200]


def test_stop_interrupts_a_stall() -> None:
    emu = GesEmulator(backups=1, faults="stall:s=30").start()
    url, token = list_url(emu), emu.issue_token()
    outcome: list[Any] = []

    def call() -> None:
        try:
            outcome.append(requests.get(url, headers={"X-Auth-Token": token}, timeout=10).status_code)
        except requests.ConnectionError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.1)
    start = time.perf_counter()
    emu.stop()
    thread.join(5)
    assert time.perf_counter() - start < 2
    assert not thread.is_alive() and len(outcome) == 1


# --- faults after the call: GES acts, the reply is lost ----------------------------------------------

AFTER = {"graphs": 2, "backups": 2, "backup_duration": 0.2, "graph_action_duration": 0.1}


def lost_counts(emu: GesEmulator) -> tuple[int, int]:
    return emu.counters["faults_injected"], emu.counters["replies_lost"]


@pytest.mark.ges_emulator(**AFTER, faults="504:scope=create:after=1")
def test_create_answers_504_yet_the_backup_exists(ges_emulator: GesEmulator) -> None:
    client = Client(ges_emulator)
    graph_id = ges_emulator.graphs()[0]["id"]
    response = client.call("POST", f"/graphs/{graph_id}/backups")
    assert response.status_code == 504 and response.json()["error_code"] == "APIGW.0203"
    backup = ges_emulator.backups(graph_id)[-1]
    assert (backup["status"], backup["backupMethod"]) == ("backing_up", "manual")
    assert ges_emulator.job_names(graph_id) == ["BackupGraph"]
    assert client.get("/graphs").status_code == 200  # the other calls are out of scope
    assert lost_counts(ges_emulator) == (1, 1) and ges_emulator.counters["fault_504"] == 1


@pytest.mark.ges_emulator(**AFTER, faults="500:scope=create:count=1")
def test_a_fault_without_after_answers_instead_of_the_call(ges_emulator: GesEmulator) -> None:
    client = Client(ges_emulator)
    graph_id = ges_emulator.graphs()[0]["id"]
    assert client.call("POST", f"/graphs/{graph_id}/backups").status_code == 500
    assert len(ges_emulator.backups(graph_id)) == 1 and ges_emulator.jobs() == []
    assert client.call("POST", f"/graphs/{graph_id}/backups").status_code == 200
    assert lost_counts(ges_emulator) == (1, 0)


@pytest.mark.ges_emulator(**AFTER, faults="drop:scope=delete:after=1")
def test_delete_drops_the_connection_yet_the_backup_is_gone(ges_emulator: GesEmulator) -> None:
    client = Client(ges_emulator)
    backup = ges_emulator.backups()[0]
    path = f"/graphs/{backup['graphId']}/backups/{backup['id']}"
    with pytest.raises(requests.ConnectionError):
        client.call("DELETE", path)
    assert backup["id"] not in [b["id"] for b in ges_emulator.backups()]
    assert_ges_error(client.call("DELETE", path), 400, "GES.7024")  # a retry finds nothing to delete
    assert lost_counts(ges_emulator) == (1, 1) and ges_emulator.counters["fault_drop"] == 1


@pytest.mark.ges_emulator(**AFTER, faults="504:scope=start:after=1:count=1")
def test_start_answers_504_once_and_its_job_runs(ges_emulator: GesEmulator) -> None:
    client = Client(ges_emulator)
    graph = ges_emulator.graphs()[0]
    assert run(client, graph["id"], "stop")["status"] == "success"  # out of the rule's scope
    start = client.call("POST", f"/graphs/{graph['id']}/action", params={"action_id": "start"})
    assert start.status_code == 504 and start.json()["error_code"] == "APIGW.0203"
    assert ges_emulator.jobs(graph["name"])[-1]["jobName"] == "StartGraph"
    wait_for(lambda: status_of(client, graph["id"]) == "200")
    assert run(client, graph["id"], "stop")["status"] == "success"
    assert run(client, graph["id"], "start")["status"] == "success"  # count=1: this one is answered
    assert ges_emulator.job_names(graph["id"]) == ["StopGraph", "StartGraph", "StopGraph", "StartGraph"]
    assert {job["status"] for job in ges_emulator.jobs()} == {"success"}
    assert lost_counts(ges_emulator) == (1, 1)


@pytest.mark.ges_emulator(**AFTER, faults="504:scope=action:after=1:count=1")
def test_a_failing_call_does_not_use_up_an_after_rule(ges_emulator: GesEmulator) -> None:
    client = Client(ges_emulator)
    running = ges_emulator.graphs()[0]["id"]
    stopped = ges_emulator.add_graph("idle", status="900")["id"]

    def act(graph_id: str, action_id: str) -> requests.Response:
        return client.call("POST", f"/graphs/{graph_id}/action", params={"action_id": action_id})

    assert_ges_error(act(stopped, "stop"), 400, "GES.7003")  # the reply is the error, not a 504
    assert_ges_error(act(running, "start"), 400, "GES.7015")
    assert lost_counts(ges_emulator) == (0, 0)
    assert act(running, "stop").status_code == 504  # the first call carried out loses its reply
    assert act(stopped, "start").status_code == 200  # count=1: used up
    assert ges_emulator.job_names(running) == ["StopGraph"] and ges_emulator.job_names("idle") == [
        "StartGraph"
    ]
    assert lost_counts(ges_emulator) == (1, 1)


def test_after_rules_set_at_runtime(ges_emulator: GesEmulator) -> None:
    client = Client(ges_emulator)
    graph_id = ges_emulator.graphs()[0]["id"]
    ges_emulator.set_faults([FaultRule("502", scope="create", after=True, count=1)])
    assert client.call("POST", f"/graphs/{graph_id}/backups").status_code == 502
    assert ges_emulator.job_names(graph_id) == ["BackupGraph"]
    ges_emulator.set_faults("drop:scope=all:after=1")
    with pytest.raises(requests.ConnectionError):
        token_request(ges_emulator)  # the token is issued, the reply is lost
    assert ges_emulator.counters["tokens_issued"] == 2 and lost_counts(ges_emulator) == (2, 2)


# --- hostile server -----------------------------------------------------------------------------------


def _page(emu: GesEmulator, **params: Any) -> dict[str, Any]:
    response = requests.get(
        list_url(emu), params=params, headers={"X-Auth-Token": emu.issue_token()}, timeout=5
    )
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.ges_emulator(hostile=Hostile(ignore_offset=True))
def test_ignore_offset(ges_emulator: GesEmulator) -> None:
    first = _page(ges_emulator, limit=5)
    assert _page(ges_emulator, offset=5, limit=5) == first
    assert first["backupList"] == ges_emulator.backups()[:5]


@pytest.mark.ges_emulator(hostile=Hostile(inflate_count=4, oversize_pages=3))
def test_inflated_count_and_oversize_pages(ges_emulator: GesEmulator) -> None:
    page = _page(ges_emulator, limit=5)
    assert page["backupCount"] == 16
    assert len(page["backupList"]) == 8
    assert len(_page(ges_emulator, offset=10, limit=5)["backupList"]) == 2


def test_growing_count(ges_emulator: GesEmulator) -> None:
    ges_emulator.set_hostile(grow_count=True)
    assert [_page(ges_emulator)["backupCount"] for _ in range(3)] == [13, 14, 15]
    ges_emulator.set_hostile()
    assert _page(ges_emulator)["backupCount"] == 12
