"""``GesBackupTrigger``: waits for a successful backup in the triggerer, on the event loop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from airflow.triggers.base import (
    BaseEventTrigger,
    BaseTrigger,
    TaskFailedEvent,
    TaskSkippedEvent,
    TaskSuccessEvent,
    TriggerEvent,
)

from airflow_provider_ges import DEFAULT_CONN_ID
from airflow_provider_ges._compat import HAS_SHARED_STREAMS, asset_state_accessors
from airflow_provider_ges.enums import BackupMethod, BackupStatus, choice
from airflow_provider_ges.exceptions import GesApiError
from airflow_provider_ges.gate import BackupGate, GraphListing, Watch, graph_refusal
from airflow_provider_ges.hooks.ges import GesAsyncHook
from airflow_provider_ges.models import Backup
from airflow_provider_ges.sensors.ges import GATE_ARGS
from airflow_provider_ges.watermark import Watermark, advance, state_key, watched


async def poll(
    look: Callable[[], Awaitable[dict[str, Any] | None]],
    poll_interval: float,
    end_time: float | None,
    timeout_message: str,
    log: Any,
) -> dict[str, Any]:
    """Look every ``poll_interval`` seconds until a look returns an event or ``end_time`` passes
    (a ``timeout`` event). Transient API errors are waited out; any other error is an ``error``
    event, never an exception out of the trigger."""
    while True:
        try:
            event = await look()
        except GesApiError as err:
            if not err.transient:
                return {"status": "error", "message": str(err)}
            log.warning("GES still failing after retries; will poll again: %s", err)
        except Exception as err:  # a bad connection or argument: end the wait with the reason
            return {"status": "error", "message": f"{type(err).__name__}: {err}"}
        else:
            if event is not None:
                return event
        remaining = None if end_time is None else end_time - time.time()
        if remaining is not None and remaining <= 0:
            return {"status": "timeout", "message": timeout_message}
        await asyncio.sleep(poll_interval if remaining is None else min(poll_interval, remaining))


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
        # listings are shared with the other triggers of this triggerer on the same graph
        self.watch = Watch(
            BackupGate.model_validate(gate), found_graph_id=found_graph_id, share_for=poll_interval
        )
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
                "found_graph_id": self.watch.listing.found_graph_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async with GesAsyncHook(self.ges_conn_id) as hook:
            yield TriggerEvent(await self._wait(hook))  # type: ignore[no-untyped-call]

    async def _wait(self, hook: GesAsyncHook) -> dict[str, Any]:
        async def look() -> dict[str, Any] | None:
            verdict = await hook.look(self.watch)
            if (line := self.watch.report(verdict)) is not None:
                self.log.info("%s", line)
            return verdict.event()

        timeout = f"No successful backup of {self.watch.gate.graph} in time"
        return await poll(look, self.poll_interval, self.end_time, timeout, self.log)


def gate_of(source: object) -> BackupGate:
    """The gate of a sensor's rendered arguments (the ``GATE_ARGS`` attributes of ``source``; an
    empty one is None); a ``ValueError`` naming the field if one is bad."""
    values = {name: getattr(source, name) for name in GATE_ARGS}
    return BackupGate.of({k: v if isinstance(v, bool) else v or None for k, v in values.items()})


def task_end(event: dict[str, Any], key: str, ending: dict[str, Any] | None, log: Any) -> TriggerEvent:
    """The event that ends a wait: with ``ending`` None (a task deferred from a worker), ``event``,
    which resumes the task in ``execute_complete``. A sensor started in the triggerer (``ending``:
    its ``soft_fail``, ``retries``, ``xcom``) ends here where ``execute_complete`` would end it the
    same way (``lifecycle.event_result``): success without XCom (``xcom`` False), a failure skipped
    (``soft_fail``) or failed (no retries, so no retry to skip). The rest resumes the task in a
    worker: a timeout, an error, a failure of a task with retries (which must not retry) and a pass
    that pushes ``event[key]`` to XCom (Airflow 3.3.2 stores an XCom of a ``TaskSuccessEvent``
    JSON-encoded twice: a worker pulling it gets a string)."""
    from airflow_provider_ges._compat import AirflowFailException
    from airflow_provider_ges.lifecycle import event_result

    if ending is not None:
        try:
            event_result(event, key)
        except AirflowFailException as err:
            if ending["soft_fail"] or not ending["retries"]:
                log.error("%s", err)
                return TaskSkippedEvent() if ending["soft_fail"] else TaskFailedEvent()
        except Exception:  # a timeout or an error: execute_complete raises as it does today
            pass
        else:
            if not ending["xcom"]:
                return TaskSuccessEvent()
            log.info("Passing: the task ends in a worker, which pushes %s to XCom", key)
    return TriggerEvent(event)  # type: ignore[no-untyped-call]


class _SensorStart(BaseTrigger):
    """A sensor's wait that the scheduler starts in the triggerer, with no worker
    (``start_from_trigger``, Airflow >= 3.3). Its arguments are the sensor's, kept as attributes of
    the same names, so the triggerer renders the templated ones before ``run``; the task ends here
    (``task_end``). A subclass names the event key of the result and runs its wait (``_wait``)."""

    key: ClassVar[str]
    ges_conn_id: str
    poll_interval: float
    ending: dict[str, Any] | None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._kwargs = kwargs
        for name, value in kwargs.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self._kwargs.items() if k != "ending")
        return f"{type(self).__name__}({shown})"

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", dict(self._kwargs)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async with GesAsyncHook(self.ges_conn_id) as hook:
            try:
                event = await self._wait(hook)
            except Exception as err:  # a bad connection, say: the task fails as it would in a worker
                event = {"status": "error", "message": f"{type(err).__name__}: {err}"}
        yield task_end(event, self.key, self.ending, self.log)

    async def _wait(self, hook: GesAsyncHook) -> dict[str, Any]:
        raise NotImplementedError


class GesBackupSensorTrigger(_SensorStart):
    """``GesBackupSensor(start_from_trigger=True)``'s wait: ``GesBackupTrigger`` on the gate of the
    sensor's arguments (see ``_SensorStart``); ``max_age`` in seconds."""

    key = "backup"

    def __init__(
        self,
        *,
        ges_conn_id: str,
        graph_id: str | None = None,
        graph_name: str | None = None,
        newer_than: str | datetime | None = None,
        max_age: float | None = None,
        backup_method: str | None = None,
        fail_on_failure: bool = True,
        poll_interval: float = 60.0,
        ending: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            ges_conn_id=ges_conn_id,
            graph_id=graph_id,
            graph_name=graph_name,
            newer_than=newer_than,
            max_age=max_age,
            backup_method=backup_method,
            fail_on_failure=fail_on_failure,
            poll_interval=poll_interval,
            ending=ending,
        )

    async def _wait(self, hook: GesAsyncHook) -> dict[str, Any]:
        gate = gate_of(self).model_dump(mode="json")
        wait = GesBackupTrigger(ges_conn_id=self.ges_conn_id, gate=gate, poll_interval=self.poll_interval)
        return await wait._wait(hook)


class GesJobSensorTrigger(_SensorStart):
    """``GesJobSensor(start_from_trigger=True)``'s wait: ``GesJobTrigger`` on the sensor's job (see
    ``_SensorStart``). A ``graph_name`` that no graph (or several) has, or a ``job_id`` rendered
    empty, fails at once, as in a worker."""

    key = "job"
    job_id: str
    graph_id: str | None
    graph_name: str | None

    def __init__(
        self,
        *,
        ges_conn_id: str,
        job_id: str,
        graph_id: str | None = None,
        graph_name: str | None = None,
        poll_interval: float = 30.0,
        ending: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            ges_conn_id=ges_conn_id,
            job_id=job_id,
            graph_id=graph_id,
            graph_name=graph_name,
            poll_interval=poll_interval,
            ending=ending,
        )

    async def _wait(self, hook: GesAsyncHook) -> dict[str, Any]:
        from airflow_provider_ges.lifecycle import check_id

        try:
            job_id = check_id("job_id", self.job_id, rendered=True)
        except ValueError as err:
            return {"status": "failed", "message": str(err)}
        graph_id = self.graph_id or None
        if graph_id is None:
            graph_id, refusal = graph_refusal([g async for g in hook.iter_graphs()], self.graph_name or "")
            if graph_id is None:
                return {"status": "failed", "message": refusal}
        wait = GesJobTrigger(
            ges_conn_id=self.ges_conn_id, graph_id=graph_id, job_id=job_id, poll_interval=self.poll_interval
        )
        return await wait._wait(hook)


class GesJobTrigger(BaseTrigger):
    """Poll a GES job (a backup, stop or start of a graph) until it ends or the deadline comes.

    The same rules as ``GesBackupTrigger``: exactly one event, a dict with ``status``: ``success``
    (with ``job``, API field names), ``failed`` (a failed job, or one in a state GES does not
    document: with ``job`` and ``message``, the job's fail reason), ``timeout`` or ``error`` (with
    ``message``); every event also carries ``graph_id``, ``job_id`` and ``echo``. Transient API
    errors are retried and then waited out. The job's status is logged
    when it changes.

    :param ges_conn_id: the connection; the trigger carries its id, never a token.
    :param graph_id: the job's graph.
    :param job_id: the job.
    :param poll_interval: seconds between looks.
    :param end_time: a UNIX time after which a ``timeout`` event ends the wait (None: never).
    :param echo: JSON data handed back unchanged in every event (under ``echo``): what the deferring
        task needs when it resumes. (Not ``defer(kwargs=...)``: ``dag.test()`` drops those.)
    """

    def __init__(
        self,
        *,
        ges_conn_id: str,
        graph_id: str,
        job_id: str,
        poll_interval: float = 30.0,
        end_time: float | None = None,
        echo: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.ges_conn_id = ges_conn_id
        self.graph_id = graph_id
        self.job_id = job_id
        self.poll_interval = poll_interval
        self.end_time = end_time
        self.echo = echo or {}

    def __repr__(self) -> str:
        return (
            f"GesJobTrigger(ges_conn_id={self.ges_conn_id!r}, graph_id={self.graph_id!r},"
            f" job_id={self.job_id!r})"
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "ges_conn_id": self.ges_conn_id,
                "graph_id": self.graph_id,
                "job_id": self.job_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "echo": self.echo,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async with GesAsyncHook(self.ges_conn_id) as hook:
            event = await self._wait(hook)
            event.update(graph_id=self.graph_id, job_id=self.job_id, echo=self.echo)
            yield TriggerEvent(event)  # type: ignore[no-untyped-call]

    async def _wait(self, hook: GesAsyncHook) -> dict[str, Any]:
        graph = f"graph id {self.graph_id!r}"
        last: list[Any] = [None]

        async def look() -> dict[str, Any] | None:
            job = await hook.get_job(self.graph_id, self.job_id)
            if job.status != last[0]:
                self.log.log(logging.INFO if job.documented else logging.WARNING, "%s", job.describe(graph))
                last[0] = job.status
            if job.outcome == "success":
                return {"status": "success", "job": job.to_api()}
            if job.outcome == "failed":
                return {"status": "failed", "job": job.to_api(), "message": job.describe(graph)}
            return None

        timeout = f"Job {self.job_id} of {graph} did not end in time"
        return await poll(look, self.poll_interval, self.end_time, timeout, self.log)


@dataclass(frozen=True)
class BackupListing:
    """One poll of a graph's backups (every method): the raw event of the shared stream."""

    backups: tuple[Backup, ...]


class GesBackupEventTrigger(BaseEventTrigger):
    """An asset watcher's trigger: one event per backup of a graph that reaches ``success``.

    ``Asset("ges://movies/backups", watchers=[AssetWatcher("movies_backups", GesBackupEventTrigger(
    graph_name="movies"))])`` updates the asset once for every backup of graph ``movies`` that
    succeeds after the watcher first started; a DAG scheduled on the asset finds the backup (the
    API's dict) in ``triggering_asset_events[asset][-1].extra["payload"]``. Backups that succeeded
    before the watcher first started never fire, nor does a backup fire twice. What it has reported
    (its watermark, ``airflow_provider_ges.watermark``) lives:

    - on Airflow >= 3.3, in the asset state store: a triggerer that is killed and restarted carries
      on where it was, so a backup that succeeded meanwhile fires once after the restart, and none
      fires again. Triggers of one graph through one connection (same poll interval) share one poll
      (``shared_stream_key``): 50 watchers of 5 graphs list 5 times per interval.
    - on Airflow 3.1/3.2, in memory only: the first poll after a restart is a new baseline, so a
      backup that succeeded while the triggerer was down does not fire (and none fires twice).

    An error polling GES is logged and the poll tried again at the next interval: a watcher never
    ends. See ``docs/events.md``.

    :param graph_id: the graph's id (or give ``graph_name``).
    :param graph_name: the graph's name, looked up once (again when the graph is gone).
    :param backup_method: only backups made this way (``auto``, ``manual``, ``import``).
    :param status: the status that fires: ``success`` (default) or ``failed`` (a failure watcher,
        for its own asset and alerting DAG).
    :param ges_conn_id: the connection; the trigger carries its id, never a token.
    :param poll_interval: seconds between listings.
    """

    #: Seconds between firing and storing the watermark, so that the fired events are persisted
    #: first: a kill in between repeats those events after the restart instead of losing them.
    commit_delay: ClassVar[float] = 5.0

    def __init__(
        self,
        *,
        graph_id: str | None = None,
        graph_name: str | None = None,
        backup_method: BackupMethod | str | None = None,
        status: BackupStatus | str = BackupStatus.SUCCESS,
        ges_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 60.0,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if not graph_id and not graph_name:
            raise ValueError("give graph_id or graph_name")
        method = choice("backup_method", backup_method, BackupMethod)
        fires = choice("status", status, BackupStatus)
        if fires not in (BackupStatus.SUCCESS, BackupStatus.FAILED):
            raise ValueError(f"status must be 'success' or 'failed', got {status!r}")
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval!r}")
        self.graph_id = graph_id or None
        self.graph_name = None if graph_id else graph_name
        self.backup_method = None if method is None else method.value
        self.status = fires.value
        self.ges_conn_id = ges_conn_id
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "graph_id": self.graph_id,
                "graph_name": self.graph_name,
                "backup_method": self.backup_method,
                "status": self.status,
                "ges_conn_id": self.ges_conn_id,
                "poll_interval": self.poll_interval,
            },
        )

    @property
    def graph(self) -> str:
        return f"graph {self.graph_name!r}" if self.graph_name else f"graph id {self.graph_id!r}"

    @property
    def state_key(self) -> str:
        """This watcher's key in its assets' state store."""
        return state_key(
            self.ges_conn_id,
            graph_id=self.graph_id,
            graph_name=self.graph_name,
            backup_method=self.backup_method,
            status=self.status,
        )

    def shared_stream_key(self) -> Hashable | None:
        """Watchers of one graph through one connection at one poll interval share a poll (3.3)."""
        if not HAS_SHARED_STREAMS:
            return None
        graph = ("id", self.graph_id) if self.graph_id else ("name", self.graph_name)
        return ("airflow_provider_ges.backups", self.ges_conn_id, *graph, self.poll_interval)

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        """The shared poll: a ``BackupListing`` of the graph every poll interval, forever."""
        async for listing in cls(**kwargs).listings():
            yield listing

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        async for event in self.react(shared_stream):
            yield event

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async for event in self.react(self.listings()):
            yield event

    async def listings(self) -> AsyncIterator[BackupListing]:
        """List the graph's backups every ``poll_interval`` seconds; a failed poll is logged, skipped."""
        loop = asyncio.get_running_loop()
        async with GesAsyncHook(self.ges_conn_id) as hook:
            graph = GraphListing(self.graph_id, self.graph_name)
            while True:
                started = loop.time()
                try:
                    backups = await hook.graph_backups(graph)
                except GesApiError as err:
                    level = logging.WARNING if err.transient else logging.ERROR
                    self.log.log(level, "Cannot list the backups of %s; will poll again: %s", self.graph, err)
                except Exception as err:  # a bad connection, say: logged, and tried again
                    self.log.error(
                        "Cannot list the backups of %s; will poll again: %s: %s",
                        self.graph,
                        type(err).__name__,
                        err,
                    )
                else:
                    if backups is not None:  # None: the graph found for the name is gone (warned)
                        yield BackupListing(tuple(backups))
                await asyncio.sleep(max(0.0, self.poll_interval - (loop.time() - started)))

    async def react(self, listings: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """The events of a stream of listings, keeping the watermark (in the asset state store on
        Airflow >= 3.3, else in memory)."""
        stores = asset_state_accessors(self)
        key = self.state_key
        loaded = not stores
        mark: Watermark | None = None
        stored: Watermark | None = None
        async for listing in listings:
            if not loaded:
                try:
                    values = [await store.aget(key) for store in stores]
                except Exception as err:  # not knowing what was reported, report nothing yet
                    self.log.warning("Cannot read the watermark of %s; will try again: %s", self.graph, err)
                    continue
                mark = stored = Watermark.merge(Watermark.from_state(v) for v in values)
                loaded = True
                if mark is None and any(v is not None for v in values):
                    self.log.warning("The stored watermark of %s is unreadable: starting afresh", self.graph)
                elif mark is not None:
                    self.log.info(
                        "Resuming the watch of %s: %d backups reported already",
                        self.graph,
                        len(mark.reported),
                    )
            considered = watched(
                listing.backups,
                graph_id=self.graph_id,
                graph_name=self.graph_name,
                backup_method=self.backup_method,
            )
            step = advance(mark, considered, status=self.status)
            if step.baseline:
                self.log.info(
                    "Watching %s for %s backups; %d already there do not fire",
                    self.graph,
                    self.status,
                    len(step.baselined),
                )
            for backup in step.fire:
                self.log.info(
                    "Backup %r (id %s) of %s is %s: firing", backup.name, backup.id, self.graph, self.status
                )
                yield TriggerEvent(backup.to_api())  # type: ignore[no-untyped-call]
            mark = step.mark
            if stores and mark != stored:
                if step.fire:
                    await asyncio.sleep(self.commit_delay)
                try:
                    for store in stores:
                        await store.aset(key, mark.to_state())
                except Exception as err:  # kept in memory; stored with the next listing
                    self.log.warning("Cannot store the watermark of %s; will try again: %s", self.graph, err)
                else:
                    stored = mark
