"""metrics.py: the textfile is valid Prometheus text format, written atomically."""

from __future__ import annotations

import os

import pytest
from prometheus_client.parser import text_string_to_metric_families

from klink_sync import metrics
from klink_sync.hooks import count_snapshots
from klink_sync.models import PassResult, Phase, Report
from klink_sync.plan import Mode
from klink_sync.rsync import RsyncStats

DEST = "/mnt/backup/k-link"


def _parse(text: str) -> dict[str, dict[tuple, float]]:
    """name -> {sorted label items: value}, by Prometheus' own parser."""
    return {
        family.name: {tuple(sorted(s.labels.items())): s.value for s in family.samples}
        for family in text_string_to_metric_families(text)
    }


PUSHED = {"result": "ok", "snapshot": "S", "added_bytes": 4096, "snapshots_total": 5}


def _ok(**changes) -> metrics.RunMetrics:
    values = dict(success=True, finished=1_764_000_000.5, duration=42.0, dest=DEST,
                  downtime=3.25, freeze=0.0, phases={"preflight": 0.5, "hot": 20.0, "cold": 2.0},
                  transferred={"hot": 1000, "cold": 20}, snapshot_bytes=123_456, snapshots=4,
                  recovered=0, offsite=PUSHED)
    values.update(changes)  # fmt: skip
    return metrics.RunMetrics(**values)


def test_a_successful_run() -> None:
    parsed = _parse(metrics.render(_ok(), last_success=1.0))
    d = (("dest", DEST),)
    assert parsed["klink_sync_last_run_success"] == {d: 1}
    assert parsed["klink_sync_last_run_timestamp_seconds"] == {d: 1_764_000_000.5}
    assert parsed["klink_sync_last_success_timestamp_seconds"] == {d: 1_764_000_000.5}
    assert parsed["klink_sync_last_run_duration_seconds"] == {d: 42.0}
    assert parsed["klink_sync_downtime_seconds"] == {d: 3.25}
    assert parsed["klink_sync_freeze_seconds"] == {d: 0.0}
    assert parsed["klink_sync_phase_duration_seconds"] == {
        (("dest", DEST), ("phase", "preflight")): 0.5,
        (("dest", DEST), ("phase", "hot")): 20.0,
        (("dest", DEST), ("phase", "cold")): 2.0,
    }
    assert parsed["klink_sync_transferred_bytes"] == {
        (("dest", DEST), ("pass", "hot")): 1000, (("dest", DEST), ("pass", "cold")): 20}
    assert parsed["klink_sync_snapshot_size_bytes"] == {d: 123_456}
    assert parsed["klink_sync_snapshots_total"] == {d: 4}


def test_every_metric_has_help_and_type_before_its_samples() -> None:
    lines = metrics.render(_ok(), None).splitlines()
    for name in metrics.METRICS:
        full = "klink_sync_" + name
        first = next(i for i, line in enumerate(lines) if line.startswith(full + "{"))
        assert lines[first - 2].startswith(f"# HELP {full} ")
        assert lines[first - 1] == f"# TYPE {full} gauge"
        assert full.endswith(("_seconds", "_bytes", "_total", "_success"))


def test_offsite_gauges_after_a_push_and_after_a_failed_one() -> None:
    d = (("dest", DEST),)
    parsed = _parse(metrics.render(_ok(), last_success=1.0, last_push=2.0))
    assert parsed["klink_sync_offsite_last_push_success"] == {d: 1}
    assert parsed["klink_sync_offsite_last_success_timestamp_seconds"] == {d: 1_764_000_000.5}
    assert parsed["klink_sync_offsite_added_bytes"] == {d: 4096}
    assert parsed["klink_sync_offsite_snapshots_total"] == {d: 5}
    failed = _ok(offsite={"result": "failed", "error": "offsite push: unreachable"})
    parsed = _parse(metrics.render(failed, last_success=1.0, last_push=2.0))
    assert parsed["klink_sync_offsite_last_push_success"] == {d: 0}
    assert parsed["klink_sync_offsite_last_success_timestamp_seconds"] == {d: 2.0}
    assert "klink_sync_offsite_added_bytes" not in parsed
    assert not any("offsite" in k for k in _parse(metrics.render(_ok(offsite={}), None)))


def test_the_last_offsite_success_survives_a_failed_push_in_the_file(tmp_path) -> None:
    path = tmp_path / "k.prom"
    metrics.write(path, _ok())
    metrics.write(path, _ok(finished=1_764_100_000.0, offsite={"result": "failed"}))
    parsed = _parse(path.read_text())
    d = (("dest", DEST),)
    assert parsed["klink_sync_offsite_last_success_timestamp_seconds"] == {d: 1_764_000_000.5}


def test_a_failed_run_keeps_the_last_success_and_says_nothing_it_does_not_know() -> None:
    failed = metrics.RunMetrics(success=False, finished=2_000.0, duration=1.5, dest=DEST,
                                snapshots=3)  # fmt: skip
    parsed = _parse(metrics.render(failed, last_success=1_000.0))
    d = (("dest", DEST),)
    assert parsed["klink_sync_last_run_success"] == {d: 0}
    assert parsed["klink_sync_last_run_timestamp_seconds"] == {d: 2_000.0}
    assert parsed["klink_sync_last_success_timestamp_seconds"] == {d: 1_000.0}
    assert parsed["klink_sync_snapshots_total"] == {d: 3}
    for absent in ("downtime_seconds", "phase_duration_seconds", "transferred_bytes",
                   "snapshot_size_bytes"):  # fmt: skip
        assert "klink_sync_" + absent not in parsed


def test_a_first_run_that_fails_has_no_last_success() -> None:
    text = metrics.render(metrics.RunMetrics(False, 2_000.0, 1.0, DEST), last_success=None)
    assert "last_success" not in text


def test_previous_success_is_read_back_for_the_same_destination_only() -> None:
    text = metrics.render(_ok(finished=1_700_000_000.25), None)
    assert metrics.previous_success(text, DEST) == 1_700_000_000.25
    assert metrics.previous_success(text, "/elsewhere") is None
    assert metrics.previous_success("", DEST) is None
    assert metrics.previous_success("garbage {{{\n", DEST) is None


def test_label_values_are_escaped() -> None:
    odd = 'C:\\backup "nightly"\nsecond line'
    parsed = _parse(metrics.render(_ok(dest=odd), None))
    assert parsed["klink_sync_last_run_success"] == {(("dest", odd),): 1}
    assert metrics.previous_success(metrics.render(_ok(dest=odd, finished=7.0), None), odd) == 7


def test_write_is_atomic_and_keeps_the_last_success(tmp_path) -> None:
    path = tmp_path / "klink_sync.prom"
    metrics.write(path, _ok(finished=100.0))
    metrics.write(path, metrics.RunMetrics(False, 200.0, 1.0, DEST))
    parsed = _parse(path.read_text())
    assert parsed["klink_sync_last_success_timestamp_seconds"] == {(("dest", DEST),): 100.0}
    assert parsed["klink_sync_last_run_success"] == {(("dest", DEST),): 0}
    assert os.listdir(tmp_path) == ["klink_sync.prom"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_write_or_warn_never_raises(tmp_path, caplog) -> None:
    path = tmp_path / "missing" / "klink_sync.prom"
    metrics.write_or_warn(path, _ok())
    assert "not written" in caplog.text
    assert not (tmp_path / "missing").exists()


def _pass(phase: Phase, unit: str, transferred: int, total: int, refreshed: int = 0):
    return PassResult(phase, unit, 1.0, 0, RsyncStats(transferred_size=transferred,
                                                       total_size=total), refreshed=refreshed)


def test_from_report() -> None:
    report = Report(
        mode=Mode.HOT_COLD, result="ok", dest=DEST, snapshot="2026-11-26T01-02-03Z",
        downtime_seconds=4.5, phases={"preflight": 0.1, "hot": 9.0, "stop": 1.0, "cold": 2.0},
        services_before=("db",), services_after=("db",),
        passes=(
            _pass(Phase.HOT, "folder/storage/data", 900, 1000),
            _pass(Phase.COLD, "folder", 10, 5000),
            _pass(Phase.COLD, "folder/storage/data", 30, 1030),
            _pass(Phase.COLD, "folder/storage/data (ctime refresh)", 30, 30, refreshed=1),
        ),
        checksums={"seconds": 0.75},
    )  # fmt: skip
    m = metrics.from_report(report, True, 1_000.0, 60.0, 2)
    assert m.transferred == {"hot": 900, "cold": 70}
    assert m.snapshot_bytes == 6030  # the cold pass saw every file; a refresh is not more files
    assert m.phases == {"preflight": 0.1, "hot": 9.0, "stop": 1.0, "cold": 2.0, "checksums": 0.75}
    assert (m.downtime, m.snapshots, m.dest, m.success) == (4.5, 2, DEST, True)


@pytest.mark.parametrize("made", [0, 2])
def test_count_snapshots_counts_complete_ones(tmp_path, made: int) -> None:
    for i in range(made):
        snap = tmp_path / "snapshots" / f"2026-11-2{i}T00-00-00Z"
        snap.mkdir(parents=True)
        (snap / "manifest.json").write_text("{}")
    (tmp_path / "snapshots").mkdir(exist_ok=True)
    (tmp_path / "snapshots" / "2026-11-29T00-00-00Z").mkdir()  # no manifest: incomplete
    assert count_snapshots(str(tmp_path)) == made
