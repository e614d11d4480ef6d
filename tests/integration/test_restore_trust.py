"""The backup disk is not trusted by restore (hardening items 3, 4, 9, 10): it writes only
inside the restore folder and where the snapshot's own compose files put volumes; a
tampered manifest or snapshot is refused (exit 2, naming the key) before anything is
written; a restore compares content. Real rsync, the stand-in compose, local and ssh."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import error_line, run_cli, run_cli_jailed, tree
from tests.integration.test_hot_cold import (
    ALL,
    COMPOSE,
    _rewrite_keeping,
    latest,
    make_deployment,
    set_running,
)
from tests.sshd import Sshd, sshd  # noqa: F401 (the fixture)

DOC = "storage/data/documents/007.bin"


def _where(request, tmp_path: Path, klink_env: dict) -> tuple[str, Path, dict]:
    if request.param == "local":
        return str(tmp_path / "backup"), tmp_path / "backup", klink_env
    server: Sshd = request.getfixturevalue("sshd")
    spec, real = server.far(tmp_path.name)
    return spec, real, {**klink_env, **server.env}


@pytest.fixture(params=["local"])
def where(request, tmp_path: Path, klink_env: dict) -> tuple[str, Path, dict]:
    """Local only: the checks run on this host before any copy, whatever the destination
    (the cases marked `both` show it over ssh too; `make test` stays short)."""
    return _where(request, tmp_path, klink_env)


@pytest.fixture(params=["local", "ssh"])
def both(request, tmp_path: Path, klink_env: dict) -> tuple[str, Path, dict]:
    return _where(request, tmp_path, klink_env)


def _with_outside_bind(tmp_path: Path) -> tuple[Path, Path]:
    """The sample deployment plus a bind outside its folder (an absolute path)."""
    folder = make_deployment(tmp_path)
    outside = tmp_path / "extdata"
    outside.mkdir()
    (outside / "report.txt").write_text("quarterly\n")
    compose = COMPOSE + f"""  extra:
    image: example/extra
    volumes:
      - "{outside}:/srv/extra"
"""
    (folder / "docker-compose.yml").write_text(compose)
    return folder, outside


def _tamper(snapshot: Path, change) -> None:
    path = snapshot / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "important.txt").write_text("keep me\n")
    return victim


def _backed_up(tmp_path: Path, where) -> tuple[Path, Path, str, Path, dict]:
    dest, real, env = where
    folder, outside = _with_outside_bind(tmp_path)
    set_running(env, [*ALL, "extra"])
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=env)
    return folder, outside, dest, latest(real), env


@pytest.mark.parametrize("key, change", [
    ("units[1].dest", lambda m: m["units"][1].update(dest="folder/../../victim")),
    ("units[0].dest", lambda m: m["units"][0].update(dest="/victim")),
    ("units[", lambda m: m["units"].append({**m["units"][-1], "dest": "volumes/evil"})),
    ("source", lambda m: next(u for u in m["units"] if u["dest"].startswith("volumes/"))
     .update(source="{victim}")),
])  # fmt: skip
def test_a_tampered_manifest_is_refused_before_anything_is_written(
    key, change, where, tmp_path
):
    folder, outside, dest, snap, env = _backed_up(tmp_path, where)
    victim = _victim(tmp_path)
    text = json.dumps(json.loads((snap / "manifest.json").read_text()))

    def tamper(manifest):
        change(manifest)
        data = json.dumps(manifest).replace("{victim}", str(victim))
        manifest.clear()
        manifest.update(json.loads(data))

    _tamper(snap, tamper)
    assert json.dumps(json.loads((snap / "manifest.json").read_text())) != text
    before = tree(folder), tree(outside)
    proc = run_cli("restore", "--dest", dest, "--folder", folder, env=env, check=2)
    assert "manifest.json: " in error_line(proc.stderr) and key in error_line(proc.stderr)
    assert (tree(folder), tree(outside)) == before
    assert (victim / "important.txt").read_text() == "keep me\n"
    assert sorted(os.listdir(victim)) == ["important.txt"]


def test_a_host_path_in_the_manifest_is_not_where_restore_writes(both, tmp_path):
    """host_path is what the run saw; the target is what the compose files declare."""
    folder, outside, dest, snap, env = _backed_up(tmp_path, both)
    victim = _victim(tmp_path)
    _tamper(snap, lambda m: [u.update(host_path=str(victim)) for u in m["units"]])
    run_cli("restore", "--dest", dest, "--folder", folder, "--no-safety-snapshot", env=env)
    assert sorted(os.listdir(victim)) == ["important.txt"]
    assert (outside / "report.txt").read_text() == "quarterly\n"


def test_the_manifests_folder_is_not_trusted_with_a_system_path(where, tmp_path):
    folder, _, dest, snap, env = _backed_up(tmp_path, where)
    _tamper(snap, lambda m: m.update(folder="/etc"))
    proc = run_cli_jailed("restore", "--dest", dest, env=env, check=2, jail=tmp_path)
    assert "/etc is a system path" in error_line(proc.stderr)
    assert (tmp_path / "etc/passwd").is_file()  # the jail's /etc, had the refusal failed


def test_the_manifests_folder_is_not_a_strangers_folder(where, tmp_path):
    folder, _, dest, snap, env = _backed_up(tmp_path, where)
    victim = _victim(tmp_path)
    _tamper(snap, lambda m: m.update(folder=str(victim)))
    proc = run_cli("restore", "--dest", dest, env=env, check=2)
    assert "manifest.json: folder" in error_line(proc.stderr)
    assert sorted(os.listdir(victim)) == ["important.txt"]


@pytest.mark.parametrize("plant", ["extra", "symlink"])
def test_a_planted_file_fails_the_quick_verify(plant, where, tmp_path):
    folder, _, dest, snap, env = _backed_up(tmp_path, where)
    if plant == "extra":
        (snap / "folder/storage/data/planted.sh").write_text("#!/bin/sh\n")
    else:
        doc = snap / "folder" / DOC
        doc.unlink()
        doc.symlink_to("/etc/shadow")
    before = tree(folder)
    proc = run_cli("restore", "--dest", dest, "--folder", folder, env=env, check=2)
    assert "fails a quick verify" in error_line(proc.stderr)
    assert tree(folder) == before


def test_a_damaged_file_that_kept_size_and_mtime_is_repaired(both, tmp_path):
    folder, _, dest, snap, env = _backed_up(tmp_path, both)
    doc = folder / DOC
    good = doc.read_bytes()
    _rewrite_keeping(doc, doc.stat().st_mtime_ns, False)
    proc = run_cli("restore", "--dest", dest, "--folder", folder, "--no-safety-snapshot",
                   "--json", env=env)  # fmt: skip
    assert doc.read_bytes() == good
    assert json.loads(proc.stdout)["files_repaired"] >= 1


def test_a_map_replaces_whole_paths_only(where, tmp_path):
    folder, outside, dest, snap, env = _backed_up(tmp_path, where)
    compose = folder / "docker-compose.yml"
    sibling = f"{outside}2"
    compose.write_text(compose.read_text() + f"""  sibling:
    image: example/extra
    volumes:
      - "{sibling}:/srv/other"
""")
    os.makedirs(sibling)
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=env)
    moved = tmp_path / "moved"
    run_cli("restore", "--dest", dest, "--folder", folder, "--no-safety-snapshot",
            "--map", f"{outside}={moved}", env=env)  # fmt: skip
    text = compose.read_text()
    assert f'"{moved}:/srv/extra"' in text and f'"{sibling}:/srv/other"' in text
    assert (moved / "report.txt").read_text() == "quarterly\n"


def _replace_by_link(path: Path, target: Path | str) -> None:
    for entry in path.iterdir():
        entry.unlink()
    path.rmdir()
    path.symlink_to(target)


def test_restore_does_not_write_through_a_symlink_to_a_system_path(where, tmp_path):
    folder, _, dest, _, env = _backed_up(tmp_path, where)
    index = folder / "storage/index"
    _replace_by_link(index, "/etc")
    proc = run_cli_jailed("restore", "--dest", dest, "--folder", folder, env=env, check=2,
                          jail=tmp_path)  # fmt: skip
    assert "system path" in error_line(proc.stderr)
    assert os.readlink(index) == "/etc" and (tmp_path / "etc/passwd").is_file()


def test_restore_does_not_follow_a_symlink_another_user_planted(where, tmp_path):
    """The deployment folder often belongs to a user: a link of theirs must not steer
    root's restore (and its --delete) into a folder of someone else's."""
    folder, _, dest, _, env = _backed_up(tmp_path, where)
    victim = _victim(tmp_path)
    index = folder / "storage/index"
    _replace_by_link(index, victim)
    os.lchown(index, 1000, 1000)
    proc = run_cli("restore", "--dest", dest, "--folder", folder, env=env, check=2)
    assert "symlink" in error_line(proc.stderr) and "uid 1000" in error_line(proc.stderr)
    assert sorted(os.listdir(victim)) == ["important.txt"]


def test_a_restore_into_another_folder_never_writes_through_the_snapshots_links(both, tmp_path):
    """Review: the snapshot's `storage -> /bigdisk/storage` link, put back into a new
    folder, led the volumes' rsync --delete into the live deployment's data."""
    from tests.integration.test_exact_copies import _storage_on_a_bigger_disk

    dest, _, env = both
    folder, bigdisk = _storage_on_a_bigger_disk(tmp_path)
    set_running(env, ALL)
    run_cli("cold", "--folder", folder, "--dest", dest, env=env)
    (bigdisk / "storage/data/documents/new.bin").write_bytes(b"written after the backup")
    live = tree(bigdisk)
    restored = tmp_path / "restored"
    run_cli("restore", "--dest", dest, "--folder", restored, env=env)
    assert tree(bigdisk) == live
    assert not (restored / "storage").is_symlink()  # the data came back into the folder
    docs = restored / "storage/data/documents"
    assert len(list(docs.iterdir())) == 50 and not (docs / "new.bin").exists()


def test_restore_into_a_strangers_folder_is_refused(where, tmp_path):
    """Review: --folder into a non-empty folder without a compose file wiped it."""
    folder, _, dest, _, env = _backed_up(tmp_path, where)
    alice = tmp_path / "alice"
    (alice / "Documents").mkdir(parents=True)
    (alice / "Documents/thesis.tex").write_text("chapter 1\n")
    proc = run_cli("restore", "--dest", dest, "--folder", alice, env=env, check=2)
    assert "holds files but no compose file" in error_line(proc.stderr)
    assert (alice / "Documents/thesis.tex").read_text() == "chapter 1\n"


@pytest.mark.parametrize("path", ["/var/spool/cron/crontabs", "/root/.bashrc", "/home/u/.ssh",
                                  "/var/lib/klink-sync/holds", "/etc2/../etc"])
def test_places_a_restore_never_writes(path):
    from klink_sync.errors import UsageError
    from klink_sync.trust import refuse_system_path

    with pytest.raises(UsageError, match="system path"):
        refuse_system_path(path, "k")
    refuse_system_path("/var/lib/docker/volumes/k_data/_data", "k")  # a volume's data
    refuse_system_path("/home/u/k-link/storage", "k")
