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
# System packages listed in scripts/apt/*.txt (one per line, '#' comments).
wanted=$(cat scripts/apt/*.txt 2>/dev/null | sed 's/#.*//' | tr -s ' \t' '\n' | sed '/^$/d' | sort -u)
missing=""
for pkg in $wanted; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing Debian packages:$missing"
        { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing; } \
            >/tmp/strongroom-apt.log 2>&1 || { tail -n 20 /tmp/strongroom-apt.log >&2; exit 1; }
    else
        echo "setup: please install these Debian packages:$missing" >&2
    fi
fi
# The project, and the contrib/ packages (installed separately, as their users do) whose
# tests run with the project's.
CONTRIB=$(for pkg in contrib/*/pyproject.toml; do [ -f "$pkg" ] && printf ' -e %s' "${pkg%/pyproject.toml}"; done)
stamp="$VENV/.installed-$(cat pyproject.toml contrib/*/pyproject.toml 2>/dev/null | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    echo "setup: installing strongroom and its dependencies into $VENV (log: $VENV/install.log)"
    if ! { "$VENV/bin/python" -m pip install --upgrade pip &&
           "$VENV/bin/python" -m pip install -e '.[test]' &&
           { [ -z "$CONTRIB" ] || "$VENV/bin/python" -m pip install $CONTRIB; }; } >"$VENV/install.log" 2>&1; then
        tail -n 30 "$VENV/install.log" >&2
        echo "setup: installation failed (full log: $VENV/install.log)" >&2
        exit 1
    fi
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi
PY="$VENV/bin/python"
