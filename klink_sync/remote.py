"""A destination on another host, over ssh: `--dest [user@]host:/abs/path`.

The same layout and rules as a local folder (destination.py): the marker, snapshots/<time>/,
.staging/ for the run in progress, manifest.json written last, `latest` moved atomically
(`ln -s` + `mv -T`), SHA256SUMS, prune's rename-then-delete, the lock. Everything on the
remote side is done by the remote host's own tools (sh, coreutils, GNU find, flock,
sha256sum, rsync), one ssh command each, never one per file:

- every remote command is `ssh OPTIONS HOST -- 'sh' '-c' SCRIPT 'klink-sync' ARG...`: the
  scripts are constants of this module and every argument (paths included) is quoted
  with shlex.quote, so no name is ever read as shell syntax;
- rsync reaches the host with `-e "ssh OPTIONS"` and `--protect-args`; `--link-dest` is the
  absolute remote path of the unit in `latest`;
- the lock is `flock -n` on DEST/.lock held by an ssh session that stays open for the whole
  run (its standard input a pipe): it ends, and the lock with it, when the run ends or dies;
- the ctime check (fileindex.files_to_refresh) needs the state of the copies: one `find`
  walk of `latest` (before the run) and one of the staging folder (right after the hot
  pass), both while the stack still runs, answer it exactly as lstat would here;
- checksums: one `find` walk of the new and the previous snapshot (inodes), the previous
  SHA256SUMS, and `sha256sum` on the remote host for the files that are not the same inode
  as in the previous snapshot.

SSH options come from KLINK_SYNC_SSH (a command-line fragment) or the config's
`ssh_options` (a list); BatchMode (never a password prompt), a connect timeout and
keep-alives are added after them (ssh takes the first value given for an option).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shlex
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from . import checksums, destination, fileindex, process, rsync
from .destination import DELETING, INDEX, MANIFEST, MARKER, snapshot_name
from .errors import DestinationUnavailable, KlinkSyncError, LockedError, RunFailed, UsageError
from .execute import Report, Run, RunOptions, Source, landing, resolve_sources
from .models import Phase
from .plan import CopyUnit, Mode, Plan
from .restore import Move, Restore, restore_argv
from .retention import Retention, decide, name_time, sort_key
from .stack import Stack, signals_raise
from .verify import VERIFIED, FileCheck, Verdict, percent, sample_size

log = logging.getLogger(__name__)

SSH_ENV = "KLINK_SYNC_SSH"
# After the user's options: ssh keeps the first value it is given for each option.
SSH_DEFAULTS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=30",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4")  # fmt: skip

_FORM = re.compile(r"(?:(?P<user>[^@/:\s]+)@)?"  # user@ (optional)
                   r"(?P<host>\[[0-9A-Fa-f:.%\w]+\]|[^@/:\s\[\]]+)"  # host, or [IPv6]
                   r":(?P<path>.*)", re.S)  # fmt: skip


def is_remote(text: str | os.PathLike | None) -> bool:
    """`[user@]host:PATH`: a colon before any slash, as rsync and scp read it."""
    if text is None:
        return False
    return _FORM.fullmatch(os.fspath(text)) is not None


def ssh_options(configured: Sequence[str] = ()) -> tuple[str, ...]:
    """KLINK_SYNC_SSH (split like a shell would), else the config's ssh_options; then defaults."""
    env = os.environ.get(SSH_ENV)
    if env is not None:
        try:
            options = shlex.split(env)
        except ValueError as exc:
            raise UsageError(f"{SSH_ENV}: {exc}") from None
    else:
        options = [str(o) for o in configured]
    return (*options, *SSH_DEFAULTS)


def rsh(argv: Sequence[str]) -> str:
    """ssh's argv as one rsync -e string: rsync splits it at spaces and honours quotes."""
    parts = []
    for arg in argv:
        if arg and not any(c in arg for c in " '\""):
            parts.append(arg)
        elif "'" not in arg:
            parts.append(f"'{arg}'")
        elif '"' not in arg:
            parts.append(f'"{arg}"')
        else:
            raise UsageError(f"ssh option {arg!r}: holds both kinds of quotes, which rsync's "
                             "-e cannot pass")  # fmt: skip
    return " ".join(parts)


class RemoteStat(NamedTuple):
    """What the ctime check reads of a copy (the names of os.stat_result)."""

    st_ino: int
    st_size: int
    st_mtime_ns: int


def _mtime_ns(text: str) -> int:
    """find's %T@ ('1700000000.1234567890') in nanoseconds."""
    try:
        return int(Decimal(text) * 1_000_000_000)
    except InvalidOperation:
        raise RunFailed(f"cannot read a modification time from the remote walk: {text!r}") from None


def _records(data: bytes) -> list[bytes]:
    return [r for r in data.split(b"\0") if r]


def _bytes(result: process.Result) -> bytes:
    return result.stdout.encode("utf-8", "surrogateescape")


# ----------------------------------------------------------------------------- the scripts
# Run by `sh -c SCRIPT klink-sync ARG...` on the remote host: $1... are the quoted arguments.

_USABLE = r"""
root=$1 require_mount=$2
umask 077
if [ -e "$root" ] || [ -L "$root" ]; then
  [ -d "$root" ] || { echo notdir; exit 0; }
  parent=$root
else
  parent=$(dirname -- "$root")
  [ -d "$parent" ] || { echo noparent; exit 0; }
fi
if [ "$require_mount" = 1 ] && [ "$(stat -L -c %m -- "$parent")" = / ]; then
  echo notmounted; exit 0
fi
{ [ -w "$parent" ] && [ -x "$parent" ]; } || { echo notwritable; exit 0; }
if [ -d "$root" ] && [ ! -e "$root/.klink-sync" ] && [ -n "$(ls -A -- "$root")" ]; then
  echo foreign; exit 0
fi
"""
USABLE = _USABLE + "echo ok\n"  # destination.check_usable: read-only
PREPARE = _USABLE + r"""
{ [ -d "$root" ] || mkdir -m 700 -- "$root"; } && touch -- "$root/.klink-sync" \
  && { [ -d "$root/snapshots" ] || mkdir -m 700 -- "$root/snapshots"; } \
  && chmod 700 -- "$root/snapshots" || { echo cannotcreate; exit 0; }
echo ok
"""

CHECK = r"""
root=$1
[ -e "$root" ] || [ -L "$root" ] || { echo missing; exit 0; }
[ -d "$root" ] || { echo notdir; exit 0; }
if [ ! -e "$root/.klink-sync" ] && [ -n "$(ls -A -- "$root")" ]; then echo foreign; exit 0; fi
echo ok
"""

LOCK = r"""
lock=$1/.lock holder=$2
umask 077
[ -d "$1" ] || { echo missing; exit 0; }
command -v flock >/dev/null 2>&1 || { echo noflock; exit 0; }
flock -n -E 3 "$lock" sh -c 'printf "%s\n" "$1" >"$2" && echo locked && exec cat >/dev/null' \
  sh "$holder" "$lock"
rc=$?
if [ "$rc" = 3 ]; then printf 'busy %s\n' "$(head -c 200 -- "$lock" | tr '\n' ' ')"; fi
exit "$rc"
"""

LIST = r"""
cd -- "$1" 2>/dev/null || { printf 'E\0'; exit 0; }
[ -e .klink-sync ] && printf 'M\0'
[ -L latest ] && printf 'L%s\0' "$(readlink latest)"
[ -d snapshots ] || exit 0
printf 'S\0'
find snapshots -mindepth 1 -maxdepth 1 -type d -printf 'D%f\0' || exit 1
find snapshots -mindepth 2 -maxdepth 2 -type f \( -name manifest.json -o -name SHA256SUMS \) \
  -printf 'F%P\0' || exit 1
"""

CAT = r"""cat -- "$1" """

WRITE = r"""
umask 077
tmp=$(dirname -- "$1")/.$(basename -- "$1").tmp
cat >"$tmp" && chmod 600 -- "$tmp" && { sync -- "$tmp" 2>/dev/null || sync; } \
  && mv -f -T -- "$tmp" "$1"
"""

STAGING = r"""
cd -- "$1" || exit 1
shift
umask 077
if [ -e .staging ] || [ -L .staging ]; then
  rm -rf -- .staging 2>/dev/null \
    || { find .staging -type d -exec chmod u+rwx {} \; && rm -rf -- .staging; } || exit 1
fi
mkdir -m 700 .staging || exit 1
for d; do mkdir -p -- ".staging/$d" || exit 1; done
"""

# Regular files (inode, size, mtime) and folders below folder/ and volumes/ of one tree.
WALK = r"""
cd -- "$1" 2>/dev/null || exit 0
for top in folder volumes; do
  [ -d "$top" ] || continue
  find "$top" \( -type f -printf 'f%i %s %T@ %p\0' \) -o \( -type d -printf 'd%p\0' \) || exit 1
done
"""

FREE = r"""stat -f -c '%a %S' -- "$1" """

DIRS = r"""
cd -- "$1" 2>/dev/null || exit 0
shift
for d; do [ -d "$d" ] && printf '%s\0' "$d"; done
exit 0
"""

PROMOTE = r"""
cd -- "$1" || exit 1
name=$2 move_latest=$3
[ ! -e "snapshots/$name" ] || { echo "snapshots/$name exists already" >&2; exit 1; }
mv -T -- .staging "snapshots/$name" || exit 1
if [ "$move_latest" = 1 ]; then
  rm -f -- .latest.tmp && ln -s -- "snapshots/$name" .latest.tmp && mv -T -- .latest.tmp latest \
    || exit 1
fi
sync -- snapshots . 2>/dev/null || sync
"""

# Regular files of the new snapshot (N) and of the one before (P): device, inode, size, name.
SUMS_WALK = r"""
for tree in N P; do
  dir=$1; shift
  [ -n "$dir" ] || continue
  cd -- "$dir" 2>/dev/null || { [ "$tree" = P ] && continue; exit 1; }
  for top in folder volumes; do
    [ -d "$top" ] || continue
    find "$top" -type f -printf "$tree%D %i %s %p\0" || exit 1
  done
done
"""

HASH = r"""cd -- "$1" && xargs -0 -r sha256sum --"""

FILES = r"""
cd -- "$1" || exit 1
for top in folder volumes; do
  [ -d "$top" ] || continue
  find "$top" \( -type f -printf 'f%s %p\0' \) -o -printf 'o%p\0' || exit 1
done
"""

DESCRIBE_JSON = r"""
cd -- "$1/snapshots" 2>/dev/null || exit 0
shift
for n; do
  for f in manifest.json verified.json; do
    [ -f "./$n/$f" ] || continue
    printf 'J%s/%s\0' "$n" "$f"; cat -- "./$n/$f"; printf '\0'
  done
done
"""

# Per snapshot in the order given: bytes of its regular files (a hard link once), and bytes
# of those not hard-linked with the snapshot before it.
DESCRIBE_SIZES = r"""
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
"""

REMOVE = r"""
cd -- "$1/snapshots" || exit 1
name=$2 deleting=$3
case $name in
  "$deleting"*) gone=$name ;;
  *) gone=$deleting$name
     mv -T -- "./$name" "./$gone" || exit 1
     sync -- . 2>/dev/null || sync ;;
esac
rm -rf -- "./$gone" 2>/dev/null \
  || { find "./$gone" -type d -exec chmod u+rwx {} \; && rm -rf -- "./$gone"; }
"""

# ----------------------------------------------------------------------------- destination


@dataclass(frozen=True)
class RemoteSnapshot:
    """One snapshot folder on the remote host (Snapshot's interface)."""

    name: str
    path: PurePosixPath
    complete: bool
    has_sums: bool
    dest: RemoteDestination = field(compare=False, repr=False)

    def manifest(self) -> dict:
        return json.loads(self.dest.read_file(self.path / MANIFEST))


@dataclass(frozen=True)
class Listing:
    exists: bool
    marker: bool
    snapshots_dir: bool
    latest_target: str | None
    folders: tuple[str, ...]  # every folder in snapshots/, dot names included
    files: frozenset[str]  # "<name>/manifest.json", "<name>/SHA256SUMS"


class RemoteDestination:
    """DEST on another host: the layout of destination.Destination, reached over ssh."""

    def __init__(self, spec: str, ssh_options: Sequence[str] = SSH_DEFAULTS):
        match = _FORM.fullmatch(spec)
        if match is None:
            raise UsageError(f"{spec}: not a remote destination ([user@]host:/path)")
        user, host, path = match["user"], match["host"], match["path"]
        if not path.startswith("/"):
            raise UsageError(f"{spec}: a remote destination needs an absolute path "
                             "([user@]host:/path); write ./NAME for a local folder")  # fmt: skip
        if host.startswith("-") or (user or "").startswith("-"):
            raise UsageError(f"{spec}: a host name cannot start with '-'")
        self.spec = spec
        bare = host[1:-1] if host.startswith("[") else host
        self.host = f"{user}@{bare}" if user else bare  # for ssh
        self.rsync_host = f"{user}@{host}" if user else host  # rsync wants [v6] in brackets
        self.path = PurePosixPath(os.path.normpath(path) if path != "/" else "/")
        self.ssh_options = tuple(ssh_options)
        self._lock: process.Session | None = None
        self._mux: tuple[str, ...] = ()  # while locked: share the lock session's connection

    @classmethod
    def from_settings(cls, spec: str, configured: Sequence[str] = ()) -> RemoteDestination:
        return cls(spec, ssh_options(configured))

    def __repr__(self) -> str:
        return f"RemoteDestination({self.spec!r})"

    # the layout
    @property
    def root(self) -> str:
        """What reports and messages call the destination: the spec as given."""
        return self.spec

    @property
    def snapshots_dir(self) -> PurePosixPath:
        return self.path / "snapshots"

    @property
    def staging(self) -> PurePosixPath:
        return self.path / ".staging"

    # commands
    def ssh_argv(self, script: str, *args: str) -> tuple[str, ...]:
        command = shlex.join(("sh", "-c", script, "klink-sync", *map(str, args)))
        return ("ssh", *self.ssh_options, *self._mux, self.host, "--", command)

    def sh(self, what: str, script: str, *args: str, ok_codes: Sequence[int] = (0,),
           input: bytes | None = None) -> process.Result:  # fmt: skip
        """Run one script on the host; a failure names `what` and the host's own words."""
        try:
            return process.run(self.ssh_argv(script, *args), ok_codes=ok_codes, input=input)
        except process.CommandFailed as exc:
            result = exc.result
            if result is None:
                raise RunFailed(f"{self.spec}: {what}: {exc}") from None
            why = result.last_error_line or f"exit code {result.exit_code}"
            if result.exit_code == 255:
                why = f"ssh failed: {why}"
            raise RunFailed(f"{self.spec}: {what}: {why}") from None

    def rsync_path(self, path: str | PurePosixPath) -> str:
        return f"{self.rsync_host}:{path}"

    def rsync(self, argv: Sequence[str]) -> tuple[str, ...]:
        """A local rsync command line made to reach this host (ssh as its remote shell)."""
        ssh = rsh(("ssh", *self.ssh_options, *self._mux))
        return (argv[0], "-e", ssh, "--protect-args", *argv[1:])

    def read_file(self, path: PurePosixPath) -> bytes:
        return _bytes(self.sh(f"cannot read {path}", CAT, str(path)))

    def write_file(self, path: PurePosixPath, data: bytes) -> None:
        """Temporary name, sync, rename, mode 0600: never half a file."""
        self.sh(f"cannot write {path}", WRITE, str(path), input=data)

    def write_json(self, path: PurePosixPath, data: object) -> None:
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"  # as write_json_atomic
        self.write_file(path, text.encode())

    # checks and creation, before anything is stopped: an unusable destination is exit 75
    def _verdict(self, word: str) -> None:
        problems = {
            "notdir": (DestinationUnavailable, "destination is not a folder"),
            "noparent": (DestinationUnavailable, "destination's parent folder does not exist"),
            "notwritable": (DestinationUnavailable, "destination is not writable"),
            "notmounted": (DestinationUnavailable, "not on a mounted disk (require_mount: "
                           "true): is the backup disk mounted?"),
            "foreign": (UsageError, f"destination is not empty and has no {MARKER} marker: "
                        "refusing to use it"),
            "cannotcreate": (DestinationUnavailable, "cannot create the destination's folders"),
            "missing": (UsageError, "no such destination"),
        }  # fmt: skip
        if word in problems:
            kind, message = problems[word]
            raise kind(f"{self.spec}: {message}")
        if word != "ok":
            raise DestinationUnavailable(f"{self.spec}: unexpected answer from the host: {word!r}")

    def check_usable(self, require_mount: bool = False) -> None:
        """As destination.check_usable, on the host (read-only: for --dry-run)."""
        self._ask("cannot check the destination", USABLE, str(self.path),
                  "1" if require_mount else "0")  # fmt: skip

    def _ask(self, what: str, script: str, *args: str) -> None:
        """A check script's one-word answer; an unreachable host is exit 75 here."""
        try:
            answer = self.sh(what, script, *args).stdout.split()
        except RunFailed as exc:
            raise DestinationUnavailable(str(exc)) from None
        self._verdict(answer[-1] if answer else "")

    def prepare(self, require_mount: bool = False) -> RemoteDestination:
        """Check, then create the layout (owner-only) and the marker, as destination.prepare."""
        self._ask("cannot prepare the destination", PREPARE, str(self.path),
                  "1" if require_mount else "0")  # fmt: skip
        return self

    def check_existing(self) -> None:
        """For prune, verify, restore: the folder exists and is klink-sync's."""
        self._ask("cannot read the destination", CHECK, str(self.path))

    def check_free_space(self, needed: int) -> None:
        answer = self.sh("cannot read the free space", FREE, str(self.path)).stdout.split()
        try:
            free = int(answer[0]) * int(answer[1])
        except (IndexError, ValueError):
            raise RunFailed(f"{self.spec}: cannot read the free space: {answer!r}") from None
        if free < needed:
            raise DestinationUnavailable(
                f"{self.spec}: not enough free space: about {needed // 2**20} MiB needed, "
                f"{free // 2**20} MiB free"
            )

    # the lock: an ssh session holding flock on DEST/.lock
    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold DEST/.lock for the block; the session is also the ssh connection every other
        command of the run shares (ControlMaster): no new handshake per rsync, in the stop."""
        holder = f"{os.getpid()} on {socket.gethostname()}"
        control = tempfile.mkdtemp(prefix="klink-sync-ssh-")
        mux = os.path.join(control, "mux")
        master = ("-o", "ControlMaster=yes", "-o", f"ControlPath={mux}", "-o", "ControlPersist=no")
        command = shlex.join(("sh", "-c", LOCK, "klink-sync", str(self.path), holder))
        session = process.Session(("ssh", *self.ssh_options, *master, self.host, "--", command))
        line = session.first_line()
        if line != "locked":
            result = session.close()
            shutil.rmtree(control, ignore_errors=True)
            if line.startswith("busy"):
                raise LockedError(f"{self.spec}: another klink-sync run (pid "
                                  f"{line[5:].strip() or 'unknown'}) holds the lock")  # fmt: skip
            if line == "missing":
                raise DestinationUnavailable(f"{self.spec}: no such destination")
            if line == "noflock":
                raise DestinationUnavailable(f"{self.spec}: no flock command on {self.host} "
                                             "(util-linux)")  # fmt: skip
            why = result.last_error_line or f"exit code {result.exit_code}"
            raise DestinationUnavailable(f"{self.spec}: cannot take the lock over ssh: {why}")
        self._lock = session
        self._mux = ("-o", f"ControlPath={mux}", "-o", "ControlMaster=no")
        try:
            yield
        finally:
            self._lock, self._mux = None, ()
            result = session.close()
            shutil.rmtree(control, ignore_errors=True)
            if result.exit_code != 0:
                log.warning("%s: the lock's ssh session ended with exit code %d: %s", self.spec,
                            result.exit_code, result.last_error_line)  # fmt: skip

    def check_lock(self) -> None:
        """Before a promotion: a lock lost (the ssh session died) means another run may write."""
        if self._lock is not None and not self._lock.alive:
            raise RunFailed(f"{self.spec}: the lock's ssh session ended (connection lost?): "
                            "nothing promoted")  # fmt: skip

    # the listing
    def listing(self) -> Listing:
        out = _bytes(self.sh("cannot list the snapshots", LIST, str(self.path)))
        records = [os.fsdecode(r) for r in _records(out)]
        latest = next((r[1:] for r in records if r.startswith("L")), None)
        return Listing(
            exists="E" not in records, marker="M" in records, snapshots_dir="S" in records,
            latest_target=latest, folders=tuple(r[1:] for r in records if r.startswith("D")),
            files=frozenset(r[1:] for r in records if r.startswith("F")),
        )  # fmt: skip

    def _snapshot(self, listing: Listing, name: str) -> RemoteSnapshot:
        complete = f"{name}/{MANIFEST}" in listing.files
        sums = f"{name}/{checksums.SUMS}" in listing.files
        return RemoteSnapshot(name, self.snapshots_dir / name, complete, sums, self)

    def snapshots(self, listing: Listing | None = None) -> list[RemoteSnapshot]:
        """Every snapshot folder, oldest first; never one that prune is removing."""
        listing = listing or self.listing()
        names = [n for n in listing.folders if not n.startswith(".")]
        return [self._snapshot(listing, n) for n in sorted(names, key=sort_key)]

    def latest(self, listing: Listing | None = None) -> RemoteSnapshot | None:
        """The snapshot `latest` points to, if it is complete."""
        listing = listing or self.listing()
        if listing.latest_target is None:
            return None
        name = os.path.basename(listing.latest_target)
        if name not in listing.folders:
            return None
        snapshot = self._snapshot(listing, name)
        return snapshot if snapshot.complete else None

    def find(self, name: str) -> RemoteSnapshot:
        listing = self.listing()
        if name == "latest":
            found = self.latest(listing)
            if found is None:
                raise UsageError(f"{self.spec}: no complete snapshot yet")
            return found
        for snapshot in self.snapshots(listing):
            if snapshot.name == name:
                return snapshot
        raise UsageError(f"{self.spec}: no snapshot named '{name}'")

    # a run's steps
    def fresh_staging(self, folders: Sequence[str]) -> PurePosixPath:
        """An empty staging folder (a failed run's leftovers are never trusted) + `folders`."""
        self.sh("cannot make a fresh staging folder", STAGING, str(self.path), *folders)
        return self.staging

    def walk(self, tree: PurePosixPath) -> tuple[dict[str, RemoteStat], set[str]]:
        """Regular files (full path -> state) and folders (relative) below folder/, volumes/."""
        out = _bytes(self.sh(f"cannot walk {tree}", WALK, str(tree)))
        files: dict[str, RemoteStat] = {}
        folders: set[str] = set()
        for record in _records(out):
            kind, rest = record[:1], record[1:]
            if kind == b"d":
                folders.add(os.fsdecode(rest))
                continue
            ino, size, mtime, name = rest.split(b" ", 3)
            files[f"{tree}/{os.fsdecode(name)}"] = RemoteStat(int(ino), int(size),
                                                              _mtime_ns(mtime.decode()))
        return files, folders

    def promote(self, when: float, suffix: str = "", move_latest: bool = True) -> RemoteSnapshot:
        """Staging becomes a snapshot by `mv -T`; `latest` moves by `ln -s` + `mv -T`."""
        self.check_lock()
        listing = self.listing()
        name = snapshot_name(when, set(listing.folders), suffix)
        self.sh("cannot promote the snapshot", PROMOTE, str(self.path), name,
                "1" if move_latest else "0")  # fmt: skip
        return RemoteSnapshot(name, self.snapshots_dir / name, True, False, self)

    def load_index(self, snapshot: PurePosixPath) -> dict[str, fileindex.Scan]:
        """The previous run's walks (source-index.json.gz, read with cat); none trusts nothing."""
        try:
            data = self.read_file(snapshot / INDEX)
        except RunFailed as exc:
            log.debug("no previous index: %s", exc)
            return {}
        with tempfile.TemporaryDirectory(prefix="klink-sync-") as tmp:
            local = Path(tmp) / INDEX
            local.write_bytes(data)
            return fileindex.load(local)

    def save_index(self, path: PurePosixPath, scans: Mapping[str, fileindex.Scan]) -> None:
        with tempfile.TemporaryDirectory(prefix="klink-sync-") as tmp:
            local = Path(tmp) / INDEX
            fileindex.save(local, scans)
            self.write_file(path, local.read_bytes())

    # checksums
    def write_sums(self, snapshot: PurePosixPath, previous: PurePosixPath | None
                   ) -> checksums.ChecksumResult:  # fmt: skip
        """SHA256SUMS of a snapshot, computed on the host; same inode as before: reused."""
        began = time.monotonic()
        out = _bytes(self.sh("cannot walk the snapshot", SUMS_WALK, str(snapshot),
                             str(previous) if previous else ""))  # fmt: skip
        new: dict[bytes, tuple[tuple[int, int], int]] = {}
        old: dict[bytes, tuple[int, int]] = {}
        for record in _records(out):
            dev, ino, size, name = record[1:].split(b" ", 3)
            inode = (int(dev), int(ino))
            if record[:1] == b"N":
                new[name] = (inode, int(size))
            else:
                old[name] = inode
        known: dict[bytes, str] = {}
        if previous is not None and old:
            try:
                known = checksums.parse_sums(self.read_file(previous / checksums.SUMS))
            except (RunFailed, checksums.ChecksumFileError) as exc:
                log.warning("not reusing the previous checksums: %s", exc)
        by_inode: dict[tuple[int, int], str] = {}
        reused = 0
        for name, (inode, _) in new.items():
            if name in known and old.get(name) == inode:
                by_inode[inode] = known[name]
                reused += 1
        to_read: dict[tuple[int, int], bytes] = {}  # one name per inode not known yet
        for name, (inode, _) in new.items():
            if inode not in by_inode:
                to_read.setdefault(inode, name)
        hashed = self.hash_files(snapshot, sorted(to_read.values()))
        missing = [n for n in to_read.values() if n not in hashed]
        if missing:
            raise RunFailed(f"{self.spec}: sha256sum did not read "
                            f"{checksums.show_name(missing[0])}")  # fmt: skip
        for inode, name in to_read.items():
            by_inode[inode] = hashed[name]
        entries = {name: by_inode[inode] for name, (inode, _) in new.items()}
        self.write_file(snapshot / checksums.SUMS, checksums.format_sums(entries))
        hashed_bytes = sum(new[n][1] for n in to_read.values())
        return checksums.ChecksumResult(len(entries), len(to_read), hashed_bytes, reused,
                                        time.monotonic() - began)  # fmt: skip

    def hash_files(self, snapshot: PurePosixPath, names: Sequence[bytes]) -> dict[bytes, str]:
        """name -> sha256 by `sha256sum` on the host; names it could not read are left out."""
        if not names:
            return {}
        result = self.sh("cannot compute checksums", HASH, str(snapshot), ok_codes=(0, 123),
                         input=b"".join(n + b"\0" for n in names))  # fmt: skip
        if result.exit_code:
            log.warning("%s: sha256sum: %s", self.spec, result.last_error_line)
        return checksums.parse_sums(_bytes(result), f"{self.spec}: sha256sum")

    def files(self, snapshot: PurePosixPath) -> tuple[dict[bytes, int], set[bytes]]:
        """Regular files (name -> size) and every other entry below folder/ and volumes/."""
        out = _bytes(self.sh(f"cannot read {snapshot}", FILES, str(snapshot)))
        regular: dict[bytes, int] = {}
        other: set[bytes] = set()
        for record in _records(out):
            if record[:1] == b"f":
                size, name = record[1:].split(b" ", 1)
                regular[name] = int(size)
            else:
                other.add(record[1:])
        return regular, other

    # listing with sizes, prune
    def describe_snapshots(self) -> list[dict]:
        """As destination.describe_snapshots: size, new bytes, manifest facts, verified."""
        listing = self.listing()
        snaps = self.snapshots(listing)
        latest = self.latest(listing)
        if not snaps:
            return []
        names = [s.name for s in snaps]
        out = _bytes(self.sh("cannot read the manifests", DESCRIBE_JSON, str(self.path), *names))
        records = out.split(b"\0")
        docs: dict[str, dict] = {}
        for i in range(0, len(records) - 1, 2):
            if records[i][:1] != b"J":
                continue
            try:
                docs[os.fsdecode(records[i][1:])] = json.loads(records[i + 1])
            except ValueError:
                docs[os.fsdecode(records[i][1:])] = {}
        sizes_out = self.sh("cannot measure the snapshots", DESCRIBE_SIZES, str(self.path), *names)
        sizes: dict[int, tuple[int, int]] = {}
        for line in sizes_out.stdout.splitlines():
            idx, total, fresh = (int(x) for x in line.split())
            sizes[idx] = (total, fresh)
        rows = []
        for i, snap in enumerate(snaps):
            manifest = docs.get(f"{snap.name}/{MANIFEST}", {}) if snap.complete else {}
            verified = docs.get(f"{snap.name}/{VERIFIED}", {})
            when = name_time(snap.name)
            total, fresh = sizes.get(i, (0, 0))
            rows.append({
                "name": snap.name, "time": when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None,
                "complete": snap.complete, "latest": bool(latest) and latest.name == snap.name,
                "mode": manifest.get("mode"), "result": manifest.get("result", "incomplete"),
                "downtime_seconds": manifest.get("downtime_seconds"),
                "total_bytes": total, "new_bytes": fresh,
                "verified": verified.get("time") if isinstance(verified, dict) else None,
            })  # fmt: skip
        return rows

    def remove_snapshot(self, name: str) -> None:
        """Rename out of the listing first, then delete (folders made writable if need be)."""
        self.sh(f"cannot remove {name}", REMOVE, str(self.path), name, DELETING)

    def prune(self, rules: Retention, dry_run: bool) -> dict:
        """As destination.prune; the caller holds the lock unless this is a dry run."""
        listing = self.listing()
        latest = self.latest(listing)
        listed = self.snapshots(listing)
        decision = decide([(s.name, s.complete) for s in listed], latest.name if latest else None,
                          rules)  # fmt: skip
        leftovers = sorted(n for n in listing.folders if n.startswith(DELETING))
        if not dry_run:
            for name in leftovers:
                log.info("removing %s (left by an interrupted prune)", name)
                self.remove_snapshot(name)
            for name in decision.remove:
                log.info("removing %s", name)
                self.remove_snapshot(name)
        return {
            "dry_run": dry_run, "rules": rules.to_dict(),
            "keep": [{"name": n, "reasons": list(why)} for n, why in decision.keep],
            "remove": list(decision.remove), "leftovers": leftovers,
        }  # fmt: skip

    def prune_command(self, rules: Retention, dry_run: bool) -> dict:
        """`klink-sync prune` on this destination: its checks, the lock, the removal."""
        listing = self.listing()
        if not listing.exists or not listing.snapshots_dir:
            raise DestinationUnavailable(f"{self.spec}: no snapshots folder: nothing to prune")
        if not listing.marker:
            raise UsageError(f"{self.spec}: no {MARKER} marker: refusing to prune")
        if dry_run:
            return self.prune(rules, dry_run=True)
        with self.locked():  # never while a backup runs
            return self.prune(rules, dry_run=False)

    def count_snapshots(self) -> int:
        return sum(1 for s in self.snapshots() if s.complete)


# ----------------------------------------------------------------------------- a run


class RemoteRun(Run):
    """execute.Run with its destination seams over ssh (see Run's destination seams)."""

    dest: RemoteDestination

    def _check_apart(self) -> None:
        """On this very host (a loopback name), a destination inside a source copies itself."""
        check_apart(self.dest, [s.path for s in self.sources.values()])

    def _previous_walks(self) -> dict[str, fileindex.Scan]:
        return {}  # read over ssh in _open_destination: the first walk asks every xattr

    def _open_destination(self) -> None:
        listing = self.dest.listing()
        latest = self.dest.latest(listing)
        self.latest_path = latest.path if latest else None
        self.previous = self.dest.load_index(self.latest_path) if self.latest_path else {}
        into = {landing(u, self.sources[u.dest]) for u in self.plan.units}
        parents = sorted({os.path.dirname(i) for i in into} - {""})
        self.staging = self.dest.fresh_staging(parents)
        self.copy_states: dict[str, RemoteStat] = {}
        self.latest_folders: set[str] = set()
        if self.latest_path is not None:  # immutable for the whole run: walked once, now
            self.copy_states, self.latest_folders = self.dest.walk(self.latest_path)
        self.dest.check_free_space(self._bytes_needed())

    def hot_pass(self) -> None:
        """The hot pass, then one walk of what it left in staging (the stack still runs)."""
        super().hot_pass()
        if any(p.phase is Phase.HOT for p in self.passes):
            staged, _ = self.dest.walk(self.staging)
            self.copy_states.update(staged)

    def _copy_argv(
        self, unit: CopyUnit, source: Source, latest: PurePosixPath | None, itemize: bool = False,
        progress: bool = False, xattrs: bool = True,
    ) -> tuple:  # fmt: skip
        into = landing(unit, source)
        link_dest = None
        if latest is not None and into in self.latest_folders:
            link_dest = str(latest / into)
        argv = rsync.copy_argv(source.path, self.dest.rsync_path(self.staging / into),
                               link_dest=link_dest, excludes=unit.excludes,
                               source_is_file=source.is_file, itemize=itemize,
                               progress=progress, patterns=unit.patterns,
                               xattrs=xattrs)  # fmt: skip
        return self.dest.rsync(argv)

    def _refresh_copy(self, root: str, into: str, names: list[str]) -> process.Result:
        fd, listing = tempfile.mkstemp(prefix="klink-sync-refresh-")
        os.close(fd)
        try:
            fileindex.write_null_list(Path(listing), names)
            target = self.dest.rsync_path(self.staging / into)
            return process.run(self.dest.rsync(rsync.refresh_argv(root, target, listing)))
        finally:
            os.unlink(listing)

    def _drop_copies(self, into: str, names: list[str]) -> bool:
        return False  # not one ssh call per file: the ctime refresh copies them again

    def _stat_copy(self, path: str) -> RemoteStat | None:  # type: ignore[override]
        return self.copy_states.get(path)

    def _complete(self, manifest: dict, when: float, suffix: str, move_latest: bool):
        self.dest.check_lock()
        self.dest.save_index(self.staging / INDEX, self.cold_scans)
        self.dest.write_json(self.staging / MANIFEST, manifest)
        return self.dest.promote(when, suffix, move_latest)

    def _sums_while_starting(self) -> None:
        pass  # computed on the destination's host, after the promotion

    def _write_sums(self, name: str) -> checksums.ChecksumResult:
        return self.dest.write_sums(self.dest.snapshots_dir / name, self.latest_path)


def check_apart(dest: RemoteDestination, sources: Sequence[str]) -> None:
    """destination.check_apart when the host is this one by a loopback name (localhost,
    127.x.x.x, ::1); another host's folder cannot be inside a source here, nor the reverse."""
    host = dest.host.rpartition("@")[2]
    if host == "localhost" or host == "::1" or re.fullmatch(r"127(\.\d{1,3}){3}", host):
        destination.check_apart(Path(dest.path), sources)


def run_backup(plan: Plan, dest: RemoteDestination, stack: Stack,
               options: RunOptions | None = None) -> Report:  # fmt: skip
    """execute.run_backup for a remote destination: lock it (ssh + flock), run, prune."""
    # every refusal before anything is created, stopped or locked
    check_apart(dest, [s.path for s in resolve_sources(plan).values()])
    options = options or RunOptions()
    dest.prepare(options.require_mount)
    try:
        # a signal before the stop ends the run cleanly too (the lock's session closed)
        with signals_raise(), destination.deployment_locked(plan.folder), dest.locked():
            report = RemoteRun(plan, dest, stack, options).execute()  # type: ignore[arg-type]
            retention = options.retention
            if retention is not None and not retention.empty:
                pruned = dest.prune(retention, dry_run=False)
                report = Report(**{**report.__dict__, "pruned": tuple(pruned["remove"])})
            return report
    except OSError as exc:  # a source folder vanished, a local disk error: one line, exit 1
        where = exc.filename or dest.spec
        raise RunFailed(f"{where}: {exc.strerror or exc}; nothing was promoted") from exc


def dry_run_commands(plan: Plan, dest: RemoteDestination, stack: Stack,
                     sources: Mapping[str, Source]):  # fmt: skip
    """The commands a run would issue (as execute.dry_run_commands); touches nothing."""
    run = RemoteRun(plan, dest, stack)  # type: ignore[arg-type]
    run.sources = dict(sources)
    latest = dest.latest()
    run.latest_path = latest.path if latest else None
    run.staging = dest.staging
    run.latest_folders = set()
    if run.latest_path is not None:
        into = [landing(u, sources[u.dest]) for u in plan.units]
        found = dest.sh("cannot read the latest snapshot", DIRS, str(run.latest_path), *into)
        run.latest_folders = {os.fsdecode(r) for r in _records(_bytes(found))}
    if plan.mode is Mode.HOT_COLD:
        for unit in plan.hot_units:
            yield Phase.HOT, run._copy_argv(unit, sources[unit.dest], run.latest_path)
    yield Phase.STOP, stack.argv("stop", "-t", str(plan.stop_timeout))
    for unit in plan.units:
        yield Phase.COLD, run._copy_argv(unit, sources[unit.dest], run.latest_path)
    yield Phase.START, stack.argv("start", "<services running before>")


# ----------------------------------------------------------------------------- verify


def verify_snapshot(dest: RemoteDestination, snapshot: RemoteSnapshot, sample: float = 100,
                    database: bool = False, rng: random.Random | None = None
                    ) -> Verdict:  # fmt: skip
    """verify.verify_snapshot on the host: re-read with sha256sum there, walk with find."""
    if database:
        raise UsageError(f"{dest.spec}: --database needs the snapshot on this host (Docker runs "
                         "the database here); verify it on the backup host")  # fmt: skip
    if not 0 < sample <= 100:
        raise UsageError(f"--sample {sample:g}: give a percentage above 0, at most 100")
    if not snapshot.complete:
        raise KlinkSyncError(f"snapshot {snapshot.name} is incomplete (no {MANIFEST}): refusing it")
    if not snapshot.has_sums:
        raise KlinkSyncError(
            f"snapshot {snapshot.name} has no checksums ({checksums.SUMS}): nothing to verify "
            "against (made before klink-sync wrote them, or its run is still finishing)"
        )
    began = time.monotonic()
    listed = checksums.parse_sums(dest.read_file(snapshot.path / checksums.SUMS),
                                  f"{dest.spec}: {snapshot.name}/{checksums.SUMS}")  # fmt: skip
    present, _ = dest.files(snapshot.path)
    missing = listed.keys() - present.keys()
    extra = present.keys() - listed.keys()
    candidates = sorted(listed.keys() & present.keys())
    count = sample_size(len(listed), sample)
    chosen = candidates if count >= len(candidates) else sorted(
        (rng or random.SystemRandom()).sample(candidates, count))  # fmt: skip
    digests = dest.hash_files(snapshot.path, chosen)
    changed = [n for n in chosen if digests.get(n) != listed[n]]
    read = sum(present[n] for n in chosen if n in digests)
    files = FileCheck(
        listed=len(listed), checked=len(chosen), sample=sample, bytes_read=read,
        missing=tuple(checksums.names(missing)), changed=tuple(checksums.names(changed)),
        extra=tuple(checksums.names(extra)),
    )  # fmt: skip
    log.info("snapshot %s: %d of %d files re-read on %s (%s bytes) in %.1fs; %s", snapshot.name,
             files.checked, files.listed, dest.host, files.bytes_read, time.monotonic() - began,
             files.summary())  # fmt: skip
    verdict = Verdict(snapshot.name, files)
    if verdict.ok:
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "sample": percent(sample), "files": files.checked}  # fmt: skip
        dest.write_json(snapshot.path / VERIFIED, record)
    return verdict


# ----------------------------------------------------------------------------- restore


def quick_verify(dest: RemoteDestination, snapshot: RemoteSnapshot) -> None:
    """restore.quick_verify on the host: every file SHA256SUMS lists is there."""
    if not snapshot.has_sums:
        return
    listed = checksums.parse_sums(dest.read_file(snapshot.path / checksums.SUMS))
    regular, other = dest.files(snapshot.path)
    missing = [n for n in listed if n not in regular and n not in other]
    if missing:
        raise UsageError(
            f"snapshot {snapshot.name} fails a quick verify: {len(missing)} listed file(s) "
            f"missing, first {os.fsdecode(missing[0])!r}; run klink-sync verify {snapshot.name}"
        )


class RemoteRestore(Restore):
    """restore.Restore reading a snapshot over ssh; the safety snapshot goes there too."""

    run_class = RemoteRun
    dest: RemoteDestination  # type: ignore[assignment]

    def _restore_argv(self, move: Move, target: str) -> tuple[str, ...]:
        remote = replace(move, source=self.dest.rsync_path(move.source))
        return self.dest.rsync(restore_argv(remote, target))


def run_restore(restore: RemoteRestore):
    with restore.dest.locked():
        began = time.monotonic()
        report = restore.execute()
        log.info("restore done in %.1fs", time.monotonic() - began)
        return report


def count_snapshots(spec: str, configured: Sequence[str] = ()) -> int | None:
    """For the metrics file; None when the host cannot be asked."""
    try:
        return RemoteDestination.from_settings(spec, configured).count_snapshots()
    except KlinkSyncError as exc:
        log.warning("cannot count the snapshots: %s", exc)
        return None
