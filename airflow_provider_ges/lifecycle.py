"""The backup lifecycle's rules: what a create, restore, delete or prune does next, given what GES shows.

No I/O here, as ``gate.py`` is for waits and ``watermark.py`` for events. Every try of a lifecycle
operator (a first try, an Airflow retry, a resume after deferring) observes GES (the graph's
backups, its status, its jobs), asks the rule here for the next step, carries it out, and observes
again: **reconcile, don't replay**. The rules, all of them:

1. A try recognises its own run's earlier work by time: what GES shows started at or after the
   run's *anchor* (``CLOCK_SLACK`` earlier, for GES's second-precision times) is this run's. The
   anchor is the run's start (``dag_run.start_date``, which Airflow resets when a finished run is
   cleared) on a retry, and the try's own start on a first try (nothing is its yet). A create's
   reply naming the backup (``backupId``) identifies it outright.
2. A create (``plan_create``): this run's newest manual backup that succeeded is the result
   (adopted, never doubled); one still running is attached to; one that failed is replaced by a
   new create only on a later try (the earlier try's backup failed; the step is still needed).
   Else a running backup of the graph is attached to; else a backup is created.
3. A restore (``plan_restore``), from the graph's status and its stop/start jobs since the anchor:
   a start job of the run that succeeded with the graph running means restored (done); one still
   running is waited for; one that failed, or a start refused, after the run's stop, starts the
   graph again without the backup (``rollback``: its data as before the task) and fails saying
   so. A stop job of the run still running is waited for; once the graph is stopped (by the run,
   or before it), it is started from the backup; a stop that failed leaves the graph running and
   untouched (refused). With no job of the run: a running graph is stopped, a stopped one started
   from the backup, a transitional one waited for, a faulty or deleted one refused. The backup is
   checked (there, the graph's, ``success``) before every stop and start.
4. A lost reply (dropped connection, 500/502/504 after the request went out) is followed by an
   observation, never a resend: when what GES shows does not prove the call took effect, and the
   rule would send it again, the try stops (``lost``) and says what it saw; an Airflow retry
   observes again.
5. Delete and prune (``delete_refusal``, ``select_prune``) refuse a running backup and the graph's
   newest successful one before anything is deleted; a backup that GES says is gone after it was
   listed and its DELETE sent counts as deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_ges.enums import BackupMethod, BackupStatus

if TYPE_CHECKING:
    from airflow_provider_ges.hooks.ges import GesHook
    from airflow_provider_ges.models import Backup, Job

#: How much earlier than an anchor (or a job's second-precision ``beginTime``) GES's own times may
#: be and still count as after it.
CLOCK_SLACK = timedelta(seconds=2)


# --- arguments ---------------------------------------------------------------------------------


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


# --- what GES shows ------------------------------------------------------------------------------


def started_since(when: datetime | None, anchor: datetime | None) -> bool:
    """Whether a time GES shows is at or after ``anchor`` (less ``CLOCK_SLACK``)."""
    return anchor is not None and when is not None and when >= anchor - CLOCK_SLACK


def job_action(job: Job) -> Literal["export", "import", "stop", "start", "backup"] | None:
    """What a job of the graph's job list did, from its name (``StopGraph``, ``StartGraph``,
    ``BackupGraph``, ``ExportBackup``, ``ImportBackup``...); None for the rest (upgrades...)."""
    name = (job.job_name or "").lower()
    for action in ("export", "import", "stop", "start", "backup"):
        if action in name:
            return action
    return None


def newest_success(backups: Iterable[Backup]) -> Backup | None:
    """The graph's newest successful backup (by start time), of any method: never deleted."""
    from airflow_provider_ges.models import sort_newest_first

    return next((b for b in sort_newest_first(backups) if b.is_success), None)


def describe(backup: Backup) -> str:
    started = backup.start_time.isoformat() if backup.start_time else "?"
    return f"{backup.name or backup.id!r} (id {backup.id}, {backup.status}, started {started})"


# --- create --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """The next step of a lifecycle operator, and why."""

    action: str
    message: str = ""
    backup: Backup | None = None
    job: Job | None = None


def ours(
    backups: Iterable[Backup],
    *,
    graph_id: str,
    anchor: datetime | None,
    before: Iterable[str] = (),
    backup_id: str | None = None,
) -> Backup | None:
    """This run's backup: ``backup_id`` when the create named it; else the newest manual backup of
    the graph (or of unstated method) that started since ``anchor`` and was not in ``before``."""
    from airflow_provider_ges.models import sort_newest_first

    if backup_id is not None:
        return next((b for b in backups if b.id == backup_id), None)
    if anchor is None:
        return None
    fresh = made_since(backups, graph_id=graph_id, since=anchor, before=before)
    return next(iter(sort_newest_first(fresh)), None)


def made_since(
    backups: Iterable[Backup], *, graph_id: str, since: datetime | None, before: Iterable[str]
) -> list[Backup]:
    """The backups a create may have made: not in ``before``, of the graph, manual (or of unstated
    method), started no earlier than ``since`` less ``CLOCK_SLACK`` (None: any time)."""
    old = set(before)
    return [
        b
        for b in backups
        if b.id not in old
        and b.graph_id in (graph_id, None)
        and b.backup_method in (BackupMethod.MANUAL, None)
        and (since is None or started_since(b.start_time, since))
    ]


def running_backup(backups: Iterable[Backup]) -> Backup | None:
    """A backup of the graph that is running (a manual one first), to attach to."""
    from airflow_provider_ges.models import sort_newest_first

    running = [b for b in backups if b.status == BackupStatus.BACKING_UP]
    manual = [b for b in running if b.backup_method == BackupMethod.MANUAL]
    return next(iter(sort_newest_first(manual or running)), None)


def plan_create(
    backups: Sequence[Backup],
    *,
    graph_id: str,
    anchor: datetime | None,
    before: Iterable[str] = (),
    backup_id: str | None = None,
    lost: bool = False,
) -> Step:
    """``done`` (with the backup), ``attach`` (to a running one), ``create``, ``failed`` or ``lost``.

    ``anchor``: since when a backup is this run's (None on a first try before its create: none is).
    ``lost``: the create's reply was lost, so ``anchor``/``before`` are that create's time and the
    listing before it; a backup of it that failed fails the task, none listed is ``lost``.
    """
    mine = ours(backups, graph_id=graph_id, anchor=anchor, before=before, backup_id=backup_id)
    if mine is not None:
        if mine.is_success:
            return Step("done", f"Backup {describe(mine)} is this run's: adopting it", mine)
        if mine.status == BackupStatus.BACKING_UP:
            return Step("attach", f"Backup {describe(mine)} is this run's: attaching to it", mine)
        if lost:
            return Step(
                "failed", f"The backup the create started ended {mine.status}: {describe(mine)}", mine
            )
    running = running_backup(backups)
    if running is not None:
        return Step("attach", f"A backup is already running: {describe(running)}; attaching to it", running)
    if lost:
        return Step("lost", "GES lists no backup that it started")
    if mine is not None:
        return Step("create", f"This run's earlier backup {describe(mine)} did not succeed: starting anew")
    return Step("create")


def attached_outcome(backup: Backup | None, backup_id: str, graph: str) -> Step:
    """How an attached backup stands: ``success``, ``failed`` (ended otherwise, or gone) or ``waiting``."""
    if backup is None:
        return Step("failed", f"The attached backup {backup_id} of {graph} was deleted")
    if backup.is_success:
        return Step("success", backup=backup)
    if backup.status == BackupStatus.BACKING_UP:
        return Step("waiting", backup=backup)
    return Step("failed", f"Backup {describe(backup)} of {graph} ended {backup.status}", backup)


def event_result(event: dict[str, Any], key: str, timeout: type[Exception] = TimeoutError) -> Any:
    """A trigger's event as the task sees it: ``event[key]`` on success; else raise (a failure
    without retries, ``timeout`` on a timeout, a ``RuntimeError`` on an error)."""
    from airflow_provider_ges._compat import AirflowFailException

    status = event.get("status")
    if status == "success":
        return event[key]
    if status == "failed":
        raise AirflowFailException(event["message"])
    if status == "timeout":
        raise timeout(event["message"])
    raise RuntimeError(f"The GES trigger ended with {status!r}: {event.get('message')}")


def resolve_graph_id(hook: GesHook, graph_id: str | None, graph_name: str | None) -> str:
    """The graph's id: ``graph_id`` as given, or the id of the one graph called ``graph_name``.

    A name that no graph (or several) has is an ``AirflowFailException`` naming the graphs there are.
    """
    from airflow_provider_ges._compat import AirflowFailException
    from airflow_provider_ges.gate import graph_refusal

    if graph_id:
        return graph_id
    if not graph_name:
        raise ValueError("graph_id and graph_name both rendered to empty: give one")
    found, refusal = graph_refusal(hook.iter_graphs(), graph_name)
    if found is None:
        raise AirflowFailException(refusal)
    return found


def find_new_backup(
    backups: Iterable[Backup], *, before: Iterable[str], graph_id: str, since: datetime | None
) -> Backup | None:
    """The backup a create job made: an id that was not listed before the create, of that graph,
    manual (or of unstated method), started no earlier than ``since`` (the job's begin time) less
    ``CLOCK_SLACK``. Of several (someone else's create meanwhile), the one starting closest to
    ``since``; None when there is none yet."""
    fresh = made_since(backups, graph_id=graph_id, since=since, before=before)
    if not fresh:
        return None
    if since is None:
        return fresh[0]
    return min(fresh, key=lambda b: abs(((b.start_time or since) - since).total_seconds()))


# --- restore -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreView:
    """What a restore sees: the graph's status, the backup as the graph's listing shows it (None:
    not there; ``elsewhere``: listed for another graph) and the graph's stop/start jobs since the
    anchor, oldest first."""

    status: str
    backup: Backup | None
    jobs: Sequence[Job] = ()
    elsewhere: Backup | None = None


def backup_refusal(backup: Backup | None, backup_id: str, elsewhere: Backup | None = None) -> str | None:
    """Why ``backup`` (as the graph's listing shows it; ``elsewhere``: listed for another graph) may
    not be restored or exported: missing, another graph's, not ``success``; None when it may."""
    if backup is None:
        if elsewhere is not None:
            return f"backup {backup_id} belongs to graph {elsewhere.graph_name!r} (id {elsewhere.graph_id})"
        return f"it has no backup {backup_id!r}"
    if not backup.is_success:
        return f"backup {backup.name or backup.id!r} (id {backup.id}) is {backup.status}, not success"
    return None


def plan_job(jobs: Sequence[Job], *, action: str, lost: bool = False) -> Step:
    """An export or import from this run's jobs of that ``action`` (oldest first): ``done`` (the last
    succeeded), ``wait`` (it runs), ``start`` (none, or the last failed) or ``lost`` (a reply was lost
    and GES shows no such job: not sent again)."""
    mine = [j for j in jobs if job_action(j) == action]
    last = mine[-1] if mine else None
    if last is not None and last.outcome == "success":
        return Step("done", f"This run's {action} job {last.job_id} succeeded", job=last)
    if last is not None and last.outcome == "waiting":
        return Step("wait", f"Waiting for this run's {action} job {last.job_id}", job=last)
    if lost and last is None:
        return Step("lost", f"GES lists no {action} job it started")
    return Step(
        "start", "" if last is None else f"This run's {action} job {last.job_id} failed: starting anew"
    )


def plan_restore(view: RestoreView, *, backup_id: str, graph: str) -> Step:
    """``done``, ``wait`` (a job of the run, or a transitional graph), ``stop``, ``start`` (from the
    backup), ``rollback`` (start without it, then fail) or ``refuse`` (nothing more is sent)."""
    from airflow_provider_ges.models import GraphStatus

    kind = GraphStatus.kind(view.status)
    where = f"{graph} (status {view.status}, {kind})"
    stops = [j for j in view.jobs if job_action(j) == "stop"]
    starts = [j for j in view.jobs if job_action(j) == "start"]
    last_start = starts[-1] if starts else None
    last_stop = stops[-1] if stops else None
    if last_start is not None:
        outcome = last_start.outcome
        if outcome == "waiting":
            return Step("wait", f"{where}: waiting for the start job {last_start.job_id}", job=last_start)
        if outcome == "success" and len(starts) > 1 and starts[-2].outcome == "failed":
            return Step(
                "refuse",
                f"Not restoring {where} again: this run's start from the backup failed (job"
                f" {starts[-2].job_id}) and the graph was started again without it (job {last_start.job_id})."
                " To restore, clear the task with restore_again=True",
            )
        if outcome == "success":
            if kind == "running":
                return Step(
                    "done", f"{where} was started by this run (job {last_start.job_id})", job=last_start
                )
            if kind == "transitional":
                return Step("wait", f"{where}: waiting for it to settle")
            return Step(
                "refuse",
                f"Not restoring {where}: this run's start job {last_start.job_id} succeeded but the graph is"
                f" in status {view.status}",
            )
        if kind == "stopped":
            return Step(
                "rollback",
                f"this run's start from the backup failed ({last_start.describe(graph)})",
                job=last_start,
            )
        if kind != "transitional":
            return Step(
                "refuse", f"Not restoring {where}: this run's start failed ({last_start.describe(graph)})"
            )
    refusal = backup_refusal(view.backup, backup_id, view.elsewhere)
    stopping = last_stop is not None and last_stop.outcome != "failed"  # the run stopped the graph
    if refusal is not None and not stopping:
        return Step("refuse", f"Not restoring {where}: {refusal}; the graph is untouched")
    if last_stop is not None and last_stop.outcome == "waiting":
        return Step("wait", f"{where}: waiting for the stop job {last_stop.job_id}", job=last_stop)
    if kind == "transitional":
        return Step("wait", f"{where}: waiting for it to settle")
    if kind == "stopped":
        if refusal is not None:
            return Step("rollback", refusal)
        return Step("start", backup=view.backup)
    if kind == "running":
        if last_stop is not None and last_stop.outcome == "failed":
            return Step(
                "refuse",
                f"Not restoring {graph}: stopping it failed ({last_stop.describe(graph)}); it is left"
                f" running (status {view.status}), untouched",
            )
        if refusal is not None:
            return Step("refuse", f"Not restoring {where}: {refusal}; the graph is untouched")
        return Step("stop", backup=view.backup)
    return Step(
        "refuse",
        f"Not restoring {where}: only a running (200) or stopped (900) graph can be restored;"
        " it is untouched",
    )


def after_lost_reply(step: Step, lost: str | None, what: str) -> Step:
    """``step``, unless it would send again the call whose reply was lost (``lost``): then ``lost``."""
    if lost is not None and step.action == lost:
        return Step(
            "lost",
            f"The reply to the {lost} was lost ({what}) and GES does not show it took effect: not sending"
            " it again. An Airflow retry looks again",
        )
    return step


# --- delete and prune ------------------------------------------------------------------------------


def delete_refusal(backups: Sequence[Backup], backup: Backup, graph: str) -> str | None:
    """Why ``backup`` may not be deleted (running, or the graph's newest successful), or None."""
    if backup.status not in (BackupStatus.SUCCESS, BackupStatus.FAILED):
        return f"Backup {backup.id} of {graph} is {backup.status}: not deleting it"
    newest = newest_success(backups)
    if newest is not None and newest.id == backup.id:
        return f"Backup {backup.id} is the newest successful backup of {graph}: not deleting it"
    return None


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
