"""The CeleryExecutor deployment test's DAGs (tests/deployment/test_celery.py): 200 deferrable gates over
10 graphs (spread over two triggerers), 30 reschedule gates over 10 graphs (on two Celery workers), and
asset watchers on four graphs (one DAG each). ``retries=2``: a lost trigger or a repeated try shows as a
second try instead of hiding as a failure."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_ges.sensors.ges import GesBackupSensor
from airflow_provider_ges.triggers.ges import GesBackupEventTrigger

DEFERRED_GRAPHS = [f"celery_d{i}" for i in range(10)]
RESCHEDULE_GRAPHS = [f"celery_r{i}" for i in range(10)]
ASSET_GRAPHS = [f"celery_a{i}" for i in range(4)]
DEFAULTS = {"retries": 2, "retry_delay": timedelta(seconds=1)}
FLEETS = {
    "ges_celery_deferred_fleet": ({"deferrable": True, "poke_interval": 3}, DEFERRED_GRAPHS * 20),
    # More reschedule gates than the 8 slots, each back after 15 s: every gate looks before the first is
    # due again (with 2 s, the scheduler kept handing the slots to the same first gates by map index).
    "ges_celery_reschedule_fleet": ({"mode": "reschedule", "poke_interval": 15}, RESCHEDULE_GRAPHS * 3),
}

for dag_id, (mode, graphs) in FLEETS.items():
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_tasks=256,
        default_args=DEFAULTS,
        tags=["ges", "deployment-test"],
    ):
        GesBackupSensor.partial(task_id="wait_for_backup", timeout=900, **mode).expand(graph_name=graphs)

for graph in ASSET_GRAPHS:
    asset = Asset(
        name=f"ges_backup_{graph}",
        uri=f"ges://{graph}/backups",
        watchers=[
            AssetWatcher(
                name=f"ges_backup_{graph}_watcher",
                trigger=GesBackupEventTrigger(graph_name=graph, poll_interval=1.0),
            )
        ],
    )
    with DAG(
        dag_id=f"ges_celery_asset_{graph}",
        schedule=[asset],
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["ges", "deployment-test"],
    ):

        @task(inlets=[asset])
        def run_etl(*, triggering_asset_events: Any = None) -> list[str]:
            return [
                event.extra["payload"]["id"]
                for events in triggering_asset_events.values()
                for event in events
            ]

        run_etl()
