"""A remote destination (`user@127.0.0.1:/path`) over a real OpenSSH server.

The server (tests/sshd.py) runs on this machine, so the remote side is checked directly
under its path: inodes, modes, the latest link. Real rsync, the stand-in compose command.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import KLINK_SYNC, run_cli, tree
from tests.integration.test_hot_cold import (
    ALL,
    CHANGE_AFTER_HOT,
    ROOT_PASSWORD,
    latest,
    make_deployment,
    running,
    set_running,
)
from tests.sshd import Sshd, sshd  # noqa: F401 (the fixture)

DOC = "folder/storage/data/documents/{:03}.bin"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_deployment(tmp_path)


@pytest.fixture
def env(klink_env: dict, sshd: Sshd) -> dict:  # noqa: F811
    set_running(klink_env, ALL)
    return {**klink_env, **sshd.env}


def _names(dest: Path) -> list[str]:
    return sorted(p.name for p in (dest / "snapshots").iterdir())


def _sha256sum_check(snap: Path) -> None:
    """GNU sha256sum agrees with the SHA256SUMS written on the remote side."""
    check = subprocess.run(["sha256sum", "-c", "--quiet", "--strict", "SHA256SUMS"], cwd=snap,
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


def test_hot_cold_makes_two_snapshots_with_hard_links_on_the_remote_side(
    folder, tmp_path, env, sshd  # noqa: F811
):
    dest = tmp_path / "remote" / "backup"
    dest.parent.mkdir()
    spec = sshd.dest(dest)
    first = json.loads(run_cli("hot-cold", "--folder", folder, "--dest", spec, "--json",
                               env=env).stdout)  # fmt: skip
    assert first["result"] == "ok" and first["dest"] == spec
    assert first["services_before"] == ALL == first["services_after"] and running(env) == ALL
    assert first["bytes_moved"]["hot"] > 500_000  # the documents moved while "running"
    snap1 = latest(dest)
    # the layout of a local destination, on the remote side
    assert (dest / ".klink-sync").is_file() and not (dest / ".staging").exists()
    assert os.readlink(dest / "latest") == f"snapshots/{snap1.name}"
    assert (dest / "snapshots").stat().st_mode & 0o077 == 0 and snap1.stat().st_mode & 0o077 == 0
    assert (snap1 / "manifest.json").stat().st_mode & 0o777 == 0o600
    assert (snap1 / "SHA256SUMS").stat().st_mode & 0o777 == 0o600
    assert (snap1 / "source-index.json.gz").is_file()
    assert tree(snap1 / "folder") == tree(folder)
    _sha256sum_check(snap1)
    assert first["checksums"]["files"] == first["checksums"]["hashed_files"] > 50
    manifest = json.loads((snap1 / "manifest.json").read_text())
    assert manifest["services_before"] == ALL and manifest["result"] == "ok"
    assert ROOT_PASSWORD not in (snap1 / "manifest.json").read_text()

    changed = folder / "storage/data/documents/007.bin"
    changed.write_bytes(os.urandom(12_345))
    second = json.loads(run_cli("hot-cold", "--folder", folder, "--dest", spec, "--json",
                                env=env).stdout)  # fmt: skip
    snap2 = latest(dest)
    assert snap2 != snap1 and _names(dest) == sorted([snap1.name, snap2.name])
    # unchanged files are hard links to the first snapshot's, on the remote side
    same, new = DOC.format(1), DOC.format(7)
    assert (snap1 / same).stat().st_ino == (snap2 / same).stat().st_ino
    assert (snap2 / same).stat().st_nlink >= 2
    assert (snap1 / new).stat().st_ino != (snap2 / new).stat().st_ino
    assert (snap2 / new).read_bytes() == changed.read_bytes()
    assert tree(snap2 / "folder") == tree(folder)
    linked = sum(1 for p in (snap2 / "folder").rglob("*") if p.is_file() and p.stat().st_nlink > 1)
    assert linked >= 50
    # only the changed file moved; its checksum alone was computed
    assert second["bytes_moved"]["hot"] + second["bytes_moved"]["cold"] == 12_345
    sums = second["checksums"]
    assert sums["hashed_files"] == 1 and sums["reused"] == sums["files"] - 1
    _sha256sum_check(snap2)


def test_snapshots_and_verify_on_the_remote_destination(folder, tmp_path, env, sshd):  # noqa: F811
    dest = tmp_path / "backup"
    spec = sshd.dest(dest)
    run_cli("hot-cold", "--folder", folder, "--dest", spec, env=env)
    (folder / "storage/data/documents/new.bin").write_bytes(os.urandom(4096))
    run_cli("hot-cold", "--folder", folder, "--dest", spec, env=env)
    rows = json.loads(run_cli("snapshots", "--dest", spec, "--json", env=env).stdout)
    local = json.loads(run_cli("snapshots", "--dest", dest, "--json").stdout)
    assert rows == local  # the same answer as reading the folder here
    assert [r["latest"] for r in rows] == [False, True]
    assert rows[1]["new_bytes"] < rows[1]["total_bytes"] and rows[0]["mode"] == "hot-cold"
    assert rows[1]["new_bytes"] >= 4096
    text = run_cli("snapshots", "--dest", spec, env=env).stdout
    assert "(latest)" in text and "not verified" in text

    proc = run_cli("verify", "--dest", spec, env=env)
    snap = latest(dest)
    assert f"snapshot {snap.name}: intact" in proc.stdout
    verified = json.loads((snap / "verified.json").read_text())
    assert verified["sample"] == 100 and verified["files"] > 50
    assert (snap / "verified.json").stat().st_mode & 0o777 == 0o600
    assert "verified 20" in run_cli("snapshots", "--dest", spec, env=env).stdout
    run_cli("verify", "--all", "--sample", "50", "--dest", spec, env=env)

    # damage on the remote side: found by the remote re-read and walk
    (snap / DOC.format(3)).write_bytes(b"rotten")
    (snap / "folder/stray").write_bytes(b"x")
    (snap / DOC.format(4)).unlink()
    bad = run_cli("verify", "--dest", spec, env=env, check=1)
    assert f"changed: {DOC.format(3)}" in bad.stdout and "extra: folder/stray" in bad.stdout
    assert f"missing: {DOC.format(4)}" in bad.stdout
    assert "damaged (1 missing, 1 changed, 1 extra)" in bad.stderr
    report = json.loads(run_cli("verify", "--dest", spec, "--json", env=env, check=1).stdout)
    assert report["changed"] == [DOC.format(3)] and not report["ok"]
    run_cli("verify", "--dest", spec, "--database", env=env, check=2)
    run_cli("verify", "no-such-snapshot", "--dest", spec, env=env, check=2)


def _start_run(folder: Path, spec: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([KLINK_SYNC, "hot-cold", "--folder", str(folder), "--dest", spec],
                            env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def _wait_for_stop(env: dict, proc: subprocess.Popen, timeout: float = 60) -> None:
    log = Path(env["FAKE_COMPOSE_LOG"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and " stop " in f" {log.read_text()} ":
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    pytest.fail("the first run never stopped the stack")


def test_a_second_concurrent_run_exits_3_and_a_killed_holder_leaves_no_lock(
    tmp_path, env, sshd, klink_env  # noqa: F811
):
    dest = tmp_path / "backup"
    spec = sshd.dest(dest)
    one = make_deployment(tmp_path / "one")
    two = make_deployment(tmp_path / "two")  # another deployment: only the destination is shared
    env_two = {**env, "FAKE_COMPOSE_STATE": str(tmp_path / "two-running"),
               "FAKE_COMPOSE_LOG": str(tmp_path / "two.log")}  # fmt: skip
    set_running(env_two, ALL)
    holder = _start_run(one, spec, {**env, "FAKE_COMPOSE_ON_STOP": "sleep 4"})
    _wait_for_stop(env, holder)
    second = run_cli("hot-cold", "--folder", two, "--dest", spec, env=env_two, check=3)
    assert "another klink-sync run (pid" in second.stderr and spec in second.stderr
    assert str(holder.pid) in second.stderr
    log_two = Path(env_two["FAKE_COMPOSE_LOG"])
    assert not log_two.exists() or "stop" not in log_two.read_text()  # never stopped
    # a local run on the same folder meets the same lock (flock on DEST/.lock)
    local = run_cli("hot-cold", "--folder", two, "--dest", dest, env=env_two, check=3)
    assert "holds the lock" in local.stderr
    assert run_cli("prune", "--keep-last", "1", "--dest", spec, env=env, check=3)
    out, err = holder.communicate(timeout=120)
    assert holder.returncode == 0, err
    assert running(env) == ALL

    # the lock goes with its holder: kill -9 a run while it holds the lock
    set_running(env, ALL)
    Path(env["FAKE_COMPOSE_LOG"]).write_text("")
    victim = _start_run(one, spec, {**env, "FAKE_COMPOSE_ON_STOP": "sleep 30"})
    _wait_for_stop(env, victim)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    deadline = time.monotonic() + 15
    while True:  # ssh notices its closed input and the remote flock ends
        proc = run_cli("hot-cold", "--folder", two, "--dest", spec, env=env_two, check=None)
        if proc.returncode != 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert proc.returncode == 0, proc.stderr
    assert len(_names(dest)) == 2 and not (dest / ".staging").exists()


def test_restore_from_the_remote_destination_brings_the_folder_back(
    folder, tmp_path, env, sshd  # noqa: F811
):
    dest = tmp_path / "backup"
    spec = sshd.dest(dest)
    os.setxattr(folder / "storage/data/documents/001.bin", "user.klink", b"tag")
    os.chown(folder / "storage/database/ibdata1", 999, 999)
    run_cli("hot-cold", "--folder", folder, "--dest", spec, env=env)
    snap = latest(dest)
    before = tree(folder)
    assert tree(snap / "folder") == before

    # the deployment goes wrong: files lost, changed, added
    (folder / "storage/data/documents/002.bin").unlink()
    (folder / "storage/database/ibdata1").write_bytes(b"corrupt")
    (folder / "storage/index/junk").write_bytes(b"junk")
    (folder / ".env").write_text("DB_ROOT_PASSWORD=changed\n")
    dry = run_cli("restore", "--dest", spec, "--folder", folder, "--dry-run", env=env)
    assert "127.0.0.1:" in dry.stdout and "--protect-args" in dry.stdout
    assert tree(folder) != before
    proc = run_cli("restore", "--dest", spec, "--folder", folder, "--json", env=env)
    report = json.loads(proc.stdout)
    assert tree(folder) == before
    assert report["snapshot"] == snap.name and running(env) == ALL
    # the state it replaced was kept first, on the remote side, without moving latest
    safety = report["safety_snapshot"]
    kept = dest / "snapshots" / safety
    assert safety.endswith("-pre-restore") and (kept / "manifest.json").is_file()
    assert latest(dest) == snap
    assert (kept / "folder/storage/database/ibdata1").read_bytes() == b"corrupt"
    _sha256sum_check(kept)
    # undo: the pre-restore snapshot comes back just as well
    run_cli("restore", safety, "--dest", spec, "--folder", folder, "--no-safety-snapshot",
            env=env)  # fmt: skip
    assert (folder / "storage/database/ibdata1").read_bytes() == b"corrupt"

    # onto a new machine's empty folder
    fresh = tmp_path / "new-host" / "k-link"
    run_cli("restore", "--dest", spec, "--folder", fresh, env=env)
    assert tree(fresh) == before


def test_prune_on_the_remote_destination(folder, tmp_path, env, sshd):  # noqa: F811
    dest = tmp_path / "backup"
    spec = sshd.dest(dest)
    for _ in range(3):
        run_cli("hot-cold", "--folder", folder, "--dest", spec, env=env)
    names = _names(dest)
    assert len(names) == 3
    (dest / "snapshots" / ".deleting-old").mkdir()  # left by an interrupted prune
    (dest / "snapshots" / ".deleting-old" / "ro").mkdir(mode=0o500)
    dry = json.loads(run_cli("prune", "--keep-last", "1", "--dry-run", "--json", "--dest", spec,
                             env=env).stdout)  # fmt: skip
    assert dry["remove"] == names[:2] and dry["leftovers"] == [".deleting-old"]
    assert _names(dest) == sorted([*names, ".deleting-old"])
    out = run_cli("prune", "--keep-last", "1", "--dest", spec, env=env).stdout
    assert f"removed  {names[0]}" in out and "1 kept, 2 removed" in out
    assert _names(dest) == names[2:]
    assert os.readlink(dest / "latest") == f"snapshots/{names[2]}"
    run_cli("verify", "--dest", spec, env=env)


def test_ctime_check_is_exact_over_ssh(folder, tmp_path, env, sshd):  # noqa: F811
    """A file rewritten after the hot pass, same size and mtime: copied again, exactly."""
    dest = tmp_path / "backup"
    spec = sshd.dest(dest)
    target = folder / "storage/data/documents/010.bin"
    out = tmp_path / "expected"
    root = str(Path(__file__).resolve().parents[2])
    script = tmp_path / "change.py"
    script.write_text(CHANGE_AFTER_HOT.format(root=root, out=str(out), target=str(target),
                                              keep=str(target.stat().st_mtime_ns)))  # fmt: skip
    proc = run_cli("hot-cold", "--folder", folder, "--dest", spec, "--json",
                   env={**env, "FAKE_COMPOSE_ON_STOP": f"{sys.executable} {script}"})  # fmt: skip
    snap = latest(dest)
    assert (snap / "folder/storage/data/documents/010.bin").read_bytes() == out.read_bytes()
    report = json.loads(proc.stdout)
    assert sum(p["refreshed"] for p in report["passes"]) == 1  # that file only
    # and between two runs: the hard link to the old copy is not reused
    first_copy = (snap / "folder/storage/data/documents/010.bin").read_bytes()
    new = os.urandom(len(first_copy))
    st = target.stat()
    target.write_bytes(new)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = json.loads(run_cli("hot-cold", "--folder", folder, "--dest", spec, "--json",
                                env=env).stdout)  # fmt: skip
    snap2 = latest(dest)
    assert (snap2 / "folder/storage/data/documents/010.bin").read_bytes() == new
    assert (snap / "folder/storage/data/documents/010.bin").read_bytes() == first_copy
    assert sum(p["refreshed"] for p in second["passes"]) == 1
    _sha256sum_check(snap2)


ODD_NAMES = ["with space", "quote'single", 'quote"double', "$(touch pwned)", "`id`", "-leading",
             "new\nline", "tab\there", "wild*[?]", "back\\slash", "caf\u00e9", "semi;colon &"]


def test_odd_names_in_sources_and_in_the_remote_path(folder, tmp_path, env, sshd):  # noqa: F811
    docs = folder / "storage/data/documents"
    for i, name in enumerate(ODD_NAMES):
        (docs / name).write_bytes(f"{i}".encode() * 100)
    (docs / os.fsdecode(b"latin1-\xe9")).write_bytes(b"bytes")
    dest = tmp_path / "remote $(touch pwned) 'quoted' dir" / "back up"
    dest.parent.mkdir()
    spec = sshd.dest(dest)
    run_cli("hot-cold", "--folder", folder, "--dest", spec, env=env)
    (docs / "with space").write_bytes(b"changed")
    run_cli("hot-cold", "--folder", folder, "--dest", spec, env=env)
    snap = latest(dest)
    assert tree(snap / "folder") == tree(folder)
    assert not list(tmp_path.rglob("pwned")) and not (Path.home() / "pwned").exists()
    _sha256sum_check(snap)
    run_cli("verify", "--dest", spec, env=env)
    assert len(json.loads(run_cli("snapshots", "--dest", spec, "--json", env=env).stdout)) == 2


def test_refusals_before_anything_is_stopped(folder, tmp_path, env, sshd, klink_env):  # noqa: F811
    log = Path(klink_env["FAKE_COMPOSE_LOG"])
    # nobody listening: destination unavailable, the stack never stopped
    closed = {**env, "KLINK_SYNC_SSH": f"-p 1 -i {sshd.key} -o ConnectTimeout=5"}
    proc = run_cli("hot-cold", "--folder", folder, "--dest", sshd.dest(tmp_path / "b"),
                   env=closed, check=75)  # fmt: skip
    assert "ssh failed" in proc.stderr and "127.0.0.1" in proc.stderr
    # a key the host refuses; a host key nobody vouched for (BatchMode: never a prompt)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")],
                   check=True)  # fmt: skip
    common = f"-p {sshd.port} -o IdentitiesOnly=yes -o ConnectTimeout=5"
    for options, why in [
        (f"{common} -i {tmp_path / 'k'} -o StrictHostKeyChecking=no "
         "-o UserKnownHostsFile=/dev/null", "Permission denied"),
        (f"{common} -i {sshd.key} -o StrictHostKeyChecking=yes "
         f"-o UserKnownHostsFile={tmp_path / 'empty'}", "Host key verification failed"),
    ]:  # fmt: skip
        proc = run_cli("hot-cold", "--folder", folder, "--dest", sshd.dest(tmp_path / "b"),
                       env={**env, "KLINK_SYNC_SSH": options}, check=75)  # fmt: skip
        assert why in proc.stderr
    # a stranger's folder: refused, as locally
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "precious").write_text("keep me")
    proc = run_cli("hot-cold", "--folder", folder, "--dest", sshd.dest(stranger), env=env, check=2)
    assert "no .klink-sync marker" in proc.stderr
    # a parent that does not exist: 75
    missing = sshd.dest(tmp_path / "no" / "such" / "dir")
    run_cli("hot-cold", "--folder", folder, "--dest", missing, env=env, check=75)
    # a relative remote path: bad usage
    proc = run_cli("hot-cold", "--folder", folder, "--dest", "root@127.0.0.1:backup", env=env,
                   check=2)  # fmt: skip
    assert "absolute path" in proc.stderr
    assert not log.exists() or "stop" not in log.read_text()
    assert (stranger / "precious").read_text() == "keep me" and running(env) == ALL
    run_cli("restore", "--dest", sshd.dest(tmp_path / "nothing"), env=env, check=2)
    # on this very host by a loopback name: a destination inside a source is refused, as here
    inside = sshd.dest(folder / "storage/data/backup")
    proc = run_cli("hot-cold", "--folder", folder, "--dest", inside, env=env, check=2)
    assert "inside the source" in proc.stderr and not (folder / "storage/data/backup").exists()


def test_dry_run_and_config_ssh_options(folder, tmp_path, env, sshd):  # noqa: F811
    dest = tmp_path / "backup"
    config = tmp_path / "config.yml"
    options = ", ".join(json.dumps(o) for o in sshd.options)
    metrics = tmp_path / "klink_sync.prom"
    config.write_text(f"dest: {sshd.dest(dest)}\nssh_options: [{options}]\n"
                      f"metrics_file: {metrics}\n")
    assert run_cli("config", "check", config).stdout == f"{config}: ok\n"
    no_env = {k: v for k, v in env.items() if k != "KLINK_SYNC_SSH"}
    dry = run_cli("hot-cold", "--folder", folder, "--config", config, "--dry-run", env=no_env)
    assert f"root@127.0.0.1:{dest}/.staging/folder/" in dry.stdout
    assert "-e 'ssh -p" in dry.stdout and "[stop]" in dry.stdout
    assert not dest.exists() and running(env) == ALL
    report = json.loads(run_cli("cold", "--folder", folder, "--config", config, "--json",
                                env=no_env).stdout)  # fmt: skip
    assert report["mode"] == "cold" and report["dest"] == sshd.dest(dest)
    assert tree(latest(dest) / "folder") == tree(folder)
    from prometheus_client.parser import text_string_to_metric_families

    samples = {s.name: s for f in text_string_to_metric_families(metrics.read_text())
               for s in f.samples}  # fmt: skip
    assert samples["klink_sync_snapshots_total"].value == 1
    assert samples["klink_sync_snapshots_total"].labels == {"dest": sshd.dest(dest)}
    dry = run_cli("hot-cold", "--folder", folder, "--config", config, "--dry-run", env=no_env)
    assert f"--link-dest={latest(dest)}/folder/storage/data" in dry.stdout
    bad = tmp_path / "bad.yml"
    bad.write_text("ssh_options: [-p, [2222]]\n")
    assert "ssh_options[1]: must be a string" in run_cli("config", "check", bad,
                                                           check=2).stderr  # fmt: skip


@pytest.mark.parametrize("fault", ["sigterm", "staging-gone"])
def test_a_failed_cold_pass_promotes_nothing_and_releases_the_lock(
    folder, tmp_path, env, sshd, fault  # noqa: F811
):
    dest = tmp_path / "backup"
    spec = sshd.dest(dest)
    run_cli("hot-cold", "--folder", folder, "--dest", spec, env=env)
    first = latest(dest)
    (folder / "storage/database/ibdata1").write_bytes(os.urandom(1000))
    on_stop = {"sigterm": "kill -TERM $FAKE_COMPOSE_CALLER; sleep 1",  # klink-sync itself
               "staging-gone": f"rm -rf '{dest}/.staging'"}[fault]  # the remote side fails
    proc = run_cli("hot-cold", "--folder", folder, "--dest", spec,
                   env={**env, "FAKE_COMPOSE_ON_STOP": on_stop}, check=1)  # fmt: skip
    assert "interrupted by SIGTERM" in proc.stderr if fault == "sigterm" else "rsync" in proc.stderr
    assert running(env) == ALL
    assert latest(dest) == first and _names(dest) == [first.name]
    # the lock went with the run; the next run cleans the staging folder and succeeds
    run_cli("hot-cold", "--folder", folder, "--dest", spec, env=env)
    assert len(_names(dest)) == 2 and not (dest / ".staging").exists()
    assert tree(latest(dest) / "folder") == tree(folder)


def test_attribute_changes_after_the_hot_pass_spare_the_older_snapshot_over_ssh(
    folder, tmp_path, env, sshd  # noqa: F811
):
    """A chmod between the hot and cold pass, of a file hard-linked to the first remote
    snapshot: the second has the new mode, the first keeps its own."""
    dest = tmp_path / "backup"
    spec = sshd.dest(dest)
    run_cli("hot-cold", "--folder", folder, "--dest", spec, env=env)
    first = latest(dest) / "folder/storage/data"
    before = tree(first)
    docs = folder / "storage/data/documents"
    change = f"chmod 600 {docs}/005.bin && setfattr -n user.late -v 1 {docs}/006.bin"
    run_cli("hot-cold", "--folder", folder, "--dest", spec,
            env={**env, "FAKE_COMPOSE_ON_STOP": change})  # fmt: skip
    second = latest(dest) / "folder/storage/data"
    assert tree(second) == tree(folder / "storage/data")
    assert tree(first) == before


def test_config_excludes_apply_over_ssh(folder, tmp_path, env, sshd):  # noqa: F811
    """The admin's exclude patterns leave paths out of a remote snapshot too."""
    (folder / "storage/data/cache").mkdir()
    (folder / "storage/data/cache/thumb.jpg").write_bytes(b"regenerated at will")
    (folder / "storage/data/documents/upload.tmp").write_bytes(b"half uploaded")
    config = tmp_path / "config.yml"
    config.write_text("excludes:\n  ./storage/data:\n    - /cache/\n    - '*.tmp'\n")
    dest = tmp_path / "backup"
    run_cli("hot-cold", "--folder", folder, "--dest", sshd.dest(dest), "--config", config,
            env=env)  # fmt: skip
    snap = latest(dest) / "folder/storage/data"
    assert not (snap / "cache").exists() and not (snap / "documents/upload.tmp").exists()
    assert (snap / "documents/001.bin").read_bytes() == (
        folder / "storage/data/documents/001.bin"
    ).read_bytes()
