#!/bin/sh
# The main job on the default local-folder vault: protect a sample folder, back it up
# twice, list the points, restore one file and show that it matches.
# Sets up only what the demo needs (scripts/setup.sh with SETUP=demo: python3-venv, the
# base apt list, strongroom without extras).  DEMO: the folder to run in (default: demo).
set -eu
cd "$(dirname "$0")/.."
SETUP=demo
. scripts/setup.sh
DEMO=${DEMO:-demo}
case "$DEMO" in /*) DEMO_DIR=$DEMO ;; *) DEMO_DIR="$PWD/$DEMO" ;; esac
SR="$(dirname "$PY")/strongroom"
rm -rf "$DEMO"
mkdir -p "$DEMO/source/docs/reports" "$DEMO/source/photos"
export STRONGROOM_HOME="$DEMO_DIR/home"
export STRONGROOM_VAULT="$DEMO_DIR/vault"

# A sample folder: text, binary data, a symlink, an empty folder.
"$PY" - "$DEMO/source" <<'PYEOF'
import os, random, sys
root = sys.argv[1]
rng = random.Random(7)
for i in range(200):
    with open(os.path.join(root, "docs", f"note-{i:03}.txt"), "w") as fh:
        fh.write(f"note {i}\n" + "the quick brown fox jumps over the lazy dog\n" * rng.randint(1, 200))
with open(os.path.join(root, "docs", "reports", "q3.csv"), "w") as fh:
    fh.write("".join(f"{d},{rng.randint(0, 10**6)}\n" for d in range(20000)))
with open(os.path.join(root, "photos", "holiday.raw"), "wb") as fh:
    fh.write(rng.randbytes(24 * 1024 * 1024))
os.symlink("docs/reports/q3.csv", os.path.join(root, "latest-report"))
os.mkdir(os.path.join(root, "empty"))
PYEOF

echo "== strongroom vault create $STRONGROOM_VAULT"
"$SR" vault create "$STRONGROOM_VAULT" --name demo
echo "== strongroom protect files documents --path $DEMO/source"
"$SR" protect files documents --path "$DEMO/source" --exclude '*.tmp'
echo "== strongroom backup documents (first)"
"$SR" backup documents
echo "new data" > "$DEMO/source/docs/new-note.txt"
echo "== strongroom backup documents (second: only changes are read)"
"$SR" backup documents
echo "== strongroom points documents"
"$SR" points documents
SRC_ABS=$(cd "$DEMO/source" && pwd)
REL="${SRC_ABS#/}/docs/reports/q3.csv"
echo "== strongroom browse documents ${SRC_ABS#/}/docs"
"$SR" browse documents "${SRC_ABS#/}/docs" | head -n 6
echo "== strongroom restore documents --target $DEMO/restored $REL"
"$SR" restore documents --target "$DEMO/restored" "$REL"
if cmp "$DEMO/source/docs/reports/q3.csv" "$DEMO/restored/$REL"; then
    echo "== restored file matches the original: $(sha256sum "$DEMO/restored/$REL" | cut -c1-16)..."
else
    echo "== restored file DIFFERS from the original" >&2
    exit 1
fi
echo "== strongroom vault verify --read-data"
"$SR" vault verify --read-data
echo "== strongroom jobs"
"$SR" jobs
