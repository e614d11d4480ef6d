"""restore with real rsync on real trees; a stand-in compose command."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from tests.conftest import run_cli, tree
from tests.integration.test_hot_cold import ALL, latest, make_deployment, running, set_running


def _backup(folder: Path, dest: Path, env: dict) -> Path:
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=env)
    return latest(dest)


def test_restore_into_an_empty_folder_is_exact(tmp_path, klink_env):
    folder = make_deployment(tmp_path)
    special = folder / "storage/data/special"
    special.mkdir()
    (special / "owned").write_bytes(b"x")
    os.chown(special / "owned", 1234, 2345)
    os.setxattr(special / "owned", "user.tag", b"v")
    os.symlink("owned", special / "link")
    os.link(special / "owned", special / "hard")
    set_running(klink_env, ALL)
    snap = _backup(folder, tmp_path / "backup", klink_env)
    target = tmp_path / "elsewhere" / "k-link"
    proc = run_cli("restore", "--dest", tmp_path / "backup", "--folder", target, "--json",
                   env=klink_env)  # fmt: skip
    report = json.loads(proc.stdout)
    assert report["safety_snapshot"] is None  # nothing was there to keep
    assert tree(target) == tree(snap / "folder") == tree(folder)
    assert (target / "storage/data/special/hard").stat().st_ino == (
        target / "storage/data/special/owned"
    ).stat().st_ino


def test_restore_over_a_deployment_keeps_a_pre_restore_snapshot(tmp_path, klink_env):
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    first = _backup(folder, dest, klink_env)
    before = tree(folder / "storage")
    (folder / "storage/data/documents/new.bin").write_bytes(b"written after the backup")
    (folder / "storage/data/documents/001.bin").unlink()
    changed = tree(folder / "storage")

    proc = run_cli("restore", "--dest", dest, "--folder", folder, "--json", env=klink_env)
    report = json.loads(proc.stdout)
    assert tree(folder / "storage") == before
    assert report["services_before"] == ALL and running(klink_env) == ALL
    kept = dest / "snapshots" / report["safety_snapshot"]
    assert tree(kept / "folder/storage") == changed
    verified = run_cli("verify", kept.name, "--dest", dest, env=klink_env)
    assert "intact" in verified.stdout
    assert latest(dest) == first
    calls = Path(klink_env["FAKE_COMPOSE_LOG"]).read_text()
    assert "up -d database engine kbox" in calls

    run_cli("restore", kept.name, "--dest", dest, "--folder", folder, "--no-safety-snapshot",
            env=klink_env)  # fmt: skip
    assert tree(folder / "storage") == changed


def test_dry_run_touches_nothing(tmp_path, klink_env):
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    _backup(folder, dest, klink_env)
    (folder / "storage/data/documents/002.bin").write_bytes(b"changed")
    snapshot_count = len(list((dest / "snapshots").iterdir()))
    log = Path(klink_env["FAKE_COMPOSE_LOG"])
    calls_before = log.read_text()
    proc = run_cli("restore", "--dest", dest, "--folder", folder, "--dry-run", env=klink_env)
    assert "[restore] rsync -aHAX" in proc.stdout and "[safety]" in proc.stdout
    assert (folder / "storage/data/documents/002.bin").read_bytes() == b"changed"
    assert len(list((dest / "snapshots").iterdir())) == snapshot_count
    assert " stop" not in log.read_text()[len(calls_before):]


def test_refusals(tmp_path, klink_env):
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    snap = _backup(folder, dest, klink_env)
    unknown = run_cli("restore", "no-such", "--dest", dest, env=klink_env, check=2)
    assert "no snapshot named 'no-such'" in unknown.stderr
    bad_map = run_cli("restore", "--dest", dest, "--map", "relative=/x", env=klink_env, check=2)
    assert "--map relative=/x" in bad_map.stderr
    incomplete = dest / "snapshots" / "2020-01-01T00-00-00Z"
    shutil.copytree(snap, incomplete, symlinks=True)
    (incomplete / "manifest.json").unlink()
    refused = run_cli("restore", incomplete.name, "--dest", dest, env=klink_env, check=2)
    assert "incomplete" in refused.stderr
    assert running(klink_env) == ALL


def test_restore_refuses_a_snapshot_that_fails_a_quick_verify(tmp_path, klink_env):
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    snap = _backup(folder, dest, klink_env)
    (snap / "folder/storage/data/documents/003.bin").unlink()
    before = tree(folder)
    refused = run_cli("restore", "--dest", dest, "--folder", folder, env=klink_env, check=2)
    assert "fails a quick verify" in refused.stderr and "003.bin" in refused.stderr
    assert tree(folder) == before
    assert running(klink_env) == ALL


def test_hot_cold_prunes_after_the_run_when_retention_is_configured(tmp_path, klink_env):
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    config = tmp_path / "config.yml"
    config.write_text("retention:\n  keep_last: 2\n")
    for _ in range(3):
        run_cli("hot-cold", "--folder", folder, "--dest", dest, "--config", config, env=klink_env)
        time.sleep(1.1)  # snapshot names are whole seconds
    names = sorted(p.name for p in (dest / "snapshots").iterdir())
    assert len(names) == 2 and latest(dest).name == names[-1]
    assert "intact" in run_cli("verify", "--dest", dest, env=klink_env).stdout
