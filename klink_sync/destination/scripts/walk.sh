# shellcheck shell=sh
# Regular files below folder/ and volumes/ of each tree given ($1...), NUL-ended: a record
# T<tree> before each tree's f<inode> <size> <mtime> <path> (what the ctime check reads).
for tree; do
  cd -- "$tree" 2>/dev/null || continue
  printf 'T%s\0' "$tree"
  for top in folder volumes; do
    [ -d "$top" ] || continue
    find "$top" -type f -printf 'f%i %s %T@ %p\0' || exit 1
  done
done
