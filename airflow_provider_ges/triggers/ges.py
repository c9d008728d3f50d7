"""``GesBackupTrigger``: waits for a successful backup in the triggerer, on the event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_ges.exceptions import GesApiError
from airflow_provider_ges.gate import BackupGate, Watch
from airflow_provider_ges.hooks.ges import GesAsyncHook


class GesBackupTrigger(BaseTrigger):
    """Poll a graph's backups until the gate passes, fails or the deadline comes.

    Yields exactly one event, a dict with ``status``: ``success`` (with ``backup``, API field
    names), ``failed`` (with ``message``, and ``backup`` when one failed), ``timeout`` or
    ``error`` (with ``message``). Transient API errors are retried and then waited out. Each look
    logs one info line (rate-limited: when what it saw changes, else every few minutes).

    :param ges_conn_id: the connection; the trigger carries its id, never a token.
    :param gate: the criteria, as ``BackupGate`` fields.
    :param found_graph_id: the id the sensor already found for ``graph_name`` (None: look it up).
    :param poll_interval: seconds between looks.
    :param end_time: a UNIX time after which a ``timeout`` event ends the wait (None: never).
    """

    def __init__(
        self,
        *,
        ges_conn_id: str,
        gate: dict[str, Any],
        found_graph_id: str | None = None,
        poll_interval: float = 60.0,
        end_time: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.ges_conn_id = ges_conn_id
        self.watch = Watch(BackupGate.model_validate(gate), found_graph_id=found_graph_id)
        self.poll_interval = poll_interval
        self.end_time = end_time

    def __repr__(self) -> str:
        return f"GesBackupTrigger(ges_conn_id={self.ges_conn_id!r}, {self.watch.gate.graph})"

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "ges_conn_id": self.ges_conn_id,
                "gate": self.watch.gate.model_dump(mode="json"),
                "found_graph_id": self.watch.found_graph_id,
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
                verdict = await hook.look(self.watch)
            except GesApiError as err:
                if not err.transient:
                    return {"status": "error", "message": str(err)}
                self.log.warning("GES still failing after retries; will poll again: %s", err)
            except Exception as err:  # a bad connection or argument: end the wait with the reason
                return {"status": "error", "message": f"{type(err).__name__}: {err}"}
            else:
                if (line := self.watch.report(verdict)) is not None:
                    self.log.info("%s", line)
                backup = None if verdict.backup is None else verdict.backup.to_api()
                if verdict.state == "success":
                    return {"status": "success", "backup": backup}
                if verdict.state == "failed":
                    return {"status": "failed", "backup": backup, "message": verdict.message}
            remaining = None if self.end_time is None else self.end_time - time.time()
            if remaining is not None and remaining <= 0:
                return {
                    "status": "timeout",
                    "message": f"No successful backup of {self.watch.gate.graph} in time",
                }
            await asyncio.sleep(
                self.poll_interval if remaining is None else min(self.poll_interval, remaining)
            )
