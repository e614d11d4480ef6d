# shellcheck shell=sh
# sha256sum of the NUL-ended names on standard input, relative to $1.
cd -- "$1" && xargs -0 -r sha256sum --
