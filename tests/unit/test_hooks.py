"""hooks.py and the hooks: config; hooks run real commands, pings go to a local server."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from klink_sync import hooks
from klink_sync.config import Hooks, Settings, parse_settings
from klink_sync.errors import RestartFailed, UsageError

SRC = "/etc/klink-sync/config.yml"


def error_of(data: object) -> str:
    with pytest.raises(UsageError) as info:
        parse_settings(data, SRC)
    return str(info.value)


# --- config ------------------------------------------------------------------------------------


def test_argv_lists_are_the_default() -> None:
    settings = parse_settings({"hooks": {
        "before": [["mount", "/mnt/backup"]],
        "after": [["rsync", "-a", "/mnt/backup/", "offsite:/k-link/"], ["sleep", 5]],
        "on_failure": [["logger", "failed"]],
    }}, SRC)  # fmt: skip
    assert settings.hooks == Hooks(
        before=(("mount", "/mnt/backup"),),
        after=(("rsync", "-a", "/mnt/backup/", "offsite:/k-link/"), ("sleep", "5")),
        on_failure=(("logger", "failed"),),
    )


def test_strings_need_shell_true() -> None:
    settings = parse_settings({"hooks": {"shell": True, "after": "echo done | logger",
                                         "on_failure": ["mail -s failed root", ["true"]]}}, SRC)
    assert settings.hooks == Hooks(after=("echo done | logger",),
                                   on_failure=("mail -s failed root", ("true",)))  # fmt: skip
    assert error_of({"hooks": {"after": ["echo done | logger"]}}) == (
        f"{SRC}: hooks.after[0]: a string runs through the shell only with hooks.shell: true; "
        "give an argv list like [logger, backup done]"
    )


@pytest.mark.parametrize(
    ("hooks_value", "message"),
    [
        ({"before": {"run": "x"}}, "hooks.before: must be an argv list like [logger, backup done]"),
        ({"before": [[]]}, "hooks.before[0]: empty command"),
        ({"shell": True, "before": ["  "]}, "hooks.before[0]: empty command"),
        ({"before": [["echo", None]]}, "hooks.before[0][1]: must be a string"),
        ({"before": [["echo", True]]}, "hooks.before[0][1]: must be a string"),
        ({"before": [5]}, "hooks.before[0]: must be an argv list like [logger, backup done]"),
        ({"shell": "yes"}, "hooks.shell: must be true or false"),
        ({"after_success": []}, "hooks: unknown key 'after_success' (hooks are before, after, "
                                "on_failure; shell: true allows command lines)"),
    ],
)  # fmt: skip
def test_bad_hooks(hooks_value: dict, message: str) -> None:
    assert error_of({"hooks": hooks_value}) == f"{SRC}: {message}"


def test_hooks_must_be_a_mapping() -> None:
    assert error_of({"hooks": [["true"]]}) == f"{SRC}: hooks: must be a mapping"


# --- running hooks -----------------------------------------------------------------------------


def test_hook_argv() -> None:
    assert hooks.hook_argv(("logger", "a b")) == ("logger", "a b")
    assert hooks.hook_argv("echo $X | logger") == ("/bin/sh", "-c", "echo $X | logger")


def test_hook_env_adds_the_run_variables() -> None:
    env = hooks.hook_env({"KLINK_SYNC_STATUS": "ok"}, base={"PATH": "/bin"})
    assert env == {"PATH": "/bin", "KLINK_SYNC_STATUS": "ok"}


def test_run_hooks_runs_in_order_and_stops_at_the_first_failure(tmp_path) -> None:
    out = tmp_path / "out"
    commands = (("sh", "-c", f'echo "1 $KLINK_SYNC_STATUS" >> {out}'), ("false",),
                ("sh", "-c", f"echo 3 >> {out}"))  # fmt: skip
    with pytest.raises(hooks.HookFailed) as info:
        hooks.run_hooks("after", commands, {"KLINK_SYNC_STATUS": "ok"})
    assert str(info.value) == "after hook failed: false failed (exit 1): exit code 1"
    assert out.read_text() == "1 ok\n"


def test_a_missing_hook_command_is_a_failure() -> None:
    with pytest.raises(hooks.HookFailed, match="before hook failed: command not found: nope-"):
        hooks.run_hooks("before", (("nope-no-such-command",),), {})


def _job(**settings) -> hooks.Job:
    return hooks.Job(Settings(**settings), "hot-cold", dest="/mnt/b", folder="/opt/k-link")


class _Report:
    snapshot = "2026-11-26T01-02-03Z"
    downtime_seconds = 3.14159
    recovered = ("database", "kbox")
    offsite = {"result": "failed", "error": "offsite push: unreachable"}


def test_job_values_before_after_and_on_failure() -> None:
    job = _job()
    assert job.values("starting", None) == {
        "KLINK_SYNC_STATUS": "starting", "KLINK_SYNC_MODE": "hot-cold",
        "KLINK_SYNC_SNAPSHOT": "", "KLINK_SYNC_DOWNTIME_SECONDS": "",
        "KLINK_SYNC_RECOVERED": "", "KLINK_SYNC_EXIT_CODE": "", "KLINK_SYNC_DEST": "/mnt/b",
        "KLINK_SYNC_FOLDER": "/opt/k-link", "KLINK_SYNC_ERROR": "", "KLINK_SYNC_OFFSITE": "",
    }  # fmt: skip
    job.report = _Report()
    ok = job.values("ok", None)
    assert ok["KLINK_SYNC_SNAPSHOT"] == "2026-11-26T01-02-03Z"
    assert ok["KLINK_SYNC_DOWNTIME_SECONDS"] == "3.142" and ok["KLINK_SYNC_EXIT_CODE"] == "0"
    assert ok["KLINK_SYNC_RECOVERED"] == "database kbox"
    assert ok["KLINK_SYNC_OFFSITE"] == "failed"
    failed = job.values("failed", RestartFailed("services still down: database"))
    assert failed["KLINK_SYNC_EXIT_CODE"] == "70"
    assert failed["KLINK_SYNC_ERROR"] == "services still down: database"
    assert job.values("failed", ValueError("bug"))["KLINK_SYNC_EXIT_CODE"] == "1"


def test_a_failing_on_failure_hook_is_only_logged(caplog) -> None:
    job = _job(hooks=Hooks(on_failure=(("false",),)))
    job.failed(RuntimeError("x"))  # no exception
    assert "on_failure hook failed: false" in caplog.text


# --- pings -------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []
    delay = 0.0

    def do_GET(self):  # noqa: N802
        time.sleep(self.delay)
        self.seen.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.seen, _Handler.delay = [], 0.0
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    httpd.shutdown()
    httpd.server_close()


def test_ping_paths(server) -> None:
    url, handler = server
    hooks.ping(url + "/uuid/", "/start")
    hooks.ping(url + "/uuid")
    hooks.ping(url + "/uuid", "/fail")
    hooks.ping(None)
    assert handler.seen == ["/uuid/start", "/uuid", "/uuid/fail"]


def test_ping_times_out_without_raising(server, monkeypatch, caplog) -> None:
    url, handler = server
    handler.delay = 2.0
    monkeypatch.setattr(hooks, "PING_TIMEOUT", 0.3)
    began = time.monotonic()
    hooks.ping(url + "/slow")
    assert time.monotonic() - began < 1.5
    assert "ping " + url + "/slow failed" in caplog.text


def test_job_pings_start_success_and_fail(server) -> None:
    url, handler = server
    job = _job(ping_url=url + "/u")
    job.start()
    job.succeeded(_Report())
    job.failed(RuntimeError("x"))
    assert handler.seen == ["/u/start", "/u", "/u/fail"]
