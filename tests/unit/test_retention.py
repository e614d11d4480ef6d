"""retention.py: which snapshots the rules keep, on made-up dates; the `retention:` option."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from klink_sync.config import Settings, parse_settings
from klink_sync.errors import UsageError
from klink_sync.retention import (
    PruneDecision,
    Retention,
    decide,
    name_time,
    select,
    snapshot_time,
    sort_key,
)

UTC = timezone.utc
SRC = "/etc/klink-sync.yml"


def n(when: str) -> str:
    """'2026-10-30 22:30' -> the snapshot name of that UTC time."""
    return datetime.fromisoformat(when).strftime("%Y-%m-%dT%H-%M-%SZ")


def timed(names: list[str]) -> list[tuple[str, datetime]]:
    return [(name, snapshot_time(name)) for name in names]


def kept(names: list[str], **rules: int) -> set[str]:
    keep, reasons = select(timed(names), Retention(**rules))
    assert set(reasons) == keep and all(reasons.values())
    return keep


# 30 days of October 2026, two snapshots a day (01:00, 13:00), a third on the 30th.
# ISO weeks: W40 = Oct 1-4 (Thu-Sun), W41 = 5-11, W42 = 12-18, W43 = 19-25, W44 = 26-30.
OCTOBER = [n(f"2026-10-{d:02d} {h}") for d in range(1, 31) for h in ("01:00", "13:00")]
OCTOBER.append(n("2026-10-30 22:30"))
NEWEST = n("2026-10-30 22:30")

OCTOBER_CASES = [
    ({"keep_last": 1}, {NEWEST}),
    ({"keep_last": 3}, {NEWEST, n("2026-10-30 13:00"), n("2026-10-30 01:00")}),
    ({"keep_daily": 1}, {NEWEST}),
    ({"keep_daily": 3}, {NEWEST, n("2026-10-29 13:00"), n("2026-10-28 13:00")}),
    ({"keep_weekly": 3}, {NEWEST, n("2026-10-25 13:00"), n("2026-10-18 13:00")}),
    (
        {"keep_weekly": 10},  # only 5 weeks have snapshots: no more is invented
        {
            NEWEST,
            n("2026-10-25 13:00"),
            n("2026-10-18 13:00"),
            n("2026-10-11 13:00"),
            n("2026-10-04 13:00"),
        },
    ),
    ({"keep_monthly": 2}, {NEWEST}),
    ({"keep_monthly": 1, "keep_weekly": 1, "keep_daily": 1, "keep_last": 1}, {NEWEST}),
    (
        {"keep_last": 2, "keep_daily": 2, "keep_weekly": 2},  # unioned, each rule on its own
        {NEWEST, n("2026-10-30 13:00"), n("2026-10-29 13:00"), n("2026-10-25 13:00")},
    ),
    (
        {"keep_last": 4, "keep_daily": 2},  # overlap: the newest of the 29th is also "last"
        {NEWEST, n("2026-10-30 13:00"), n("2026-10-30 01:00"), n("2026-10-29 13:00")},
    ),
    ({"keep_daily": 100}, {n(f"2026-10-{d:02d} 13:00") for d in range(1, 30)} | {NEWEST}),
    ({"keep_last": 1000}, set(OCTOBER)),
]


@pytest.mark.parametrize(("rules", "expected"), OCTOBER_CASES)
def test_october(rules: dict, expected: set[str]) -> None:
    assert kept(OCTOBER, **rules) == expected


# Month and day boundaries, one second apart.
MONTHS = [
    n("2025-12-31 23:00"),
    n("2026-01-15 10:00"),
    n("2026-01-31 23:59:59"),
    n("2026-02-01 00:00:00"),
    n("2026-02-28 12:00"),
    n("2026-03-01 00:00:01"),
]
MONTH_CASES = [
    ({"keep_monthly": 1}, {n("2026-03-01 00:00:01")}),
    (
        {"keep_monthly": 3},
        {n("2026-03-01 00:00:01"), n("2026-02-28 12:00"), n("2026-01-31 23:59:59")},
    ),
    ({"keep_monthly": 12}, set(MONTHS) - {n("2026-01-15 10:00"), n("2026-02-01 00:00:00")}),
    (
        {"keep_daily": 4},
        {
            n("2026-03-01 00:00:01"),
            n("2026-02-28 12:00"),
            n("2026-02-01 00:00:00"),
            n("2026-01-31 23:59:59"),
        },
    ),
]


@pytest.mark.parametrize(("rules", "expected"), MONTH_CASES)
def test_month_and_day_boundaries(rules: dict, expected: set[str]) -> None:
    assert kept(MONTHS, **rules) == expected


# ISO weeks across a new year: Sun 2026-12-27 is 2026-W52; Mon 2026-12-28 .. Sun 2027-01-03
# is 2026-W53; Mon 2027-01-04 starts 2027-W01.
WEEKS = [
    n("2026-12-27 23:59:59"),
    n("2026-12-28 00:00:00"),
    n("2027-01-03 23:00"),
    n("2027-01-04 00:30"),
]
WEEK_CASES = [
    ({"keep_weekly": 1}, {n("2027-01-04 00:30")}),
    ({"keep_weekly": 2}, {n("2027-01-04 00:30"), n("2027-01-03 23:00")}),
    (
        {"keep_weekly": 3},
        {n("2027-01-04 00:30"), n("2027-01-03 23:00"), n("2026-12-27 23:59:59")},
    ),
    ({"keep_monthly": 2}, {n("2027-01-04 00:30"), n("2026-12-28 00:00:00")}),
    ({"keep_daily": 2}, {n("2027-01-04 00:30"), n("2027-01-03 23:00")}),
]


@pytest.mark.parametrize(("rules", "expected"), WEEK_CASES)
def test_iso_week_boundaries(rules: dict, expected: set[str]) -> None:
    assert kept(WEEKS, **rules) == expected


def test_days_without_snapshots_do_not_count() -> None:
    names = [n("2026-11-01 02:00"), n("2026-11-05 02:00"), n("2026-11-05 03:00"),
             n("2026-11-20 02:00")]  # fmt: skip
    assert kept(names, keep_daily=2) == {n("2026-11-20 02:00"), n("2026-11-05 03:00")}
    assert kept(names, keep_daily=3) == set(names) - {n("2026-11-05 02:00")}


def test_reasons_name_every_rule_that_keeps_a_snapshot() -> None:
    rules = Retention(keep_last=2, keep_daily=1, keep_weekly=2, keep_monthly=1)
    _, reasons = select(timed(OCTOBER), rules)
    assert reasons == {
        NEWEST: ["newest", "last 1", "daily 2026-10-30", "weekly 2026-W44", "monthly 2026-10"],
        n("2026-10-30 13:00"): ["last 2"],
        n("2026-10-25 13:00"): ["weekly 2026-W43"],
    }


def test_newest_is_always_kept() -> None:
    for rules in (Retention(keep_last=1), Retention(keep_monthly=1), Retention(keep_weekly=5)):
        keep, reasons = select(timed(OCTOBER), rules)
        assert NEWEST in keep and reasons[NEWEST][0] == "newest"
    keep, reasons = select(timed([NEWEST]), Retention(keep_daily=1))
    assert keep == {NEWEST}


def test_all_zero_rules_keep_everything() -> None:
    assert Retention().empty and not Retention(keep_monthly=1).empty
    keep, reasons = select(timed(OCTOBER), Retention())
    assert keep == set(OCTOBER)
    assert all(why == ["no retention rules"] for why in reasons.values())


def test_no_snapshots() -> None:
    assert select([], Retention(keep_last=3)) == (set(), {})
    assert select([], Retention()) == (set(), {})


def test_input_order_does_not_matter() -> None:
    shuffled = list(OCTOBER)
    random.Random(4).shuffle(shuffled)
    for rules, expected in OCTOBER_CASES:
        assert kept(shuffled, **rules) == expected


def test_times_are_taken_in_utc() -> None:
    # 01:30 at +02:00 is 23:30 UTC the day before: that day's snapshot, not the 2nd's.
    local = timezone(timedelta(hours=2))
    snaps = [
        ("a", datetime(2026, 11, 1, 12, 0, tzinfo=UTC)),
        ("b", datetime(2026, 11, 2, 1, 30, tzinfo=local)),
        ("c", datetime(2026, 11, 2, 9, 0)),  # naive: taken as UTC
    ]
    keep, reasons = select(snaps, Retention(keep_daily=2))
    assert keep == {"b", "c"}
    assert reasons["b"] == ["daily 2026-11-01"] and reasons["c"][-1] == "daily 2026-11-02"


def test_same_second_twins_order_by_suffix() -> None:
    base = "2026-11-26T01-02-03Z"
    names = [base, f"{base}-2", f"{base}-9", f"{base}-10"]
    assert kept(names, keep_last=1) == {f"{base}-10"}
    assert kept(names, keep_last=2) == {f"{base}-10", f"{base}-9"}
    assert sorted(reversed(names), key=sort_key) == names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("2026-11-26T01-02-03Z", datetime(2026, 11, 26, 1, 2, 3, tzinfo=UTC)),
        ("2026-11-26T01-02-03Z-2", datetime(2026, 11, 26, 1, 2, 3, tzinfo=UTC)),
        ("2026-11-26T01-02-03Z-12", datetime(2026, 11, 26, 1, 2, 3, tzinfo=UTC)),
        ("2026-11-26T01-02-03Z-0", None),
        ("2026-11-26T01-02-03Z-pre-restore", None),  # not a backup: the rules never judge it
        ("2026-11-26T01-02-03", None),
        ("2026-13-26T01-02-03Z", None),
        ("2026-02-30T01-02-03Z", None),
        ("x2026-11-26T01-02-03Z", None),
        (".deleting-2026-11-26T01-02-03Z", None),
        ("my-old-backup", None),
        ("", None),
    ],
)
def test_snapshot_time(name: str, expected: datetime | None) -> None:
    assert snapshot_time(name) == expected


def test_name_time_reads_any_suffix_for_display() -> None:
    when = datetime(2026, 11, 26, 1, 2, 3, tzinfo=UTC)
    assert name_time("2026-11-26T01-02-03Z-pre-restore") == when
    assert name_time("2026-11-26T01-02-03Z") == when
    assert name_time("my-old-backup") is None
    assert sort_key("my-old-backup") > sort_key("2099-01-01T00-00-00Z")


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None])
def test_retention_refuses_what_is_not_a_count(bad: object) -> None:
    with pytest.raises(ValueError, match="keep_daily"):
        Retention(keep_daily=bad)  # type: ignore[arg-type]


# --- decide: the destination's listing -> keep (why) and remove -------------------------


def test_decide_keeps_latest_incomplete_and_foreign_names() -> None:
    folders = [
        (n("2026-10-01 01:00"), True),
        (n("2026-10-02 01:00"), True),  # latest, older than the newest
        (n("2026-10-03 01:00"), True),
        (n("2026-10-03 05:00"), True),
        (n("2026-10-04 01:00"), False),  # a run being promoted, or one that died
        ("2026-10-03T02-00-00Z-pre-restore", True),
        ("hand-made", True),
    ]
    decision = decide(folders, n("2026-10-02 01:00"), Retention(keep_last=1))
    assert decision == PruneDecision(
        keep=(
            (n("2026-10-02 01:00"), ("latest",)),
            ("2026-10-03T02-00-00Z-pre-restore", ("not a backup snapshot name: never pruned",)),
            (n("2026-10-03 05:00"), ("newest", "last 1")),
            (n("2026-10-04 01:00"), ("incomplete (no manifest.json): never pruned",)),
            ("hand-made", ("not a backup snapshot name: never pruned",)),
        ),
        remove=(n("2026-10-01 01:00"), n("2026-10-03 01:00")),
    )


def test_decide_newest_complete_is_kept_even_when_latest_is_missing() -> None:
    folders = [(n("2026-10-01 01:00"), True), (n("2026-10-02 01:00"), True)]
    decision = decide(folders, None, Retention(keep_monthly=1))
    assert [name for name, _ in decision.keep] == [n("2026-10-02 01:00")]
    assert decision.remove == (n("2026-10-01 01:00"),)


def test_decide_on_an_empty_destination() -> None:
    assert decide([], None, Retention(keep_last=1)) == PruneDecision((), ())


# --- the `retention:` config option -----------------------------------------------------


def test_retention_option() -> None:
    settings = parse_settings({"retention": {"keep_daily": 7, "keep_monthly": 12}}, SRC)
    assert settings.retention == Retention(keep_daily=7, keep_monthly=12)
    assert Settings().retention == Retention()
    assert parse_settings({"retention": None}, SRC).retention == Retention()
    assert parse_settings({"retention": {}}, SRC).retention == Retention()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"keep_daily": -1}, f"{SRC}: retention.keep_daily: must be a whole number >= 0"),
        ({"keep_daily": "7"}, f"{SRC}: retention.keep_daily: must be a whole number >= 0"),
        ({"keep_weekly": 1.5}, f"{SRC}: retention.keep_weekly: must be a whole number >= 0"),
        ({"keep_last": True}, f"{SRC}: retention.keep_last: must be a whole number >= 0"),
        ({"keep_last": None}, f"{SRC}: retention.keep_last: must be a whole number >= 0"),
        ({"keep_hourly": 3}, f"{SRC}: retention: unknown key 'keep_hourly'"),
        ([7], f"{SRC}: retention: must be a mapping"),
        (7, f"{SRC}: retention: must be a mapping"),
    ],
)
def test_retention_option_errors(value: object, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_settings({"retention": value}, SRC)
    assert str(info.value) == message
