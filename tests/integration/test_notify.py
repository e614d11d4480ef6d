"""Notifications through Apprise: the real `klink-sync` command, real rsync, the stand-in
compose command, and a real HTTP server on 127.0.0.1 as the receiver (Apprise's json://
posts {"version", "title", "message", "type"}). Its URL carries a token as a webhook's
would (`?-token=`: Apprise sends it as the query's `token`; a plain `?token=` it drops)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import error_line, run_cli
from tests.integration.test_held_state import KILL_AT_STOP
from tests.integration.test_hot_cold import ALL, make_deployment, running, set_running
from tests.receiver import Receiver, closed_port, receiver  # noqa: F401 (the fixture)

TOKEN = "SECRET-TOKEN-123"
EVERY = "[failure, recovered, success]"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_deployment(tmp_path)


def _config(tmp_path: Path, port: int, on: str = EVERY) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(f"dest: {tmp_path}/backup\nnotify:\n"
                    f'  urls: ["json://127.0.0.1:{port}/hook?-token={TOKEN}"]\n'
                    f"  on: {on}\n")  # fmt: skip
    return path


def _posted(receiver: Receiver) -> list[dict]:  # noqa: F811
    """What arrived; the command has ended, so every post has."""
    assert all(r.method == "POST" and r.path == f"/hook?token={TOKEN}" for r in receiver.requests)
    return [r.json for r in receiver.requests]  # type: ignore[misc]


def _no_token(proc) -> None:  # type: ignore[no-untyped-def]
    assert TOKEN not in proc.stdout and TOKEN not in proc.stderr


def test_a_successful_run_sends_one_message(folder, tmp_path, klink_env, receiver):  # noqa: F811
    set_running(klink_env, ALL)
    config = _config(tmp_path, receiver.port)
    proc = run_cli("hot-cold", "--folder", folder, "--config", config, "--json", "-v",
                   env=klink_env)  # fmt: skip
    report = json.loads(proc.stdout)
    [posted] = _posted(receiver)
    assert posted["type"] == "success"
    assert posted["title"].endswith(": hot-cold backup of k-link ok")
    lines = posted["message"].splitlines()
    assert f"deployment: {folder}" in lines and "mode: hot-cold" in lines
    assert "result: ok" in lines and f"snapshot: {report['snapshot']}" in lines
    assert f"downtime: {report['downtime_seconds']:.1f} s" in lines
    assert "offsite: not pushed" in lines and not any(x.startswith("error:") for x in lines)
    assert "notification sent (success) to 1 URL(s)" in proc.stderr
    _no_token(proc)


def test_a_failed_run_sends_the_error(folder, tmp_path, klink_env, receiver):  # noqa: F811
    set_running(klink_env, ALL)
    config = _config(tmp_path, receiver.port)
    proc = run_cli("cold", "--folder", folder, "--config", config, "-v",
                   env={**klink_env, "FAKE_COMPOSE_FAIL": "stop"}, check=1)  # fmt: skip
    [posted] = _posted(receiver)
    assert posted["type"] == "failure"
    assert posted["title"].endswith(": cold backup of k-link failed")
    lines = posted["message"].splitlines()
    assert "mode: cold" in lines and "result: failed" in lines and "snapshot: none" in lines
    error = error_line(proc.stderr).removeprefix("klink-sync: error: ")
    assert "stop failed" in error and lines[-1] == f"error: {error}"
    assert running(klink_env) == ALL  # the stack back up, as without notifications
    _no_token(proc)


def test_a_failing_before_hook_is_told_too(folder, tmp_path, klink_env, receiver):  # noqa: F811
    set_running(klink_env, ALL)
    config = _config(tmp_path, receiver.port)
    config.write_text(config.read_text() + "hooks:\n  before: [[sh, -c, 'exit 3']]\n")
    run_cli("hot-cold", "--folder", folder, "--config", config, env=klink_env, check=1)
    [posted] = _posted(receiver)
    assert posted["type"] == "failure"
    assert "error: before hook failed: sh -c 'exit 3' failed (exit 3)" in posted["message"]


def test_on_failure_only_sends_nothing_on_success(folder, tmp_path, klink_env, receiver):  # noqa: F811
    set_running(klink_env, ALL)
    config = _config(tmp_path, receiver.port, on="[failure]")
    proc = run_cli("hot-cold", "--folder", folder, "--config", config, env=klink_env)
    assert receiver.requests == []
    assert "notification" not in proc.stderr


def test_a_run_that_recovers_a_stopped_stack_says_so(folder, tmp_path, klink_env, receiver):  # noqa: F811
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    killed = run_cli("hot-cold", "--folder", folder, "--dest", dest, check=None,
                     env={**klink_env, "FAKE_COMPOSE_ON_STOP": KILL_AT_STOP})  # fmt: skip
    assert killed.returncode == -9 and running(klink_env) == []
    config = _config(tmp_path, receiver.port, on="[recovered, success]")
    run_cli("hot-cold", "--folder", folder, "--config", config, env=klink_env)
    [posted] = _posted(receiver)
    assert posted["type"] == "warning"
    assert posted["title"].endswith("backup of k-link ok, stopped services started again")
    assert "recovered: database, engine, kbox (a klink-sync run that died" in posted["message"]


def test_a_receiver_that_is_down_is_one_warning_line(folder, tmp_path, klink_env):
    set_running(klink_env, ALL)
    config = _config(tmp_path, closed_port())
    proc = run_cli("hot-cold", "--folder", folder, "--config", config, "-v", env=klink_env)
    warnings = [line for line in proc.stderr.splitlines() if " WARNING " in line]
    assert len(warnings) == 1, proc.stderr
    assert warnings[0].split(" WARNING ", 1)[1] == (
        "notification (success) not delivered: A Connection error occurred sending JSON "
        "notification to 127.0.0.1.")  # fmt: skip
    assert running(klink_env) == ALL
    _no_token(proc)


# --- config check ---------------------------------------------------------------------------

BAD = [
    ("notify:\n  urls: json://127.0.0.1/hook\n", "notify.urls: must be a list of Apprise URLs"),
    ("notify:\n  urls: []\n", "notify.urls: must be a list of Apprise URLs"),
    (f"notify:\n  urls: ['127.0.0.1/hook?token={TOKEN}']\n",
     "notify.urls[0]: must be an Apprise URL (scheme://...)"),
    (f"notify:\n  urls: ['jsn://127.0.0.1/hook?token={TOKEN}']\n",
     "notify.urls[0]: not a URL Apprise can use: an unknown scheme or a part missing "
     "(https://github.com/caronc/apprise/wiki)"),
    ("notify:\n  urls: [json://h/x]\n  on: [failure, sometimes]\n",
     "notify.on: must be a list of failure, recovered, success"),
    ("notify:\n  urls: [json://h/x]\n  on: failure\n",
     "notify.on: must be a list of failure, recovered, success"),
    ("notify:\n  urls: [json://h/x]\n  when: [failure]\n",
     "notify: unknown key 'when' (notify has urls and on)"),
    ("notify: [json://h/x]\n", "notify: must be a mapping"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD, ids=[f"{i}" for i in range(len(BAD))])
def test_config_check_refuses_bad_notify_settings(tmp_path, text, message):
    path = tmp_path / "config.yml"
    path.write_text(text)
    proc = run_cli("config", "check", path, check=2)
    assert proc.stderr.splitlines() == [f"{path}: {message}", f"{path}: 1 problem"]
    assert proc.stdout == "" and TOKEN not in proc.stderr


def test_config_check_takes_a_bare_on_key(tmp_path):
    """YAML 1.1 reads `on:` as true: the brief's own example must pass."""
    path = _config(tmp_path, 8080, on="[failure]")
    assert run_cli("config", "check", path).stdout == f"{path}: ok\n"
