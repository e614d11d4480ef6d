"""Writes still in flight after a freeze. `docker pause` stops a container's processes,
but I/O they submitted before (asynchronous or direct writes, e.g. InnoDB's O_DIRECT
pages through native AIO) is the kernel's and may still land on disk afterwards. A copy
that reads a page while such a write lands could hold half of it. So before the frozen
stack is copied, klink-sync waits until the block devices under the copied folders report
no write in flight (/sys/dev/block/MAJOR:MINOR/inflight); dirty page-cache pages need no
flush, since reads see them."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

SYS_BLOCK = Path("/sys/dev/block")
DRAIN_TIMEOUT = 10.0  # seconds; a device other workloads keep busy never reads 0
POLL = 0.005


def devices(paths: Iterable[str]) -> list[Path]:
    """The inflight counter of each block device holding one of `paths` (a filesystem
    without one of its own, such as overlay, tmpfs or NFS, has none to ask)."""
    found: dict[int, Path] = {}
    for path in paths:
        try:
            dev = os.stat(path).st_dev
        except OSError:
            continue
        counter = SYS_BLOCK / f"{os.major(dev)}:{os.minor(dev)}" / "inflight"
        if os.major(dev) and counter.is_file():
            found[dev] = counter
    return [found[k] for k in sorted(found)]


def writes_in_flight(counter: Path) -> int:
    """The second field of `inflight`: writes submitted to the device, not yet done."""
    try:
        return int(counter.read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def drain(paths: Iterable[str], timeout: float = DRAIN_TIMEOUT) -> str:
    """Wait until no write is in flight on the devices under `paths`, seen twice in a
    row; a warning (empty: drained) when a device stays busy past `timeout`."""
    counters = devices(paths)
    deadline = time.monotonic() + timeout
    quiet = 0
    while counters and quiet < 2:
        busy = [c for c in counters if writes_in_flight(c)]
        quiet = 0 if busy else quiet + 1
        if busy and time.monotonic() > deadline:
            names = ", ".join(c.parent.name for c in busy)
            return (f"writes still in flight on block device {names} after {timeout:g}s "
                    "frozen (another workload on the device?): copied anyway")  # fmt: skip
        if quiet < 2:
            time.sleep(POLL)
    return ""
