"""rsync command lines and the parsing of its statistics (pure)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from .models import RsyncStats

__all__ = ["RsyncStats"]  # with the records; read from here by the parsers below

# Faithful copy: owners by number, hard links, ACLs, xattrs, deletions.
# Never --inplace: it would write through hard links into older snapshots.
BASE = ("rsync", "-aHAX", "--numeric-ids", "--delete", "--sparse", "--stats", "--no-h")

# rsync exit codes a hot pass expects from files changing under it.
HOT_WARNING_CODES = {
    23: "some files could not be copied as they changed (the cold pass copies them)",
    24: "some files vanished while being copied (expected while the stack runs)",
}

_WILDCARDS = re.compile(r"([*?\[\\])")


def escape_pattern(path: str) -> str:
    """Make a literal path safe as an rsync filter pattern.

    rsync reads backslashes as escapes only in a pattern holding a wildcard.
    """
    if not any(c in path for c in "*?["):
        return path
    return _WILDCARDS.sub(r"\\\1", path)


def dir_arg(path: str) -> str:
    """Trailing slash: copy the folder's contents, never the folder into itself."""
    return path if path.endswith("/") else path + "/"


def copy_argv(
    source: str,
    dest: str,
    *,
    link_dest: str | None = None,
    excludes: Sequence[str] = (),
    source_is_file: bool = False,
    itemize: bool = False,
    progress: bool = False,
    patterns: Sequence[str] = (),
    xattrs: bool = True,
    exclude_from: str | None = None,
    by_content: bool = False,
    delete: bool = True,
) -> tuple[str, ...]:
    """One faithful copy of a volume (or the setup folder) into the staging tree.

    `excludes` are paths relative to `source` that another copy unit owns or
    that are skipped; rsync's --delete leaves them alone on the receiver.
    `xattrs=False` (a tree proven to hold no extended attribute or ACL, on either
    side) drops -A and -X, which double the time rsync takes over unchanged files.
    """
    argv = list(BASE)
    if not xattrs:
        argv[1] = "-aH"
    if not delete:  # live's documents: a file deleted after the backup point keeps its copy
        argv.remove("--delete")
    if itemize:
        argv.append("--itemize-changes")
    if by_content:  # a restore: a damaged file may keep its size and mtime
        argv.append("--checksum")
    if source_is_file:  # a file bind through a symlink: its content, not the bare link
        argv.append("--copy-links")
    if progress:
        argv += ["--info=progress2", "--no-inc-recursive"]
    if link_dest:
        argv.append(f"--link-dest={link_dest}")
    argv += [f"--exclude=/{escape_pattern(e.strip('/'))}" for e in excludes]
    argv += [f"--exclude={p}" for p in patterns]  # the admin's own rsync patterns
    if exclude_from:  # NUL-separated anchored patterns (names may hold newlines)
        argv += ["--from0", f"--exclude-from={exclude_from}"]
    argv += [source if source_is_file else dir_arg(source), dir_arg(dest)]
    return tuple(argv)


def refresh_argv(source: str, dest: str, files_from: str, itemize: bool = False
                 ) -> tuple[str, ...]:  # fmt: skip
    """Copy again, whatever their size and mtime say, the files whose ctime shows a change.

    rsync's quick check trusts size and whole-second mtime; a writer can keep
    both. --ignore-times writes a new file and renames it, so a hard link to
    an older snapshot is replaced, never written through.
    """
    return (
        "rsync", "-aHAX", "--numeric-ids", "--sparse", "--stats", "--no-h",
        *(("--itemize-changes",) if itemize else ()),
        "--ignore-times", "--from0", f"--files-from={files_from}",
        dir_arg(source), dir_arg(dest),
    )  # fmt: skip


def exclude_list(names: Sequence[str]) -> bytes:
    """An --exclude-from --from0 list matching exactly these files (relative paths)."""
    return b"".join(os.fsencode("/" + escape_pattern(n)) + b"\0" for n in names)


_RECEIVED = re.compile(r"^>f\S{9} (.*)$")
_OCTAL = re.compile(r"\\#([0-7]{3})")


def parse_received(output: str) -> set[str]:
    """Files an --itemize-changes run wrote (not those hard-linked via --link-dest).

    rsync prints unprintable bytes of names as \\#ooo; they are turned back.
    """
    received = set()
    for line in output.splitlines():
        match = _RECEIVED.match(line)
        if match:
            raw = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), match.group(1))
            received.add(os.fsdecode(raw.encode("utf-8", "surrogateescape")))
    return received


_PROGRESS = re.compile(r"^\s*([\d,]+)\s+(\d+)%\s+(\S+/s)")


def parse_progress(line: str) -> tuple[int, int, str] | None:
    """(bytes so far, percent, rate) from an --info=progress2 update, else None."""
    match = _PROGRESS.match(line)
    if not match:
        return None
    return int(match.group(1).replace(",", "")), int(match.group(2)), match.group(3)


_STAT_LINES = {
    "Number of files": "files",
    "Number of regular files transferred": "regular_files_transferred",
    "Total file size": "total_size",
    "Total transferred file size": "transferred_size",
    "Literal data": "literal_bytes",
    "Number of deleted files": "deleted",
}


def parse_stats(output: str) -> RsyncStats:
    """Read the --stats block; unknown or missing lines count as zero."""
    values: dict[str, int] = {}
    for line in output.splitlines():
        key, sep, rest = line.partition(":")
        field = _STAT_LINES.get(key.strip())
        if sep and field:
            number = re.match(r"\s*([\d,]+)", rest)
            if number:
                values[field] = int(number.group(1).replace(",", ""))
    return RsyncStats(**values)
