"""Fidelity on the real sample stack: two hot-cold runs with metadata-only changes between
them, each snapshot restored into the destroyed deployment, compared entry by entry.

Two volumes hold the fidelity tree (tests/fidelity.py): one the planner copies hot (a
K-Search downloads folder on the engine), one it copies cold (an unknown folder on the
database). The services never write there, so what the source held at each backup is
known exactly; the parents of the volumes (`storage/`, the setup folder) are compared too.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.e2e.conftest import SAMPLE, SampleStack, wait_for_rows
from tests.fidelity import (
    build_tree,
    change_tree,
    differences,
    entry,
    mtimes_deepest_first,
    set_mtime,
    snapshot_of,
)

pytestmark = pytest.mark.skipif(shutil.which("setfacl") is None, reason="needs setfacl (acl)")

HOT, COLD = "storage/downloads", "storage/attic"
EXTRA_BINDS = {  # the line after which each fidelity bind goes, and the bind
    '- "./storage/index:/opt/solr/k-search/k-search/data"':
        f'- "./{HOT}:/var/www/k-search/var/data-downloads"',
    '- "./storage/database:/var/lib/mysql"': f'- "./{COLD}:/srv/attic"',
}  # fmt: skip
PARENTS = (".", "storage", "docker-compose.yml", ".env")


def _state(folder: Path) -> dict[bytes, dict]:
    """The fidelity volumes, entry by entry, and the parents the services leave alone."""
    found = {}
    for volume in (HOT, COLD):
        for rel, record in snapshot_of(folder / volume).items():
            links = tuple(os.path.join(volume.encode(), n) for n in record.get("links", ()))
            found[os.path.join(volume.encode(), rel)] = record | ({"links": links} if links else {})
    for rel in PARENTS:
        path = os.fsencode(folder / rel)
        found[rel.encode()] = entry(path, os.lstat(path))
    return found


def _set_parent_mtimes(folder: Path, base_ns: int) -> None:
    for i, rel in enumerate((HOT, COLD, "storage", ".")):
        set_mtime(os.fsencode(folder / rel), base_ns + i * 1_000_001)


def _deployment(tmp_path: Path, compose_cmd: str) -> SampleStack:
    folder = tmp_path / f"kl-fid-{os.getpid()}"
    shutil.copytree(SAMPLE / "deploy", folder)
    compose_file = folder / "docker-compose.yml"
    text = compose_file.read_text()
    for after, bind in EXTRA_BINDS.items():
        assert after in text, after
        indent = text.split(after)[0].rsplit("\n", 1)[1]
        text = text.replace(after, f"{after}\n{indent}{bind}")
    compose_file.write_text(text)
    for volume, tag in ((HOT, "hot"), (COLD, "cold")):
        (folder / volume).mkdir(parents=True)
        build_tree(folder / volume, tag)
        mtimes_deepest_first(os.fsencode(folder / volume), 1_600_000_000_123_456_789)
    stack = SampleStack(folder, compose_cmd)
    stack.compose("up", "-d")
    return stack


def _backup(stack: SampleStack, dest: Path) -> str:
    run_cli("hot-cold", "--folder", stack.folder, "--dest", dest,
            env={"KLINK_SYNC_COMPOSE": stack.compose_cmd})  # fmt: skip
    return os.path.basename(os.readlink(dest / "latest"))


def _restore_and_compare(stack: SampleStack, dest: Path, name: str, expected: dict) -> str:
    """The deployment destroyed, the snapshot restored into it: what differs (or "")."""
    stack.compose("down", "-t", "30")
    shutil.rmtree(stack.folder)
    run_cli("restore", name, "--dest", dest, "--folder", stack.folder, "--no-safety-snapshot",
            env={"KLINK_SYNC_COMPOSE": stack.compose_cmd})  # fmt: skip
    diff = differences(expected, _state(stack.folder))
    if not diff:
        return ""
    kept = differences(expected, _state(dest / "snapshots" / name / "folder"))
    return f"restore of {name}: {diff}\n(the snapshot itself: {kept or 'no difference'})"


def test_two_hot_cold_runs_on_the_real_stack_restore_every_entry_exactly(tmp_path, compose_cmd):
    stack = _deployment(tmp_path, compose_cmd)
    try:
        wait_for_rows(stack.folder, compose_cmd, at_least=20)
        _set_parent_mtimes(stack.folder, 1_700_000_000_000_000_001)
        dest = tmp_path / "backup"
        first_state = _state(stack.folder)
        first = _backup(stack, dest)
        assert _state(stack.folder) == first_state  # the backup changed nothing there
        manifest = json.loads((dest / "snapshots" / first / "manifest.json").read_text())
        classes = {u["host_path"]: u["class"] for u in manifest["units"]}
        assert classes[str(stack.folder / HOT)] == "hot", classes
        assert classes[str(stack.folder / COLD)] == "cold", classes

        for volume in (HOT, COLD):
            change_tree(os.fsencode(stack.folder / volume))
        _set_parent_mtimes(stack.folder, 1_800_000_000_000_000_003)
        second_state = _state(stack.folder)
        changed = {r for r in first_state if first_state[r] != second_state.get(r)}
        assert len(changed) >= 20 and second_state.keys() == first_state.keys()
        second = _backup(stack, dest)
        assert second != first

        failures = [_restore_and_compare(stack, dest, first, first_state),
                    _restore_and_compare(stack, dest, second, second_state)]  # fmt: skip
        assert not any(failures), "\n".join(f for f in failures if f)
    finally:
        stack.down()
