"""Benchmark 4: the API requests one ``GesBackupSensor`` wait costs when the backup succeeds on the 10th look.

Counted on the emulator (its own process), per mode, with password (token) and AK/SK connections.
The real sensor code runs; only Airflow's scheduling around it is reasoned about, not run:

- poke: one task process calls ``poke()`` every interval on the same sensor (same hook, same
  session, the process-wide token cache) -> 10 looks in one process;
- reschedule: every look is a new try in a new worker process: a new sensor and an empty token
  cache each time (``TOKEN_CACHE.clear()`` stands for the fresh process);
- deferrable: ``execute()`` looks once in the worker, then defers (``TaskDeferred`` caught here);
  the trigger then runs in the triggerer process (token cache cleared again: another process)
  until its 9th look sees success; ``execute_complete()`` makes no request.

The backup is flipped to ``success`` (control channel) right before the 10th look.

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


def sensor(conn_id: str, graph_id: str, deferrable: bool = False) -> Any:
    from airflow_provider_ges.sensors.ges import GesBackupSensor

    newer_than = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat()
    return GesBackupSensor(
        task_id="wait_for_backup",
        graph_id=graph_id,
        newer_than=newer_than,
        ges_conn_id=conn_id,
        poke_interval=0.05,
        deferrable=deferrable,
    )


def poke_mode(emu: EmulatorProcess, conn_id: str, graph_id: str, new_process_per_look: bool) -> None:
    from airflow_provider_ges.auth import TOKEN_CACHE

    task = sensor(conn_id, graph_id)
    for look in range(1, LOOKS + 1):
        if look == LOOKS:
            emu.ask("flip")
        if new_process_per_look:  # reschedule: each try is a new process
            TOKEN_CACHE.clear()
            task = sensor(conn_id, graph_id)
        done = bool(task.poke({}))
        assert done == (look == LOOKS), f"look {look}: done={done}"


def deferrable_mode(emu: EmulatorProcess, conn_id: str, graph_id: str) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    from airflow_provider_ges.auth import TOKEN_CACHE

    task = sensor(conn_id, graph_id, deferrable=True)
    try:
        task.execute({})  # look 1, in the worker
    except TaskDeferred as deferred:
        trigger = deferred.trigger
    else:
        raise AssertionError("the sensor did not defer")
    TOKEN_CACHE.clear()  # the triggerer is another process
    looks = 1
    check = trigger.check

    async def counting_check(hook: Any) -> Any:
        nonlocal looks
        looks += 1
        if looks == LOOKS:
            await asyncio.to_thread(emu.ask, "flip")
        return await check(hook)

    trigger.check = counting_check

    async def run() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("no event")

    event = asyncio.run(asyncio.wait_for(run(), timeout=60))
    assert event["status"] == "success" and looks == LOOKS, (event, looks)
    task.execute_complete({}, event)  # no request: the event carries the backup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="same run (it is short already)")
    parser.parse_args()
    rows: list[Row] = []
    with EmulatorProcess("--graphs", "3", "--backups", "30", "--pending", "1") as emu:
        os.environ.update(emu.conn_env("password", "ges_bench_token"))
        os.environ.update(emu.conn_env("aksk", "ges_bench_aksk"))
        graph_id = emu.info["pending"][0][0]
        for auth, conn_id in (("token", "ges_bench_token"), ("AK/SK", "ges_bench_aksk")):
            tokens_per_process = 1 if auth == "token" else 0
            modes = {  # mode: (one wait, the token requests it should make)
                "poke": (partial(poke_mode, emu, conn_id, graph_id, False), tokens_per_process),
                "reschedule": (partial(poke_mode, emu, conn_id, graph_id, True), LOOKS * tokens_per_process),
                "deferrable": (partial(deferrable_mode, emu, conn_id, graph_id), 2 * tokens_per_process),
            }
            for mode, (wait, tokens_expected) in modes.items():
                from airflow_provider_ges.auth import TOKEN_CACHE

                TOKEN_CACHE.clear()  # every wait starts in a new worker process
                emu.ask("unflip")
                emu.ask("reset")
                wait()
                c = emu.ask("counters")
                lists, tokens = c["list_graph_backups"] + c["list_backups"], c["create_token"]
                rows.append(
                    Row(
                        "4 sensor wait",
                        f"{mode}, {auth}: list + token requests for {LOOKS} looks",
                        f"{lists} + {tokens}",
                        target=f"{LOOKS} + {tokens_expected}",
                        ok=(lists, tokens) == (LOOKS, tokens_expected),
                    )
                )
    emit(
        rows,
        [
            "reschedule with token auth pays one IAM call per look (each try is a new process, the cache is"
            " per process); deferrable pays one in the worker and one in the triggerer (none there when"
            " another trigger of the same connection already holds a token)",
        ],
    )


if __name__ == "__main__":
    main()
