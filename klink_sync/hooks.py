"""Around a backup run: hooks, the healthchecks-style ping, the metrics file.

Order of one run:

    ping URL/start, before hooks, the backup, after hooks, metrics, ping URL, notify
    on any failure: on_failure hooks, metrics, ping URL/fail, notify

A failing `before` hook ends the run before anything is stopped. A failing `after` hook
fails the run (exit 1; the snapshot is kept). A failing `on_failure` hook is only logged.
Pings, notifications and the metrics file never change the outcome: their problems are
warnings.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import metrics, notify, process
from .config import Command, Settings
from .destination import open_destination
from .errors import KlinkSyncError

log = logging.getLogger(__name__)

PING_TIMEOUT = 5.0  # seconds; a monitoring outage must never hold up a backup


class HookFailed(KlinkSyncError):
    """A before or after hook exited non-zero (or could not be run)."""

    exit_code = 1


def hook_argv(command: Command) -> tuple[str, ...]:
    """An argv list runs as given; a string (shell: true) through /bin/sh -c."""
    return ("/bin/sh", "-c", command) if isinstance(command, str) else tuple(command)


def hook_env(values: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The hook's environment: ours plus the run's KLINK_SYNC_* variables."""
    env = dict(os.environ if base is None else base)
    env.update(values)
    return env


def run_hooks(event: str, commands: Sequence[Command], values: Mapping[str, str]) -> None:
    """Run each command in order; the first failure raises HookFailed. A signal (SIGTERM,
    SIGINT, SIGHUP) ends the hook under way, children too (it runs in a session of its
    own: nothing else would), and the run as interrupted, reported as any failure."""
    from .stack import signals_raise

    env = hook_env(values)
    with signals_raise():
        for command in commands:
            argv = hook_argv(command)
            log.info("%s hook: %s", event, process.show(argv))
            try:
                result = process.run(argv, env=env)
            except process.CommandFailed as exc:
                raise HookFailed(f"{event} hook failed: {exc}") from None
            for line in process.mask(result.stdout).splitlines():  # a secret of many lines
                log.info("%s hook: %s", event, line)


def ping(url: str | None, suffix: str = "") -> None:
    """GET url+suffix; problems are logged, never raised (5 s timeout)."""
    if not url:
        return
    target = url.rstrip("/") + suffix
    try:
        with urllib.request.urlopen(target, timeout=PING_TIMEOUT) as answer:  # noqa: S310
            answer.read(1024)
        log.debug("pinged %s", target)
    except Exception as exc:  # noqa: BLE001 (any failure of monitoring is only a warning)
        log.warning("ping %s failed: %s", target, exc)


@dataclass
class Job:
    """One hot-cold or cold run as monitoring sees it."""

    settings: Settings
    mode: str
    began: float = field(default_factory=time.time)
    dest: str = ""
    folder: str = ""
    report: object | None = None  # models.Report once the backup is done

    def __post_init__(self) -> None:
        notify.register_secrets(self.settings.notify)  # masked from the first log line on

    def start(self) -> None:
        ping(self.settings.ping_url, "/start")

    def before(self, dest: Path, folder: Path) -> None:
        """Right before the backup (nothing stopped yet): a failure ends the run here."""
        self.dest, self.folder = str(dest), str(folder)
        run_hooks("before", self.settings.hooks.before, self.values("starting", None))

    def succeeded(self, report) -> None:
        """The backup made its snapshot: after hooks (may raise), metrics, ping, notify."""
        self.report = report
        run_hooks("after", self.settings.hooks.after, self.values("ok", None))
        self._metrics(True)
        ping(self.settings.ping_url)
        self._notify(None)

    def failed(self, exc: BaseException) -> None:
        """Any failure: on_failure hooks (only logged if they fail or a signal ends them:
        the run's own error is the one reported), metrics, ping /fail, notify."""
        try:
            run_hooks("on_failure", self.settings.hooks.on_failure, self.values("failed", exc))
        except KlinkSyncError as hook_exc:
            log.error("on_failure hooks: %s", hook_exc)
        self._metrics(False)
        ping(self.settings.ping_url, "/fail")
        self._notify(exc)

    def _notify(self, exc: BaseException | None) -> None:
        """Last, once the outcome is settled: a notification only tells, it never changes
        the run (its failures are warnings)."""
        if self.settings.notify is None:
            return
        error = (process.mask(str(exc)) or type(exc).__name__) if exc is not None else ""
        folder = self.folder or str(self.settings.folder or "")
        outcome = notify.Outcome(self.mode, folder, socket.gethostname(), self.report, error)
        notify.send(self.settings.notify, outcome)

    def values(self, status: str, exc: BaseException | None) -> dict[str, str]:
        """KLINK_SYNC_* for the hooks; empty strings for what is not known (yet)."""
        report = self.report
        code = getattr(exc, "exit_code", 1) if exc is not None else 0
        return {
            "KLINK_SYNC_STATUS": status,
            "KLINK_SYNC_MODE": self.mode,
            "KLINK_SYNC_SNAPSHOT": str(report.snapshot or "") if report else "",
            "KLINK_SYNC_RECOVERED": " ".join(report.recovered) if report else "",
            "KLINK_SYNC_OFFSITE": str(report.offsite.get("result", "")) if report else "",
            "KLINK_SYNC_DOWNTIME_SECONDS":
                f"{report.downtime_seconds:.3f}" if report else "",
            "KLINK_SYNC_EXIT_CODE": "" if status == "starting" else str(code),
            "KLINK_SYNC_DEST": self.dest,
            "KLINK_SYNC_FOLDER": self.folder,
            "KLINK_SYNC_ERROR": process.mask(str(exc)) if exc is not None else "",
        }  # fmt: skip

    def _metrics(self, success: bool) -> None:
        path = self.settings.metrics_file
        if not path:
            return
        finished = time.time()
        dest = self.dest or str(self.settings.dest or "")
        count = count_snapshots(dest, self.settings.ssh_options) if dest else None
        if self.report is not None:
            m = metrics.from_report(self.report, success, finished, finished - self.began, count)
        else:
            m = metrics.RunMetrics(success, finished, finished - self.began, dest,
                                   snapshots=count)  # fmt: skip
        metrics.write_or_warn(Path(path), m)


def count_snapshots(dest: str, ssh_options: Sequence[str] = ()) -> int | None:
    """Complete snapshots, for the metrics file; None when the destination cannot be read."""
    try:
        return open_destination(dest, ssh_options).count_complete()
    except (OSError, KlinkSyncError) as exc:
        log.warning("cannot count the snapshots: %s", exc)
        return None
