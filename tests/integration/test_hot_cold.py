"""hot-cold and cold with real rsync on real trees; a stand-in compose command."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli, tree

COMPOSE = """
services:
  database:
    image: mariadb:10.3
    environment:
      MYSQL_ROOT_PASSWORD: "${DB_ROOT_PASSWORD}"
    volumes:
      - "./storage/database:/var/lib/mysql"
  kbox:
    image: klinktechnology/k-box:0.33.1
    volumes:
      - "./storage/data:/var/www/dms/storage"
  engine:
    image: klinktechnology/k-search-engine:1.0.1
    volumes:
      - "./storage/index:/opt/solr/k-search/k-search/data"
"""
ROOT_PASSWORD = "root-pass-4e1d9c"


def make_deployment(base: Path) -> Path:
    folder = base / "k-link"
    for sub in ("storage/database/dms", "storage/data/documents", "storage/index"):
        (folder / sub).mkdir(parents=True)
    (folder / "docker-compose.yml").write_text(COMPOSE)
    (folder / ".env").write_text(f"DB_ROOT_PASSWORD={ROOT_PASSWORD}\n")
    (folder / "storage/database/ibdata1").write_bytes(os.urandom(300_000))
    (folder / "storage/database/dms/documents.ibd").write_bytes(os.urandom(100_000))
    for i in range(50):
        (folder / f"storage/data/documents/{i:03}.bin").write_bytes(os.urandom(10_000 + i))
    (folder / "storage/index/segments_1").write_bytes(os.urandom(5_000))
    time.sleep(0.3)  # older than a ctime tick: a run may trust what it copied hot
    return folder


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_deployment(tmp_path)


def set_running(env: dict, services: list[str]) -> None:
    Path(env["FAKE_COMPOSE_STATE"]).write_text("".join(s + "\n" for s in services))


def running(env: dict) -> list[str]:
    return sorted(Path(env["FAKE_COMPOSE_STATE"]).read_text().split())


def latest(dest: Path) -> Path:
    return dest / "snapshots" / os.path.basename(os.readlink(dest / "latest"))


ALL = ["database", "engine", "kbox"]


def test_hot_cold_copies_everything_and_restarts(folder, tmp_path, klink_env):
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    proc = run_cli("hot-cold", "--folder", folder, "--dest", dest, "--json", env=klink_env)
    report = json.loads(proc.stdout)
    assert report["result"] == "ok"
    snap = latest(dest)
    assert tree(snap / "folder") == tree(folder)
    manifest = json.loads((snap / "manifest.json").read_text())
    assert manifest["services_before"] == ALL and manifest["services_after"] == ALL
    assert running(klink_env) == ALL
    classes = {u["dest"]: u["class"] for u in manifest["units"]}
    assert classes == {"folder": "cold", "folder/storage/data": "hot",
                       "folder/storage/database": "cold", "folder/storage/index": "hot"}
    # the hot pass copied the documents; the cold pass had nothing left to move there
    moved = {u["dest"]: u["bytes_transferred"] for u in manifest["units"]}
    assert moved["folder/storage/data"]["hot"] > 500_000
    assert moved["folder/storage/data"]["cold"] == 0
    assert moved["folder/storage/database"] == {"hot": 400_000, "cold": 0}  # seeded hot
    # compose was called: stop the whole project, then start exactly those services
    calls = Path(klink_env["FAKE_COMPOSE_LOG"]).read_text().splitlines()
    assert any(c.endswith("stop -t 120") for c in calls)
    assert any(c.endswith("start database engine kbox") for c in calls)
    assert (snap.stat().st_mode & 0o077) == 0 and (dest / "snapshots").stat().st_mode & 0o077 == 0
    assert not (dest / ".staging").exists()


def test_second_run_hard_links_unchanged_files(folder, tmp_path, klink_env):
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env)
    first = latest(dest)
    changed = folder / "storage/data/documents/007.bin"
    changed.write_bytes(os.urandom(12_345))
    time.sleep(0.3)  # older than a ctime tick, or its hot copy is rightly copied again cold
    proc = run_cli("hot-cold", "--folder", folder, "--dest", dest, "--json", env=klink_env)
    second = latest(dest)
    assert second != first and len(list((dest / "snapshots").iterdir())) == 2
    same = folder / "storage/data/documents/001.bin"
    rel = "folder/storage/data/documents/001.bin"
    assert (first / rel).stat().st_ino == (second / rel).stat().st_ino
    rel_changed = "folder/storage/data/documents/007.bin"
    assert (first / rel_changed).stat().st_ino != (second / rel_changed).stat().st_ino
    assert (second / rel_changed).read_bytes() == changed.read_bytes()
    assert same.read_bytes() == (second / rel).read_bytes()
    report = json.loads(proc.stdout)
    data_moved = sum(p["stats"]["transferred_size"] for p in report["passes"]
                     if p["unit"] == "folder/storage/data")  # fmt: skip
    assert data_moved == 12_345
    assert report["bytes_moved"]["hot"] + report["bytes_moved"]["cold"] == 12_345


def _rewrite_keeping(path: Path, keep_mtime_ns: int | None, same_second: bool) -> bytes:
    """New content of the same size; mtime put back exactly, or kept within its second."""
    st = path.stat()
    new = os.urandom(st.st_size)
    path.write_bytes(new)
    if keep_mtime_ns is not None:
        os.utime(path, ns=(st.st_atime_ns, keep_mtime_ns))
    elif same_second:
        second = st.st_mtime_ns // 1_000_000_000 * 1_000_000_000
        os.utime(path, ns=(st.st_atime_ns, second + (st.st_mtime_ns + 1) % 1_000_000_000))
    after = path.stat()
    assert after.st_size == st.st_size
    assert after.st_mtime_ns // 10**9 == st.st_mtime_ns // 10**9
    return new


CHANGE_AFTER_HOT = """
import os, sys
sys.path.insert(0, {root!r})
from tests.integration.test_hot_cold import _rewrite_keeping
from pathlib import Path
Path({out!r}).write_bytes(_rewrite_keeping(Path({target!r}), {keep}, True))
"""


@pytest.mark.parametrize("restore_mtime", [False, True], ids=["same-second", "mtime-restored"])
def test_cold_pass_catches_changes_rsync_quick_check_misses(
    folder, tmp_path, klink_env, restore_mtime
):
    """The file changes after the hot pass copied it, keeping size and mtime second."""
    set_running(klink_env, ALL)
    target = folder / "storage/data/documents/010.bin"
    out = tmp_path / "expected"
    keep = str(target.stat().st_mtime_ns) if restore_mtime else "None"
    root = str(Path(__file__).resolve().parents[2])
    script = CHANGE_AFTER_HOT.format(root=root, out=str(out), target=str(target), keep=keep)
    script_file = tmp_path / "change.py"
    script_file.write_text(script)
    import sys

    klink_env["FAKE_COMPOSE_ON_STOP"] = f"{sys.executable} {script_file}"
    dest = tmp_path / "backup"
    proc = run_cli("hot-cold", "--folder", folder, "--dest", dest, "--json", env=klink_env)
    snap = latest(dest)
    assert out.read_bytes() == target.read_bytes()
    assert (snap / "folder/storage/data/documents/010.bin").read_bytes() == out.read_bytes()
    refreshed = [p for p in json.loads(proc.stdout)["passes"] if p["refreshed"]]
    assert sum(p["refreshed"] for p in refreshed) >= 1


@pytest.mark.parametrize("restore_mtime", [False, True], ids=["same-second", "mtime-restored"])
def test_next_run_catches_hidden_change_without_touching_older_snapshot(
    folder, tmp_path, klink_env, restore_mtime
):
    """Between two runs a file changes, keeping size and mtime: link-dest must not reuse it."""
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env)
    first = latest(dest)
    rel = "storage/data/documents/020.bin"
    old = (first / "folder" / rel).read_bytes()
    target = folder / rel
    keep = target.stat().st_mtime_ns if restore_mtime else None
    new = _rewrite_keeping(target, keep, True)
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env)
    second = latest(dest)
    assert (second / "folder" / rel).read_bytes() == new
    assert (first / "folder" / rel).read_bytes() == old


def _first_snapshot_of_data(folder: Path, tmp_path: Path, klink_env: dict):
    """A first hot-cold run: the destination, its storage/data and that tree's state."""
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env)
    first = latest(dest) / "folder/storage/data"
    return dest, first, tree(first)


ATTRIBUTE_CHANGES = {
    # a tree with no xattr at all: the cold pass may copy it without -A -X
    "chmod-only": "chmod 600 {docs}/005.bin && chown 1234 {docs}/006.bin",
    # an xattr and a directory ACL appear after the hot pass: they must reach the snapshot
    "xattr-and-acl": "chmod 600 {docs}/005.bin && setfattr -n user.late -v 1 {docs}/006.bin"
                     " && setfacl -m u:4321:rx {docs}",
}


@pytest.mark.parametrize("change", sorted(ATTRIBUTE_CHANGES))
def test_attribute_changes_after_the_hot_pass_reach_only_the_new_snapshot(
    folder, tmp_path, klink_env, change
):
    """Attributes change between the hot and the cold pass of a second run, on files the
    hot pass hard-linked to the first snapshot: the new snapshot has them, the first not."""
    dest, first, before = _first_snapshot_of_data(folder, tmp_path, klink_env)
    docs = folder / "storage/data/documents"
    klink_env["FAKE_COMPOSE_ON_STOP"] = ATTRIBUTE_CHANGES[change].format(docs=docs)
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env)
    second = latest(dest) / "folder/storage/data"
    assert tree(second) == tree(folder / "storage/data")
    assert tree(first) == before  # not a mode, owner or xattr of the first snapshot moved
    assert stat.S_IMODE((second / "documents/005.bin").stat().st_mode) == 0o600
    rel = "documents/001.bin"  # untouched: still one file in both snapshots
    assert (first / rel).stat().st_ino == (second / rel).stat().st_ino


def test_an_xattr_set_between_runs_reaches_the_next_snapshot_only(folder, tmp_path, klink_env):
    """The first run's walks found no xattr, so the next asks only files changed since:
    setting one changes the file's ctime, so it is asked, found and copied."""
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env)
    first = latest(dest) / "folder/storage/data/documents/003.bin"
    os.setxattr(folder / "storage/data/documents/003.bin", "user.klink", b"late")
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env)
    second = latest(dest) / "folder/storage/data/documents/003.bin"
    assert os.getxattr(second, "user.klink") == b"late"
    assert "user.klink" not in os.listxattr(first)


def test_owners_modes_links_xattrs_survive(folder, tmp_path, klink_env):
    data = folder / "storage/data"
    special = data / "special"
    special.mkdir()
    f = special / "owned"
    f.write_bytes(b"owned by 1234:2345")
    os.chown(f, 1234, 2345)
    os.chmod(f, 0o640)
    (special / "setgid-dir").mkdir(mode=0o2750)
    os.chmod(special / "setgid-dir", 0o2750)
    os.symlink("owned", special / "relative-link")
    os.symlink("/etc/hostname", special / "absolute-link")
    os.symlink("../../database", special / "escaping-link")
    os.link(f, special / "hardlink")
    os.setxattr(f, "user.klink", b"tagged")
    subprocess.run(["setfacl", "-m", "u:4321:r", str(f)], check=True)
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env)
    snap = latest(dest) / "folder/storage/data/special"
    assert tree(snap) == tree(special)
    assert (snap / "owned").stat().st_ino == (snap / "hardlink").stat().st_ino
    assert os.readlink(snap / "escaping-link") == "../../database"
    acl = subprocess.run(["getfacl", "-cn", str(snap / "owned")], capture_output=True, text=True)
    assert "user:4321:r--" in acl.stdout


def test_stopped_stack_is_backed_up_cold_and_left_stopped(folder, tmp_path, klink_env):
    set_running(klink_env, [])
    dest = tmp_path / "backup"
    proc = run_cli("hot-cold", "--folder", folder, "--dest", dest, "--json", env=klink_env)
    report = json.loads(proc.stdout)
    assert report["services_before"] == [] and report["services_after"] == []
    assert running(klink_env) == []
    assert "hot" not in report["phases"]
    assert tree(latest(dest) / "folder") == tree(folder)
    calls = Path(klink_env["FAKE_COMPOSE_LOG"]).read_text()
    assert " start" not in calls


def test_cold_mode_has_no_hot_pass(folder, tmp_path, klink_env):
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    proc = run_cli("cold", "--folder", folder, "--dest", dest, "--json", env=klink_env)
    report = json.loads(proc.stdout)
    assert report["mode"] == "cold" and "hot" not in report["phases"]
    assert report["bytes_moved"]["hot"] == 0 and report["bytes_moved"]["cold"] > 800_000
    assert tree(latest(dest) / "folder") == tree(folder)
    assert running(klink_env) == ALL


def test_dry_run_prints_commands_and_touches_nothing(folder, tmp_path, klink_env):
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    proc = run_cli("hot-cold", "--folder", folder, "--dest", dest, "--dry-run", env=klink_env)
    assert "rsync -aHAX --numeric-ids --delete" in proc.stdout
    assert "[stop]" in proc.stdout and "[cold]" in proc.stdout
    assert not dest.exists()
    assert not Path(klink_env["FAKE_COMPOSE_LOG"]).exists() or "stop" not in Path(
        klink_env["FAKE_COMPOSE_LOG"]
    ).read_text()
    assert running(klink_env) == ALL
    assert ROOT_PASSWORD not in proc.stdout + proc.stderr


REWRITE_AFTER_FIRST_ROUND = """#!/usr/bin/env bash
# rsync, then once, after the first hot copy of the documents: rewrite a file
# keeping its size and mtime (invisible to the next round's quick check).
/usr/bin/rsync "$@"; code=$?
for a in "$@"; do
  if [ "$a" = "{data}/" ] && [ ! -e "{marker}" ] && [[ " $* " != *" --dry-run "* ]]; then
    touch "{marker}"; {grow}
    {python} -c "import sys; sys.path.insert(0, '{root}');
from pathlib import Path
from tests.integration.test_hot_cold import _rewrite_keeping
t = Path('{target}')
Path('{expected}').write_bytes(_rewrite_keeping(t, t.stat().st_mtime_ns, True))"
  fi
done
exit $code
"""


GROW_DURING_FIRST_ROUND = 'head -c 20971520 /dev/urandom > "{data}/big.bin"'


def _second_round_with(wrapper: str, folder: Path, tmp_path: Path, klink_env: dict) -> dict:
    """`wrapper` as rsync on PATH; it writes 20 MiB during round 1, so a round 2 runs."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "rsync").write_text(wrapper)
    (bindir / "rsync").chmod(0o755)
    return {**klink_env, "PATH": f"{bindir}:{os.environ['PATH']}"}


def test_hot_rounds_repeat_and_a_change_between_rounds_is_caught(folder, tmp_path, klink_env):
    """Round 1 moves much, so a second round runs; a hidden change after round 1 is caught."""
    import sys

    target = folder / "storage/data/documents/030.bin"
    env = _second_round_with(REWRITE_AFTER_FIRST_ROUND.format(
        data=folder / "storage/data", marker=tmp_path / "done", python=sys.executable,
        root=Path(__file__).resolve().parents[2], target=target, expected=tmp_path / "expected",
        grow=GROW_DURING_FIRST_ROUND.format(data=folder / "storage/data"),
    ), folder, tmp_path, klink_env)  # fmt: skip
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    proc = run_cli("hot-cold", "--folder", folder, "--dest", dest, "--json", env=env)
    report = json.loads(proc.stdout)
    rounds = [p["round"] for p in report["passes"] if p["phase"] == "hot"]
    assert max(rounds) >= 2, rounds
    assert (tmp_path / "expected").read_bytes() == target.read_bytes()
    assert (latest(dest) / "folder/storage/data/documents/030.bin").read_bytes() == (
        target.read_bytes()
    )
    assert tree(latest(dest) / "folder") == tree(folder)


def test_a_round_that_moved_much_is_not_repeated_when_little_changed_during_it(
    folder, tmp_path, klink_env
):
    """Round 1 copies a 20 MiB backlog, but nothing changes while it runs: what a second
    round would copy is what the cold pass copies anyway, so there is none."""
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env)
    (folder / "storage/data/big.bin").write_bytes(os.urandom(20 * 2**20))
    time.sleep(0.5)
    proc = run_cli("hot-cold", "--folder", folder, "--dest", dest, "--json", env=klink_env)
    report = json.loads(proc.stdout)
    hot = [p for p in report["passes"] if p["phase"] == "hot"]
    assert {p["round"] for p in hot} == {1}, hot
    assert sum(p["stats"]["transferred_size"] for p in hot) >= 20 * 2**20
    assert "hot pass: 0 bytes changed during round 1" in proc.stderr
    assert tree(latest(dest) / "folder") == tree(folder)


def test_config_excludes_leave_paths_out_and_restore_leaves_them_alone(
    folder, tmp_path, klink_env
):
    cache = folder / "storage/data/cache"
    cache.mkdir()
    (cache / "thumb.jpg").write_bytes(b"regenerated at will")
    (folder / "storage/data/documents/upload.tmp").write_bytes(b"half uploaded")
    config = tmp_path / "config.yml"
    config.write_text("excludes:\n  ./storage/data:\n    - /cache/\n    - '*.tmp'\n")
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    run_cli("hot-cold", "--folder", folder, "--dest", dest, "--config", config, env=klink_env)
    snap = latest(dest) / "folder/storage/data"
    assert not (snap / "cache").exists() and not (snap / "documents/upload.tmp").exists()
    assert (snap / "documents/001.bin").read_bytes() == (
        folder / "storage/data/documents/001.bin"
    ).read_bytes()
    run_cli("restore", "--dest", dest, "--folder", folder, "--no-safety-snapshot", env=klink_env)
    assert (cache / "thumb.jpg").exists()
    assert (folder / "storage/data/documents/upload.tmp").exists()
    config.write_text("excludes:\n  ./storage/nothing-here:\n    - x\n")
    bad = run_cli("plan", "--folder", folder, "--config", config, env=klink_env, check=2)
    assert f"{config}: excludes['./storage/nothing-here']" in bad.stderr


CHMOD_AFTER_FIRST_ROUND = """#!/usr/bin/env bash
# rsync, then once, after the first hot copy of the documents: change a file's mode only.
/usr/bin/rsync "$@"; code=$?
for a in "$@"; do
  if [ "$a" = "{data}/" ] && [ ! -e "{marker}" ]; then
    touch "{marker}"; chmod 600 "{target}"; {grow}
  fi
done
exit $code
"""


def test_a_later_hot_round_spares_the_older_snapshot(folder, tmp_path, klink_env):
    """Round 2 copies without --link-dest into a staging folder whose files round 1
    hard-linked to the first snapshot: a mode changed between the rounds reaches the new
    snapshot only."""
    dest, first, before = _first_snapshot_of_data(folder, tmp_path, klink_env)
    target = folder / "storage/data/documents/005.bin"
    env = _second_round_with(CHMOD_AFTER_FIRST_ROUND.format(
        data=folder / "storage/data", marker=tmp_path / "done", target=target,
        grow=GROW_DURING_FIRST_ROUND.format(data=folder / "storage/data")),
        folder, tmp_path, klink_env)  # fmt: skip
    report = json.loads(run_cli("hot-cold", "--folder", folder, "--dest", dest, "--json",
                                env=env).stdout)  # fmt: skip
    assert max(p["round"] for p in report["passes"] if p["phase"] == "hot") >= 2
    second = latest(dest) / "folder/storage/data"
    assert tree(second) == tree(folder / "storage/data")
    assert stat.S_IMODE((second / "documents/005.bin").stat().st_mode) == 0o600
    assert tree(first) == before
