"""What klink-sync keeps on this host beyond a destination: the deployment's lock, and the
record of what it holds (services it stopped, a restore under way), written before it takes
them. Both live in a root-only folder that a reboot does not empty (not /run), opened
without following symlinks, so a killed run's successor finds and releases what it held."""

from __future__ import annotations

import calendar
import errno
import hashlib
import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from .destination.local import flocked
from .errors import KlinkSyncError, LockedError, UsageError

log = logging.getLogger(__name__)

STATE_ENV = "KLINK_SYNC_STATE_DIR"
DEFAULT_STATE_DIR = "/var/lib/klink-sync"
STOPPED = "stopped"  # klink-sync stopped these services and must start them again
RESTORING = "restoring"  # a restore is replacing the data: nothing may start or copy it
PAUSED = "paused"  # klink-sync froze these containers (docker pause) and must thaw them
MAX_STOP_TIMEOUT = 3600  # s: the most a config may give a stop, and a record may say


@dataclass(frozen=True)
class Hold:
    """What one run holds of a deployment, recorded on disk before it takes it."""

    folder: str
    compose: tuple[str, ...]
    compose_files: tuple[str, ...]
    services: tuple[str, ...]  # to start again
    how: str  # STOPPED, PAUSED or RESTORING
    pid: int
    since: str  # UTC
    snapshot: str = ""  # the snapshot a restore was putting back
    containers: tuple[str, ...] = ()  # PAUSED: the container ids it froze
    stop_timeout: int = 0  # STOPPED: the stop's timeout (Docker may still be stopping)
    stop_ended: bool = False  # STOPPED: the run saw its stop end (none goes on in Docker)

    def describe(self) -> str:
        what = {STOPPED: "stopped", PAUSED: "froze (docker pause)"}.get(
            self.how, f"began restoring {self.snapshot} into"
        )
        return f"klink-sync (pid {self.pid}, {self.since}) {what} {self.folder}"


def state_dir_path() -> Path:
    return Path(os.environ.get(STATE_ENV) or DEFAULT_STATE_DIR)


def state_dir() -> Path:
    """The private state folder, created 0700; a planted or shared one is refused."""
    root = state_dir_path()
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(root)
    except OSError as exc:
        raise UsageError(f"{root}: cannot use the state folder: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise UsageError(f"{root}: the state folder must be a folder owned by this user "
                         "(not a symlink): refusing it")  # fmt: skip
    if st.st_mode & 0o077:
        os.chmod(root, 0o700)
    return root


def _key(folder: Path | str) -> str:
    return hashlib.sha256(os.fsencode(os.path.realpath(folder))).hexdigest()[:16]


def _private_dir(name: str) -> Path:
    path = state_dir() / name
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    if os.path.islink(path) or not path.is_dir():
        raise UsageError(f"{path}: not a folder of klink-sync's: refusing it")
    return path


@contextmanager
def deployment_locked(folder: Path) -> Iterator[None]:
    """One run per deployment (backup or restore), whatever the destination."""
    with flocked(_private_dir("locks") / f"{_key(folder)}.lock", str(folder)):
        yield


def login_path(folder: Path | str) -> Path:
    """Where a live run keeps the database login for mariadb-backup (0600, removed at its
    end): named by the deployment's lock, so a killed run's file can be told from a
    running one's."""
    return state_dir_path() / f"live-{_key(folder)}.cnf"


def remove_stale_logins() -> list[str]:
    """The login files killed live runs left (a root password on disk), each removed while
    holding its deployment's lock: a running live run's is left to it."""
    removed = []
    for login in sorted(state_dir_path().glob("live-*.cnf")):
        key = login.name[len("live-") : -len(".cnf")]
        try:
            with flocked(_private_dir("locks") / f"{key}.lock", str(login)):
                remove_login(login)
        except LockedError:
            continue
        removed.append(login.name)
    return removed


def remove_login(path: Path | str) -> None:
    """A login file gone, or the empty folder dockerd makes at a bind mount's missing
    source (a killed run's `docker run` that started after its login was removed)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        try:
            os.rmdir(path)
        except OSError as exc:
            raise KlinkSyncError(f"{path}: not a login file but a folder that cannot be "
                                 f"removed ({exc.strerror}): remove it by hand") from None


def _hold_path(folder: Path | str) -> Path:
    return _private_dir("holds") / f"{_key(folder)}.json"


def record(hold: Hold) -> None:
    """Written, fsynced and renamed into place before the services are touched (a record
    renamed over another unsynced could be left empty by a power cut on some filesystems,
    and then nothing says what to start)."""
    path = _hold_path(hold.folder)
    if not hold.stop_ended:  # a note an earlier run left says nothing of this one's stop
        _stop_ended_path(path).unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        data = json.dumps(asdict(hold), indent=2).encode()
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dirfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def clear(folder: Path | str) -> None:
    path = _hold_path(folder)
    for gone in (path, _stop_ended_path(path)):
        try:
            os.unlink(gone)
        except FileNotFoundError:
            pass


def _stop_ended_path(record_path: Path) -> Path:
    return record_path.with_suffix(".stop-ended")


def note_stop_ended(folder: Path | str) -> None:
    """The run saw its stop end: a file beside the record, made inside the downtime
    without waiting for the disk. Lost in a power cut, the record stands as it was and
    `recover` lets a stop that may go on finish first: less is never unsafe."""
    fd = os.open(_stop_ended_path(_hold_path(folder)),
                 os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)  # fmt: skip
    os.close(fd)


def held(folder: Path | str) -> Hold | None:
    """What a run that did not finish left held on this deployment, if anything."""
    return _read_hold(_hold_path(folder))


def all_held() -> list[Hold]:
    """Every record left, one per deployment."""
    found = (_read_hold(p) for p in sorted(_private_dir("holds").glob("*.json")))
    return [hold for hold in found if hold is not None]


def _read_hold(path: Path) -> Hold | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UsageError(f"{path}: a symlink where klink-sync keeps its record") from None
        raise
    with os.fdopen(fd, "rb") as src:
        st = os.fstat(src.fileno())
        if st.st_uid != os.geteuid() or st.st_mode & 0o077:
            raise UsageError(f"{path}: not a record of klink-sync's (owner or mode): refusing it")
        try:
            data = json.loads(src.read() or b"{}")
            return Hold(**{**data, "compose": tuple(data["compose"]),
                           "compose_files": tuple(data["compose_files"]),
                           "services": tuple(data["services"]),
                           "containers": tuple(data.get("containers", ())),
                           "stop_timeout": _bounded(data.get("stop_timeout", 0)),
                           "stop_ended": _flag(data.get("stop_ended", False))
                                         or _stop_ended_path(path).exists()})  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{path}: cannot read klink-sync's record ({exc})") from None


def _bounded(seconds: object) -> int:
    """A stop timeout from a record (data, not an order): a whole number of seconds, no
    more than a config may set."""
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
        raise ValueError(f"stop_timeout {seconds!r} is not a number of seconds")
    return min(seconds, MAX_STOP_TIMEOUT)


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"stop_ended {value!r} is not true or false")
    return value


def age_seconds(hold: Hold) -> float | None:
    """How long ago the hold was recorded (None: its time cannot be read)."""
    try:
        return time.time() - calendar.timegm(time.strptime(hold.since, "%Y-%m-%dT%H:%M:%SZ"))
    except (TypeError, ValueError):
        return None


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
