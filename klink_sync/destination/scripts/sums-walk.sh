# shellcheck shell=sh
# Regular files of a tree (N, $1) and of the one before it (P, $2, may be empty):
# <tree><device> <inode> <size> <path>, NUL-ended.
for tree in N P; do
  dir=$1; shift
  [ -n "$dir" ] || continue
  cd -- "$dir" 2>/dev/null || { [ "$tree" = P ] && continue; exit 1; }
  for top in folder volumes; do
    [ -d "$top" ] || continue
    find "$top" -type f -printf "$tree%D %i %s %p\0" || exit 1
  done
done
