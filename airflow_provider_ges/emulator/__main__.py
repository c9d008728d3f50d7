"""``python -m airflow_provider_ges.emulator``: serve a local GES + IAM until SIGINT/SIGTERM.

Prints the Airflow connection to use as an ``export AIRFLOW_CONN_GES_DEFAULT='...'`` line to paste (with
``--control`` also ``export GES_EMULATOR_URL=...`` for ``ctl``; the other lines start with ``#``), so
``eval "$(grep ^export ...)"``-style use works. ``... emulator ctl ...`` steers a running one
instead (see :mod:`.ctl`). A port it cannot listen on is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from . import ctl
from . import defaults as d
from .faults import Hostile, parse_faults
from .server import GesEmulator
from .store import JOB_WAIT_STATES


def build_parser() -> argparse.ArgumentParser:
    commands = "\n".join(f"  {name:<17} {text}" for name, text in ctl.commands())
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_ges.emulator",
        description="Local Huawei Cloud GES + IAM emulator (fake credentials, loopback by default).",
        epilog=f"steer a running emulator (started with --control):\n  python -m {__package__} ctl"
        f" [--url URL] COMMAND ...   (ctl COMMAND --help for its options)\n{commands}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--host", default=d.DEFAULT_HOST, help="address to listen on (default %(default)s)")
    add("--port", type=int, default=d.DEFAULT_PORT, help="port; 0 picks a free one (default %(default)s)")
    add("--graphs", type=int, default=d.DEFAULT_GRAPHS, help="graphs to generate (default %(default)s)")
    add(
        "--graph-names",
        default="movies",
        help="comma-separated names of the first graphs (default %(default)s)",
    )
    add("--backups", type=int, default=d.DEFAULT_BACKUPS, help="backups to generate (default %(default)s)")
    add("--seed", type=int, default=d.DEFAULT_SEED, help="seed for data and random faults")
    add("--data", metavar="FILE", help="JSON list-backups response or list of backups to serve instead")
    add("--faults", metavar="SPEC", default="", help='e.g. "429:every=5:retry_after=1,drop:every=13"')
    add("--token-ttl", type=float, default=d.DEFAULT_TOKEN_TTL, help="token lifetime, seconds")
    add("--backup-duration", type=float, default=d.DEFAULT_BACKUP_DURATION, help="seconds a new backup runs")
    add("--backup-outcome", choices=("success", "failed"), default="success", help="how new backups end")
    add("--backup-quota", type=int, metavar="N", help="backups a graph may have before create is refused")
    add(
        "--graph-action-duration",
        type=float,
        default=d.DEFAULT_GRAPH_ACTION_DURATION,
        help="seconds a stop/start runs",
    )
    add(
        "--export-duration",
        type=float,
        default=d.DEFAULT_EXPORT_DURATION,
        metavar="S",
        help="seconds a v2 export runs",
    )
    add(
        "--import-duration",
        type=float,
        default=d.DEFAULT_IMPORT_DURATION,
        metavar="S",
        help="seconds a v2 import runs",
    )
    add(
        "--link-ttl",
        type=float,
        default=d.DEFAULT_LINK_TTL,
        metavar="S",
        help="seconds a download link is valid",
    )
    add(
        "--project-backup-quota",
        type=int,
        metavar="N",
        help="backups the project may have before create or import is refused",
    )
    add("--job-pending", type=float, default=0.0, metavar="S", help="seconds a new job waits before running")
    add("--job-wait-state", choices=JOB_WAIT_STATES, default="pending", help="what a waiting job shows")
    add("--control", action="store_true", help="serve the control API (/__emulator__/..., loopback only)")
    add("--max-limit", type=int, metavar="N", help="refuse list calls with a limit over N")
    add("--user", default=d.DEFAULT_USER)
    add("--password", default=d.DEFAULT_PASSWORD)
    add("--domain", default=d.DEFAULT_DOMAIN, help="account (IAM domain) name")
    add("--project-id", default=d.DEFAULT_PROJECT_ID)
    add("--region", default=d.DEFAULT_REGION)
    add("--ak", default=d.DEFAULT_AK)
    add("--sk", default=d.DEFAULT_SK)
    add("--conn-id", default="ges_default", help="Airflow connection id to print (default %(default)s)")
    add("--ignore-offset", action="store_true", help="hostile: always serve the first page")
    add("--inflate-count", type=int, default=0, metavar="N", help="hostile: report backupCount N too high")
    add("--grow-count", action="store_true", help="hostile: backupCount grows by one on every list call")
    add("--oversize-pages", type=int, default=0, metavar="N", help="hostile: up to N items more than limit")
    add("--verbose", action="store_true", help="log every request to stderr")
    return parser


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["ctl"]:
        return ctl.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        faults = parse_faults(args.faults, args.seed)
    except ValueError as exc:
        parser.error(f"--faults: {exc}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)
    emulator = GesEmulator(
        graphs=args.graphs,
        backups=args.backups,
        seed=args.seed,
        data=args.data,
        faults=faults,
        hostile=Hostile(args.ignore_offset, args.inflate_count, args.grow_count, args.oversize_pages),
        token_ttl=args.token_ttl,
        backup_duration=args.backup_duration,
        backup_outcome=args.backup_outcome,
        user=args.user,
        password=args.password,
        domain=args.domain,
        project_id=args.project_id,
        region=args.region,
        ak=args.ak,
        sk=args.sk,
        host=args.host,
        port=args.port,
        max_limit=args.max_limit,
        backup_quota=args.backup_quota,
        graph_action_duration=args.graph_action_duration,
        job_pending=args.job_pending,
        job_wait_state=args.job_wait_state,
        export_duration=args.export_duration,
        import_duration=args.import_duration,
        link_ttl=args.link_ttl,
        project_backup_quota=args.project_backup_quota,
        graph_names=[name for name in args.graph_names.split(",") if name],
        control=args.control,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        emulator.start()
    except OSError as exc:
        problem = (
            f"port {args.port} on {args.host} is in use (another server listens there)"
            if exc.errno == errno.EADDRINUSE
            else f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc})"
        )
        print(f"error: {problem}: use --port 0 for any free port, or --port N", file=sys.stderr)
        return 2
    try:
        export = f"export AIRFLOW_CONN_{args.conn_id.upper()}"
        graphs = [g["name"] for g in emulator.graphs()]
        names = ", ".join(graphs[:5]) + (f" and {len(graphs) - 5} more" if len(graphs) > 5 else "")
        print(
            f"# GES emulator on {emulator.url} (port {emulator.port}): project {emulator.project_id}, "
            f"{_count(len(graphs), 'graph')}{f' ({names})' if graphs else ''},"
            f" {_count(len(emulator.backups()), 'backup')}."
            " Stop with Ctrl-C."
        )
        if args.control:
            print("# Paste the export lines in the shell that runs Airflow (and ctl):")
        else:
            print("# Paste the export line in the shell that runs Airflow:")
        print(f"{export}={shlex.quote(json.dumps(emulator.connection()))}")
        if args.control:
            print(f"export GES_EMULATOR_URL={emulator.url}  # for: python -m {__package__} ctl --help")
        print(f"# AK/SK instead: {export}={shlex.quote(json.dumps(emulator.connection('aksk')))}")
        sys.stdout.flush()
        stop.wait()
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
