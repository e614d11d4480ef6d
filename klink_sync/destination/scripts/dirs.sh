# shellcheck shell=sh
# Which of the folders $2... exist below $1 (NUL-ended).
cd -- "$1" 2>/dev/null || exit 0
shift
for d; do [ -d "$d" ] && printf '%s\0' "$d"; done
exit 0
