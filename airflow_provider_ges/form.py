"""The ``ges`` connection form, declared once.

``CONN_FIELDS`` and ``UI_FIELD_BEHAVIOUR`` go into ``get_provider_info()`` (what Airflow >= 3.2
reads, without importing the hook); ``GesHook.get_connection_form_widgets()`` and
``get_ui_field_behaviour()`` derive the Airflow 3.1 form from the same data. Every extra that
``connection.ConnectionExtras`` reads has its field here.
"""

from __future__ import annotations

from typing import Any

CONN_FIELDS: dict[str, dict[str, Any]] = {
    "project_id": {
        "label": "Project ID",
        "description": "Required. The project the IAM token is scoped to (My Credentials > Projects).",
        "schema": {"type": ["string", "null"]},
    },
    "domain_name": {
        "label": "Account name",
        "description": "The account (domain) that owns the IAM user. Required for password auth.",
        "schema": {"type": ["string", "null"]},
    },
    "region": {
        "label": "Region",
        "description": "e.g. cn-north-4. Derives the GES and IAM endpoints when they are left empty.",
        "schema": {"type": ["string", "null"]},
    },
    "iam_endpoint": {
        "label": "IAM endpoint",
        "description": "Default https://iam.{region}.myhuaweicloud.com (or the global endpoint).",
        "schema": {"type": ["string", "null"]},
    },
    "auth_type": {
        "label": "Auth type",
        "description": "password: IAM user + password (token). aksk: Access Key + Secret Key (signed).",
        "schema": {"type": ["string", "null"], "enum": ["password", "aksk"], "default": "password"},
    },
    "api_version": {
        "label": "API version",
        "description": "v1 (default) or v2, the current API. Export and import always use v2.",
        "schema": {"type": ["string", "null"], "enum": ["v1", "v2"], "default": "v1"},
    },
    "verify": {
        "label": "Verify TLS",
        "description": "true (default), false, or the path of a CA bundle file.",
        "schema": {"type": ["string", "null"], "default": "true"},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "Per request. Default 30.",
        "schema": {"type": ["number", "null"], "default": 30},
    },
    "max_retries": {
        "label": "Max retries",
        "description": "Retries of throttling, server errors and dropped connections. Default 5.",
        "schema": {"type": ["integer", "null"], "default": 5},
    },
    "security_token": {
        "label": "Security token",
        "description": "Only for temporary AK/SK credentials.",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "proxies": {
        "label": "Proxies",
        "description": 'JSON object, scheme (http, https or all) to proxy URL: {"https": "http://proxy:3128"}.',
        "schema": {"type": ["string", "null"]},
    },
    "allow_http": {
        "label": "Allow plain http",
        "description": "Let tokens cross the network in clear to a host that is not loopback. Default off.",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    "iam_cache": {
        "label": "Share the IAM token on this host",
        "description": "Keep the token in a private file for the host's other task processes. Default on.",
        "schema": {"type": ["boolean", "null"], "default": True},
    },
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    # The port stays visible: Airflow 3.3's Test button sends port 0 for a connection without one
    # and gets a 400 (apache/airflow#73298); setting it (443) works around that. The hook ignores the
    # port when the host carries a scheme.
    "hidden-fields": ["schema"],
    "relabeling": {
        "host": "GES endpoint",
        "login": "IAM user name, or Access Key (AK)",
        "password": "Password, or Secret Key (SK)",
    },
    "placeholders": {
        "host": "https://ges.cn-north-4.myhuaweicloud.com",
        "port": "443",
        "login": "etl-user",
        "project_id": "0123456789abcdef0123456789abcdef",
        "domain_name": "my-account",
        "region": "cn-north-4",
        "iam_endpoint": "https://iam.cn-north-4.myhuaweicloud.com",
        "auth_type": "password",
        "verify": "true",
        "timeout": "30",
        "proxies": '{"https": "http://proxy:3128"}',
    },
}


def form_widgets() -> dict[str, Any]:
    """The wtforms fields of the Airflow 3.1 connection form, from ``CONN_FIELDS``."""
    from wtforms import BooleanField, IntegerField, PasswordField, StringField
    from wtforms.validators import AnyOf, NumberRange, Optional

    widgets: dict[str, Any] = {}
    for name, spec in CONN_FIELDS.items():
        schema = spec["schema"]
        kwargs: dict[str, Any] = {"description": spec["description"], "default": schema.get("default")}
        if "enum" in schema:
            widgets[name] = StringField(
                spec["label"], validators=[Optional(), AnyOf(schema["enum"])], **kwargs
            )
        elif "boolean" in schema["type"]:
            widgets[name] = BooleanField(spec["label"], **kwargs)
        elif "integer" in schema["type"]:
            widgets[name] = IntegerField(spec["label"], validators=[Optional(), NumberRange(min=0)], **kwargs)
        elif schema.get("format") == "password":
            widgets[name] = PasswordField(spec["label"], **kwargs)
        else:
            widgets[name] = StringField(spec["label"], **kwargs)
    return widgets


def field_behaviour() -> dict[str, Any]:
    """``UI_FIELD_BEHAVIOUR`` in the shape ``get_ui_field_behaviour()`` returns."""
    return {
        "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
        "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
        "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
    }
