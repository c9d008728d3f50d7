"""The official Huawei Cloud SDK, pointed at the emulator, proves both speak the real wire format.

The SDK signs every call with AK/SK (``BasicCredentials``), so this also proves the emulator's
verifier, and with it :mod:`airflow_provider_ges.signer`, accept the SDK's signatures.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from airflow_provider_ges.emulator import GesEmulator

ges_v1 = pytest.importorskip("huaweicloudsdkges.v1")
sdk_auth = pytest.importorskip("huaweicloudsdkcore.auth.credentials")
sdk_http = pytest.importorskip("huaweicloudsdkcore.http.http_config")
sdk_exceptions = pytest.importorskip("huaweicloudsdkcore.exceptions.exceptions")


def sdk_client(emu: GesEmulator, sk: str | None = None) -> Any:
    config = sdk_http.HttpConfig.get_default_config()
    config.ignore_ssl_verification = True
    config.timeout = (5, 5)
    return (
        ges_v1.GesClient.new_builder()
        .with_http_config(config)
        .with_credentials(sdk_auth.BasicCredentials(emu.ak, sk or emu.sk, emu.project_id))
        .with_endpoints([emu.url])
        .build()
    )


@pytest.mark.ges_emulator(graphs=3, backups=25)
def test_list_backups_pages(ges_emulator: GesEmulator) -> None:
    client = sdk_client(ges_emulator)
    expected = [b["id"] for b in ges_emulator.backups()]
    ids: list[str] = []
    for offset in range(0, 25, 10):
        reply = client.list_backups(ges_v1.ListBackupsRequest(limit=10, offset=offset))
        assert reply.backup_count == 25
        ids += [b.id for b in reply.backup_list]
        first = reply.backup_list[0]
        assert first.status in {"success", "failed"} and first.backup_method in {"auto", "manual"}
        assert first.start_timestamp > 0 and first.graph_id
        assert first.graph_name is None  # the SDK reads only "graphName"; the API sends "graph_name"
    assert ids == expected
    assert ges_emulator.counters["list_backups"] == 3 and ges_emulator.counters["auth_failures"] == 0


@pytest.mark.ges_emulator(graphs=2, backups=9)
def test_list_graph_backups(ges_emulator: GesEmulator) -> None:
    client = sdk_client(ges_emulator)
    graph = ges_emulator.graphs()[1]
    expected = [b["id"] for b in ges_emulator.backups(graph["id"])]
    reply = client.list_graph_backups(ges_v1.ListGraphBackupsRequest(graph_id=graph["id"], limit=2, offset=1))
    assert reply.backup_count == len(expected) == 4
    assert [b.id for b in reply.backup_list] == expected[1:3]


def test_create_backup_and_job_status(ges_emulator: GesEmulator) -> None:
    client = sdk_client(ges_emulator)
    graph_id = ges_emulator.graphs()[0]["id"]
    reply = client.create_backup(ges_v1.CreateBackupRequest(graph_id=graph_id))
    assert reply.job_id
    assert ges_emulator.backups(graph_id)[-1]["status"] == "backing_up"
    job = client.show_job(ges_v1.ShowJobRequest(graph_id=graph_id, job_id=reply.job_id))
    assert job.status == "running" and job.job_id == reply.job_id


def test_wrong_secret_is_rejected(ges_emulator: GesEmulator) -> None:
    client = sdk_client(ges_emulator, sk="not-the-secret")
    with pytest.raises(sdk_exceptions.ClientRequestException) as raised:
        client.list_backups(ges_v1.ListBackupsRequest(limit=1))
    assert raised.value.status_code == 401
    assert raised.value.error_code == "APIGW.0301"
    assert ges_emulator.counters["auth_failures"] == 1


def wait_job(client: Any, graph_id: str, job_id: str) -> Any:
    deadline = time.monotonic() + 5
    while (job := client.show_job(ges_v1.ShowJobRequest(graph_id=graph_id, job_id=job_id))).status not in (
        "success",
        "failed",
    ):
        assert time.monotonic() < deadline, "job did not end"
        time.sleep(0.05)
    return job


@pytest.mark.ges_emulator(graphs=1, backups=0, backup_duration=0.1, graph_action_duration=0.1)
def test_backup_stop_restore_start_delete(ges_emulator: GesEmulator) -> None:
    client = sdk_client(ges_emulator)
    graph_id = ges_emulator.graphs()[0]["id"]
    job_id = client.create_backup(ges_v1.CreateBackupRequest(graph_id=graph_id)).job_id
    assert client.show_graph(ges_v1.ShowGraphRequest(graph_id=graph_id)).graph.status == "903"
    job = wait_job(client, graph_id, job_id)
    assert (job.status, job.job_name, job.fail_reason, job.job_progress) == (
        "success",
        "BackupGraph",
        None,
        1.0,
    )
    assert job.end_time >= job.begin_time and "T" in job.end_time
    backup_id = ges_emulator.backups(graph_id)[-1]["id"]

    stop = client.stop_graph(ges_v1.StopGraphRequest(graph_id=graph_id, action_id="stop"))
    assert wait_job(client, graph_id, stop.job_id).status == "success"
    assert client.show_graph(ges_v1.ShowGraphRequest(graph_id=graph_id)).graph.status == "900"
    body = ges_v1.StartGraphReq(graph_backup_id=backup_id)
    start = client.start_graph(ges_v1.StartGraphRequest(graph_id=graph_id, action_id="start", body=body))
    assert wait_job(client, graph_id, start.job_id).job_name == "StartGraph"
    graph = client.show_graph(ges_v1.ShowGraphRequest(graph_id=graph_id)).graph
    assert (graph.id, graph.status) == (graph_id, "200")
    assert ges_emulator.restores == [(graph_id, backup_id)]

    client.delete_backup(ges_v1.DeleteBackupRequest(graph_id=graph_id, backup_id=backup_id))
    assert ges_emulator.backups(graph_id) == []
    with pytest.raises(sdk_exceptions.ClientRequestException) as raised:
        client.delete_backup(ges_v1.DeleteBackupRequest(graph_id=graph_id, backup_id=backup_id))
    assert raised.value.status_code == 400
    counters = ges_emulator.counters
    assert (counters["create_backup"], counters["graph_action"], counters["delete_backup"]) == (1, 2, 2)
    assert counters["show_graph"] == 3 and counters["show_job"] >= 4


def test_start_a_running_graph_is_refused(ges_emulator: GesEmulator) -> None:
    client = sdk_client(ges_emulator)
    request = ges_v1.StartGraphRequest(graph_id=ges_emulator.graphs()[0]["id"], action_id="start")
    with pytest.raises(sdk_exceptions.ClientRequestException) as raised:
        client.start_graph(request)
    assert raised.value.status_code == 400


# --- the v2 client --------------------------------------------------------------------------------------

ges_v2 = pytest.importorskip("huaweicloudsdkges.v2")
V2_FAST = {
    "graphs": 2,
    "backups": 6,
    "backup_duration": 0.1,
    "graph_action_duration": 0.1,
    "export_duration": 0.1,
    "import_duration": 0.1,
}


def sdk_client_v2(emu: GesEmulator) -> Any:
    config = sdk_http.HttpConfig.get_default_config()
    config.ignore_ssl_verification = True
    config.timeout = (5, 5)
    return (
        ges_v2.GesClient.new_builder()
        .with_http_config(config)
        .with_credentials(sdk_auth.BasicCredentials(emu.ak, emu.sk, emu.project_id))
        .with_endpoints([emu.url])
        .build()
    )


def wait_job_v2(client: Any, graph_id: str, job_id: str) -> Any:
    deadline = time.monotonic() + 5
    request = ges_v2.ShowJob2Request(graph_id=graph_id, job_id=job_id)
    while (job := client.show_job2(request)).status not in ("success", "failed"):
        assert time.monotonic() < deadline, "job did not end"
        time.sleep(0.05)
    return job


@pytest.mark.ges_emulator(graphs=3, backups=25)
def test_v2_lists_backups_graphs_and_jobs(ges_emulator: GesEmulator) -> None:
    emu = ges_emulator
    client = sdk_client_v2(emu)
    expected = emu.backups()
    ids: list[str] = []
    for offset in range(0, 25, 10):
        reply = client.list_backups2(ges_v2.ListBackups2Request(limit=10, offset=offset))
        assert reply.backup_count == 25
        ids += [b.id for b in reply.backup_list]
    assert ids == [b["id"] for b in expected]
    first = client.list_backups2(ges_v2.ListBackups2Request(limit=1)).backup_list[0]
    wire = expected[0]
    assert (first.graph_name, first.backup_method, first.start_timestamp, first.end_time, first.size) == (
        wire["graph_name"],  # v2 reads graph_name, which the v1 SDK model never does
        wire["backupMethod"],
        wire["startTimestamp"],
        wire["endTime"],
        wire["size"],
    )
    graph = emu.graphs()[1]
    mine = [b["id"] for b in emu.backups(graph["id"])]
    page = client.list_graph_backups2(
        ges_v2.ListGraphBackups2Request(graph_id=graph["id"], offset=1, limit=2)
    )
    assert page.backup_count == len(mine) and [b.id for b in page.backup_list] == mine[1:3]
    graphs = client.list_graphs2(ges_v2.ListGraphs2Request(offset=0, limit=10))
    assert graphs.graph_count == 3 and [g.id for g in graphs.graphs] == [g["id"] for g in emu.graphs()]
    shown = client.show_graph2(ges_v2.ShowGraph2Request(graph_id=graph["id"])).graph
    assert (shown.id, shown.name, shown.status, shown.region_code) == (
        graph["id"],
        graph["name"],
        "200",
        emu.region,
    )
    assert shown.enable_full_text_index is False and shown.data_store_version == graph["dataStoreVersion"]
    jobs = client.list_jobs2(ges_v2.ListJobs2Request(limit=10))
    assert jobs.job_count == 0 and jobs.job_list == []
    assert emu.counters["v1_requests"] == 0 and emu.counters["auth_failures"] == 0


@pytest.mark.ges_emulator(**V2_FAST, link_ttl=60)
def test_v2_backup_export_import_links_quotas_stop_start(ges_emulator: GesEmulator) -> None:
    emu = ges_emulator
    client = sdk_client_v2(emu)
    graph_a, graph_b = (g["id"] for g in emu.graphs())
    created = client.create_backup2(ges_v2.CreateBackup2Request(graph_id=graph_a))
    job = wait_job_v2(client, graph_a, created.job_id)
    assert (job.status, job.job_name, job.job_type, job.job_progress) == (
        "success",
        "BackupGraph",
        "GraphManagement",
        1.0,
    )
    old = next(b for b in emu.backups(graph_a) if b["status"] == "success")

    body = ges_v2.ExportBackupReq(backup_id=old["id"], export_path="sdk-bucket/exports")
    exported = client.export_backup2(ges_v2.ExportBackup2Request(graph_id=graph_a, body=body))
    assert wait_job_v2(client, graph_a, exported.job_id).job_name == "ExportBackup"
    assert emu.exports == [(old["id"], "sdk-bucket/exports")]
    body = ges_v2.ImportBackupReq(import_path="sdk-bucket/exports")
    imported = client.import_backup2(ges_v2.ImportBackup2Request(graph_id=graph_b, body=body))
    assert wait_job_v2(client, graph_b, imported.job_id).status == "success"
    copy = client.list_graph_backups2(
        ges_v2.ListGraphBackups2Request(graph_id=graph_b, limit=100)
    ).backup_list[-1]
    assert (copy.backup_method, copy.status, copy.start_timestamp, copy.end_time) == (
        "import",
        "success",
        old["startTimestamp"],
        old["endTime"],
    )
    with pytest.raises(sdk_exceptions.ClientRequestException) as raised:
        body = ges_v2.ExportBackupReq(backup_id=old["id"], export_path="/not/obs")
        client.export_backup2(ges_v2.ExportBackup2Request(graph_id=graph_a, body=body))
    assert (raised.value.status_code, raised.value.error_code) == (400, "GES.0001")  # v2 errors reach the SDK
    assert "'/not/obs'" in raised.value.error_msg

    files = client.show_backup_download_link(
        ges_v2.ShowBackupDownloadLinkRequest(graph_id=graph_a, backup_id=old["id"])
    )
    assert files.bucket and [f.name for f in files.files] == ["backup_info.json", "graph_data.bin"]
    data = requests.get(files.files[1].download_link, timeout=5)
    assert data.status_code == 200 and len(data.content) <= files.files[1].size * 1024
    assert files.files[1].link_expired_time.endswith("+0000")

    emu.project_backup_quota = len(emu.backups()) + 1
    resources = client.list_quotas2(ges_v2.ListQuotas2Request()).quotas.resources
    assert [(r.type, r.available) for r in resources] == [("graph", -1), ("backup", 1), ("metadata", -1)]
    assert resources[0].edge_volume == -1

    stop = client.stop_graph2(ges_v2.StopGraph2Request(graph_id=graph_a))
    assert wait_job_v2(client, graph_a, stop.job_id).job_name == "StopGraph"
    assert client.show_graph2(ges_v2.ShowGraph2Request(graph_id=graph_a)).graph.status == "900"
    body = ges_v2.StartGraphReq(graph_backup_id=old["id"])
    start = client.start_graph2(ges_v2.StartGraph2Request(graph_id=graph_a, body=body))
    assert wait_job_v2(client, graph_a, start.job_id).status == "success"
    assert emu.restores == [(graph_a, old["id"])]

    client.delete_backup2(ges_v2.DeleteBackup2Request(graph_id=graph_a, backup_id=old["id"]))
    assert old["id"] not in [b["id"] for b in emu.backups(graph_a)]
    with pytest.raises(sdk_exceptions.ClientRequestException) as raised:
        client.delete_backup2(ges_v2.DeleteBackup2Request(graph_id=graph_a, backup_id=old["id"]))
    assert (raised.value.status_code, raised.value.error_code) == (400, "GES.7024")
    jobs = client.list_jobs2(ges_v2.ListJobs2Request(graph_name=emu.graphs()[0]["name"], limit=100))
    assert [j.job_name for j in jobs.job_list] == ["BackupGraph", "ExportBackup", "StopGraph", "StartGraph"]
    assert jobs.job_count == 4 and jobs.job_list[0].job_id == created.job_id
    counters = emu.counters
    assert (
        counters["v1_requests"] == 0
        and counters["v2_requests"] == counters["requests"] - counters["download_file"]
    )
