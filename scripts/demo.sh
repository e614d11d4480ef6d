#!/usr/bin/env bash
# make demo: start the sample K-Link stack, let it write, back it up hot and
# cold while it writes, print the report (downtime included), check the snapshot.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DEMO_DIR=${DEMO_DIR:-$here/demo}
KLINK_SYNC=${KLINK_SYNC:-$here/.venv/bin/klink-sync}
PY=${PY:-$here/.venv/bin/python}
folder=$DEMO_DIR/k-link
dest=$DEMO_DIR/backup
compose=(docker compose)

say() { printf '\n== %s\n' "$*"; }

if [ -f "$folder/docker-compose.yml" ]; then
  (cd "$folder" && "${compose[@]}" down >/dev/null 2>&1 || true)
fi
rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR"
cp -a "$here/scripts/sample-stack/deploy" "$folder"

say "starting the sample stack in $folder"
(cd "$folder" && "${compose[@]}" up -d)
say "letting it write documents and rows for 15 seconds"
sleep 15
say "klink-sync plan"
"$KLINK_SYNC" plan --folder "$folder"
say "klink-sync hot-cold (the writer keeps running until the stop)"
"$KLINK_SYNC" hot-cold --folder "$folder" --dest "$dest"
say "checking the snapshot: database starts cleanly, rows match documents, index opens"
"$PY" "$here/scripts/sample-stack/check.py" snapshot "$dest/latest/folder"
say "services running now"
(cd "$folder" && "${compose[@]}" ps --services --filter status=running)
cat <<TXT

The stack is still running. Try a second, incremental run:
  $KLINK_SYNC hot-cold --folder $folder --dest $dest
Stop it with:  cd $folder && docker compose down
TXT
