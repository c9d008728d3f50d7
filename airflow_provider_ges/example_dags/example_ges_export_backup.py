"""Nightly: back up a GES graph, then export the new backup to OBS (the disaster-recovery copy).

Export and import use GES API v2 whatever the connection's ``api_version``. The export path is an
OBS ``bucket/dir``; a copy there can be imported into a graph in another region or account with
``GesImportBackupOperator(graph_name=..., import_path=...)`` and restored from
(docs/lifecycle.md, "Restore from an imported backup").
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_provider_ges.operators.ges import GesCreateBackupOperator, GesExportBackupOperator

with DAG(
    dag_id="example_ges_export_backup",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "graph_name": Param("movies", type="string", description="The GES graph to back up"),
        "export_path": Param("ges-dr-copies/movies", type="string", description="OBS bucket/dir"),
    },
    tags=["example", "ges"],
):
    backup = GesCreateBackupOperator(
        task_id="backup_graph",
        graph_name="{{ params.graph_name }}",
        deferrable=True,
        poll_interval=30,
        timeout=timedelta(hours=2).total_seconds(),
    )
    (
        GesExportBackupOperator(
            task_id="export_backup",
            graph_name="{{ params.graph_name }}",
            backup_id="{{ ti.xcom_pull(task_ids='backup_graph')['id'] }}",
            export_path="{{ params.export_path }}/{{ ds_nodash }}",
            deferrable=True,
            poll_interval=30,
            timeout=timedelta(hours=2).total_seconds(),
        )
        << backup
    )
