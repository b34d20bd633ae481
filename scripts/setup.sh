#!/bin/sh
# Create .venv and install strongroom into it (idempotent).  Sourced by scripts/demo.sh
# and scripts/test.sh; installs python3-venv on Debian when run as root and it is missing.
#
# SETUP=test (the default, scripts/test.sh): the Debian packages of every list in
# scripts/apt/*.txt, strongroom with its test dependencies ('.[test]': S3, SFTP and server
# extras, the SeaweedFS binary, Playwright...) and each package under contrib/.
# SETUP=demo (scripts/demo.sh): only scripts/apt/base.txt and strongroom itself, no extras:
# what the demo runs.  A venv set up for the tests serves the demo as it is.
set -eu
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
SETUP=${SETUP:-test}
case "$SETUP" in
    test) APT_LISTS="scripts/apt/*.txt" ;;
    demo) APT_LISTS="scripts/apt/base.txt" ;;
    *) echo "setup: SETUP must be 'test' or 'demo', not '$SETUP'" >&2; exit 1 ;;
esac
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
    else
        echo "setup: python3 with venv is needed (Debian: apt-get install python3-venv)" >&2
        exit 1
    fi
fi
# System packages listed in $APT_LISTS (one per line, '#' comments).
# shellcheck disable=SC2086 # $APT_LISTS is a glob on purpose
wanted=$(cat $APT_LISTS 2>/dev/null | sed 's/#.*//' | tr -s ' \t' '\n' | sed '/^$/d' | sort -u)
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
# The project, and for the tests the contrib/ packages (installed separately, as their
# users do) whose tests run with the project's.  A stamp file named after the checksum of
# the pyproject.toml files marks what is installed: .installed-<sum> the tests' set,
# .installed-demo-<sum> the demo's.
sum=$(cat pyproject.toml contrib/*/pyproject.toml 2>/dev/null | cksum | cut -d' ' -f1)
if [ "$SETUP" = test ]; then
    CONTRIB=$(for pkg in contrib/*/pyproject.toml; do [ -f "$pkg" ] && printf ' -e %s' "${pkg%/pyproject.toml}"; done)
    target='.[test]' stamp="$VENV/.installed-$sum" stale="$VENV/.installed-*"
else
    CONTRIB="" target='.' stamp="$VENV/.installed-demo-$sum" stale="$VENV/.installed-demo-*"
fi
if [ ! -f "$stamp" ] && [ ! -f "$VENV/.installed-$sum" ]; then
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    echo "setup: installing strongroom${CONTRIB:+, its test dependencies and contrib/} into $VENV (log: $VENV/install.log)"
    if ! { "$VENV/bin/python" -m pip install --upgrade pip &&
           "$VENV/bin/python" -m pip install -e "$target" &&
           { [ -z "$CONTRIB" ] || "$VENV/bin/python" -m pip install $CONTRIB; }; } >"$VENV/install.log" 2>&1; then
        tail -n 30 "$VENV/install.log" >&2
        echo "setup: installation failed (full log: $VENV/install.log)" >&2
        exit 1
    fi
    # shellcheck disable=SC2086 # $stale is a glob on purpose
    rm -f $stale
    touch "$stamp"
fi
# A kernel for the instant-restore boot test, unpacked, never installed (scripts/test-kernel.sh).
if [ "$SETUP" = test ]; then
    sh scripts/test-kernel.sh
fi
PY="$VENV/bin/python"
