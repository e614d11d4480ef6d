"""Locks, permissions, mounts, free space and hostile paths, with real rsync."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import KLINK_SYNC, run_cli, tree
from tests.integration.test_hot_cold import ALL, latest, make_deployment, running, set_running


def never_stopped(env: dict) -> bool:
    log = Path(env["FAKE_COMPOSE_LOG"])
    return not log.exists() or " stop " not in log.read_text()


def _start_slow_run(folder: Path, dest: Path, env: dict, seconds: int = 30):
    """A run that holds its locks for a while: the stand-in stop sleeps."""
    slow_env = {**os.environ, **env, "FAKE_COMPOSE_ON_STOP": f"sleep {seconds}"}
    proc = subprocess.Popen([KLINK_SYNC, "hot-cold", "--folder", str(folder), "--dest", str(dest)],
                            env=slow_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    log = Path(env["FAKE_COMPOSE_LOG"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if log.exists() and " stop " in log.read_text():
            return proc
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the slow run never reached the stop")


def test_two_runs_one_proceeds_the_other_exits_3(tmp_path, klink_env):
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    first = _start_slow_run(folder, tmp_path / "backup", klink_env, seconds=8)
    try:
        same_dest = run_cli("hot-cold", "--folder", folder, "--dest", tmp_path / "backup",
                            env=klink_env, check=3)  # fmt: skip
        assert f"(pid {first.pid}) holds the lock" in same_dest.stderr
        other_dest = run_cli("hot-cold", "--folder", folder, "--dest", tmp_path / "other",
                             env=klink_env, check=3)  # fmt: skip
        assert str(folder) in other_dest.stderr and f"pid {first.pid}" in other_dest.stderr
    finally:
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert running(klink_env) == ALL
    assert len(list((tmp_path / "backup" / "snapshots").iterdir())) == 1


def test_a_killed_run_leaves_no_lock_that_blocks(tmp_path, klink_env):
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    first = _start_slow_run(folder, dest, klink_env, seconds=60)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert (dest / ".lock").exists()
    set_running(klink_env, ALL)  # SIGKILL cannot be caught: the admin starts the stack
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env)
    assert latest(dest).is_dir()


def test_snapshots_are_private_whatever_the_umask(tmp_path, klink_env):
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    old = os.umask(0)
    try:
        run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env)
    finally:
        os.umask(old)
    snap = latest(dest)
    for path in (dest / "snapshots", snap):
        assert path.stat().st_mode & 0o777 == 0o700, path
    for name in ("manifest.json", "SHA256SUMS", "source-index.json.gz"):
        assert (snap / name).stat().st_mode & 0o777 == 0o600, name


def test_require_mount_refuses_the_root_disk_before_the_stop(tmp_path, klink_env):
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    config = tmp_path / "config.yml"
    config.write_text("require_mount: true\n")
    dest = tmp_path / "usb-disk-not-plugged"
    proc = run_cli("hot-cold", "--folder", folder, "--dest", dest, "--config", config,
                   env=klink_env, check=75)  # fmt: skip
    assert "not on a mounted disk" in proc.stderr and str(dest) in proc.stderr
    assert not dest.exists()
    assert never_stopped(klink_env)


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_require_mount_accepts_a_mounted_disk(tmp_path, klink_env, small_disk):
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    config = tmp_path / "config.yml"
    config.write_text("require_mount: true\n")
    run_cli("hot-cold", "--folder", folder, "--dest", small_disk / "k-link", "--config", config,
            env=klink_env)  # fmt: skip
    assert tree(latest(small_disk / "k-link") / "folder") == tree(folder)


def test_not_enough_space_is_known_before_the_stop(tmp_path, klink_env, small_disk):
    folder = make_deployment(tmp_path)
    (folder / "storage/data/big.bin").write_bytes(os.urandom(30 * 2**20))
    set_running(klink_env, ALL)
    dest = small_disk / "k-link"
    proc = run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env, check=75)
    assert "not enough free space" in proc.stderr and "MiB needed" in proc.stderr
    assert never_stopped(klink_env)
    assert running(klink_env) == ALL
    assert not list((dest / "snapshots").iterdir())


HOSTILE = [
    "with space", "quote'single", 'quote"double', "$(touch PWNED)", "`touch PWNED2`",
    "-leading-dash", "--delete", "new\nline", "star*question?[bracket]", "back\\slash",
    "semi;colon&amp|pipe", "tab\there",
]


def test_hostile_names_are_copied_and_never_reach_a_shell(tmp_path, klink_env):
    folder = make_deployment(tmp_path)
    data = folder / "storage/data/hostile"
    data.mkdir()
    for i, name in enumerate(HOSTILE):
        (data / name).write_text(f"file {i}")
        (data / f"dir {name}").mkdir()
        (data / f"dir {name}" / name).write_text(f"nested {i}")
    raw = os.fsencode(data) + b"/latin1-\xe9t\xe9"
    with open(raw, "wb") as f:
        f.write(b"not utf-8 name")
    os.symlink("/etc", data / "link-out-of-the-volume")
    os.symlink("../../../../..", data / "link-up")
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env, cwd=tmp_path)
    # change them between two runs: the refresh list must carry the names too
    for name in HOSTILE:
        (data / name).write_text("changed")
    proc = run_cli("hot-cold", "--folder", folder, "--dest", dest, "--json", env=klink_env,
                   cwd=tmp_path)  # fmt: skip
    snap = latest(dest) / "folder/storage/data/hostile"
    assert tree(snap) == tree(data)
    assert os.readlink(snap / "link-out-of-the-volume") == "/etc"
    assert (snap / "link-out-of-the-volume").is_symlink()
    assert os.path.exists(os.fsencode(snap) + b"/latin1-\xe9t\xe9")
    assert not list(tmp_path.rglob("PWNED*")) and not list(Path.cwd().glob("PWNED*"))
    assert json.loads(proc.stdout)["result"] == "ok"
    assert "intact" in run_cli("verify", "--dest", dest, env=klink_env).stdout


def test_hostile_setup_folder_name(tmp_path, klink_env):
    base = tmp_path / "it's $(touch PWNED) -x"
    base.mkdir()
    folder = make_deployment(base)
    set_running(klink_env, ALL)
    dest = tmp_path / "back up; rm -rf"
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env, cwd=tmp_path)
    assert tree(latest(dest) / "folder") == tree(folder)
    assert not list(tmp_path.rglob("PWNED*"))
