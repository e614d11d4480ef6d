"""verify --database on a real snapshot of the sample stack: a throwaway MariaDB on a copy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import KLINK_SYNC, run_cli
from tests.e2e.test_hot_cold_e2e import PASSWORDS

LABEL = "label=klink-sync.verify=1"


def _snapshot(dest: Path) -> Path:
    return dest / "snapshots" / os.path.basename(os.readlink(dest / "latest"))


def _verify_containers() -> set[str]:
    out = subprocess.run(["docker", "ps", "-aq", "--filter", LABEL], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    return set(out.split())


def _interrupted_verify(dest: Path) -> int:
    before = _verify_containers()
    argv = [KLINK_SYNC, "verify", "--dest", str(dest), "--database"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _verify_containers() - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _verify_containers() - before, "verify --database started no container"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert "interrupted by SIGTERM" in err, err
    return proc.returncode


def test_verify_database_passes_then_fails_on_truncated_files(
    sample_stack: Path, compose_cmd: str, tmp_path: Path
):
    dest = tmp_path / "backup"
    run_cli("hot-cold", "--folder", sample_stack, "--dest", dest,
            env={"KLINK_SYNC_COMPOSE": compose_cmd})  # fmt: skip
    snap = _snapshot(dest)
    datadir = snap / "folder/storage/database"
    before = _verify_containers()

    proc = run_cli("verify", "--dest", dest, "--database", "--json")
    result = json.loads(proc.stdout)
    assert result["ok"] and result["missing"] == result["changed"] == result["extra"] == []
    [db] = result["database"]
    assert db["service"] == "database" and db["ok"] and db["tables"] > 10, db
    assert not db["crash_recovery"], "a cold copy needs no crash recovery"
    record = json.loads((snap / "verified.json").read_text())
    assert record["database"] is True and record["sample"] == 100
    assert not [p for p in PASSWORDS if p in proc.stdout + proc.stderr]
    # the snapshot was not written (its checksums still hold); nothing left behind
    assert _verify_containers() <= before
    assert not list(dest.glob(".verify-*"))
    run_cli("verify", "--dest", dest)

    # stopped by SIGTERM while its server runs: the container and the copy still go
    assert _interrupted_verify(dest) == 1
    assert _verify_containers() <= before
    assert not list(dest.glob(".verify-*"))

    # one table's file cut short: the server starts, the check must find it
    table = datadir / "dms/documents.ibd"
    # (halving it may only drop preallocated free pages: keep the 3 header pages and
    # lose page 3, the clustered index root, and all after it)
    assert table.stat().st_size > 3 * 16384
    os.truncate(table, 3 * 16384)
    proc = run_cli("verify", "--dest", dest, "--database", "--json", check=1)
    [db] = json.loads(proc.stdout)["database"]
    assert not db["ok"] and db["reason"].startswith("dms.documents: "), db
    assert "database check failed (database): dms.documents: " in proc.stderr

    # damage the database files of the snapshot itself
    damaged = [p for p in datadir.rglob("*") if p.name == "ibdata1" or p.suffix == ".ibd"]
    assert any(p.name == "documents.ibd" for p in damaged)
    for path in damaged:
        os.truncate(path, path.stat().st_size // 2)
    proc = run_cli("verify", "--dest", dest, "--database", check=1)
    lines = proc.stdout.splitlines()
    [db_line] = [line for line in lines if line.startswith("database (database):")]
    assert "FAILED: server did not start: " in db_line, proc.stdout
    assert any(line.startswith("changed: folder/storage/database/") for line in lines)
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith(f"klink-sync: error: snapshot {snap.name}: damaged (")
    assert "database check failed (database): server did not start" in error
    assert _verify_containers() <= before
    assert not list(dest.glob(".verify-*"))
