# shellcheck shell=sh
# Every entry below folder/ and volumes/ of $1: f<size> <path> for regular files,
# o<path> for anything else, NUL-ended.
cd -- "$1" || exit 1
for top in folder volumes; do
  [ -d "$top" ] || continue
  find "$top" \( -type f -printf 'f%s %p\0' \) -o -printf 'o%p\0' || exit 1
done
