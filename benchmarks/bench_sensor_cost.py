"""Benchmark 4: the API requests one ``GesBackupSensor`` wait costs when the backup succeeds on the 10th look.

Counted on the emulator (its own process), per mode, with password (token) and AK/SK connections.
The real sensor code runs; only Airflow's scheduling around it is reasoned about, not run:

- poke: one task process calls ``poke()`` every interval on the same sensor (same hook, same
  session, the process-wide token cache) -> 10 looks in one process;
- reschedule: every look is a new try in a new worker process: a new sensor and an empty token
  memory cache each time (``TOKEN_CACHE.clear(files=False)`` stands for the fresh process, which finds
  the host's token file); each wait starts on a host with no token file yet;
- deferrable: ``execute()`` looks once in the worker, then defers (``TaskDeferred`` caught here);
  the trigger then runs in the triggerer process (memory cache cleared again: another process, same host)
  until its 9th look sees success; ``execute_complete()`` makes no request.

The backup is flipped to ``success`` (control channel) right before the 10th look. The sensor names
its graph by id, and (token auth) by name: then it looks the id up once per process (``GET /graphs``)
and reads only that graph's listing, 1 page here where the project's whole listing is 6.

    python benchmarks/bench_sensor_cost.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EmulatorProcess, Row, emit, isolate_airflow

isolate_airflow()

LOOKS = 10


Graph = dict[str, str]  # the sensor's graph_id=... or graph_name=...


def sensor(conn_id: str, graph: Graph, deferrable: bool = False) -> Any:
    from airflow_provider_ges.sensors.ges import GesBackupSensor

    newer_than = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat()
    return GesBackupSensor(
        task_id="wait_for_backup",
        **graph,
        newer_than=newer_than,
        ges_conn_id=conn_id,
        poke_interval=0.05,
        deferrable=deferrable,
    )


def poke_mode(emu: EmulatorProcess, conn_id: str, graph: Graph, new_process_per_look: bool) -> None:
    from airflow_provider_ges.auth import TOKEN_CACHE

    task = sensor(conn_id, graph)
    for look in range(1, LOOKS + 1):
        if look == LOOKS:
            emu.ask("flip")
        if new_process_per_look:  # reschedule: each try is a new process
            TOKEN_CACHE.clear(files=False)
            task = sensor(conn_id, graph)
        done = bool(task.poke({}))
        assert done == (look == LOOKS), f"look {look}: done={done}"


def deferrable_mode(emu: EmulatorProcess, conn_id: str, graph: Graph) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    from airflow_provider_ges.auth import TOKEN_CACHE
    from airflow_provider_ges.hooks.ges import GesAsyncHook
    from airflow_provider_ges.shared import SHARED

    task = sensor(conn_id, graph, deferrable=True)
    try:
        task.execute({})  # look 1, in the worker
    except TaskDeferred as deferred:
        trigger = deferred.trigger
    else:
        raise AssertionError("the sensor did not defer")
    TOKEN_CACHE.clear(files=False)  # the triggerer is another process: no token, no shared listings yet
    SHARED.clear()
    looks = 1
    look = GesAsyncHook.look

    async def counting_look(hook: GesAsyncHook, watch: Any) -> Any:  # the trigger's look, counted
        nonlocal looks
        looks += 1
        if looks == LOOKS:
            await asyncio.to_thread(emu.ask, "flip")
        return await look(hook, watch)

    GesAsyncHook.look = counting_look  # type: ignore[method-assign]

    async def run() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("no event")

    try:
        event = asyncio.run(asyncio.wait_for(run(), timeout=60))
    finally:
        GesAsyncHook.look = look  # type: ignore[method-assign]
    assert event["status"] == "success" and looks == LOOKS, (event, looks)
    task.execute_complete({}, event)  # no request: the event carries the backup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="same run (it is short already)")
    parser.parse_args()
    rows: list[Row] = []
    with EmulatorProcess("--graphs", "20", "--backups", "600", "--pending", "1") as emu:
        os.environ.update(emu.conn_env("password", "ges_bench_token"))
        os.environ.update(emu.conn_env("aksk", "ges_bench_aksk"))
        from airflow_provider_ges.auth import TOKEN_CACHE
        from airflow_provider_ges.hooks.ges import GesHook

        graph_id = emu.info["pending"][0][0]
        name = next(g.name for g in GesHook("ges_bench_aksk").iter_graphs() if g.id == graph_id)
        runs = [  # auth, connection, how the sensor names the graph, look-ups per process
            ("token", "ges_bench_token", {"graph_id": graph_id}, 0),
            ("AK/SK", "ges_bench_aksk", {"graph_id": graph_id}, 0),
            ("token", "ges_bench_token", {"graph_name": str(name)}, 1),
            ("AK/SK", "ges_bench_aksk", {"graph_name": str(name)}, 1),
        ]
        for auth, conn_id, graph, lookups in runs:
            tokens = 1 if auth == "token" else 0  # per host: its processes share the token file
            per_look = partial(poke_mode, emu, conn_id, graph)
            modes = {  # mode: (one wait, the look-up and token requests it should make)
                "poke": (partial(per_look, False), lookups, tokens),
                "reschedule": (partial(per_look, True), LOOKS * lookups, tokens),
                # the worker finds the id and hands it to the trigger: no look-up in the triggerer
                "deferrable": (partial(deferrable_mode, emu, conn_id, graph), lookups, tokens),
            }
            for mode, (wait, lookups_expected, tokens_expected) in modes.items():
                TOKEN_CACHE.clear()  # every wait starts on a host with no token yet
                emu.ask("unflip")
                emu.ask("reset")
                wait()
                c = emu.ask("counters")
                got = (c["list_graph_backups"] + c["list_backups"], c["list_graphs"], c["create_token"])
                rows.append(
                    Row(
                        "4 sensor wait",
                        f"{mode}, {auth}, {next(iter(graph))}: list + graph look-up + token requests"
                        f" for {LOOKS} looks",
                        " + ".join(map(str, got)),
                        target=f"{LOOKS} + {lookups_expected} + {tokens_expected}",
                        ok=got == (LOOKS, lookups_expected, tokens_expected),
                        goal="4 requests per look",
                    )
                )
    emit(
        rows,
        [
            "token auth pays one IAM call per host: every try's process (reschedule) and the triggerer"
            " (deferrable) find the token in the host's token file (GES_TOKEN_CACHE_DIR); they paid 10"
            " and 2 before it",
            "graph_name: without the look-up every look would list the whole project (600 backups:"
            " 6 pages of 100) instead of the graph's own 1 page",
        ],
    )


if __name__ == "__main__":
    main()
