#!/usr/bin/env bash
# The provider installed from its wheel, as users get it (make check-wheel; .ci/run runs it).
#
#   scripts/check_wheel.sh [BUILD_PYTHON]      BUILD_PYTHON: a Python with `build` and `twine` (default
#                                              .venv/bin/python: the [dev] extra has both; without them
#                                              the script makes a venv of its own for the two)
#
# 1. python -m build: the sdist, then the wheel built from that sdist, into a temp dir; twine check --strict.
# 2. The wheel (not editable) and apache-airflow==$CHECK_AIRFLOW (default 3.3.2) into a fresh venv.
# 3. From outside the checkout (so the checkout is not what gets imported), with a fresh AIRFLOW_HOME on SQLite:
#    the package imports from the venv; `airflow providers list` shows airflow-provider-ges at the version the
#    source declares; the emulator starts from the installed wheel (serving the packaged seed_example.json,
#    one backup of it made a fresh failure);
#    `airflow dags test example_ges_list_backups` against it succeeds, every task too, and its report finds
#    that failed backup.
# Any problem fails the script with a message. KEEP_WHEEL_CHECK=1 keeps the temp dir for a look.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
BUILD_PY=${1:-$SRC/.venv/bin/python}
AIRFLOW_VERSION=${CHECK_AIRFLOW:-3.3.2}
VENV_PY=${CHECK_PYTHON:-python3}

fail() { echo "check-wheel: FAILED: $*" >&2; exit 1; }
# The JSON that `airflow ... -o json` printed: its last line that parses as a JSON list (Airflow may log to
# stdout before it, lines that start with "[" among them).
export GES_JSON_LIST='
def json_list(path):
    import json
    for line in reversed(open(path).read().splitlines()):
        if line.lstrip().startswith("["):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, list):
                return value
    raise AssertionError(f"no JSON list in {path}: " + open(path).read()[-2000:])
'

step() { echo "--- check-wheel: $* ($(($(date +%s) - T0)) s)"; }
T0=$(date +%s)

WANT=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' airflow_provider_ges/__init__.py)
[ -n "$WANT" ] || fail "no __version__ = \"...\" line in airflow_provider_ges/__init__.py"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ges-wheel-check.XXXXXX")
EMU_PID=""
cleanup() {
    if [ -n "$EMU_PID" ]; then kill "$EMU_PID" 2>/dev/null || true; wait "$EMU_PID" 2>/dev/null || true; fi
    if [ "${KEEP_WHEEL_CHECK:-}" = 1 ]; then echo "check-wheel: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- 1. build and check -------------------------------------------------------------------------------
if ! "$BUILD_PY" -c 'import build, twine' 2>/dev/null; then
    step "$BUILD_PY has no build/twine: a tools venv for them"
    "$VENV_PY" -m venv "$WORK/tools" || fail "$VENV_PY -m venv"
    "$WORK/tools/bin/python" -m pip install --quiet uv || fail "pip install uv"
    "$WORK/tools/bin/uv" pip install --quiet --python "$WORK/tools/bin/python" build twine \
        || fail "installing build and twine"
    BUILD_PY="$WORK/tools/bin/python"
fi
step "building sdist and wheel of $WANT"
installer=()
if [ -x "$(dirname "$BUILD_PY")/uv" ]; then
    installer=(--installer uv)
    export PATH="$(dirname "$BUILD_PY"):$PATH"  # build finds uv on PATH
fi
"$BUILD_PY" -m build "${installer[@]}" --outdir "$WORK/dist" "$SRC" >"$WORK/build.log" 2>&1 \
    || { tail -30 "$WORK/build.log" >&2; fail "python -m build"; }
WHEEL=$(ls "$WORK"/dist/airflow_provider_ges-"$WANT"-py3-none-any.whl 2>/dev/null) \
    || { ls -l "$WORK/dist" >&2; fail "no airflow_provider_ges-$WANT-py3-none-any.whl built"; }
SDIST=$(ls "$WORK"/dist/airflow_provider_ges-"$WANT".tar.gz 2>/dev/null) \
    || { ls -l "$WORK/dist" >&2; fail "no airflow_provider_ges-$WANT.tar.gz built"; }
"$BUILD_PY" -m twine check --strict "$WHEEL" "$SDIST" || fail "twine check"
"$BUILD_PY" - "$WHEEL" "$SDIST" <<'EOF' || fail "wheel/sdist contents"
import sys, tarfile, zipfile
wheel, sdist = sys.argv[1:]
names = zipfile.ZipFile(wheel).namelist()
need = ["airflow_provider_ges/emulator/seed_example.json", "airflow_provider_ges/__init__.py",
        "airflow_provider_ges/example_dags/example_ges_list_backups.py"]
missing = [n for n in need if n not in names]
if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
    missing.append("*.dist-info/licenses/LICENSE")
assert not missing, f"the wheel lacks {missing}"
strays = [n for n in names if n.split("/")[0] in ("tests", "example_dags", "scripts", "benchmarks")]
assert not strays, f"the wheel ships {strays[:5]}"
snames = tarfile.open(sdist).getnames()
assert any(n.endswith("/LICENSE") for n in snames), "the sdist lacks LICENSE"
print(f"wheel: {len(names)} files, package data and LICENSE present; sdist: {len(snames)} files")
EOF

# --- 2. a fresh venv with the wheel -------------------------------------------------------------------
step "fresh venv: the wheel + apache-airflow==$AIRFLOW_VERSION"
"$VENV_PY" -m venv "$WORK/venv" || fail "$VENV_PY -m venv"
V="$WORK/venv/bin"
"$V/python" -m pip install --quiet uv || fail "pip install uv"
# --compile-bytecode: PYTHONDONTWRITEBYTECODE is set on this machine; without it each airflow command compiles
# Airflow from source again.
"$V/uv" pip install --quiet --compile-bytecode --python "$V/python" "$WHEEL" "apache-airflow==$AIRFLOW_VERSION" \
    || fail "installing the wheel with apache-airflow==$AIRFLOW_VERSION"

# --- 3. use it as a user would, away from the checkout -----------------------------------------------
cd "$WORK"
export AIRFLOW_HOME="$WORK/airflow_home"
export AIRFLOW__CORE__DAGS_FOLDER="$WORK/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME/airflow.db"
unset PYTHONPATH AIRFLOW_CONN_GES_DEFAULT
mkdir -p "$AIRFLOW_HOME" "$AIRFLOW__CORE__DAGS_FOLDER"

SEED=$("$V/python" - "$SRC" "$WANT" <<'EOF'
import sys
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path
import airflow_provider_ges
src, want = Path(sys.argv[1]).resolve(), sys.argv[2]
where = Path(airflow_provider_ges.__file__).resolve()
assert src not in where.parents, f"imported from the checkout: {where}"
assert "site-packages" in where.parts, f"not imported from the venv's site-packages: {where}"
assert version("airflow-provider-ges") == airflow_provider_ges.__version__ == want, (
    version("airflow-provider-ges"), airflow_provider_ges.__version__, want)
seed = files("airflow_provider_ges.emulator").joinpath("seed_example.json")
assert seed.is_file(), "seed_example.json is not in the installed package"
print(seed)
EOF
) || fail "the installed package"
step "imports from $(dirname "$(dirname "$SEED")"), version $WANT"

"$V/airflow" db migrate >"$WORK/db.log" 2>&1 || { tail -30 "$WORK/db.log" >&2; fail "airflow db migrate"; }

"$V/airflow" providers list -o json >"$WORK/providers.json" 2>"$WORK/providers.err" \
    || { cat "$WORK/providers.err" >&2; fail "airflow providers list"; }
"$V/python" - "$WORK/providers.json" "$WANT" <<'EOF' || fail "airflow providers list"
import os, sys
exec(os.environ["GES_JSON_LIST"])
rows = json_list(sys.argv[1])
ours = [r for r in rows if r.get("package_name") == "airflow-provider-ges"]
assert ours, f"airflow-provider-ges not in `airflow providers list`: {[r.get('package_name') for r in rows]}"
assert ours[0].get("version") == sys.argv[2], f"listed at {ours[0].get('version')}, the package is {sys.argv[2]}"
print(f"airflow providers list: airflow-provider-ges {ours[0]['version']}")
EOF
"$V/airflow" providers hooks -o json 2>/dev/null | grep -q '"ges"' || fail "airflow providers hooks has no connection type ges"

step "emulator from the wheel, serving the packaged seed data"
# The packaged seed_example.json (3 backups) with its first backup turned into one that failed a minute ago:
# the example DAG's report must find exactly that one, proof that the DAG read the emulator's data.
"$V/python" - "$SEED" "$WORK/backups.json" >"$WORK/graph.txt" <<'PY' || fail "reading the packaged seed data"
import json, sys, time
data = json.load(open(sys.argv[1]))
first = data["backupList"][0]
start = time.time() - 60
first.update(
    status="failed",
    startTimestamp=int(start * 1000),
    endTimestamp=int(start * 1000) + 1000,
    startTime=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start)),
    endTime=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + 1)),
)
json.dump(data, open(sys.argv[2], "w"))
print(first.get("graph_name") or first["graphName"])
PY
GRAPH=$(cat "$WORK/graph.txt")
"$V/python" -m airflow_provider_ges.emulator --port 0 --data "$WORK/backups.json" >"$WORK/emu.out" 2>"$WORK/emu.err" &
EMU_PID=$!
for _ in $(seq 150); do
    grep -q '^export AIRFLOW_CONN_GES_DEFAULT=' "$WORK/emu.out" 2>/dev/null && break
    kill -0 "$EMU_PID" 2>/dev/null || { cat "$WORK/emu.err" >&2; fail "the emulator exited"; }
    sleep 0.2
done
head -1 "$WORK/emu.out"
grep -q '^# GES emulator on http://127.0.0.1:[0-9]* .* 3 backups' "$WORK/emu.out" \
    || { cat "$WORK/emu.out" "$WORK/emu.err" >&2; fail "the emulator did not print its URL and the 3 seed backups"; }
CONN_LINE=$(grep '^export AIRFLOW_CONN_GES_DEFAULT=' "$WORK/emu.out") \
    || fail "the emulator printed no export AIRFLOW_CONN_GES_DEFAULT=... line"
eval "$CONN_LINE"

step "airflow dags test example_ges_list_backups, from the installed package's example_dags"
# As the README tells pip users: the DAGs folder is the installed airflow_provider_ges.example_dags.
AIRFLOW__CORE__DAGS_FOLDER=$("$V/python" -c 'import airflow_provider_ges.example_dags as e; print(e.__path__[0])') \
    || fail "import airflow_provider_ges.example_dags"
case "$AIRFLOW__CORE__DAGS_FOLDER" in "$WORK/venv/"*) ;; *) fail "example_dags not from the wheel's venv: $AIRFLOW__CORE__DAGS_FOLDER" ;; esac
export AIRFLOW__CORE__DAGS_FOLDER
"$V/airflow" dags test example_ges_list_backups >"$WORK/dagtest.log" 2>&1 \
    || { tail -40 "$WORK/dagtest.log" >&2; fail "airflow dags test exited non-zero"; }
"$V/airflow" dags list-runs example_ges_list_backups -o json >"$WORK/runs.json" 2>/dev/null \
    || fail "airflow dags list-runs"
"$V/python" - "$WORK/runs.json" <<'EOF' || { tail -40 "$WORK/dagtest.log" >&2; fail "the example DAG run"; }
import os, sys
exec(os.environ["GES_JSON_LIST"])
runs = json_list(sys.argv[1])
assert len(runs) == 1, f"expected one run, got {runs}"
assert runs[0]["state"] == "success", f"the run ended {runs[0]['state']}"
print(f"run {runs[0]['run_id']}: {runs[0]['state']}")
EOF
RUN_ID=$("$V/python" -c 'import os, sys; exec(os.environ["GES_JSON_LIST"]); print(json_list(sys.argv[1])[0]["run_id"])' "$WORK/runs.json")
"$V/airflow" tasks states-for-dag-run example_ges_list_backups "$RUN_ID" -o json >"$WORK/tis.json" 2>/dev/null \
    || fail "airflow tasks states-for-dag-run"
"$V/python" - "$WORK/tis.json" <<'EOF' || fail "the example DAG's tasks"
import os, sys
exec(os.environ["GES_JSON_LIST"])
states = {t["task_id"]: t["state"] for t in json_list(sys.argv[1])}
assert states == {"list_failed_backups": "success", "report": "success"}, states
print(f"tasks: {states}")
EOF
# The report task prints "<graph>: N failed backup(s) ..." per graph (airflow_provider_ges/example_dags/example_ges_list_backups.py).
grep -q "^$GRAPH: 1 failed backup(s)" "$WORK/dagtest.log" \
    || { tail -40 "$WORK/dagtest.log" >&2; fail "the report did not find the failed backup of $GRAPH the emulator serves"; }
echo "report: $GRAPH: 1 failed backup(s), as the emulator serves"
step "OK: the wheel of airflow-provider-ges $WANT works with Airflow $AIRFLOW_VERSION"
