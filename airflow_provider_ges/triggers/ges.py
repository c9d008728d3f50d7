"""``GesBackupTrigger``: waits for a successful backup in the triggerer, on the event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_ges.exceptions import GesApiError, GesNotFoundError
from airflow_provider_ges.hooks.ges import GesAsyncHook
from airflow_provider_ges.models import BackupGate, Verdict
from airflow_provider_ges.wire import graph_list_refused


class GesBackupTrigger(BaseTrigger):
    """Poll a graph's backups until the gate passes, fails or the deadline comes.

    Yields exactly one event, a dict with ``status``: ``success`` (with ``backup``, API field
    names), ``failed`` (with ``backup`` and ``message``), ``timeout`` or ``error`` (with
    ``message``). Transient API errors are retried and then waited out, never an event.

    :param ges_conn_id: the connection; the trigger carries its id, never a token.
    :param gate: the criteria, as ``BackupGate`` fields (``graph_id`` or ``graph_name``,
        ``newer_than``, ``backup_method``, ``fail_on_failure``).
    :param poll_interval: seconds between checks.
    :param end_time: a UNIX time after which a ``timeout`` event ends the wait (None: never).
    """

    def __init__(
        self,
        *,
        ges_conn_id: str,
        gate: dict[str, Any],
        poll_interval: float = 60.0,
        end_time: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.ges_conn_id = ges_conn_id
        self.gate = BackupGate.model_validate(gate)
        self.poll_interval = poll_interval
        self.end_time = end_time
        self._looked_up = False  # a graph_name is turned into the graph's id once, on the first look

    def __repr__(self) -> str:
        return f"GesBackupTrigger(ges_conn_id={self.ges_conn_id!r}, {self.gate.graph})"

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "ges_conn_id": self.ges_conn_id,
                "gate": self.gate.model_dump(mode="json"),
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async with GesAsyncHook(self.ges_conn_id) as hook:
            yield TriggerEvent(await self._wait(hook))  # type: ignore[no-untyped-call]

    async def _wait(self, hook: GesAsyncHook) -> dict[str, Any]:
        while True:
            try:
                verdict = await self.check(hook)
            except GesApiError as err:
                if isinstance(err, GesNotFoundError) and self._forget_found_graph():
                    self.log.warning(
                        "Graph %r is gone (%s); will look its name up again", self.gate.graph_name, err
                    )
                elif not err.transient:
                    return {"status": "error", "message": str(err)}
                else:
                    self.log.warning("GES still failing after retries; will poll again: %s", err)
            except Exception as err:  # a bad connection or argument: end the wait with the reason
                return {"status": "error", "message": f"{type(err).__name__}: {err}"}
            else:
                if verdict.state == "success" and verdict.backup is not None:
                    return {"status": "success", "backup": verdict.backup.to_api()}
                if verdict.state == "failed" and verdict.backup is not None:
                    message = self.gate.failure_message(verdict.backup)
                    return {"status": "failed", "backup": verdict.backup.to_api(), "message": message}
            remaining = None if self.end_time is None else self.end_time - time.time()
            if remaining is not None and remaining <= 0:
                return {"status": "timeout", "message": f"No successful backup of {self.gate.graph} in time"}
            await asyncio.sleep(
                self.poll_interval if remaining is None else min(self.poll_interval, remaining)
            )

    def _forget_found_graph(self) -> bool:
        """Drop the id found for ``graph_name`` once that graph is gone (deleted, perhaps re-created
        with a new id), so the next look finds the name again. False if there is none to drop."""
        if self.gate.graph_id is None or self.gate.graph_name is None:
            return False
        self.gate = self.gate.model_copy(update={"graph_id": None})
        self._looked_up = False
        return True

    async def check(self, hook: GesAsyncHook) -> Verdict:
        """One look at the graph's backups (a ``graph_name`` is turned into its id on the first,
        as ``GesBackupSensor.gate_on_graph`` does)."""
        if not self._looked_up and self.gate.graph_id is None and self.gate.graph_name is not None:
            try:
                self.gate = self.gate.for_graph(await hook.find_graph_id(self.gate.graph_name))
            except GesApiError as err:
                if not graph_list_refused(err):
                    raise
                self.log.warning("Cannot list graphs, so filtering all backups by name: %s", err)
            self._looked_up = True
        return self.gate.judge([b async for b in hook.iter_backups(self.gate.graph_id)])
