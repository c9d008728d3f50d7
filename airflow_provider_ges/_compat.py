"""Every difference between the supported Airflow versions (3.1, 3.2, 3.3), and nothing else.

The rest of the package and the tests import these names from here; nothing else branches on the
Airflow version. Imports stay cheap: DAG files import this module at parse time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow import __version__ as AIRFLOW_VERSION

AIRFLOW_V_3_2_PLUS = tuple(int(p) for p in AIRFLOW_VERSION.split(".")[:2]) >= (3, 2)
AIRFLOW_V_3_3_PLUS = tuple(int(p) for p in AIRFLOW_VERSION.split(".")[:2]) >= (3, 3)
#: 3.3: event triggers with equal ``shared_stream_key()`` share one poll (``filter_shared_stream``).
HAS_SHARED_STREAMS = AIRFLOW_V_3_3_PLUS
#: 3.3: the triggerer gives an event trigger its watched assets' state store (``asset_state_store``).
HAS_ASSET_STATE_STORE = AIRFLOW_V_3_3_PLUS
#: 3.3: the scheduler starts a task with ``start_from_trigger`` in the triggerer, which renders the
#: trigger kwargs named like the task's template fields first. 3.1 and 3.2 leave that start path
#: disabled in the scheduler (``DagRun.schedule_tis``): every such task runs in a worker.
STARTS_FROM_TRIGGER = AIRFLOW_V_3_3_PLUS

if TYPE_CHECKING or AIRFLOW_V_3_2_PLUS:
    # 3.2 moved the task exceptions and ``conf`` into the task SDK
    from airflow.sdk import conf
    from airflow.sdk.exceptions import (
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
else:  # Airflow 3.1
    from airflow.configuration import conf
    from airflow.exceptions import (
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )

__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_2_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "HAS_ASSET_STATE_STORE",
    "HAS_SHARED_STREAMS",
    "STARTS_FROM_TRIGGER",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "TaskDeferred",
    "amask_secret",
    "asset_state_accessors",
    "conf",
    "dag_bag",
    "default_deferrable",
    "mask_secret",
    "secrets_masker",
    "start_from_trigger_refusal",
]


def default_deferrable() -> bool:
    """``[operators] default_deferrable`` from the Airflow config (False when unset)."""
    return conf.getboolean("operators", "default_deferrable", fallback=False)


def start_from_trigger_refusal() -> str | None:
    """Why this Airflow cannot start a task in the triggerer (None: it can)."""
    if STARTS_FROM_TRIGGER:
        return None
    return f"Airflow {AIRFLOW_VERSION} never starts a task in the triggerer (3.3 does)"


def mask_secret(value: str) -> None:
    """Register a value with Airflow's secrets masker (this process and the task's supervisor)."""
    from airflow.sdk.log import mask_secret as mask

    mask(value)


def secrets_masker() -> Any:
    """This process's secrets masker (the object ``mask_secret`` adds to)."""
    from airflow.sdk._shared.secrets_masker import _secrets_masker

    return _secrets_masker()


async def amask_secret(value: str) -> None:
    """``mask_secret`` for the event loop, never blocking it.

    Airflow 3.3 has ``amask_secret``: it masks in this process and tells the supervisor with an
    async send. 3.1 and 3.2 have only the blocking ``mask_secret``, whose synchronous send to the
    supervisor can deadlock a triggerer whose loop has a send in flight; there the value is added
    to this process's masker only, so every line the trigger logs is masked, but the triggerer's
    supervisor process is not told (it never sees the value: triggers log through this process).
    """
    if AIRFLOW_V_3_3_PLUS:
        from airflow.sdk.log import amask_secret as amask

        await amask(value)
    else:
        secrets_masker().add_mask(value)


def dag_bag(folder: str) -> Any:
    """A ``DagBag`` of ``folder`` (moved to ``airflow.dag_processing.dagbag`` in 3.2)."""
    if AIRFLOW_V_3_2_PLUS:
        from airflow.dag_processing.dagbag import DagBag
    else:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    return DagBag(folder)


def asset_state_accessors(trigger: Any) -> list[Any]:
    """The state accessors (``aget``/``aset``) of the assets an event trigger watches.

    Airflow 3.3 sets ``trigger.asset_state_store`` when it runs the trigger as an asset watcher: one
    accessor per watched asset (a trigger shared by several assets gets several). Empty on 3.1 and
    3.2 (no asset state store), and when the trigger runs outside a watcher (a test, a benchmark).
    An object without the 3.3 mapping is taken as one accessor (a test's fake store).
    """
    store = getattr(trigger, "asset_state_store", None)
    if store is None:
        return []
    by_name = getattr(store, "_by_name", None)
    by_uri = getattr(store, "_by_uri", None)
    if isinstance(by_name, dict) and isinstance(by_uri, dict):
        return [*by_name.values(), *by_uri.values()]
    return [store]
