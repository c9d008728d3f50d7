"""A local Huawei Cloud GES + IAM emulator for tests, demos and benchmarks.

``python -m airflow_provider_ges.emulator`` runs it from a shell (``... emulator ctl`` steers a running
one, see :mod:`.control`); ``GesEmulator`` runs it in-process; the ``ges_emulator`` and
``ges_connection`` pytest fixtures come from :mod:`.pytest_plugin`.
"""

from __future__ import annotations

from .defaults import (
    DEFAULT_AK,
    DEFAULT_BACKUP_DURATION,
    DEFAULT_BACKUPS,
    DEFAULT_DOMAIN,
    DEFAULT_GRAPH_ACTION_DURATION,
    DEFAULT_GRAPHS,
    DEFAULT_HOST,
    DEFAULT_PASSWORD,
    DEFAULT_PROJECT_ID,
    DEFAULT_REGION,
    DEFAULT_SEED,
    DEFAULT_SK,
    DEFAULT_TOKEN_TTL,
    DEFAULT_USER,
)
from .faults import FaultRule, Faults, Hostile, parse_faults
from .server import GesEmulator

__all__ = [
    "DEFAULT_AK",
    "DEFAULT_BACKUPS",
    "DEFAULT_BACKUP_DURATION",
    "DEFAULT_DOMAIN",
    "DEFAULT_GRAPHS",
    "DEFAULT_GRAPH_ACTION_DURATION",
    "DEFAULT_HOST",
    "DEFAULT_PASSWORD",
    "DEFAULT_PROJECT_ID",
    "DEFAULT_REGION",
    "DEFAULT_SEED",
    "DEFAULT_SK",
    "DEFAULT_TOKEN_TTL",
    "DEFAULT_USER",
    "FaultRule",
    "Faults",
    "GesEmulator",
    "Hostile",
    "parse_faults",
]
