"""The emulator's GES API v2 over real HTTP: snake_case listings, the state it shares with v1,
export/import of backups, download links, quotas, v2 error bodies, faults and version counters."""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
import time
from contextlib import redirect_stdout
from typing import Any

import pytest
import requests

from airflow_provider_ges.emulator import GesEmulator, ctl
from airflow_provider_ges.emulator.v2 import MAX_OBS_PATH

from .test_emulator import SEED_KEYS, Client, assert_gateway_error, assert_ges_error
from .test_emulator_lifecycle import wait_for

V2_BACKUP_KEYS = [
    "id",
    "name",
    "backup_method",
    "graph_id",
    "graph_name",
    "graph_status",
    "graph_size_type_index",
    "data_store_version",
    "arch",
    "status",
    "start_timestamp",
    "start_time",
    "end_timestamp",
    "end_time",
    "size",
    "duration",
    "encrypted",
]
V2_JOB_KEYS = ["job_id", "status", "job_type", "job_name", "related_graph", "begin_time", "end_time"]
V2_JOB_KEYS += ["job_detail", "fail_reason", "job_progress"]
FAST = {
    "graphs": 2,
    "backups": 6,
    "backup_duration": 0.2,
    "graph_action_duration": 0.1,
    "export_duration": 0.2,
    "import_duration": 0.2,
}


class V2Client(Client):
    """:class:`Client` against ``/v2/{project_id}``."""

    def __init__(self, emu: GesEmulator, token: str | None = "issue") -> None:
        super().__init__(emu, token)
        self.base = f"{emu.url}/v2/{emu.project_id}"

    def job(self, graph_id: str, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.ok("GET", f"/graphs/{graph_id}/jobs/{job_id}/status")
        return job

    def wait_job(self, graph_id: str, job_id: str) -> dict[str, Any]:
        done: dict[str, Any] = wait_for(
            lambda: (job := self.job(graph_id, job_id))["status"] in ("success", "failed") and job
        )
        return done

    def export(self, graph_id: str, backup_id: str, path: str) -> requests.Response:
        body = {"backup_id": backup_id, "export_path": path}
        return self.call("POST", f"/graphs/{graph_id}/backups/export", json=body)

    def import_(self, graph_id: str, path: str) -> requests.Response:
        return self.call("POST", f"/graphs/{graph_id}/backups/import", json={"import_path": path})


@pytest.fixture
def v2(ges_emulator: GesEmulator) -> V2Client:
    return V2Client(ges_emulator)


@pytest.fixture
def v1(ges_emulator: GesEmulator) -> Client:
    return Client(ges_emulator)


def assert_v2_error(response: requests.Response, status: int, code: str, text: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error_code", "error_msg"} and body["error_code"] == code, body
    assert text in body["error_msg"]


def old_success(emu: GesEmulator, graph_id: str) -> dict[str, Any]:
    """A generated (days old) successful backup of the graph."""
    return next(b for b in emu.backups(graph_id) if b["status"] == "success")


# --- listings ---------------------------------------------------------------------------------------


@pytest.mark.ges_emulator(graphs=3, backups=25)
def test_list_backups_pages_in_snake_case(v2: V2Client) -> None:
    emu = v2.emu
    expected = emu.backups()
    seen: list[dict[str, Any]] = []
    for offset in (0, 10, 20):
        page = v2.ok("GET", "/graphs/backups", params={"offset": offset, "limit": 10})
        assert list(page) == ["backup_count", "backup_list"] and page["backup_count"] == 25
        seen += page["backup_list"]
    assert [b["id"] for b in seen] == [b["id"] for b in expected]
    assert all(list(b) == V2_BACKUP_KEYS for b in seen)
    assert list(expected[0]) == SEED_KEYS  # the same backups, v1 spelling
    first, v1_first = seen[0], expected[0]
    assert (first["backup_method"], first["graph_id"], first["start_timestamp"], first["end_time"]) == (
        v1_first["backupMethod"],
        v1_first["graphId"],
        v1_first["startTimestamp"],
        v1_first["endTime"],
    )
    assert len(first["start_time"]) == 19 and first["start_time"] == v1_first["startTime"]
    graph_id = emu.graphs()[1]["id"]
    mine = [b["id"] for b in emu.backups(graph_id)]
    page = v2.ok("GET", f"/graphs/{graph_id}/backups", params={"offset": 1, "limit": 2})
    assert page["backup_count"] == len(mine) and [b["id"] for b in page["backup_list"]] == mine[1:3]
    assert v2.ok("GET", "/graphs/backups")["backup_list"] == seen[:10]  # default limit 10
    counters = emu.counters
    assert (counters["list_backups"], counters["list_graph_backups"]) == (4, 1)
    assert (counters["v2_requests"], counters["v1_requests"]) == (5, 0)


@pytest.mark.ges_emulator(graphs=1, backups=5)
def test_paging_refusals_cap_and_hostile_options(v2: V2Client) -> None:
    assert_v2_error(v2.get("/graphs/backups", offset=-1), 400, "GES.0001", "offset")
    assert_v2_error(v2.get("/graphs/backups", limit="ten"), 400, "GES.0001", "limit")
    v2.emu.max_limit = 3
    for path in ("/graphs/backups", f"/graphs/{v2.emu.graphs()[0]['id']}/backups", "/graphs", "/graphs/jobs"):
        assert_v2_error(v2.get(path), 400, "GES.0001", "must be at most 3")  # the default 10 is over it
    assert len(v2.ok("GET", "/graphs/backups", params={"limit": 3})["backup_list"]) == 3
    v2.emu.max_limit = None
    v2.emu.set_hostile(ignore_offset=True, inflate_count=4, oversize_pages=1)
    page = v2.ok("GET", "/graphs/backups", params={"offset": 2, "limit": 2})
    assert page["backup_count"] == 9 and len(page["backup_list"]) == 3
    assert page["backup_list"][0]["id"] == v2.emu.backups()[0]["id"]


@pytest.mark.ges_emulator(**FAST)
def test_graphs_stop_and_start_from_a_backup(v2: V2Client, v1: Client) -> None:
    emu = v2.emu
    listing = v2.ok("GET", "/graphs")
    assert listing["graph_count"] == 2 and [g["id"] for g in listing["graphs"]] == [
        g["id"] for g in emu.graphs()
    ]
    graph = listing["graphs"][0]
    for key in ("created_by", "is_multi_az", "region_code", "graph_size_type_index", "enable_rbac"):
        assert key in graph
    assert "enable_full_text_index" in graph and "enable_hyg" in graph and "enableRBAC" not in graph
    graph_id = graph["id"]
    assert v2.ok("GET", f"/graphs/{graph_id}") == {"graph": graph}
    backup = old_success(emu, graph_id)
    stop = v2.ok("POST", f"/graphs/{graph_id}/stop")
    assert list(stop) == ["job_id"]
    assert v1.ok("GET", f"/graphs/{graph_id}")["graph"]["status"] == "901"  # the same graph through v1
    assert v2.wait_job(graph_id, stop["job_id"])["status"] == "success"
    assert_v2_error(v2.call("POST", f"/graphs/{graph_id}/stop"), 400, "GES.7003")
    start = v2.ok("POST", f"/graphs/{graph_id}/start", json={"graph_backup_id": backup["id"]})
    job = v2.wait_job(graph_id, start["job_id"])
    assert list(job) == V2_JOB_KEYS and (job["job_name"], job["status"]) == ("StartGraph", "success")
    assert v2.ok("GET", f"/graphs/{graph_id}")["graph"]["restored_backup_id"] == backup["id"]
    assert emu.restores == [(graph_id, backup["id"])]
    assert emu.job_names(graph_id) == ["StopGraph", "StartGraph"]
    assert_v2_error(v2.call("POST", f"/graphs/{graph_id}/start"), 400, "GES.7015")
    assert_v2_error(v2.call("POST", f"/graphs/{graph_id}/start", data="{nope"), 400, "GES.0001")
    assert_v2_error(v2.get("/graphs/nope"), 400, "GES.7000")
    assert emu.counters["graph_action"] == 5


# --- one state, two versions -------------------------------------------------------------------------


@pytest.mark.ges_emulator(**FAST)
def test_v1_and_v2_share_backups_and_jobs(v2: V2Client, v1: Client) -> None:
    emu = v2.emu
    graph_a, graph_b = (g["id"] for g in emu.graphs())
    job_v1 = v1.ok("POST", f"/graphs/{graph_a}/backups")["jobId"]
    made_v1 = emu.backups(graph_a)[-1]
    listed = v2.ok("GET", f"/graphs/{graph_a}/backups", params={"limit": 100})["backup_list"][-1]
    assert (listed["id"], listed["status"], listed["backup_method"]) == (
        made_v1["id"],
        "backing_up",
        "manual",
    )
    shown = v2.job(graph_a, job_v1)
    assert (shown["job_id"], shown["job_name"], shown["status"]) == (job_v1, "BackupGraph", "running")
    create = v2.ok("POST", f"/graphs/{graph_b}/backups")
    assert list(create) == ["job_id"]  # the SDK's CreateBackup2Response: job_id only
    made_v2 = emu.backups(graph_b)[-1]
    assert v1.ok("GET", f"/graphs/{graph_b}/backups", params={"limit": 100})["backupList"][-1] == made_v2
    assert v1.ok("GET", f"/graphs/{graph_b}/jobs/{create['job_id']}/status")["jobName"] == "BackupGraph"
    assert v2.wait_job(graph_a, job_v1)["status"] == "success"
    wait_for(lambda: v1.ok("GET", f"/graphs/{graph_b}/jobs/{create['job_id']}/status")["status"] == "success")
    v1_jobs = v1.ok("GET", "/graphs/jobs")
    v2_jobs = v2.ok("GET", "/graphs/jobs")
    assert list(v2_jobs) == ["job_count", "job_list"] and v2_jobs["job_count"] == v1_jobs["jobCount"] == 2
    assert [j["job_id"] for j in v2_jobs["job_list"]] == [j["jobId"] for j in v1_jobs["jobList"]]
    graph_b_name = emu.graphs()[1]["name"]
    filtered = v2.ok("GET", "/graphs/jobs", params={"graph_name": graph_b_name, "status": "success"})
    assert [j["job_id"] for j in filtered["job_list"]] == [create["job_id"]]
    assert v2.ok("DELETE", f"/graphs/{graph_a}/backups/{made_v1['id']}") == {}
    assert made_v1["id"] not in [
        b["id"] for b in v1.ok("GET", "/graphs/backups", params={"limit": 100})["backupList"]
    ]
    assert_v2_error(v2.call("DELETE", f"/graphs/{graph_a}/backups/{made_v1['id']}"), 400, "GES.7024")
    assert_ges_error(v1.call("DELETE", f"/graphs/{graph_a}/backups/{made_v1['id']}"), 400, "GES.7024")
    counters = emu.counters
    assert (counters["create_backup"], counters["delete_backup"]) == (2, 3)  # either version


@pytest.mark.ges_emulator(graphs=1, backups=2)
def test_version_counters(v2: V2Client, v1: Client) -> None:
    v1.get("/graphs")
    v1.get("/graphs/backups")
    v2.get("/graphs/backups")
    v2.get("/graphs/nope/where")  # not a route: still a v2 path
    requests.get(f"{v2.emu.url}/v1/{v2.emu.project_id}/graphs", timeout=5)  # no such version: a v1 path
    counters = v2.emu.counters
    assert (counters["v1_requests"], counters["v2_requests"]) == (3, 2)
    assert counters["requests"] == 5 and counters["not_found"] == 2
    v2.emu.reset_counters()
    v2.get("/graphs/quotas")
    assert (v2.emu.counters["v1_requests"], v2.emu.counters["v2_requests"]) == (0, 1)


# --- export and import ---------------------------------------------------------------------------------


@pytest.mark.ges_emulator(**FAST)
def test_export_then_import_carries_the_old_times(v2: V2Client, v1: Client) -> None:
    emu = v2.emu
    graph_a, graph_b = (g["id"] for g in emu.graphs())
    source = old_success(emu, graph_a)
    assert source["startTimestamp"] < (time.time() - 3600) * 1000  # generated: days old
    response = v2.export(graph_a, source["id"], "my-bucket/exports/one")
    assert response.status_code == 200 and list(response.json()) == ["job_id"]
    export_job = response.json()["job_id"]
    running = v2.job(graph_a, export_job)
    assert (running["job_name"], running["status"], running["end_time"]) == ("ExportBackup", "running", None)
    assert emu.exports == []  # not until the job succeeds
    done = v2.wait_job(graph_a, export_job)
    assert (done["status"], done["fail_reason"], done["job_progress"]) == ("success", None, 1.0)
    assert emu.exports == [(source["id"], "my-bucket/exports/one")]
    assert v1.ok("GET", f"/graphs/{graph_a}/jobs/{export_job}/status")["jobName"] == "ExportBackup"

    before_ms = time.time() * 1000 - 1000
    import_job = v2.import_(graph_b, "my-bucket/exports/one/").json()[
        "job_id"
    ]  # a trailing '/' is the same path
    imported = emu.backups(graph_b)[-1]
    assert (imported["status"], imported["backupMethod"], imported["endTimestamp"]) == (
        "backing_up",
        "import",
        None,
    )
    assert imported["startTimestamp"] >= before_ms  # while it runs: started now
    assert v2.ok("GET", f"/graphs/{graph_b}")["graph"]["status"] == "903"
    job = v2.wait_job(graph_b, import_job)
    assert (job["job_name"], job["status"], job["related_graph"]) == (
        "ImportBackup",
        "success",
        emu.graphs()[1]["name"],
    )
    assert job["end_time"] >= job["begin_time"]
    listed = v2.ok("GET", f"/graphs/{graph_b}/backups", params={"limit": 100})["backup_list"][-1]
    assert listed["id"] == imported["id"] and listed["graph_id"] == graph_b
    assert (listed["backup_method"], listed["status"], listed["name"]) == (
        "import",
        "success",
        source["name"],
    )
    for v2_key, v1_key in (
        ("start_timestamp", "startTimestamp"),
        ("start_time", "startTime"),
        ("end_timestamp", "endTimestamp"),
        ("end_time", "endTime"),
        ("size", "size"),
        ("duration", "duration"),
    ):
        assert listed[v2_key] == source[v1_key], v2_key
    assert emu.backup(imported["id"])["backupMethod"] == "import"  # v1 shows it too
    assert emu.graph(graph_b)["status"] == "200"
    assert emu.job_names(graph_a) == ["ExportBackup"] and emu.job_names(graph_b) == ["ImportBackup"]
    assert (emu.counters["export_backup"], emu.counters["import_backup"]) == (1, 1)


@pytest.mark.ges_emulator(**FAST)
def test_the_exported_backup_stays_at_its_path(v2: V2Client) -> None:
    """OBS keeps an export: the backup deleted afterwards still imports; a second export to the
    same path replaces what is there."""
    emu = v2.emu
    graph_id = emu.graphs()[0]["id"]
    first, second = [b for b in emu.backups(graph_id) if b["status"] == "success"][:2]
    v2.wait_job(graph_id, v2.export(graph_id, first["id"], "bkt/x").json()["job_id"])
    v2.ok("DELETE", f"/graphs/{graph_id}/backups/{first['id']}")
    job_id = v2.import_(graph_id, "bkt/x").json()["job_id"]
    assert v2.wait_job(graph_id, job_id)["status"] == "success"
    assert emu.backups(graph_id)[-1]["startTimestamp"] == first["startTimestamp"]
    v2.wait_job(graph_id, v2.export(graph_id, second["id"], "bkt/x").json()["job_id"])
    v2.wait_job(graph_id, v2.import_(graph_id, "bkt/x").json()["job_id"])
    assert emu.backups(graph_id)[-1]["startTimestamp"] == second["startTimestamp"]
    assert emu.exports == [(first["id"], "bkt/x"), (second["id"], "bkt/x")]


BAD_PATHS = [
    ("/bucket/dir", "must not start with '/'"),
    ("bucket", "needs a directory after the bucket"),
    ("Bucket/dir", "'Bucket' is not an OBS bucket name"),
    ("obs://bucket/dir", "'obs:' is not an OBS bucket name"),
    ("ab/dir", "'ab' is not an OBS bucket name"),
    ("bucket/../etc", "'..' segment"),
    ("bucket//dir", "empty, '.' or '..' segment"),
    ("bucket/dir\\sub", "backslash"),
    ("bucket/dir\nx", "control character"),
    ("bucket/" + "d" * MAX_OBS_PATH, f"longer than {MAX_OBS_PATH}"),
]


@pytest.mark.ges_emulator(**FAST)
@pytest.mark.parametrize(("path", "reason"), BAD_PATHS)
def test_a_path_ges_refuses(v2: V2Client, path: str, reason: str) -> None:
    graph_id = v2.emu.graphs()[0]["id"]
    backup = old_success(v2.emu, graph_id)
    for response, field in (
        (v2.export(graph_id, backup["id"], path), "export_path"),
        (v2.import_(graph_id, path), "import_path"),
    ):
        assert_v2_error(
            response, 400, "GES.0001", f"The parameter {field} is invalid: {path!r} is not an OBS path"
        )
        assert reason in response.json()["error_msg"]
    assert v2.emu.job_names(graph_id) == [] and v2.emu.exports == []
    with pytest.raises(ValueError, match="not an OBS path"):
        v2.emu.add_export(path)


@pytest.mark.ges_emulator(**FAST)
def test_export_and_import_refusals(v2: V2Client) -> None:
    emu = v2.emu
    graph_a, graph_b = (g["id"] for g in emu.graphs())
    backup = old_success(emu, graph_a)
    assert_v2_error(v2.export(graph_a, "nope", "bkt/dir"), 400, "GES.7024")
    assert_v2_error(v2.export(graph_b, backup["id"], "bkt/dir"), 400, "GES.7024")  # not that graph's
    assert_v2_error(v2.export("nope", backup["id"], "bkt/dir"), 400, "GES.7000")
    url = f"/graphs/{graph_a}/backups/export"
    assert_v2_error(v2.call("POST", url, json={"export_path": "bkt/dir"}), 400, "GES.0001", "backup_id")
    assert_v2_error(v2.call("POST", url, json={"backup_id": backup["id"]}), 400, "GES.0001", "export_path")
    assert_v2_error(v2.call("POST", url, data="{not json"), 400, "GES.0001", "JSON")
    assert_v2_error(v2.call("POST", url, json=["bkt/dir"]), 400, "GES.0001", "object")
    running = emu.add_backup(emu.graphs()[0]["name"], status="backing_up")
    assert_v2_error(v2.export(graph_a, running["id"], "bkt/dir"), 400, "GES.0001", "backing_up")
    assert_v2_error(v2.import_(graph_a, "bkt/dir"), 400, "GES.7002")  # a backup is running
    assert_v2_error(
        v2.call("POST", f"/graphs/{graph_b}/backups/import", json={}), 400, "GES.0001", "import_path"
    )
    assert emu.job_names(graph_a) == emu.job_names(graph_b) == []


@pytest.mark.ges_emulator(**FAST)
def test_importing_from_an_empty_path_fails_the_job(v2: V2Client) -> None:
    graph_id = v2.emu.graphs()[0]["id"]
    job_id = v2.import_(graph_id, "bkt/nothing/here").json()["job_id"]  # accepted: GES reads OBS later
    job = v2.wait_job(graph_id, job_id)
    assert (
        job["status"] == "failed"
        and job["fail_reason"] == "No backup was found at the OBS path 'bkt/nothing/here'."
    )
    backup = v2.emu.backups(graph_id)[-1]
    assert (backup["status"], backup["backupMethod"], backup["size"]) == ("failed", "import", 0)


@pytest.mark.ges_emulator(**FAST)
def test_export_and_import_jobs_can_fail(v2: V2Client) -> None:
    emu = v2.emu
    graph_id = emu.graphs()[0]["id"]
    backup = old_success(emu, graph_id)
    emu.fail_next_job(reason="OBS is down")
    job = v2.wait_job(graph_id, v2.export(graph_id, backup["id"], "bkt/dir").json()["job_id"])
    assert (job["status"], job["fail_reason"]) == ("failed", "OBS is down")
    assert emu.exports == []
    v2.wait_job(graph_id, v2.export(graph_id, backup["id"], "bkt/dir").json()["job_id"])
    emu.fail_next_job(graph_id)
    job = v2.wait_job(graph_id, v2.import_(graph_id, "bkt/dir").json()["job_id"])
    assert (job["status"], job["fail_reason"]) == ("failed", "Importing the backup failed.")
    assert emu.backups(graph_id)[-1]["status"] == "failed"
    emu.fail_next_job()
    job = v2.wait_job(graph_id, v2.export(graph_id, backup["id"], "bkt/other").json()["job_id"])
    assert job["fail_reason"] == "Exporting the backup failed."
    assert emu.exports == [(backup["id"], "bkt/dir")]


@pytest.mark.ges_emulator(**FAST)
def test_a_foreign_backup_imports_with_times_of_now(v2: V2Client) -> None:
    emu = v2.emu
    graph_id = emu.graphs()[1]["id"]
    assert emu.add_export("other-bucket/from/elsewhere/") == "other-bucket/from/elsewhere"
    before_ms = time.time() * 1000 - 1000
    v2.wait_job(graph_id, v2.import_(graph_id, "other-bucket/from/elsewhere").json()["job_id"])
    backup = emu.backups(graph_id)[-1]
    assert backup["status"] == "success" and backup["backupMethod"] == "import"
    assert backup["startTimestamp"] >= before_ms and backup["endTimestamp"] >= backup["startTimestamp"]
    assert backup["size"] > 0
    assert emu.exports == [(None, "other-bucket/from/elsewhere")]
    with pytest.raises(KeyError):
        emu.add_export("bkt/dir", "no-such-backup")


# --- download links -------------------------------------------------------------------------------------


@pytest.mark.ges_emulator(**FAST, link_ttl=0.5)
def test_download_links_are_credentials_that_expire(v2: V2Client) -> None:
    emu = v2.emu
    graph_id = emu.graphs()[0]["id"]
    backup = old_success(emu, graph_id)
    reply = v2.ok("GET", f"/graphs/{graph_id}/backup-files", params={"backup_id": backup["id"]})
    assert list(reply) == ["bucket", "files"] and reply["bucket"]
    files = reply["files"]
    assert [f["name"] for f in files] == ["backup_info.json", "graph_data.bin"]
    assert all(list(f) == ["name", "size", "download_link", "link_expired_time"] for f in files)
    assert files[0]["link_expired_time"].endswith("+0000") and "T" in files[0]["link_expired_time"]
    assert emu.issued_links() == [f["download_link"] for f in files]
    info = requests.get(files[0]["download_link"], timeout=5)
    assert info.status_code == 200 and json.loads(info.content)["id"] == backup["id"]
    data = requests.get(files[1]["download_link"], timeout=5)
    assert (
        data.status_code == 200
        and (files[1]["size"] - 1) * 1024 < len(data.content) <= files[1]["size"] * 1024
    )
    assert requests.get(files[1]["download_link"], timeout=5).content == data.content  # the same bytes
    link = files[1]["download_link"].split("?token=")[0]
    assert requests.get(f"{link}?token=guessed", timeout=5).status_code == 403
    other_token = files[0]["download_link"].split("?token=")[1]
    assert requests.get(f"{link}?token={other_token}", timeout=5).status_code == 403  # another file's
    assert requests.get(link, timeout=5).status_code == 403
    time.sleep(0.6)
    expired = requests.get(files[1]["download_link"], timeout=5)
    assert expired.status_code == 403 and b"Request has expired" in expired.content
    fresh = v2.ok("GET", f"/graphs/{graph_id}/backup-files", params={"backup_id": backup["id"]})["files"]
    assert fresh[1]["download_link"] != files[1]["download_link"]
    assert requests.get(fresh[1]["download_link"], timeout=5).content == data.content
    assert emu.expire_links() == 4
    assert requests.get(fresh[1]["download_link"], timeout=5).status_code == 403
    assert emu.counters["download_file"] == 9 and emu.counters["show_backup_files"] == 2


@pytest.mark.ges_emulator(**FAST)
def test_download_links_only_for_a_successful_backup_of_the_graph(v2: V2Client) -> None:
    emu = v2.emu
    graph_a, graph_b = (g["id"] for g in emu.graphs())
    backup = old_success(emu, graph_a)
    url = f"/graphs/{graph_a}/backup-files"
    assert_v2_error(v2.get(url), 400, "GES.0001", "backup_id")
    assert_v2_error(v2.get(url, backup_id="nope"), 400, "GES.7024")
    assert_v2_error(v2.get(f"/graphs/{graph_b}/backup-files", backup_id=backup["id"]), 400, "GES.7024")
    failed = emu.add_backup(emu.graphs()[0]["name"], status="failed")
    assert_v2_error(v2.get(url, backup_id=failed["id"]), 400, "GES.0001", "failed")
    link = v2.ok("GET", url, params={"backup_id": backup["id"]})["files"][0]["download_link"]
    emu.remove_backup(backup["id"])
    gone = requests.get(link, timeout=5)
    assert gone.status_code == 404 and b"NoSuchKey" in gone.content


# --- quotas -----------------------------------------------------------------------------------------------


@pytest.mark.ges_emulator(graphs=1, backups=2, backup_duration=0.0, import_duration=0.0, backup_quota=4)
def test_backup_quota_and_the_quotas_reply(v2: V2Client, v1: Client) -> None:
    emu = v2.emu
    graph_id = emu.graphs()[0]["id"]

    def available() -> int:
        reply = v2.ok("GET", "/graphs/quotas")
        assert list(reply) == ["quotas"] and list(reply["quotas"]) == ["resources"]
        resources = reply["quotas"]["resources"]
        assert [r["type"] for r in resources] == ["graph", "backup", "metadata"]
        assert resources[0] == {"type": "graph", "available": -1, "edge_volume": -1}
        return int(resources[1]["available"])

    assert available() == 2
    v2.ok("POST", f"/graphs/{graph_id}/backups")
    assert available() == 1
    emu.add_export("bkt/foreign")
    v2.ok("POST", f"/graphs/{graph_id}/backups/import", json={"import_path": "bkt/foreign"})
    assert available() == 0
    assert_v2_error(v2.call("POST", f"/graphs/{graph_id}/backups"), 400, "GES.7019", "quota (4)")
    assert_ges_error(v1.call("POST", f"/graphs/{graph_id}/backups"), 400, "GES.7019")
    assert_v2_error(v2.import_(graph_id, "bkt/foreign"), 400, "GES.7019")
    v1_quotas = v1.ok("GET", "/graphs/quotas")["quotas"]["resources"]
    assert (
        v1_quotas[0] == {"type": "graph", "available": -1, "edgeVolume": -1}
        and v1_quotas[1]["available"] == 0
    )
    emu.backup_quota = None
    assert available() == -1  # GES's "unlimited"
    v2.ok("POST", f"/graphs/{graph_id}/backups")
    assert len(emu.backups(graph_id)) == 5 and emu.counters["list_quotas"] == 5


@pytest.mark.ges_emulator(graphs=2, backups=4, backup_duration=0.0, project_backup_quota=5)
def test_project_backup_quota_counts_every_graph(v2: V2Client) -> None:
    emu = v2.emu
    graph_a, graph_b = (g["id"] for g in emu.graphs())
    assert v2.ok("GET", "/graphs/quotas")["quotas"]["resources"][1]["available"] == 1
    v2.ok("POST", f"/graphs/{graph_a}/backups")
    assert_v2_error(v2.call("POST", f"/graphs/{graph_b}/backups"), 400, "GES.7019", "of the project")
    emu.backup_quota = 2  # each graph holds 2 or 3 already: the tighter limit shows
    assert v2.ok("GET", "/graphs/quotas")["quotas"]["resources"][1]["available"] == 0
    emu.project_backup_quota = None
    emu.backup_quota = 4
    held = [len(emu.backups(g)) for g in (graph_a, graph_b)]
    assert v2.ok("GET", "/graphs/quotas")["quotas"]["resources"][1]["available"] == sum(4 - n for n in held)


# --- errors and faults ----------------------------------------------------------------------------------


@pytest.mark.ges_emulator(graphs=1, backups=1)
def test_v2_error_bodies(v2: V2Client) -> None:
    emu = v2.emu
    assert_v2_error(v2.get("/graphs/nope/backups"), 400, "GES.7000", "does not exist")
    other = requests.get(
        f"{emu.url}/v2/{'0' * 32}/graphs", headers={"X-Auth-Token": emu.issue_token()}, timeout=5
    )
    assert_v2_error(other, 403, "GES.0001", "project")
    assert_gateway_error(
        V2Client(emu, token=None).get("/graphs"), 401, "APIGW.0301", "x-auth-token not found"
    )
    assert_gateway_error(
        V2Client(emu, token="MIIwrong").get("/graphs"), 401, "APIGW.0301", "decrypt token fail"
    )
    assert_gateway_error(v2.call("POST", "/graphs/x/restart"), 404, "APIGW.0101")
    assert_gateway_error(v2.call("PUT", "/graphs/backups"), 404, "APIGW.0101")
    emu.set_faults("ges7006:count=1")
    assert_v2_error(v2.get("/graphs"), 400, "GES.7006")
    assert_ges_error(Client(emu).get("/graphs/nope"), 400, "GES.7000")  # v1 keeps its own shape


@pytest.mark.ges_emulator(**FAST, faults="504:scope=create:after=1:count=1")
def test_a_lost_v2_create_reply_after_the_backup_was_made(v2: V2Client) -> None:
    graph_id = v2.emu.graphs()[0]["id"]
    before = len(v2.emu.backups(graph_id))
    assert_gateway_error(v2.call("POST", f"/graphs/{graph_id}/backups"), 504, "APIGW.0203")
    assert len(v2.emu.backups(graph_id)) == before + 1 and v2.emu.job_names(graph_id) == ["BackupGraph"]
    assert v2.emu.counters["replies_lost"] == 1


@pytest.mark.ges_emulator(**FAST)
def test_fault_scopes_on_v2_routes(v2: V2Client, v1: Client) -> None:
    emu = v2.emu
    graph_a, graph_b = (g["id"] for g in emu.graphs())
    backup = old_success(emu, graph_a)
    emu.set_faults("500:scope=export:count=1")
    assert_gateway_error(v2.export(graph_a, backup["id"], "bkt/dir"), 500, "APIGW.0002")
    assert emu.job_names(graph_a) == []  # answered instead of the call
    export_job = v2.export(graph_a, backup["id"], "bkt/dir").json()["job_id"]
    v2.wait_job(graph_a, export_job)
    emu.set_faults("drop:scope=import:after=1")
    with pytest.raises(requests.ConnectionError):
        v2.import_(graph_b, "bkt/dir")
    assert emu.job_names(graph_b) == ["ImportBackup"]  # carried out, its reply lost
    emu.set_faults("503:scope=stop")
    assert_gateway_error(v2.call("POST", f"/graphs/{graph_a}/stop"), 503, "APIGW.0202")
    assert v2.call("POST", f"/graphs/{graph_a}/start").status_code == 400  # not a stop: GES.7015
    emu.set_faults("502:scope=action:count=1")
    assert_gateway_error(v2.call("POST", f"/graphs/{graph_a}/start"), 502, "APIGW.0201")
    emu.set_faults("429:scope=list")
    assert v2.get("/graphs/backups").status_code == 429 and v2.get("/graphs/jobs").status_code == 429
    assert v2.get(f"/graphs/{graph_a}").status_code == 200
    emu.set_faults("500:scope=delete")
    assert_gateway_error(v2.call("DELETE", f"/graphs/{graph_a}/backups/{backup['id']}"), 500, "APIGW.0002")
    emu.set_faults("500:scope=v2")
    assert v2.get("/graphs").status_code == 500 and v1.get("/graphs").status_code == 200
    emu.set_faults("500:scope=v1")
    assert v2.get("/graphs").status_code == 200 and v1.get("/graphs").status_code == 500
    emu.set_faults(None)
    files = v2.ok("GET", f"/graphs/{graph_a}/backup-files", params={"backup_id": backup["id"]})["files"]
    emu.set_faults("500:scope=all")
    assert v2.get("/graphs").status_code == 500
    assert requests.get(files[0]["download_link"], timeout=5).status_code == 200  # links see no faults


# --- control API and ctl -----------------------------------------------------------------------------


def run_ctl(url: str, *argv: str) -> Any:
    out = io.StringIO()
    with redirect_stdout(out):
        assert ctl.main(["--url", url, *argv]) == 0
    return json.loads(out.getvalue())


def test_control_and_ctl_steer_exports_links_and_settings(capsys: pytest.CaptureFixture[str]) -> None:
    with GesEmulator(graphs=1, backups=3, seed=1, control=True, export_duration=0.1) as emu:
        url = emu.url
        settings = run_ctl(url, "settings")
        assert settings["export_duration"] == 0.1 and settings["link_ttl"] == 300.0
        assert settings["backup_quota"] is None and settings["job_wait_state"] == "pending"
        changed = run_ctl(
            url, "settings", "--export-duration", "2", "--import-duration", "3", "--link-ttl", "9",
            "--backup-quota", "7", "--project-backup-quota", "8", "--job-pending", "1",
        )  # fmt: skip
        assert (changed["export_duration"], changed["import_duration"], changed["link_ttl"]) == (2, 3, 9)
        assert (emu.backup_quota, emu.project_backup_quota, emu.job_pending) == (7, 8, 1.0)
        assert run_ctl(url, "settings", "--backup-quota", "none")["backup_quota"] is None
        assert emu.backup_quota is None and emu.project_backup_quota == 8
        backup = emu.backups()[0]
        added = run_ctl(url, "add-export", "bkt/by/hand/", "--backup", backup["id"])
        assert added == {"backup_id": backup["id"], "path": "bkt/by/hand"}
        run_ctl(url, "add-export", "bkt/foreign")
        assert run_ctl(url, "exports") == [
            {"backup_id": backup["id"], "path": "bkt/by/hand"},
            {"backup_id": None, "path": "bkt/foreign"},
        ]
        client = V2Client(emu)
        graph_id = emu.graphs()[0]["id"]
        link = client.ok("GET", f"/graphs/{graph_id}/backup-files", params={"backup_id": backup["id"]})[
            "files"
        ][0]
        assert run_ctl(url, "expire-links") == {"expired": 2}
        assert requests.get(link["download_link"], timeout=5).status_code == 403
        capsys.readouterr()
        assert ctl.main(["--url", url, "add-export", "Bad/path"]) == 2
        assert "not an OBS path" in capsys.readouterr().err
        assert ctl.main(["--url", url, "add-export", "bkt/x", "--backup", "nope"]) == 2
        assert "no backup 'nope'" in capsys.readouterr().err
        assert ctl.main(["--url", url, "settings", "--link-ttl", "-1"]) == 2
        assert "must not be negative" in capsys.readouterr().err
        with pytest.raises(SystemExit):
            ctl.main(["--url", url, "settings", "--backup-quota", "lots"])
        base = f"{url}/__emulator__"
        refused = requests.put(
            f"{base}/backup-settings", json={"link_ttl": -1, "export_duration": 1}, timeout=5
        )
        assert refused.status_code == 400 and "must not be negative" in refused.json()["error"]
        assert emu.export_duration == 2  # a refused change changes none
        refused = requests.put(f"{base}/backup-settings", json={"colour": 1}, timeout=5)
        assert refused.status_code == 400 and "unknown setting" in refused.json()["error"]
        cleared = requests.put(
            f"{base}/backup-settings", json={"project_backup_quota": None, "link_ttl": None}, timeout=5
        )
        assert cleared.json()["project_backup_quota"] is None and cleared.json()["link_ttl"] == 9
        assert requests.post(f"{base}/exports", json={}, timeout=5).status_code == 400
        assert emu.counters["v2_requests"] == 1  # control calls count nowhere


def test_the_cli_takes_the_v2_settings() -> None:
    argv = ["--port", "0", "--control", "--export-duration", "7", "--import-duration", "8"]
    argv += ["--link-ttl", "9", "--project-backup-quota", "3", "--backup-quota", "2"]
    cmd = [sys.executable, "-m", "airflow_provider_ges.emulator", *argv]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        url = re.search(r"on (http://\S+) ", proc.stdout.readline())
        assert url, "no URL printed"
        settings = run_ctl(url.group(1), "settings")
        assert (settings["export_duration"], settings["import_duration"], settings["link_ttl"]) == (7, 8, 9)
        assert (settings["project_backup_quota"], settings["backup_quota"]) == (3, 2)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stdout is not None
        proc.stdout.close()
