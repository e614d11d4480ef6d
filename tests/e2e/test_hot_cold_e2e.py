"""The main job on the real sample stack, the writer running throughout."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import run_cli
from tests.e2e.conftest import (
    SERVICES,
    checker,
    compose,
    running_services,
    wait_for_rows,
)

PASSWORDS = ("s3cret-db-pass-7f3a", "s3cret-root-pass-91bc")


def _snapshot(dest: Path) -> Path:
    return dest / "snapshots" / os.path.basename(os.readlink(dest / "latest"))


def _files(root: Path) -> dict[str, os.stat_result]:
    return {
        str(p.relative_to(root)): p.lstat()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


def test_env_file_holds_the_passwords_the_tests_look_for(sample_stack: Path):
    env = (sample_stack / ".env").read_text()
    assert all(p in env for p in PASSWORDS)


def test_hot_cold_while_writing_then_incremental(sample_stack: Path, compose_cmd: str, tmp_path):
    folder, dest = sample_stack, tmp_path / "backup"
    env = {"KLINK_SYNC_COMPOSE": compose_cmd}

    first = run_cli("hot-cold", "--folder", folder, "--dest", dest, "--json", env=env)
    report = json.loads(first.stdout)
    snap1 = _snapshot(dest)
    manifest = json.loads((snap1 / "manifest.json").read_text())

    # the services running afterwards are exactly those running before
    assert report["services_before"] == SERVICES == report["services_after"]
    assert running_services(folder, compose_cmd) == SERVICES
    assert 0 < report["downtime_seconds"] < 120
    assert report["bytes_moved"]["hot"] > 0

    # the snapshot's database starts cleanly on a copy, mariadb-check finds no
    # error, every document row has its file with the right sha256, index opens
    result = checker.check_snapshot(snap1 / "folder")
    assert result["server_started"] and not result["crash_recovery"], result
    assert result["check_ok"], result["check_output"]
    assert result["missing_files"] == [] and result["bad_sha256"] == []
    assert result["index_ok"] and result["rows"] > 0, result
    assert result["ok"]

    # every row committed before the stop is present in the snapshot
    stop_began = manifest["times"]["stop_begin"].rstrip("Z").replace("T", " ")
    live_before = checker.live_rows(folder, compose_cmd, before=stop_began)
    assert live_before["rows"] > 0
    assert set(live_before["ids"]) <= set(result["ids"])

    # no password in any output or in the manifest
    outputs = first.stdout + first.stderr + (snap1 / "manifest.json").read_text()
    assert not [p for p in PASSWORDS if p in outputs]

    # a second run: unchanged files are hard links to the first snapshot and
    # only the bytes of new or changed files are transferred
    wait_for_rows(folder, compose_cmd, at_least=result["rows"] + 20)
    second = run_cli("hot-cold", "--folder", folder, "--dest", dest, "--json", env=env)
    report2 = json.loads(second.stdout)
    snap2 = _snapshot(dest)
    assert snap2 != snap1
    files1, files2 = _files(snap1), _files(snap2)
    linked = [r for r, st in files2.items() if r in files1 and files1[r].st_ino == st.st_ino]
    fresh = [r for r, st in files2.items() if r not in files1 or files1[r].st_ino != st.st_ino]
    kept = [r for r in files1.keys() & files2.keys() if r.startswith("folder/storage/data/")
            and (snap1 / r).read_bytes() == (snap2 / r).read_bytes()]  # fmt: skip
    assert len(kept) >= result["rows"] - 40  # the writer rewrites about one a second
    assert sorted(r for r in kept if r not in linked) == []
    fresh_bytes = sum(files2[r].st_size for r in fresh if r.startswith("folder/"))
    moved = report2["bytes_moved"]["hot"] + report2["bytes_moved"]["cold"]
    # every transferred byte lands in a fresh file; only a file that changed after
    # its unit's first copy (a later hot round, the cold pass, a refresh) moves again
    seen, again = set(), 0
    for p in report2["passes"]:
        unit = p["unit"].removesuffix(" (ctime refresh)")
        if unit in seen:
            again += p["stats"]["transferred_size"]
        seen.add(unit)
    assert fresh_bytes <= moved <= fresh_bytes + again
    assert checker.check_snapshot(snap2 / "folder")["ok"]
    assert running_services(folder, compose_cmd) == SERVICES


def test_stopped_stack_is_backed_up_cold_and_stays_stopped(
    sample_stack: Path, compose_cmd: str, tmp_path
):
    folder, dest = sample_stack, tmp_path / "backup"
    compose(folder, compose_cmd, "stop")
    try:
        assert running_services(folder, compose_cmd) == []
        proc = run_cli("hot-cold", "--folder", folder, "--dest", dest, "--json",
                       env={"KLINK_SYNC_COMPOSE": compose_cmd})  # fmt: skip
        report = json.loads(proc.stdout)
        assert report["services_before"] == [] and report["services_after"] == []
        assert "hot" not in report["phases"]
        assert running_services(folder, compose_cmd) == []
        result = checker.check_snapshot(_snapshot(dest) / "folder")
        assert result["ok"] and not result["crash_recovery"], result
    finally:
        compose(folder, compose_cmd, "start")
    wait_for_rows(folder, compose_cmd, at_least=1)
