"""On a terminal a live progress display; in a pipe (journal, cron) plain lines."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time

from tests.conftest import KLINK_SYNC, run_cli
from tests.integration.test_hot_cold import ALL, make_deployment, set_running

ESCAPE = "\x1b["


def _run_in_terminal(args: list[str], env: dict, timeout: float = 120) -> tuple[int, str]:
    """Run with stdout and stderr on a pseudo-terminal, as an admin at a shell would."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([KLINK_SYNC, *args], stdin=slave, stdout=slave, stderr=slave,
                            env={**os.environ, **env, "COLUMNS": "120", "TERM": "xterm"})
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal closed: the command has ended
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=10), b"".join(chunks).decode("utf-8", "replace")


def test_a_terminal_shows_progress_bars(tmp_path, klink_env):
    folder = make_deployment(tmp_path)
    (folder / "storage/data/big.bin").write_bytes(os.urandom(8 * 2**20))
    set_running(klink_env, ALL)
    code, out = _run_in_terminal(["hot-cold", "--folder", str(folder), "--dest",
                                  str(tmp_path / "backup")], klink_env)  # fmt: skip
    assert code == 0, out
    assert ESCAPE in out  # a live display, drawn with escape codes
    assert re.search(r"hot folder/storage/data\s.*100%", out), out
    assert re.search(r"cold folder/storage/database\s.*100%", out), out
    assert "DOWNTIME" in out


def test_a_pipe_gets_plain_timestamped_lines(tmp_path, klink_env):
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    proc = run_cli("hot-cold", "--folder", folder, "--dest", tmp_path / "backup", env=klink_env)
    assert ESCAPE not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines and all(re.match(r"^\d\d:\d\d:\d\d (INFO|WARNING) ", line) for line in lines)
    assert any("hot pass folder/storage/data" in line for line in lines)
    assert "%" not in proc.stderr  # no progress updates in the journal
