"""Where snapshots live. `open_destination` is the one place that tells a folder of this
host from `[user@]host:/path` over ssh; everything else speaks to `Destination`."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import UsageError
from .base import (
    DELETING,
    INDEX,
    MANIFEST,
    MARKER,
    STAGING,
    VERIFIED,
    CopyState,
    Destination,
    Listing,
    Snapshot,
)
from .local import LocalDestination
from .ssh import SshDestination, is_remote, ssh_options

__all__ = ["DELETING", "INDEX", "MANIFEST", "MARKER", "STAGING", "VERIFIED", "CopyState",
           "Destination", "Listing", "Snapshot", "open_destination"]  # fmt: skip


def open_destination(spec: str | None, configured_ssh: Sequence[str] = ()) -> Destination:
    """The destination `spec` names: `[user@]host:/path` over ssh, else a local folder."""
    if not spec:
        raise UsageError("no destination: give --dest, KLINK_SYNC_DEST or dest: in the config")
    if is_remote(spec):
        return SshDestination(spec, ssh_options(configured_ssh))
    return LocalDestination(spec)
