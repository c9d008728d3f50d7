"""Default credentials and settings of the emulator (all fake; nothing here works on a real cloud)."""

from __future__ import annotations

#: IAM user name accepted by ``POST /v3/auth/tokens``.
DEFAULT_USER = "ges_user"
#: That user's password.
DEFAULT_PASSWORD = "Emulator-Passw0rd"
#: The account (IAM domain) name.
DEFAULT_DOMAIN = "ges_account"
#: The one project the emulator serves (32 hex digits, like a real project ID).
DEFAULT_PROJECT_ID = "0e5f1c6f2a3b4c5d8e9f0a1b2c3d4e5f"
#: The region; a token request may scope to the project by this name instead of its ID.
DEFAULT_REGION = "cn-north-4"
#: Access key for AK/SK signing (20 upper-case characters, like a real AK).
DEFAULT_AK = "EMULATORAKEXAMPLE001"
#: Secret key for AK/SK signing (40 characters, like a real SK).
DEFAULT_SK = "EmulatorSecretKeyExample0123456789abcdef"
#: Token lifetime in seconds (IAM's is 24 h).
DEFAULT_TOKEN_TTL = 24 * 3600.0
#: Seconds a backup created through the API stays ``backing_up``.
DEFAULT_BACKUP_DURATION = 5.0
#: Seconds an export or an import of a backup (v2) runs.
DEFAULT_EXPORT_DURATION = DEFAULT_BACKUP_DURATION
DEFAULT_IMPORT_DURATION = DEFAULT_BACKUP_DURATION
#: Seconds a download link of ``GET /v2/.../backup-files`` stays valid.
DEFAULT_LINK_TTL = 300.0
#: Seconds a graph takes to stop or to start.
DEFAULT_GRAPH_ACTION_DURATION = 0.5
#: Graphs and backups generated when no data file is given.
DEFAULT_GRAPHS = 3
DEFAULT_BACKUPS = 20
DEFAULT_SEED = 0
#: Host the emulator listens on.
DEFAULT_HOST = "127.0.0.1"
#: Port of the CLI emulator and ``ctl``'s default URL: not 8080 (Airflow 3's API server) nor any other
#: well-known service's port, nor in Linux's ephemeral range. In-process emulators pick a free port.
DEFAULT_PORT = 18643
