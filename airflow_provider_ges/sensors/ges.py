"""``GesBackupSensor``: let a DAG through once a graph has a fresh, successful backup."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_ges._compat import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    default_deferrable,
)
from airflow_provider_ges.exceptions import GesApiError, GesNotFoundError
from airflow_provider_ges.values import DEFAULT_CONN_ID, BackupMethod, check_time

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_ges.hooks.ges import GesHook
    from airflow_provider_ges.models import BackupGate


class GesBackupSensor(BaseSensorOperator):
    """Wait until a GES graph has a successful backup, newer than a given time.

    Passes as soon as a candidate backup (of the graph, started at or after ``newer_than``, made
    by ``backup_method``) has status ``success``; the newest such backup, with the API's field
    names, is the task's return value (XCom). If the newest candidate ``failed`` and none
    succeeded, fails at once without retries (``soft_fail`` skips instead). Otherwise waits.
    Transient API errors are retried and then waited out, never a pass or a failure.

    :param graph_id: the graph's id (give this or ``graph_name``). Templated.
    :param graph_name: the graph's name. Templated.
    :param newer_than: only backups started at or after this time count: a datetime, an
        ISO-8601 string or a template such as ``"{{ data_interval_start }}"``; None for any time.
    :param backup_method: ``"auto"``, ``"manual"`` or None for either.
    :param fail_on_failure: fail fast on a failed backup (default True); else keep waiting.
    :param ges_conn_id: the ``ges`` connection. Templated.
    :param deferrable: wait in the triggerer, holding no worker slot (default:
        ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("graph_id", "graph_name", "newer_than", "ges_conn_id")
    ui_color = "#c7e9f9"

    def __init__(
        self,
        *,
        graph_id: str | None = None,
        graph_name: str | None = None,
        newer_than: datetime | str | None = None,
        backup_method: str | None = None,
        fail_on_failure: bool = True,
        ges_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool | None = None,
        poke_interval: float | timedelta = 60,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        if (graph_id is None) == (graph_name is None):
            raise ValueError(f"{self.task_id}: give exactly one of graph_id or graph_name")
        if backup_method is not None and backup_method not in {m.value for m in BackupMethod}:
            raise ValueError(
                f"backup_method must be 'auto', 'manual', 'import' or None, got {backup_method!r}"
            )
        check_time("newer_than", newer_than)
        self.graph_id = graph_id
        self.graph_name = graph_name
        self.newer_than = newer_than
        self.backup_method = backup_method
        self.fail_on_failure = fail_on_failure
        self.ges_conn_id = ges_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self._graph_ids: dict[str, str | None] = {}  # graph name -> id found (None: not found)

    @cached_property
    def hook(self) -> GesHook:
        from airflow_provider_ges.hooks.ges import GesHook  # at run time: DAG parsing stays cheap

        return GesHook(self.ges_conn_id)

    @property
    def gate(self) -> BackupGate:
        """The rule, from the (rendered) arguments."""
        from airflow_provider_ges.models import BackupGate

        return BackupGate.model_validate(
            {
                "graph_id": self.graph_id or None,
                "graph_name": self.graph_name or None,
                "newer_than": self.newer_than or None,
                "backup_method": self.backup_method or None,
                "fail_on_failure": self.fail_on_failure,
            }
        )

    def gate_on_graph(self, *, look_up: bool = True) -> BackupGate:
        """The gate on one graph's own listing: a ``graph_name`` is turned into the graph's id,
        looked up once per try, so each look reads one small listing rather than every backup of
        the project. When no graph (or several) has that name, or the graph list is refused, the
        project's backups are filtered by name, as without the look-up."""
        gate = self.gate
        name = gate.graph_name
        if gate.graph_id is None and name is not None:
            if look_up and name not in self._graph_ids:
                from airflow_provider_ges.wire import graph_list_refused

                try:
                    found = self.hook.find_graph_id(name)
                except GesApiError as err:
                    if not graph_list_refused(err):
                        raise
                    found = None  # e.g. a user allowed to list backups but not graphs
                    self.log.warning("Cannot list graphs, so filtering all backups by name: %s", err)
                self._graph_ids[name] = found
                self.log.info("Graph %r: %s", name, f"id {found}" if found else "no single graph found")
            gate = gate.for_graph(self._graph_ids.get(name))
        return gate

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        try:
            outcome = self.poke(context)
        except AirflowFailException as err:
            if self.soft_fail:
                raise AirflowSkipException(f"Skipping (soft_fail): {err}") from err
            raise
        if outcome:
            return outcome.xcom_value
        from airflow_provider_ges.triggers.ges import GesBackupTrigger

        self.defer(
            trigger=GesBackupTrigger(
                ges_conn_id=self.ges_conn_id,
                gate=self.gate_on_graph(look_up=False).model_dump(mode="json"),
                poll_interval=self.poke_interval,
                end_time=time.time() + self.timeout,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def poke(self, context: Context) -> PokeReturnValue:
        try:
            gate = self.gate_on_graph()
            verdict = gate.judge(self.hook.iter_backups(gate.graph_id))
        except GesNotFoundError as err:
            name = self.graph_name
            if not name or self._graph_ids.pop(name, None) is None:
                raise
            # the graph found for the name was deleted (and perhaps re-created, with a new id)
            self.log.warning("Graph %r is gone (%s); will look its name up again", name, err)
            return PokeReturnValue(False)
        except GesApiError as err:
            if not err.transient:
                raise
            self.log.warning("GES still failing after retries; will look again: %s", err)
            return PokeReturnValue(False)
        if verdict.state == "failed" and verdict.backup is not None:
            raise AirflowFailException(gate.failure_message(verdict.backup))
        if verdict.state == "success" and verdict.backup is not None:
            self.log.info("Backup %s of %s succeeded", verdict.backup.id, gate.graph)
            return PokeReturnValue(True, verdict.backup.to_api())
        latest = verdict.backup
        self.log.info(
            "No successful backup of %s yet (newest candidate: %s)",
            gate.graph,
            f"{latest.id} {latest.status}" if latest else "none",
        )
        return PokeReturnValue(False)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the trigger: return the backup, or raise on anything but success."""
        status = event.get("status")
        if status == "success":
            self.log.info("Backup %s succeeded", event["backup"]["id"])
            return event["backup"]
        if status == "failed":
            raise AirflowFailException(event["message"])
        if status == "timeout":
            raise AirflowSensorTimeout(event["message"])
        raise RuntimeError(f"GES backup trigger ended with {status!r}: {event.get('message')}")
