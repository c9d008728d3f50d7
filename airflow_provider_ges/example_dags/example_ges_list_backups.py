"""Report the GES backups that failed in the last day, across every graph of the project."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_ges.operators.ges import GesListBackupsOperator

with DAG(
    dag_id="example_ges_list_backups",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "ges"],
):
    failed_backups = GesListBackupsOperator(
        task_id="list_failed_backups",
        status="failed",
        # the day before the run: for scheduled, manual (with or without logical date) and backfill runs
        newer_than="{{ dag_run.run_after - macros.timedelta(days=1) }}",
    )

    @task
    def report(backups: list[dict[str, Any]]) -> dict[str, int]:
        per_graph: dict[str, int] = {}
        for backup in backups:
            per_graph[backup["graph_name"]] = per_graph.get(backup["graph_name"], 0) + 1
        for graph, count in sorted(per_graph.items()):
            print(f"{graph}: {count} failed backup(s) in the day before the run")
        if not per_graph:
            print("No failed backups in the day before the run")
        return per_graph

    report(failed_backups.output)
