"""The emulator in its own process, with a control channel on stdin/stdout (one JSON line per reply).

    python benchmarks/_emulator_server.py [--graphs N] [--backups N] [--pending N] [--faults SPEC]
        [--backlog N]

On start it prints ``{"url", "connections": {"password", "aksk"}, "pending": [[graph_id, backup_id,
graph_name]...]}``:
``--pending N`` adds, to each of the first N graphs, one backup started now and still ``backing_up``.
``--backlog N`` sets the listen backlog (the stdlib's ``socketserver`` default, which the emulator keeps,
is 5: a thousand clients connecting at once overflow it and wait for SYN retransmits). Then it answers
commands, one per line:

- ``counters``: the emulator's counters, plus ``connections`` (accepted), ``threads_peak`` (most
  threads seen, sampled every 20 ms), ``threads`` (now) and ``rss_mb`` of this process;
- ``reset``: zero the counters and the thread peak;
- ``flip``: set every pending backup to ``success``; replies ``{"start", "end"}`` (``time.time()``);
- ``unflip``: set them back to ``backing_up``;
- end of input: stop.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import rss_mb

from airflow_provider_ges.emulator import GesEmulator, server


class ThreadPeak:
    """Samples ``threading.active_count()`` (each keep-alive connection holds one server thread)."""

    def __init__(self) -> None:
        self.peak = threading.active_count()
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True, name="thread-peak").start()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, threading.active_count())

    def reset(self) -> None:
        self.peak = threading.active_count()


def count_connections() -> list[int]:
    """Count the connections the server accepts (wraps the stdlib's ``TCPServer.get_request``)."""
    accepted = [0]
    get_request = server._Server.get_request

    def counting(self: Any) -> Any:
        accepted[0] += 1
        return get_request(self)

    server._Server.get_request = counting  # type: ignore[method-assign, unused-ignore]
    return accepted


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--graphs", type=int, default=5)
    parser.add_argument("--backups", type=int, default=100)
    parser.add_argument("--pending", type=int, default=0)
    parser.add_argument("--faults", default="")
    parser.add_argument("--backlog", type=int, help="listen backlog (the emulator's default is 5)")
    args = parser.parse_args()
    accepted = count_connections()
    if args.backlog:  # a benchmark-side setting of the stdlib server the emulator uses
        server._Server.request_queue_size = args.backlog
    emu = GesEmulator(graphs=args.graphs, backups=args.backups, seed=7, faults=args.faults or None)
    pending = [
        (graph["id"], emu.add_backup(graph["id"], status="backing_up", duration=0)["id"], graph["name"])
        for graph in emu.graphs()[: args.pending]
    ]
    peak = ThreadPeak()

    def reply(payload: dict[str, Any]) -> None:
        print(json.dumps(payload), flush=True)

    with emu:
        reply(
            {
                "url": emu.url,
                "connections": {"password": emu.connection(), "aksk": emu.connection("aksk")},
                "pending": pending,
            }
        )
        for line in sys.stdin:
            command = line.strip()
            if command == "counters":
                now = {
                    "threads_peak": peak.peak,
                    "threads": threading.active_count(),
                    "rss_mb": rss_mb(),
                    "connections": accepted[0],
                }
                reply({**emu.counters, **now})
            elif command == "reset":
                emu.reset_counters()
                peak.reset()
                accepted[0] = 0
                reply({})
            elif command == "flip":
                start = time.time()
                for _, backup_id, _ in pending:
                    emu.set_backup_status(backup_id, "success")
                reply({"start": start, "end": time.time()})
            elif command == "unflip":
                for _, backup_id, _ in pending:
                    emu.set_backup_status(backup_id, "backing_up")
                reply({})
            else:
                reply({"error": f"unknown command {command!r}"})


if __name__ == "__main__":
    main()
