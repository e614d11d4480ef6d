"""What the run says equals what is on disk (hardening items 1, 6, 11): every file of a
snapshot equals its source at the stop, and `verify` finds what does not. Real rsync, the
stand-in compose, local and over ssh."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli, tree
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
    return _where(request, tmp_path, klink_env)


@pytest.fixture(params=["local"])
def here(request, tmp_path: Path, klink_env: dict) -> tuple[str, Path, dict]:
    """The copies' rules are the destination's alike (`where` shows items 1 over ssh too);
    local only keeps `make test` short."""
    return _where(request, tmp_path, klink_env)


def _where(request, tmp_path: Path, klink_env: dict) -> tuple[str, Path, dict]:
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


def _storage_on_a_bigger_disk(tmp_path: Path) -> tuple[Path, Path]:
    """The admins' habit: `storage` moved to another disk, a symlink left in its place."""
    folder = make_deployment(tmp_path)
    bigdisk = tmp_path / "bigdisk"
    bigdisk.mkdir()
    os.rename(folder / "storage", bigdisk / "storage")
    (folder / "storage").symlink_to(bigdisk / "storage")
    return folder, bigdisk


def test_a_symlinked_storage_folder_is_backed_up_and_restored(here, tmp_path):
    """Item 2: the run ended ok with a snapshot holding only the symlink."""
    dest, real, env = here
    folder, bigdisk = _storage_on_a_bigger_disk(tmp_path)
    before = tree(bigdisk)
    set_running(env, ALL)
    plan = run_cli("plan", "--folder", folder, env=env).stdout
    assert f"{folder}/storage/data -> {bigdisk}/storage/data" in plan
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=env)
    run_cli("verify", "--dest", dest, env=env)
    snap = latest(real)
    docs = [p for p in snap.rglob("*.bin") if p.parent.name == "documents"]
    assert len(docs) == 50 and any(snap.rglob("ibdata1"))
    shutil.rmtree(folder)
    shutil.rmtree(bigdisk / "storage")  # the deployment lost, the disk emptied
    folder.mkdir()  # the admin puts the link back (a restore never follows one it brought)
    (folder / "storage").symlink_to(bigdisk / "storage")
    (bigdisk / "storage").mkdir()
    run_cli("restore", "--dest", dest, "--folder", folder, env=env)
    assert os.readlink(folder / "storage") == str(bigdisk / "storage")
    assert tree(bigdisk) == before


def test_a_file_bind_through_a_symlink_keeps_the_files_content(here, tmp_path):
    """Item 11: only the link was saved, not the file, and the run said ok."""
    dest, real, env = here
    folder = make_deployment(tmp_path)
    conf = tmp_path / "etc-app" / "app.ini"
    conf.parent.mkdir()
    conf.write_text("secret_key=abc\n")
    (folder / "app.ini").symlink_to(conf)
    compose = folder / "docker-compose.yml"
    compose.write_text(compose.read_text() + "  app:\n    image: example/app\n    volumes:\n"
                       "      - ./app.ini:/etc/app.ini:ro\n")
    set_running(env, [*ALL, "app"])
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=env)
    saved = latest(real) / "folder" / "app.ini"
    assert not saved.is_symlink() and saved.read_text() == "secret_key=abc\n"


CHMOD_AS_ROUND_2_BEGINS = """#!/usr/bin/env bash
# The first hot copy of the documents writes 20 MiB more (so a round 2 runs); as the next
# copy of them begins (round 2, after its walk), a file's mode changes.
for a in "$@"; do
  if [ "$a" = "{data}/" ] && [ -e "{marker}" ] && [ ! -e "{marker}2" ]; then
    touch "{marker}2"; chmod 600 "{target}"
  fi
done
/usr/bin/rsync "$@"; code=$?
for a in "$@"; do
  if [ "$a" = "{data}/" ] && [ ! -e "{marker}" ]; then
    touch "{marker}"; head -c 20971520 /dev/urandom > "{data}/big.bin"
  fi
done
exit $code
"""


def test_a_change_as_a_later_hot_round_begins_spares_older_snapshots(here, tmp_path):
    """Item 6: round 2 copied over a staging folder whose files round 1 hard-linked to the
    older snapshot, so a chmod landing after round 2's walk changed that snapshot too."""
    dest, real, env = here
    folder = make_deployment(tmp_path)
    set_running(env, ALL)
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=env)
    first = latest(real) / "folder/storage/data"
    before = tree(first)
    target = folder / "storage/data/documents/005.bin"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "rsync").write_text(CHMOD_AS_ROUND_2_BEGINS.format(
        data=folder / "storage/data", marker=tmp_path / "done", target=target))
    (bindir / "rsync").chmod(0o755)
    env = {**env, "PATH": f"{bindir}:{os.environ['PATH']}"}
    report = json.loads(run_cli("hot-cold", "--folder", folder, "--dest", dest, "--json",
                                env=env).stdout)  # fmt: skip
    assert max(p["round"] for p in report["passes"] if p["phase"] == "hot") >= 2
    assert (tmp_path / "done2").exists()
    assert tree(first) == before
    second = latest(real) / "folder/storage/data"
    assert tree(second) == tree(folder / "storage/data")
