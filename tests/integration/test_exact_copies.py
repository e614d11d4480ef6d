"""What the run says equals what is on disk (hardening items 1, 6, 11): every file of a
snapshot equals its source at the stop, and `verify` finds what does not. Real rsync, the
stand-in compose, local and over ssh."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.test_hot_cold import (
    ALL,
    _rewrite_keeping,
    latest,
    make_deployment,
    set_running,
)
from tests.sshd import Sshd, sshd  # noqa: F401 (the fixture)

DOC = "storage/data/documents/007.bin"


@pytest.fixture(params=["local", "ssh"])
def where(request, tmp_path: Path, klink_env: dict) -> tuple[str, Path, dict]:
    """A destination spec, where its files are on this side (to check), the environment.
    Over ssh, on a folder only the server sees, as on a real backup host."""
    if request.param == "local":
        return str(tmp_path / "backup"), tmp_path / "backup", klink_env
    server: Sshd = request.getfixturevalue("sshd")
    spec, real = server.far(tmp_path.name)
    return spec, real, {**klink_env, **server.env}


@pytest.mark.parametrize("mode, running", [("cold", ALL), ("hot-cold", [])])
def test_a_rewrite_keeping_size_and_mtime_between_runs_is_in_the_next_snapshot(
    mode, running, where, tmp_path
):
    """Item 1: cold (or a stopped stack) refreshed the file, then the strict copy with
    --link-dest put the older snapshot's stale copy back, and SHA256SUMS reused its sum."""
    dest, real, env = where
    folder = make_deployment(tmp_path)
    set_running(env, running)
    run_cli(mode, "--folder", folder, "--dest", dest, env=env)
    doc = folder / DOC
    new = _rewrite_keeping(doc, doc.stat().st_mtime_ns, False)
    run_cli(mode, "--folder", folder, "--dest", dest, env=env)
    snap = latest(real)
    assert (snap / "folder" / DOC).read_bytes() == new
    run_cli("verify", "--dest", dest, env=env)


def test_the_pre_restore_snapshot_holds_what_the_restore_replaced(where, tmp_path):
    """Item 1 in a restore's safety snapshot; over ssh its ctime check read the copies on
    this host (a remote path: found nothing, trusted everything)."""
    dest, real, env = where
    folder = make_deployment(tmp_path)
    set_running(env, ALL)
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=env)
    doc = folder / DOC
    replaced = _rewrite_keeping(doc, doc.stat().st_mtime_ns, False)
    proc = run_cli("restore", "--folder", folder, "--dest", dest, "--json", env=env)
    kept = real / "snapshots" / json.loads(proc.stdout)["safety_snapshot"]
    assert (kept / "folder" / DOC).read_bytes() == replaced
    assert "1 files changed without rsync seeing it" in proc.stderr
