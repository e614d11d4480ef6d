"""A destination on another host, over ssh: `--dest [user@]host:/abs/path`.

The same layout and rules as a local folder. Everything on the remote side is done by the
remote host's own tools (sh, coreutils, GNU find, flock, sha256sum, rsync), one ssh command
each, never one per file:

- every remote command is `ssh OPTIONS HOST -- 'sh' '-c' SCRIPT 'klink-sync' ARG...`: the
  scripts are the files in scripts/ beside this module (shellchecked), and every argument
  (paths included) is quoted with shlex.quote, so no name is ever read as shell syntax;
- rsync reaches the host with `-e "ssh OPTIONS"` and `--protect-args`;
- the lock is `flock -n` on DEST/.lock held by an ssh session that stays open for the whole
  run (its standard input a pipe): it ends, and the lock with it, when the run ends or dies;
  every other command of the run shares its connection (ControlMaster);
- the ctime check needs the state of the copies: one `find` walk of staging and `latest`,
  right after the hot pass while the stack still runs, answers it as lstat would here.

SSH options come from KLINK_SYNC_SSH (a command-line fragment) or the config's
`ssh_options` (a list); BatchMode (never a password prompt), a connect timeout and
keep-alives are added after them (ssh takes the first value given for an option).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from .. import checksums, process
from ..errors import DestinationUnavailable, LockedError, RunFailed, UsageError
from .base import DELETING, MARKER, CopyState, Destination, Listing, log
from .local import check_apart

SSH_ENV = "KLINK_SYNC_SSH"
# After the user's options: ssh keeps the first value it is given for each option.
SSH_DEFAULTS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=30",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4")  # fmt: skip
# What --dry-run shows for the lock session's connection, made when the run takes the lock.
PLANNED_CONTROL = "/tmp/klink-sync-ssh-XXXXXXXX/mux"

_FORM = re.compile(r"(?:(?P<user>[^@/:\s]+)@)?"  # user@ (optional)
                   r"(?P<host>\[[0-9A-Fa-f:.%\w]+\]|[^@/:\s\[\]]+)"  # host, or [IPv6]
                   r":(?P<path>.*)", re.S)  # fmt: skip

_ANSWERS = {
    "notdir": (DestinationUnavailable, "destination is not a folder"),
    "noparent": (DestinationUnavailable, "destination's parent folder does not exist"),
    "notwritable": (DestinationUnavailable, "destination is not writable"),
    "notmounted": (DestinationUnavailable, "not on a mounted disk (require_mount: true): "
                   "is the backup disk mounted?"),
    "foreign": (UsageError, f"destination is not empty and has no {MARKER} marker: "
                "refusing to use it"),
    "cannotcreate": (DestinationUnavailable, "cannot create the destination's folders"),
    "missing": (UsageError, "no such destination"),
}  # fmt: skip


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


@cache
def script(name: str) -> str:
    """One of the shell scripts run on the destination's host."""
    return (Path(__file__).parent / "scripts" / f"{name}.sh").read_text(encoding="utf-8")


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


def _mux_options(control: str) -> tuple[str, ...]:
    return ("-o", f"ControlPath={control}", "-o", "ControlMaster=no")


class SshDestination(Destination):
    """DEST on another host, reached over ssh."""

    def __init__(self, spec: str, options: Sequence[str] = SSH_DEFAULTS):
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
        self.root = PurePosixPath(os.path.normpath(path) if path != "/" else "/")
        self.ssh_options = tuple(options)
        self._lock: process.Session | None = None
        # The lock session's connection, shared by every command while it is held; before,
        # what a dry run shows in its place.
        self._mux: tuple[str, ...] = ()
        self.planned = False

    def __repr__(self) -> str:
        return f"SshDestination({self.spec!r})"

    # --- commands
    def ssh_argv(self, name: str, *args: str) -> tuple[str, ...]:
        command = shlex.join(("sh", "-c", script(name), "klink-sync", *map(str, args)))
        return ("ssh", *self.ssh_options, *self._shared(), self.host, "--", command)

    def _shared(self) -> tuple[str, ...]:
        return self._mux or (_mux_options(PLANNED_CONTROL) if self.planned else ())

    def sh(self, what: str, name: str, *args: str, ok_codes: Sequence[int] = (0,),
           input: bytes | None = None) -> process.Result:  # fmt: skip
        """Run one script on the host; a failure names `what` and the host's own words."""
        try:
            return process.run(self.ssh_argv(name, *args), ok_codes=ok_codes, input=input)
        except process.CommandFailed as exc:
            result = exc.result
            if result is None:
                raise RunFailed(f"{self.spec}: {what}: {exc}") from None
            why = result.last_error_line or f"exit code {result.exit_code}"
            if result.exit_code == 255:
                why = f"ssh failed: {why}"
            raise RunFailed(f"{self.spec}: {what}: {why}") from None

    def path(self, rel: str = "") -> str:
        return str(self.root / rel) if rel else str(self.root)

    def rsync_address(self, path: str) -> str:
        return f"{self.rsync_host}:{path}"

    def rsync_argv(self, argv: Sequence[str]) -> tuple[str, ...]:
        ssh = rsh(("ssh", *self.ssh_options, *self._shared()))
        return (argv[0], "-e", ssh, "--protect-args", *argv[1:])

    # --- checks: an unreachable host is exit 75 here
    def _ask(self, what: str, name: str, *args: str) -> None:
        """A check script's one-word answer."""
        try:
            answer = self.sh(what, name, *args).stdout.split()
        except RunFailed as exc:
            raise DestinationUnavailable(str(exc)) from None
        word = answer[-1] if answer else ""
        if word in _ANSWERS:
            kind, message = _ANSWERS[word]
            raise kind(f"{self.spec}: {message}")
        if word != "ok":
            raise DestinationUnavailable(f"{self.spec}: unexpected answer from the host: {word!r}")

    def check_usable(self, require_mount: bool = False, create: bool = False) -> None:
        self._ask("cannot check the destination", "usable", str(self.root),
                  "1" if require_mount else "0", "1" if create else "0")  # fmt: skip

    def check_existing(self) -> None:
        self._ask("cannot read the destination", "check", str(self.root))

    def check_apart(self, sources: Sequence[str]) -> None:
        """On this very host (a loopback name), a destination inside a source copies
        itself; another host's folder cannot be inside a source here, nor the reverse."""
        host = self.host.rpartition("@")[2]
        if host == "localhost" or host == "::1" or re.fullmatch(r"127(\.\d{1,3}){3}", host):
            check_apart(self.root, sources, self.spec)

    def free_bytes(self) -> int:
        answer = self.sh("cannot read the free space", "free", str(self.root)).stdout.split()
        try:
            return int(answer[0]) * int(answer[1])
        except (IndexError, ValueError):
            raise RunFailed(f"{self.spec}: cannot read the free space: {answer!r}") from None

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold DEST/.lock for the block, in a session every other command shares."""
        control = tempfile.mkdtemp(prefix="klink-sync-ssh-")
        mux = os.path.join(control, "mux")
        master = ("-o", "ControlMaster=yes", "-o", f"ControlPath={mux}", "-o", "ControlPersist=no")
        holder = f"{os.getpid()} on {socket.gethostname()}"
        command = shlex.join(("sh", "-c", script("lock"), "klink-sync", str(self.root), holder))
        session = process.Session(("ssh", *self.ssh_options, *master, self.host, "--", command))
        line = session.first_line()
        if line != "locked":
            result = session.close()
            shutil.rmtree(control, ignore_errors=True)
            self._refused(line, result)
        self._lock, self._mux = session, _mux_options(mux)
        try:
            yield
        finally:
            self._lock, self._mux = None, ()
            result = session.close()
            shutil.rmtree(control, ignore_errors=True)
            if result.exit_code != 0:
                log.warning("%s: the lock's ssh session ended with exit code %d: %s", self.spec,
                            result.exit_code, result.last_error_line)  # fmt: skip

    def _refused(self, line: str, result: process.Result) -> None:
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

    def show_as_locked(self) -> None:
        """Commands share the lock session's connection, made when the run takes it."""
        self.planned = True

    def check_lock(self) -> None:
        """A lock lost (the ssh session died) means another run may write."""
        if self._lock is not None and not self._lock.alive:
            raise RunFailed(f"{self.spec}: the lock's ssh session ended (connection lost?): "
                            "nothing promoted")  # fmt: skip

    # --- small files
    def read(self, rel: str) -> bytes:
        return _bytes(self.sh(f"cannot read {rel}", "cat", self.path(rel)))

    def read_many(self, rels: Sequence[str]) -> dict[str, bytes]:
        """One ssh command for them all."""
        out = _bytes(self.sh("cannot read the manifests", "cat-many", str(self.root), *rels))
        records = out.split(b"\0")
        return {os.fsdecode(records[i][1:]): records[i + 1]
                for i in range(0, len(records) - 1, 2) if records[i][:1] == b"J"}  # fmt: skip

    def write_atomic(self, rel: str, data: bytes) -> None:
        self.sh(f"cannot write {rel}", "write", self.path(rel), input=data)

    # --- the layout
    def listing(self) -> Listing:
        out = _bytes(self.sh("cannot list the snapshots", "list", str(self.root)))
        records = [os.fsdecode(r) for r in _records(out)]
        latest = next((r[1:] for r in records if r.startswith("L")), None)
        return Listing(
            exists="E" not in records, marker="M" in records, snapshots_dir="S" in records,
            latest_target=latest, folders=tuple(r[1:] for r in records if r.startswith("D")),
            files=frozenset(r[1:] for r in records if r.startswith("F")),
        )  # fmt: skip

    def fresh_staging(self, folders: Sequence[str]) -> None:
        self.sh("cannot make a fresh staging folder", "staging", str(self.root), *folders)

    def existing_folders(self, rel: str, folders: Sequence[str]) -> set[str]:
        found = self.sh(f"cannot read {rel}", "dirs", self.path(rel), *folders)
        return {os.fsdecode(r) for r in _records(_bytes(found))}

    def copy_states(self, rels: Sequence[str]) -> Callable[[str], CopyState | None]:
        """One walk of these trees now (they change no more before the cold pass reads)."""
        out = _bytes(self.sh("cannot walk the copies", "walk", *map(self.path, rels)))
        states: dict[str, RemoteStat] = {}
        tree = ""
        for record in _records(out):
            if record[:1] == b"T":
                tree = os.fsdecode(record[1:])
                continue
            ino, size, mtime, name = record[1:].split(b" ", 3)
            states[f"{tree}/{os.fsdecode(name)}"] = RemoteStat(int(ino), int(size),
                                                               _mtime_ns(mtime.decode()))
        return states.get

    def drop_copies(self, rel: str, names: Sequence[str]) -> bool:
        return False  # not one ssh call per file: the ctime refresh copies them again

    def promote(self, name: str, move_latest: bool) -> None:
        self.sh("cannot promote the snapshot", "promote", str(self.root), name,
                "1" if move_latest else "0")  # fmt: skip

    def remove(self, name: str) -> None:
        self.sh(f"cannot remove {name}", "remove", str(self.root), name, DELETING)

    # --- contents
    def files(self, rel: str) -> tuple[dict[bytes, int], set[bytes]]:
        out = _bytes(self.sh(f"cannot read {rel}", "files", self.path(rel)))
        regular: dict[bytes, int] = {}
        other: set[bytes] = set()
        for record in _records(out):
            if record[:1] == b"f":
                size, name = record[1:].split(b" ", 1)
                regular[name] = int(size)
            else:
                other.add(record[1:])
        return regular, other

    def links(self, rel: str) -> set[bytes]:
        return set(_records(_bytes(self.sh(f"cannot read {rel}", "links", self.path(rel)))))

    def hash_files(self, rel: str, names: Sequence[bytes]) -> dict[bytes, str]:
        """By `sha256sum` on the host."""
        if not names:
            return {}
        result = self.sh("cannot compute checksums", "hash", self.path(rel), ok_codes=(0, 123),
                         input=b"".join(n + b"\0" for n in names))  # fmt: skip
        if result.exit_code:
            log.warning("%s: sha256sum: %s", self.spec, result.last_error_line)
        return checksums.parse_sums(_bytes(result), f"{self.spec}: sha256sum")

    def compute_sums(self, rel: str, previous: str | None, background: bool = False
                     ) -> tuple[dict[bytes, str], checksums.ChecksumResult]:  # fmt: skip
        """One walk of both trees; the previous SHA256SUMS for inodes they share; sha256sum
        on the host for the rest."""
        out = _bytes(self.sh("cannot walk the snapshot", "sums-walk", self.path(rel),
                             self.path(previous) if previous else ""))  # fmt: skip
        new: dict[bytes, tuple[tuple[int, int], int]] = {}
        old: dict[bytes, tuple[int, int]] = {}
        for record in _records(out):
            dev, ino, size, name = record[1:].split(b" ", 3)
            if record[:1] == b"N":
                new[name] = ((int(dev), int(ino)), int(size))
            else:
                old[name] = (int(dev), int(ino))
        known: dict[bytes, str] = {}
        if previous is not None and old:
            try:
                known = checksums.parse_sums(self.read(f"{previous}/{checksums.SUMS}"))
            except (RunFailed, checksums.ChecksumFileError) as exc:
                log.warning("not reusing the previous checksums: %s", exc)
        return checksums.reuse_or_hash(new, old, known,
                                       lambda names: self.hash_files(rel, names))  # fmt: skip

    def sizes(self, names: Sequence[str]) -> list[tuple[int, int]]:
        out = self.sh("cannot measure the snapshots", "sizes", str(self.root), *names)
        found: dict[int, tuple[int, int]] = {}
        for line in out.stdout.splitlines():
            idx, total, fresh = (int(x) for x in line.split())
            found[idx] = (total, fresh)
        return [found.get(i, (0, 0)) for i in range(len(names))]
