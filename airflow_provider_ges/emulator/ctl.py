"""``python -m airflow_provider_ges.emulator ctl ...``: steer a running emulator (started with
``--control``) through its control API (:mod:`.control`). Prints the reply as JSON (``graphs`` and
``backups``: a table); exits 2 with a one-line message on any error."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from email.message import Message
from typing import Any
from urllib.parse import quote, urlencode

from . import defaults as d
from .api import CONTROL_HEADER, CONTROL_PREFIX
from .control import BACKUP_SETTINGS, SETTINGS
from .data import BACKUP_METHODS, BACKUP_STATUSES
from .store import JOB_WAIT_STATES

DEFAULT_URL = f"http://{d.DEFAULT_HOST}:{d.DEFAULT_PORT}"


class CtlError(Exception):
    """What to tell the user before exiting 2."""


#: What ``--backup-quota none`` stands for: send null, "no quota".
NO_QUOTA = "none"


def call(
    url: str, method: str, path: str, body: dict[str, Any] | None = None, keep_none: bool = False
) -> Any:
    """One control call; the reply's JSON, or :class:`CtlError` saying what went wrong. Fields that
    are None are left out of ``body`` unless ``keep_none``."""
    if body is not None and not keep_none:
        body = {k: v for k, v in body.items() if v is not None}
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{url.rstrip('/')}{CONTROL_PREFIX}/{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            _check_emulator(url, reply.status, reply.headers)
            return json.load(reply)
    except urllib.error.HTTPError as exc:
        _check_emulator(url, exc.code, exc.headers)
        raise CtlError(json.load(exc)["error"]) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CtlError(
            f"the emulator at {url} is not reachable ({reason}): start it with --control, or pass its URL"
            " with --url or $GES_EMULATOR_URL"
        ) from None


def _check_emulator(url: str, status: int, headers: Message) -> None:
    """:class:`CtlError` unless the emulator's control API sent this reply."""
    if headers.get(CONTROL_HEADER) is None:
        server = f" ({headers['Server']})" if headers.get("Server") else ""
        raise CtlError(
            f"{url} is not a GES emulator: another server{server} answered there with HTTP {status}."
            f" Start the emulator with --control and pass its URL with --url or $GES_EMULATOR_URL"
        )


def _table(rows: list[dict[str, Any]], columns: dict[str, str]) -> str:
    """``rows`` as aligned columns under the ``columns``' titles (a missing value: ``-``)."""
    cells = [list(columns.values())]
    cells += [["-" if row.get(key) is None else str(row[key]) for key in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells]
    return "\n".join(lines if rows else [*lines, "(none)"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_ges.emulator ctl",
        description="Steer a running GES emulator (started with --control) through its control API.",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("GES_EMULATOR_URL", DEFAULT_URL),
        help="the emulator's base URL (default: $GES_EMULATOR_URL, else %(default)s)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = commands.add_parser("add-graph", help="add a running graph; prints it")
    add.add_argument("name")
    add.add_argument("--id", dest="graph_id", help="its ID (default: a new UUID)")
    add.add_argument("--status", default="200", help="graph status code (default %(default)s; 400: deleted)")
    delete = commands.add_parser("delete-graph", help="delete a graph (by ID or name); its backups stay")
    delete.add_argument("graph")
    graph_status = commands.add_parser(
        "set-graph-status", help="set a graph's status code (e.g. 206: scaling out); prints the graph"
    )
    graph_status.add_argument("graph", help="graph ID or name")
    graph_status.add_argument("status", help="the status code, e.g. 206, 210, 211, 900")
    graph_status.add_argument("--then", help="the status to change to later, e.g. 200")
    graph_status.add_argument("--after", type=float, help="seconds until --then (default 0)")
    backup = commands.add_parser("add-backup", help="add a backup; prints it")
    backup.add_argument("--graph", required=True, help="graph ID or name")
    backup.add_argument("--status", choices=BACKUP_STATUSES, default="success")
    backup.add_argument("--method", choices=BACKUP_METHODS, default="manual")
    backup.add_argument("--start", help="ISO 8601 start time, UTC unless zoned (default: now)")
    backup.add_argument("--duration", type=int, help="seconds it ran (default 60 with --start, else 0)")
    backup.add_argument("--size", type=int, help="MB (default 128)")
    backup.add_argument("--id", dest="backup_id", help="its ID (default: a new UUID)")
    status = commands.add_parser("set-status", help="change a backup's status now; prints the backup")
    status.add_argument("backup_id")
    status.add_argument("status", choices=BACKUP_STATUSES)
    commands.add_parser("graphs", help="list the graphs: name, ID, status, number of backups")
    backups = commands.add_parser("backups", help="list the backups, oldest first")
    backups.add_argument("--graph", help="only this graph's (ID or name)")
    backups.add_argument("--status", choices=BACKUP_STATUSES, help="only backups with this status")
    commands.add_parser("stats", help="print the counters")
    faults = commands.add_parser("faults", help="replace the fault rules ('' or --clear for none)")
    spec = faults.add_mutually_exclusive_group(required=True)
    spec.add_argument("spec", nargs="?", help="the --faults syntax, e.g. '504:scope=start:after=1:count=1'")
    spec.add_argument("--clear", action="store_true", help="remove every fault rule")
    fail = commands.add_parser("fail-next-job", help="make the next backup/stop/start job fail")
    fail.add_argument("--graph", help="only a job of this graph (ID or name)")
    fail.add_argument("--reason", help="its failReason")
    settings = commands.add_parser("settings", help="change settings (none given: print them)")
    settings.add_argument("--job-wait-state", choices=JOB_WAIT_STATES, help="what a job shows before it runs")
    settings.add_argument("--job-pending", type=float, help="seconds a new job shows that state")
    settings.add_argument("--graph-action-duration", type=float, help="seconds a stop/start runs")
    settings.add_argument("--backup-duration", type=float, help="seconds a new backup runs")
    settings.add_argument(
        "--export-duration", type=float, metavar="S", help="seconds a v2 export of a backup runs"
    )
    settings.add_argument(
        "--import-duration", type=float, metavar="S", help="seconds a v2 import of a backup runs"
    )
    settings.add_argument(
        "--link-ttl", type=float, metavar="S", help="seconds a new download link stays valid"
    )
    settings.add_argument(
        "--backup-quota", type=_quota, metavar="N", help="backups a graph may have (N, or 'none')"
    )
    settings.add_argument(
        "--project-backup-quota", type=_quota, metavar="N", help="backups the project may have (N, or 'none')"
    )
    commands.add_parser("exports", help="list the backups exported to OBS paths: [{backup_id, path}]")
    export = commands.add_parser("add-export", help="put a backup at an OBS path, as if exported there")
    export.add_argument("path", help="an OBS path, bucket/dir")
    export.add_argument("--backup", dest="backup_id", help="the backup's ID (default: a foreign backup)")
    commands.add_parser("expire-links", help="expire every download link issued so far")
    return parser


def commands() -> list[tuple[str, str]]:
    """``(name, help)`` of each command, for the emulator's own ``--help``."""
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return [(choice.dest, choice.help or "") for choice in action._choices_actions]


def _quota(text: str) -> int | str:
    """A quota argument: a non-negative integer, or 'none'."""
    if text.lower() == NO_QUOTA:
        return NO_QUOTA
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer or 'none', not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer or 'none', not {text!r}")
    return value


def _settings(args: argparse.Namespace) -> Any:
    """``settings``: change those given (both groups of settings), print them all."""
    url = args.url
    for name in (*SETTINGS, *BACKUP_SETTINGS):
        value = getattr(args, name)
        if isinstance(value, float) and value < 0:
            raise CtlError(f"--{name.replace('_', '-')} must not be negative")
    changes = {name: getattr(args, name) for name in BACKUP_SETTINGS if getattr(args, name) is not None}
    body = {name: None if value == NO_QUOTA else value for name, value in changes.items()}
    backup = (
        call(url, "PUT", "backup-settings", body, keep_none=True)
        if body
        else call(url, "GET", "backup-settings")
    )
    jobs = call(url, "PUT", "settings", {name: getattr(args, name) for name in SETTINGS})
    return {**jobs, **backup}


def run(args: argparse.Namespace) -> Any:
    """The control call a parsed command stands for."""
    url, command = args.url, args.command
    if command == "add-graph":
        return call(
            url, "POST", "graphs", {"name": args.name, "graph_id": args.graph_id, "status": args.status}
        )
    if command == "delete-graph":
        return call(url, "DELETE", f"graphs/{quote(args.graph, safe='')}")
    if command == "set-graph-status":
        body = {"status": args.status, "then": args.then, "after": args.after}
        return call(url, "PUT", f"graphs/{quote(args.graph, safe='')}/status", body)
    if command == "add-backup":
        fields = ("graph", "status", "method", "start", "duration", "size", "backup_id")
        return call(url, "POST", "backups", {name: getattr(args, name) for name in fields})
    if command == "set-status":
        return call(url, "PUT", f"backups/{quote(args.backup_id, safe='')}/status", {"status": args.status})
    if command == "graphs":
        counts = Counter(b["graphId"] for b in call(url, "GET", "backups"))
        graphs = [{**g, "backups": counts[g["id"]]} for g in call(url, "GET", "graphs")]
        return _table(graphs, {"name": "NAME", "id": "ID", "status": "STATUS", "backups": "BACKUPS"})
    if command == "backups":
        query = urlencode({k: v for k, v in (("graph", args.graph), ("status", args.status)) if v})
        columns = {"id": "ID", "name": "NAME", "status": "STATUS", "backupMethod": "METHOD"}
        columns.update(startTime="START (UTC)", endTime="END (UTC)", size="MB")
        return _table(call(url, "GET", f"backups?{query}"), columns)
    if command == "stats":
        return call(url, "GET", "stats")
    if command == "faults":
        return call(url, "PUT", "faults", {"spec": "" if args.clear else args.spec})
    if command == "settings":
        return _settings(args)
    if command == "exports":
        return call(url, "GET", "exports")
    if command == "add-export":
        return call(url, "POST", "exports", {"path": args.path, "backup_id": args.backup_id})
    if command == "expire-links":
        return call(url, "POST", "expire-links")
    return call(url, "POST", "fail-next-job", {"graph": args.graph, "reason": args.reason})


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = run(args)
        print(result if isinstance(result, str) else json.dumps(result))
    except CtlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
