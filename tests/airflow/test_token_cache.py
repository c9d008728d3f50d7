"""The host's IAM token files (airflow_provider_ges.token_cache): real processes against one
emulator and one cache directory ask IAM once; every bad file or directory is survived."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_provider_ges.auth import TOKEN_CACHE
from airflow_provider_ges.emulator import GesEmulator
from airflow_provider_ges.exceptions import GesAuthError
from airflow_provider_ges.hooks.ges import GesAsyncHook, GesHook
from airflow_provider_ges.token_cache import cache_dir

#: A task process: waits for the start signal (so that all ask at once), then one look.
WORKER = """
import hashlib, os, sys, time
from airflow_provider_ges.hooks.ges import GesHook
go, action = sys.argv[1:]
while not os.path.exists(go):
    time.sleep(0.01)
hook = GesHook(retry_base_delay=0)
if action == "list":
    hook.list_backups()
print("TOKEN", hashlib.sha256(hook.get_token().encode()).hexdigest())
"""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def run_processes(count: int, action: str, tmp_path: Path) -> list[str]:
    """``count`` processes started together; each one's token digest."""
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(go), action],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    time.sleep(1.0)  # most of them have imported Airflow by now: they ask at about the same time
    go.touch()
    digests = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        digests += [line.split()[1] for line in out.splitlines() if line.startswith("TOKEN ")]
    go.unlink()
    return digests


@pytest.fixture
def emu(ges_emulator: GesEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> GesEmulator:
    """The emulator as ``ges_default``, a cache directory of the test's own, no warning said yet."""
    monkeypatch.setenv("AIRFLOW_CONN_GES_DEFAULT", json.dumps(ges_emulator.connection()))
    monkeypatch.setenv("GES_TOKEN_CACHE_DIR", str(tmp_path / "tokens"))
    monkeypatch.setattr(TOKEN_CACHE.files, "warned", False)
    return ges_emulator


def token_file() -> Path:
    (path,) = cache_dir().glob("*.json")
    return path


def new_process_token() -> str:
    """What a new task process gets: nothing in memory, the host's files as they are."""
    TOKEN_CACHE.clear(files=False)
    return GesHook(retry_base_delay=0).get_token()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "airflow_provider_ges.token_cache"]


@pytest.mark.ges_emulator(graphs=1, backups=2)
def test_processes_of_one_host_ask_iam_once(emu: GesEmulator, tmp_path: Path) -> None:
    digests = run_processes(4, "token", tmp_path)
    assert emu.counters["create_token"] == 1
    assert len(digests) == 4 and len(set(digests)) == 1
    assert digest(new_process_token()) == digests[0] and emu.counters["create_token"] == 1

    directory, path = cache_dir(), token_file()
    assert os.stat(directory).st_mode & 0o777 == 0o700
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(path.with_suffix(".lock")).st_mode & 0o777 == 0o600
    assert sorted(p.name for p in directory.iterdir()) == [path.name, path.with_suffix(".lock").name]
    for item in directory.iterdir():  # neither the password nor the token in a name or a file
        assert emu.password not in item.name and emu.user not in item.name
        assert emu.password not in item.read_text()
    saved = json.loads(path.read_text())
    assert digest(saved["token"]) == digests[0] and emu.password not in json.dumps(saved)


@pytest.mark.ges_emulator(graphs=1, backups=2)
def test_a_401_refreshes_the_token_once_for_every_process(emu: GesEmulator, tmp_path: Path) -> None:
    hook = GesHook(retry_base_delay=0)
    first = hook.get_token()
    emu.expire_tokens()  # the token in memory and in the file now gets a 401 from GES
    digests = run_processes(3, "list", tmp_path)
    assert emu.counters["create_token"] == 2  # one refresh, whichever process saw the 401 first
    assert len(set(digests)) == 1 and digests[0] != digest(first)
    hook.list_backups()  # this process still holds the old token: a 401, then the file's new one
    assert digest(hook.get_token()) == digests[0] and emu.counters["create_token"] == 2


def corrupt(path: Path, outside: Path) -> None:
    path.write_text('{"token": "MII-half-writ')


def odd_fields(path: Path, outside: Path) -> None:
    saved = json.loads(path.read_text())
    path.write_text(json.dumps({**saved, "check": "\u00e9" * 64, "refresh_at": "2999-01-01T00:00:00"}))


def open_to_group(path: Path, outside: Path) -> None:
    path.chmod(0o640)


def symlink_elsewhere(path: Path, outside: Path) -> None:
    outside.write_text(path.read_text())
    outside.chmod(0o600)
    path.unlink()
    path.symlink_to(outside)


@pytest.mark.ges_emulator(graphs=1, backups=2)
@pytest.mark.parametrize(
    ("spoil", "said"),
    [
        (corrupt, "not a token file"),
        (odd_fields, "not a token file"),
        (open_to_group, "mode 0600"),
        (symlink_elsewhere, "Too many levels"),
    ],
)
def test_a_bad_file_warns_once_asks_iam_and_is_rewritten(
    emu: GesEmulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    spoil: Callable[[Path, Path], None],
    said: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="airflow_provider_ges.token_cache")
    first = new_process_token()
    path, outside = token_file(), tmp_path / "elsewhere.json"
    spoil(path, outside)
    outside_before = outside.read_text() if outside.exists() else None
    second = new_process_token()
    assert second != first and emu.counters["create_token"] == 2
    (warning,) = warnings_of(caplog)
    assert said in warning and str(path) in warning and "asking IAM instead" in warning
    assert not path.is_symlink() and os.stat(path).st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())["token"] == second
    assert (outside.read_text() if outside.exists() else None) == outside_before  # never followed
    spoil(path, outside)
    new_process_token()
    assert emu.counters["create_token"] == 3 and len(warnings_of(caplog)) == 1  # once per process
    assert first not in caplog.text and second not in caplog.text


@pytest.mark.ges_emulator(graphs=1, backups=2)
@pytest.mark.parametrize("mode", [0o770, 0o707, 0o755, "symlink"])
def test_a_directory_others_may_use_is_refused(
    emu: GesEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int | str
) -> None:
    caplog.set_level(logging.WARNING, logger="airflow_provider_ges.token_cache")
    directory = cache_dir()
    if mode == "symlink":
        (tmp_path / "real").mkdir(mode=0o700)
        directory.symlink_to(tmp_path / "real")
    else:
        directory.mkdir()
        directory.chmod(mode)  # type: ignore[arg-type]
    hook = GesHook(retry_base_delay=0)
    token = hook.get_token()
    assert GesHook(retry_base_delay=0).get_token() == token  # memory still serves the process
    assert emu.counters["create_token"] == 1
    (warning,) = warnings_of(caplog)
    expected = "not a directory (a symlink is not followed)" if mode == "symlink" else "chmod 700"
    assert str(directory) in warning and expected in warning
    assert not list(directory.iterdir())  # nothing written there, nor through the symlink


@pytest.mark.ges_emulator(graphs=1, backups=2)
@pytest.mark.parametrize("when", ["refresh_at", "expires_at"])
def test_a_token_due_for_refresh_or_expired_is_not_used(emu: GesEmulator, when: str) -> None:
    first = new_process_token()
    saved = json.loads(token_file().read_text())
    saved[when] = (datetime.now(timezone.utc) - timedelta(seconds=1)).isoformat()
    token_file().write_text(json.dumps(saved))
    second = new_process_token()
    assert second != first and emu.counters["create_token"] == 2
    assert json.loads(token_file().read_text())["token"] == second
    assert new_process_token() == second and emu.counters["create_token"] == 2


@pytest.mark.ges_emulator(graphs=1, backups=2)
def test_a_token_near_expiry_is_not_used(emu: GesEmulator) -> None:
    emu.token_ttl = 2.0  # refresh point: a tenth of the life (0.2 s) before expiry
    first = new_process_token()
    saved = json.loads(token_file().read_text())
    # Python 3.10's fromisoformat takes no "Z"
    refresh_at, expires_at = (
        datetime.fromisoformat(saved[key].replace("Z", "+00:00")) for key in ("refresh_at", "expires_at")
    )
    assert timedelta(seconds=0.15) < expires_at - refresh_at < timedelta(seconds=0.25)
    assert new_process_token() == first
    time.sleep(max((refresh_at - datetime.now(timezone.utc)).total_seconds(), 0) + 0.01)
    assert new_process_token() != first and emu.counters["create_token"] == 2


@pytest.mark.ges_emulator(graphs=1, backups=2)
def test_iam_cache_false_writes_no_file(emu: GesEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = emu.connection()
    conn["extra"]["iam_cache"] = False
    monkeypatch.setenv("AIRFLOW_CONN_GES_DEFAULT", json.dumps(conn))
    token = new_process_token()
    assert GesHook().get_token() == token  # the memory cache stays
    assert not cache_dir().exists()
    new_process_token()
    assert emu.counters["create_token"] == 2


@pytest.mark.ges_emulator(graphs=1, backups=2)
def test_another_password_never_gets_the_file_token(
    emu: GesEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = emu.connection()
    token = new_process_token()
    wrong = {**good, "password": "Not-the-Passw0rd", "extra": {**good["extra"], "max_retries": 0}}
    monkeypatch.setenv("AIRFLOW_CONN_GES_DEFAULT", json.dumps(wrong))
    with pytest.raises(GesAuthError):
        new_process_token()
    assert emu.counters["create_token"] == 2
    monkeypatch.setenv("AIRFLOW_CONN_GES_DEFAULT", json.dumps(good))
    assert new_process_token() == token and emu.counters["create_token"] == 2


@pytest.mark.ges_emulator(graphs=1, backups=2)
def test_async_hook_waits_for_the_lock_on_a_running_loop_then_reads_the_file(emu: GesEmulator) -> None:
    """Another process holds the lock while it refreshes: the triggerer's loop keeps running, and
    once the lock is free it reads what the other one wrote instead of asking IAM."""
    token = new_process_token()
    path = token_file()
    written = path.read_text()
    path.unlink()
    TOKEN_CACHE.clear(files=False)
    lock_fd = os.open(path.with_suffix(".lock"), os.O_RDWR)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)  # the lock of "another process" (another open file)
    ticks = 0

    def other_process_finishes() -> None:
        time.sleep(0.5)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, written.encode())
        os.close(fd)
        os.close(lock_fd)

    async def ticker(done: asyncio.Event) -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    async def main() -> str:
        done = asyncio.Event()
        tick = asyncio.create_task(ticker(done))
        async with GesAsyncHook() as hook:
            value = await hook.get_token()
        done.set()
        await tick
        return value

    other = threading.Thread(target=other_process_finishes)
    other.start()
    assert asyncio.run(main()) == token
    other.join()
    assert emu.counters["create_token"] == 1
    assert ticks >= 20  # the loop ran all through the wait


@pytest.mark.ges_emulator(graphs=1, backups=2)
def test_async_and_sync_hooks_share_one_file(emu: GesEmulator) -> None:
    async def token() -> str:
        async with GesAsyncHook() as hook:
            return await hook.get_token()

    first = asyncio.run(token())
    assert new_process_token() == first
    TOKEN_CACHE.clear(files=False)
    assert asyncio.run(token()) == first and emu.counters["create_token"] == 1


def test_default_directory_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GES_TOKEN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "airflow-provider-ges" / "tokens"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "airflow-provider-ges" / "tokens"
