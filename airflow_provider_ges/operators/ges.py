"""The backup operators: list, create (and wait), delete, prune by retention, restore a graph."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_ges import DEFAULT_CONN_ID, DEFAULT_PAGE_SIZE
from airflow_provider_ges._compat import AirflowFailException, default_deferrable
from airflow_provider_ges.enums import BackupMethod, BackupStatus, choice
from airflow_provider_ges.exceptions import GesApiError, GesNotFoundError
from airflow_provider_ges.times import check_time, to_utc

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_ges.hooks.ges import GesHook
    from airflow_provider_ges.models import Backup, Job


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
    :param page_size: backups asked for per request.
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
        if not isinstance(page_size, int) or page_size < 1:
            raise ValueError(f"page_size must be a positive integer, got {page_size!r}")
        self.graph_id = graph_id
        self.graph_name = graph_name
        self.status = status
        self.backup_method = backup_method
        self.newer_than = newer_than
        self.ges_conn_id = ges_conn_id
        self.page_size = page_size

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

#: How much earlier than its job's ``beginTime`` (second-precision text) a new backup's start
#: timestamp (ms) may be and still be that job's backup.
CLOCK_SLACK = timedelta(seconds=2)
#: How many times the listing is read for the new backup after its job succeeded (GES may list it
#: a moment later), ``LISTING_PAUSE`` seconds apart.
NEW_BACKUP_LOOKS = 5
LISTING_PAUSE = 2.0


def check_one_graph(task_id: str, graph_id: str | None, graph_name: str | None) -> None:
    """Exactly one of ``graph_id``/``graph_name``, at construction."""
    if (graph_id is None) == (graph_name is None):
        raise ValueError(
            f"{task_id}: give exactly one of graph_id or graph_name, got graph_id={graph_id!r},"
            f" graph_name={graph_name!r}"
        )


def check_positive(name: str, value: Any) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def check_id(name: str, value: Any, *, rendered: bool = False) -> str:
    """A non-empty id; at construction a template is let through, once rendered it must not be empty."""
    if not isinstance(value, str) or not value.strip():
        when = "rendered to" if rendered else "is"
        raise ValueError(f"{name} {when} {value!r}: give the id of one")
    return value.strip()


def resolve_graph_id(hook: GesHook, graph_id: str | None, graph_name: str | None) -> str:
    """The graph's id: ``graph_id`` as given, or the id of the one graph called ``graph_name``.

    A name that no graph (or several) has is an ``AirflowFailException`` naming the graphs there are.
    """
    if graph_id:
        return graph_id
    if not graph_name:
        raise ValueError("graph_id and graph_name both rendered to empty: give one")
    found = hook.find_graph_id(graph_name)
    if found is not None:
        return found
    graphs = list(hook.iter_graphs())
    same = [g.id for g in graphs if g.name == graph_name]
    if same:
        raise AirflowFailException(
            f"Several graphs are named {graph_name!r} (ids {', '.join(sorted(same))}): give graph_id"
        )
    there = ", ".join(sorted(repr(g.name or g.id) for g in graphs)) or "none"
    raise AirflowFailException(f"No graph named {graph_name!r}: the project's graphs are {there}")


def wait_for_job(
    hook: GesHook, graph_id: str, job_id: str, *, poll_interval: float, timeout: float, log: Any
) -> Job:
    """Poll a job until it succeeds (returned); a failed job (or one in an undocumented state) is an
    ``AirflowFailException`` with its fail reason, no end within ``timeout`` a ``TimeoutError``.
    Transient errors are waited out. The rule is ``Job.outcome``, the same as ``GesJobTrigger``'s."""
    deadline = time.monotonic() + timeout
    graph = f"graph id {graph_id!r}"
    last: Any = None
    while True:
        try:
            job = hook.get_job(graph_id, job_id)
        except GesApiError as err:
            if not err.transient:
                raise
            log.warning("GES still failing after retries; will look again: %s", err)
        else:
            if job.status != last:
                log.info("Job %s of %s is %s", job_id, graph, job.status)
                last = job.status
            if job.outcome == "success":
                return job
            if job.outcome == "failed":
                raise AirflowFailException(job.describe(graph))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"Job {job_id} of {graph} did not end within {timeout:g}s")
        time.sleep(min(poll_interval, remaining))


def job_from_event(event: dict[str, Any]) -> dict[str, Any]:
    """A ``GesJobTrigger`` event as the task sees it: the job on success, else raise."""
    status = event.get("status")
    if status == "success":
        job: dict[str, Any] = event["job"]
        return job
    if status == "failed":
        raise AirflowFailException(event["message"])
    if status == "timeout":
        raise TimeoutError(event["message"])
    raise RuntimeError(f"GES job trigger ended with {status!r}: {event.get('message')}")


def find_new_backup(
    backups: Iterable[Backup], *, before: Iterable[str], graph_id: str, since: datetime | None
) -> Backup | None:
    """The backup a create job made: an id that was not listed before the create, of that graph,
    manual (or of unstated method), started no earlier than ``since`` (the job's begin time) less
    ``CLOCK_SLACK``. Of several (someone else's create meanwhile), the one starting closest to
    ``since``; None when there is none yet."""
    old = set(before)
    earliest = None if since is None else since - CLOCK_SLACK
    fresh = [
        b
        for b in backups
        if b.id not in old
        and b.graph_id in (graph_id, None)
        and b.backup_method in (BackupMethod.MANUAL, None)
        and (earliest is None or (b.start_time is not None and b.start_time >= earliest))
    ]
    if not fresh:
        return None
    anchor = since or datetime.now(timezone.utc)
    return min(fresh, key=lambda b: abs(((b.start_time or anchor) - anchor).total_seconds()))


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

    def wait_job(self, graph_id: str, job_id: str, deadline: float | None = None) -> Job:
        timeout = self.timeout if deadline is None else max(0.0, deadline - time.monotonic())
        return wait_for_job(
            self.hook, graph_id, job_id, poll_interval=self.poll_interval, timeout=timeout, log=self.log
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
    backup as the API's dict once it succeeded: the backup whose id was not in the graph's
    listing before the create, of that graph, manual, started no earlier than the job began (see
    ``find_new_backup``). Without waiting, returns the job id.

    If a backup of the graph is already running (seen in the listing, or GES answering GES.7002)
    it attaches to that one instead of starting a second: it waits for that backup (in the
    listing: GES gives no job id for it, so ``job_id`` is None) and returns it.

    Fails without retries (``AirflowFailException``) when the backup job fails (with its fail
    reason) or the backup quota is reached (GES.7019). A create whose reply was lost (dropped
    connection, 5xx) is not sent again (it may have started a backup): the listing is read, and
    a new running backup is attached to; else the error is raised (an Airflow retry attaches).

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
        before = list(self.hook.iter_backups(graph_id))
        running = self._running(before)
        job_id: str | None = None
        asked = datetime.now(timezone.utc)
        if running is None:
            job_id, running = self._create(graph_id, graph, {b.id for b in before})
        context["ti"].xcom_push(key="job_id", value=job_id)
        if running is not None:
            context["ti"].xcom_push(key="backup_id", value=running.id)
            self.log.info(
                "A backup of %s is already running: %s (id %s, %s, started %s); attaching to it",
                graph,
                running.name,
                running.id,
                running.backup_method,
                running.start_time.isoformat() if running.start_time else "?",
            )
            if not self.wait_for_completion:
                return job_id
            return self._attach(context, graph_id, running)
        assert job_id is not None
        self.log.info("Backup of %s started: job %s", graph, job_id)
        if not self.wait_for_completion:
            return job_id
        since = asked.isoformat()
        ids = sorted(b.id for b in before)
        if self.deferrable:
            self.defer_job(graph_id, job_id, "execute_complete", before=ids, since=since)
        job = self.wait_job(graph_id, job_id)
        return self._new_backup(graph_id, ids, job.begin_time or datetime.fromisoformat(since))

    @staticmethod
    def _running(backups: Iterable[Backup]) -> Backup | None:
        from airflow_provider_ges.models import sort_newest_first

        running = [b for b in backups if b.status == BackupStatus.BACKING_UP]
        manual = [b for b in running if b.backup_method == BackupMethod.MANUAL]
        return next(iter(sort_newest_first(manual or running)), None)

    def _create(self, graph_id: str, graph: str, before: set[str]) -> tuple[str | None, Backup | None]:
        """Start the backup: (job id, None), or (None, the running backup to attach to)."""
        try:
            return self.hook.create_backup(graph_id), None
        except GesApiError as err:
            if err.error_code == "GES.7019":
                raise AirflowFailException(
                    f"Cannot back up {graph}: the backup quota is reached ({err})"
                ) from None
            if not err.transient:
                raise
            # GES.7002 (a backup runs), or no telling whether the create went through: look
            now = [
                b for b in self.hook.iter_backups(graph_id) if b.id not in before or b.status == "backing_up"
            ]
            running = self._running(now)
            if running is None:
                raise
            self.log.warning("Create answered %s; a backup is running: attaching to it", err)
            return None, running

    def _attach(self, context: Context, graph_id: str, running: Backup) -> Any:
        if self.deferrable and running.start_time is not None:
            from airflow_provider_ges.triggers.ges import GesBackupTrigger

            method = running.backup_method if isinstance(running.backup_method, BackupMethod) else None
            self.defer(
                trigger=GesBackupTrigger(
                    ges_conn_id=self.ges_conn_id,
                    gate={
                        "graph_id": graph_id,
                        "newer_than": running.start_time.isoformat(),
                        "backup_method": None if method is None else method.value,
                    },
                    found_graph_id=None,
                    poll_interval=self.poll_interval,
                    end_time=time.time() + self.timeout,
                ),
                method_name="execute_attached",
                timeout=timedelta(seconds=self.timeout),
            )
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                now = next((b for b in self.hook.iter_backups(graph_id) if b.id == running.id), None)
            except GesApiError as err:
                if not err.transient:
                    raise
                self.log.warning("GES still failing after retries; will look again: %s", err)
            else:
                if now is None:
                    raise AirflowFailException(f"The running backup {running.id} was deleted")
                if now.is_success:
                    self.log.info("Backup %s (id %s) succeeded", now.name, now.id)
                    return now.to_api()
                if now.status != BackupStatus.BACKING_UP:
                    raise AirflowFailException(
                        f"Backup {now.name or now.id!r} (id {now.id}) of {self.graph_label(graph_id)} ended"
                        f" {now.status}"
                    )
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Backup {running.id} did not end within {self.timeout:g}s")
            time.sleep(self.poll_interval)

    def execute_attached(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after waiting (``GesBackupTrigger``) for a backup that was already running."""
        status = event.get("status")
        if status == "success":
            backup: dict[str, Any] = event["backup"]
            attached = context["ti"].xcom_pull(task_ids=self.task_id, key="backup_id")
            if attached and backup["id"] != attached:
                self.log.warning(
                    "Backup %s ended; a later one, %s, succeeded: returning it", attached, backup["id"]
                )
            return backup
        if status == "failed":
            raise AirflowFailException(event["message"])
        if status == "timeout":
            raise TimeoutError(event["message"])
        raise RuntimeError(f"GES backup trigger ended with {status!r}: {event.get('message')}")

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the job trigger: the new backup, or raise on anything but success."""
        from airflow_provider_ges.models import Job

        job = Job.model_validate(job_from_event(event))
        echo = event["echo"]
        since = job.begin_time or datetime.fromisoformat(echo["since"])
        return self._new_backup(event["graph_id"], echo["before"], since)

    def _new_backup(self, graph_id: str, before: list[str], since: datetime) -> dict[str, Any]:
        for look in range(NEW_BACKUP_LOOKS):
            backup = find_new_backup(
                self.hook.iter_backups(graph_id), before=before, graph_id=graph_id, since=since
            )
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
    ``missing_ok`` (the default: "make sure it is gone"); else a failure. Returns the deleted
    backup as the API's dict (None when it was not there).

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
            return self._missing(f"{graph} has no backup {backup_id!r}")
        newest = newest_success(backups)
        if backup.status not in (BackupStatus.SUCCESS, BackupStatus.FAILED):
            raise AirflowFailException(f"Backup {backup_id} of {graph} is {backup.status}: not deleting it")
        if newest is not None and newest.id == backup_id:
            raise AirflowFailException(
                f"Backup {backup_id} is the newest successful backup of {graph}: not deleting it"
            )
        try:
            self.hook.delete_backup(graph_id, backup_id)
        except GesNotFoundError as err:
            if err.error_code != "GES.7024":
                raise
            return self._missing(f"Backup {backup_id} of {graph} is gone ({err})")
        self.log.info("Deleted backup %s (id %s, %s) of %s", backup.name, backup_id, backup.status, graph)
        return backup.to_api()

    def _missing(self, message: str) -> dict[str, Any] | None:
        if not self.missing_ok:
            raise AirflowFailException(message)
        self.log.info("%s: nothing to delete (missing_ok)", message)
        return None


def newest_success(backups: Iterable[Backup]) -> Backup | None:
    """The graph's newest successful backup (by start time), of any method: never deleted."""
    from airflow_provider_ges.models import sort_newest_first

    return next((b for b in sort_newest_first(backups) if b.is_success), None)


@dataclass(frozen=True)
class PruneDecision:
    """What the retention rule says about one backup, and why."""

    backup: Backup
    delete: bool
    reason: str


def select_prune(
    backups: Iterable[Backup],
    *,
    keep_last: int | None,
    cutoff: datetime | None,
    backup_method: BackupMethod | None,
) -> list[PruneDecision]:
    """The retention rule, newest first. A backup is deleted only if every given rule says so:

    - ``keep_last=N``: the N newest successful backups among those of ``backup_method`` stay;
    - ``cutoff``: only backups that started before it may go (no start time: it stays);

    and never: a backup that is not finished (``backing_up``, or a state GES does not document),
    one of another method (``backup_method`` None: any), or the graph's newest successful backup.
    """
    from airflow_provider_ges.models import sort_newest_first

    if keep_last is None and cutoff is None:
        raise ValueError("give keep_last or older_than: with neither, every backup would go")
    ordered = sort_newest_first(backups)
    newest = newest_success(ordered)
    kept_successes = 0
    decisions = []
    for b in ordered:
        if newest is not None and b.id == newest.id:
            decisions.append(PruneDecision(b, False, "newest successful backup of the graph"))
            if backup_method is None or b.backup_method == backup_method:
                kept_successes += 1
            continue
        if b.status not in (BackupStatus.SUCCESS, BackupStatus.FAILED):
            decisions.append(PruneDecision(b, False, f"{b.status}: not finished"))
            continue
        if backup_method is not None and b.backup_method != backup_method:
            decisions.append(PruneDecision(b, False, f"{b.backup_method}, not {backup_method}"))
            continue
        if keep_last is not None and b.is_success and kept_successes < keep_last:
            kept_successes += 1
            decisions.append(PruneDecision(b, False, f"one of the {keep_last} newest successful"))
            continue
        if cutoff is not None and (b.start_time is None or b.start_time >= cutoff):
            why = "start time unknown" if b.start_time is None else f"started after {cutoff.isoformat()}"
            decisions.append(PruneDecision(b, False, why))
            continue
        rules = []
        if keep_last is not None:
            rules.append(f"beyond the {keep_last} newest successful" if b.is_success else "failed")
        if cutoff is not None:
            rules.append(f"started before {cutoff.isoformat()}")
        decisions.append(PruneDecision(b, True, ", ".join(rules)))
    return decisions


def prune_table(decisions: Sequence[PruneDecision], dry_run: bool) -> str:
    """The decisions as a text table for the log."""
    verb = "would delete" if dry_run else "delete"
    rows = [("decision", "id", "name", "method", "status", "started (UTC)", "why")]
    for d in decisions:
        b = d.backup
        started = b.start_time.strftime("%Y-%m-%d %H:%M:%S") if b.start_time else "?"
        rows.append(
            (
                verb if d.delete else "keep",
                b.id,
                b.name or "",
                str(b.backup_method or "?"),
                str(b.status),
                started,
                d.reason,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows
    )


class GesPruneBackupsOperator(_GraphOperator):
    """Delete the backups of a graph that fall outside a retention rule.

    Both rules may be given; a backup is deleted only if every given rule says so (see
    ``select_prune``). ``keep_last=N`` keeps the N newest **successful** backups of
    ``backup_method`` (failed ones never count as kept; running ones neither count nor go);
    ``older_than`` lets only backups that started before it go: an age (a ``timedelta``, counted
    back from now) or a cutoff (a datetime, an ISO-8601 string or a template rendering to one).
    Whatever the rules say, it never deletes a running (``backing_up``) backup nor the newest
    successful backup of the graph (of any method).

    Everything is decided from one listing before anything is deleted; then the chosen backups
    are deleted one by one (one gone meanwhile is skipped). The log shows a table of what is kept
    and what goes, and why. Returns the deleted (with ``dry_run``, the would-be-deleted) backups
    as the API's dicts, newest first.

    :param graph_id: the graph's id (give this or ``graph_name``). Templated.
    :param graph_name: the graph's name. Templated.
    :param keep_last: how many of the newest successful backups to keep (0 or more).
    :param older_than: a ``timedelta`` age or a cutoff time. Templated.
    :param backup_method: ``"manual"`` (default), ``"auto"``, ``"import"`` or None for any. Templated.
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
        if backup_method is not None and "{{" not in backup_method:
            choice("backup_method", backup_method, BackupMethod)
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
        method = choice("backup_method", self.backup_method or None, BackupMethod)
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
                self.hook.delete_backup(graph_id, backup.id)
            except GesNotFoundError as err:
                if err.error_code != "GES.7024":
                    raise
                self.log.info("Backup %s is gone already: skipped", backup.id)
                continue
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


class GesRestoreGraphOperator(_WaitingGraphOperator):
    """Restoring throws away the graph's current data: it starts the graph from a backup.

    Checks first, before touching the graph, that the backup exists, belongs to that graph and
    succeeded, and that the graph is running or stopped (a graph stopping, starting or being
    backed up is waited for; one faulty, frozen or deleted is refused). Then it stops the graph
    if it is running (waiting for that job), starts it from the backup (GES's restore: the start
    call with ``graph_backup_id``) and waits for the start job. Refuses a ``backup_id`` that
    renders to empty (e.g. a run without the param). A failed stop leaves the graph running and
    untouched; a failed start leaves it stopped (the message says so). Returns the graph (API
    dict) once running from the backup; without ``wait_for_completion``, the start job's id.
    Pushes ``stop_job_id`` and ``job_id`` (the start's) to XCom.

    :param graph_id: the graph's id (give this or ``graph_name``). Templated.
    :param graph_name: the graph's name. Templated.
    :param backup_id: the backup to restore. Templated.
    :param wait_for_completion: wait for the start job (default True; the stop is always waited for).
    :param deferrable: wait for the jobs in the triggerer (``GesJobTrigger``).
    :param poll_interval: seconds between looks.
    :param timeout: seconds each wait may take at most.
    :param ges_conn_id: the ``ges`` connection. Templated.
    """

    template_fields: Sequence[str] = ("graph_id", "graph_name", "backup_id", "ges_conn_id")

    def __init__(self, *, backup_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backup_id = check_id("backup_id", backup_id)

    def execute(self, context: Context) -> Any:
        from airflow_provider_ges.models import GraphStatus

        try:
            backup_id = check_id("backup_id", self.backup_id, rendered=True)
        except ValueError as err:
            raise AirflowFailException(f"Not restoring: {err}") from None
        graph_id = self.resolve_graph()
        graph = self.graph_label(graph_id)
        backup = self._check_backup(graph_id, graph, backup_id)
        status = self._settled_status(graph_id, graph)
        self.log.info(
            "Restoring %s (status %s) from backup %s (id %s, started %s): its current data is replaced",
            graph,
            status,
            backup.name,
            backup.id,
            backup.start_time.isoformat() if backup.start_time else "?",
        )
        if status == GraphStatus.RUNNING:
            stop_job = self.hook.stop_graph(graph_id)
            context["ti"].xcom_push(key="stop_job_id", value=stop_job)
            self.log.info("Stopping %s: job %s", graph, stop_job)
            if self.deferrable:
                self.defer_job(graph_id, stop_job, "execute_stopped", backup_id=backup_id)
            self._stop_waited(lambda: self.wait_job(graph_id, stop_job), graph)
        return self._start(context, graph_id, backup_id)

    def _check_backup(self, graph_id: str, graph: str, backup_id: str) -> Backup:
        own = next((b for b in self.hook.iter_backups(graph_id) if b.id == backup_id), None)
        if own is None:
            other = next((b for b in self.hook.iter_backups() if b.id == backup_id), None)
            if other is not None:
                raise AirflowFailException(
                    f"Not restoring {graph}: backup {backup_id} belongs to graph"
                    f" {other.graph_name!r} (id {other.graph_id})"
                )
            raise AirflowFailException(f"Not restoring {graph}: it has no backup {backup_id!r}")
        if not own.is_success:
            raise AirflowFailException(
                f"Not restoring {graph}: backup {own.name or own.id!r} (id {own.id}) is {own.status},"
                " not success"
            )
        return own

    def _settled_status(self, graph_id: str, graph: str) -> str:
        """The graph's status once it is running or stopped (transitions waited out)."""
        from airflow_provider_ges.models import GraphStatus

        deadline = time.monotonic() + self.timeout
        while True:
            status = str(self.hook.get_graph(graph_id).status)
            if status in (GraphStatus.RUNNING, GraphStatus.STOPPED):
                return status
            if status not in GraphStatus.TRANSIENT:
                raise AirflowFailException(
                    f"Not restoring {graph}: its status is {status} (only a running (200) or stopped"
                    " (900) graph can be restored)"
                )
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{graph} stayed in status {status} for {self.timeout:g}s")
            self.log.info("%s is in status %s; waiting for it to settle", graph, status)
            time.sleep(self.poll_interval)

    @staticmethod
    def _stop_waited(wait: Any, graph: str) -> None:
        try:
            wait()
        except AirflowFailException as err:
            raise AirflowFailException(f"Not restoring {graph}: stopping it failed ({err})") from None

    def execute_stopped(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the stop job: start from the backup."""
        graph_id = event["graph_id"]
        self._stop_waited(lambda: job_from_event(event), self.graph_label(graph_id))
        return self._start(context, graph_id, event["echo"]["backup_id"])

    def _start(self, context: Context, graph_id: str, backup_id: str) -> Any:
        from airflow_provider_ges.models import GraphStatus

        graph = self.graph_label(graph_id)
        status = self._settled_status(graph_id, graph)
        if status != GraphStatus.STOPPED:
            raise AirflowFailException(f"Not restoring {graph}: it is in status {status} after the stop")
        job_id = self.hook.start_graph(graph_id, backup_id=backup_id)
        context["ti"].xcom_push(key="job_id", value=job_id)
        self.log.info("Starting %s from backup %s: job %s", graph, backup_id, job_id)
        if not self.wait_for_completion:
            return job_id
        if self.deferrable:
            self.defer_job(graph_id, job_id, "execute_complete", backup_id=backup_id)
        try:
            self.wait_job(graph_id, job_id)
        except AirflowFailException as err:
            raise AirflowFailException(self._start_failed(graph_id, err)) from None
        return self._restored(graph_id, backup_id)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the start job: the graph, or raise on anything but success."""
        graph_id, backup_id = event["graph_id"], event["echo"]["backup_id"]
        try:
            job_from_event(event)
        except AirflowFailException as err:
            raise AirflowFailException(self._start_failed(graph_id, err)) from None
        return self._restored(graph_id, backup_id)

    def _start_failed(self, graph_id: str, err: Exception) -> str:
        try:
            status = self.hook.get_graph(graph_id).status
        except GesApiError:
            status = "unknown"
        return (
            f"Starting {self.graph_label(graph_id)} from the backup failed ({err}); it was stopped for the"
            f" restore and is now in status {status}: restore again or start it"
        )

    def _restored(self, graph_id: str, backup_id: str) -> dict[str, Any]:
        graph = self.hook.get_graph(graph_id)
        self.log.info(
            "%s runs from backup %s (status %s)", self.graph_label(graph_id), backup_id, graph.status
        )
        return graph.model_dump(mode="json")
