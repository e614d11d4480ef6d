"""scripts/bench: the pure parts of measuring (downtime from the wrapper's events) and of
the methods (klink-sync's report kept in a row, the bare script built from --dry-run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.bench.common import BenchError
from scripts.bench.measure import downtime_fields
from scripts.bench.methods import command_lines, from_klink_report, parse_dry_run


def test_downtime_from_first_stop_to_the_probe_after_the_last_start():
    events = [("stop", 100.0), ("start", 103.0), ("up", 104.0)]
    got = downtime_fields(events, began_wall=99.0, began=10.0, ended=14.0,
                          up_after=lambda t: t + 1.5)  # fmt: skip
    assert got == {"downtime": 5.5, "stop_to_start": 4.0, "start_to_up": 1.5, "wall": 6.5}


def test_no_stop_no_downtime():
    got = downtime_fields([("up", 5.0)], 0.0, 10.0, 12.5, up_after=lambda t: 1 / 0)
    assert got == {"downtime": None, "wall": 2.5}


def test_klink_report_kept_in_a_row():
    report = {"downtime_seconds": 3.2, "phases": {"cold": 1.0}, "checksums": {"seconds": 0.4},
              "snapshot": "s1", "passes": [
                  {"phase": "hot", "unit": "data", "round": 2, "seconds": 5.0},
                  {"phase": "cold", "unit": "data", "seconds": 0.5},
                  {"phase": "cold", "unit": "data", "seconds": 0.25}]}  # fmt: skip
    got = from_klink_report(report)
    assert got["self_downtime"] == 3.2 and got["checksums_s"] == 0.4
    assert got["cold_units"] == {"data": 0.75} and got["hot_rounds"] == 2
    assert got["bytes_moved"] == {} and got["warnings"] == []


DRY_RUN = """plan: hot-cold
commands
  [hot 1] rsync -aHAX --link-dest=/k/latest/folder/d /f/d/ /k/.staging/folder/d/
  [stop] /w/compose stop -t 120
  [cold] rsync -aHAX --delete /f/d/ /k/.staging/folder/d/
  [start] /w/compose start '<services running before>'
"""


def test_bare_script_lines_from_dry_run():
    cmds = parse_dry_run(DRY_RUN)
    assert [ph for ph, _ in cmds] == ["hot", "stop", "cold", "start"]
    lines = command_lines(cmds, "/o", Path("/w/compose"))
    assert lines[0] == 'for round in $(seq "${1:-1}"); do'
    assert "else rsync -aHAX /f/d/ /k/.staging/folder/d/ >/o; fi" in lines[2]
    assert lines[3] == 'done; [ "${2:-0}" = 1 ] && sync'
    assert lines[4] == "/w/compose stop -t 120 >/dev/null 2>&1 || fail=1"
    assert lines[6] == "rsync -aH --delete /f/d/ /k/.staging/folder/d/ >/dev/null || fail=1"
    assert lines[7] == "/w/compose start database engine kbox >/dev/null 2>&1 || fail=1"
    assert lines[8].startswith("for i in $(seq 600); do ids=$(/w/compose ps -q)")


def test_dry_run_without_a_stop_is_refused():
    with pytest.raises(BenchError):
        parse_dry_run("commands\n  [hot] rsync a b\n")


def test_freeze_from_the_first_pause_to_the_last_unpause():
    from scripts.bench.probe import freeze_fields

    events = [{"action": "pause", "service": "database", "t": 10.0},
              {"action": "pause", "service": "kbox", "t": 10.1},
              {"action": "unpause", "service": "database", "t": 10.6},
              {"action": "unpause", "service": "kbox", "t": 10.75}]  # fmt: skip
    got = freeze_fields(events)
    assert round(got["freeze"], 2) == 0.75 and got["frozen"] == ["database", "kbox"]
    assert got["container_events"] == {"database": ["pause", "unpause"],
                                       "kbox": ["pause", "unpause"]}  # fmt: skip
    stop = freeze_fields([{"action": "stop", "service": "kbox", "t": 1.0}])
    assert stop["freeze"] is None and stop["frozen"] == []


def test_users_fields_from_the_sample_probe_summary():
    from scripts.bench.probe import users_fields

    summary = {"requests": 50, "failed": 7, "slow": 1, "max_latency": 2.5,
               "failed_windows": [(1.0, 2.0), (5.0, 5.5)], "errors": {"refused": 7}}  # fmt: skip
    got = users_fields(summary)
    assert got == {"http_requests": 50, "http_failed": 7, "http_slow": 1,
                   "http_max_latency": 2.5, "http_failing_s": 1.5,
                   "http_errors": {"refused": 7}}  # fmt: skip


def test_the_sample_probe_loads_by_its_path():
    from scripts.bench.probe import sample_probe

    probe = sample_probe()
    assert probe.Probe("bench-1").target == "bench-1" and probe.PORT == 8080


def test_freeze_and_commit_block_kept_from_the_report():
    from scripts.bench.methods import STOPLESS

    pause = from_klink_report({"mode": "hot-cold-pause", "downtime_seconds": 0.0,
                               "freeze_seconds": 0.4})  # fmt: skip
    assert pause["self_freeze"] == 0.4 and pause["commit_block"] is None
    assert pause["mode"] == "hot-cold-pause" and pause["self_downtime"] == 0.0
    live = from_klink_report({"mode": "live", "freeze_seconds": 0.2, "commit_block_seconds": 0.03})
    assert live["commit_block"] == 0.03
    nested = from_klink_report({"mode": "live", "database": {"commit_block_seconds": 0.05}})
    assert nested["commit_block"] == 0.05
    assert "live" in STOPLESS and "hot-cold --pause" in STOPLESS and "hot-cold" not in STOPLESS
