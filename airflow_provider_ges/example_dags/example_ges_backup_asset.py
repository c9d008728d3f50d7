"""Run the ETL once for every new successful backup of a GES graph: event-driven, no sensor.

An asset watcher in the triggerer polls the graph's backups (``GesBackupEventTrigger``) and
updates the asset once for each backup that reaches ``success`` after the watcher first started.
The ETL DAG is scheduled on the asset: it starts seconds after the backup, holds no worker slot
while waiting, and reads which backup it runs for from ``triggering_asset_events`` (each event's
``extra["payload"]`` is the backup, with the API's field names).

Backups that had succeeded before the watcher first started do not start runs. On Airflow >= 3.3
the watcher's watermark is kept in the asset state store, so a triggerer restart neither repeats
a run nor misses a backup that succeeded meanwhile; on 3.1/3.2 see ``docs/events.md``.

The asset's URI is ``ges://<graph>/backups``, the form the provider's ``ges`` URI scheme checks
(``airflow_provider_ges.assets``). The watcher registers when this file is parsed with the DAG
unpaused. ``GES_EXAMPLE_GRAPH`` and ``GES_EXAMPLE_POLL_INTERVAL`` (seconds) override the graph and
the poll interval, read at parse time (no connection or network call happens here).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_ges.triggers.ges import GesBackupEventTrigger

GRAPH = os.environ.get("GES_EXAMPLE_GRAPH", "movies")
POLL_INTERVAL = float(os.environ.get("GES_EXAMPLE_POLL_INTERVAL", "60"))

graph_backup = Asset(
    name=f"ges_backup_{GRAPH}",
    uri=f"ges://{GRAPH}/backups",
    watchers=[
        AssetWatcher(
            name=f"ges_backup_{GRAPH}_watcher",
            trigger=GesBackupEventTrigger(graph_name=GRAPH, poll_interval=POLL_INTERVAL),
        )
    ],
)

with DAG(
    dag_id="example_ges_backup_asset",
    schedule=[graph_backup],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "ges"],
):

    @task(inlets=[graph_backup])
    def run_etl(*, triggering_asset_events: Any = None) -> dict[str, Any]:
        # Backups that succeed in quick succession may reach one run together: the newest is read.
        backups = [event.extra["payload"] for event in triggering_asset_events[graph_backup]]
        backups.sort(key=lambda b: (b.get("endTimestamp") or 0, b["id"]))
        backup = backups[-1]
        print(
            f"ETL reads graph {backup.get('graph_name')!r} as of backup {backup.get('name')!r} "
            f"(id {backup['id']}, {backup.get('backupMethod')}, finished {backup.get('endTime')} UTC)"
        )
        return {"backup_id": backup["id"], "backup_ids": [b["id"] for b in backups]}

    run_etl()
