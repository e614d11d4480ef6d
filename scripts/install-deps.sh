#!/usr/bin/env bash
# Install and start everything klink-sync's demo and tests need on a bare
# Debian 12 machine, as root: apt packages, dockerd, Compose v1 and v2,
# a local base image (no Docker Hub here), and the Python venv.
# Idempotent: every step is skipped when already done.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
log() { printf '[install-deps] %s\n' "$*" >&2; }

apt_packages=(rsync docker.io docker-compose debootstrap python3-venv util-linux e2fsprogs attr acl systemd
              restic rsnapshot time)  # restic: offsite copies; the last two: make bench
apt_packages+=(openssh-server openssh-client)  # tests/sshd.py: a throwaway sshd for remote dests
apt_packages+=(shellcheck)  # make lint: klink_sync's shell scripts
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian

# Compose v2 as a docker CLI plugin, taken from Debian 13's package.
plugin=/usr/libexec/docker/cli-plugins/docker-compose
if [ ! -x "$plugin" ]; then
  log "installing Compose v2 plugin from trixie's docker-compose package"
  tmp=$(mktemp -d)
  mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/dl"
  echo "deb [trusted=yes] $mirror trixie main" >"$tmp/sources.list"
  aptopts=(-o "Dir::Etc::SourceList=$tmp/sources.list" -o "Dir::Etc::SourceParts=-"
           -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o "APT::Get::List-Cleanup=0" -o "APT::Sandbox::User=root")
  apt-get "${aptopts[@]}" update -qq
  (cd "$tmp/dl" && apt-get "${aptopts[@]}" download docker-compose >/dev/null)
  dpkg-deb -x "$tmp"/dl/docker-compose_*.deb "$tmp/x"
  install -D -m 0755 "$tmp/x/usr/libexec/docker/cli-plugins/docker-compose" "$plugin"
  rm -rf "$tmp"
fi

# dockerd in the background (no systemd in containers/CI machines).
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  mkdir -p /var/log
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/dockerd.log"; tail -20 /var/log/dockerd.log >&2; exit 1; }
fi

# Local base image: Debian bookworm minbase, imported (no registry needed).
if ! docker image inspect klink-sample/base:bookworm >/dev/null 2>&1; then
  log "building base image with debootstrap (about 2 minutes)"
  rootfs=$(mktemp -d)
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
  tar -C "$rootfs" -c . | docker import - klink-sample/base:bookworm >/dev/null
  rm -rf "$rootfs"
fi

# Python venv with the project and its test dependencies.
if [ ! -x "$here/.venv/bin/klink-sync" ] || [ "$here/pyproject.toml" -nt "$here/.venv/.installed" ]; then
  log "creating .venv"
  python3 -m venv "$here/.venv"
  "$here/.venv/bin/pip" install -q --upgrade pip
  "$here/.venv/bin/pip" install -q -e "$here[test]"
  touch "$here/.venv/.installed"
fi
log "ready"
