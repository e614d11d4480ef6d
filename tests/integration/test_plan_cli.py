"""`klink-sync plan` on the real-world compose files: classes, reasons, no secrets."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, run_cli

REAL_WORLD = sorted(FIXTURES.glob("*.docker-compose*.yml"))
EXPECTED = {
    "/var/lib/mysql": "cold",
    "/var/www/dms/storage": "hot",
    "/var/www/k-search/var/data-downloads": "hot",
    "/opt/solr/k-search/k-search/data": "hot",
}


def _passwords(text: str) -> set[str]:
    found = re.findall(r"(?:PASSWORD|_PASS)[\"']?\s*[:=]\s*[\"']?([^\"'\s#]+)", text)
    return {p for p in found if len(p) >= 6 and p != "****"}


def test_fixtures_are_the_real_world_files():
    assert {p.name for p in REAL_WORLD} == {
        "k-box.docker-compose.example.yml",
        "k-box.docker-compose.dev.example.yml",
        "k-link.docker-compose.example.yml",
    }


@pytest.mark.parametrize("fixture", REAL_WORLD, ids=lambda p: p.name)
def test_plan_json_classifies_real_world_files_and_hides_passwords(fixture: Path, tmp_path):
    folder = tmp_path / "k-link"
    folder.mkdir()
    shutil.copy(fixture, folder / "docker-compose.yml")
    proc = run_cli("plan", "--folder", folder, "--json")
    plan = json.loads(proc.stdout)
    assert plan["folder"] == str(folder)
    assert plan["compose_files"] == [str(folder / "docker-compose.yml")]
    phases = [s["phase"] for s in plan["steps"]]
    has_hot = any(v["class"] == "hot" for v in plan["volumes"])
    assert phases == ["preflight", *(["hot"] if has_hot else []), "stop", "cold", "start", "finish"]
    assert plan["volumes"], "every real-world file declares volumes"
    for volume in plan["volumes"]:
        assert volume["reason"]
        if volume["type"] == "anonymous":
            assert volume["class"] == "skip"
            assert "anonymous" in volume["reason"]
        else:
            assert volume["class"] == EXPECTED[volume["target"]], volume
            assert volume["target"] in volume["reason"]
            assert volume["source"].startswith(str(folder) + "/storage/")
    text_proc = run_cli("plan", "--folder", folder)
    secrets = _passwords(fixture.read_text())
    assert secrets or "dev" in fixture.name
    for output in (proc.stdout, proc.stderr, text_proc.stdout, text_proc.stderr):
        assert not [s for s in secrets if s in output]
    assert "SERVICE" in text_proc.stdout and "REASON" in text_proc.stdout
