"""Benchmark: 50 ``GesBackupEventTrigger`` asset watchers on 5 graphs, with and without shared streams.

Airflow 3.3's triggerer runs event triggers whose ``shared_stream_key()`` is equal on one poll loop
(``airflow.triggers.shared_stream.SharedStreamManager``) and fans each listing out to every
trigger's ``filter_shared_stream``. Without it (Airflow 3.1/3.2, or a trigger that opts out) each
trigger's ``run()`` polls alone. Both are run here in one process and one event loop, through the
trigger's own async API and Airflow's own ``SharedStreamManager``, against an in-process emulator:
5 graphs with 3 old successful backups each, 10 watchers per graph (by name; any method, ``auto``
or ``manual``), every one polling each ``--poll`` seconds.

Measured by the emulator's request counters over ``--intervals`` poll intervals after every
watcher's first listing: backup listings per poll interval (and the graph look-ups at start). Half
way, every graph gets a new successful backup of each method: each watcher must fire exactly the
ones it watches, in both modes (checked, not timed).

    python benchmarks/bench_event_streams.py [--graphs 5] [--per-graph 10] [--poll 2] [--intervals 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Row, emit, isolate_airflow

isolate_airflow()

METHODS = (None, "auto", "manual")


def near(measured: float, expected: int) -> bool:
    """Within 5%: the window's edges may catch a poll more or less than whole intervals hold."""
    return abs(measured - expected) <= 0.05 * expected


def build(graphs: list[str], per_graph: int, poll: float) -> list[Any]:
    from airflow_provider_ges.triggers.ges import GesBackupEventTrigger

    return [
        GesBackupEventTrigger(graph_name=g, backup_method=METHODS[i % len(METHODS)], poll_interval=poll)
        for g in graphs
        for i in range(per_graph)
    ]


async def measure(emu: Any, graphs: list[str], args: argparse.Namespace, shared: bool) -> dict[str, Any]:
    """One mode: start the watchers, wait for their baselines, count listings, fire, stop."""
    triggers = build(graphs, args.per_graph, args.poll)
    fired: list[list[str]] = [[] for _ in triggers]
    emu.reset_counters()
    manager = None
    if shared:
        from airflow.triggers.shared_stream import SharedStreamManager

        manager = SharedStreamManager()

    async def consume(i: int, trigger: Any) -> None:
        if manager is None:
            stream = trigger.run()
        else:
            key = trigger.shared_stream_key()
            stream = trigger.filter_shared_stream(manager.subscribe(trigger_id=i, trigger=trigger, key=key))
        try:
            async for event in stream:
                fired[i].append(event.payload["id"])
        finally:
            if manager is not None:
                await manager.unsubscribe(i, trigger.shared_stream_key())

    tasks = [asyncio.create_task(consume(i, t)) for i, t in enumerate(triggers)]
    pollers = len(graphs) if shared else len(triggers)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while emu.counters["list_graph_backups"] < pollers:  # every poller's first (baseline) listing
        assert loop.time() < deadline, "the watchers did not start"
        await asyncio.sleep(args.poll / 10)
    await asyncio.sleep(args.poll / 2)  # between two polls
    lookups = emu.counters["list_graphs"]
    start_count, t0 = emu.counters["list_graph_backups"], loop.time()
    await asyncio.sleep(args.poll * args.intervals / 2)
    new = {g: {m: emu.add_backup(g, status="success", method=m)["id"] for m in METHODS[1:]} for g in graphs}
    await asyncio.sleep(args.poll * args.intervals / 2)
    listings, elapsed = emu.counters["list_graph_backups"] - start_count, loop.time() - t0
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if manager is not None:
        await manager.stop_all()
    for trigger, ids in zip(triggers, fired, strict=True):
        mine = new[trigger.graph_name]
        want = sorted(mine.values()) if trigger.backup_method is None else [mine[trigger.backup_method]]
        assert sorted(ids) == want, (trigger, ids, want)
    return {
        "per_interval": listings / (elapsed / args.poll),
        "lookups": lookups,
        "events": sum(map(len, fired)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--graphs", type=int, default=5)
    parser.add_argument("--per-graph", type=int, default=10)
    parser.add_argument("--poll", type=float, default=2.0)
    parser.add_argument("--intervals", type=int, default=10)
    args = parser.parse_args()

    from airflow_provider_ges._compat import AIRFLOW_VERSION, HAS_SHARED_STREAMS
    from airflow_provider_ges.emulator import GesEmulator
    from airflow_provider_ges.triggers.ges import GesBackupEventTrigger

    GesBackupEventTrigger.commit_delay = 0.0  # no state store here: nothing to wait for
    watchers = args.graphs * args.per_graph
    with GesEmulator(graphs=0, backups=0) as emu:
        os.environ.update(emu.connection_env())
        graphs = [f"graph_{n}" for n in range(args.graphs)]
        for g in graphs:
            emu.add_graph(g)
            for _ in range(3):
                emu.add_backup(g, status="success")
        alone = asyncio.run(measure(emu, graphs, args, shared=False))
        shared = asyncio.run(measure(emu, graphs, args, shared=True)) if HAS_SHARED_STREAMS else None

    setup = f"{watchers} watchers on {args.graphs} graphs, poll {args.poll} s, Airflow {AIRFLOW_VERSION}"
    rows = [
        Row(
            "event-streams",
            "backup listings per poll interval, each trigger alone",
            f"{alone['per_interval']:.1f}",
            target=f"= {watchers} (one per watcher)",
            ok=near(alone["per_interval"], watchers),
        )
    ]
    notes = [setup, f"graph look-ups at start: {alone['lookups']} alone"]
    if shared is not None:
        ratio = alone["per_interval"] / shared["per_interval"]
        rows.insert(
            0,
            Row(
                "event-streams",
                "backup listings per poll interval, shared stream",
                f"{shared['per_interval']:.1f}",
                f"{alone['per_interval']:.1f}",
                f"{1 / ratio:.3f} ({ratio:.1f}x fewer)",
                f"= {args.graphs} (one per graph)",
                near(shared["per_interval"], args.graphs),
            ),
        )
        notes[1] += f", {shared['lookups']} shared"
        notes.append(
            f"events fired: {alone['events']} alone, {shared['events']} shared (checked per watcher)"
        )
    else:
        notes.append("no shared streams before Airflow 3.3: each watcher polls alone")
    emit(rows, notes)


if __name__ == "__main__":
    main()
