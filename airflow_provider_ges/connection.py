"""The GES connection: an Airflow ``Connection`` checked and turned into typed settings.

Every problem is reported before any network call, naming the connection and the field.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

if TYPE_CHECKING:
    from airflow.sdk import Connection

AuthType = Literal["password", "aksk"]
ApiVersion = Literal["v1", "v2"]

GLOBAL_IAM_ENDPOINT = "https://iam.myhuaweicloud.com"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 5

#: Extras whose values may hold credentials: never echoed in an error.
SECRET_EXTRAS = frozenset({"security_token", "proxies"})
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
#: The ``proxies`` keys both transports (requests and httpx) understand, and the proxy URL schemes.
PROXY_KEYS = ("http", "https", "all")
PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")


def cloud_domain(region: str) -> str:
    """The DNS domain of a Huawei Cloud region (Europe has its own)."""
    return "myhuaweicloud.eu" if region.startswith("eu-") else "myhuaweicloud.com"


def _flag(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return value


class ConnectionExtras(BaseModel):
    """The ``extra`` JSON of a ``ges`` connection. Empty strings (as the UI saves them) mean unset."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    project_id: str | None = None
    domain_name: str | None = None
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")
    iam_endpoint: str | None = None
    auth_type: AuthType = "password"
    verify: bool | str = True
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0, le=3600)
    proxies: dict[str, str] | None = None
    max_retries: int = Field(default=DEFAULT_MAX_RETRIES, ge=0, le=50)
    security_token: str | None = None
    allow_http: bool = False
    api_version: ApiVersion = "v1"
    #: Not ``token_cache``: Airflow hides the value of an extra whose name holds "token" (the UI
    #: would show and send back ``***`` for a checkbox).
    iam_cache: bool = True

    @model_validator(mode="before")
    @classmethod
    def _unprefixed(cls, data: Any) -> Any:
        """Accept the ``extra__ges__<field>`` keys older forms saved."""
        if isinstance(data, dict):
            return {str(k).removeprefix("extra__ges__"): v for k, v in data.items()}
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("verify", "allow_http", "iam_cache", mode="before")
    @classmethod
    def _flags(cls, value: Any) -> Any:
        return _flag(value)

    @field_validator("proxies", mode="before")
    @classmethod
    def _json_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError('expected a JSON object such as {"https": "http://proxy:3128"}') from None
        return value

    @field_validator("proxies")
    @classmethod
    def _proxy_urls(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        """Each key a scheme, each value a proxy URL (never echoed: it may hold a password)."""
        for key, url in (value or {}).items():
            if key not in PROXY_KEYS:
                raise ValueError(f"keys must be one of {', '.join(PROXY_KEYS)}, got {key!r}")
            try:
                parts = urlsplit(url)
                ok = parts.scheme in PROXY_SCHEMES and bool(parts.hostname) and parts.port != 0
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"the {key!r} proxy must be a URL such as http://proxy:3128")
        return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class GesConnectionConfig:
    """Everything needed to call GES, checked. Secrets are kept out of the repr."""

    conn_id: str
    endpoint: str
    project_id: str
    auth_type: AuthType
    login: str
    password: str = field(repr=False)
    domain_name: str | None
    region: str | None
    iam_endpoint: str
    verify: bool | str
    timeout: float
    proxies: dict[str, str] | None
    max_retries: int
    security_token: str | None = field(default=None, repr=False)
    #: ``v1`` (``/v1.0/...``, the seed's API) or ``v2`` (``/v2/...``): where the calls of both go.
    api_version: ApiVersion = "v1"
    #: Share the IAM token with the host's other processes (``airflow_provider_ges.token_cache``).
    iam_cache: bool = True

    @property
    def secrets(self) -> list[str]:
        """The values that must never be shown."""
        return [s for s in (self.password, self.security_token) if s]

    @classmethod
    def from_connection(cls, conn: Connection) -> GesConnectionConfig:
        conn_id = conn.conn_id

        def fail(field_name: str, problem: str) -> ValueError:
            return ValueError(f"GES connection {conn_id!r}: {field_name} {problem}")

        raw_extra = conn.extra_dejson if conn.extra else {}
        if not isinstance(raw_extra, dict):
            raise fail("extra", f"must be a JSON object, got {type(raw_extra).__name__}")
        try:
            extras = ConnectionExtras.model_validate(raw_extra)
        except ValidationError as err:
            first = err.errors()[0]
            name = ".".join(str(part) for part in first["loc"])
            secret = bool(first["loc"]) and first["loc"][0] in SECRET_EXTRAS
            shown = "(value hidden)" if secret else repr(first["input"])
            raise fail(f"extra {name!r}", f"is invalid ({first['msg']}), got {shown}") from None
        if isinstance(extras.verify, str) and not Path(extras.verify).is_file():
            raise fail("extra 'verify'", f"must be true, false or a CA bundle file, got {extras.verify!r}")

        if not extras.project_id:
            raise fail("extra 'project_id'", "is required (the Huawei Cloud project ID)")
        if not conn.login:
            what = "the Access Key (AK)" if extras.auth_type == "aksk" else "the IAM user name"
            raise fail("login", f"is required ({what})")
        if not conn.password:
            what = "the Secret Key (SK)" if extras.auth_type == "aksk" else "the IAM password"
            raise fail("password", f"is required ({what})")
        if extras.auth_type == "password" and not extras.domain_name:
            raise fail("extra 'domain_name'", "is required for password auth (the account name)")

        endpoint = _endpoint(conn, extras.region, fail)
        if extras.iam_endpoint:
            iam_endpoint = extras.iam_endpoint
        elif extras.region:
            iam_endpoint = f"https://iam.{extras.region}.{cloud_domain(extras.region)}"
        else:
            iam_endpoint = GLOBAL_IAM_ENDPOINT
        for name, url in (("host", endpoint), ("extra 'iam_endpoint'", iam_endpoint)):
            _check_url(url, name, extras.allow_http, fail)

        return cls(
            conn_id=conn_id,
            endpoint=endpoint.rstrip("/"),
            project_id=extras.project_id,
            auth_type=extras.auth_type,
            login=conn.login,
            password=conn.password,
            domain_name=extras.domain_name,
            region=extras.region,
            iam_endpoint=iam_endpoint.rstrip("/"),
            verify=extras.verify,
            timeout=extras.timeout,
            proxies=extras.proxies,
            max_retries=extras.max_retries,
            security_token=extras.security_token,
            api_version=extras.api_version,
            iam_cache=extras.iam_cache,
        )


def _endpoint(conn: Connection, region: str | None, fail: Any) -> str:
    host = (conn.host or "").strip()
    if not host:
        if not region:
            raise fail("host", "is required (the GES endpoint), or set extra 'region' to derive it")
        return f"https://ges.{region}.{cloud_domain(region)}"
    if "://" in host:
        return host
    scheme = conn.schema or "https"
    return f"{scheme}://{host}:{conn.port}" if conn.port else f"{scheme}://{host}"


def _check_url(url: str, name: str, allow_http: bool, fail: Any) -> None:
    try:
        parts = urlsplit(url)
        hostname, _ = parts.hostname, parts.port
    except ValueError:
        raise fail(name, f"is not a valid URL, got {url!r}") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise fail(
            name, f"must be an http(s) URL such as https://ges.cn-north-4.myhuaweicloud.com, got {url!r}"
        )
    if parts.scheme == "http" and not allow_http and not _is_loopback(hostname):
        raise fail(
            name,
            f"uses plain http to a non-loopback host ({url!r}): tokens would cross the network in clear;"
            " use https, or set extra 'allow_http' to true",
        )
