"""A run SIGKILLed (or a power cut) while the stack is stopped: the next run starts it again.

Hardening item 5, on the real sample stack. klink-sync records the services it is about to
stop under KLINK_SYNC_STATE_DIR/holds/ before it stops them; once it is dead, nothing in its
process can start them again, so the record is all that remains. The next backup (or
`klink-sync recover`, what the boot-time unit runs) must start them and say so.

How the run is killed while the stack is stopped: `rsync` on the PATH is a wrapper that, when
called while the database container is not running (the cold pass: only then is it down),
touches a marker and hangs instead of copying. The test waits for the marker, checks with
Docker that every service is down, then SIGKILLs klink-sync's whole process group (klink-sync
and the rsyncs it started: a power cut). Watching `docker ps` alone would race the cold pass,
which may last well under a second, and the kill could land during the start; this way the
run is held, for as long as the test likes, exactly between the stop and the start.

Each test has a stack (Compose project) and a state folder of its own: a record left by a
failing test is never found by another test's `klink-sync recover`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import KLINK_SYNC, run_cli
from tests.e2e.conftest import SERVICES, checker, wait_for_rows

WRAPPER = """#!/bin/sh
# rsync while the database is down (the cold pass): mark it, then hang until killed
state=$(docker inspect -f '{{{{.State.Running}}}}' "$KILLED_RUN_DB" 2>/dev/null)
if [ "$state" = false ]; then
  : > "$KILLED_RUN_MARK"
  exec sleep 600
fi
exec {rsync} "$@"
"""

# what a reboot does to /run: the successor gets an empty /run/lock (a tmpfs in a mount
# namespace of its own; the host's /run/lock is left alone: other runs may use it)
EMPTY_RUN_LOCK = 'mount -t tmpfs -o mode=1777 tmpfs /run/lock && exec "$@"'


def _after_reboot(*args: str, env: dict, check: int | None = 0) -> subprocess.CompletedProcess:
    """klink-sync with /run/lock empty, as after a reboot."""
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", EMPTY_RUN_LOCK, "sh",
         KLINK_SYNC, *args],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=300, errors="replace",
    )  # fmt: skip
    if check is not None:
        outputs = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        assert proc.returncode == check, f"exit {proc.returncode}, wanted {check}\n{outputs}"
    return proc


def _writing_again(stack) -> None:
    """The writer adds rows again: the database and the app are really back."""
    rows = checker.live_rows(stack.folder, stack.compose_cmd)["rows"]
    wait_for_rows(stack.folder, stack.compose_cmd, at_least=rows + 10, timeout=60)


def _kill_while_stopped(stack, dest: Path, tmp_path: Path) -> tuple[dict[str, str], dict]:
    """Run `klink-sync hot-cold`, kill it in the cold pass: the env for the runs after it
    (their own state folder) and the record the dead run left."""
    assert stack.running() == SERVICES
    env = {"KLINK_SYNC_COMPOSE": stack.compose_cmd,
           "KLINK_SYNC_STATE_DIR": str(tmp_path / "state")}  # fmt: skip
    db = subprocess.run([*shlex.split(stack.compose_cmd), "ps", "-q", "database"], cwd=stack.folder,
                        capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert db, "no database container"
    bindir, mark = tmp_path / "bin", tmp_path / "cold-pass-reached"
    bindir.mkdir()
    (bindir / "rsync").write_text(WRAPPER.format(rsync=shutil.which("rsync")))
    (bindir / "rsync").chmod(0o755)
    killed_env = {**os.environ, **env, "PATH": f"{bindir}:{os.environ['PATH']}",
                  "KILLED_RUN_DB": db, "KILLED_RUN_MARK": str(mark)}  # fmt: skip
    log = tmp_path / "killed-run.log"
    with log.open("w") as out:
        proc = subprocess.Popen([KLINK_SYNC, "hot-cold", "--folder", str(stack.folder),
                                 "--dest", str(dest)], env=killed_env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not mark.exists():
            ended = proc.poll()
            assert ended is None, f"the run ended (exit {ended}) first:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no cold pass in 120 s:\n{log.read_text()}"
            time.sleep(0.2)
        assert stack.running() == [], "the stack is not stopped in the cold pass"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # klink-sync and the rsyncs it started
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, log.read_text()
    time.sleep(2)  # nothing of the dead run is left to start anything
    assert stack.running() == [], "something started the stack after the kill"

    # "empty /run": the lock of this deployment where klink-sync once kept it is not there
    # (the successors also run with an empty /run/lock); the record is in the state folder
    digest = hashlib.sha256(os.fsencode(os.path.realpath(stack.folder))).hexdigest()[:16]
    old_lock = Path(f"/run/lock/klink-sync-{digest}.lock")
    assert not old_lock.exists(), f"{old_lock}: klink-sync keeps state in /run/lock"
    holds = list((tmp_path / "state" / "holds").glob("*.json"))
    assert len(holds) == 1, holds
    hold = json.loads(holds[0].read_text())
    assert hold["services"] == SERVICES and hold["how"] == "stopped", hold
    assert os.path.realpath(hold["folder"]) == os.path.realpath(stack.folder)
    return env, hold


def test_the_next_backup_starts_what_a_killed_run_stopped(fresh_stack, tmp_path):
    stack = fresh_stack[0]
    dest = tmp_path / "backup"
    began = time.monotonic()
    env, _ = _kill_while_stopped(stack, dest, tmp_path)
    killed = time.monotonic()

    prom, hook = tmp_path / "klink_sync.prom", tmp_path / "hook.env"
    config = tmp_path / "config.yml"
    config.write_text(f"metrics_file: {prom}\nhooks:\n  shell: true\n  after:\n"
                      f"    - 'echo \"$KLINK_SYNC_RECOVERED\" > {hook}'\n")  # fmt: skip
    proc = _after_reboot("hot-cold", "--folder", str(stack.folder), "--dest", str(dest),
                         "--config", str(config), "--json", env=env)  # fmt: skip
    report = json.loads(proc.stdout)
    assert report["recovered"] == SERVICES, report
    assert report["services_before"] == SERVICES and report["services_after"] == SERVICES
    assert "a klink-sync run that died had stopped them" in report["warnings"][0]
    assert stack.running() == SERVICES
    assert not list((tmp_path / "state" / "holds").glob("*.json")), "the record is left"

    snapshots = list((dest / "snapshots").iterdir())
    assert [s.name for s in snapshots] == [report["snapshot"]]  # the killed run promoted none
    manifest = json.loads((dest / "latest" / "manifest.json").read_text())
    assert manifest["services_before"] == SERVICES
    assert f'klink_sync_last_run_recovered_total{{dest="{dest}"}} 3' in prom.read_text()
    assert hook.read_text().split() == SERVICES
    _writing_again(stack)
    print(f"\nkilled after {killed - began:.1f}s, next backup {time.monotonic() - killed:.1f}s")


def test_klink_sync_recover_starts_what_a_killed_run_stopped(fresh_stack, tmp_path):
    """What the boot-time unit runs: no config, the record names folder, compose and services."""
    stack = fresh_stack[0]
    env, hold = _kill_while_stopped(stack, tmp_path / "backup", tmp_path)

    proc = _after_reboot("recover", env=env)
    said = (f"{hold['folder']}: started again database, engine, kbox: a klink-sync run that "
            "died had stopped them")  # fmt: skip
    assert said in proc.stdout, proc.stdout
    assert stack.running() == SERVICES
    assert "nothing held" in run_cli("recover", env=env).stdout
    _writing_again(stack)
