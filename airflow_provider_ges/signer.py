"""AK/SK request signing (``SDK-HMAC-SHA256``), byte-for-byte what ``huaweicloudsdkcore``'s ``Signer`` does.

Pure standard library. The same canonicalisation serves both sides: :func:`sign_request` for clients and
:func:`verify_signature` for the local emulator.

Canonical request (lines joined by ``\\n``): upper-case method; the URI path, percent-decoded then each
``/`` segment re-encoded (only ``~`` safe) with a trailing ``/``; the query pairs sorted by (key, value),
each side encoded the same way, joined by ``&``; one ``name:value`` line per signed header (lower-case
name, stripped value) plus an empty line; the signed header names joined by ``;``; the hex SHA-256 of the
body (``X-Sdk-Content-Sha256`` overrides it; an empty body always hashes as empty). Signed headers are all
headers whose name has no ``_``. The string to sign is ``SDK-HMAC-SHA256\\n{X-Sdk-Date}\\n{hex sha256 of
the canonical request}`` and the signature its hex HMAC-SHA256 keyed with the raw SK.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from urllib.parse import parse_qsl, quote, unquote, urlsplit

__all__ = [
    "ALGORITHM",
    "EMPTY_BODY_SHA256",
    "HEADER_AUTHORIZATION",
    "HEADER_CONTENT_SHA256",
    "HEADER_DATE",
    "MAX_CLOCK_SKEW",
    "SignatureError",
    "authorization_header",
    "canonical_headers",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "format_sdk_date",
    "parse_authorization",
    "parse_query",
    "parse_sdk_date",
    "payload_hash",
    "sign_request",
    "signature",
    "signed_header_names",
    "string_to_sign",
    "verify_signature",
]

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
HEADER_DATE = "X-Sdk-Date"
HEADER_AUTHORIZATION = "Authorization"
HEADER_CONTENT_SHA256 = "X-Sdk-Content-Sha256"
HEADER_PROJECT_ID = "X-Project-Id"
HEADER_SECURITY_TOKEN = "X-Security-Token"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()
_SDK_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
#: How far ``X-Sdk-Date`` may be from the verifier's clock (the API gateway's rule).
MAX_CLOCK_SKEW = timedelta(minutes=15)


class SignatureError(ValueError):
    """A request's AK/SK signature is missing, malformed, stale or wrong; the message says which."""


def _encode(value: str) -> str:
    return quote(value, safe="~")


def _get_ignore_case(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


@lru_cache(maxsize=1024)
def canonical_uri(path: str) -> str:
    """Percent-decode ``path``, re-encode each segment and make sure it ends with ``/``."""
    encoded = "/".join(_encode(segment) for segment in unquote(path).split("/"))
    return encoded if encoded.endswith("/") else encoded + "/"


def parse_query(query: str) -> list[tuple[str, str]]:
    """Split a raw query string into decoded pairs, keeping empty values and repeated keys."""
    return parse_qsl(query, keep_blank_values=True)


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Sort decoded ``(key, value)`` pairs and encode them as ``k=v`` joined by ``&``."""
    return "&".join(f"{_encode(key)}={_encode(value)}" for key, value in sorted(pairs))


@lru_cache(maxsize=1024)
def _canonical_raw_query(query: str) -> str:
    return canonical_query(parse_query(query))


def signed_header_names(headers: Mapping[str, str]) -> list[str]:
    """Lower-cased, sorted names of the headers to sign: every header without ``_`` in its name."""
    return sorted(key.lower() for key in headers if "_" not in key)


def canonical_headers(headers: Mapping[str, str], signed_headers: Sequence[str]) -> str:
    """``name:value`` lines (values stripped) for ``signed_headers``, each ending with a newline."""
    by_name = {key.lower(): str(value).strip() for key, value in headers.items()}
    try:
        return "".join(f"{name}:{by_name[name]}\n" for name in signed_headers)
    except KeyError as missing:
        raise SignatureError(f"signed header {missing.args[0]!r} is not in the request") from None


def payload_hash(body: bytes, headers: Mapping[str, str]) -> str:
    """Hex SHA-256 of ``body``; ``X-Sdk-Content-Sha256`` (e.g. ``UNSIGNED-PAYLOAD``) stands in if set."""
    if not body:
        return EMPTY_BODY_SHA256
    return _get_ignore_case(headers, HEADER_CONTENT_SHA256) or hashlib.sha256(body).hexdigest()


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    body: bytes = b"",
) -> str:
    """The canonical request for a raw ``path`` and raw ``query`` string (without ``?``)."""
    return "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            _canonical_raw_query(query),
            canonical_headers(headers, signed_headers),
            ";".join(signed_headers),
            payload_hash(body, headers),
        ]
    )


def string_to_sign(canonical: str, sdk_date: str) -> str:
    """``SDK-HMAC-SHA256``, the ``X-Sdk-Date`` value and the hex SHA-256 of the canonical request."""
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{sdk_date}\n{digest}"


def signature(to_sign: str, sk: str) -> str:
    """Hex HMAC-SHA256 of the string to sign, keyed with the raw secret key."""
    return hmac.new(sk.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization_header(ak: str, signed_headers: Sequence[str], sig: str) -> str:
    """The ``Authorization`` header value."""
    return f"{ALGORITHM} Access={ak}, SignedHeaders={';'.join(signed_headers)}, Signature={sig}"


def parse_authorization(value: str) -> tuple[str, list[str], str]:
    """Split an ``Authorization`` value into ``(ak, signed_headers, signature)``."""
    scheme, _, params = value.strip().partition(" ")
    if scheme != ALGORITHM:
        raise SignatureError(f"unsupported signing algorithm {scheme!r}")
    fields: dict[str, str] = {}
    for part in params.split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            fields[key] = val
    try:
        ak, names, sig = fields["Access"], fields["SignedHeaders"], fields["Signature"]
    except KeyError as missing:
        raise SignatureError(f"Authorization header has no {missing.args[0]}") from None
    if not ak or not names or not sig:
        raise SignatureError("Authorization header has an empty field")
    return ak, names.split(";"), sig


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def format_sdk_date(moment: datetime) -> str:
    """``X-Sdk-Date`` text for a datetime (naive means UTC)."""
    return _as_utc(moment).strftime(DATE_FORMAT)


def parse_sdk_date(value: str) -> datetime:
    """Parse an ``X-Sdk-Date`` value into an aware UTC datetime."""
    if not _SDK_DATE.fullmatch(value):
        raise SignatureError(f"X-Sdk-Date {value!r} is not in the form YYYYMMDDTHHMMSSZ")
    date, clock = value[:8], value[9:15]
    try:
        return datetime(
            int(date[:4]),
            int(date[4:6]),
            int(date[6:]),
            int(clock[:2]),
            int(clock[2:4]),
            int(clock[4:]),
            0,
            timezone.utc,
        )
    except ValueError:
        raise SignatureError(f"X-Sdk-Date {value!r} is not a valid time") from None


def sign_request(
    method: str,
    url: str,
    *,
    ak: str,
    sk: str,
    body: bytes | str = b"",
    headers: Mapping[str, str] | None = None,
    project_id: str | None = None,
    security_token: str | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """Return the headers to send: ``headers`` plus ``X-Sdk-Date``, ``Host``, ``X-Project-Id`` and
    ``X-Security-Token`` (when given) and ``Authorization``.

    Send the request to ``url`` exactly as given and with exactly these headers (transports may add
    others; only these are signed). An ``X-Sdk-Date`` or ``Host`` already in ``headers`` is kept, as the
    SDK does. Values come back stripped and, like the SDK's, as UTF-8 bytes spelled in Latin-1.
    """
    if not ak or not sk:
        raise ValueError("ak and sk are required to sign a request")
    raw_body = body.encode("utf-8") if isinstance(body, str) else body
    parts = urlsplit(url)
    out = dict(headers or {})
    if project_id:
        out[HEADER_PROJECT_ID] = project_id
    if security_token is not None:
        out[HEADER_SECURITY_TOKEN] = security_token
    content_type = out.get("Content-Type")
    if content_type and not content_type.startswith(("application/json", "application/bson")):
        out[HEADER_CONTENT_SHA256] = UNSIGNED_PAYLOAD
    sdk_date = _get_ignore_case(out, HEADER_DATE)
    if sdk_date is None:
        sdk_date = format_sdk_date(now or datetime.now(timezone.utc))
        out[HEADER_DATE] = sdk_date
    if _get_ignore_case(out, "Host") is None:
        out["Host"] = parts.netloc
    names = signed_header_names(out)
    canonical = canonical_request(method, parts.path, parts.query, out, names, raw_body)
    sig = signature(string_to_sign(canonical, sdk_date), sk)
    wire = {key: str(value).strip().encode("utf-8").decode("iso-8859-1") for key, value in out.items()}
    wire[HEADER_AUTHORIZATION] = authorization_header(ak, names, sig)
    return wire


def verify_signature(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_for_ak: Callable[[str], str | None],
    now: datetime | None = None,
    max_skew: timedelta = MAX_CLOCK_SKEW,
) -> str:
    """Check a signed request and return its access key; raise :class:`SignatureError` otherwise.

    ``path`` and ``query`` are raw, as received; ``headers`` holds the received values (decoded text).
    ``X-Sdk-Date`` must be signed and within ``max_skew`` of ``now`` (naive means UTC).
    """
    auth = _get_ignore_case(headers, HEADER_AUTHORIZATION)
    if not auth:
        raise SignatureError("no Authorization header")
    ak, names, sig = parse_authorization(auth)
    secret = secret_for_ak(ak)
    if secret is None:
        raise SignatureError("unknown access key")
    if HEADER_DATE.lower() not in names:
        raise SignatureError("X-Sdk-Date is not signed")
    sdk_date = _get_ignore_case(headers, HEADER_DATE) or ""
    skew = abs(_as_utc(now or datetime.now(timezone.utc)) - parse_sdk_date(sdk_date))
    if skew > max_skew:
        raise SignatureError("X-Sdk-Date is too far from the server's time")
    canonical = canonical_request(method, path, query, headers, names, body)
    expected = signature(string_to_sign(canonical, sdk_date), secret)
    if not hmac.compare_digest(expected, sig):
        raise SignatureError("signature mismatch")
    return ak
