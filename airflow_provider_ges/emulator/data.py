"""Graphs and backups as the wire shows them: builders, a seeded generator and a JSON loader.

Backups are plain dicts with exactly the seed page's keys (``graph_name``, ms timestamps, UTC times
without a zone). Names follow the console: ``{graph}-{yyyyMMddHHmmss}`` for manual backups and
``{graph}_{yyyyMMddHHmmss}_auto`` for automatic ones, with the time in UTC+8.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

WireDict = dict[str, Any]

UTC8 = timezone(timedelta(hours=8))
SEED_EXAMPLE = Path(__file__).with_name("seed_example.json")
RUNNING_GRAPH_STATUS = "200"
DELETED_GRAPH_STATUS = "400"
STOPPED_GRAPH_STATUS = "900"
STOPPING_GRAPH_STATUS = "901"
BACKING_UP_GRAPH_STATUS = "903"
STARTING_GRAPH_STATUS = "920"
BACKUP_STATUSES = ("backing_up", "success", "failed")
#: "import": a backup imported from OBS (``POST /v2/.../backups/import``).
BACKUP_METHODS = ("auto", "manual", "import")

_WORDS = ("fraud", "social", "risk", "supply", "movie", "finance", "telecom", "iot", "road", "kg")
_KINDS = ("graph", "network", "kb", "chain", "links")
_VERSIONS = ("2.2.21", "2.3.10", "2.3.14", "2.4.1")


def new_id(rng: random.Random | None = None) -> str:
    """A UUID4 string; reproducible when ``rng`` is given."""
    if rng is None:
        return str(uuid.uuid4())
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def format_utc(ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` in UTC for a ms timestamp (the API's ``startTime`` form)."""
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def backup_name(graph_name: str, method: str, start_ms: int) -> str:
    """The console's backup name; the time in it is UTC+8."""
    stamp = datetime.fromtimestamp(start_ms / 1000, UTC8).strftime("%Y%m%d%H%M%S")
    return f"{graph_name}_{stamp}_auto" if method == "auto" else f"{graph_name}-{stamp}"


def graph_name_of(backup: Mapping[str, Any]) -> str:
    """The graph name of a backup, whichever key it came under."""
    return str(backup.get("graph_name") or backup.get("graphName") or "")


def make_graph(
    name: str,
    *,
    graph_id: str,
    region: str,
    status: str = RUNNING_GRAPH_STATUS,
    created_ms: int = 0,
    size_type: str = "1",
    version: str = _VERSIONS[0],
    arch: str = "x86_64",
    encrypted: bool = False,
) -> WireDict:
    """A graph as ``GET /v1.0/{project_id}/graphs`` lists it."""
    created = format_utc(created_ms)
    return {
        "id": graph_id,
        "name": name,
        "createdBy": "ges_user",
        "isMultiAz": False,
        "regionCode": region,
        "azCode": f"{region}a",
        "dataStoreVersion": version,
        "status": status,
        "actionProgress": "100",
        "graphSizeTypeIndex": size_type,
        "vpcId": "9e7c9a1c-0000-4000-8000-00000000000a",
        "subnetId": "9e7c9a1c-0000-4000-8000-00000000000b",
        "securityGroupId": "9e7c9a1c-0000-4000-8000-00000000000c",
        "replication": 3,
        "created": created,
        "updated": created,
        "privateIp": "192.168.0.10",
        "publicIp": "",
        "arch": arch,
        "encrypted": encrypted,
        "enableRBAC": False,
        "enableFulltextIndex": False,
        "enableHyG": False,
        "enableHttps": False,
        "sys_tags": [],
        "tags": [],
    }


def make_backup(
    graph: Mapping[str, Any],
    *,
    backup_id: str,
    method: str,
    status: str,
    start_ms: int,
    duration: int = 0,
    size: int = 0,
) -> WireDict:
    """A backup of ``graph`` with the seed page's keys, in its order. ``backing_up`` has no end yet."""
    if status not in BACKUP_STATUSES:
        raise ValueError(f"backup status must be one of {BACKUP_STATUSES}, not {status!r}")
    if method not in BACKUP_METHODS:
        raise ValueError(f"backup method must be one of {BACKUP_METHODS}, not {method!r}")
    backup: WireDict = {
        "id": backup_id,
        "name": backup_name(graph["name"], method, start_ms),
        "backupMethod": method,
        "graphId": graph["id"],
        "graph_name": graph["name"],
        "graphStatus": graph["status"],
        "graphSizeTypeIndex": graph["graphSizeTypeIndex"],
        "dataStoreVersion": graph["dataStoreVersion"],
        "arch": graph["arch"],
        "status": "backing_up",
        "startTimestamp": start_ms,
        "startTime": format_utc(start_ms),
        "endTimestamp": None,
        "endTime": None,
        "size": 0,
        "duration": 0,
        "encrypted": graph["encrypted"],
    }
    set_status(backup, status, end_ms=start_ms + duration * 1000, size=size)
    return backup


def set_status(backup: WireDict, status: str, *, end_ms: int, size: int) -> None:
    """Move ``backup`` to ``status``; a finished one gets its end time, duration and (if success) size."""
    if status not in BACKUP_STATUSES:
        raise ValueError(f"backup status must be one of {BACKUP_STATUSES}, not {status!r}")
    backup["status"] = status
    if status == "backing_up":
        backup.update(endTimestamp=None, endTime=None, size=0, duration=0)
        return
    end_ms = max(end_ms, int(backup["startTimestamp"]))
    backup.update(
        endTimestamp=end_ms,
        endTime=format_utc(end_ms),
        size=size if status == "success" else 0,
        duration=(end_ms - int(backup["startTimestamp"])) // 1000,
    )


def random_size(rng: random.Random) -> int:
    """A plausible backup size in MB (mostly small, a long tail of large ones)."""
    return max(1, min(200_000, int(rng.lognormvariate(4.5, 1.6))))


def generate(
    graphs: int, backups: int, *, seed: int, now_ms: int, region: str, names: Sequence[str] = ()
) -> tuple[list[WireDict], list[WireDict]]:
    """``graphs`` running graphs and ``backups`` finished backups over the 30 days before ``now_ms``.

    The same arguments give the same data. Backups are spread over the graphs in turn, come back
    oldest first, are ~70% automatic, ~8% failed. ``names`` name the first graphs (the data is
    otherwise the same as without them).
    """
    if graphs < 1 and backups > 0:
        raise ValueError("backups need at least one graph")
    rng = random.Random(seed)
    generated = (f"{rng.choice(_WORDS)}_{rng.choice(_KINDS)}_{index:02d}" for index in range(graphs))
    graph_list = [
        make_graph(
            names[index] if index < len(names) else name,
            graph_id=new_id(rng),
            region=region,
            created_ms=now_ms - 90 * 86_400_000 + rng.randrange(86_400_000),
            size_type=str(rng.randrange(5)),
            version=rng.choice(_VERSIONS),
            arch=rng.choice(("x86_64", "x86_64", "aarch64")),
            encrypted=rng.random() < 0.2,
        )
        for index, name in enumerate(generated)
    ]
    specs = []
    for index in range(backups):
        size = random_size(rng)
        duration = 5 + size // rng.randint(20, 80)
        start_ms = now_ms - (duration + 60) * 1000 - rng.randrange(30 * 86_400) * 1000
        specs.append((start_ms, index, size, duration))
    backup_list = []
    for start_ms, index, size, duration in sorted(specs):
        failed = rng.random() < 0.08
        backup_list.append(
            make_backup(
                graph_list[index % graphs],
                backup_id=new_id(rng),
                method="auto" if rng.random() < 0.7 else "manual",
                status="failed" if failed else "success",
                start_ms=start_ms,
                duration=rng.randint(1, 30) if failed else duration,
                size=size,
            )
        )
    return graph_list, backup_list


def load(
    source: str | os.PathLike[str] | Mapping[str, Any] | Sequence[Mapping[str, Any]], *, region: str
) -> tuple[list[WireDict], list[WireDict]]:
    """Graphs and backups from a list-backups response, a list of backups, or ``{"graphs": [...],
    "backupList": [...]}``; a path is read as JSON. Backups are kept exactly as given; graphs not
    listed are derived from the backups (status from ``graphStatus``)."""
    raw: Any = source
    if isinstance(source, (str, os.PathLike)):
        raw = json.loads(Path(source).read_text(encoding="utf-8"))
    graphs: list[WireDict] = []
    if isinstance(raw, Mapping):
        graphs = [dict(g) for g in raw.get("graphs", [])]
        raw = raw.get("backupList", raw.get("backups"))
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ValueError("backup data must be a list of backups or an object with a 'backupList'")
    backups = [dict(b) for b in raw]
    known = {g["id"] for g in graphs}
    for backup in backups:
        if not isinstance(backup.get("id"), str) or not isinstance(backup.get("graphId"), str):
            raise ValueError(f"every backup needs string 'id' and 'graphId': {backup!r}")
        if backup["graphId"] not in known:
            known.add(backup["graphId"])
            graphs.append(
                make_graph(
                    graph_name_of(backup) or backup["graphId"],
                    graph_id=backup["graphId"],
                    region=region,
                    status=str(backup.get("graphStatus", RUNNING_GRAPH_STATUS)),
                    created_ms=int(backup.get("startTimestamp") or 0),
                    size_type=str(backup.get("graphSizeTypeIndex", "1")),
                    version=str(backup.get("dataStoreVersion", _VERSIONS[0])),
                    arch=str(backup.get("arch", "x86_64")),
                    encrypted=bool(backup.get("encrypted", False)),
                )
            )
    return graphs, backups
