"""``GesBackupSensor``: let a DAG through once a graph has a fresh, successful backup."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_ges import DEFAULT_CONN_ID
from airflow_provider_ges._compat import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    default_deferrable,
    start_from_trigger_refusal,
)
from airflow_provider_ges.enums import BackupMethod, choice
from airflow_provider_ges.exceptions import GesApiError
from airflow_provider_ges.times import check_time

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger

    from airflow_provider_ges.gate import Verdict, Watch
    from airflow_provider_ges.hooks.ges import GesHook

#: The default ``newer_than``: the start of the run's data interval, or, for a run without one (a
#: manual run with no logical date), the moment the run was triggered (``run_after``).
SINCE_RUN_START = "{{ data_interval_start | default(dag_run.run_after, true) }}"


#: What a trigger kwarg of a task started in the triggerer may be (the triggerer renders strings).
_PLAIN = (str, int, float, bool, datetime, type(None))
#: The backup sensor's arguments that make its gate (``triggers.ges.gate_of``), as attributes of
#: the sensor and of the trigger it starts in the triggerer (which renders them there).
GATE_ARGS = ("graph_id", "graph_name", "newer_than", "max_age", "backup_method", "fail_on_failure")


class _DeferrableSensor(BaseSensorOperator):
    """A sensor that, when ``deferrable``, looks once in the worker and then waits in the triggerer
    (``trigger()``) with its own timeout, resuming in ``execute_complete``; or, with
    ``start_from_trigger``, starts in the triggerer and ends there (``triggers.ges._SensorStart``)."""

    deferrable: bool

    def _wait_where(
        self, deferrable: bool | None, start_from_trigger: bool, trigger: str, kwargs: dict[str, Any]
    ) -> None:
        """Set ``deferrable`` (default: True with ``start_from_trigger``, else ``[operators]
        default_deferrable``); with ``start_from_trigger``, start in the triggerer with the trigger
        ``airflow_provider_ges.triggers.ges.<trigger>(**kwargs)`` (the sensor's unrendered arguments)
        where Airflow can, else warn once why and start in a worker, which defers."""
        self.deferrable = (start_from_trigger or default_deferrable()) if deferrable is None else deferrable
        if not start_from_trigger:
            return
        if not self.deferrable:
            raise ValueError(
                f"{self.task_id}: start_from_trigger=True waits in the triggerer, so it needs"
                " deferrable=True; got deferrable=False"
            )
        why = start_from_trigger_refusal() or next(
            (
                f"{k}={v!r} is not a string, number or datetime (only a worker resolves it)"
                for k, v in kwargs.items()
                if not isinstance(v, _PLAIN)
            ),
            None,
        )
        if why is not None:
            warnings.warn(
                f"{self.task_id}: start_from_trigger=True ignored, it starts in a worker and defers: {why}",
                UserWarning,
                stacklevel=3,
            )
            return
        from airflow.triggers.base import StartTriggerArgs

        ending = {"soft_fail": self.soft_fail, "retries": self.retries, "xcom": self.do_xcom_push}
        self.start_from_trigger = True
        self.start_trigger_args = StartTriggerArgs(
            trigger_cls=f"airflow_provider_ges.triggers.ges.{trigger}",
            trigger_kwargs={**kwargs, "poll_interval": self.poke_interval, "ending": ending},
            next_method="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def trigger(self) -> BaseTrigger:
        raise NotImplementedError

    def succeeded(self, event: dict[str, Any]) -> Any:
        """The task's return value from the trigger's success event."""
        raise NotImplementedError

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the trigger: the result on success; raise on anything else."""
        from airflow_provider_ges.lifecycle import event_result

        if event.get("status") == "failed" and self.soft_fail:
            raise AirflowSkipException(f"Skipping (soft_fail): {event['message']}")
        event_result(event, "status", timeout=AirflowSensorTimeout)
        return self.succeeded(event)

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
            return outcome.xcom_value if isinstance(outcome, PokeReturnValue) else None
        self.defer(
            trigger=self.trigger(),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )


class GesBackupSensor(_DeferrableSensor):
    """Wait until a GES graph has a fresh successful backup.

    Passes as soon as a candidate backup (of the graph, started at or after ``newer_than``,
    finished within ``max_age``, made by ``backup_method``) has status ``success``; the newest such
    backup, with the API's field names, is the task's return value (XCom). If the newest candidate
    ``failed`` and none succeeded, or no graph and no backup has ``graph_name``, fails at once
    without retries (``soft_fail`` skips instead). Otherwise waits. Transient API errors are
    retried and then waited out, never a pass or a failure.

    :param graph_id: the graph's id (give this or ``graph_name``). Templated.
    :param graph_name: the graph's name, looked up once per try. Templated.
    :param newer_than: only backups started at or after this time count: a datetime, an ISO-8601
        string or a template. Default ``SINCE_RUN_START``: the run's ``data_interval_start``, or
        its ``run_after`` when it has no data interval (manual runs without a logical date), so
        scheduled, manual and backfill runs all work. None: any start time. Templated.
    :param max_age: only backups that finished at most this long ago count (a timedelta or
        seconds; None: no limit). Alone (``newer_than=None``), "a backup from the last N hours".
    :param backup_method: ``"auto"``, ``"manual"``, ``"import"`` or None for any. Templated.
    :param fail_on_failure: fail fast on a failed backup (default True); else keep waiting.
    :param ges_conn_id: the ``ges`` connection. Templated.
    :param deferrable: wait in the triggerer, holding no worker slot (default:
        ``[operators] default_deferrable``).
    :param start_from_trigger: start in the triggerer, with no worker process (the first look is
        the trigger's; templated arguments are rendered there), and end there on a pass with
        ``do_xcom_push=False``, a failure without retries or a ``soft_fail`` skip. Needs Airflow
        >= 3.3: on 3.1 and 3.2 it warns and starts in a worker, which defers. Implies
        ``deferrable``. A pass that pushes the backup to XCom, a timeout, an error, or a failure of
        a task with retries (which must not retry) end in a worker, as when deferred.
    """

    template_fields: Sequence[str] = ("graph_id", "graph_name", "newer_than", "backup_method", "ges_conn_id")
    ui_color = "#c7e9f9"

    def __init__(
        self,
        *,
        graph_id: str | None = None,
        graph_name: str | None = None,
        newer_than: datetime | str | None = SINCE_RUN_START,
        max_age: timedelta | float | None = None,
        backup_method: str | None = None,
        fail_on_failure: bool = True,
        ges_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool | None = None,
        start_from_trigger: bool = False,
        poke_interval: float | timedelta = 60,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        if (graph_id is None) == (graph_name is None):
            raise ValueError(f"{self.task_id}: give exactly one of graph_id or graph_name")
        if backup_method is not None and "{{" not in backup_method:
            choice("backup_method", backup_method, BackupMethod)
        check_time("newer_than", newer_than)
        if isinstance(max_age, (int, float)) and not isinstance(max_age, bool):
            max_age = timedelta(seconds=max_age)
        if max_age is not None and (not isinstance(max_age, timedelta) or max_age <= timedelta(0)):
            raise ValueError(f"max_age must be a positive timedelta or seconds, got {max_age!r}")
        self.graph_id = graph_id
        self.graph_name = graph_name
        self.newer_than = newer_than
        self.max_age = max_age
        self.backup_method = backup_method
        self.fail_on_failure = fail_on_failure
        self.ges_conn_id = ges_conn_id
        args = {"ges_conn_id": ges_conn_id, **{name: getattr(self, name) for name in GATE_ARGS}}
        args["max_age"] = None if max_age is None else max_age.total_seconds()
        self._wait_where(deferrable, start_from_trigger, "GesBackupSensorTrigger", args)

    @cached_property
    def hook(self) -> GesHook:
        from airflow_provider_ges.hooks.ges import GesHook  # at run time: DAG parsing stays cheap

        return GesHook(self.ges_conn_id)

    @cached_property
    def watch(self) -> Watch:
        """This try's wait, from the rendered arguments (the graph id is found once per try)."""
        from airflow_provider_ges.gate import Watch
        from airflow_provider_ges.triggers.ges import gate_of

        return Watch(gate_of(self))

    def trigger(self) -> BaseTrigger:
        from airflow_provider_ges.triggers.ges import GesBackupTrigger

        return GesBackupTrigger(
            ges_conn_id=self.ges_conn_id,
            gate=self.watch.gate.model_dump(mode="json"),
            found_graph_id=self.watch.listing.found_graph_id,
            poll_interval=self.poke_interval,
            end_time=time.time() + self.timeout,
        )

    def poke(self, context: Context) -> PokeReturnValue:
        try:
            verdict = self.hook.look(self.watch)
        except GesApiError as err:
            if not err.transient:
                raise
            self.log.warning("GES still failing after retries; will look again: %s", err)
            return PokeReturnValue(False)
        return self.outcome(verdict)

    def outcome(self, verdict: Verdict) -> PokeReturnValue:
        """A look's verdict as Airflow sees it: pass with the backup, fail, or wait."""
        if (line := self.watch.report(verdict)) is not None:
            self.log.info("%s", line)
        if verdict.state == "failed":
            raise AirflowFailException(verdict.message)
        if verdict.state == "success" and verdict.backup is not None:
            self.log.info("Backup %s (id %s) succeeded: passing", verdict.backup.name, verdict.backup.id)
            return PokeReturnValue(True, verdict.backup.to_api())
        return PokeReturnValue(False)

    def succeeded(self, event: dict[str, Any]) -> Any:
        self.log.info("Backup %s (id %s) succeeded", event["backup"].get("name"), event["backup"]["id"])
        return event["backup"]


class GesJobSensor(_DeferrableSensor):
    """Wait for a GES job (a backup, stop or start of a graph, started elsewhere) to succeed.

    Passes when the job's status is ``success``, returning the job (API field names) to XCom.
    Fails at once, without retries, when it ``failed`` (with GES's fail reason) or is in a state
    GES does not document (never taken for a pass); ``soft_fail`` skips instead. Waits while it is
    ``pending`` or ``running``; transient API errors are retried and then waited out. The rule is
    ``Job.outcome``, shared with ``GesJobTrigger`` and the operators.

    :param graph_id: the job's graph (give this or ``graph_name``). Templated.
    :param graph_name: the graph's name, looked up once per try. Templated.
    :param job_id: the job. Templated (e.g. ``"{{ ti.xcom_pull('backup', key='job_id') }}"``).
    :param ges_conn_id: the ``ges`` connection. Templated.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param start_from_trigger: start in the triggerer, with no worker process (Airflow >= 3.3; see
        ``GesBackupSensor``).
    """

    template_fields: Sequence[str] = ("graph_id", "graph_name", "job_id", "ges_conn_id")
    ui_color = "#c7e9f9"

    def __init__(
        self,
        *,
        job_id: str,
        graph_id: str | None = None,
        graph_name: str | None = None,
        ges_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool | None = None,
        start_from_trigger: bool = False,
        poke_interval: float | timedelta = 30,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        from airflow_provider_ges.lifecycle import check_id, check_one_graph

        check_one_graph(self.task_id, graph_id, graph_name)
        self.job_id = check_id("job_id", job_id)
        self.graph_id = graph_id
        self.graph_name = graph_name
        self.ges_conn_id = ges_conn_id
        self._resolved: str | None = None
        args = {"ges_conn_id": ges_conn_id, "job_id": job_id, "graph_id": graph_id, "graph_name": graph_name}
        self._wait_where(deferrable, start_from_trigger, "GesJobSensorTrigger", args)

    @cached_property
    def hook(self) -> GesHook:
        from airflow_provider_ges.hooks.ges import GesHook  # at run time: DAG parsing stays cheap

        return GesHook(self.ges_conn_id)

    def _graph_id(self) -> str:
        if self._resolved is None:
            from airflow_provider_ges.lifecycle import resolve_graph_id

            self._resolved = resolve_graph_id(self.hook, self.graph_id or None, self.graph_name or None)
        return self._resolved

    def _job_id(self) -> str:
        from airflow_provider_ges.lifecycle import check_id

        try:
            return check_id("job_id", self.job_id, rendered=True)
        except ValueError as err:
            raise AirflowFailException(str(err)) from None

    def trigger(self) -> BaseTrigger:
        from airflow_provider_ges.triggers.ges import GesJobTrigger

        return GesJobTrigger(
            ges_conn_id=self.ges_conn_id,
            graph_id=self._graph_id(),
            job_id=self._job_id(),
            poll_interval=self.poke_interval,
            end_time=time.time() + self.timeout,
        )

    def poke(self, context: Context) -> PokeReturnValue:
        graph_id, job_id = self._graph_id(), self._job_id()
        try:
            job = self.hook.get_job(graph_id, job_id)
        except GesApiError as err:
            if not err.transient:
                raise
            self.log.warning("GES still failing after retries; will look again: %s", err)
            return PokeReturnValue(False)
        graph = f"graph id {graph_id!r}"
        self.log.log(logging.INFO if job.documented else logging.WARNING, "%s", job.describe(graph))
        if job.outcome == "failed":
            raise AirflowFailException(job.describe(graph))
        if job.outcome == "success":
            return PokeReturnValue(True, job.to_api())
        return PokeReturnValue(False)

    def succeeded(self, event: dict[str, Any]) -> Any:
        return event["job"]
