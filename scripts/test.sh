#!/bin/sh
# Set up (see setup.sh) and run every test.  Extra arguments go to pytest.
set -eu
cd "$(dirname "$0")/.."
. scripts/setup.sh
exec "$PY" -m pytest "$@"
