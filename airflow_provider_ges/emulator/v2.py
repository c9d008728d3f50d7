"""What GES API v2 changes on the wire: snake_case views of the shared state, and OBS paths.

The store keeps one state in the v1 (camelCase) wire form; v2 replies are views of it, so a backup
made through one API version is listed by the other and a job started through one is shown by both.
The keys follow the official SDK's v2 models (``huaweicloudsdkges.v2``): ``backupMethod`` becomes
``backup_method``, ``graphSizeTypeIndex`` ``graph_size_type_index`` and so on, with the few graph
keys whose v2 spelling is not the plain snake_case of the v1 one mapped explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from .errors import GesError

WireDict = dict[str, Any]

#: v1 keys whose v2 form (the SDK's ``ShowGraphRespGraph``) is not their plain snake_case.
_IRREGULAR = {"enableFulltextIndex": "enable_full_text_index", "enableHyG": "enable_hyg"}
_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
#: An OBS bucket name: 3-63 lower-case letters, digits, '-' and '.', starting and ending alphanumeric.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
MAX_OBS_PATH = 1023


@lru_cache(maxsize=512)
def snake(key: str) -> str:
    """The v2 spelling of a v1 key: ``graphSizeTypeIndex`` -> ``graph_size_type_index``."""
    return _IRREGULAR.get(key) or _HUMP.sub("_", key).lower()


def snake_view(item: Mapping[str, Any]) -> WireDict:
    """A copy of a v1 wire dict with every key in its v2 spelling (the first of a clash wins, so a
    loaded backup with both ``graph_name`` and ``graphName`` keeps ``graph_name``)."""
    view: WireDict = {}
    for key, value in item.items():
        view.setdefault(snake(key), value)
    return view


def obs_path(field: str, value: object) -> str:
    """``value`` as an OBS path GES accepts, normalised (no trailing '/'), or GES.0001 naming it.

    The rule: a string ``bucket/dir[/...]`` of at most :data:`MAX_OBS_PATH` characters, the bucket an
    OBS bucket name, at least one directory after it, no leading '/', no empty, '.' or '..'
    segment, no backslash and no control character. No scheme: ``obs://bucket/dir`` is refused.
    """
    if not isinstance(value, str) or not value:
        raise GesError("GES.0001", f"The parameter {field} is invalid: it must be a non-empty OBS path.")
    path = value[:-1] if value.endswith("/") else value
    segments = path.split("/")
    reason = None
    if len(value) > MAX_OBS_PATH:
        reason = f"it is longer than {MAX_OBS_PATH} characters"
    elif value.startswith("/"):
        reason = "it must not start with '/'"
    elif "\\" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        reason = "it must not contain a backslash or a control character"
    elif not _BUCKET.fullmatch(segments[0]):
        reason = f"{segments[0]!r} is not an OBS bucket name"
    elif len(segments) < 2:
        reason = "it needs a directory after the bucket (bucket/dir)"
    elif any(s in ("", ".", "..") for s in segments[1:]):
        reason = "it must not have an empty, '.' or '..' segment"
    if reason is not None:
        raise GesError(
            "GES.0001", f"The parameter {field} is invalid: {value!r} is not an OBS path: {reason}."
        )
    return path
