# shellcheck shell=sh
# A fresh, empty DEST/.staging ($1/.staging), then the folders $2... inside it.
cd -- "$1" || exit 1
shift
umask 077
if [ -e .staging ] || [ -L .staging ]; then
  rm -rf -- .staging 2>/dev/null \
    || { find .staging -type d -exec chmod u+rwx {} \; && rm -rf -- .staging; } || exit 1
fi
mkdir -m 700 .staging || exit 1
for d; do mkdir -p -- ".staging/$d" || exit 1; done
