"""The main job on the real sample stack, to a remote destination over a real sshd.

The server (tests/sshd.py) listens on 127.0.0.1, so the remote side is checked directly
under its path: the database starts on the snapshot, unchanged files are hard links.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import run_cli, tree
from tests.e2e.conftest import SERVICES, checker, running_services, wait_for_rows
from tests.sshd import Sshd, sshd  # noqa: F401 (the fixture)


def _snapshot(dest: Path) -> Path:
    return dest / "snapshots" / os.path.basename(os.readlink(dest / "latest"))


def _files(root: Path) -> dict[str, os.stat_result]:
    return {str(p.relative_to(root)): p.lstat() for p in root.rglob("*")
            if p.is_file() and not p.is_symlink()}  # fmt: skip


def _good(result: dict) -> None:
    assert result["server_started"] and not result["crash_recovery"], result
    assert result["check_ok"], result["check_output"]
    assert result["missing_files"] == [] and result["bad_sha256"] == [], result
    assert result["index_ok"] and result["rows"] > 0, result


def test_hot_cold_to_a_remote_destination_while_writing_then_restore(
    sample_stack: Path, compose_cmd: str, tmp_path, sshd: Sshd  # noqa: F811
):
    folder = sample_stack
    dest = tmp_path / "remote" / "k-link backups"
    dest.parent.mkdir()
    spec = sshd.dest(dest)
    env = {"KLINK_SYNC_COMPOSE": compose_cmd, **sshd.env}

    report = json.loads(run_cli("hot-cold", "--folder", folder, "--dest", spec, "--json",
                                env=env).stdout)  # fmt: skip
    assert report["result"] == "ok" and report["dest"] == spec
    assert report["services_before"] == SERVICES == report["services_after"]
    assert running_services(folder, compose_cmd) == SERVICES
    assert report["bytes_moved"]["hot"] > 0 and 0 < report["downtime_seconds"] < 120
    snap1 = _snapshot(dest)
    first = checker.check_snapshot(snap1 / "folder")
    _good(first)
    assert first["ok"], first

    wait_for_rows(folder, compose_cmd, at_least=first["rows"] + 20)
    report2 = json.loads(run_cli("hot-cold", "--folder", folder, "--dest", spec, "--json",
                                 env=env).stdout)  # fmt: skip
    snap2 = _snapshot(dest)
    assert snap2 != snap1
    files1, files2 = _files(snap1), _files(snap2)
    linked = [r for r, st in files2.items() if r in files1 and files1[r].st_ino == st.st_ino]
    documents = [r for r in linked if r.startswith("folder/storage/data/")]
    assert len(documents) >= first["rows"] - 40  # the writer rewrites about one a second
    assert report2["checksums"]["reused"] >= len(documents)
    second = checker.check_snapshot(snap2 / "folder")
    _good(second)
    assert set(first["ids"]) <= set(second["ids"])
    assert running_services(folder, compose_cmd) == SERVICES

    rows = json.loads(run_cli("snapshots", "--dest", spec, "--json", env=env).stdout)
    assert [r["name"] for r in rows] == [snap1.name, snap2.name] and rows[1]["latest"]
    assert rows[1]["new_bytes"] < rows[1]["total_bytes"]
    assert "intact" in run_cli("verify", "--dest", spec, env=env).stdout
    run_cli("verify", snap1.name, "--dest", spec, "--sample", "25", env=env)

    # restore onto a new host's empty folder, from the remote side
    restored = tmp_path / f"restored-{os.getpid()}"
    proc = run_cli("restore", "--dest", spec, "--folder", restored, env=env)
    assert f"restored snapshot {snap2.name}" in proc.stdout
    assert tree(restored) == tree(snap2 / "folder")
    again = checker.check_snapshot(restored)
    _good(again)
    assert again["ids_sha"] == second["ids_sha"]
    assert running_services(folder, compose_cmd) == SERVICES  # the live deployment untouched
