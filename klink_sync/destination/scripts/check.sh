# shellcheck shell=sh
# Is DEST ($1) an existing klink-sync destination (for prune, verify, restore)?
root=$1
[ -e "$root" ] || [ -L "$root" ] || { echo missing; exit 0; }
[ -d "$root" ] || { echo notdir; exit 0; }
if [ ! -e "$root/.klink-sync" ] && [ -n "$(ls -A -- "$root")" ]; then echo foreign; exit 0; fi
echo ok
