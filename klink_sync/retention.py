"""Which snapshots to keep: borg/restic-style rules, pure (the caller passes every time in).

Rules are independent and their results are unioned: `keep_daily: 7` keeps the newest
snapshot of each of the 7 most recent UTC days that have a snapshot, whatever
`keep_last` kept. The newest snapshot is always kept, so no rule can empty a destination,
and all-zero rules keep everything (the CLI refuses to prune without rules rather than
guess).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timezone

# destination.snapshot_name(): UTC stop time, `-N` added when the second is taken. Other
# suffixes (`-pre-restore`: the state a restore replaced) are not backups the rules judge.
_STAMP = r"(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z)"
_NAME = re.compile(_STAMP + r"(?:-([1-9]\d*))?")
_LEADING = re.compile(_STAMP + r"(?:-.*)?")


@dataclass(frozen=True)
class Retention:
    """How many snapshots, days, ISO weeks and months to keep; 0 turns a rule off."""

    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{f.name}: must be a whole number >= 0")

    @property
    def empty(self) -> bool:
        """No rule set: pruning would have nothing to go by."""
        return not any(getattr(self, f.name) for f in fields(self))

    def to_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


RULES = tuple(f.name for f in fields(Retention))


def check_rules(problems, entry: Mapping, where: str  # type: ignore[no-untyped-def]
                ) -> Retention | None:  # fmt: skip
    """Retention rules from a config mapping (`retention:`, `offsite.retention:`); every
    problem added to `problems` as `where.key: reason`; None when there was one."""
    before = len(problems)
    for key in sorted(set(map(str, entry)) - set(RULES)):
        problems.add(where, f"unknown key '{key}'")
    for key, value in entry.items():
        if key in RULES and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            problems.add(f"{where}.{key}", "must be a whole number >= 0")
    return Retention(**entry) if len(problems) == before else None


def _parse(match: re.Match[str] | None) -> datetime | None:
    if not match:
        return None
    try:
        return datetime.strptime(match[1], "%Y-%m-%dT%H-%M-%SZ").replace(tzinfo=timezone.utc)
    except ValueError:  # 2026-13-45T...: looks like a time, is not one
        return None


def snapshot_time(name: str) -> datetime | None:
    """The UTC time of a backup snapshot's name; None for anything else (never pruned)."""
    return _parse(_NAME.fullmatch(name))


def name_time(name: str) -> datetime | None:
    """The time a name starts with, whatever its suffix (`-pre-restore` too): for display."""
    return _parse(_LEADING.fullmatch(name))


def _suffix(name: str) -> int:
    match = _NAME.fullmatch(name)
    return int(match[2]) if match and match[2] else 1


def sort_key(name: str) -> tuple:
    """Oldest first; `-2` after its plain twin, `-10` after `-9`; untimed names last."""
    when = name_time(name)
    if when is None:
        return (1, name)
    return (0, when, _suffix(name), name)


def _utc(when: datetime) -> datetime:
    # A naive time is taken as UTC: snapshot names are UTC.
    if when.tzinfo is None:
        return when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def _day(t: datetime) -> str:
    return t.strftime("%Y-%m-%d")


def _week(t: datetime) -> str:
    year, week, _ = t.isocalendar()
    return f"{year}-W{week:02d}"


def _month(t: datetime) -> str:
    return t.strftime("%Y-%m")


PERIODS: tuple[tuple[str, str, Callable[[datetime], str]], ...] = (
    ("keep_daily", "daily", _day),
    ("keep_weekly", "weekly", _week),
    ("keep_monthly", "monthly", _month),
)


def select(
    snapshots: Sequence[tuple[str, datetime]], rules: Retention
) -> tuple[set[str], dict[str, list[str]]]:
    """Names to keep and, for each, the rules that keep it; every other name may go."""
    ordered = sorted(
        ((name, _utc(when)) for name, when in snapshots),
        key=lambda s: (s[1], _suffix(s[0]), s[0]),
        reverse=True,
    )  # newest first
    reasons: dict[str, list[str]] = {}

    def keep(name: str, why: str) -> None:
        reasons.setdefault(name, []).append(why)

    if not ordered:
        return set(), {}
    if rules.empty:
        for name, _ in ordered:
            keep(name, "no retention rules")
        return set(reasons), reasons
    keep(ordered[0][0], "newest")
    for i, (name, _) in enumerate(ordered[: rules.keep_last]):
        keep(name, f"last {i + 1}")
    for rule, label, period_of in PERIODS:
        wanted = getattr(rules, rule)
        seen: set[str] = set()
        for name, when in ordered:
            if len(seen) >= wanted:
                break
            period = period_of(when)
            if period not in seen:  # newest first: the first one met is the period's newest
                seen.add(period)
                keep(name, f"{label} {period}")
    return set(reasons), reasons


@dataclass(frozen=True)
class PruneDecision:
    """What prune keeps (with why) and removes, both oldest first."""

    keep: tuple[tuple[str, tuple[str, ...]], ...]
    remove: tuple[str, ...]


def decide(
    folders: Sequence[tuple[str, bool]], latest: str | None, rules: Retention
) -> PruneDecision:
    """Apply the rules to a destination's listing of (name, complete).

    Only complete snapshots with a time in their name are candidates: an incomplete
    folder may be a run being promoted, and a name we cannot read is not ours to judge.
    The one `latest` points to stays even if the rules would drop it.
    """
    candidates = [(name, snapshot_time(name)) for name, complete in folders if complete]
    timed = [(name, when) for name, when in candidates if when is not None]
    _, reasons = select(timed, rules)
    why: dict[str, list[str]] = {}
    for name, complete in folders:
        found = list(reasons.get(name, []))
        if name == latest:
            found.insert(0, "latest")
        if not complete:
            found.append("incomplete (no manifest.json): never pruned")
        elif snapshot_time(name) is None:
            found.append("not a backup snapshot name: never pruned")
        if found:
            why[name] = found
    order = sorted({name for name, _ in folders}, key=sort_key)
    return PruneDecision(
        keep=tuple((name, tuple(why[name])) for name in order if name in why),
        remove=tuple(name for name in order if name not in why),
    )
