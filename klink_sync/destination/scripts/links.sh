# shellcheck shell=sh
# Every symlink below folder/ and volumes/ of $1, NUL-ended.
cd -- "$1" || exit 1
for top in folder volumes; do
  [ -d "$top" ] || continue
  find "$top" -type l -printf '%p\0' || exit 1
done
