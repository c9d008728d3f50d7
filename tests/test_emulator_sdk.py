"""The official Huawei Cloud SDK, pointed at the emulator, proves both speak the real wire format.

The SDK signs every call with AK/SK (``BasicCredentials``), so this also proves the emulator's
verifier, and with it :mod:`airflow_provider_ges.signer`, accept the SDK's signatures.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

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
