# shellcheck shell=sh
# Small files below $1, by relative name ($2...): J<name>\0<bytes>\0 for each that exists.
cd -- "$1" 2>/dev/null || exit 0
shift
for f; do
  [ -f "./$f" ] || continue
  printf 'J%s\0' "$f"; cat -- "./$f"; printf '\0'
done
