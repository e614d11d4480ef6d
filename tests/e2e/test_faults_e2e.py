"""Faults injected for real on the running sample stack.

Each test: the services running afterwards equal those before (or exit 70 says
which are down), no new snapshot is promoted, the previous one still verifies,
the exit code is the documented one and the message says what happened.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import error_line, run_cli
from tests.e2e.conftest import SERVICES, compose, running_services, wait_for_rows

FAULTS = Path(__file__).resolve().parent / "faults"


@pytest.fixture(scope="module")
def dest(sample_stack: Path, compose_cmd: str, tmp_path_factory) -> Path:
    """A destination holding one good snapshot of the sample stack."""
    root = tmp_path_factory.mktemp("faults") / "backup"
    run_cli("hot-cold", "--folder", sample_stack, "--dest", root,
            env={"KLINK_SYNC_COMPOSE": compose_cmd})  # fmt: skip
    return root


def _state(dest: Path) -> tuple[list[str], str]:
    return sorted(p.name for p in (dest / "snapshots").iterdir()), os.readlink(dest / "latest")


def _faulty_run(folder: Path, dest: Path, compose_cmd: str, fault: str, check: int,
                compose_wrapper: bool = False, source: str = ""):  # fmt: skip
    env = {
        "FAULT_SOURCE": source or f"{folder}/",
        "PATH": f"{FAULTS}:{os.environ['PATH']}",
        "FAULT": fault, "FAULT_FOLDER": str(folder), "FAULT_DEST": str(dest),
        "FAULT_COMPOSE": compose_cmd,
        "KLINK_SYNC_COMPOSE": str(FAULTS / "compose") if compose_wrapper else compose_cmd,
    }  # fmt: skip
    return run_cli("hot-cold", "--folder", folder, "--dest", dest, env=env, check=check)


def _unharmed(dest: Path, before: tuple, folder: Path, compose_cmd: str) -> None:
    assert _state(dest) == before, "a snapshot was promoted or removed"
    assert "intact" in run_cli("verify", "--dest", dest).stdout
    assert running_services(folder, compose_cmd) == SERVICES


@pytest.mark.parametrize(
    "fault, message",
    [
        ("kill-rsync", "failed (exit -9): killed by SIGKILL"),
        ("sigterm", "interrupted by SIGTERM"),
        ("sigint", "interrupted by SIGINT"),
    ],
)
def test_cold_pass_faults(sample_stack, compose_cmd, dest, fault, message):
    before = _state(dest)
    proc = _faulty_run(sample_stack, dest, compose_cmd, fault, check=1)
    assert message in error_line(proc.stderr), proc.stderr
    assert "starting again: database, engine, kbox" in proc.stderr
    _unharmed(dest, before, sample_stack, compose_cmd)


def test_destination_fills_up_during_the_cold_pass(sample_stack, compose_cmd, tmp_path):
    disk = tmp_path / "small-disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3g", "tmpfs", str(disk)], check=True)
    try:
        root = disk / "backup"
        run_cli("hot-cold", "--folder", sample_stack, "--dest", root,
                env={"KLINK_SYNC_COMPOSE": compose_cmd})  # fmt: skip
        before = _state(root)
        # the database's cold copy: it always has changed bytes to write
        proc = _faulty_run(sample_stack, root, compose_cmd, "fill", check=1,
                           source=f"{sample_stack}/storage/database/")  # fmt: skip
        assert "No space left on device" in proc.stderr, proc.stderr
        (root / "filler").unlink()
        _unharmed(root, before, sample_stack, compose_cmd)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_compose_stop_fails_for_one_service(sample_stack, compose_cmd, dest):
    before = _state(dest)
    proc = _faulty_run(sample_stack, dest, compose_cmd, "stop-fails", check=1,
                       compose_wrapper=True)  # fmt: skip
    last = error_line(proc.stderr)
    assert "stop" in last and "cannot stop container: kbox" in last, proc.stderr
    _unharmed(dest, before, sample_stack, compose_cmd)


def test_restart_fails_exit_70_names_the_services_and_the_command(
    sample_stack, compose_cmd, dest
):
    before = _state(dest)
    proc = _faulty_run(sample_stack, dest, compose_cmd, "start-fails", check=70,
                       compose_wrapper=True)  # fmt: skip
    last = error_line(proc.stderr)
    assert "services still down: database, engine, kbox" in last
    assert f"cd {sample_stack} &&" in last and "start database engine kbox" in last
    assert running_services(sample_stack, compose_cmd) == []
    compose(sample_stack, compose_cmd, "start")  # what the message tells the admin to do
    wait_for_rows(sample_stack, compose_cmd, at_least=1)
    _unharmed(dest, before, sample_stack, compose_cmd)


def test_a_killed_database_fails_the_run_unless_allowed(fresh_stack, tmp_path):
    """The database ignores its stop signal: Compose kills it at the timeout."""
    stack = fresh_stack[0]
    (stack.folder / "docker-compose.override.yml").write_text(
        "services:\n  database:\n    stop_signal: SIGWINCH\n"
    )
    stack.compose("up", "-d")  # recreate the database with the new stop signal
    wait_for_rows(stack.folder, stack.compose_cmd, at_least=1)
    config = tmp_path / "config.yml"
    config.write_text("stop_timeout: 2\n")
    dest = tmp_path / "backup"
    env = {"KLINK_SYNC_COMPOSE": stack.compose_cmd}
    proc = run_cli("hot-cold", "--folder", stack.folder, "--dest", dest, "--config", config,
                   env=env, check=1)  # fmt: skip
    last = error_line(proc.stderr)
    assert "database did not stop cleanly" in last and "snapshot not promoted" in last
    assert not list((dest / "snapshots").iterdir())
    assert stack.running() == SERVICES

    config.write_text("stop_timeout: 2\nallow_unclean_stop: true\n")
    proc = run_cli("hot-cold", "--folder", stack.folder, "--dest", dest, "--config", config,
                   "--json", env=env)  # fmt: skip
    manifest = json.loads((dest / "latest" / "manifest.json").read_text())
    assert manifest["unsafe"] is True
    assert any("did not stop cleanly" in w for w in manifest["warnings"])
    assert stack.running() == SERVICES


def test_a_compose_file_compose_rejects_fails_before_anything(
    sample_stack, compose_cmd, dest, tmp_path
):
    """A key Compose does not allow: its own check (the preflight's `ps`) refuses the file in
    one line naming it and the key; nothing is stopped and no snapshot is added."""
    folder = tmp_path / "bogus"
    (folder / "storage/database").mkdir(parents=True)
    (folder / "docker-compose.yml").write_text(
        "services:\n  database:\n    image: klink-sample/database:latest\n    bogus: 1\n"
        "    volumes:\n      - ./storage/database:/var/lib/mysql\n"
    )
    before = _state(dest)
    proc = run_cli("hot-cold", "--folder", folder, "--dest", dest, check=1,
                   env={"KLINK_SYNC_COMPOSE": compose_cmd})  # fmt: skip
    line = error_line(proc.stderr)
    assert str(folder / "docker-compose.yml") in line and "bogus" in line, line
    assert _state(dest) == before
    assert running_services(sample_stack, compose_cmd) == SERVICES
