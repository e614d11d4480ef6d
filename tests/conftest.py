"""Shared helpers: run the real klink-sync command and compare trees."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
KLINK_SYNC = str(Path(sys.executable).parent / "klink-sync")


def run_cli(
    *args: str, env: dict | None = None, check: int | None = 0, timeout: float = 600, cwd=None
):
    """Run the installed `klink-sync` command; assert its exit code when `check` is set."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [KLINK_SYNC, *map(str, args)], env=full_env, capture_output=True, text=True, cwd=cwd,
        timeout=timeout, errors="replace",
    )  # fmt: skip
    if check is not None:
        outputs = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        assert proc.returncode == check, f"exit {proc.returncode}, wanted {check}\n{outputs}"
    return proc


def run_cli_jailed(*args: str, env: dict | None = None, check: int | None = 0,
                   jail: Path) -> subprocess.CompletedProcess:  # fmt: skip
    """klink-sync in a mount namespace of its own where /etc is a copy (made under `jail`):
    a test that klink-sync refuses to write into a system path cannot harm this machine
    if the refusal fails."""
    etc = jail / "etc"
    if not etc.exists():
        subprocess.run(["cp", "-a", "/etc", str(etc)], check=True)
    mount = 'mount --bind "$0" /etc && exec "$@"'
    full_env = {**os.environ, **(env or {})}
    argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", mount, str(etc),
            KLINK_SYNC, *map(str, args)]
    proc = subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=600,
                          errors="replace")  # fmt: skip
    if check is not None:
        outputs = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        assert proc.returncode == check, f"exit {proc.returncode}, wanted {check}\n{outputs}"
    return proc


def error_line(stderr: str) -> str:
    """The one-line error message (log lines of copies still ending may follow it)."""
    return next(line for line in stderr.splitlines() if line.startswith("klink-sync: error:"))


def tree(root: Path) -> dict[str, tuple]:
    """Everything rsync -aHAX must keep: type, mode, owner, size, content, link target, xattrs."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                result[rel] = ("link", os.readlink(path), st.st_uid, st.st_gid)
                continue
            xattrs = tuple(sorted((k, os.getxattr(path, k, follow_symlinks=False))
                                  for k in os.listxattr(path, follow_symlinks=False)))  # fmt: skip
            entry = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                     xattrs)  # fmt: skip
            if stat.S_ISREG(st.st_mode):
                entry += (path.read_bytes(), st.st_mtime_ns // 1_000_000_000)
            result[rel] = entry
    return result


@pytest.fixture(scope="session", autouse=True)
def state_dir(tmp_path_factory) -> Path:
    """klink-sync's own records and locks (KLINK_SYNC_STATE_DIR): one folder per test
    session, never the machine's /var/lib/klink-sync."""
    path = tmp_path_factory.mktemp("state") / "klink-sync"
    os.environ["KLINK_SYNC_STATE_DIR"] = str(path)
    return path


@pytest.fixture
def klink_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a run against the stand-in compose command."""
    state = tmp_path / "running"
    return {
        "KLINK_SYNC_COMPOSE": str(ROOT / "tests" / "integration" / "fake-compose"),
        "FAKE_COMPOSE_STATE": str(state),
        "FAKE_COMPOSE_LOG": str(tmp_path / "compose.log"),
    }
