# shellcheck shell=sh
# .staging becomes snapshots/NAME ($2); with $3 = 1, latest moves to it atomically.
cd -- "$1" || exit 1
name=$2 move_latest=$3
[ ! -e "snapshots/$name" ] || { echo "snapshots/$name exists already" >&2; exit 1; }
mv -T -- .staging "snapshots/$name" || exit 1
if [ "$move_latest" = 1 ]; then
  rm -f -- .latest.tmp && ln -s -- "snapshots/$name" .latest.tmp && mv -T -- .latest.tmp latest \
    || exit 1
fi
sync -- snapshots . 2>/dev/null || sync
