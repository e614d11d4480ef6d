# shellcheck shell=sh
# Remove snapshots/NAME ($2): renamed to $3NAME first (never listed half-removed).
cd -- "$1/snapshots" || exit 1
name=$2 deleting=$3
case $name in
  "$deleting"*) gone=$name ;;
  *) gone=$deleting$name
     mv -T -- "./$name" "./$gone" || exit 1
     sync -- . 2>/dev/null || sync ;;
esac
rm -rf -- "./$gone" 2>/dev/null \
  || { find "./$gone" -type d -exec chmod u+rwx {} \; && rm -rf -- "./$gone"; }
