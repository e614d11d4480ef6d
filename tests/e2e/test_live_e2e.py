"""`klink-sync live` on the real sample stack, the writer running: nothing stops, the
snapshot's database starts (prepared), every row has its file, the index is never ahead."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path

from tests.conftest import error_line, run_cli
from tests.e2e.conftest import (
    DOCKER_SHIM,
    SERVICES,
    STOPPING,
    Events,
    SampleStack,
    checker,
    probe,
    wait_for_rows,
)

PASSWORDS = ("s3cret-db-pass-7f3a", "s3cret-root-pass-91bc")


def _env(compose_cmd: str) -> dict:
    return {"KLINK_SYNC_COMPOSE": compose_cmd}


def _snapshot(dest: Path) -> Path:
    return dest / "snapshots" / os.path.basename(os.readlink(dest / "latest"))


def _live_run(stack: SampleStack, dest: Path, compose_cmd: str) -> tuple[dict, Path, list]:
    """One live run, its report, snapshot and the project's container events meanwhile;
    the rows committed just before it began are in the snapshot."""
    rows_before = checker.live_rows(stack.folder, compose_cmd)["ids"]
    with Events(stack.folder.name) as events:
        proc = run_cli("live", "--folder", stack.folder, "--dest", dest, "--json",
                       env=_env(compose_cmd))  # fmt: skip
    snap = _snapshot(dest)
    result = checker.check_snapshot(snap / "folder")
    assert result["ok"], result["errors"]
    assert not result["crash_recovery"] and result["check_ok"]
    assert result["missing_files"] == [] and result["bad_sha256"] == []
    assert set(rows_before) <= set(result["ids"])
    outputs = proc.stdout + proc.stderr + (snap / "manifest.json").read_text()
    assert not [p for p in PASSWORDS if p in outputs]
    return json.loads(proc.stdout), snap, [action for action, _ in events.seen]


def _first_run_in_detail(stack: SampleStack, dest: Path, compose_cmd: str) -> None:
    report, snap, events = _live_run(stack, dest, compose_cmd)
    assert not STOPPING & set(events), events
    assert set(events) - {"pause", "unpause"} <= {"exec_create", "exec_start", "exec_die"}
    assert "pause" in events, events
    assert report["mode"] == "live" and report["downtime_seconds"] == 0
    assert report["services_before"] == SERVICES == report["services_after"]
    assert 0 < report["freeze_seconds"] < 30 and 0 < report["commit_block_seconds"] < 10
    manifest = json.loads((snap / "manifest.json").read_text())
    assert manifest["mode"] == "live" and "mariadb-backup" in manifest["consistency"]
    live = manifest["live"]
    assert live["tool"] in ("mariadb-backup", "mariabackup")
    assert live["paused_services"] == ["engine"]
    assert live["commit_block_seconds"] == report["commit_block_seconds"]
    # rows committed before the backup point are all in the snapshot
    point = manifest["times"]["backup_point"].rstrip("Z").replace("T", " ")
    before = checker.live_rows(stack.folder, compose_cmd, before=point)
    assert set(before["ids"]) <= set(checker.check_snapshot(snap / "folder")["ids"])
    # the snapshot's database boots under verify as for any other mode
    verified = run_cli("verify", "--dest", dest, "--database", env=_env(compose_cmd))
    assert "database (database): ok" in verified.stdout
    assert not list(dest.glob(".live-database*"))  # the scratch copy is gone


def test_ten_live_runs_under_write_load_stop_nothing_and_are_all_consistent(
    live_stack: SampleStack, compose_cmd: str, tmp_path: Path
):
    """The first run checked in detail; every one: no container event but the index's
    pause, every row has its file, no HTTP request failed throughout."""
    dest = tmp_path / "backup"
    blocks, pauses, spans = [], [], []
    with probe.Probe(live_stack.folder) as requests:
        _first_run_in_detail(live_stack, dest, compose_cmd)
        for _ in range(9):
            began = time.time()
            report, _, events = _live_run(live_stack, dest, compose_cmd)
            spans.append((began, time.time()))
            assert not STOPPING & set(events), events
            blocks.append(report["commit_block_seconds"])
            pauses.append(report["freeze_seconds"])
    asked = requests.summary()
    assert all(requests.summary(*span)["requests"] for span in spans), spans  # throughout
    assert asked["posts"] > 0, asked
    assert asked["failed"] == 0, f"HTTP requests failed during live runs: {asked}"
    assert len(list((dest / "snapshots").iterdir())) == 10
    assert live_stack.running() == SERVICES
    print(f"commit block: max {max(blocks):.3f}s; index pause: max {max(pauses):.2f}s; "
          f"requests {asked['requests']}, slowest {asked['max_latency']:.2f}s")


def _fake_database_image(tag: str, script: str | None) -> str:
    """The sample database image with mariadb-backup removed (script None) or replaced by
    `script`: the server itself runs as before."""
    context = Path(f"/tmp/{tag.replace('/', '-').replace(':', '-')}")
    context.mkdir(exist_ok=True)
    lines = ["FROM klink-sample/database:latest",
             "RUN rm -f /usr/bin/mariadb-backup /usr/bin/mariabackup"]  # fmt: skip
    if script is not None:
        (context / "mariadb-backup").write_text(script)
        lines += ["COPY mariadb-backup /usr/bin/mariadb-backup",
                  "RUN chmod 0755 /usr/bin/mariadb-backup"]  # fmt: skip
    (context / "Dockerfile").write_text("\n".join(lines) + "\n")
    subprocess.run(["docker", "build", "-q", "-t", tag, str(context)], check=True,
                   capture_output=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})  # fmt: skip
    return tag


def _with_image(stack: SampleStack, image: str) -> None:
    (stack.folder / "docker-compose.override.yml").write_text(
        f"services:\n  database:\n    image: {image}\n"
    )
    stack.compose("up", "-d")
    wait_for_rows(stack.folder, stack.compose_cmd, at_least=40)


def _nothing_done(stack: SampleStack, dest: Path, events: Events) -> None:
    assert not (dest / "latest").exists()
    assert not list((dest / "snapshots").glob("*")) if (dest / "snapshots").exists() else True
    assert not events.held(), events.held()
    assert stack.running() == SERVICES


def test_mariadb_backup_missing_or_failing_stops_nothing_and_promotes_nothing(
    live_stack: SampleStack, compose_cmd: str, tmp_path: Path
):
    """Missing: exit 2 before anything is copied. Failing: exit 1, one line. One stack."""
    _missing_backup_is_refused(live_stack, compose_cmd, tmp_path / "missing")
    _failing_backup_fails_the_run(live_stack, compose_cmd, tmp_path / "failing")


def _missing_backup_is_refused(live_stack: SampleStack, compose_cmd: str, tmp_path: Path):
    tmp_path.mkdir()
    image = _fake_database_image("klink-live-test/database:no-backup", None)
    _with_image(live_stack, image)
    dest = tmp_path / "backup"
    with Events(live_stack.folder.name) as events:
        proc = run_cli("live", "--folder", live_stack.folder, "--dest", dest,
                       env=_env(compose_cmd), check=2)  # fmt: skip
    line = error_line(proc.stderr)
    assert image in line and "hot-cold" in line, line
    assert not (dest / ".staging").exists()
    _nothing_done(live_stack, dest, events)


def _failing_backup_fails_the_run(live_stack: SampleStack, compose_cmd: str, tmp_path: Path):
    tmp_path.mkdir()
    script = "#!/bin/sh\necho '[00] FATAL ERROR: simulated failure of the copy' >&2\nexit 1\n"
    _with_image(live_stack, _fake_database_image("klink-live-test/database:failing", script))
    dest = tmp_path / "backup"
    with Events(live_stack.folder.name) as events:
        proc = run_cli("live", "--folder", live_stack.folder, "--dest", dest,
                       env=_env(compose_cmd), check=1)  # fmt: skip
    line = error_line(proc.stderr)
    assert "simulated failure" in line and "nothing was promoted" in line, line
    _nothing_done(live_stack, dest, events)
    assert not list(dest.glob(".live-database*"))


def _a_wrong_password_is_one_line_without_the_password(
    live_stack: SampleStack, compose_cmd: str, tmp_path: Path
):
    tmp_path.mkdir()
    wrong = "wrong-pass-5e1d9c"
    secret = tmp_path / "db-password"
    secret.write_text(wrong + "\n")
    secret.chmod(0o600)
    config = tmp_path / "config.yml"
    config.write_text(f"database:\n  user: root\n  password_file: {secret}\n")
    dest = tmp_path / "backup"
    with Events(live_stack.folder.name) as events:
        proc = run_cli("live", "--folder", live_stack.folder, "--dest", dest, "--config",
                       config, env=_env(compose_cmd), check=1)  # fmt: skip
    line = error_line(proc.stderr)
    assert "Access denied" in line, line
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("klink-sync:")] == [line]
    assert wrong not in proc.stdout + proc.stderr
    _nothing_done(live_stack, dest, events)
    secret.chmod(0o644)  # a password file others can read: refused before anything runs
    proc = run_cli("live", "--folder", live_stack.folder, "--dest", dest, "--config", config,
                   env=_env(compose_cmd), check=2)  # fmt: skip
    assert "database.password_file" in error_line(proc.stderr)


def _delete_oldest(stack: SampleStack, stop: threading.Event, deleted: list[str]) -> None:
    """What emptying the K-Box trash does, over and over: the row first, then its file."""
    compose = [*shlex.split(stack.compose_cmd), "exec", "-T", "database", "sh", "-c",
               checker.LIVE_SCRIPT, "sh"]  # fmt: skip
    while not stop.is_set():
        row = subprocess.run([*compose, "SELECT id, path FROM documents ORDER BY id LIMIT 1"],
                             cwd=stack.folder, capture_output=True, text=True).stdout.split()
        if len(row) != 2:
            continue
        subprocess.run([*compose, f"DELETE FROM documents WHERE id = {int(row[0])}"],
                       cwd=stack.folder, capture_output=True, check=True)  # fmt: skip
        (stack.folder / "storage" / "data" / row[1]).unlink(missing_ok=True)
        deleted.append(row[1])


def test_documents_deleted_during_a_run_keep_the_files_their_rows_need(
    live_stack: SampleStack, compose_cmd: str, tmp_path: Path
):
    """A document deleted after the backup point still has its row in the database copy:
    its file stays in the snapshot. A killed run's defaults file is not in the way. Then,
    on the same stack, a wrong password."""
    dest, state = tmp_path / "backup", tmp_path / "state"
    state.mkdir(mode=0o700)
    key = hashlib.sha256(os.fsencode(os.path.realpath(live_stack.folder))).hexdigest()[:16]
    stale = state / f"live-{key}.cnf"
    stale.write_text('[client]\npassword="left-by-a-killed-run"\n')
    stale.chmod(0o600)
    env = {**_env(compose_cmd), "KLINK_SYNC_STATE_DIR": str(state)}
    stop, deleted = threading.Event(), []
    deleter = threading.Thread(target=_delete_oldest, args=(live_stack, stop, deleted))
    deleter.start()
    try:
        for _ in range(2):
            run_cli("live", "--folder", live_stack.folder, "--dest", dest, env=env)
            result = checker.check_snapshot(_snapshot(dest) / "folder")
            assert result["missing_files"] == [] and result["ok"], result["errors"]
    finally:
        stop.set()
        deleter.join(timeout=60)
    assert len(deleted) > 5, deleted
    assert not stale.exists() and not list(state.glob("live-*.cnf"))
    _a_wrong_password_is_one_line_without_the_password(live_stack, compose_cmd,
                                                       tmp_path / "wrong")  # fmt: skip
    _a_thaw_during_the_index_copy_is_never_promoted(live_stack, compose_cmd, tmp_path / "thaw")


def _a_thaw_during_the_index_copy_is_never_promoted(
    live_stack: SampleStack, compose_cmd: str, tmp_path: Path
):
    """Someone unpauses the index right after klink-sync paused it, or a one-off container
    of the index's service runs and goes during its copy: the copy is not of one instant, so
    the run fails (exit 1), the index runs, nothing is promoted."""
    (tmp_path / "bin").mkdir(parents=True)
    (tmp_path / "bin" / "docker").write_text(DOCKER_SHIM.format(docker=shutil.which("docker")))
    (tmp_path / "bin" / "docker").chmod(0o755)
    env = {**_env(compose_cmd), "SHIM": "thawed", "KLINK_SYNC_STATE_DIR": str(tmp_path / "state"),
           "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}  # fmt: skip
    dest = tmp_path / "backup"
    for shim in ("thawed", "oneoff"):
        env.update(SHIM=shim, SHIM_PROJECT=live_stack.folder.name, SHIM_SERVICE="engine")
        with Events(live_stack.folder.name) as events:
            proc = run_cli("live", "--folder", live_stack.folder, "--dest", dest, env=env,
                           check=1)  # fmt: skip
        line = error_line(proc.stderr)
        assert "ran during the frozen copy" in line and "nothing promoted" in line, (shim, line)
        events.seen = [e for e in events.seen if "oneoff" not in e[1]]
        _nothing_done(live_stack, dest, events)
