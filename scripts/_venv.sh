# shellcheck shell=bash
# The project's virtualenv, shared by scripts/test and scripts/demo (sourced, not run).
#
#   ROOT=... PROG=scripts/xyz; source "$ROOT/scripts/_venv.sh"; ensure_venv
#
# ensure_venv creates $ROOT/.venv with Python 3.11 to 3.13 if it is missing (or of another
# version), and
# installs the package with its test extra when pyproject.toml changed since the last
# install (or never installed). It sets VENV and PY. PROG names the caller in errors.
# PYTHON picks the interpreter to create the venv with (default: the first supported one of
# python3.11, python3.12, python3.13, python3: 3.11 first, the version CI runs everything on).

VENV="$ROOT/.venv"
PY="$VENV/bin/python"

say() {
    printf '\n==> %s\n' "$*"
}

is_supported_python() {
    "$1" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' >/dev/null 2>&1
}

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
        [[ -n $candidate ]] || continue
        if command -v "$candidate" >/dev/null 2>&1 && is_supported_python "$candidate"; then
            echo "$candidate"
            return 0
        fi
    done
    echo "${PROG:-scripts/test}: error: Python 3.11 to 3.13 not found (tried \$PYTHON, python3.11, python3.12, python3.13, python3); install one or set PYTHON" >&2
    return 1
}

ensure_venv() {
    local python stamp wanted
    if [[ ! -x $PY ]] || ! is_supported_python "$PY"; then
        python=$(find_python)
        say "creating $VENV with $python"
        rm -rf "$VENV"
        "$python" -m venv "$VENV"
        "$PY" -m pip install --quiet --upgrade pip
    fi

    # Reinstall when pyproject.toml changed since the last install (or never installed).
    stamp="$VENV/.segmenter-installed"
    wanted="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
    if [[ ! -f $stamp || $(<"$stamp") != "$wanted" ]] || ! "$PY" -c 'import streams' >/dev/null 2>&1; then
        say "installing segmenter with its test extra into $VENV"
        (cd "$ROOT" && "$PY" -m pip install --quiet --disable-pip-version-check -e '.[test]')
        echo "$wanted" >"$stamp"
    fi
}
