"""One exception family; the CLI alone turns these into messages and exit codes."""

from __future__ import annotations


class KlinkSyncError(Exception):
    """Base class: `str(err)` is the one-line message shown to the user."""

    exit_code = 1


class UsageError(KlinkSyncError):
    """Bad usage, config or compose file: nothing was touched."""

    exit_code = 2


class LockedError(KlinkSyncError):
    """Another run holds the lock."""

    exit_code = 3


class RunFailed(KlinkSyncError):
    """The run failed; nothing was promoted and the stack is back as it was."""

    exit_code = 1


class RestartFailed(KlinkSyncError):
    """The stack could not be started again: someone must act now."""

    exit_code = 70


class DestinationUnavailable(KlinkSyncError):
    """Destination not mounted or not writable; the stack was never stopped."""

    exit_code = 75


class OffsiteFailed(KlinkSyncError):
    """restic failed (push, pull, check...): the local snapshots are as they were."""

    exit_code = 1
