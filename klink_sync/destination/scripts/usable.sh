# shellcheck shell=sh
# Can DEST ($1) take a backup? require_mount=$2 (1/0); create=$3 (1: make the layout).
# One word on stdout: ok, or what is wrong (destination.ssh reads it).
root=$1 require_mount=$2 create=$3
umask 077
if [ -e "$root" ] || [ -L "$root" ]; then
  [ -d "$root" ] || { echo notdir; exit 0; }
  parent=$root
else
  parent=$(dirname -- "$root")
  [ -d "$parent" ] || { echo noparent; exit 0; }
fi
if [ "$require_mount" = 1 ] && [ "$(stat -L -c %m -- "$parent")" = / ]; then
  echo notmounted; exit 0
fi
{ [ -w "$parent" ] && [ -x "$parent" ]; } || { echo notwritable; exit 0; }
if [ -d "$root" ] && [ ! -e "$root/.klink-sync" ] && [ -n "$(ls -A -- "$root")" ]; then
  echo foreign; exit 0
fi
if [ "$create" = 1 ]; then
  if ! { { [ -d "$root" ] || mkdir -m 700 -- "$root"; } && touch -- "$root/.klink-sync" \
         && { [ -d "$root/snapshots" ] || mkdir -m 700 -- "$root/snapshots"; } \
         && chmod 700 -- "$root/snapshots"; }; then
    echo cannotcreate; exit 0
  fi
fi
echo ok
