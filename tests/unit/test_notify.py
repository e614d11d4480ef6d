"""notify.py: the message of a run (pure), the URLs' secrets, delivery with real Apprise to a
real local HTTP server. The config checks and whole runs: tests/integration/test_notify.py."""

from __future__ import annotations

import logging

import pytest

from klink_sync import notify, process
from klink_sync.config import parse_settings
from klink_sync.models import Mode, Report
from klink_sync.notify import Notify, Outcome, events, message, url_secrets
from tests.receiver import Receiver, closed_port, receiver  # noqa: F401 (the fixture)

ALL = frozenset(notify.EVENTS)
PUSHED = {"result": "ok", "snapshot": "2026-11-26T01-02-03Z", "repository": "s3:s3.example/kl",
          "restic_id": "1a2b3c4d", "added_bytes": 3 * 1024 * 1024, "error": ""}  # fmt: skip


def _report(**changes: object) -> Report:
    values: dict = dict(mode=Mode.HOT_COLD, result="ok", dest="/mnt/backup",
                        snapshot="2026-11-26T01-02-03Z", downtime_seconds=12.34,
                        phases={}, services_before=("database", "kbox"),
                        services_after=("database", "kbox"))  # fmt: skip
    return Report(**{**values, **changes})


def _outcome(report: Report | None = None, error: str = "") -> Outcome:
    return Outcome("hot-cold", "/opt/k-link", "backup-host", report, error)


# --- the message ----------------------------------------------------------------------------


def test_a_successful_run() -> None:
    msg = message(_outcome(_report()), ALL)
    assert msg is not None and msg.event == "success"
    assert msg.title == "klink-sync on backup-host: hot-cold backup of k-link ok"
    assert msg.body.splitlines() == [
        "deployment: /opt/k-link", "host: backup-host", "mode: hot-cold", "result: ok",
        "snapshot: 2026-11-26T01-02-03Z", "downtime: 12.3 s", "offsite: not pushed",
    ]  # fmt: skip


def test_a_run_that_failed_before_its_report_names_the_error() -> None:
    msg = message(_outcome(None, "stop failed (exit 1): Cannot connect to Docker"), ALL)
    assert msg is not None and msg.event == "failure"
    assert msg.title == "klink-sync on backup-host: hot-cold backup of k-link failed"
    lines = msg.body.splitlines()
    assert "result: failed" in lines and "snapshot: none" in lines
    assert "downtime: unknown (the run ended before its report)" in lines
    assert lines[-1] == "error: stop failed (exit 1): Cannot connect to Docker"


def test_a_failed_after_hook_keeps_the_snapshot_in_the_message() -> None:
    msg = message(_outcome(_report(), "after hook failed: false failed (exit 1)"), ALL)
    assert msg is not None and msg.event == "failure"
    assert "snapshot: 2026-11-26T01-02-03Z" in msg.body.splitlines()
    assert msg.body.endswith("\nerror: after hook failed: false failed (exit 1)")


def test_a_failed_offsite_push_is_a_failure_though_the_snapshot_is_made() -> None:
    pushed = {**PUSHED, "result": "failed", "error": "restic backup (exit 1): connection refused"}
    msg = message(_outcome(_report(offsite=pushed)), ALL)
    assert msg is not None and msg.event == "failure"
    assert msg.title == "klink-sync on backup-host: offsite push of k-link failed"
    lines = msg.body.splitlines()
    assert "snapshot: 2026-11-26T01-02-03Z" in lines and "result: failed" in lines
    assert "offsite: failed: restic backup (exit 1): connection refused" in lines
    assert message(_outcome(_report(offsite=pushed)), {"success", "recovered"}) is None


def test_a_pushed_snapshot() -> None:
    msg = message(_outcome(_report(offsite=PUSHED)), ALL)
    assert msg is not None and msg.event == "success"
    assert ("offsite: ok, 2026-11-26T01-02-03Z pushed to s3:s3.example/kl as 1a2b3c4d "
            "(3.0 MiB added)") in msg.body.splitlines()  # fmt: skip


def test_recovered_wins_over_success_when_both_are_asked_for() -> None:
    outcome = _outcome(_report(recovered=("database", "kbox")))
    assert events(outcome) == ("recovered", "success")
    msg = message(outcome, ALL)
    assert msg is not None and msg.event == "recovered"
    assert msg.title.endswith("backup of k-link ok, stopped services started again")
    assert "recovered: database, kbox (a klink-sync run that died had left them stopped; " \
           "started again first)" in msg.body.splitlines()  # fmt: skip
    success = message(outcome, {"success"})
    assert success is not None and success.event == "success"
    assert "recovered: database, kbox" in success.body  # said, whatever the event
    assert message(outcome, {"failure"}) is None


@pytest.mark.parametrize(
    ("outcome", "on", "event"),
    [
        (_outcome(_report()), {"failure", "recovered"}, None),  # the default `on`
        (_outcome(None, "boom"), {"recovered", "success"}, None),
        (_outcome(_report(recovered=("kbox",)), "boom"), {"recovered"}, None),
        (_outcome(_report(recovered=("kbox",)), "boom"), ALL, "failure"),
        (_outcome(_report()), set(), None),
    ],
)
def test_only_events_asked_for_are_sent(outcome: Outcome, on: set, event: str | None) -> None:
    msg = message(outcome, on)
    assert (msg.event if msg else None) == event


def test_a_run_that_failed_before_it_knew_its_folder() -> None:
    msg = message(Outcome("cold", "", "h", None, "no compose file found"), ALL)
    assert msg is not None
    assert msg.title == "klink-sync on h: cold backup of (no deployment yet) failed"
    assert "deployment: (not known yet)" in msg.body.splitlines()


# --- config --------------------------------------------------------------------------------------


def test_a_bare_on_key_is_read_as_on_not_as_yaml_true() -> None:
    """YAML 1.1 makes `on:` the boolean true; the config means the key `on`."""
    settings = parse_settings({"notify": {"urls": ["json://127.0.0.1/x"], True: ["success"]}},
                              "/etc/klink-sync/config.yml")  # fmt: skip
    assert settings.notify == Notify(("json://127.0.0.1/x",), frozenset({"success"}))


# --- secrets -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("mailtos://user:Pw-mail-9f3e@mail.example.org?to=admin@example.org", {"Pw-mail-9f3e"}),
        ("tgram://123456789:AAbot-token-77/12345", {"123456789:AAbot-token-77"}),
        ("discord://998877665544/webhook-token-xyz", {"998877665544", "webhook-token-xyz"}),
        ("ntfys://ntfy.example.org/topic?token=tk_ntfy-4c2a", {"tk_ntfy-4c2a"}),
        ("json://127.0.0.1/hook?+Authorization=Bearer%20hdr-77aa", {"Bearer hdr-77aa"}),
    ],
)
def test_url_secrets_are_the_url_and_its_private_parts(url: str, parts: set[str]) -> None:
    assert url_secrets(url) == {url} | parts


def test_registered_secrets_are_masked() -> None:
    notify.register_secrets(Notify(("gotify://gotify.example.org/AppTok-5d1e",), ALL))
    assert process.mask("token AppTok-5d1e refused") == f"token {process.MASK} refused"
    assert "gotify.example.org" in process.mask("gotify.example.org")  # the host is no secret


# --- delivery ------------------------------------------------------------------------------------


def test_send_posts_the_message(receiver: Receiver) -> None:  # noqa: F811
    urls = (f"json://127.0.0.1:{receiver.port}/hook?token=UNIT-TOKEN-1",)
    assert notify.send(Notify(urls, ALL), _outcome(_report())) is True
    [request] = receiver.requests
    assert request.method == "POST" and request.path.startswith("/hook")
    body = request.json
    assert isinstance(body, dict) and body["type"] == "success"
    assert body["title"] == "klink-sync on backup-host: hot-cold backup of k-link ok"
    assert body["message"].startswith("deployment: /opt/k-link\n")


def test_send_nothing_when_the_event_is_not_asked_for(receiver: Receiver) -> None:  # noqa: F811
    urls = (f"json://127.0.0.1:{receiver.port}/hook",)
    assert notify.send(Notify(urls, frozenset({"failure"})), _outcome(_report())) is False
    assert notify.send(None, _outcome(None, "boom")) is False
    assert receiver.requests == []


def test_a_receiver_that_answers_500_is_a_warning(receiver: Receiver, caplog) -> None:  # noqa: F811
    receiver.status = 500
    urls = (f"json://127.0.0.1:{receiver.port}/hook",)
    with caplog.at_level(logging.INFO, logger="klink_sync"):
        assert notify.send(Notify(urls, ALL), _outcome(None, "boom")) is False
    assert len(receiver.requests) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("notification (failure) not delivered: ")
    assert "500" in warnings[0]


def test_a_receiver_that_is_down_is_a_warning_quickly(caplog) -> None:
    url = f"json://user:Pw-down-8b1c@127.0.0.1:{closed_port()}/hook"
    with caplog.at_level(logging.DEBUG, logger="klink_sync"):
        assert notify.send(Notify((url,), ALL), _outcome(_report())) is False
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("notification (success) not delivered: ")
    assert "apprise: " in caplog.text  # Apprise's own lines, at debug, masked
    assert "Pw-down-8b1c" not in caplog.text


def test_a_receiver_that_never_answers_holds_the_run_only_seconds(caplog) -> None:
    import socket
    import time

    with socket.socket() as s:  # takes connections (the kernel's backlog), never answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        url = f"json://127.0.0.1:{s.getsockname()[1]}/hook"
        began = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="klink_sync"):
            assert notify.send(Notify((url,), ALL), _outcome(_report())) is False
        took = time.monotonic() - began
    assert 3 < took < 15, took  # Apprise's 4 s read timeout, no retry
    assert "notification (success) not delivered: " in caplog.text
