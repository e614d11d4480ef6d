# shellcheck shell=sh
# Standard input to $1: temporary name, mode 0600, sync, rename (never half a file).
umask 077
tmp=$(dirname -- "$1")/.$(basename -- "$1").tmp
cat >"$tmp" && chmod 600 -- "$tmp" && { sync -- "$tmp" 2>/dev/null || sync; } \
  && mv -f -T -- "$tmp" "$1"
