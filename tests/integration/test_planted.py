"""Smaller hardening items (13): what a planted link or a damaged file in a destination or
a compose file does; each was a traceback or a write outside the destination."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import error_line, run_cli
from tests.integration.test_hot_cold import ALL, latest, make_deployment, set_running


def _backed_up(tmp_path: Path, env: dict) -> tuple[Path, Path]:
    folder = make_deployment(tmp_path)
    set_running(env, ALL)
    dest = tmp_path / "backup"
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=env)
    return folder, dest


def test_latest_to_a_planted_symlinked_folder_writes_nothing_outside(tmp_path, klink_env):
    _, dest = _backed_up(tmp_path, klink_env)
    elsewhere = tmp_path / "elsewhere"
    os.rename(latest(dest), elsewhere)
    (dest / "snapshots" / elsewhere.name).symlink_to(elsewhere)
    os.unlink(dest / "latest")
    (dest / "latest").symlink_to(f"snapshots/{elsewhere.name}")
    proc = run_cli("verify", "--dest", dest, env=klink_env, check=2)
    assert "no complete snapshot" in error_line(proc.stderr)
    assert not (elsewhere / "verified.json").exists()


def test_a_planted_temporary_name_is_not_written_through(tmp_path, klink_env):
    _, dest = _backed_up(tmp_path, klink_env)
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    (latest(dest) / ".verified.json.tmp").symlink_to(victim)
    run_cli("verify", "--dest", dest, env=klink_env, check=None)
    assert victim.read_text() == "keep\n"


def test_a_planted_deleting_symlink_does_not_stop_prune(tmp_path, klink_env):
    folder, dest = _backed_up(tmp_path, klink_env)
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env)
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "file").write_text("x")
    (dest / "snapshots" / ".deleting-x").symlink_to(keep)
    proc = run_cli("prune", "--dest", dest, "--keep-last", "1", "--json", env=klink_env)
    assert '"remove": [' in proc.stdout
    assert (keep / "file").read_text() == "x"


def test_an_empty_manifest_is_a_message_not_a_traceback(tmp_path, klink_env):
    folder, dest = _backed_up(tmp_path, klink_env)
    (latest(dest) / "manifest.json").write_text("")
    run_cli("snapshots", "--dest", dest, env=klink_env)
    proc = run_cli("restore", "--dest", dest, "--folder", folder, "--dry-run", env=klink_env,
                   check=2)  # fmt: skip
    assert "manifest.json: not a manifest" in error_line(proc.stderr)
    assert "Traceback" not in proc.stderr


def test_a_yaml_anchor_that_refers_to_itself_is_exit_2(tmp_path, klink_env):
    folder = tmp_path / "k-link"
    folder.mkdir()
    (folder / "docker-compose.yml").write_text(
        "services:\n  app:\n    image: x\n    volumes: &v\n      - ./d:/d\n      - *v\n")
    proc = run_cli("plan", "--folder", folder, env=klink_env, check=2)
    assert "refers to itself" in error_line(proc.stderr) and "Traceback" not in proc.stderr
