"""Signals during the cold pass and during the restart (stand-in compose, real rsync)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ROOT, error_line, run_cli
from tests.integration.test_hot_cold import ALL, latest, make_deployment, running, set_running

FAULTS = ROOT / "tests" / "e2e" / "faults"


def _fault_env(klink_env: dict, folder: Path, fault: str) -> dict:
    return {**klink_env, "PATH": f"{FAULTS}:{os.environ['PATH']}", "FAULT": fault,
            "FAULT_FOLDER": str(folder)}  # fmt: skip


@pytest.mark.parametrize("fault, name", [("sigterm", "SIGTERM"), ("sigint", "SIGINT")])
def test_signal_during_the_cold_pass_restarts_and_promotes_nothing(
    tmp_path, klink_env, fault, name
):
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env)
    first = latest(dest)
    proc = run_cli("hot-cold", "--folder", folder, "--dest", dest,
                   env=_fault_env(klink_env, folder, fault), check=1)  # fmt: skip
    assert f"interrupted by {name}" in error_line(proc.stderr)
    assert running(klink_env) == ALL
    assert latest(dest) == first and len(list((dest / "snapshots").iterdir())) == 1


def test_sighup_during_the_cold_pass(tmp_path, klink_env):
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    env = {**klink_env, "FAKE_COMPOSE_ON_STOP": "kill -HUP $FAKE_COMPOSE_CALLER; sleep 1"}
    proc = run_cli("hot-cold", "--folder", folder, "--dest", tmp_path / "backup", env=env,
                   check=1)  # fmt: skip
    assert "interrupted by SIGHUP" in proc.stderr
    assert running(klink_env) == ALL
    assert not list((tmp_path / "backup" / "snapshots").iterdir())


def test_a_second_signal_does_not_abort_the_restart(tmp_path, klink_env):
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    env = {
        **_fault_env(klink_env, folder, "sigterm"),
        "FAKE_COMPOSE_ON_START": "kill -TERM $FAKE_COMPOSE_CALLER; kill -INT $FAKE_COMPOSE_CALLER;"
                                 " sleep 1",
    }  # fmt: skip
    proc = run_cli("hot-cold", "--folder", folder, "--dest", tmp_path / "backup", env=env,
                   check=1)  # fmt: skip
    assert "interrupted by SIGTERM" in error_line(proc.stderr)
    assert running(klink_env) == ALL  # the restart finished despite two more signals


def test_restart_failure_exits_70_naming_services_and_command(tmp_path, klink_env):
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    env = {**klink_env, "FAKE_COMPOSE_FAIL": "start"}
    proc = run_cli("hot-cold", "--folder", folder, "--dest", tmp_path / "backup", env=env,
                   check=70)  # fmt: skip
    last = error_line(proc.stderr)
    assert "services still down: database, engine, kbox" in last
    assert "start them now with: cd " in last and "start database engine kbox" in last
    assert not list((tmp_path / "backup" / "snapshots").iterdir())
