"""The emulator over real HTTP: IAM tokens, auth, backup listing, create/job/delete, control API."""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from airflow_provider_ges.emulator import GesEmulator
from airflow_provider_ges.emulator.data import SEED_EXAMPLE
from airflow_provider_ges.emulator.store import GesError
from airflow_provider_ges.signer import sign_request

SEED_KEYS = list(json.loads(SEED_EXAMPLE.read_text())["backupList"][0])
JOB_KEYS = ["jobId", "status", "jobType", "jobName", "relatedGraph", "beginTime", "endTime"]
JOB_KEYS += ["jobDetail", "failReason", "jobProgress"]


class Client:
    """A keep-alive session against one emulator, authenticated with a token unless told otherwise."""

    def __init__(self, emu: GesEmulator, token: str | None = "issue") -> None:
        self.emu = emu
        self.session = requests.Session()
        if token == "issue":
            token = emu.issue_token()
        if token:
            self.session.headers["X-Auth-Token"] = token
        self.base = f"{emu.url}/v1.0/{emu.project_id}"

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        return self.session.request(method, self.base + path, timeout=5, **kw)

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.call("GET", path, params=params)

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        response = self.call(method, path, **kw)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def client(ges_emulator: GesEmulator) -> Client:
    return Client(ges_emulator)


def token_body(emu: GesEmulator, **changes: Any) -> dict[str, Any]:
    user = {"name": emu.user, "password": emu.password, "domain": {"name": emu.domain}}
    user.update(changes.pop("user", {}))
    scope = changes.pop("scope", {"project": {"id": emu.project_id}})
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": user}}, "scope": scope}}


def post_token(emu: GesEmulator, body: Any, query: str = "") -> requests.Response:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(f"{emu.url}/v3/auth/tokens{query}", data=data, timeout=5)


def assert_ges_error(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"errorCode", "errorMessage"} and body["errorCode"] == code and body["errorMessage"]


def assert_gateway_error(response: requests.Response, status: int, code: str, reason: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error_code", "error_msg", "request_id"} and body["error_code"] == code
    assert reason in body["error_msg"]
    assert body["request_id"] == response.headers["X-Request-Id"]


# --- IAM ----------------------------------------------------------------------------------------------


def test_token_by_project_id(ges_emulator: GesEmulator) -> None:
    before = datetime.now(timezone.utc)
    response = post_token(ges_emulator, token_body(ges_emulator))
    assert response.status_code == 201
    token = response.headers["X-Subject-Token"]
    assert len(token) > 1000
    body = response.json()["token"]
    assert body["methods"] == ["password"]
    assert body["project"]["id"] == ges_emulator.project_id
    assert body["project"]["name"] == ges_emulator.region
    assert body["user"]["name"] == ges_emulator.user
    assert body["catalog"] == []
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", body["expires_at"])
    expires = datetime.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert abs(expires - before - timedelta(seconds=ges_emulator.token_ttl)) < timedelta(seconds=5)
    assert Client(ges_emulator, token).get("/graphs/backups").status_code == 200
    assert ges_emulator.counters["tokens_issued"] == 1


def test_token_by_region_name_and_nocatalog(ges_emulator: GesEmulator) -> None:
    body = token_body(ges_emulator, scope={"project": {"name": ges_emulator.region}})
    response = post_token(ges_emulator, body, "?nocatalog=true")
    assert response.status_code == 201
    assert "catalog" not in response.json()["token"]
    assert response.headers["X-Subject-Token"] != ges_emulator.issue_token()


@pytest.mark.parametrize(
    "user", [{"password": "wrong"}, {"name": "someone"}, {"domain": {"name": "other_account"}}]
)
def test_token_wrong_credentials(ges_emulator: GesEmulator, user: dict[str, Any]) -> None:
    response = post_token(ges_emulator, token_body(ges_emulator, user=user))
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": 401, "message": "The username or password is wrong.", "title": "Unauthorized"}
    }
    assert "X-Subject-Token" not in response.headers
    assert ges_emulator.counters["tokens_issued"] == 0


@pytest.mark.parametrize("scope", [{"project": {"id": "0" * 32}}, {"project": {"name": "eu-west-101"}}])
def test_token_unknown_project_scope(ges_emulator: GesEmulator, scope: dict[str, Any]) -> None:
    response = post_token(ges_emulator, token_body(ges_emulator, scope=scope))
    assert response.status_code == 401
    assert response.json()["error"]["title"] == "Unauthorized"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        {},
        {"auth": {"identity": {"methods": ["password"]}}},
        {"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "x"}}}}},
        "token-methods",
        "no-scope",
        "number-password",
    ],
)
def test_token_malformed_body(ges_emulator: GesEmulator, body: Any) -> None:
    if body == "token-methods":
        body = token_body(ges_emulator)
        body["auth"]["identity"]["methods"] = ["token"]
    elif body == "no-scope":
        body = token_body(ges_emulator)
        del body["auth"]["scope"]
    elif body == "number-password":
        body = token_body(ges_emulator, user={"password": 123})
    response = post_token(ges_emulator, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 400 and error["title"] == "Bad Request" and error["message"]


@pytest.mark.ges_emulator(token_ttl=0.3)
def test_token_expires(ges_emulator: GesEmulator) -> None:
    token = post_token(ges_emulator, token_body(ges_emulator)).headers["X-Subject-Token"]
    client = Client(ges_emulator, token)
    assert client.get("/graphs/backups").status_code == 200
    time.sleep(0.35)
    assert_gateway_error(client.get("/graphs/backups"), 401, "APIGW.0301", "token expires")


def test_expire_tokens(client: Client) -> None:
    assert client.get("/graphs/backups").status_code == 200
    client.emu.expire_tokens()
    assert_gateway_error(client.get("/graphs/backups"), 401, "APIGW.0301", "token expires")
    assert client.emu.counters["auth_failures"] == 1
    assert Client(client.emu).get("/graphs/backups").status_code == 200


# --- authentication of GES calls ----------------------------------------------------------------------


def test_issued_tokens_lists_every_token(ges_emulator: GesEmulator) -> None:
    assert ges_emulator.issued_tokens() == []
    first = ges_emulator.issue_token()
    second = post_token(ges_emulator, token_body(ges_emulator)).headers["X-Subject-Token"]
    ges_emulator.expire_tokens()
    third = ges_emulator.issue_token()
    assert ges_emulator.issued_tokens() == [first, second, third]
    assert len(set(ges_emulator.issued_tokens())) == 3


def test_missing_and_unknown_token(ges_emulator: GesEmulator) -> None:
    anonymous = Client(ges_emulator, token=None)
    assert_gateway_error(anonymous.get("/graphs/backups"), 401, "APIGW.0301", "Incorrect IAM authentication")
    foreign = Client(ges_emulator, token="MII" + "x" * 2000)
    assert_gateway_error(foreign.get("/graphs/backups"), 401, "APIGW.0301", "decrypt token fail")


def test_wrong_project_in_path(client: Client) -> None:
    response = client.session.get(f"{client.emu.url}/v1.0/{'f' * 32}/graphs/backups", timeout=5)
    assert_ges_error(response, 403, "GES.0001")


def _signed_get(emu: GesEmulator, url: str, **kw: Any) -> requests.Response:
    sign_kw: dict[str, Any] = {"ak": emu.ak, "sk": emu.sk, "project_id": emu.project_id, **kw}
    return requests.get(url, headers=sign_request("GET", url, **sign_kw), timeout=5)


def test_aksk_signature_accepted(ges_emulator: GesEmulator) -> None:
    url = f"{ges_emulator.url}/v1.0/{ges_emulator.project_id}/graphs/backups?limit=3&offset=1"
    response = _signed_get(ges_emulator, url)
    assert response.status_code == 200
    assert [b["id"] for b in response.json()["backupList"]] == [b["id"] for b in ges_emulator.backups()[1:4]]


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"sk": "wrong"}, "signature mismatch"),
        ({"ak": "UNKNOWNAK"}, "unknown access key"),
        ({"now": datetime.now(timezone.utc) - timedelta(minutes=20)}, "too far"),
    ],
)
def test_aksk_signature_rejected(ges_emulator: GesEmulator, kw: dict[str, Any], reason: str) -> None:
    url = f"{ges_emulator.url}/v1.0/{ges_emulator.project_id}/graphs/backups"
    assert_gateway_error(_signed_get(ges_emulator, url, **kw), 401, "APIGW.0301", reason)


def test_aksk_tampered_query_rejected(ges_emulator: GesEmulator) -> None:
    url = f"{ges_emulator.url}/v1.0/{ges_emulator.project_id}/graphs/backups?limit=3"
    headers = sign_request("GET", url, ak=ges_emulator.ak, sk=ges_emulator.sk)
    response = requests.get(url.replace("limit=3", "limit=4"), headers=headers, timeout=5)
    assert_gateway_error(response, 401, "APIGW.0301", "verify aksk signature fail")


def test_aksk_project_header_must_match_path(ges_emulator: GesEmulator) -> None:
    url = f"{ges_emulator.url}/v1.0/{ges_emulator.project_id}/graphs/backups"
    assert_ges_error(_signed_get(ges_emulator, url, project_id="a" * 32), 403, "GES.0001")


def test_unknown_paths_and_methods(client: Client) -> None:
    for method, path in [("GET", "/nothing"), ("PUT", "/graphs/backups"), ("GET", "/graphs/g/unknown")]:
        assert_gateway_error(client.call(method, path), 404, "APIGW.0101")
    assert_gateway_error(client.session.get(f"{client.emu.url}/v2/x", timeout=5), 404, "APIGW.0101")
    assert client.emu.counters["not_found"] == 4


# --- listing backups ----------------------------------------------------------------------------------


@pytest.mark.ges_emulator(graphs=3, backups=25)
def test_list_defaults_and_wire_shape(client: Client) -> None:
    body = client.ok("GET", "/graphs/backups")
    assert list(body) == ["backupCount", "backupList"]
    assert body["backupCount"] == 25
    assert len(body["backupList"]) == 10
    assert body["backupList"] == client.emu.backups()[:10]
    for backup in body["backupList"]:
        assert list(backup) == SEED_KEYS


@pytest.mark.ges_emulator(graphs=3, backups=23)
@pytest.mark.parametrize("limit", [1, 7, 10, 23, 100])
def test_pagination_covers_every_backup_once(client: Client, limit: int) -> None:
    seen: list[str] = []
    offset = 0
    while True:
        page = client.ok("GET", "/graphs/backups", params={"offset": offset, "limit": limit})
        assert page["backupCount"] == 23
        seen += [b["id"] for b in page["backupList"]]
        if len(page["backupList"]) < limit:
            break
        offset += limit
    assert seen == [b["id"] for b in client.emu.backups()]
    assert len(set(seen)) == 23


def test_offset_past_end_and_zero_limit(client: Client) -> None:
    total = len(client.emu.backups())
    assert client.ok("GET", "/graphs/backups", params={"offset": total}) == {
        "backupCount": total,
        "backupList": [],
    }
    assert client.ok("GET", "/graphs/backups", params={"limit": 0})["backupList"] == []


@pytest.mark.parametrize("params", [{"offset": "abc"}, {"offset": -1}, {"limit": "1.5"}, {"limit": ""}])
def test_bad_paging_parameters(client: Client, params: dict[str, Any]) -> None:
    assert_ges_error(client.get("/graphs/backups", **params), 400, "GES.0001")
    graph = client.emu.graphs()[0]["id"]
    assert_ges_error(client.get(f"/graphs/{graph}/backups", **params), 400, "GES.0001")


@pytest.mark.ges_emulator(max_limit=5)
def test_max_limit_caps_every_list_call(client: Client) -> None:
    graph = client.emu.graphs()[0]["id"]
    paths = ["/graphs/backups", f"/graphs/{graph}/backups", "/graphs"]
    for path in paths:
        assert client.get(path, limit=5).status_code == 200
        response = client.get(path, limit=6)
        assert_ges_error(response, 400, "GES.0001")
        assert response.json()["errorMessage"] == "The parameter limit is invalid: it must be at most 5."
    assert_ges_error(client.get("/graphs/backups"), 400, "GES.0001")  # the default limit, 10, is over it
    client.emu.max_limit = 100
    assert len(client.ok("GET", "/graphs/backups", params={"limit": 100})["backupList"]) == 12
    client.emu.max_limit = None
    assert client.get("/graphs/backups", limit=10**6).status_code == 200
    with pytest.raises(ValueError):
        client.emu.max_limit = -1


@pytest.mark.ges_emulator(graphs=3, backups=30)
def test_list_graph_backups(client: Client) -> None:
    for graph in client.emu.graphs():
        expected = [b for b in client.emu.backups() if b["graphId"] == graph["id"]]
        body = client.ok("GET", f"/graphs/{graph['id']}/backups", params={"limit": 100})
        assert body == {"backupCount": len(expected), "backupList": expected}
        assert {b["graph_name"] for b in body["backupList"]} == {graph["name"]}
    assert client.emu.counters["list_graph_backups"] == 3


def test_list_unknown_or_deleted_graph(client: Client) -> None:
    assert_ges_error(client.get("/graphs/no-such-graph/backups"), 400, "GES.7000")
    deleted = client.emu.add_graph("gone_graph", status="400")
    client.emu.add_backup(deleted["id"])
    assert_ges_error(client.get(f"/graphs/{deleted['id']}/backups"), 400, "GES.7000")
    everything = client.ok("GET", "/graphs/backups", params={"limit": 100})["backupList"]
    assert everything[-1]["graphId"] == deleted["id"] and everything[-1]["graphStatus"] == "400"


def test_delete_graph_keeps_its_backups_and_frees_its_name(client: Client) -> None:
    emu = client.emu
    old = emu.add_graph("rebuilt")
    kept = emu.add_backup("rebuilt", status="success")
    emu.delete_graph(old["id"])
    assert "rebuilt" not in {g["name"] for g in emu.graphs()}
    assert_ges_error(client.get(f"/graphs/{old['id']}/backups"), 400, "GES.7000")
    assert emu.backup(kept["id"])["graphStatus"] == "400"  # outlives its graph, marked so
    everything = client.ok("GET", "/graphs/backups", params={"limit": 1000})["backupList"]
    assert next(b for b in everything if b["id"] == kept["id"])["graphStatus"] == "400"
    new = emu.add_graph("rebuilt")
    assert emu.add_backup("rebuilt")["graphId"] == new["id"]  # by name: the live graph
    with pytest.raises(GesError):
        emu.delete_graph(old["id"])  # already gone


@pytest.mark.ges_emulator(graphs=4, backups=0)
def test_list_graphs(client: Client) -> None:
    client.emu.add_graph("deleted_one", status="400")
    body = client.ok("GET", "/graphs", params={"limit": 3})
    assert body["graphCount"] == 4
    assert [g["id"] for g in body["graphs"]] == [g["id"] for g in client.emu.graphs()[:3]]
    graph = body["graphs"][0]
    assert {"id", "name", "status", "regionCode", "dataStoreVersion", "graphSizeTypeIndex"} <= set(graph)
    assert client.ok("GET", "/graphs", params={"offset": 3})["graphs"] == client.emu.graphs()[3:]


# --- create, jobs, delete -----------------------------------------------------------------------------


@pytest.mark.ges_emulator(graphs=1, backups=2, backup_duration=0.3)
def test_create_backup_runs_then_succeeds(client: Client) -> None:
    graph = client.emu.graphs()[0]
    job_id = client.ok("POST", f"/graphs/{graph['id']}/backups")["jobId"]
    page = client.ok("GET", "/graphs/backups")
    assert page["backupCount"] == 3
    new = page["backupList"][-1]
    assert new["status"] == "backing_up" and new["backupMethod"] == "manual"
    assert new["endTimestamp"] is None and new["size"] == 0
    assert re.fullmatch(re.escape(graph["name"]) + r"-\d{14}", new["name"])
    job = client.ok("GET", f"/graphs/{graph['id']}/jobs/{job_id}/status")
    assert job["status"] == "running" and job["jobId"] == job_id and job["relatedGraph"] == graph["name"]
    assert_ges_error(client.call("POST", f"/graphs/{graph['id']}/backups"), 400, "GES.7002")
    time.sleep(0.35)
    done = client.ok("GET", "/graphs/backups")["backupList"][-1]
    assert done["status"] == "success" and done["size"] > 0
    assert done["endTimestamp"] >= done["startTimestamp"] + 250
    job = client.ok("GET", f"/graphs/{graph['id']}/jobs/{job_id}/status")
    assert job["status"] == "success" and job["endTime"] and job["failReason"] is None
    assert list(job) == JOB_KEYS


@pytest.mark.ges_emulator(graphs=1, backups=0, backup_duration=0.0, backup_outcome="failed")
def test_create_backup_can_fail(client: Client) -> None:
    graph_id = client.emu.graphs()[0]["id"]
    job_id = client.ok("POST", f"/graphs/{graph_id}/backups")["jobId"]
    assert client.ok("GET", f"/graphs/{graph_id}/backups")["backupList"][0]["status"] == "failed"
    job = client.ok("GET", f"/graphs/{graph_id}/jobs/{job_id}/status")
    assert job["status"] == "failed" and job["failReason"]


def test_create_backup_errors(client: Client) -> None:
    assert_ges_error(client.call("POST", "/graphs/unknown/backups"), 400, "GES.7000")
    stopped = client.emu.add_graph("stopped_graph", status="900")
    assert_ges_error(client.call("POST", f"/graphs/{stopped['id']}/backups"), 400, "GES.7001")


def test_job_errors(client: Client) -> None:
    first, second = (g["id"] for g in client.emu.graphs())
    job_id = client.ok("POST", f"/graphs/{first}/backups")["jobId"]
    assert_ges_error(client.get(f"/graphs/{first}/jobs/nope/status"), 400, "GES.8301")
    assert_ges_error(client.get(f"/graphs/{second}/jobs/{job_id}/status"), 400, "GES.8301")
    assert_ges_error(client.get(f"/graphs/unknown/jobs/{job_id}/status"), 400, "GES.7000")


def test_delete_backup(client: Client) -> None:
    victim = client.emu.backups()[0]
    other_graph = next(g["id"] for g in client.emu.graphs() if g["id"] != victim["graphId"])
    path = f"/graphs/{victim['graphId']}/backups/{victim['id']}"
    assert_ges_error(client.call("DELETE", f"/graphs/{other_graph}/backups/{victim['id']}"), 400, "GES.7024")
    assert client.ok("DELETE", path) == {}
    assert victim["id"] not in [b["id"] for b in client.emu.backups()]
    assert client.ok("GET", "/graphs/backups")["backupCount"] == 11
    assert_ges_error(client.call("DELETE", path), 400, "GES.7024")
    assert_ges_error(client.call("DELETE", f"/graphs/unknown/backups/{victim['id']}"), 400, "GES.7000")


def test_removing_running_backup_fails_its_job(client: Client) -> None:
    graph_id = client.emu.graphs()[0]["id"]
    job_id = client.ok("POST", f"/graphs/{graph_id}/backups")["jobId"]
    client.emu.remove_backup(client.emu.backups(graph_id)[-1]["id"])
    job = client.ok("GET", f"/graphs/{graph_id}/jobs/{job_id}/status")
    assert job["status"] == "failed" and "deleted" in job["failReason"]


# --- control API --------------------------------------------------------------------------------------


def test_add_backup_by_graph_name(client: Client) -> None:
    graph = client.emu.graphs()[1]
    start = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    added = client.emu.add_backup(
        graph["name"], method="auto", start=start, duration=90, size=7, backup_id="b-1"
    )
    assert added["name"] == f"{graph['name']}_20240102110405_auto"  # UTC+8 in the name
    assert added["startTime"] == "2024-01-02T03:04:05" and added["startTimestamp"] == 1704164645000
    assert added["endTime"] == "2024-01-02T03:05:35" and added["duration"] == 90 and added["size"] == 7
    assert (
        client.ok("GET", f"/graphs/{graph['id']}/backups", params={"limit": 100})["backupList"][-1] == added
    )
    with pytest.raises(ValueError, match="no graph"):
        client.emu.add_backup("missing")
    with pytest.raises(ValueError, match="status"):
        client.emu.add_backup(graph["id"], status="done")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="already exists"):
        client.emu.add_backup(graph["id"], backup_id="b-1")


def test_set_backup_status_now_and_later(client: Client) -> None:
    graph_id = client.emu.graphs()[0]["id"]
    running = client.emu.add_backup(graph_id, status="backing_up")
    assert running["endTime"] is None
    client.emu.set_backup_status_later(running["id"], "success", 0.2)
    assert client.emu.backup(running["id"])["status"] == "backing_up"
    time.sleep(0.25)
    finished = client.ok("GET", f"/graphs/{graph_id}/backups", params={"limit": 100})["backupList"][-1]
    assert finished["status"] == "success" and finished["endTimestamp"] is not None
    failed = client.emu.set_backup_status(finished["id"], "failed")
    assert failed["status"] == "failed" and failed["size"] == 0
    client.emu.set_backup_status_later(failed["id"], "success", 0.05)
    client.emu.set_backup_status(failed["id"], "backing_up")  # cancels the scheduled change
    time.sleep(0.1)
    assert client.emu.backup(failed["id"])["status"] == "backing_up"
    with pytest.raises(KeyError):
        client.emu.set_backup_status("nope", "success")
    with pytest.raises(ValueError):
        client.emu.set_backup_status_later(failed["id"], "finished", 1)


def test_counters_and_reset(client: Client) -> None:
    client.get("/graphs/backups")
    client.get("/graphs")
    client.get("/nope")
    counters = client.emu.counters
    assert counters["list_backups"] == 1 and counters["list_graphs"] == 1 and counters["not_found"] == 1
    assert counters["requests"] == 3
    client.emu.reset_counters()
    assert set(client.emu.counters.values()) == {0}


def test_connection_dicts(ges_emulator: GesEmulator) -> None:
    password = ges_emulator.connection()
    assert password == {
        "conn_type": "ges",
        "host": ges_emulator.url,
        "login": ges_emulator.user,
        "password": ges_emulator.password,
        "extra": {
            "project_id": ges_emulator.project_id,
            "domain_name": ges_emulator.domain,
            "iam_endpoint": ges_emulator.url,
        },
    }
    aksk = ges_emulator.connection("aksk")
    assert (aksk["login"], aksk["password"]) == (ges_emulator.ak, ges_emulator.sk)
    assert aksk["extra"] == {
        "auth_type": "aksk",
        "project_id": ges_emulator.project_id,
        "region": "cn-north-4",
    }
    env = ges_emulator.connection_env("my_ges")
    assert json.loads(env["AIRFLOW_CONN_MY_GES"]) == password
    with pytest.raises(ValueError):
        ges_emulator.connection("oauth")  # type: ignore[arg-type]


def test_custom_credentials() -> None:
    with GesEmulator(user="u1", password="p1", domain="d1", project_id="p" * 32, backups=1) as emu:
        body = token_body(emu)
        assert body["auth"]["identity"]["password"]["user"]["name"] == "u1"
        token = post_token(emu, body).headers["X-Subject-Token"]
        assert Client(emu, token).get("/graphs/backups").json()["backupCount"] == 1


# --- server mechanics ---------------------------------------------------------------------------------


def test_keep_alive_reuses_one_connection(ges_emulator: GesEmulator) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", ges_emulator.port, timeout=5)
    token = ges_emulator.issue_token()
    path = f"/v1.0/{ges_emulator.project_id}/graphs/backups"
    conn.request("GET", path, headers={"X-Auth-Token": token})
    first = conn.getresponse()
    first.read()
    sock = conn.sock
    for _ in range(5):
        conn.request("GET", path, headers={"X-Auth-Token": token})
        response = conn.getresponse()
        assert response.status == 200 and json.loads(response.read())["backupCount"] == 12
    assert conn.sock is sock and first.getheader("Connection") is None
    conn.request("GET", path, headers={"X-Auth-Token": token, "Connection": "close"})
    response = conn.getresponse()
    response.read()
    assert response.getheader("Connection") == "close"
    conn.close()


def test_stop_ends_keep_alive_connections_and_frees_port() -> None:
    emu = GesEmulator(backups=1).start()
    port = emu.port
    session = requests.Session()
    url = f"{emu.url}/v1.0/{emu.project_id}/graphs/backups"
    assert session.get(url, timeout=5).status_code == 401
    emu.stop()
    emu.stop()  # idempotent
    with pytest.raises(requests.ConnectionError):
        session.get(url, timeout=5)
    with pytest.raises(RuntimeError):
        _ = emu.url
    with GesEmulator(backups=1, port=port) as again:
        assert again.port == port


def test_concurrent_clients_while_mutating(ges_emulator: GesEmulator) -> None:
    errors: list[BaseException] = []

    def reader() -> None:
        client = Client(ges_emulator)
        try:
            for _ in range(40):
                page = client.ok("GET", "/graphs/backups", params={"limit": 100})
                assert page["backupCount"] == len(page["backupList"])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    graph = ges_emulator.graphs()[0]["id"]
    for _ in range(30):
        ges_emulator.remove_backup(ges_emulator.add_backup(graph)["id"])
    for thread in threads:
        thread.join()
    assert not errors
    assert ges_emulator.counters["list_backups"] == 160


def test_utf8_header_values_reach_the_verifier(ges_emulator: GesEmulator) -> None:
    url = f"{ges_emulator.url}/v1.0/{ges_emulator.project_id}/graphs"
    headers = sign_request("GET", url, ak=ges_emulator.ak, sk=ges_emulator.sk, headers={"X-Note": "grüße"})
    assert requests.get(url, headers=headers, timeout=5).status_code == 200
