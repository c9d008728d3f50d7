"""Export a backup of one graph to OBS, then import that path into another: one DAG per wait mode.

Only tests/deployment/test_lifecycle.py uses these. The export path is built from the run's params
(``ges-dr/<source graph>/<export_dir>``); the import reads it from the export's XCom, as a user's
disaster-recovery DAG would. No retries: the test checks that one try of each did the work once.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_ges.operators.ges import GesExportBackupOperator, GesImportBackupOperator

#: Seconds each task may wait for its job (the operators' ``timeout``): far above the test's jobs.
TIMEOUT = 60

for name, deferrable in {"worker": False, "deferrable": True}.items():
    with DAG(
        dag_id=f"ges_export_import_{name}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        params={
            "source_graph": Param("movies", type="string"),
            "target_graph": Param("movies", type="string"),
            "backup_id": Param("", type="string"),
            "export_dir": Param("export", type="string"),
        },
        tags=["ges", "deployment-test"],
    ):
        export_backup = GesExportBackupOperator(
            task_id="export_backup",
            graph_name="{{ params.source_graph }}",
            backup_id="{{ params.backup_id }}",
            export_path="ges-dr/{{ params.source_graph }}/{{ params.export_dir }}",
            deferrable=deferrable,
            poll_interval=0.5,
            timeout=TIMEOUT,
        )
        import_backup = GesImportBackupOperator(
            task_id="import_backup",
            graph_name="{{ params.target_graph }}",
            import_path="{{ ti.xcom_pull('export_backup')['export_path'] }}",
            deferrable=deferrable,
            poll_interval=0.5,
            timeout=TIMEOUT,
        )
        export_backup >> import_backup
