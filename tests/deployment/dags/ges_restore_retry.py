"""A restore whose first try times out while GES still starts the graph: one DAG per wait mode.

Only tests/deployment/test_lifecycle.py uses these. ``retries=1`` with a 1 s ``retry_delay``, so the
scheduler retries a try that failed; a ``timeout`` shorter than the start job the test makes GES
run, so the first try fails while the start is still under way and the retry has to find it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_provider_ges.operators.ges import GesRestoreGraphOperator

#: Seconds a try may wait (the operator's ``timeout``); tests/deployment/test_lifecycle.py sizes its
#: start job to it.
TIMEOUT = 10

for name, deferrable in {"worker": False, "deferrable": True}.items():
    with DAG(
        dag_id=f"ges_restore_retry_{name}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        params={"graph_name": Param("movies", type="string"), "backup_id": Param("", type="string")},
        tags=["ges", "deployment-test"],
    ):
        GesRestoreGraphOperator(
            task_id="restore_graph",
            graph_name="{{ params.graph_name }}",
            backup_id="{{ params.backup_id }}",
            deferrable=deferrable,
            poll_interval=0.5,
            timeout=TIMEOUT,
            retries=1,
            retry_delay=timedelta(seconds=1),
        )
