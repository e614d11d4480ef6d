"""Notifications through Apprise: one list of URLs (ntfy, email, Slack, Matrix, Gotify, ...)
told when a run fails, recovers a stack a dead run left stopped, or succeeds.

The URLs carry tokens: they are secrets, masked wherever a message could show them.
"""

from __future__ import annotations

from dataclasses import dataclass

EVENTS = ("failure", "recovered", "success")
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
    for key in sorted(set(map(str, entry)) - {"urls", "on"}):
        problems.add("notify", f"unknown key '{key}' (notify has urls and on)")
    urls = entry.get("urls")
    if not isinstance(urls, list) or not urls:
        problems.add("notify.urls", "must be a list of Apprise URLs")
        urls = []
    for i, url in enumerate(urls):
        if not isinstance(url, str) or "://" not in url or any(c in url for c in "\n\0"):
            problems.add(f"notify.urls[{i}]", "must be an Apprise URL (scheme://...)")
    on = entry.get("on", sorted(Notify.on))
    if not isinstance(on, list) or not all(isinstance(e, str) and e in EVENTS for e in on):
        problems.add("notify.on", "must be a list of " + ", ".join(EVENTS))
        on = []
    if len(problems) > before:
        return None
    return Notify(tuple(urls), frozenset(on))
