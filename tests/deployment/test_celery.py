"""The provider on CeleryExecutor (tests/deployment/stack.py's Celery shape): a Redis broker, two Celery
workers (4 slots each), two triggerers, the API server, scheduler and dag-processor on PostgreSQL (also
the Celery result backend), against the emulator. DAGs: tests/deployment/dags/ges_celery_fleets.py.

The tests run in order on one deployment: asset watchers start first (they register when their DAG is
parsed unpaused), then 200 deferred gates spread over both triggerers, one triggerer is SIGKILLed
mid-wait (gates and watchers move to the other), then the gates on the workers (poke, reschedule, a
30-gate reschedule fleet, the token counts), and last the secret grep over every file written.

A monitor thread samples the metadata DB every 0.25 s for the whole module: each live triggerer's
heartbeat (its longest gap) and each trigger's triggerer (a trigger moved away from a triggerer that
was not killed is a takeover from a live one). The emulator's listings are recorded per graph.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_ges._compat import HAS_ASSET_STATE_STORE
from airflow_provider_ges.triggers.ges import GesBackupEventTrigger
from tests.deployment.stack import Deployment, say, wait_for

DEPLOYMENT_EXECUTOR = "CeleryExecutor"
DEPLOYMENT_WORKERS = 2
DEPLOYMENT_WORKER_CONCURRENCY = 4
DEPLOYMENT_TRIGGERERS = 2
#: Heartbeat every second; a triggerer whose heartbeat is 30 s stale loses its triggers to the other.
#: Not less: a triggerer's first asset-state-store read (3.3) stalls its main loop, heartbeat included,
#: about 6 s (a hand try; measured here: "longest heartbeat gap of a live triggerer"); with an 8 s
#: threshold the other triggerer took a watcher from a live one, and with 15 s, on a loaded 2-core machine
#: (load 9), it took 60 triggers from a live one while the 200 gates deferred.
DEPLOYMENT_CONFIG = {
    "SCHEDULER__USE_JOB_SCHEDULE": "True",  # asset-triggered runs (every DAG here has schedule=None)
    "TRIGGERER__JOB_HEARTBEAT_SEC": "1",
    "TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "30",
}
THRESHOLD = 30.0
SENSOR = "wait_for_backup"
DEFERRED = "ges_celery_deferred_fleet"
RESCHEDULE = "ges_celery_reschedule_fleet"
DEFERRED_GRAPHS = [f"celery_d{i}" for i in range(10)]
RESCHEDULE_GRAPHS = [f"celery_r{i}" for i in range(10)]
ASSET_GRAPHS = [f"celery_a{i}" for i in range(4)]
POLL = 3.0  # the deferred fleet's poke interval
SETTLE = GesBackupEventTrigger.commit_delay + 4.0

#: Figures measured, printed at the end of the module (docs/benchmarks.md "Celery deployment").
FIGURES: dict[str, Any] = {}


def now() -> datetime:
    return datetime.now(timezone.utc)


def backing_up(d: Deployment, graph: str) -> str:
    return str(d.emulator.add_backup(graph, status="backing_up", start=now())["id"])


class Monitor:
    """Samples the DB (triggerers' heartbeats, triggers' triggerers) and records GES listings."""

    def __init__(self, d: Deployment) -> None:
        self.d = d
        self.stop = threading.Event()
        self.killed: set[int] = set()  # triggerer job ids the tests killed
        self.gaps: dict[int, float] = defaultdict(float)  # job id -> longest heartbeat gap (s)
        self.takeovers: list[tuple[int, int, int]] = []  # (trigger, from live job, to job)
        self.listings: list[tuple[float, str]] = []  # (monotonic, graph id)
        self.errors: list[str] = []
        api = d.emulator._api
        handle = api.handle

        def recording(req: Any) -> Any:
            found = re.search(r"/graphs/([^/]+)/backups$", req.path)
            if req.method == "GET" and found:
                self.listings.append((time.monotonic(), found.group(1)))
            return handle(req)

        api.handle = recording  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        beats: dict[int, Any] = {}
        owners: dict[int, int | None] = {}
        while not self.stop.wait(0.25):
            try:
                jobs = self.d.sql(
                    "SELECT id, latest_heartbeat FROM job "
                    "WHERE job_type = 'TriggererJob' AND end_date IS NULL"
                )
                triggers = self.d.sql("SELECT id, triggerer_id FROM trigger")
            except Exception as err:  # the DB going away at teardown
                self.errors.append(repr(err))
                continue
            for job_id, beat in jobs:
                if job_id in beats and beat != beats[job_id] and job_id not in self.killed:
                    self.gaps[job_id] = max(self.gaps[job_id], (beat - beats[job_id]).total_seconds())
                beats[job_id] = beat
            for trigger_id, job_id in triggers:
                old = owners.get(trigger_id)
                if old is not None and job_id != old and old not in self.killed:
                    self.takeovers.append((trigger_id, old, job_id))
                owners[trigger_id] = job_id

    def live_triggerer_jobs(self) -> list[int]:
        rows = self.d.sql(
            "SELECT id FROM job WHERE job_type = 'TriggererJob' AND end_date IS NULL "
            "AND latest_heartbeat > now() - interval '5 seconds' ORDER BY id"
        )
        return [r[0] for r in rows]


@pytest.fixture(scope="module")
def monitor(airflow_deployment: Deployment) -> Iterator[Monitor]:
    m = Monitor(airflow_deployment)
    yield m
    m.stop.set()
    m.thread.join(5)


@pytest.fixture(scope="module")
def graphs(airflow_deployment: Deployment) -> dict[str, str]:
    """Every graph the module uses, by name -> id; the asset DAGs unpaused (their watchers start)."""
    d = airflow_deployment
    ids = {g: str(d.emulator.add_graph(g)["id"]) for g in DEFERRED_GRAPHS + RESCHEDULE_GRAPHS + ASSET_GRAPHS}
    for graph in ASSET_GRAPHS:
        d.unpause(f"ges_celery_asset_{graph}")
    return ids


def trigger_owners(d: Deployment, dag_id: str, run_id: str) -> dict[int, int]:
    """map index -> the triggerer job id that holds its trigger (deferred tasks only)."""
    rows = d.sql(
        "SELECT ti.map_index, t.triggerer_id FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id "
        "WHERE ti.dag_id = %s AND ti.run_id = %s AND t.triggerer_id IS NOT NULL",
        dag_id,
        run_id,
    )
    return dict(rows)


def watcher_owners(d: Deployment) -> dict[str, int]:
    rows = d.sql(
        "SELECT a.name, t.triggerer_id FROM asset_watcher w JOIN asset a ON a.id = w.asset_id "
        "JOIN trigger t ON t.id = w.trigger_id WHERE a.name LIKE 'ges_backup_celery_a%%'"
    )
    return {name: job for name, job in rows if job is not None}


def asset_runs(d: Deployment, graph: str) -> list[dict[str, Any]]:
    return d.runs(f"ges_celery_asset_{graph}")


def asset_backup_ids(d: Deployment, graph: str) -> list[str]:
    """Every backup id a finished run of the graph's asset DAG saw (fails on a failed run)."""
    dag_id = f"ges_celery_asset_{graph}"
    seen: list[str] = []
    for run in asset_runs(d, graph):
        assert run["state"] == "success", (run, d.task_log(dag_id, run["dag_run_id"], "run_etl"))
        seen += d.xcom(dag_id, run["dag_run_id"], "run_etl")
    return seen


def wait_asset_runs(d: Deployment, expected: dict[str, list[str]], timeout: float = 120.0) -> None:
    """Each graph's asset DAG ran for exactly these backups, all finished."""

    def done() -> bool:
        d.check_alive()
        for graph, ids in expected.items():
            runs = asset_runs(d, graph)
            if any(r["state"] not in ("success", "failed") for r in runs):
                return False
            seen = asset_backup_ids(d, graph)
            assert len(seen) == len(set(seen)) and set(seen) <= set(ids), (graph, seen, ids)
            if set(seen) != set(ids):
                return False
        return True

    wait_for(f"asset runs for {expected}", done, timeout, 1.0)


def worker_task_starts(d: Deployment) -> dict[str, int]:
    """Celery tasks each worker received (each an Airflow task try's start or resumption)."""
    return {
        name: d.processes[name].log.read_text(errors="replace").count("Task execute_workload[")
        // 2  # "received" and "succeeded" lines
        for name in d.worker_names
    }


def rss_mb(d: Deployment) -> dict[str, float]:
    return {name: round(sum(p.rss().values()) / 1024, 1) for name, p in d.triggerers.items()}


# --- asset watchers and 200 deferred gates on two triggerers, one SIGKILLed mid-wait -------------------


@pytest.fixture(scope="module")
def fleet(airflow_deployment: Deployment, graphs: dict[str, str], monitor: Monitor) -> dict[str, Any]:
    """The 200 deferred gates, triggered and all deferred (the watchers started meanwhile)."""
    d = airflow_deployment
    state: dict[str, Any] = {"rss before": rss_mb(d), "starts before": worker_task_starts(d)}
    t0 = time.monotonic()
    state["run"] = run_id = d.trigger(DEFERRED)
    state["backups"] = {g: backing_up(d, g) for g in DEFERRED_GRAPHS}

    def all_deferred() -> bool:
        d.check_alive()
        states = [ti["state"] for ti in d.task_instances(DEFERRED, run_id) if ti["task_id"] == SENSOR]
        assert not {"failed", "up_for_retry", "success"} & set(states), Counter(states)
        return len(states) == 200 and all(s == "deferred" for s in states)

    wait_for("200 deferred gates", all_deferred, timeout=420, interval=2)
    state["deferred after"] = time.monotonic() - t0
    d.wait_released(DEFERRED, run_id, SENSOR, list(range(200)), timeout=120)
    wait_for("every gate's trigger assigned", lambda: len(trigger_owners(d, DEFERRED, run_id)) == 200, 60)
    wait_for("every watcher assigned", lambda: len(watcher_owners(d)) == len(ASSET_GRAPHS), 120, 1)
    return state


def test_asset_watchers_fire_once_per_new_success(
    airflow_deployment: Deployment, fleet: dict[str, Any], monitor: Monitor
) -> None:
    """Four watchers (on whichever triggerer took them): one new success per graph starts one run each."""
    d = airflow_deployment
    owners = watcher_owners(d)
    fleet["watchers"] = {name.removeprefix("ges_backup_"): job for name, job in owners.items()}
    fleet["expected"] = {g: [d.emulator.add_backup(g, status="success")["id"]] for g in ASSET_GRAPHS}
    wait_asset_runs(d, fleet["expected"])
    time.sleep(SETTLE)  # the watermarks are stored, and no repeat follows
    wait_asset_runs(d, fleet["expected"])
    FIGURES["watchers per triggerer job"] = dict(Counter(owners.values()))


def test_200_deferred_gates_spread_over_both_triggerers(
    airflow_deployment: Deployment, fleet: dict[str, Any], monitor: Monitor
) -> None:
    """Both triggerers hold some of the 200 triggers; each polls a graph at most once per interval
    (its triggers share one listing per graph), so at most 2 listings per graph per interval."""
    d = airflow_deployment
    owners = trigger_owners(d, DEFERRED, fleet["run"])
    split = Counter(owners.values())
    assert len(split) == 2 and min(split.values()) > 0, split
    fleet["owners"] = owners
    since = time.monotonic()
    time.sleep(6 * POLL)
    window = [(t, g) for t, g in monitor.listings if t >= since]
    fleet_ids = {d.emulator.find_graph(g)["id"] for g in DEFERRED_GRAPHS}  # type: ignore[index]
    per_graph = Counter(g for _, g in window if g in fleet_ids)  # not the watchers' graphs (1 s polls)
    assert set(per_graph) == fleet_ids, per_graph
    intervals = 6
    # each live triggerer lists each of its graphs once an interval (+1 for a window's edges)
    assert max(per_graph.values()) <= 2 * (intervals + 1), per_graph
    FIGURES["200 gates"] = {
        "trigger -> 200 deferred (s)": round(fleet["deferred after"], 1),
        "triggers per triggerer job": dict(split),
        "listings per graph per poll interval (max, mean)": (
            round(max(per_graph.values()) / intervals, 2),
            round(sum(per_graph.values()) / len(per_graph) / intervals, 2),
        ),
        "triggerer RSS MB before / 200 waiting": (fleet["rss before"], rss_mb(d)),
    }


def test_sigkill_of_one_triggerer_moves_its_gates_and_watchers(
    airflow_deployment: Deployment, fleet: dict[str, Any], monitor: Monitor, request: pytest.FixtureRequest
) -> None:
    """SIGKILL the triggerer that runs the asset watchers (and some gates) mid-wait: its gates and
    watchers move to the other once its heartbeat is 30 s stale; then every backup succeeds and all
    200 gates finish on try 1, none lost, none twice. A backup that succeeds during the failover starts
    one run (3.3: the watermark is in the asset state store; 3.1/3.2: memory only, the moved watcher's
    first poll is a new baseline, docs/events.md)."""
    d = airflow_deployment
    run_id = fleet["run"]
    owners = fleet["owners"]
    live = monitor.live_triggerer_jobs()
    assert len(live) == 2, live
    # the process that runs the watchers: its output says "trigger ID <id> starting" for their triggers
    ((watcher_trigger,),) = d.sql(
        "SELECT w.trigger_id FROM asset_watcher w JOIN asset a ON a.id = w.asset_id WHERE a.name = %s",
        f"ges_backup_{ASSET_GRAPHS[0]}",
    )
    victim = next(
        name
        for name, process in d.triggerers.items()
        if f"trigger ID {watcher_trigger} starting" in process.log.read_text(errors="replace")
    )
    # and its job: the one whose heartbeat stops when it dies
    before = {j: d.sql("SELECT latest_heartbeat FROM job WHERE id = %s", j)[0][0] for j in live}
    t_kill, wall_kill = time.monotonic(), time.time()
    d.kill_triggerer(signal.SIGKILL, name=victim)
    during = {g: str(d.emulator.add_backup(g, status="success")["id"]) for g in ASSET_GRAPHS}
    time.sleep(3)
    after = {j: d.sql("SELECT latest_heartbeat FROM job WHERE id = %s", j)[0][0] for j in live}
    (killed,) = [j for j in live if after[j] == before[j]]
    monitor.killed.add(killed)
    (survivor,) = [j for j in live if j != killed]
    moved = sorted(i for i, j in owners.items() if j == killed)
    assert moved, owners
    assert fleet["watchers"][ASSET_GRAPHS[0]] == killed, (fleet["watchers"], killed)

    wait_for(
        "the killed triggerer's triggers on the survivor",
        lambda: set(trigger_owners(d, DEFERRED, run_id).values()) == {survivor},
        THRESHOLD + 60,
        0.2,
    )
    t_moved = time.monotonic()
    logs = d.home / "logs" / f"dag_id={DEFERRED}" / f"run_id={run_id}" / f"task_id={SENSOR}"

    def first_look() -> float | None:
        stamps = []
        for i in moved:
            for path in logs.glob(f"map_index={i}/attempt=1.log.trigger.{survivor}.log"):
                found = re.search(r'"timestamp":"([^"]+)"', path.read_text(errors="replace"))
                if found:
                    stamps.append(datetime.fromisoformat(found.group(1).replace("Z", "+00:00")))
        return min(stamps).timestamp() if stamps else None

    first = wait_for("the survivor's first look at a moved gate", first_look, 60, 0.5)
    failover = first - wall_kill
    for backup_id in fleet["backups"].values():
        d.emulator.set_backup_status(backup_id, "success")
    t_flip = time.monotonic()
    state = d.wait_run(DEFERRED, run_id, timeout=420)
    t_done = time.monotonic()
    states = d.states(DEFERRED, run_id)
    assert state == "success", Counter(states.values())
    assert all(v == ("success", 1) for v in states.values()), Counter(states.values())
    for i in moved[:20]:  # a sample: the moved gate's trigger ran on the killed triggerer, then the survivor
        files = sorted(p.name for p in logs.glob(f"map_index={i}/attempt=1.log.trigger.*.log"))
        assert files == sorted(f"attempt=1.log.trigger.{j}.log" for j in (killed, survivor)), files
    gaps = dict(monitor.gaps)
    assert not monitor.takeovers, f"triggers taken from a live triggerer: {monitor.takeovers}; gaps {gaps}"

    expected = {g: [*fleet["expected"][g], during[g]] for g in ASSET_GRAPHS}
    if HAS_ASSET_STATE_STORE:
        wait_asset_runs(d, expected)
    else:  # the moved watchers' first polls took `during` as their baseline: no run for it
        for g in (g for g in ASSET_GRAPHS if fleet["watchers"][g] == killed):
            expected[g] = fleet["expected"][g]
        time.sleep(SETTLE)
    time.sleep(SETTLE)
    wait_asset_runs(d, expected)

    # every watcher the killed triggerer ran now runs on the survivor: each ran on both triggerers
    moved_watchers = {f"ges_backup_{g}" for g, j in fleet["watchers"].items() if j == killed}
    assert {g for g, j in watcher_owners(d).items() if j == survivor} >= moved_watchers, watcher_owners(d)
    d.start_triggerer(victim)  # back to two for the rest of the module
    FIGURES["failover"] = {
        "gates on the killed triggerer": len(moved),
        "kill -> all its triggers reassigned (s)": round(t_moved - t_kill, 1),
        "kill -> survivor's first look at a moved gate (s)": round(failover, 1),
        "flip -> 200 gates success (s)": round(t_done - t_flip, 1),
        "longest heartbeat gap of a live triggerer (s)": round(max(monitor.gaps.values(), default=0), 1),
    }
    say(request.config, f"celery failover: {FIGURES['failover']}")


# --- gates on the Celery workers, and the IAM tokens they ask for ------------------------------------


def test_poke_and_reschedule_gates_on_both_workers(
    airflow_deployment: Deployment, graphs: dict[str, str]
) -> None:
    """Poke and reschedule gates (two runs each) wait on the workers and pass; across the module both
    workers ran tasks."""
    d = airflow_deployment
    runs = {}
    for mode in ("poke", "reschedule"):
        for i in range(2):
            graph = f"celery_{mode}_{i}"
            d.emulator.add_graph(graph)
            runs[(mode, graph)] = d.trigger(f"ges_gate_{mode}", conf={"graph_name": graph})
    backups = {key: backing_up(d, key[1]) for key in runs}
    time.sleep(6)
    for backup_id in backups.values():
        d.emulator.set_backup_status(backup_id, "success")
    for (mode, graph), run_id in runs.items():
        dag = f"ges_gate_{mode}"
        assert d.wait_run(dag, run_id, timeout=120) == "success", (mode, d.states(dag, run_id))
        assert d.xcom(dag, run_id, SENSOR)["id"] == backups[(mode, graph)]
    starts = worker_task_starts(d)
    assert all(n > 0 for n in starts.values()), starts
    FIGURES["worker task starts (module so far)"] = starts


def test_reschedule_gate_with_ten_looks_asks_for_one_token(
    airflow_deployment: Deployment, graphs: dict[str, str]
) -> None:
    """A reschedule gate looks 10 times (10 processes, on either worker) and asks IAM for one token in
    all: the per-host file token cache (``GES_TOKEN_CACHE_DIR``) serves the other nine."""
    d = airflow_deployment
    graph = "celery_ten_looks"
    graph_id = d.emulator.add_graph(graph)["id"]
    dag = "ges_gate_reschedule"
    run_id = d.trigger(dag, conf={"graph_name": graph})
    backup_id = backing_up(d, graph)
    for path in d.token_cache_files():  # cold: the earlier tests' token is cached
        path.unlink()
    tokens = d.emulator.counters["create_token"]
    reschedules = (
        "SELECT count(*) FROM task_reschedule tr JOIN task_instance ti ON ti.id = tr.ti_id "
        "WHERE ti.dag_id = %s AND ti.run_id = %s"
    )
    wait_for("9 reschedules", lambda: d.sql(reschedules, dag, run_id)[0][0] >= 9, 240, 0.2)
    d.emulator.set_backup_status(backup_id, "success")
    assert d.wait_run(dag, run_id, timeout=120) == "success"
    log = d.task_log(dag, run_id, SENSOR)
    looks = log.count(f"Looked at graph {graph!r} (id {graph_id})")
    new_tokens = d.emulator.counters["create_token"] - tokens
    FIGURES["reschedule gate: looks, token requests"] = (looks, new_tokens)
    assert looks >= 10, log
    assert new_tokens == 1, f"{new_tokens} token requests for {looks} looks (the file token cache?)"


def test_reschedule_gates_on_two_workers_ask_for_one_token(
    airflow_deployment: Deployment, graphs: dict[str, str]
) -> None:
    """30 reschedule gates over 10 graphs on the two workers, each looking at least twice (each look a
    new process): the password credential gets at most one token per worker host (one host here: 1 in
    all). (By hand, 100 such gates: 228 task starts, 1 token request.)"""
    d = airflow_deployment
    starts = worker_task_starts(d)
    for path in d.token_cache_files():
        path.unlink()
    tokens = d.emulator.counters["create_token"]
    t0 = time.monotonic()
    run_id = d.trigger(RESCHEDULE)
    backups = {g: backing_up(d, g) for g in RESCHEDULE_GRAPHS}
    rescheduled = (
        "SELECT count(DISTINCT tr.ti_id) FROM task_reschedule tr JOIN task_instance ti "
        "ON ti.id = tr.ti_id WHERE ti.dag_id = %s AND ti.run_id = %s"
    )
    gates = 30
    wait_for("every gate rescheduled", lambda: d.sql(rescheduled, RESCHEDULE, run_id)[0][0] >= gates, 300, 1)
    for backup_id in backups.values():
        d.emulator.set_backup_status(backup_id, "success")
    state = d.wait_run(RESCHEDULE, run_id, timeout=300)
    elapsed = time.monotonic() - t0
    states = d.states(RESCHEDULE, run_id)
    assert state == "success", Counter(states.values())
    after = worker_task_starts(d)
    per_worker = {n: after[n] - starts[n] for n in after}
    new_tokens = d.emulator.counters["create_token"] - tokens
    FIGURES[f"{gates} reschedule gates"] = {
        "trigger -> success (s)": round(elapsed, 1),
        "gates rescheduled at least once": d.sql(rescheduled, RESCHEDULE, run_id)[0][0],
        "worker task starts": per_worker,
        "token requests": new_tokens,
    }
    assert all(n > 0 for n in per_worker.values()), per_worker
    assert new_tokens <= 1, f"{new_tokens} token requests from 2 workers on one host"


# --- secrets ---------------------------------------------------------------------------------------------


def test_no_secret_in_any_file_the_deployment_wrote(
    airflow_deployment: Deployment, request: pytest.FixtureRequest
) -> None:
    """Every file the Celery deployment wrote (task and trigger logs, each worker's, triggerer's and
    service's output, Redis's) is free of the password, the SK and every token issued; the token cache
    dir, the one place a token may be kept, is left out explicitly and its files are 0600."""
    d = airflow_deployment
    emu = d.emulator
    tokens = emu.issued_tokens()
    assert tokens, "no token was issued"
    secrets = {"password": emu.password, "secret key": emu.sk}
    secrets.update({f"token #{i}": t for i, t in enumerate(tokens)})
    secrets.update({f"token #{i} fragment": t[len(t) // 2 : len(t) // 2 + 40] for i, t in enumerate(tokens)})
    files = d.written_files()
    assert not [f for f in files if f.is_relative_to(d.token_cache)]
    assert any("dag_id=" in str(f) for f in files) and any(f.name == "worker-2.log" for f in files)
    leaks = [
        f"{what} in {path}"
        for path in files
        for what, s in secrets.items()
        if s.encode() in path.read_bytes()
    ]
    assert not leaks, leaks
    cached = d.token_cache_files()
    modes = {str(p.relative_to(d.token_cache)): oct(p.stat().st_mode & 0o777) for p in cached}
    assert all(m == "0o600" for m in modes.values()), modes
    FIGURES["secrets"] = {"files": len(files), "tokens": len(tokens), "token cache files": modes}
    FIGURES["start-up (cumulative s)"] = {k: round(v, 1) for k, v in d.timings.items()}
    say(request.config, f"celery deployment figures: {FIGURES}")
