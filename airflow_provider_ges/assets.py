"""The ``ges`` asset URI scheme: ``ges://<graph>/backups``, the backups of one GES graph.

Airflow calls :func:`sanitize_uri` (registered under ``asset-uris`` in ``get_provider_info()``) for
every ``Asset`` whose URI starts with ``ges://``, with the URI already split (scheme lower-cased,
trailing slashes and the fragment dropped). A malformed URI is refused with a ``ValueError`` naming
it and the form expected, so the DAG file shows an import error instead of an asset no one updates.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlunsplit

#: GES graph names: 4-50 characters, a letter first, then letters, digits or ``_``.
GRAPH_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,49}")
EXPECTED = (
    "expected ges://<graph>/backups, <graph> a GES graph name (4-50 characters: a letter, then"
    " letters, digits or '_'), with no user, port or query"
)


def _problem(uri: SplitResult) -> str | None:
    if uri.scheme.lower() != "ges":
        return f"the scheme is {uri.scheme!r}"
    if "@" in uri.netloc or ":" in uri.netloc:
        return "it names a user or a port"
    if not GRAPH_NAME.fullmatch(uri.netloc):
        return f"{uri.netloc!r} is not a graph name"
    if uri.path.rstrip("/") != "/backups":
        return f"the path is {uri.path!r}, not '/backups'"
    return "it has a query" if uri.query else None


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """``ges://<graph>/backups`` as given (the graph name keeps its case); a ValueError otherwise."""
    problem = _problem(uri)
    if problem:
        raise ValueError(f"Asset URI {urlunsplit(uri)!r}: {problem}; {EXPECTED}")
    return uri._replace(scheme="ges", path="/backups", fragment="")
