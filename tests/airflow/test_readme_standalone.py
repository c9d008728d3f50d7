"""README's "Try it with `airflow standalone`": every command in it, as a pip user types them.

The emulator and ``ctl`` commands (and ``airflow connections test``) run for real against the
emulator the section starts; the other ``airflow`` commands are parsed by Airflow's own CLI parser
(``airflow standalone`` itself runs in the deployment tests' shape elsewhere), and the facts the
prose states (password file, log path, "Airflow is ready", port 8080) are checked against Airflow.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import airflow_provider_ges.example_dags as example_dags
from airflow_provider_ges._compat import dag_bag

README = Path(__file__).resolve().parents[2] / "README.md"
TITLE = "## Try it with `airflow standalone`"
MARK = "@@@ command"


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(title)
    return text[start : text.index("\n## ", start + 1)]


def blocks(title: str) -> list[list[str]]:
    """The commands of each ```bash block of a README section (continuation lines joined)."""
    found = re.findall(r"```bash\n(.*?)```", section(title), re.S)
    return [[line.strip() for line in b.replace("\\\n", " ").splitlines() if line.strip()] for b in found]


def is_airflow(command: str) -> bool:
    return command.startswith("airflow ")


def test_the_section_runs(tmp_path: Path) -> None:
    install, (start,), setup, gate = blocks(TITLE)
    assert install == blocks("## Install")[0]  # the install command the Install section gives
    assert " --constraint " in install[0] and '"apache-airflow==3.3.2"' in install[0]

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "GES_EMULATOR_URL"}
    env.update(HOME=str(tmp_path), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")
    argv = shlex.split(start)
    assert argv[:3] == ["python", "-m", "airflow_provider_ges.emulator"] and "ctl" not in argv
    emulator = subprocess.Popen(
        [sys.executable, *argv[1:]], stdout=subprocess.PIPE, text=True, cwd=tmp_path, env=env
    )
    try:
        assert emulator.stdout is not None
        banner = [emulator.stdout.readline()]
        while banner[-1] and not banner[-1].startswith("# AK/SK"):
            banner.append(emulator.stdout.readline())
        pasted = [line for line in banner if line.startswith("export ")]  # what the user pastes
        assert [line.split("=", 1)[0] for line in pasted] == [
            "export AIRFLOW_CONN_GES_DEFAULT",
            "export GES_EMULATOR_URL",
        ]
        commands = [*setup, *gate]
        run = [c for c in commands if not is_airflow(c) or c == "airflow connections test ges_default"]
        check = "printenv AIRFLOW_HOME AIRFLOW__CORE__DAGS_FOLDER AIRFLOW__CORE__TEST_CONNECTION"
        script = ["set -e", *pasted, *(f"echo '{MARK}'\n{c}" for c in [*run, check])]
        done = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=180,
        )
    finally:
        emulator.terminate()
        emulator.wait(10)
        assert emulator.stdout is not None
        emulator.stdout.close()
    assert done.returncode == 0, done.stdout + done.stderr
    out = dict(zip([*run, check], done.stdout.split(f"{MARK}\n")[1:], strict=True))
    home, dags, test_connection = out[check].split()
    assert (home, test_connection) == (str(tmp_path / "airflow"), "Enabled")
    assert dags == example_dags.__path__[0] and (Path(dags) / "example_ges_backup_gate.py").is_file()
    assert "Connection success!" in out["airflow connections test ges_default"]
    ctl = "python -m airflow_provider_ges.emulator ctl "
    assert out[ctl + "graphs"].splitlines()[1].startswith("movies ")
    added = json.loads(out[ctl + "add-backup --graph movies --status backing_up --id tonight"])
    assert (added["id"], added["graph_name"], added["status"]) == ("tonight", "movies", "backing_up")
    assert json.loads(out[ctl + "set-status tonight success"])["status"] == "success"
    rows = [line.split() for line in out[ctl + "backups --graph movies --status success"].splitlines()]
    assert rows[-1][:3] == ["tonight", added["name"], "success"]


def test_the_airflow_commands_are_valid_cli() -> None:
    from airflow.cli.cli_parser import get_parser

    commands = [c for block in blocks(TITLE)[2:] for c in block if is_airflow(c)]
    assert [shlex.split(c)[1] for c in commands] == ["connections", "standalone", "dags", "dags"]
    dag = dag_bag(example_dags.__path__[0]).dags["example_ges_backup_gate"]
    for command in commands:
        argv = shlex.split(command.split(">", 1)[0])[1:]
        args = get_parser().parse_args(argv)  # exits 2 on an unknown command or option
        assert callable(args.func), command
        if getattr(args, "dag_id", None):
            assert args.dag_id == dag.dag_id
        if getattr(args, "conf", None):
            assert set(json.loads(args.conf)) <= set(dag.params), args.conf


def test_what_the_prose_says_is_what_airflow_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from airflow.cli.commands.standalone_command import StandaloneCommand
    from airflow.configuration import conf

    text = section(TITLE)
    password_file = Path(SimpleAuthManager.get_generated_password_file()).name
    assert f"`$AIRFLOW_HOME/{password_file}`" in text
    assert "Airflow is ready" in inspect.getsource(StandaloneCommand.print_ready)
    assert conf.getint("api", "port") == 8080 and "http://localhost:8080" in text
    template = conf.get("logging", "log_filename_template")
    assert template.startswith("dag_id={{ ti.dag_id }}/run_id={{ ti.run_id }}/task_id={{ ti.task_id }}/")
    assert "logs/dag_id=example_ges_backup_gate/run_id=.../task_id=wait_for_backup/attempt=1.log" in text
    assert "poke_interval" in text
    assert "export GES_EXAMPLE_POLL_INTERVAL=10 " in text and "looks every 10 s" in text

    def poke_interval() -> float:
        dags = dag_bag(example_dags.__path__[0]).dags
        return float(dags["example_ges_backup_gate"].get_task("wait_for_backup").poke_interval)

    assert poke_interval() == 300  # "its default: 5 minutes"
    monkeypatch.setenv("GES_EXAMPLE_POLL_INTERVAL", "10")
    assert poke_interval() == 10
