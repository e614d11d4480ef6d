# shellcheck shell=sh
# The destination's layout as NUL-ended records: E (no such folder), M (marker),
# L<latest's target>, S (snapshots/ exists), D<folder in snapshots/>, F<name>/<file>.
cd -- "$1" 2>/dev/null || { printf 'E\0'; exit 0; }
[ -e .klink-sync ] && printf 'M\0'
[ -L latest ] && printf 'L%s\0' "$(readlink latest)"
[ -d snapshots ] || exit 0
printf 'S\0'
find snapshots -mindepth 1 -maxdepth 1 -type d -printf 'D%f\0' || exit 1
find snapshots -mindepth 2 -maxdepth 2 -type f \( -name manifest.json -o -name SHA256SUMS \) \
  -printf 'F%P\0' || exit 1
