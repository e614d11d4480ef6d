"""What a restore takes from a snapshot, checked: the backup disk is not trusted. A restore
writes only inside the restore folder and where the snapshot's own compose files put
volumes (after --map); a manifest that says otherwise, or points at a system path, is
refused (exit 2) before anything is written, naming the key."""

from __future__ import annotations

import os
import posixpath
import stat
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from .compose import COMPOSE_NAMES, load_deployment
from .destination import Destination, Snapshot
from .errors import KlinkSyncError, UsageError
from .plan import CopyUnit, build_plan
from .state import state_dir_path

# Never a restore target: the system's own trees, and the top of the usual data trees.
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32",
                "/proc", "/run", "/sbin", "/sys", "/usr", "/var/lib", "/var/run", "/var/spool",
                "/var/log", "/var/cache", "/var/backups", "/var/mail")  # fmt: skip
SYSTEM_TOPS = ("/", "/home", "/opt", "/srv", "/mnt", "/media", "/var", "/tmp", "/root")
DATA_TREES = ("/var/lib/docker/volumes",)  # inside the system trees, but data
HOMES = ("/root", "/home")


def refuse_system_path(path: str, key: str) -> None:
    """`path` as given and as its symlinks resolve now: never a system path, klink-sync's
    own state, nor a dotfile or dot-folder of a home (.ssh, .bashrc ...)."""
    try:
        forms = dict.fromkeys((os.path.normpath(path), os.path.realpath(path)))
    except OSError as exc:
        raise UsageError(f"{key}: {path}: {exc.strerror}") from None
    state = os.path.realpath(state_dir_path())
    for form in forms:
        data = any(form == t or form.startswith(t + "/") for t in DATA_TREES)
        inside = any(form == t or form.startswith(t + "/") for t in (*SYSTEM_TREES, state))
        if (inside and not data) or form in SYSTEM_TOPS or _home_dotfile(form):
            raise UsageError(f"{key}: {path} is a system path: a restore never writes there")


def _home_dotfile(path: str) -> bool:
    parts = path.split("/")
    if len(parts) > 2 and "/" + parts[1] == "/root":
        return parts[2].startswith(".")
    return len(parts) > 3 and parts[1] == "home" and parts[3].startswith(".")


def refuse_a_strangers_folder(folder: Path, key: str) -> None:
    """A folder that holds files but no compose file is not a deployment: a restore and
    its --delete would wipe someone's files. (Links alone are the admin's preparation:
    `storage -> /bigdisk/storage` made before restoring.)"""
    if folder.is_dir() and any(not p.is_symlink() for p in folder.iterdir()) and not any(
            (folder / name).is_file() for name in COMPOSE_NAMES):  # fmt: skip
        raise UsageError(f"{key}: {folder} holds files but no compose file: not restoring "
                         "into it")  # fmt: skip


def plain_relative(value: object, key: str, top: str = "") -> str:
    """A path inside the snapshot: relative, normal, no '..', under `top` if given."""
    if not isinstance(value, str) or not value:
        raise UsageError(f"{key}: must be a path inside the snapshot")
    parts = value.split("/")
    if value.startswith("/") or ".." in parts or "." in parts or "" in parts:
        raise UsageError(f"{key}: {value!r} is not a plain path inside the snapshot: refusing")
    if top and parts[0] != top:
        raise UsageError(f"{key}: {value!r} is not below {top}/: refusing")
    return value


def manifest_folder(manifest: Mapping) -> Path:
    """The folder the snapshot was taken from, as the restore target when none is given:
    an absolute plain path, no system path, and not a stranger's folder (one that holds
    files but no compose file)."""
    key = "manifest.json: folder"
    value = manifest.get("folder")
    if not isinstance(value, str) or not value.startswith("/") or ".." in value.split("/"):
        raise UsageError(f"{key}: must be an absolute path without '..'")
    refuse_system_path(value, key)
    folder = Path(value)
    refuse_a_strangers_folder(folder, key)
    return folder


def expected_units(dest: Destination, snap: Snapshot, manifest: Mapping,
                   folder: Path) -> dict[str, CopyUnit]:  # fmt: skip
    """The copy units the snapshot's own compose files (and .env) give, as if they were
    already back in `folder`: what the restore may write, and where."""
    names = manifest.get("compose_files")
    if not isinstance(names, list) or not names:
        raise UsageError("manifest.json: compose_files: must name the compose files")
    with tempfile.TemporaryDirectory(prefix="klink-sync-compose-") as tmp:
        os.chmod(tmp, 0o700)  # .env holds passwords
        files = []
        for i, name in enumerate(names):
            base = posixpath.basename(str(name))
            plain_relative(base, f"manifest.json: compose_files[{i}]")
            (Path(tmp) / base).write_bytes(_read(dest, f"{snap.rel}/folder/{base}",
                                                 f"manifest.json: compose_files[{i}]"))
            files.append(base)
        try:
            (Path(tmp) / ".env").write_bytes(dest.read(f"{snap.rel}/folder/.env"))
        except (OSError, KlinkSyncError):
            pass  # no .env in the snapshot
        deployment = load_deployment(folder, files, os.environ, read_from=Path(tmp))
    return {u.dest: u for u in build_plan(deployment).units}


def _read(dest: Destination, rel: str, key: str) -> bytes:
    try:
        return dest.read(rel)
    except (OSError, KlinkSyncError):
        raise UsageError(f"{key}: the snapshot has no {rel}: refusing") from None


def checked_units(manifest: Mapping, expected: Mapping[str, CopyUnit],
                  folder: Path) -> list[dict]:  # fmt: skip
    """The manifest's units, each matched with the unit the compose files give for the
    same place: the paths and Docker names come from those, never from the manifest."""
    units = manifest.get("units")
    if not isinstance(units, list) or not units:
        raise UsageError("manifest.json: units: must list the snapshot's units")
    moved = _moved_from(manifest, folder)
    return [_checked(unit, expected, moved, f"manifest.json: units[{i}]")
            for i, unit in enumerate(units)]  # fmt: skip


def _moved_from(manifest: Mapping, folder: Path):  # type: ignore[no-untyped-def]
    """A path the run saw, as it is once restored into `folder` (paths inside the folder
    the snapshot was taken from move with it)."""
    old = str(manifest.get("folder") or "")

    def moved(path: str) -> str:
        if old and (path == old or path.startswith(old.rstrip("/") + "/")):
            return os.path.normpath(os.path.join(folder, os.path.relpath(path, old)))
        return path

    return moved


def _checked(unit: object, expected: Mapping[str, CopyUnit], moved, key: str) -> dict:  # type: ignore[no-untyped-def]
    if not isinstance(unit, Mapping):
        raise UsageError(f"{key}: must be a mapping")
    dest = plain_relative(unit.get("dest"), f"{key}.dest")
    if dest.split("/")[0] not in ("folder", "volumes"):
        raise UsageError(f"{key}.dest: {dest!r} is neither folder/ nor volumes/: refusing")
    known = expected.get(dest)
    declared = unit.get("declared")
    if dest.startswith("volumes/") and isinstance(declared, str) and declared:
        # copied from where symlinks led: restored through the path the compose file wrote
        known = next((u for u in expected.values() if u.source == moved(declared)), None)
        if known is None:
            raise UsageError(f"{key}.declared: {declared!r}: the snapshot's compose files "
                             "declare no such volume: refusing")  # fmt: skip
    elif known is None and dest.startswith("volumes/"):
        raise UsageError(f"{key}.dest: {dest!r}: no volume of the snapshot's compose files "
                         "lands there: refusing")  # fmt: skip
    elif known is not None and dest.startswith("volumes/") and unit.get("source") != known.source:
        raise UsageError(f"{key}.source: {unit.get('source')!r} is not what the snapshot's "
                         f"compose files declare for {dest} ({known.source}): refusing")
    patterns = unit.get("patterns", [])
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise UsageError(f"{key}.patterns: must be a list of rsync patterns")
    return {
        "dest": dest, "type": known.type.value if known else "bind",
        "source": known.source if known else "", "is_file": unit.get("is_file") is True,
        "excludes": list(known.excludes) if known else [], "patterns": list(patterns),
        "volume_names": list(known.volume_names) if known else [],
    }  # fmt: skip


def check_targets(targets: Sequence[tuple[str, str]]) -> None:
    """(key, path) of every place the restore writes: none a system path, none reached
    through a symlink of another user's (a deployment folder often is a user's: a link of
    theirs must not steer root's restore and its --delete)."""
    for key, path in targets:
        refuse_system_path(path, key)
        refuse_foreign_links(path, key)


def refuse_foreign_links(path: str, key: str) -> None:
    current = "/"
    for part in [p for p in os.path.normpath(path).split("/") if p]:
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return  # made by the restore from here on
        except OSError as exc:
            raise UsageError(f"{key}: {current}: {exc.strerror}") from None
        if stat.S_ISLNK(st.st_mode) and st.st_uid not in (0, os.geteuid()):
            raise UsageError(f"{key}: {current} is a symlink of uid {st.st_uid}: a restore "
                             "does not follow it (remove it, or restore with --map)")  # fmt: skip
        if stat.S_ISLNK(st.st_mode):
            current = os.path.realpath(current)
