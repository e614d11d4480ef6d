"""report.py: plans and reports as text and JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from klink_sync.classify import ANONYMOUS_REASON, Override
from klink_sync.compose import load_deployment
from klink_sync.errors import UsageError
from klink_sync.models import PassResult, Phase, Report, VolumeClass
from klink_sync.plan import Mode, Plan, build_plan
from klink_sync.report import human_bytes, plan_dict, plan_text, report_text
from klink_sync.rsync import RsyncStats

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GiB = 1024**3


def plan_for(tmp_path: Path, fixture: str, *overrides: Override, mode: Mode = Mode.HOT_COLD
             ) -> Plan:  # fmt: skip
    folder = tmp_path / "k-link"
    folder.mkdir()
    shutil.copy(FIXTURES / fixture, folder / "docker-compose.yml")
    return build_plan(load_deployment(folder), overrides, mode=mode)


# --- human_bytes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1024**2 - 1, "1024.0 KiB"),
        (1024**2, "1.0 MiB"),
        (5 * GiB + GiB // 2, "5.5 GiB"),
        (3 * 1024**4, "3.0 TiB"),
        (2048 * 1024**4, "2048.0 TiB"),
        (-2048, "-2.0 KiB"),
    ],
)
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


# --- plan_dict ---------------------------------------------------------------------------


def test_plan_dict_k_box(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, "k-box.docker-compose.example.yml")
    folder = str(plan.folder)
    data = plan_dict(plan)

    assert {"folder", "compose_files", "volumes", "steps"} <= set(data)
    assert data["folder"] == folder
    assert data["compose_files"] == [f"{folder}/docker-compose.yml"]
    assert data["mode"] == "hot-cold"
    assert data["project"] == "k-link"
    assert sorted(data["volumes"], key=lambda v: v["service"]) == [
        {"service": "database", "source": f"{folder}/storage/database",
         "target": "/var/lib/mysql", "type": "bind", "class": "cold",
         "reason": "container path /var/lib/mysql is a MariaDB/MySQL database"},
        {"service": "engine", "source": f"{folder}/storage/index",
         "target": "/opt/solr/k-search/k-search/data", "type": "bind", "class": "hot",
         "reason": "container path /opt/solr/k-search/k-search/data is the Solr search index"},
        {"service": "kbox", "source": f"{folder}/storage/data",
         "target": "/var/www/dms/storage", "type": "bind", "class": "hot",
         "reason": "container path /var/www/dms/storage is the K-Box document storage"},
    ]  # fmt: skip
    assert [s["phase"] for s in data["steps"]] == [
        "preflight", "hot", "stop", "cold", "start", "finish",
    ]  # fmt: skip
    assert all(isinstance(s["text"], str) and s["text"] for s in data["steps"])
    assert data["units"][0] == {
        "dest": "folder", "source": folder, "class": "cold",
        "excludes": ["storage/data", "storage/database", "storage/index"],
    }  # fmt: skip
    assert json.loads(json.dumps(data)) == data  # plain JSON types only


def test_plan_dict_anonymous_volumes_and_cold_mode(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, "k-box.docker-compose.dev.example.yml", mode=Mode.COLD)
    data = plan_dict(plan)

    assert data["mode"] == "cold"
    assert {(v["service"], v["source"], v["type"], v["class"]) for v in data["volumes"]} == {
        ("mariadb", "", "anonymous", "skip"),
        ("engine", "", "anonymous", "skip"),
    }
    assert {v["reason"] for v in data["volumes"]} == {ANONYMOUS_REASON}
    assert "hot" not in [s["phase"] for s in data["steps"]]


def test_plan_dict_shows_overrides(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, "k-link.docker-compose.example.yml",
                    Override(VolumeClass.SKIP, service="engine", reason="rebuilt by reindex"))
    engine = next(v for v in plan_dict(plan)["volumes"] if v["service"] == "engine")
    assert (engine["class"], engine["reason"]) == ("skip", "config override: rebuilt by reindex")


# --- plan_text ---------------------------------------------------------------------------


def test_plan_text_table(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, "k-box.docker-compose.example.yml")
    text = plan_text(plan)
    lines = text.splitlines()

    assert lines[0] == f"folder:  {plan.folder}"
    assert lines[1] == "project: k-link"
    assert lines[2] == f"compose: {plan.folder}/docker-compose.yml"
    header = next(line for line in lines if line.startswith("SERVICE"))
    assert header.split() == ["SERVICE", "SOURCE", "TARGET", "CLASS", "REASON"]
    for c in plan.volumes:
        row = next(line for line in lines if line.startswith(c.volume.service + " "))
        assert c.volume.source in row
        assert c.volume.target in row
        assert f"  {c.cls.value}  " in row
        assert row.endswith(c.reason)
    # the columns line up: CLASS starts at the same place on every row
    column = header.index("CLASS")
    rows = lines[lines.index(header) + 1 : lines.index(header) + 1 + len(plan.volumes)]
    assert {row[column:].split()[0] for row in rows} == {"hot", "cold"}


def test_plan_text_steps_are_numbered_in_order(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, "k-box.docker-compose.example.yml")
    lines = plan_text(plan).splitlines()
    steps = lines[lines.index("steps:") + 1 :]
    assert [line.split()[:2] for line in steps] == [
        ["1.", "preflight"], ["2.", "hot"], ["3.", "stop"], ["4.", "cold"],
        ["5.", "start"], ["6.", "finish"],
    ]  # fmt: skip
    assert steps[2].endswith("stop every service of project 'k-link' (timeout 120s)")


def test_plan_text_anonymous_volumes(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, "k-box.docker-compose.dev.example.yml")
    text = plan_text(plan)
    assert "(anonymous)" in text
    assert text.count("  skip  ") == 2
    assert ANONYMOUS_REASON in text


def test_a_compose_file_without_volumes_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "k-link"
    folder.mkdir()
    (folder / "docker-compose.yml").write_text("services:\n  web:\n    image: nginx\n")
    with pytest.raises(UsageError, match=r"docker-compose.yml: no service declares a volume"):
        build_plan(load_deployment(folder))


# --- reports -----------------------------------------------------------------------------


def sample_report() -> Report:
    return Report(
        mode=Mode.HOT_COLD,
        result="ok",
        dest="/mnt/backup",
        snapshot="2026-11-26T01-02-03Z",
        downtime_seconds=12.34,
        phases={"preflight": 0.5, "hot": 300.0, "stop": 4.0, "cold": 6.25, "start": 2.0,
                "finish": 1.0},  # fmt: skip
        services_before=("database", "engine", "kbox"),
        services_after=("database", "engine", "kbox"),
        passes=(
            PassResult(Phase.HOT, "folder/storage/data", 200.0, 24,
                       RsyncStats(files=10, transferred_size=5 * GiB),
                       warning="some files vanished"),
            PassResult(Phase.HOT, "folder/storage/index", 100.0, 0,
                       RsyncStats(transferred_size=GiB // 2)),
            PassResult(Phase.COLD, "folder", 1.0, 0, RsyncStats(transferred_size=1024)),
            PassResult(Phase.COLD, "folder/storage/database", 5.0, 0,
                       RsyncStats(transferred_size=3 * 1024**2)),
            PassResult(Phase.COLD, "folder/storage/data (ctime refresh)", 0.25, 0,
                       RsyncStats(transferred_size=1024), refreshed=1),
        ),  # fmt: skip
        warnings=("hot pass folder/storage/data: some files vanished",),
    )


def test_bytes_moved_per_phase() -> None:
    report = sample_report()
    assert report.bytes_moved(Phase.HOT) == 5 * GiB + GiB // 2
    assert report.bytes_moved(Phase.COLD) == 1024 + 3 * 1024**2 + 1024
    assert report.bytes_moved(Phase.STOP) == 0


def test_report_text() -> None:
    text = report_text(sample_report())
    lines = text.splitlines()

    assert lines[0] == "klink-sync hot-cold: ok, snapshot 2026-11-26T01-02-03Z in /mnt/backup"
    assert "  hot          300.0s   copied 5.5 GiB" in lines
    assert "  cold           6.2s   copied 3.0 MiB" in lines
    assert "  stop           4.0s" in lines
    assert "  DOWNTIME      12.3s   (stop until running again)" in lines
    assert "services before: database, engine, kbox" in lines
    assert "services after:  database, engine, kbox" in lines
    assert "warning: hot pass folder/storage/data: some files vanished" in lines
    phase_names = [line.split()[0] for line in lines[1:7]]
    assert phase_names == ["preflight", "hot", "stop", "cold", "start", "finish"]


def test_report_text_cold_run_without_snapshot_or_services() -> None:
    report = Report(
        mode=Mode.COLD, result="ok", dest="/mnt/backup", snapshot=None, downtime_seconds=61.0,
        phases={"preflight": 0.1, "cold": 60.0}, services_before=(), services_after=(),
        passes=(PassResult(Phase.COLD, "folder", 60.0, 0, RsyncStats(transferred_size=0)),),
    )  # fmt: skip
    lines = report_text(report).splitlines()
    assert lines[0] == "klink-sync cold: ok"
    assert "  cold          60.0s   copied 0 B" in lines
    assert "  DOWNTIME      61.0s   (stop until running again)" in lines
    assert "services before: none" in lines
    assert "services after:  none" in lines
    assert not any(line.startswith("warning") for line in lines)
    assert not any(line.strip().startswith("hot") for line in lines)


def test_report_to_dict() -> None:
    data = sample_report().to_dict()

    assert data["bytes_moved"] == {"hot": 5 * GiB + GiB // 2, "cold": 2048 + 3 * 1024**2}
    assert data["mode"] == "hot-cold"
    assert data["result"] == "ok"
    assert data["snapshot"] == "2026-11-26T01-02-03Z"
    assert data["downtime_seconds"] == 12.34
    assert data["phases"]["hot"] == 300.0
    assert data["passes"][0] == {
        "phase": "hot", "unit": "folder/storage/data", "seconds": 200.0, "exit_code": 24,
        "stats": {"files": 10, "regular_files_transferred": 0, "total_size": 0,
                  "transferred_size": 5 * GiB, "literal_bytes": 0, "deleted": 0},
        "refreshed": 0, "warning": "some files vanished", "round": 1,
    }  # fmt: skip
    assert data["passes"][4]["refreshed"] == 1
    as_json = json.loads(json.dumps(data))
    assert as_json["warnings"] == ["hot pass folder/storage/data: some files vanished"]
    assert as_json["services_before"] == ["database", "engine", "kbox"]
    assert as_json["bytes_moved"] == data["bytes_moved"]
