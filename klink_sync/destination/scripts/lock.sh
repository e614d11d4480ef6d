# shellcheck shell=sh
# Hold DEST/.lock ($1/.lock) while standard input stays open; print "locked", or
# "busy HOLDER" when another run holds it. $2: who holds it (pid on host).
lock=$1/.lock holder=$2
umask 077
[ -d "$1" ] || { echo missing; exit 0; }
command -v flock >/dev/null 2>&1 || { echo noflock; exit 0; }
# shellcheck disable=SC2016  # $1 and $2 belong to the inner shell
flock -n -E 3 "$lock" sh -c 'printf "%s\n" "$1" >"$2" && echo locked && exec cat >/dev/null' \
  sh "$holder" "$lock"
rc=$?
if [ "$rc" = 3 ]; then printf 'busy %s\n' "$(head -c 200 -- "$lock" | tr '\n' ' ')"; fi
exit "$rc"
