"""`klink-sync prune` and `klink-sync snapshots` on destinations built by hand, and on one
made by two real backups: which snapshots remain, sizes counted once per inode."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.test_hot_cold import ALL, make_deployment, set_running

MANIFEST = {"result": "ok", "mode": "hot-cold", "downtime_seconds": 1.0}
A, B, C = "2026-10-01T01-00-00Z", "2026-10-02T01-00-00Z", "2026-10-02T13-00-00Z"
D, E = "2026-10-03T01-00-00Z", "2026-10-03T05-00-00Z"  # D is `latest`, E the newest
F = "2026-10-04T01-00-00Z"  # no manifest: a run being promoted, or one that died
PRE = "2026-10-03T02-00-00Z-pre-restore"
LEFTOVER = ".deleting-2026-09-01T00-00-00Z"  # an interrupted prune's half-removed snapshot
SHARED = b"s" * 4096


def snapshot(dest: Path, name: str, files: dict[str, bytes], complete: bool = True) -> Path:
    path = dest / "snapshots" / name
    for rel, data in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)
    path.mkdir(parents=True, exist_ok=True)
    if complete:
        (path / "manifest.json").write_text(json.dumps(MANIFEST))
    return path


def link(dest: Path, rel: str, src: str, dst: str) -> None:
    target = dest / "snapshots" / dst / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(dest / "snapshots" / src / rel, target)


def set_latest(dest: Path, name: str) -> None:
    (dest / "latest").symlink_to(f"snapshots/{name}")


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    """Six complete snapshots sharing one file by hard link, one incomplete, a staging
    folder, a leftover of an interrupted prune (with a read-only folder inside)."""
    root = tmp_path / "backup"
    (root / "snapshots").mkdir(parents=True)
    (root / ".klink-sync").touch()
    snapshot(root, A, {"folder/docs/shared.bin": SHARED, "folder/docs/a.bin": b"a" * 100})
    for name in (B, C, D, E, PRE):
        snapshot(root, name, {f"folder/docs/{name}.bin": os.urandom(50)})
        link(root, "folder/docs/shared.bin", A, name)
    snapshot(root, F, {"folder/docs/partial.bin": b"p"}, complete=False)
    snapshot(root, LEFTOVER, {"folder/ro/x.bin": b"x"}, complete=False)
    os.chmod(root / "snapshots" / LEFTOVER / "folder/ro", 0o500)
    (root / ".staging" / "folder").mkdir(parents=True)
    set_latest(root, D)
    return root


def listing(dest: Path) -> set[str]:
    return {p.name for p in (dest / "snapshots").iterdir()}


EVERYTHING = {A, B, C, D, E, F, PRE, LEFTOVER}


def test_no_rules_is_refused(dest: Path) -> None:
    proc = run_cli("prune", "--dest", dest, check=2)
    assert "no retention rules:" in proc.stderr
    assert listing(dest) == EVERYTHING


def test_dry_run_removes_nothing(dest: Path) -> None:
    proc = run_cli("prune", "--dest", dest, "--keep-last", "1", "--dry-run")
    assert listing(dest) == EVERYTHING
    assert (dest / ".staging").is_dir()
    lines = proc.stdout.splitlines()
    assert [line.split()[-1] for line in lines if line.startswith("would remove")] == [A, B, C]
    assert "dry run: nothing was touched" in lines[-1]
    data = json.loads(run_cli("prune", "--dest", dest, "--keep-last", "1", "--dry-run",
                              "--json").stdout)  # fmt: skip
    assert data["dry_run"] is True and data["remove"] == [A, B, C]
    assert data["leftovers"] == [LEFTOVER]
    assert listing(dest) == EVERYTHING


def test_keep_last_keeps_latest_newest_incomplete_and_foreign(dest: Path) -> None:
    proc = run_cli("prune", "--dest", dest, "--keep-last", "1", "--json")
    data = json.loads(proc.stdout)
    assert data["remove"] == [A, B, C]
    assert dict((k["name"], k["reasons"]) for k in data["keep"]) == {
        D: ["latest"],
        PRE: ["not a backup snapshot name: never pruned"],
        E: ["newest", "last 1"],
        F: ["incomplete (no manifest.json): never pruned"],
    }
    assert listing(dest) == {D, E, F, PRE}  # the leftover is gone too
    assert (dest / ".staging" / "folder").is_dir()
    assert os.readlink(dest / "latest") == f"snapshots/{D}"
    # the file shared by hard link with the removed snapshots is intact in the others
    for name in (D, E, PRE):
        shared = dest / "snapshots" / name / "folder/docs/shared.bin"
        assert shared.read_bytes() == SHARED and shared.stat().st_nlink == 3
    # nothing more to remove: a second run changes nothing
    again = json.loads(run_cli("prune", "--dest", dest, "--keep-last", "1", "--json").stdout)
    assert again["remove"] == [] and listing(dest) == {D, E, F, PRE}


def test_keep_daily_text_output(dest: Path) -> None:
    proc = run_cli("prune", "--dest", dest, "--keep-daily", "2")
    assert listing(dest) == {C, D, E, F, PRE}  # newest of the 2nd and the 3rd, latest
    removed = [line.split()[-1] for line in proc.stdout.splitlines() if line.startswith("removed")]
    assert removed == [A, B]
    keep = {line.split()[1]: line for line in proc.stdout.splitlines() if line.startswith("keep")}
    assert "daily 2026-10-02" in keep[C] and "latest" in keep[D]
    assert proc.stdout.splitlines()[-1] == "5 kept, 2 removed"


def test_config_retention_and_flags_override_it(dest: Path, tmp_path: Path) -> None:
    config = tmp_path / "klink-sync.yml"
    config.write_text(f"dest: {dest}\nretention:\n  keep_last: 10\n  keep_daily: 2\n")
    data = json.loads(run_cli("prune", "--config", config, "--dry-run", "--json").stdout)
    assert data["rules"] == {"keep_last": 10, "keep_daily": 2, "keep_weekly": 0,
                             "keep_monthly": 0}  # fmt: skip
    assert data["remove"] == []
    # the flag replaces keep_last only; keep_daily still comes from the config
    run_cli("prune", "--config", config, "--keep-last", "1")
    assert listing(dest) == {C, D, E, F, PRE}
    # a flag at 0 turns a config rule off
    run_cli("prune", "--config", config, "--keep-last", "1", "--keep-daily", "0")
    assert listing(dest) == {D, E, F, PRE}


def test_bad_retention_config_is_refused(dest: Path, tmp_path: Path) -> None:
    config = tmp_path / "klink-sync.yml"
    config.write_text("retention:\n  keep_daily: -3\n")
    proc = run_cli("prune", "--dest", dest, "--config", config, check=2)
    assert f"{config}: retention.keep_daily: must be a whole number >= 0" in proc.stderr
    run_cli("prune", "--dest", dest, "--keep-last", "-1", check=2)
    assert listing(dest) == EVERYTHING


def test_lock_held_exits_3_and_removes_nothing(dest: Path) -> None:
    fd = os.open(dest / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, b"4242\n")
        proc = run_cli("prune", "--dest", dest, "--keep-last", "1", check=3)
        assert "pid 4242" in proc.stderr
        assert listing(dest) == EVERYTHING
    finally:
        os.close(fd)
    run_cli("prune", "--dest", dest, "--keep-last", "1")
    assert listing(dest) == {D, E, F, PRE}


def test_not_a_destination(tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    snapshot(stranger, A, {"x": b"x"})
    snapshot(stranger, B, {"x": b"x"})
    proc = run_cli("prune", "--dest", stranger, "--keep-last", "1", check=2)
    assert ".klink-sync marker" in proc.stderr
    assert listing(stranger) == {A, B}
    run_cli("prune", "--dest", tmp_path / "missing", "--keep-last", "1", check=75)


# --- snapshots: sizes, new bytes, verified ----------------------------------------------


def test_snapshots_sizes_count_each_inode_once(tmp_path: Path) -> None:
    root = tmp_path / "backup"
    (root / "snapshots").mkdir(parents=True)
    (root / ".klink-sync").touch()
    one = snapshot(root, A, {"folder/x": b"x" * 1000, "folder/y": b"y" * 2000})
    two = snapshot(root, B, {"folder/y": b"Y" * 2500, "folder/z": b"z" * 300})
    link(root, "folder/x", A, B)  # unchanged since A: a hard link
    os.link(two / "folder/z", two / "folder/z-again")  # a hard link inside one snapshot
    (two / "folder/link").symlink_to("x")  # not a regular file
    (two / "verified.json").write_text('{"time": "2026-10-02T02:00:00Z", "ok": true}')
    three = snapshot(root, C, {}, complete=False)  # empty, in progress
    snapshot(root, LEFTOVER, {"folder/x": b"gone"}, complete=False)
    set_latest(root, B)

    manifest = len((one / "manifest.json").read_bytes())
    verified = len((two / "verified.json").read_bytes())
    rows = json.loads(run_cli("snapshots", "--dest", root, "--json").stdout)
    assert [r["name"] for r in rows] == [A, B, C]  # never the half-removed one
    by_name = {r["name"]: r for r in rows}
    assert by_name[A] == {
        "name": A, "time": "2026-10-01T01:00:00Z", "complete": True, "latest": False,
        "mode": "hot-cold", "result": "ok", "downtime_seconds": 1.0,
        "total_bytes": 1000 + 2000 + manifest, "new_bytes": 1000 + 2000 + manifest,
        "verified": None,
    }  # fmt: skip
    assert by_name[B]["total_bytes"] == 1000 + 2500 + 300 + manifest + verified
    assert by_name[B]["new_bytes"] == 2500 + 300 + manifest + verified
    assert by_name[B]["verified"] == "2026-10-02T02:00:00Z" and by_name[B]["latest"] is True
    assert by_name[C]["result"] == "incomplete" and by_name[C]["total_bytes"] == 0
    assert three.is_dir()

    text = run_cli("snapshots", "--dest", root).stdout.splitlines()
    assert len(text) == 3 and "(latest)" in text[1] and "verified 2026-10-02T02:00:00Z" in text[1]
    assert "not verified" in text[0]


def test_two_real_backups_then_prune(tmp_path: Path, klink_env: dict) -> None:
    """rsync --link-dest makes the second snapshot cost only what changed; prune keeps it."""
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    root = tmp_path / "backup"
    run_cli("hot-cold", "--folder", folder, "--dest", root, env=klink_env)
    (folder / "storage/data/documents/007.bin").write_bytes(os.urandom(12_345))
    run_cli("hot-cold", "--folder", folder, "--dest", root, env=klink_env)
    rows = json.loads(run_cli("snapshots", "--dest", root, "--json").stdout)
    assert len(rows) == 2 and rows[1]["latest"]
    first, second = rows
    assert first["new_bytes"] == first["total_bytes"] > 800_000
    # the changed document, plus the manifest and the index each run writes afresh
    assert 12_345 <= second["new_bytes"] < 12_345 + 100_000
    assert abs(second["total_bytes"] - first["total_bytes"]) < 100_000

    run_cli("prune", "--dest", root, "--keep-last", "1")
    rows_after = json.loads(run_cli("snapshots", "--dest", root, "--json").stdout)
    assert [r["name"] for r in rows_after] == [second["name"]]
    assert rows_after[0]["new_bytes"] == rows_after[0]["total_bytes"] == second["total_bytes"]
    latest = root / os.readlink(root / "latest")
    doc = latest / "folder/storage/data/documents/001.bin"
    assert doc.read_bytes() == (folder / "storage/data/documents/001.bin").read_bytes()
