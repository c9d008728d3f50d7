#!/usr/bin/env bash
# The version matrix (make test-matrix, make test-af31, ...): the whole test suite but the browser test, on
# each supported Airflow minor's newest patch and on the newest Airflow with the oldest and newest Python.
#
#   scripts/matrix.sh CELL...      cells: af31 af32 af33-py310 af33-py313 (make test-matrix runs all four)
#
# Each cell has its own venv (.venv-CELL), built from scratch when missing or broken, and re-synced when
# pyproject.toml or the package version changed. The interpreter comes from pyenv ($(pyenv root)/versions/
# X.Y.*/bin/pythonX.Y, newest patch first), else pythonX.Y on PATH. Cells run one after another; each prints
# its install and test time; a summary follows. Exit status: non-zero if any cell failed.
set -uo pipefail
cd "$(dirname "$0")/.."

ALL_CELLS=(af31 af32 af33-py310 af33-py313)

# cell -> Python, Airflow, and the pins that only get that Airflow working. Pins belong HERE, never in the
# package's dependencies: users install with Airflow's constraints file (README "Install"), which pins them.
cell_spec() {
    PINS=()
    SKIP=()
    # The v2 run of every emulator test (tests/conftest.py) runs in `make test` and in the oldest cell
    # (af31); the other cells run them on v1 only, to keep CI well under its time limit.
    API_VERSIONS=v1
    case "$1" in
        af31)
            PYV=3.11 AIRFLOW=3.1.8 API_VERSIONS=v1,v2
            # cryptography 51 made MultiFernet a Rust class: Airflow 3.1.8's get_fernet() sets an attribute
            # on it and fails, so every connection read with a Fernet key set "isn't defined" (3.2 wraps it;
            # Airflow's constraints-3.1.8 stay below 51). Otherwise the unconstrained resolve runs the suite.
            PINS=("cryptography<51")
            # The CeleryExecutor deployment test runs in `make test` (3.3.2) and the 3.2 cell only.
            SKIP=("--ignore=tests/deployment/test_celery.py")
            ;;
        af32)
            PYV=3.11 AIRFLOW=3.2.2
            # Unconstrained, 3.2.2 resolves fastapi 0.165 / cadwyn 9 and svcs 26.2, which break Airflow's own
            # execution API: dag.test() dies before our code runs ("Model 'TITerminalStatePayload' needs a
            # discriminator field"). Airflow's constraints-3.2.2 stay below both.
            PINS=("fastapi<0.137" "svcs<26.2")
            ;;
        # The real-deployment tests (PostgreSQL + four Airflow processes) run in `make test` on this same
        # Airflow 3.3.2 and in the 3.1/3.2 cells (the Celery one in the shorter 3.2 cell only); they exercise
        # Airflow's processes, not the interpreter, so these two cells leave them out to keep CI well under
        # its time limit.
        af33-py310) PYV=3.10 AIRFLOW=3.3.2 SKIP=("--ignore=tests/deployment") ;;
        af33-py313) PYV=3.13 AIRFLOW=3.3.2 SKIP=("--ignore=tests/deployment") ;;
        *)
            echo "matrix: unknown cell '$1' (cells: ${ALL_CELLS[*]})" >&2
            return 1
            ;;
    esac
}

# The interpreter for Python X.Y: pyenv's newest X.Y.*, else pythonX.Y on PATH; checked to really be X.Y.
find_python() {
    local want=$1 root="" cand
    if command -v pyenv >/dev/null 2>&1; then root=$(pyenv root 2>/dev/null || true); fi
    [ -n "$root" ] || root="${PYENV_ROOT:-$HOME/.pyenv}"
    local cands=()
    if [ -d "$root/versions" ]; then
        while IFS= read -r cand; do cands+=("$cand"); done < <(
            ls -d "$root"/versions/"$want".*/bin/python"$want" 2>/dev/null | sort -rV
        )
    fi
    if command -v "python$want" >/dev/null 2>&1; then cands+=("$(command -v "python$want")"); fi
    for cand in "${cands[@]}"; do
        if [ -x "$cand" ] && [ "$("$cand" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$want" ]; then
            echo "$cand"
            return 0
        fi
    done
    echo "matrix: no Python $want: looked for ${root}/versions/$want.*/bin/python$want (pyenv install $want)" \
         "and python$want on PATH" >&2
    return 1
}

# What the venv must hold; a change re-syncs it (the editable install's metadata carries the version).
install_key() {
    { echo "$PYV $AIRFLOW ${PINS[*]}"; cat pyproject.toml; grep -m1 '^__version__' airflow_provider_ges/__init__.py; } \
        | sha256sum | cut -c1-16
}

declare -A RESULT TIMES
run_cell() {
    local cell=$1 venv=".venv-$1" t0 t1 t2 py key rc log
    cell_spec "$cell" || return 1
    echo "=== matrix $cell: Airflow $AIRFLOW on Python $PYV ($venv) ==="
    t0=$(date +%s)
    py=$(find_python "$PYV") || return 1
    if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
        echo "--- $cell: new venv from $py"
        rm -rf "$venv"
        "$py" -m venv "$venv" || return 1
        echo '*' >"$venv/.gitignore"  # git, and so ruff, leave the venv alone
    fi
    key=$(install_key)
    if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$key" ]; then
        echo "--- $cell: installing -e '.[dev]' apache-airflow==$AIRFLOW ${PINS[*]}"
        rm -f "$venv/.installed"
        { [ -x "$venv/bin/uv" ] || "$venv/bin/python" -m pip install --quiet uv; } || return 1
        # --compile-bytecode: this machine sets PYTHONDONTWRITEBYTECODE, so without it every process (each
        # test's `airflow` subprocess too) compiles Airflow from source again.
        "$venv/bin/uv" pip install --quiet --compile-bytecode --python "$venv/bin/python" \
            --reinstall-package airflow-provider-ges \
            -e '.[dev]' "apache-airflow==$AIRFLOW" "${PINS[@]}" || return 1
        echo "$key" >"$venv/.installed"
    fi
    "$venv/bin/python" - "$AIRFLOW" <<'EOF' || return 1
import sys
from importlib.metadata import version
got = version("apache-airflow")
assert got == sys.argv[1], f"venv has apache-airflow {got}, the cell wants {sys.argv[1]}"
print(f"--- Python {sys.version.split()[0]}, apache-airflow {got}, airflow-provider-ges {version('airflow-provider-ges')}")
EOF
    t1=$(date +%s)
    echo "--- $cell: install $((t1 - t0)) s"
    # The same invocation as `make unit`, minus the browser test: --ignore keeps it from even being collected,
    # so GES_UI_REQUIRE_BROWSER (set by .ci/run for `make test`) cannot turn its absence into a failure.
    log="$venv/pytest.log"
    env -u GES_UI_REQUIRE_BROWSER GES_TEST_API_VERSIONS="$API_VERSIONS" "$venv/bin/python" -m pytest --ignore=tests/airflow/test_ui_browser.py ${SKIP[@]+"${SKIP[@]}"} 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    t2=$(date +%s)
    RESULT[$cell]="$(grep -E '^=+ .*(passed|failed|error|no tests ran).* in [0-9.]+s' "$log" | tail -1 | sed -E 's/^=+ //; s/ =+$//')"
    TIMES[$cell]="install $((t1 - t0)) s, tests $((t2 - t1)) s, total $((t2 - t0)) s"
    echo "--- $cell: Airflow $AIRFLOW / Python $PYV: ${TIMES[$cell]}: ${RESULT[$cell]:-no pytest summary} (exit $rc)"
    return "$rc"
}

cells=("$@")
[ ${#cells[@]} -gt 0 ] || cells=("${ALL_CELLS[@]}")
failed=()
start=$(date +%s)
for cell in "${cells[@]}"; do
    if ! run_cell "$cell"; then
        failed+=("$cell")
        : "${RESULT[$cell]:=FAILED before the tests ran (see above)}"
    fi
done
echo
echo "=== matrix summary ($(($(date +%s) - start)) s) ==="
for cell in "${cells[@]}"; do
    status=ok
    for f in "${failed[@]}"; do [ "$f" = "$cell" ] && status=FAILED; done
    printf '%-11s %-6s %s | %s\n' "$cell" "$status" "${TIMES[$cell]:-}" "${RESULT[$cell]:-}"
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "matrix: FAILED: ${failed[*]}" >&2
    exit 1
fi
