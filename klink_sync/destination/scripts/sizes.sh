# shellcheck shell=sh
# Per snapshot ($2..., in order, below $1/snapshots): its index, the bytes of its regular
# files (a hard link once), and the bytes of those not hard-linked with the one before it.
cd -- "$1/snapshots" || exit 1
shift
i=0
for n; do
  echo "= $i"
  find "./$n" -type f -printf '%D:%i %s\n'
  i=$((i + 1))
done | awk '
  $1 == "=" { if (started) printf "%d %.0f %.0f\n", idx, total, fresh
              idx = $2; total = 0; fresh = 0; started = 1
              split("", prev); for (k in cur) prev[k] = 1; split("", cur); next }
  !($1 in cur) { cur[$1] = 1; total += $2; if (!($1 in prev)) fresh += $2 }
  END { if (started) printf "%d %.0f %.0f\n", idx, total, fresh }'
