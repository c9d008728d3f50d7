"""The backup operators: list, create (and wait), delete, prune by retention, restore a graph."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseOperator

from airflow_provider_ges import DEFAULT_CONN_ID, DEFAULT_PAGE_SIZE
from airflow_provider_ges._compat import AirflowFailException, default_deferrable
from airflow_provider_ges.enums import BackupMethod, BackupStatus, choice
from airflow_provider_ges.exceptions import GesApiError, GesNotFoundError
from airflow_provider_ges.lifecycle import (
    RestoreView,
    Step,
    after_lost_reply,
    backup_refusal,
    check_id,
    check_one_graph,
    check_positive,
    delete_refusal,
    event_result,
    find_new_backup,
    job_action,
    plan_create,
    plan_job,
    plan_restore,
    prune_table,
    resolve_graph_id,
    select_prune,
    started_since,
)
from airflow_provider_ges.paging import check_page_size
from airflow_provider_ges.times import check_time, to_utc

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_ges.hooks.ges import GesHook
    from airflow_provider_ges.models import Backup, Graph, Job, JobCreated

T = TypeVar("T")


class GesListBackupsOperator(BaseOperator):
    """List a project's (or one graph's) backups matching every given criterion.

    Returns (pushes to XCom) the backups as a list of dicts with the API's own field names,
    newest first, and logs a short summary.

    :param graph_id: only this graph's backups (uses the per-graph listing). Templated.
    :param graph_name: only backups of the graph with this name. Templated.
    :param status: ``"success"``, ``"failed"``, ``"backing_up"`` or None for any. Templated.
    :param backup_method: ``"auto"``, ``"manual"`` or None for either. Templated.
    :param newer_than: only backups started at or after this time (datetime, ISO-8601 string or
        template such as ``"{{ data_interval_start }}"``). Templated.
    :param ges_conn_id: the ``ges`` connection. Templated.
    :param page_size: backups asked for per request (at least 2: pages overlap by one).
    """

    template_fields: Sequence[str] = (
        "graph_id",
        "graph_name",
        "status",
        "backup_method",
        "newer_than",
        "ges_conn_id",
    )
    ui_color = "#c7e9f9"

    def __init__(
        self,
        *,
        graph_id: str | None = None,
        graph_name: str | None = None,
        status: str | None = None,
        backup_method: str | None = None,
        newer_than: datetime | str | None = None,
        ges_conn_id: str = DEFAULT_CONN_ID,
        page_size: int = DEFAULT_PAGE_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_time("newer_than", newer_than)
        for name, value, kind in (
            ("status", status, BackupStatus),
            ("backup_method", backup_method, BackupMethod),
        ):
            if value is not None and "{{" not in value:
                choice(name, value, kind)  # "sucess" would match nothing: refuse it now
        self.graph_id = graph_id
        self.graph_name = graph_name
        self.status = status
        self.backup_method = backup_method
        self.newer_than = newer_than
        self.ges_conn_id = ges_conn_id
        self.page_size = check_page_size(page_size)  # the pager's rule, at parse time

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from airflow_provider_ges.hooks.ges import GesHook  # at run time: DAG parsing stays cheap

        backups = GesHook(self.ges_conn_id).list_backups(
            self.graph_id or None,
            graph_name=self.graph_name or None,
            status=self.status or None,
            backup_method=self.backup_method or None,
            newer_than=self.newer_than or None,
            page_size=self.page_size,
        )
        by_graph = Counter(b.graph_name or b.graph_id or "?" for b in backups)
        if backups:
            newest = backups[0]
            self.log.info(
                "%d backups of %d graphs (%s); newest: %s (%s, %s, started %s)",
                len(backups),
                len(by_graph),
                ", ".join(f"{name}: {n}" for name, n in by_graph.most_common(5)),
                newest.name or newest.id,
                newest.graph_name,
                newest.status,
                newest.start_time.isoformat() if newest.start_time else "?",
            )
        else:
            self.log.info("No backups match")
        return [b.to_api() for b in backups]


# --- the backup lifecycle: create (and wait), delete, prune, restore ------------------------------
# The rules (what to do next given what GES shows) are in airflow_provider_ges.lifecycle; here they
# are carried out and mapped to Airflow.

#: How many times the listing is read for a new backup (after its job succeeded, or a create whose
#: reply was lost: GES may list it a moment later), ``LISTING_PAUSE`` seconds apart.
NEW_BACKUP_LOOKS = 5
LISTING_PAUSE = 2.0


def poll_until(
    look: Callable[[], T | None], *, poll_interval: float, timeout: float, what: str, log: Any
) -> T:
    """Call ``look`` every ``poll_interval`` seconds until it returns something (returned); transient
    API errors are waited out; a ``TimeoutError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = look()
        except GesApiError as err:
            if not err.transient:
                raise
            log.warning("GES still failing after retries; will look again: %s", err)
        else:
            if result is not None:
                return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{what} did not end within {timeout:g}s")
        time.sleep(min(poll_interval, remaining))


def wait_for_job(
    hook: GesHook, graph_id: str, job_id: str, *, poll_interval: float, timeout: float, log: Any
) -> Job:
    """Poll a job until it succeeds (returned); a failed job is an ``AirflowFailException`` with its
    fail reason, no end within ``timeout`` a ``TimeoutError``. A state GES does not document is
    logged (as a warning) and waited on. The rule is ``Job.outcome``, the same as ``GesJobTrigger``'s."""
    graph = f"graph id {graph_id!r}"
    last: list[Any] = [None]

    def look() -> Job | None:
        job = hook.get_job(graph_id, job_id)
        if job.status != last[0]:
            log.log(logging.INFO if job.documented else logging.WARNING, "%s", job.describe(graph))
            last[0] = job.status
        if job.outcome == "failed":
            raise AirflowFailException(job.describe(graph))
        return job if job.outcome == "success" else None

    return poll_until(
        look, poll_interval=poll_interval, timeout=timeout, what=f"Job {job_id} of {graph}", log=log
    )


def run_anchor(context: Context, *, again: bool = False) -> datetime:
    """Since when what GES shows is this run's (``airflow_provider_ges.lifecycle``, rule 1): the
    run's start on a retry, this try's start on a first try (or with ``again``)."""
    now = datetime.now(timezone.utc)
    started = getattr(context.get("dag_run"), "start_date", None)
    if again or context["ti"].try_number <= 1 or not isinstance(started, datetime):
        return now
    return min(to_utc(started), now)


class _GraphOperator(BaseOperator):
    """What the lifecycle operators share: the graph (id or name), the connection, the hook."""

    ui_color = "#c7e9f9"

    def __init__(
        self,
        *,
        graph_id: str | None = None,
        graph_name: str | None = None,
        ges_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_one_graph(self.task_id, graph_id, graph_name)
        self.graph_id = graph_id
        self.graph_name = graph_name
        self.ges_conn_id = ges_conn_id

    @cached_property
    def hook(self) -> GesHook:
        from airflow_provider_ges.hooks.ges import GesHook  # at run time: DAG parsing stays cheap

        return GesHook(self.ges_conn_id)

    def resolve_graph(self) -> str:
        return resolve_graph_id(self.hook, self.graph_id or None, self.graph_name or None)

    def graph_label(self, graph_id: str) -> str:
        return f"graph {self.graph_name!r} (id {graph_id})" if self.graph_name else f"graph id {graph_id!r}"


class _WaitingGraphOperator(_GraphOperator):
    def __init__(
        self,
        *,
        wait_for_completion: bool = True,
        deferrable: bool | None = None,
        poll_interval: float = 30,
        timeout: float = 3600,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = check_positive("poll_interval", poll_interval)
        self.timeout = check_positive("timeout", timeout)

    def wait_job(self, graph_id: str, job_id: str) -> Job:
        return wait_for_job(
            self.hook, graph_id, job_id, poll_interval=self.poll_interval, timeout=self.timeout, log=self.log
        )

    def poll(self, look: Callable[[], T | None], what: str) -> T:
        return poll_until(
            look, poll_interval=self.poll_interval, timeout=self.timeout, what=what, log=self.log
        )

    def defer_job(self, graph_id: str, job_id: str, method_name: str, **echo: Any) -> None:
        """Wait for the job in the triggerer; ``method_name(context, event)`` resumes with the
        trigger's event, ``echo`` (JSON) in ``event["echo"]``."""
        from airflow_provider_ges.triggers.ges import GesJobTrigger

        self.defer(
            trigger=GesJobTrigger(
                ges_conn_id=self.ges_conn_id,
                graph_id=graph_id,
                job_id=job_id,
                poll_interval=self.poll_interval,
                end_time=time.time() + self.timeout,
                echo=echo,
            ),
            method_name=method_name,
            timeout=timedelta(seconds=self.timeout),
        )


class GesCreateBackupOperator(_WaitingGraphOperator):
    """Take a manual backup of a graph and (by default) wait for it; return the new backup.

    Pushes ``job_id`` to XCom as soon as the backup job runs. When waiting, returns the new
    backup as the API's dict once it succeeded: the one the create's reply names (``backupId``),
    else the backup whose id was not in the graph's listing before the create, of that graph,
    manual, started no earlier than the job began (see ``lifecycle.find_new_backup``). Without
    waiting, returns the job id.

    Safe to retry (``airflow_provider_ges.lifecycle``): a retry adopts this run's backup (a manual
    backup started since the run began) when it succeeded, attaches to it while it runs, and
    creates only when there is none (or it failed). A backup of the graph already running (seen in
    the listing, or GES answering GES.7002) is attached to instead of starting a second: it waits
    for that backup (``job_id`` None; ``backup_id`` pushed), and fails if it fails or is deleted,
    in the worker and deferred alike. A create whose reply was lost (dropped connection, 5xx) is
    never sent again: the listing is read, and the backup it started is waited for; with none
    listed the task fails (an Airflow retry looks again before creating).

    Fails without retries (``AirflowFailException``) when the backup job fails (with its fail
    reason) or the backup quota is reached (GES.7019).

    :param graph_id: the graph's id (give this or ``graph_name``). Templated.
    :param graph_name: the graph's name. Templated.
    :param wait_for_completion: wait for the backup to end (default True).
    :param deferrable: wait in the triggerer (``GesJobTrigger``), holding no worker slot (default:
        ``[operators] default_deferrable``).
    :param poll_interval: seconds between looks at the job.
    :param timeout: seconds to wait at most (then ``TimeoutError``).
    :param ges_conn_id: the ``ges`` connection. Templated.
    """

    template_fields: Sequence[str] = ("graph_id", "graph_name", "ges_conn_id")

    def execute(self, context: Context) -> Any:
        graph_id = self.resolve_graph()
        graph = self.graph_label(graph_id)
        ti = context["ti"]
        before = list(self.hook.iter_backups(graph_id))
        anchor = run_anchor(context) if ti.try_number > 1 else None
        step = plan_create(before, graph_id=graph_id, anchor=anchor)
        ti.xcom_push(key="job_id", value=None)
        if step.action == "create":
            if step.message:
                self.log.info("%s", step.message)
            self._check_quota(graph)
            asked = datetime.now(timezone.utc)
            try:
                reply = self.hook.start_backup(graph_id)
            except GesApiError as err:
                if err.error_code == "GES.7019":
                    raise AirflowFailException(
                        f"Cannot back up {graph}: the backup quota is reached ({err})"
                    ) from None
                if not err.transient:
                    raise
                step = self._after_lost_create(graph_id, [b.id for b in before], asked, err)
            else:
                return self._created(context, graph_id, [b.id for b in before], asked, reply)
        self.log.info("%s", step.message)
        if step.action == "failed":
            raise AirflowFailException(step.message)
        assert step.backup is not None
        ti.xcom_push(key="backup_id", value=step.backup.id)
        if step.action == "done":
            return step.backup.to_api() if self.wait_for_completion else None
        return self._attach(graph_id, step.backup) if self.wait_for_completion else None

    def _check_quota(self, graph: str) -> None:
        """Fail before the create when the project has no backup slot left (``GET .../quotas``)."""
        try:
            quotas = self.hook.get_quotas()
        except GesApiError as err:  # an API without quotas, or GES failing: the create tells
            self.log.warning("Cannot read the backup quota (%s): creating without checking it", err)
            return
        quota = next((q for q in quotas if q.type == "backup"), None)
        if quota is not None and quota.available == 0:  # -1: unlimited
            raise AirflowFailException(
                f"Cannot back up {graph}: no backup slot is left (quota 'backup': {quota.available}"
                " available); delete old backups first, e.g. with GesPruneBackupsOperator"
            )

    def _after_lost_create(self, graph_id: str, before: list[str], asked: datetime, err: GesApiError) -> Step:
        """The step after a create whose reply was lost (or GES.7002): from the listing, never a resend."""
        self.log.warning(
            "The create's reply was lost (%s): reading the listing instead of sending it again", err
        )
        for look in range(NEW_BACKUP_LOOKS):
            backups = list(self.hook.iter_backups(graph_id))
            step = plan_create(backups, graph_id=graph_id, anchor=asked, before=before, lost=True)
            if step.action != "lost":
                return step
            if look + 1 < NEW_BACKUP_LOOKS:
                time.sleep(LISTING_PAUSE)
        raise err

    def _created(
        self, context: Context, graph_id: str, before: list[str], asked: datetime, reply: JobCreated
    ) -> Any:
        context["ti"].xcom_push(key="job_id", value=reply.job_id)
        self.log.info("Backup of %s started: job %s", self.graph_label(graph_id), reply.job_id)
        if not self.wait_for_completion:
            return reply.job_id
        if self.deferrable:
            self.defer_job(
                graph_id,
                reply.job_id,
                "execute_complete",
                before=before,
                since=asked.isoformat(),
                backup_id=reply.backup_id,
            )
        job = self.wait_job(graph_id, reply.job_id)
        return self._new_backup(graph_id, before, job.begin_time or asked, reply.backup_id)

    def _attach(self, graph_id: str, backup: Backup) -> Any:
        """Wait for ``backup`` (running): its dict once it succeeds; it failing or gone fails the task."""
        from airflow_provider_ges.gate import BackupGate, Watch

        gate = BackupGate(graph_id=graph_id, backup_id=backup.id)
        if self.deferrable:
            from airflow_provider_ges.triggers.ges import GesBackupTrigger

            self.defer(
                trigger=GesBackupTrigger(
                    ges_conn_id=self.ges_conn_id,
                    gate=gate.model_dump(mode="json"),
                    poll_interval=self.poll_interval,
                    end_time=time.time() + self.timeout,
                ),
                method_name="execute_attached",
                timeout=timedelta(seconds=self.timeout),
            )
        watch = Watch(gate)

        return self.execute_attached(
            {}, self.poll(lambda: self.hook.look(watch).event(), f"Backup {backup.id}")
        )

    def execute_attached(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after waiting (``GesBackupTrigger``) for the attached backup."""
        backup = event_result(event, "backup")
        self.log.info("Backup %s (id %s) succeeded", backup.get("name"), backup["id"])
        return backup

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the job trigger: the new backup, or raise on anything but success."""
        from airflow_provider_ges.models import Job

        job = Job.model_validate(event_result(event, "job"))
        echo = event["echo"]
        since = job.begin_time or datetime.fromisoformat(echo["since"])
        return self._new_backup(event["graph_id"], echo["before"], since, echo.get("backup_id"))

    def _new_backup(
        self, graph_id: str, before: list[str], since: datetime, backup_id: str | None
    ) -> dict[str, Any]:
        for look in range(NEW_BACKUP_LOOKS):
            backups = self.hook.iter_backups(graph_id)
            if backup_id is not None:
                backup = next((b for b in backups if b.id == backup_id), None)
            else:
                backup = find_new_backup(backups, before=before, graph_id=graph_id, since=since)
            if backup is not None and backup.is_success:
                self.log.info(
                    "Backup %s (id %s) of %s succeeded", backup.name, backup.id, self.graph_label(graph_id)
                )
                return backup.to_api()
            if look + 1 < NEW_BACKUP_LOOKS:
                time.sleep(LISTING_PAUSE)
        raise RuntimeError(
            f"The backup job of {self.graph_label(graph_id)} succeeded, but no new successful backup"
            f" started after {since.isoformat()} is listed"
        )


class GesDeleteBackupOperator(_GraphOperator):
    """Delete one backup of a graph, after checking it may go.

    Refuses (``AirflowFailException``, before any change) a backup that is still running or that is
    the newest successful backup of the graph. A backup that is not there is fine with
    ``missing_ok`` (the default: "make sure it is gone"); else a failure. One that GES says is gone
    after it was listed and its DELETE sent (a lost reply, the call retried) counts as deleted.
    Returns the deleted backup as the API's dict (None when it was not there).

    :param graph_id: the graph's id (give this or ``graph_name``). Templated.
    :param graph_name: the graph's name. Templated.
    :param backup_id: the backup. Templated.
    :param missing_ok: a missing backup is not a failure (default True).
    :param ges_conn_id: the ``ges`` connection. Templated.
    """

    template_fields: Sequence[str] = ("graph_id", "graph_name", "backup_id", "ges_conn_id")

    def __init__(self, *, backup_id: str, missing_ok: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backup_id = check_id("backup_id", backup_id)
        self.missing_ok = missing_ok

    def execute(self, context: Context) -> dict[str, Any] | None:
        backup_id = check_id("backup_id", self.backup_id, rendered=True)
        graph_id = self.resolve_graph()
        graph = self.graph_label(graph_id)
        backups = list(self.hook.iter_backups(graph_id))
        backup = next((b for b in backups if b.id == backup_id), None)
        if backup is None:
            earlier = " (an earlier try may have deleted it)" if context["ti"].try_number > 1 else ""
            return self._missing(f"{graph} has no backup {backup_id!r}{earlier}")
        refusal = delete_refusal(backups, backup, graph)
        if refusal is not None:
            raise AirflowFailException(refusal)
        delete_seen(self.hook, graph_id, backup, self.log)
        self.log.info("Deleted backup %s (id %s, %s) of %s", backup.name, backup_id, backup.status, graph)
        return backup.to_api()

    def _missing(self, message: str) -> dict[str, Any] | None:
        if not self.missing_ok:
            raise AirflowFailException(message)
        self.log.info("%s: nothing to delete (missing_ok)", message)
        return None


def delete_seen(hook: GesHook, graph_id: str, backup: Backup, log: Any) -> None:
    """Delete a backup that was just listed; GES saying it is gone (GES.7024) after the DELETE went
    out counts as deleted (the first DELETE's reply was lost and the call retried, or it went
    meanwhile): either way it is gone."""
    try:
        hook.delete_backup(graph_id, backup.id)
    except GesNotFoundError as err:
        if err.error_code != "GES.7024":
            raise
        log.info("Backup %s is gone after its DELETE was sent (%s): counted as deleted", backup.id, err)


class GesPruneBackupsOperator(_GraphOperator):
    """Delete the backups of a graph that fall outside a retention rule.

    Both rules may be given; a backup is deleted only if every given rule says so (see
    ``lifecycle.select_prune``). ``keep_last=N`` keeps the N newest **successful** backups of
    ``backup_method`` (failed ones never count as kept; running ones neither count nor go);
    ``older_than`` lets only backups that started before it go: an age (a ``timedelta``, counted
    back from now) or a cutoff (a datetime, an ISO-8601 string or a template rendering to one).
    Whatever the rules say, it never deletes a running (``backing_up``) backup nor the newest
    successful backup of the graph (of any method).

    Everything is decided from one listing before anything is deleted (a retry lists and decides
    again); then the chosen backups are deleted one by one (one gone meanwhile counts as deleted).
    The log shows a table of what is kept and what goes, and why. Returns the deleted (with
    ``dry_run``, the would-be-deleted) backups as the API's dicts, newest first.

    :param graph_id: the graph's id (give this or ``graph_name``). Templated.
    :param graph_name: the graph's name. Templated.
    :param keep_last: how many of the newest successful backups to keep (0 or more).
    :param older_than: a ``timedelta`` age or a cutoff time. Templated.
    :param backup_method: ``"manual"`` (default), ``"auto"``, ``"import"``, or None (not a template,
        not empty) for any. Templated.
    :param dry_run: only log and return what would be deleted.
    :param ges_conn_id: the ``ges`` connection. Templated.
    """

    template_fields: Sequence[str] = ("graph_id", "graph_name", "older_than", "backup_method", "ges_conn_id")

    def __init__(
        self,
        *,
        keep_last: int | None = None,
        older_than: timedelta | datetime | str | None = None,
        backup_method: str | None = "manual",
        dry_run: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if keep_last is not None and (
            isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0
        ):
            raise ValueError(f"keep_last must be a whole number of backups (0 or more), got {keep_last!r}")
        if isinstance(older_than, timedelta):
            if older_than <= timedelta(0):
                raise ValueError(f"older_than must be a positive age, got {older_than!r}")
        else:
            check_time("older_than", older_than)
        if keep_last is None and older_than is None:
            raise ValueError(
                f"{self.task_id}: give keep_last or older_than (with neither, every backup would go)"
            )
        if backup_method is not None and "{{" not in str(backup_method):
            prune_method(backup_method)
        self.keep_last = keep_last
        self.older_than = older_than
        self.backup_method = backup_method
        # not self.only_report: that is BaseOperator's dry_run() method
        self.only_report = dry_run

    def cutoff(self) -> datetime | None:
        """``older_than`` (rendered) as a UTC time."""
        value = self.older_than
        if isinstance(value, timedelta):
            return datetime.now(timezone.utc) - value
        if value is None:
            return None
        if isinstance(value, str) and not value.strip():
            raise ValueError("older_than rendered to an empty string")
        try:
            return to_utc(value)
        except ValueError as err:
            raise ValueError(f"older_than: {err}") from None

    def execute(self, context: Context) -> list[dict[str, Any]]:
        cutoff = self.cutoff()
        method = prune_method(self.backup_method, rendered=True)
        graph_id = self.resolve_graph()
        graph = self.graph_label(graph_id)
        decisions = select_prune(
            self.hook.iter_backups(graph_id), keep_last=self.keep_last, cutoff=cutoff, backup_method=method
        )
        chosen = [d.backup for d in decisions if d.delete]
        self.log.info(
            "Retention of %s (keep_last=%s, older_than=%s, backup_method=%s)%s: %d of %d backups go\n%s",
            graph,
            self.keep_last,
            cutoff.isoformat() if cutoff else None,
            method,
            " [dry run]" if self.only_report else "",
            len(chosen),
            len(decisions),
            prune_table(decisions, self.only_report),
        )
        if self.only_report:
            return [b.to_api() for b in chosen]
        deleted: list[dict[str, Any]] = []
        for backup in chosen:
            try:
                delete_seen(self.hook, graph_id, backup, self.log)
            except GesApiError:
                self.log.error(
                    "Deleted %d of %d before this failed: %s",
                    len(deleted),
                    len(chosen),
                    [b["id"] for b in deleted],
                )
                raise
            deleted.append(backup.to_api())
            self.log.info("Deleted backup %s (id %s)", backup.name, backup.id)
        return deleted


def prune_method(value: str | None, *, rendered: bool = False) -> BackupMethod | None:
    """Prune's ``backup_method``: a method, or None (only as Python's None) for any. An empty value
    (``""``, or a template rendering to it) is refused: it must not widen the prune to every method."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        when = "rendered to" if rendered else "is"
        raise ValueError(
            f"backup_method {when} {value!r}: give 'manual', 'auto' or 'import' (or None, not a"
            " template, for any method)"
        )
    return choice("backup_method", value.strip(), BackupMethod)


class _JobOperator(_WaitingGraphOperator):
    """An export or import: one job of the graph, adopted on a retry (``lifecycle.plan_job``)."""

    def run_jobs(
        self, graph: Graph, anchor: datetime, started: Sequence[str], actions: set[str]
    ) -> list[Job]:
        """The graph's jobs of ``actions`` since ``anchor`` (this run's), oldest first, with the ones
        this try started should the job list not show them yet."""
        jobs = {
            j.id: j
            for j in self.hook.list_jobs(graph.name)
            if j.related_graph in (graph.name, None)
            and job_action(j) in actions
            and started_since(j.begin_time, anchor)
        }
        for job_id in started:
            if job_id not in jobs:
                jobs[job_id] = self.hook.get_job(graph.id, job_id)
        return sorted(jobs.values(), key=lambda j: j.begin_time or datetime.max.replace(tzinfo=timezone.utc))

    def run_job(
        self, context: Context, graph: Graph, action: str, send: Callable[[], str], **echo: Any
    ) -> Job:
        """This run's ``action`` job: adopted (done or running) or started by ``send``, then waited for
        (deferred: resumes in ``execute_complete`` with ``echo``). A lost reply is followed by a read."""
        anchor = run_anchor(context)
        started: list[str] = []
        lost = False
        while True:
            step = plan_job(self.run_jobs(graph, anchor, started, {action}), action=action, lost=lost)
            if step.message:
                self.log.info("%s", step.message)
            if step.action == "lost":
                raise RuntimeError(f"{step.message} after its reply was lost: not sending it again")
            if step.job is not None:
                job_id = step.job.job_id or ""
                break
            try:
                job_id = send()
            except GesApiError as err:
                if not err.transient or lost:
                    raise AirflowFailException(
                        f"GES refused the {action} of {self.graph_label(graph.id)}: {err}"
                    ) from None
                self.log.warning("The %s's reply was lost (%s): reading GES's jobs", action, err)
                lost = True
                continue
            started.append(job_id)
            break
        context["ti"].xcom_push(key="job_id", value=job_id)
        if step.action == "done":
            assert step.job is not None
            return step.job
        self.log.info("%s of %s: job %s", action.capitalize(), self.graph_label(graph.id), job_id)
        if self.deferrable:
            self.defer_job(graph.id, job_id, "execute_complete", **echo)
        return self.wait_job(graph.id, job_id)

    def find_backup(self, graph_id: str, backup_id: str) -> tuple[Backup | None, Backup | None]:
        """The backup as the graph's listing shows it, and, when it is not there, as the project's
        listing does (another graph's)."""
        backup = next((b for b in self.hook.iter_backups(graph_id) if b.id == backup_id), None)
        if backup is not None:
            return backup, None
        return None, next((b for b in self.hook.iter_backups() if b.id == backup_id), None)

    def checked_backup(self, graph_id: str, backup_id: str, what: str) -> Backup:
        backup, elsewhere = self.find_backup(graph_id, backup_id)
        refusal = backup_refusal(backup, backup_id, elsewhere)
        if refusal is not None:
            raise AirflowFailException(f"Not {what} {self.graph_label(graph_id)}: {refusal}")
        assert backup is not None
        return backup


def check_path(name: str, value: Any, *, rendered: bool = False) -> str:
    """A non-empty OBS path (``bucket/dir``); a template is let through at construction."""
    if not isinstance(value, str) or not value.strip():
        when = "rendered to" if rendered else "is"
        raise ValueError(f"{name} {when} {value!r}: give an OBS path such as 'my-bucket/ges-backups'")
    return value.strip()


class GesExportBackupOperator(_JobOperator):
    """Copy a backup of a graph out of GES, to an OBS path (GES API v2), and wait for the export job.

    Checks first that the backup is the graph's and succeeded; then asks GES to export it to
    ``export_path`` and waits for the job (in the worker, or deferred through ``GesJobTrigger``). A
    path GES refuses fails with GES's message. Safe to retry: a retry adopts the export job its run
    started (``lifecycle.plan_job``); a lost reply is followed by a read of the jobs, never a resend.
    Returns ``{"job": <the job>, "backup_id": ..., "export_path": ...}``; pushes ``job_id``.

    :param graph_id: the graph's id (give this or ``graph_name``). Templated.
    :param graph_name: the graph's name. Templated.
    :param backup_id: the backup to export. Templated.
    :param export_path: the OBS path (``bucket/dir``). Templated.
    """

    template_fields: Sequence[str] = ("graph_id", "graph_name", "backup_id", "export_path", "ges_conn_id")

    def __init__(self, *, backup_id: str, export_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backup_id = check_id("backup_id", backup_id)
        self.export_path = check_path("export_path", export_path)

    def execute(self, context: Context) -> Any:
        try:
            backup_id = check_id("backup_id", self.backup_id, rendered=True)
            path = check_path("export_path", self.export_path, rendered=True)
        except ValueError as err:
            raise AirflowFailException(f"Not exporting: {err}") from None
        graph_id = self.resolve_graph()
        self.checked_backup(graph_id, backup_id, "exporting")
        graph = self.hook.get_graph(graph_id)
        echo = {"backup_id": backup_id, "export_path": path}
        job = self.run_job(
            context, graph, "export", lambda: self.hook.export_backup(graph_id, backup_id, path), **echo
        )
        return self._exported(job, echo)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the export job: the result, or raise on anything but success."""
        from airflow_provider_ges.models import Job

        return self._exported(Job.model_validate(event_result(event, "job")), event["echo"])

    def _exported(self, job: Job, echo: dict[str, Any]) -> dict[str, Any]:
        self.log.info("Backup %s exported to %s (job %s)", echo["backup_id"], echo["export_path"], job.job_id)
        return {"job": job.to_api(), **echo}


class GesImportBackupOperator(_JobOperator):
    """Bring a backup into GES from an OBS path (GES API v2) as a backup of a graph; wait for it.

    Asks GES to import ``import_path`` (a backup exported before, e.g. by
    ``GesExportBackupOperator``, perhaps in another region or account) and waits for the job (worker
    or deferred); returns the new backup (method ``import``) as the API's dict: the import backup
    that was not listed (as finished) before the import. Safe to retry: a retry adopts the import
    job its run started; one that finished in an earlier try is reported, not imported again
    (imports carry the original's timestamps, so only the job tells which is this run's).

    :param graph_id: the graph's id (give this or ``graph_name``). Templated.
    :param graph_name: the graph's name. Templated.
    :param import_path: the OBS path of the exported backup. Templated.
    """

    template_fields: Sequence[str] = ("graph_id", "graph_name", "import_path", "ges_conn_id")

    def __init__(self, *, import_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.import_path = check_path("import_path", import_path)

    def execute(self, context: Context) -> Any:
        try:
            path = check_path("import_path", self.import_path, rendered=True)
        except ValueError as err:
            raise AirflowFailException(f"Not importing: {err}") from None
        graph_id = self.resolve_graph()
        graph = self.hook.get_graph(graph_id)
        done = sorted(b.id for b in self.hook.iter_backups(graph_id) if b.status != BackupStatus.BACKING_UP)
        job = self.run_job(
            context, graph, "import", lambda: self.hook.import_backup(graph_id, path), before=done, path=path
        )
        return self._imported(graph_id, job, done, path)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the import job: the new backup, or raise on anything but success."""
        from airflow_provider_ges.models import Job

        job = Job.model_validate(event_result(event, "job"))
        return self._imported(event["graph_id"], job, event["echo"]["before"], event["echo"]["path"])

    def _imported(self, graph_id: str, job: Job, before: list[str], path: str) -> dict[str, Any]:
        for look in range(NEW_BACKUP_LOOKS):
            new = [
                b
                for b in self.hook.iter_backups(graph_id)
                if b.id not in before and b.backup_method == BackupMethod.IMPORT and b.is_success
            ]
            if len(new) == 1:
                self.log.info("Imported %s as backup %s (id %s)", path, new[0].name, new[0].id)
                return new[0].to_api()
            if look + 1 < NEW_BACKUP_LOOKS:
                time.sleep(LISTING_PAUSE)
        raise AirflowFailException(
            f"The import job {job.job_id} of {self.graph_label(graph_id)} succeeded, but"
            f" {len(new)} new import backups are listed (an earlier try's import, or another import"
            " meanwhile): see the graph's backups; not importing again"
        )


class GesRestoreGraphOperator(_JobOperator):
    """Restoring throws away the graph's current data: it starts the graph from a backup.

    Checks first, before touching the graph, that the backup exists, belongs to that graph and
    succeeded, and that the graph is running or stopped (a graph stopping, starting, being backed
    up or resized is waited for; one faulty, frozen or deleted is refused). Then it stops the graph
    if it is running (waiting for that job), checks the backup again, starts the graph from it
    (GES's restore: the start call with ``graph_backup_id``) and waits for the start job. Refuses a
    ``backup_id`` that renders to empty (e.g. a run without the param).

    Safe to retry (``airflow_provider_ges.lifecycle``, rule 3): every try (and every resume) reads
    the graph's status and its stop/start jobs since the run began and carries on from there: a
    retry after a lost reply or a timeout never stops or restores the graph twice. A lost reply is
    followed by a read, never a resend. A start from the backup refused or failed after the stop
    starts the graph again without the backup (its data as before the task) and fails saying so;
    every failure says the state the graph was left in.

    Returns the graph (API dict) once running from the backup; without ``wait_for_completion``, the
    start job's id. Pushes ``stop_job_id`` and ``job_id`` (the start's) to XCom.

    :param graph_id: the graph's id (give this or ``graph_name``). Templated.
    :param graph_name: the graph's name. Templated.
    :param backup_id: the backup to restore. Templated.
    :param restore_again: restore even if this run restored the graph already (a cleared task of a
        run still running). Default False: a try that finds this run's restore done returns it.
    :param wait_for_completion: wait for the start job (default True; the stop is always waited for).
    :param deferrable: wait for the jobs in the triggerer (``GesJobTrigger``).
    :param poll_interval: seconds between looks.
    :param timeout: seconds a try may wait at most.
    :param ges_conn_id: the ``ges`` connection. Templated.
    """

    template_fields: Sequence[str] = ("graph_id", "graph_name", "backup_id", "ges_conn_id")

    def __init__(self, *, backup_id: str, restore_again: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backup_id = check_id("backup_id", backup_id)
        self.restore_again = restore_again

    def execute(self, context: Context) -> Any:
        try:
            backup_id = check_id("backup_id", self.backup_id, rendered=True)
        except ValueError as err:
            raise AirflowFailException(f"Not restoring: {err}") from None
        graph_id = self.resolve_graph()
        anchor = run_anchor(context, again=self.restore_again)
        return self._reconcile(context, graph_id, backup_id, anchor, [])

    def execute_resumed(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after a job (stop or start) ended in the triggerer: observe and carry on."""
        echo = event["echo"]
        if event.get("status") not in ("success", "failed"):
            event_result(event, "job")  # a timeout or an error: raise it
        anchor = datetime.fromisoformat(echo["anchor"])
        return self._reconcile(context, event["graph_id"], echo["backup_id"], anchor, echo["started"])

    def _observe(self, graph_id: str, backup_id: str, anchor: datetime, started: list[str]) -> RestoreView:
        graph = self.hook.get_graph(graph_id)
        backup, elsewhere = self.find_backup(graph_id, backup_id)
        jobs = self.run_jobs(graph, anchor, started, {"stop", "start"})
        return RestoreView(str(graph.status), backup, jobs, elsewhere)

    def _reconcile(
        self, context: Context, graph_id: str, backup_id: str, anchor: datetime, started: list[str]
    ) -> Any:
        graph = self.graph_label(graph_id)
        lost: list[str | None] = [None, ""]
        said = [""]

        def look() -> Any:
            view = self._observe(graph_id, backup_id, anchor, started)
            step = after_lost_reply(
                plan_restore(view, backup_id=backup_id, graph=graph), lost[0], lost[1] or ""
            )
            lost[0] = None
            if step.message and step.message != said[0]:  # a wait is logged once, not every look
                self.log.info("%s", step.message)
                said[0] = step.message
            if step.action == "done":
                return self._restored(graph_id, backup_id)
            if step.action == "refuse":
                raise AirflowFailException(step.message)
            if step.action == "lost":
                raise RuntimeError(f"{step.message}; {graph} is in status {view.status}")
            if step.action == "rollback":
                self._rollback(graph_id, step.message)
            if step.action == "wait":
                if step.job is not None and self.deferrable and step.job.job_id:
                    self.defer_job(
                        graph_id,
                        step.job.job_id,
                        "execute_resumed",
                        backup_id=backup_id,
                        anchor=anchor.isoformat(),
                        started=started,
                    )
                return None
            return self._act(context, graph_id, backup_id, step.action, started, lost)

        return self.poll(look, f"The restore of {graph}")

    def _act(
        self,
        context: Context,
        graph_id: str,
        backup_id: str,
        action: str,
        started: list[str],
        lost: list[str | None],
    ) -> str | None:
        """Send the stop or the start from the backup; None to observe again (the start's job id
        without ``wait_for_completion``)."""
        graph = self.graph_label(graph_id)
        try:
            if action == "stop":
                self.log.info("Stopping %s to restore it from backup %s", graph, backup_id)
                job_id = self.hook.stop_graph(graph_id)
            else:
                self.log.info("Starting %s from backup %s: its current data is replaced", graph, backup_id)
                job_id = self.hook.start_graph(graph_id, backup_id=backup_id)
        except GesApiError as err:
            if err.transient:
                self.log.warning("The %s's reply was lost (%s): reading what GES shows", action, err)
                lost[0], lost[1] = action, str(err)
                return None
            if action == "start":
                self._rollback(graph_id, f"GES refused the start from the backup ({err})")
            raise AirflowFailException(
                f"Not restoring {graph}: GES refused the stop ({err}); it is untouched"
            ) from None
        started.append(job_id)
        context["ti"].xcom_push(key="stop_job_id" if action == "stop" else "job_id", value=job_id)
        self.log.info("%s %s: job %s", "Stopping" if action == "stop" else "Starting", graph, job_id)
        if action == "start" and not self.wait_for_completion:
            return job_id
        return None

    def _rollback(self, graph_id: str, why: str) -> None:
        """The restore cannot go on after the graph was stopped: start it again without the backup
        (its data as before the task), then fail saying so."""
        graph = self.graph_label(graph_id)
        self.log.warning("Not restoring %s: %s; starting it again without the backup", graph, why)
        try:
            job_id = self.hook.start_graph(graph_id)
            self.wait_job(graph_id, job_id)
        except (GesApiError, AirflowFailException, TimeoutError) as err:
            raise AirflowFailException(
                f"Not restored {graph}: {why}. Starting it again without the backup failed too ({err}):"
                f" the graph is stopped (status {self._status(graph_id)}); start it, or restore again"
            ) from None
        raise AirflowFailException(
            f"Not restored {graph}: {why}. It was stopped for the restore and is started again without the"
            f" backup (job {job_id}): its data is as before the task (status {self._status(graph_id)})"
        )

    def _status(self, graph_id: str) -> str:
        try:
            return str(self.hook.get_graph(graph_id).status)
        except GesApiError:
            return "unknown"

    def _restored(self, graph_id: str, backup_id: str) -> dict[str, Any]:
        graph = self.hook.get_graph(graph_id)
        self.log.info(
            "%s runs from backup %s (status %s)", self.graph_label(graph_id), backup_id, graph.status
        )
        return graph.model_dump(mode="json")
