"""SHA256SUMS and `klink-sync verify` on real snapshots (real rsync, stand-in compose)."""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
from pathlib import Path

import pytest

from klink_sync import checksums, dbcheck
from tests.conftest import run_cli
from tests.integration.test_hot_cold import ALL, latest, make_deployment, set_running

DOC = "folder/storage/data/documents/003.bin"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_deployment(tmp_path)


@pytest.fixture
def dest(folder: Path, tmp_path: Path, klink_env: dict) -> Path:
    """A destination holding one hot-cold snapshot of the stand-in deployment."""
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env)
    return dest


def backup(folder: Path, dest: Path, env: dict) -> dict:
    return json.loads(run_cli("hot-cold", "--folder", folder, "--dest", dest, "--json",
                              env=env).stdout)  # fmt: skip


def listed(snapshot: Path) -> dict[bytes, str]:
    return checksums.read_sums(snapshot / "SHA256SUMS")


def test_intact_snapshot_passes_and_records_it(dest):
    snap = latest(dest)
    proc = run_cli("verify", "--dest", dest)
    assert f"snapshot {snap.name}: intact" in proc.stdout
    record = json.loads((snap / "verified.json").read_text())
    assert set(record) == {"time", "sample", "files"}
    assert record["sample"] == 100 and record["files"] == len(listed(snap)) == 55
    assert record["time"].endswith("Z")
    assert stat.S_IMODE((snap / "SHA256SUMS").stat().st_mode) == 0o600
    result = json.loads(run_cli("verify", "--dest", dest, snap.name, "--json").stdout)
    assert result["ok"] and result["checked"] == 55 and result["bytes_read"] > 800_000
    assert result["missing"] == result["changed"] == result["extra"] == []


def test_sums_cover_every_regular_file_and_nothing_else(dest):
    snap = latest(dest)
    os.symlink("docker-compose.yml", snap / "folder/link")  # links are not files to hash
    names = set(listed(snap))
    on_disk = {
        os.path.relpath(os.path.join(d, f), snap).encode()
        for top in ("folder", "volumes") for d, _, fs in os.walk(snap / top) for f in fs
        if stat.S_ISREG(os.lstat(os.path.join(d, f)).st_mode)
    }  # fmt: skip
    assert names == on_disk
    assert b"folder/.env" in names and b"folder/storage/database/ibdata1" in names
    assert not any(n.split(b"/")[0] not in (b"folder", b"volumes") for n in names)
    run_cli("verify", "--dest", dest)


def test_flipped_byte_is_reported_as_changed(dest):
    snap = latest(dest)
    with open(snap / DOC, "r+b") as f:
        f.seek(5000)
        byte = f.read(1)
        f.seek(5000)
        f.write(bytes([byte[0] ^ 0x01]))
    proc = run_cli("verify", "--dest", dest, check=1)
    assert proc.stdout.splitlines().count(f"changed: {DOC}") == 1
    assert "missing:" not in proc.stdout and "extra:" not in proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == (
        f"klink-sync: error: snapshot {snap.name}: damaged (0 missing, 1 changed, 0 extra)"
    )
    assert not (snap / "verified.json").exists()


def test_deleted_file_is_reported_as_missing(dest):
    snap = latest(dest)
    (snap / DOC).unlink()
    proc = run_cli("verify", "--dest", dest, "--json", check=1)
    result = json.loads(proc.stdout)
    assert result["missing"] == [DOC] and result["changed"] == result["extra"] == []
    assert not result["ok"]


def test_added_file_is_reported_as_extra(dest):
    snap = latest(dest)
    (snap / "folder/storage/data/documents/new.bin").write_bytes(b"not backed up")
    (snap / "volumes/x").mkdir(parents=True)
    (snap / "volumes/x/stray").write_bytes(b"")
    proc = run_cli("verify", "--dest", dest, check=1)
    lines = proc.stdout.splitlines()
    assert "extra: folder/storage/data/documents/new.bin" in lines
    assert "extra: volumes/x/stray" in lines
    assert "changed:" not in proc.stdout and "missing:" not in proc.stdout


def test_sample_rereads_a_tenth_and_still_finds_missing_and_extra(dest):
    snap = latest(dest)
    result = json.loads(run_cli("verify", "--dest", dest, "--sample", "10", "--json").stdout)
    assert result["ok"] and result["sample"] == 10
    assert result["checked"] == math.ceil(55 * 0.10) == 6
    sizes = sorted((p.stat().st_size for p in snap.rglob("*") if p.is_file()
                    and p.parent != snap), reverse=True)  # fmt: skip
    assert 0 < result["bytes_read"] <= sum(sizes[:6]) < sum(sizes)  # a sample, not all
    record = json.loads((snap / "verified.json").read_text())
    assert record["sample"] == 10 and record["files"] == 6
    (snap / DOC).unlink()
    (snap / "folder/extra").write_bytes(b"x")
    result = json.loads(run_cli("verify", "--dest", dest, "--sample", "10", "--json",
                                check=1).stdout)  # fmt: skip
    assert result["missing"] == [DOC] and result["extra"] == ["folder/extra"]


def test_unchanged_second_run_hashes_nothing_and_sha256sum_agrees(folder, dest, klink_env):
    first = latest(dest)
    report = backup(folder, dest, klink_env)
    second = latest(dest)
    assert second != first
    sums = report["checksums"]
    assert sums["hashed_bytes"] == 0 and sums["hashed_files"] == 0
    assert sums["files"] == sums["reused"] == 55
    assert (second / "SHA256SUMS").read_bytes() == (first / "SHA256SUMS").read_bytes()
    for snap in (first, second):
        check = subprocess.run(["sha256sum", "-c", "--quiet", "--strict", "SHA256SUMS"],
                               cwd=snap, capture_output=True, text=True)  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr
    run_cli("verify", "--dest", dest, "--all")


def test_changed_file_is_the_only_one_hashed_again(folder, dest, klink_env):
    changed = folder / "storage/data/documents/007.bin"
    changed.write_bytes(os.urandom(12_345))
    (folder / "storage/data/documents/new.bin").write_bytes(os.urandom(777))
    report = backup(folder, dest, klink_env)
    sums = report["checksums"]
    assert (sums["hashed_files"], sums["hashed_bytes"]) == (2, 12_345 + 777)
    assert sums["files"] == 56 and sums["reused"] == 54
    run_cli("verify", "--dest", dest)


def test_odd_names_are_written_exactly_as_sha256sum_writes_them(folder, tmp_path, klink_env):
    docs = folder / "storage/data/documents"
    odd = [b"new\nline", b"back\\slash", b"carriage\rreturn", b"sp ace ", b"\xff\xfebytes"]
    for name in odd:
        with open(os.path.join(os.fsencode(docs), name), "wb") as f:
            f.write(name * 10)
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env)
    snap = latest(dest)
    ours = (snap / "SHA256SUMS").read_bytes().splitlines(keepends=True)
    for name in odd:
        rel = b"folder/storage/data/documents/" + name
        gnu = subprocess.run([b"sha256sum", rel], cwd=snap, capture_output=True, check=True)
        assert gnu.stdout in ours
    check = subprocess.run(["sha256sum", "-c", "--quiet", "--strict", "SHA256SUMS"], cwd=snap,
                           capture_output=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    run_cli("verify", "--dest", dest)
    os.unlink(os.path.join(os.fsencode(snap), b"folder/storage/data/documents/new\nline"))
    proc = run_cli("verify", "--dest", dest, check=1)
    assert "missing: folder/storage/data/documents/new\\nline" in proc.stdout.splitlines()


def test_all_reports_each_snapshot_and_fails_if_one_is_damaged(folder, dest, klink_env):
    first = latest(dest)
    backup(folder, dest, klink_env)
    (first / "folder/stray").write_bytes(b"x")
    rows = json.loads(run_cli("verify", "--dest", dest, "--all", "--json", check=1).stdout)
    assert [r["ok"] for r in rows] == [False, True]
    assert rows[0]["extra"] == ["folder/stray"]


def test_usage_errors_exit_2(dest):
    for args in (["no-such-snapshot"], ["--sample", "0"], ["--sample", "101"],
                 ["latest", "--all"]):  # fmt: skip
        proc = run_cli("verify", "--dest", dest, *args, check=2)
        assert len(proc.stderr.strip().splitlines()) == 1
    run_cli("verify", check=2, env={"KLINK_SYNC_DEST": ""})


def test_snapshot_without_checksums_or_manifest_is_refused(dest):
    snap = latest(dest)
    (snap / "SHA256SUMS").unlink()
    proc = run_cli("verify", "--dest", dest, check=1)
    assert "has no checksums" in proc.stderr
    incomplete = dest / "snapshots" / "2020-01-01T00-00-00Z"
    (incomplete / "folder").mkdir(parents=True)
    proc = run_cli("verify", "--dest", dest, incomplete.name, check=1)
    assert "incomplete" in proc.stderr and "manifest.json" in proc.stderr


def test_damaged_previous_sums_are_not_reused(folder, dest, klink_env):
    (latest(dest) / "SHA256SUMS").write_bytes(b"garbage\n")
    report = backup(folder, dest, klink_env)
    assert report["checksums"]["hashed_files"] == report["checksums"]["files"] == 55
    run_cli("verify", "--dest", dest)


def test_checksum_failure_is_a_warning_not_a_failed_run(folder, tmp_path, klink_env):
    """SHA256SUMS cannot be written: the snapshot is still promoted, the report says why."""
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    # while the stack is stopped, block the temporary name SHA256SUMS is written under
    klink_env["FAKE_COMPOSE_ON_STOP"] = f"mkdir {dest}/.staging/.SHA256SUMS.tmp"
    report = backup(folder, dest, klink_env)
    assert report["result"] == "ok" and "error" in report["checksums"]
    assert any("SHA256SUMS not written" in w for w in report["warnings"])
    assert not (latest(dest) / "SHA256SUMS").exists()
    assert "has no checksums" in run_cli("verify", "--dest", dest, check=1).stderr


# ---- the database part's pure helpers (no Docker here; the e2e test runs the real thing)


def test_manifest_names_the_database_folder_and_image(dest):
    manifest = json.loads((latest(dest) / "manifest.json").read_text())
    assert {v["service"]: v["image"] for v in manifest["volumes"]}["database"] == "mariadb:10.3"
    assert dbcheck.databases(manifest) == [
        dbcheck.Database("database", "mariadb:10.3", "folder/storage/database")
    ]


def test_database_inside_a_bigger_unit_and_missing_cases():
    units = [{"dest": "folder", "source": "/k", "type": "bind"},
             {"dest": "volumes/mnt-data", "source": "/mnt/data", "type": "bind"}]  # fmt: skip
    vol = {"service": "db", "target": "/var/lib/mysql/", "type": "bind", "class": "cold",
           "source": "/mnt/data/mysql", "image": "mariadb:10.6"}  # fmt: skip
    found = dbcheck.databases({"units": units, "volumes": [vol]})
    assert found == [dbcheck.Database("db", "mariadb:10.6", "volumes/mnt-data/mysql")]
    with pytest.raises(dbcheck.KlinkSyncError, match="no database"):
        dbcheck.databases({"units": units, "volumes": []})
    with pytest.raises(dbcheck.KlinkSyncError, match="older klink-sync"):
        dbcheck.databases({"units": units, "volumes": [{**vol, "image": None}]})
    with pytest.raises(dbcheck.KlinkSyncError, match="skipped"):
        dbcheck.databases({"units": units, "volumes": [{**vol, "class": "skip"}]})


CHECK_OK = """\
dms.documents                                      OK
mysql.column_stats                                 OK
mysql.gtid_slave_pos                               Table is already up to date
mysql.general_log
note     : The storage engine for the table doesn't support check
"""
CHECK_BAD = """\
dms.documents                                      OK
dms.pages
Error    : Table 'dms.pages' doesn't exist in engine
status   : Operation failed
mysql.user                                         OK
mysql.proxies_priv
warning  : 1 client is using or hasn't closed the table properly
status   : OK
"""


def test_mariadb_check_output_is_judged_per_table():
    assert dbcheck.bad_check_lines(CHECK_OK) == []
    assert dbcheck.check_tables_count(CHECK_OK) == 4
    assert dbcheck.bad_check_lines(CHECK_BAD) == [
        "dms.pages: Error: Table 'dms.pages' doesn't exist in engine",
        "mysql.proxies_priv: warning: 1 client is using or hasn't closed the table properly",
    ]
    assert dbcheck.bad_check_lines("dms.t    Corrupt\n") == ["dms.t: Corrupt"]


def test_throwaway_server_has_no_network_and_the_copy_as_datadir():
    argv = dbcheck.run_argv("n", "img:1", "/tmp/copy", "/tmp/v.cnf")
    assert argv[:3] == ("docker", "run", "-d")
    assert ("--network", "none") == argv[argv.index("--network"):argv.index("--network") + 2]
    assert "/tmp/copy:/var/lib/mysql" in argv and argv[-1] == "img:1"
    assert "skip-grant-tables" in dbcheck.VERIFY_CNF
