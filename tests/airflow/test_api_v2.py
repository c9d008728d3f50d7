"""GES API v2: the connection's ``api_version`` decides where the calls go; export, import, download
links and quotas (v2 only) through the hooks and, export and import, through real Airflow runs."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_ges._compat import AirflowFailException, secrets_masker
from airflow_provider_ges.emulator import GesEmulator
from airflow_provider_ges.hooks.ges import GesAsyncHook, GesHook
from tests.airflow.test_e2e import airflow_db, load_dag, run  # noqa: F401 (airflow_db: a fixture)
from tests.airflow.test_lifecycle_e2e import WAITS, tune

NOW = datetime.now(timezone.utc).replace(microsecond=0)
FAST = {
    "graphs": 0,
    "backups": 0,
    "backup_duration": 0.3,
    "graph_action_duration": 0.3,
    "export_duration": 0.5,
    "import_duration": 0.5,
}


def on(emu: GesEmulator, monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    conn = emu.connection()
    conn["extra"]["api_version"] = version
    monkeypatch.setenv("AIRFLOW_CONN_GES_DEFAULT", json.dumps(conn))


@pytest.mark.ges_emulator(**FAST)
def test_on_v2_no_v1_path_is_requested(ges_emulator: GesEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    emu = ges_emulator
    graph = emu.add_graph("movies")
    old = emu.add_backup("movies", status="success", start=NOW - timedelta(days=3))
    emu.add_backup("movies", status="success", start=NOW - timedelta(days=1))
    on(emu, monkeypatch, "v2")
    hook = GesHook()

    assert hook.test_connection()[0]
    assert hook.find_graph_id("movies") == graph["id"]
    backups = hook.list_backups(graph["id"])
    assert [b.id for b in backups][-1] == old["id"] and backups[0].start_time is not None
    job = hook.get_job(graph["id"], hook.create_backup(graph["id"]))
    assert job.job_name == "BackupGraph"
    assert {j.job_id for j in hook.list_jobs("movies")} == {job.job_id}
    hook.delete_backup(graph["id"], old["id"])
    assert hook.get_graph(graph["id"]).status in ("200", "903")  # 903: backing up
    assert asyncio.run(_async_calls(graph["id"])) == graph["id"]

    assert emu.counters["v2_requests"] > 0
    assert emu.counters["v1_requests"] == 0


async def _async_calls(graph_id: str) -> str | None:
    async with GesAsyncHook() as hook:
        await hook.list_backups(graph_id)
        return await hook.find_graph_id("movies")


@pytest.mark.ges_emulator(**FAST)
def test_on_v1_the_v2_only_calls_still_use_v2(
    ges_emulator: GesEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = ges_emulator
    graph = emu.add_graph("movies")
    good = emu.add_backup("movies", status="success", start=NOW - timedelta(days=1))
    on(emu, monkeypatch, "v1")
    hook = GesHook()
    hook.list_backups(graph["id"])
    v1 = emu.counters["v1_requests"]

    files = hook.backup_download_links(graph["id"], good["id"])
    quotas = {q.type: q.available for q in hook.get_quotas()}

    assert emu.counters["v1_requests"] == v1  # the v2-only calls went to /v2
    assert files.bucket and files.files and all(f.download_link for f in files.files)
    link = files.files[0].download_link or ""
    assert link not in repr(files)  # a credential: not in a repr...
    assert link not in secrets_masker().redact(f"got {link}")  # ...and masked in logs
    assert "backup" in quotas


@pytest.mark.ges_emulator(**FAST, backup_quota=1)
def test_create_fails_before_the_create_when_no_backup_slot_is_left(
    ges_connection: GesEmulator,
    airflow_db: None,  # noqa: F811
) -> None:
    emu = ges_connection
    emu.add_graph("movies")
    emu.add_backup("movies", status="success", start=NOW - timedelta(days=1))
    emu.reset_counters()
    dag = tune(load_dag("example_ges_backup_then_etl"), "backup_graph", deferrable=False, retries=1)

    _run, states, _ = run(dag)

    assert states == {"backup_graph": "failed", "run_etl": "upstream_failed"}
    assert emu.counters["create_backup"] == 0  # refused before asking
    assert emu.counters["list_quotas"] == 1  # AirflowFailException: not retried


@pytest.mark.ges_emulator(**FAST)
@pytest.mark.parametrize("wait", WAITS)
def test_backup_then_export_and_import_back(
    ges_connection: GesEmulator,
    airflow_db: None,  # noqa: F811
    wait: str,
) -> None:
    emu = ges_connection
    emu.add_graph("movies")
    target = emu.add_graph("movies_dr")
    emu.set_faults("504:scope=export:after=1:count=1")  # the export's reply is lost once
    dag = load_dag("example_ges_export_backup")
    for task_id in ("backup_graph", "export_backup"):
        tune(dag, task_id, deferrable=WAITS[wait])

    _run, states, xcoms = run(dag)

    assert states == {"backup_graph": "success", "export_backup": "success"}
    new = xcoms["backup_graph"]
    exported = xcoms["export_backup"]
    assert exported["backup_id"] == new["id"] and exported["job"]["status"] == "success"
    assert emu.exports == [(new["id"], exported["export_path"])]
    assert emu.counters["export_backup"] == 1  # read the jobs after the lost reply, never resent
    assert emu.job_names("movies").count("ExportBackup") == 1

    from airflow_provider_ges.operators.ges import GesImportBackupOperator

    hook = GesHook()
    before = {b.id for b in hook.iter_backups(target["id"])}
    op = GesImportBackupOperator(
        task_id="import", graph_name="movies_dr", import_path=exported["export_path"], poll_interval=0.2
    )
    imported = op.execute(_Context())
    assert imported["id"] not in before and imported["backupMethod"] == "import"
    assert imported["startTimestamp"] == new["startTimestamp"]  # an import carries the original's times
    assert emu.job_names("movies_dr") == ["ImportBackup"]


class _TI:
    try_number = 1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


class _Context(dict[str, Any]):
    def __init__(self) -> None:
        super().__init__(ti=_TI())


@pytest.mark.ges_emulator(**FAST)
def test_export_refuses_a_failed_backup_and_a_path_ges_refuses(ges_connection: GesEmulator) -> None:
    from airflow_provider_ges.operators.ges import GesExportBackupOperator

    emu = ges_connection
    emu.add_graph("movies")
    failed = emu.add_backup("movies", status="failed", start=NOW - timedelta(days=2))
    good = emu.add_backup("movies", status="success", start=NOW - timedelta(days=1))

    def export(backup_id: str, path: str) -> Any:
        op = GesExportBackupOperator(
            task_id="e", graph_name="movies", backup_id=backup_id, export_path=path, poll_interval=0.2
        )
        return op.execute(_Context())

    with pytest.raises(AirflowFailException, match="is failed, not success"):
        export(failed["id"], "ges-dr/movies")
    with pytest.raises(AirflowFailException, match="GES refused the export"):
        export(good["id"], "/not-an-obs-path")
    assert emu.counters["export_backup"] == 1 and emu.exports == []  # the refused one only
    with pytest.raises(ValueError, match="export_path is ''"):
        GesExportBackupOperator(task_id="e", graph_name="movies", backup_id="b", export_path="")
