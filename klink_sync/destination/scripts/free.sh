# shellcheck shell=sh
# Free blocks and block size of the filesystem holding $1.
stat -f -c '%a %S' -- "$1"
