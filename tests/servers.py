"""What the tests' own servers (sshd, the S3 server, the HTTP receiver) share: a free port
on 127.0.0.1, and waiting until a started server answers."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def free_port() -> int:
    """A port nobody listens on (bound once, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_ready(name: str, proc: subprocess.Popen, log: Path, answers: Callable[[], bool],
                     timeout: float) -> None:  # fmt: skip
    """Until `answers()` is true; a server that exits or stays silent fails the test with
    its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{name} exited ({proc.returncode}): {log.read_text()}")
        try:
            if answers():
                return
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{name} did not answer within {timeout}s: {log.read_text()}")
