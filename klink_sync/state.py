"""What klink-sync holds on this host beyond one destination: the deployment's lock."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .destination.local import flocked


@contextmanager
def deployment_locked(folder: Path) -> Iterator[None]:
    """One run per deployment, whatever the destination."""
    digest = hashlib.sha256(os.fsencode(os.path.realpath(folder))).hexdigest()[:16]
    lock_dir = Path("/run/lock") if os.access("/run/lock", os.W_OK) else Path(tempfile.gettempdir())
    with flocked(lock_dir / f"klink-sync-{digest}.lock", str(folder)):
        yield
