"""Fidelity: every kind of entry, backed up by two hot-cold runs and restored entry by entry.

After a restore, each entry's type, mode, owner, size, content, mtime (nanoseconds, folders
included, the parents of volumes too), symlink target, hard-link grouping, xattrs, ACLs and
sparseness equal the source's at backup time. Real rsync, the real command, a stand-in
compose; tests/e2e/test_fidelity_e2e.py does the same on the real sample stack.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fidelity import (
    build_tree,
    change_tree,
    differences,
    mtimes_deepest_first,
    set_mtime,
    snapshot_of,
)
from tests.integration.test_hot_cold import ALL, latest, make_deployment, set_running

pytestmark = pytest.mark.skipif(shutil.which("setfacl") is None, reason="needs setfacl (acl)")


def test_build_tree_has_every_kind(tmp_path):
    """The tree holds what the rule names (ACLs are xattrs here: ext4 with acl)."""
    build_tree(tmp_path, "check")
    state = snapshot_of(tmp_path)
    assert {e["type"] for e in state.values()} == {"-", "d", "l", "p"}
    names = {n for e in state.values() for n, _ in e["xattrs"]}
    assert {"system.posix_acl_access", "system.posix_acl_default", "user.klink"} <= names
    assert state[b"sparse.img"]["sparse"] and not state[b"random.bin"]["sparse"]
    assert len(state[b"group/one"]["links"]) == 3


def change_metadata(folder: Path) -> None:
    """Between the runs: metadata only, no content."""
    data = os.fsencode(folder / "storage/data")
    db = os.fsencode(folder / "storage/database")
    for v in (data, db):
        change_tree(v)
    # unlink/link changed the volume folders' mtimes: give them (and storage/) new ones
    for i, path in enumerate((data, db, os.fsencode(folder / "storage"))):
        set_mtime(path, 1_444_444_444_000_000_007 + i * 1_000_001)


def _restore_and_compare(folder: Path, dest: Path, name: str, expected: dict, env: dict) -> str:
    """The deployment destroyed, the snapshot restored into it: what differs (or "")."""
    set_running(env, [])
    shutil.rmtree(folder)
    run_cli("restore", name, "--dest", dest, "--folder", folder, "--no-safety-snapshot", env=env)
    diff = differences(expected, snapshot_of(folder))
    if not diff:
        return ""
    kept = differences(expected, snapshot_of(dest / "snapshots" / name / "folder"))
    return f"restore of {name}: {diff}\n(the snapshot itself: {kept or 'no difference'})"


def test_two_hot_cold_runs_restore_every_entry_exactly(tmp_path, klink_env):
    folder = make_deployment(tmp_path)
    for vol, tag in (("storage/data", "hot"), ("storage/database", "cold")):
        build_tree(folder / vol, tag)
    base = 1_600_000_000_123_456_789
    for i, sub in enumerate(("storage/data", "storage/database", "storage/index")):
        mtimes_deepest_first(os.fsencode(folder / sub), base + i * 10**10)
    for i, path in enumerate(("storage", "")):  # the parents of the volumes, last
        set_mtime(os.fsencode(folder / path), base + 10**11 + i * 987_654_321)
    first_state = snapshot_of(folder)
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env)
    first = latest(dest).name
    assert snapshot_of(folder) == first_state  # the backup changed nothing in the source

    change_metadata(folder)
    second_state = snapshot_of(folder)
    changed = {r for r in first_state if first_state[r] != second_state.get(r)}
    assert len(changed) >= 20 and second_state.keys() == first_state.keys()
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env)
    second = latest(dest).name
    assert second != first

    failures = [_restore_and_compare(folder, dest, first, first_state, klink_env),
                _restore_and_compare(folder, dest, second, second_state, klink_env)]  # fmt: skip
    assert not any(failures), "\n".join(f for f in failures if f)
