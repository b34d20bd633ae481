#!/bin/sh
# Create .venv and install strongroom with its test dependencies (idempotent).
# Sourced by scripts/demo.sh and scripts/test.sh; installs python3-venv on Debian when
# run as root and it is missing.
set -eu
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
    else
        echo "setup: python3 with venv is needed (Debian: apt-get install python3-venv)" >&2
        exit 1
    fi
fi
stamp="$VENV/.installed-$(cat pyproject.toml | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    echo "setup: installing strongroom and its dependencies into $VENV (log: $VENV/install.log)"
    if ! { "$VENV/bin/python" -m pip install --upgrade pip &&
           "$VENV/bin/python" -m pip install -e '.[test]'; } >"$VENV/install.log" 2>&1; then
        tail -n 30 "$VENV/install.log" >&2
        echo "setup: installation failed (full log: $VENV/install.log)" >&2
        exit 1
    fi
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi
PY="$VENV/bin/python"
