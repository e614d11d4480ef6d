#!/usr/bin/env bash
# Build the sample stack's images from the local base image (no Docker Hub):
#   klink-sample/database:latest   images/database
#   klink-sample/app:latest        images/app
# An image that exists and was built from the same Dockerfile and files is
# skipped; --force rebuilds both. Needs dockerd and klink-sample/base:bookworm
# (scripts/install-deps.sh makes both).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
base=klink-sample/base:bookworm
log() { printf '[sample-stack/build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) die "unknown argument: $arg (usage: build.sh [--force])" ;;
  esac
done

docker info >/dev/null 2>&1 || die "docker does not answer (run scripts/install-deps.sh)"
docker image inspect "$base" >/dev/null 2>&1 || die "base image $base missing (run scripts/install-deps.sh)"

context_hash() {  # hash of the build context: names and contents, sorted
  (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-64
}

build() {
  local image=$1 dir=$2 want have
  want=$(context_hash "$dir")
  if [ "$force" = 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
    have=$(docker image inspect -f '{{ index .Config.Labels "klink-sample.context" }}' "$image")
    if [ "$have" = "$want" ]; then
      log "$image is up to date (--force rebuilds)"
      return 0
    fi
    log "$image exists but $dir changed: rebuilding"
  fi
  log "building $image from $dir"
  DOCKER_BUILDKIT=0 docker build --label "klink-sample.context=$want" -t "$image" "$dir" \
    || die "docker build of $image failed"
  docker image inspect "$image" >/dev/null || die "$image missing after build"
}

build klink-sample/database:latest "$here/images/database"
build klink-sample/app:latest "$here/images/app"
log "ready: klink-sample/database:latest klink-sample/app:latest"
