"""Roll a GES graph back to a known-good backup, once a person has approved it.

Trigger it by hand with the ``backup_id`` to restore (e.g. the one ``example_ges_backup_then_etl``
logged before a load that went wrong). ``describe_restore`` looks the backup up in the graph's
backups and refuses one that is missing, another graph's or not successful (or an empty
``backup_id``); ``approve_restore`` (Airflow's human-in-the-loop approval, "Required Actions" in the
UI) shows which backup and what the graph loses. Approved: ``restore_graph`` checks the backup again,
stops the graph, starts it from the backup and waits (deferred) for the start. Rejected: the restore
is skipped and the graph is not touched. ``GES_EXAMPLE_POLL_INTERVAL`` (seconds, read at parse time)
overrides the restore's poll interval.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Param, task

from airflow_provider_ges.operators.ges import GesRestoreGraphOperator

POLL_INTERVAL = float(os.environ.get("GES_EXAMPLE_POLL_INTERVAL", "30"))


@task
def describe_restore(graph_name: str, backup_id: str) -> str:
    """What the approver reads (markdown): the backup, and what restoring from it throws away."""
    from airflow_provider_ges.hooks.ges import GesHook
    from airflow_provider_ges.lifecycle import backup_refusal, check_id, resolve_graph_id

    backup_id = check_id("backup_id", backup_id, rendered=True)
    hook = GesHook()
    graph_id = resolve_graph_id(hook, None, graph_name)
    backup = next((b for b in hook.iter_backups(graph_id) if b.id == backup_id), None)
    refusal = backup_refusal(backup, backup_id)
    if refusal or backup is None:
        raise ValueError(f"Not asking to restore graph {graph_name!r}: {refusal}")

    def utc(when: datetime | None) -> str:
        return when.strftime("%Y-%m-%d %H:%M:%S UTC") if when else "unknown"

    size = "unknown" if backup.size is None else f"{backup.size} MB"
    return (
        f"Restore graph **{graph_name}** (id `{graph_id}`) from backup **{backup.name}** (id `{backup.id}`,"
        f" {backup.backup_method}): started {utc(backup.start_time)}, ended {utc(backup.end_time)},"
        f" size {size}.\n\n"
        f"The graph **loses everything written since {utc(backup.start_time)}**, and it is stopped"
        " while it restarts from the backup. Reject to leave it as it is."
    )


with DAG(
    dag_id="example_ges_restore_graph",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "graph_name": Param("movies", type="string", description="The GES graph to restore"),
        "backup_id": Param("", type="string", description="The id of the backup to restore from"),
    },
    tags=["example", "ges"],
):
    approve = ApprovalOperator(
        task_id="approve_restore",
        subject="Restore GES graph {{ params.graph_name }} from backup {{ params.backup_id }}?",
        body="{{ ti.xcom_pull(task_ids='describe_restore') }}",
    )
    restore = GesRestoreGraphOperator(
        task_id="restore_graph",
        graph_name="{{ params.graph_name }}",
        backup_id="{{ params.backup_id }}",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=timedelta(hours=1).total_seconds(),
    )
    describe_restore("{{ params.graph_name }}", "{{ params.backup_id }}") >> approve >> restore
