"""Signals during the cold pass and during the restart (stand-in compose, real rsync)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import KLINK_SYNC, ROOT, error_line, run_cli
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


def test_a_signal_during_the_stop_waits_for_the_stop_before_starting(tmp_path, klink_env):
    """Docker goes on stopping containers after its client is killed: a start sent
    meanwhile finds them still running, and they end down. The stop is let finish."""
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    log = Path(klink_env["FAKE_COMPOSE_LOG"])
    # the stop still under way when the signal comes; it takes the services down at its end
    on_stop = ('kill -TERM $FAKE_COMPOSE_CALLER; sleep 1; : > "$FAKE_COMPOSE_STATE"; '
               'echo stop-ended >> "$FAKE_COMPOSE_LOG"')  # fmt: skip
    proc = run_cli("hot-cold", "--folder", folder, "--dest", tmp_path / "backup",
                   env={**klink_env, "FAKE_COMPOSE_ON_STOP": on_stop}, check=1)  # fmt: skip
    assert "interrupted by SIGTERM" in error_line(proc.stderr)
    deadline = time.monotonic() + 5
    while "stop-ended" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    calls = log.read_text().splitlines()
    starts = [i for i, call in enumerate(calls) if " start " in f" {call} "]
    assert starts and calls.index("stop-ended") < starts[0], calls
    assert running(klink_env) == ALL
    # the stop ended well: no second one (it only added downtime, and a false warning)
    assert len([call for call in calls if " stop " in f" {call} "]) == 1, calls
    assert "the stop did not finish" not in proc.stderr


def test_ctrl_c_at_the_terminal_does_not_cut_the_restart_short(tmp_path, klink_env):
    """A terminal's Ctrl-C signals klink-sync's whole process group: the compose start
    under way is klink-sync's to finish, not the terminal's to kill."""
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    ctrl_c = "kill -INT -- -$(ps -o pgid= -p $FAKE_COMPOSE_CALLER | tr -d ' '); sleep 1"
    env = {**os.environ, **klink_env, "FAKE_COMPOSE_ON_START": ctrl_c}
    proc = subprocess.run(
        [KLINK_SYNC, "hot-cold", "--folder", str(folder), "--dest", str(tmp_path / "backup")],
        env=env, capture_output=True, text=True, timeout=120, start_new_session=True,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "interrupted by SIGINT (the stack is back up)" in error_line(proc.stderr)
    assert running(klink_env) == ALL


# Docker goes on stopping containers after its client dies: the stand-in's stop, killed
# as systemd's SIGTERM to the unit (klink-sync and its compose client alike) or SIGKILL
# kills it, leaves a 'daemon' behind that takes the services down a moment later; a stop
# called meanwhile waits for that one to finish, as Docker's does.
IN_FLIGHT_STOP = (
    '[ -e "$FAKE_COMPOSE_STATE.once" ] && exit 0; touch "$FAKE_COMPOSE_STATE.once" '
    '"$FAKE_COMPOSE_STATE.stopping"; '
    '(sleep 1.5; : > "$FAKE_COMPOSE_STATE"; rm "$FAKE_COMPOSE_STATE.stopping") '
    '</dev/null >/dev/null 2>&1 & '
    "kill -{sig} $FAKE_COMPOSE_CALLER; kill -{sig} $PPID"
)


def _until_the_stop_ended(env: dict) -> None:
    deadline = time.monotonic() + 10
    while Path(env["FAKE_COMPOSE_STATE"] + ".stopping").exists():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.2)


def test_a_stop_killed_with_the_run_is_finished_before_the_start(tmp_path, klink_env):
    """systemd's SIGTERM reaches the compose client too: its stop goes on in Docker after
    it died, and a start sent at once found the containers still running; they then went
    down, the record of what to start cleared."""
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    env = {**klink_env, "FAKE_COMPOSE_ON_STOP": IN_FLIGHT_STOP.format(sig="TERM")}
    proc = run_cli("hot-cold", "--folder", folder, "--dest", tmp_path / "backup", env=env,
                   check=None)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "SIGTERM" in error_line(proc.stderr) or "stop" in error_line(proc.stderr)
    _until_the_stop_ended(klink_env)
    assert running(klink_env) == ALL
    assert "signal SIGTERM received" in proc.stderr  # said at once, not only at the end


def test_recover_finishes_a_stop_a_killed_run_left_under_way(tmp_path, klink_env):
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    env = {**klink_env, "FAKE_COMPOSE_ON_STOP": IN_FLIGHT_STOP.format(sig="KILL")}
    run_cli("hot-cold", "--folder", folder, "--dest", tmp_path / "backup", env=env,
            check=-9)  # fmt: skip
    proc = run_cli("recover", env=klink_env)
    assert "started again" in proc.stdout + proc.stderr
    _until_the_stop_ended(klink_env)
    assert running(klink_env) == ALL
