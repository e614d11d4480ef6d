"""The disaster drill: the deployment and its local backups are gone; the offsite copy alone
brings the stack back. Real Docker, the sample stack writing, real restic on a real S3
server (moto) and over real sftp (OpenSSH); what lands there is encrypted.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli
from tests.e2e.conftest import SERVICES, SampleStack, checker, wait_for_rows
from tests.s3 import S3, s3  # noqa: F401 (the fixture)
from tests.sshd import Sshd, sshd  # noqa: F401 (the fixture)


def _sql(stack: SampleStack, sql: str) -> str:
    """A statement on the running stack's database, as check.py's live query runs them."""
    argv = [*shlex.split(stack.compose_cmd), "exec", "-T", "database", "sh", "-c",
            checker.LIVE_SCRIPT, "sh", sql]  # fmt: skip
    done = subprocess.run(argv, cwd=stack.folder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


class Repository:
    """Where the drill's offsite copy lives: its `offsite:` settings and its raw bytes."""

    def __init__(self, kind: str, request: pytest.FixtureRequest, tmp_path: Path):
        name = f"drill-{os.getpid()}-{secrets.token_hex(3)}"
        self.settings: dict = {}
        if kind == "s3":
            server: S3 = request.getfixturevalue("s3")
            self.settings = {"repository": server.repository(name),
                             "environment_file": str(server.environment_file(
                                 tmp_path / "offsite.env"))}  # fmt: skip
            self.raw = lambda: {key.removeprefix(f"{name}/"): data
                                for key, data in server.objects(f"{name}/").items()}  # fmt: skip
        else:
            ssh: Sshd = request.getfixturevalue("sshd")
            # a folder only the server sees: the repository is truly on the other side
            self.settings = {"repository": f"sftp:{ssh.user}@127.0.0.1:{ssh.base / 'far' / name}",
                             "options": [f"sftp.command={ssh.sftp_command}"]}  # fmt: skip
            real = ssh.base / "far-real" / name
            self.raw = lambda: {str(p.relative_to(real)): p.read_bytes()
                                for p in real.rglob("*") if p.is_file()}  # fmt: skip


def _files_holding(root: Path, needle: bytes) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and not p.is_symlink() and needle in p.read_bytes()]  # fmt: skip


@pytest.mark.parametrize("kind", ["s3", "sftp"])
def test_the_offsite_copy_alone_brings_a_destroyed_deployment_back(
    fresh_stack, tmp_path: Path, request: pytest.FixtureRequest, kind: str
):
    stack = fresh_stack[0]
    env = {"KLINK_SYNC_COMPOSE": stack.compose_cmd}
    repository = Repository(kind, request, tmp_path)
    password = tmp_path / "restic-password"
    password.write_text(f"drill-pw-{secrets.token_hex(8)}\n")
    password.chmod(0o600)
    dest = tmp_path / "backup"
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"folder": str(stack.folder), "dest": str(dest), "offsite": {
        **repository.settings, "password_file": str(password), "after_backup": True}}))

    # what must come back, and must never be readable offsite
    doc_marker = f"offsite-drill-document-{secrets.token_hex(8)}".encode()
    row_marker = f"offsite-drill-row-{secrets.token_hex(8)}"
    document = stack.folder / "storage/data/documents/offsite-drill.txt"
    document.write_bytes(b"a document of the drill: " + doc_marker + b"\n")
    doc_sha = hashlib.sha256(document.read_bytes()).hexdigest()
    _sql(stack, "CREATE TABLE offsite_drill (note VARCHAR(100)) ENGINE=InnoDB; "
                f"INSERT INTO offsite_drill VALUES ('{row_marker}')")  # fmt: skip

    run_cli("offsite", "init", "--config", config)
    report = json.loads(run_cli("hot-cold", "--config", config, "--json", env=env).stdout)
    assert report["result"] == "ok" and report["offsite"]["result"] == "ok", report["offsite"]
    snap = dest / "snapshots" / report["snapshot"]
    stop = json.loads((snap / "manifest.json").read_text())["times"]["stop_begin"]
    # every row committed before the stop: what the restored database must hold
    committed = set(checker.live_rows(stack.folder, stack.compose_cmd,
                                      before=stop.rstrip("Z").replace("T", " "))["ids"])
    assert len(committed) >= 40
    # the markers are there in plain bytes locally (so the search below can find them)
    assert _files_holding(snap / "folder/storage/data", doc_marker)
    assert _files_holding(snap / "folder/storage/database", row_marker.encode())

    stack.compose("down", "-t", "30")  # the disaster: the deployment and its backups are gone
    shutil.rmtree(stack.folder)
    shutil.rmtree(dest)

    pulled = run_cli("offsite", "pull", "latest", "--config", config).stdout
    assert f"pulled {report['snapshot']}" in pulled and "match SHA256SUMS" in pulled
    proc = run_cli("restore", "--dest", dest, "--folder", stack.folder, "--start", env=env)
    assert "restored snapshot" in proc.stdout
    assert stack.running() == SERVICES
    wait_for_rows(stack.folder, stack.compose_cmd, at_least=len(committed) + 10)  # it writes
    assert _sql(stack, "SELECT note FROM offsite_drill").split() == [row_marker]
    assert hashlib.sha256(document.read_bytes()).hexdigest() == doc_sha
    stack.compose("stop")
    result = checker.check_snapshot(stack.folder)
    assert result["server_started"] and not result["crash_recovery"], result
    assert result["check_ok"], result["check_output"]
    assert result["missing_files"] == [] and result["bad_sha256"] == [], result
    assert result["ok"], result["errors"]
    assert committed <= set(result["ids"])

    raw = repository.raw()
    assert any(key.startswith("data/") for key in raw) and len(raw) > 5, sorted(raw)
    for marker in (doc_marker, row_marker.encode(), password.read_bytes().strip()):
        holding = [key for key, data in raw.items() if marker in data or marker in key.encode()]
        assert holding == [], f"{marker!r} readable in {holding}"
