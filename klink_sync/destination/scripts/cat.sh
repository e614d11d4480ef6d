# shellcheck shell=sh
# One small file's bytes.
cat -- "$1"
