"""Notifications through Apprise: one list of URLs (ntfy, email, Slack, Matrix, Gotify, ...)
told when a run fails, recovers a stack a dead run left stopped, or succeeds.

The URLs carry tokens: they are secrets, masked wherever a message could show them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from . import process

log = logging.getLogger(__name__)

EVENTS = ("failure", "recovered", "success")  # the most important first: a run sends one
NOTIFY_EXAMPLE = """\
# Apprise URLs (https://github.com/caronc/apprise/wiki): they hold tokens, keep the config
# file 0600; on: which runs to tell about (failure, recovered, success)
#notify:
#  urls:
#    - ntfys://ntfy.example.org/k-link-backups
#    - mailtos://user:password@mail.example.org?to=admin@example.org
#  on: [failure, recovered]"""


@dataclass(frozen=True)
class Notify:
    urls: tuple[str, ...]
    on: frozenset[str] = frozenset({"failure", "recovered"})


def check_notify(problems, entry: dict) -> Notify | None:  # type: ignore[no-untyped-def]
    """`notify:` of the config file; every problem added to `problems` (key: reason)."""
    before = len(problems)
    # YAML 1.1 reads a bare `on:` key as the boolean true
    entry = {("on" if key is True else key): value for key, value in entry.items()}
    for key in sorted(set(map(str, entry)) - {"urls", "on"}):
        problems.add("notify", f"unknown key '{key}' (notify has urls and on)")
    urls = entry.get("urls")
    if not isinstance(urls, list) or not urls:
        problems.add("notify.urls", "must be a list of Apprise URLs")
        urls = []
    for i, url in enumerate(urls):
        if not isinstance(url, str) or "://" not in url or any(c in url for c in "\n\0"):
            problems.add(f"notify.urls[{i}]", "must be an Apprise URL (scheme://...)")
        elif not known_to_apprise(url):
            problems.add(f"notify.urls[{i}]", "not a URL Apprise can use: an unknown scheme "
                         "or a part missing (https://github.com/caronc/apprise/wiki)")
    on = entry.get("on", sorted(Notify.on))
    if not isinstance(on, list) or not all(isinstance(e, str) and e in EVENTS for e in on):
        problems.add("notify.on", "must be a list of " + ", ".join(EVENTS))
        on = []
    if len(problems) > before:
        return None
    return Notify(tuple(urls), frozenset(on))


# --- what a notification says (pure) ------------------------------------------------------------

APPRISE_TYPES = {"failure": "failure", "recovered": "warning", "success": "success"}


@dataclass(frozen=True)
class Outcome:
    """One run as a notification tells it: `report` (models.Report) is None when the run
    failed before it made one; `error` is the run's error message, empty on success."""

    mode: str
    folder: str
    host: str
    report: Any = None
    error: str = ""


@dataclass(frozen=True)
class Message:
    event: str  # one of EVENTS: picks the Apprise type (failure, warning, success)
    title: str
    body: str


def events(outcome: Outcome) -> tuple[str, ...]:
    """The events a run stands for, the most important first. A failed offsite push fails
    the run too (its exit code is not 0); a run that started what a dead run had left
    stopped is "recovered" and, if nothing failed, a "success" as well."""
    report = outcome.report
    offsite = dict(report.offsite) if report is not None else {}
    if outcome.error or offsite.get("result") == "failed":
        return ("failure",)
    if report is not None and report.recovered:
        return ("recovered", "success")
    return ("success",)


def message(outcome: Outcome, on: Collection[str]) -> Message | None:
    """The one notification of a run: its most important event that `on` asks for (None:
    nothing to tell). Pure, so the text can be checked without sending anything."""
    event = next((e for e in events(outcome) if e in on), None)
    if event is None:
        return None
    report = outcome.report
    offsite = dict(report.offsite) if report is not None else {}
    name = outcome.folder.rstrip("/").rsplit("/", 1)[-1] or "(no deployment yet)"
    what = f"{outcome.mode} backup of {name}"
    if event == "failure" and not outcome.error:
        what, result = f"offsite push of {name}", "failed"
    else:
        result = "failed" if event == "failure" else "ok"
    title = f"klink-sync on {outcome.host}: {what} {result}"
    if event == "recovered":
        title += ", stopped services started again"
    return Message(event, title, "\n".join(_body(outcome, result, offsite)))


def _body(outcome: Outcome, result: str, offsite: dict) -> list[str]:
    report = outcome.report
    lines = [f"deployment: {outcome.folder or '(not known yet)'}", f"host: {outcome.host}",
             f"mode: {outcome.mode}", f"result: {result}",
             f"snapshot: {getattr(report, 'snapshot', None) or 'none'}",
             "downtime: " + (f"{report.downtime_seconds:.1f} s" if report is not None
                             else "unknown (the run ended before its report)"),
             "offsite: " + _offsite_text(offsite)]  # fmt: skip
    if report is not None and report.recovered:
        lines.append("recovered: " + ", ".join(report.recovered) + " (a klink-sync run that "
                     "died had left them stopped; started again first)")  # fmt: skip
    if outcome.error:
        lines.append(f"error: {outcome.error}")
    return lines


def _offsite_text(pushed: dict) -> str:
    from .report import human_bytes  # report -> plan -> config -> this module

    if not pushed:
        return "not pushed"
    if pushed.get("result") != "ok":
        return f"failed: {pushed.get('error') or 'no reason given'}"
    added = human_bytes(int(pushed.get("added_bytes") or 0))
    return (f"ok, {pushed.get('snapshot')} pushed to {pushed.get('repository')} as "
            f"{pushed.get('restic_id')} ({added} added)")


# --- the URLs are secrets -------------------------------------------------------------------------

MIN_SECRET = 4  # shorter parts would mask ordinary words in every message
_SECRET_ARG = re.compile(r"auth|token|key|secret|pass|sig|cred", re.IGNORECASE)


def url_secrets(url: str) -> set[str]:
    """The URL and the parts of it that Apprise's own messages could name: passwords,
    tokens (the parts Apprise itself hides in its privacy view), secret-looking arguments
    and header values. Each is masked in every output."""
    found = {url}
    parts = urlsplit(url)
    found.add(unquote(parts.password or ""))
    found.update(unquote(v) for k, v in parse_qsl(parts.query) if _SECRET_ARG.search(k))
    try:
        import apprise

        plugin = apprise.Apprise.instantiate(url)
        if plugin is not None:
            shown = re.split(r"[/?&=@:]", plugin.url(privacy=False))
            hidden = re.split(r"[/?&=@:]", plugin.url(privacy=True))
            if len(shown) == len(hidden):
                found.update(unquote(a) for a, b in zip(shown, hidden, strict=True) if a != b)
    except Exception as exc:  # noqa: BLE001 (the URL itself is masked whatever happens)
        log.debug("notify: cannot look into a URL: %s", type(exc).__name__)
    return {part for part in found if len(part) >= MIN_SECRET}


def known_to_apprise(url: str) -> bool:
    """Whether Apprise makes a service of the URL: a typo shows at `config check`, not
    at the first failure, when a notification matters most."""
    import apprise  # its own log has a NullHandler: its "Unparseable URL" stays unseen

    return apprise.Apprise.instantiate(url) is not None


def register_secrets(notify: Notify | None) -> None:
    """Mask the notify URLs (they carry tokens) from here on, in logs and messages alike."""
    if notify is not None:
        process.add_secrets(part for url in notify.urls for part in url_secrets(url))


# --- delivery ---------------------------------------------------------------------------------


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _apprise_log() -> Iterator[list[logging.LogRecord]]:
    """Apprise's log records, kept for our own log (masked) and out of any handler up the
    tree, which would show them unmasked. INFO and up only: its debug lines name whole
    request URLs, with parts (a webhook path, an ntfy topic) no mask knows."""
    logger = logging.getLogger("apprise")
    handler, saved = _Collect(), (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def send(notify: Notify | None, outcome: Outcome) -> bool:
    """Tell the notify URLs about a run, if `on` asks for its event; True when every URL
    took the message. A delivery that fails is a warning, never a failed run: Apprise
    gives up after its own short socket timeouts (4 s) and does not retry."""
    msg = message(outcome, notify.on) if notify is not None else None
    if notify is None or msg is None:
        return False
    register_secrets(notify)
    delivered, problem = False, ""
    with _apprise_log() as records:
        try:
            import apprise

            box = apprise.Apprise()
            added = sum(bool(box.add(url)) for url in notify.urls)
            delivered = bool(box.notify(body=process.mask(msg.body),
                                        title=process.mask(msg.title),
                                        notify_type=APPRISE_TYPES[msg.event]))  # fmt: skip
            delivered = delivered and added == len(notify.urls)
        except Exception as exc:  # noqa: BLE001 (a notification never fails the run)
            problem = f"{type(exc).__name__}: {exc}"
    for record in records:
        log.debug("apprise: %s", process.mask(record.getMessage()))
    if delivered:
        log.info("notification sent (%s) to %d URL(s)", msg.event, len(notify.urls))
        return True
    causes = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    cause = problem or (causes[-1] if causes else "")
    cause = next(iter(cause.splitlines()), "") or "no reason given"
    log.warning("notification (%s) not delivered: %s", msg.event, process.mask(cause))
    return False
