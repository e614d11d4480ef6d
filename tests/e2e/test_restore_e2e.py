"""Restore on the real sample stack: from nothing, onto a new folder, and undo."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests.conftest import run_cli, tree
from tests.e2e.conftest import SERVICES, SampleStack, checker, wait_for_rows


def _latest(dest: Path) -> Path:
    return dest / "snapshots" / os.path.basename(os.readlink(dest / "latest"))


def _backup(stack: SampleStack, dest: Path) -> Path:
    run_cli("hot-cold", "--folder", stack.folder, "--dest", dest,
            env={"KLINK_SYNC_COMPOSE": stack.compose_cmd})  # fmt: skip
    return _latest(dest)


def _good(result: dict) -> None:
    assert result["server_started"] and not result["crash_recovery"], result
    assert result["check_ok"], result["check_output"]
    assert result["missing_files"] == [] and result["bad_sha256"] == [], result


def test_restore_a_destroyed_deployment(fresh_stack, tmp_path):
    stack = fresh_stack[0]
    dest = tmp_path / "backup"
    snap = _backup(stack, dest)
    backed_up = checker.check_snapshot(snap / "folder")
    _good(backed_up)

    stack.compose("down", "-t", "30")  # the deployment is destroyed
    shutil.rmtree(stack.folder)

    proc = run_cli("restore", "--dest", dest, "--folder", stack.folder, "--start",
                   env={"KLINK_SYNC_COMPOSE": stack.compose_cmd})  # fmt: skip
    assert "restored snapshot" in proc.stdout
    assert stack.running() == SERVICES
    wait_for_rows(stack.folder, stack.compose_cmd, at_least=backed_up["rows"] + 10)
    stack.compose("stop")
    result = checker.check_snapshot(stack.folder)
    _good(result)
    assert result["ok"], result
    assert set(backed_up["ids"]) <= set(result["ids"])


def test_restore_onto_a_new_folder_with_a_remapped_volume(fresh_stack, tmp_path, compose_cmd):
    # a deployment whose index lives outside the setup folder, on "another disk"
    stack = fresh_stack[0]
    stack.compose("down", "-t", "30")
    disk1, disk2 = tmp_path / "disk1", tmp_path / "disk2"
    disk1.mkdir()
    compose_file = stack.folder / "docker-compose.yml"
    text = compose_file.read_text()
    assert "./storage/index:" in text
    compose_file.write_text(text.replace("./storage/index:", f"{disk1}/index:"))
    shutil.rmtree(stack.folder / "storage")
    stack.compose("up", "-d")
    wait_for_rows(stack.folder, compose_cmd, at_least=40)

    dest = tmp_path / "backup"
    snap = _backup(stack, dest)
    manifest = json.loads((snap / "manifest.json").read_text())
    assert any(u["host_path"] == f"{disk1}/index" for u in manifest["units"])

    new_folder = tmp_path / f"moved-{os.getpid()}"
    fresh_stack.append(SampleStack(new_folder, compose_cmd))
    proc = run_cli("restore", "--dest", dest, "--folder", new_folder,
                   "--map", f"{disk1}={disk2}", "--start",
                   env={"KLINK_SYNC_COMPOSE": compose_cmd})  # fmt: skip
    assert "rewrote paths" in proc.stdout
    assert f"{disk2}/index:" in (new_folder / "docker-compose.yml").read_text()
    moved = fresh_stack[-1]
    assert moved.running() == SERVICES
    assert stack.running() == SERVICES  # the original deployment is untouched
    assert (disk2 / "index" / "xapian").is_dir()
    moved.compose("stop")
    result = checker.check_snapshot(new_folder)
    _good(result)


def test_restore_over_a_live_deployment_can_be_undone(fresh_stack, tmp_path):
    stack = fresh_stack[0]
    dest = tmp_path / "backup"
    env = {"KLINK_SYNC_COMPOSE": stack.compose_cmd}
    first = _backup(stack, dest)
    rows = checker.check_snapshot(first / "folder")["rows"]
    wait_for_rows(stack.folder, stack.compose_cmd, at_least=rows + 40)

    proc = run_cli("restore", first.name, "--dest", dest, "--json", env=env)
    report = json.loads(proc.stdout)
    safety = report["safety_snapshot"]
    assert safety and safety.endswith("pre-restore")
    assert report["services_after"] == SERVICES == stack.running()
    assert os.readlink(dest / "latest").endswith(first.name)  # latest did not move
    kept = dest / "snapshots" / safety
    kept_check = checker.check_snapshot(kept / "folder")
    _good(kept_check)
    assert kept_check["rows"] >= rows + 40

    stack.compose("stop")
    run_cli("restore", safety, "--dest", dest, "--no-safety-snapshot", env=env)
    assert stack.running() == []  # it was stopped before this restore: it stays stopped
    assert tree(stack.folder) == tree(kept / "folder")
    assert checker.check_snapshot(stack.folder)["ids_sha"] == kept_check["ids_sha"]
    stack.compose("start")
    assert stack.running() == SERVICES
