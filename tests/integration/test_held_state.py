"""The stack's state survives klink-sync's death; locks live in a root-only folder, not
/run/lock; restore takes the deployment's lock (hardening items 5, 7, 8). Real rsync,
the stand-in compose."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

from tests.conftest import KLINK_SYNC, ROOT, run_cli
from tests.integration.test_hot_cold import ALL, latest, make_deployment, running, set_running

KILL_AT_STOP = "kill -KILL $FAKE_COMPOSE_CALLER; sleep 1"


def _killed_while_stopped(folder: Path, dest: Path, env: dict) -> None:
    """A run SIGKILLed right after its stop: nothing can start the stack again."""
    proc = run_cli("hot-cold", "--folder", folder, "--dest", dest, check=None,
                   env={**env, "FAKE_COMPOSE_ON_STOP": KILL_AT_STOP})  # fmt: skip
    assert proc.returncode == -9
    assert running(env) == []


def test_the_next_run_starts_what_a_killed_run_stopped(tmp_path, klink_env):
    folder = make_deployment(tmp_path)
    dest, prom = tmp_path / "backup", tmp_path / "klink_sync.prom"
    set_running(klink_env, ALL)
    _killed_while_stopped(folder, dest, klink_env)
    config = tmp_path / "config.yml"
    hook = tmp_path / "hook.env"
    config.write_text(f"metrics_file: {prom}\nhooks:\n  shell: true\n  after:\n"
                      f"    - 'echo \"$KLINK_SYNC_RECOVERED\" > {hook}'\n")
    proc = run_cli("hot-cold", "--folder", folder, "--dest", dest, "--config", config, "--json",
                   env=klink_env)  # fmt: skip
    report = json.loads(proc.stdout)
    assert report["recovered"] == ALL and report["services_before"] == ALL
    assert "a klink-sync run that died had stopped them" in report["warnings"][0]
    assert running(klink_env) == ALL
    manifest = json.loads((latest(dest) / "manifest.json").read_text())
    assert manifest["services_before"] == ALL  # never the admin's choice
    assert "klink_sync_last_run_recovered_total{" in prom.read_text()
    assert 'klink_sync_last_run_recovered_total{dest="' + str(dest) + '"} 3' in prom.read_text()
    assert hook.read_text().split() == ALL


def _own_state(tmp_path: Path, klink_env: dict) -> dict:
    """`recover` handles every record of its state folder: one of this test's own, so the
    records other tests leave (a start that failed keeps its record) are not in it."""
    return {**klink_env, "KLINK_SYNC_STATE_DIR": str(tmp_path / "state")}


def test_klink_sync_recover_starts_them_without_a_config(tmp_path, klink_env):
    """What the boot-time unit runs: the record names folder, compose and services."""
    klink_env = _own_state(tmp_path, klink_env)
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    _killed_while_stopped(folder, tmp_path / "backup", klink_env)
    state = Path(klink_env["KLINK_SYNC_STATE_DIR"])
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    proc = run_cli("recover", env=klink_env)
    assert f"{folder}: started again database, engine, kbox" in proc.stdout
    assert running(klink_env) == ALL
    assert "nothing held" in run_cli("recover", env=klink_env).stdout


def test_a_planted_lock_in_run_lock_changes_nothing(tmp_path, klink_env):
    """Any local user could plant /run/lock/klink-sync-<digest>.lock (mode 1777): a symlink
    root would truncate, or a file whose lock blocks every backup. Locks are elsewhere."""
    import hashlib

    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    digest = hashlib.sha256(os.fsencode(os.path.realpath(folder))).hexdigest()[:16]
    planted = Path(f"/run/lock/klink-sync-{digest}.lock")
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    planted.symlink_to(victim)
    try:
        run_cli("hot-cold", "--folder", folder, "--dest", tmp_path / "backup", env=klink_env)
    finally:
        planted.unlink()
    assert victim.read_text() == "precious\n"


def test_restore_takes_the_deployment_lock(tmp_path, klink_env):
    """A backup to another destination may not snapshot a half-restored deployment."""
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env)
    env = {**klink_env, "FAKE_COMPOSE_ON_STOP": "sleep 4"}
    other = subprocess.Popen([KLINK_SYNC, "cold", "--folder", folder, "--dest",
                              tmp_path / "other"], env={**os.environ, **env},
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        import time

        time.sleep(1.5)  # the backup holds the deployment's lock, in its stop
        proc = run_cli("restore", "--dest", dest, "--folder", folder, "--no-safety-snapshot",
                       env=klink_env, check=3)  # fmt: skip
        assert "another klink-sync run" in proc.stderr
    finally:
        other.wait(timeout=60)


def test_a_restore_killed_half_way_blocks_backups_until_a_restore_finishes(tmp_path, klink_env):
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env)
    snap = latest(dest).name
    bindir = tmp_path / "bin"
    bindir.mkdir()
    rsync = bindir / "rsync"  # dies with klink-sync in the first copy back into the folder
    rsync.write_text(f'#!/bin/bash\nfor a in "$@"; do [ "$a" = "{folder}/" ] && '
                     'kill -KILL $PPID; done\nexec /usr/bin/rsync "$@"\n')
    rsync.chmod(0o755)
    env = {**klink_env, "PATH": f"{bindir}:{os.environ['PATH']}"}
    proc = run_cli("restore", "--dest", dest, "--folder", folder, "--no-safety-snapshot",
                   env=env, check=None)  # fmt: skip
    assert proc.returncode == -9 and running(klink_env) == []
    refused = run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env, check=1)
    assert f"began restoring {snap} into {folder}" in refused.stderr
    assert f"klink-sync restore {snap}" in refused.stderr
    assert latest(dest).name == snap and running(klink_env) == []
    run_cli("restore", snap, "--dest", dest, "--folder", folder, "--no-safety-snapshot",
            env=klink_env)  # fmt: skip
    assert running(klink_env) == ALL  # what ran before the first restore
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env)


def test_recover_obeys_no_command_a_record_names_and_goes_on_after_a_bad_one(tmp_path, klink_env):
    """Review: a record restored from a tampered snapshot made recover run its 'compose'
    as root; a bad record stopped every later one at boot."""
    import json as _json

    klink_env = _own_state(tmp_path, klink_env)
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    _killed_while_stopped(folder, tmp_path / "backup", klink_env)
    holds = Path(klink_env["KLINK_SYNC_STATE_DIR"]) / "holds"
    planted = holds / "0000000000000000.json"
    pwned = tmp_path / "PWNED"
    record = {"folder": str(tmp_path / "gone"), "compose": ["/bin/sh", "-c", f"id > {pwned}"],
              "compose_files": [], "services": ["x"], "how": "stopped", "pid": 1,
              "since": "2026-01-01T00:00:00Z"}  # fmt: skip
    fd = os.open(planted, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, _json.dumps(record).encode())
    os.close(fd)
    try:
        proc = run_cli("recover", env=klink_env, check=1)
    finally:
        planted.unlink()
    assert not pwned.exists() and "not one klink-sync uses" in proc.stderr
    assert f"{folder}: started again" in proc.stdout and running(klink_env) == ALL


def test_recover_leaves_alone_a_stop_the_dead_run_saw_end(tmp_path, klink_env):
    """Review: a run killed in its restart (the stop long over, the services started)
    made recover stop them all again before starting them: a needless outage."""
    klink_env = _own_state(tmp_path, klink_env)
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    started_then_killed = ('printf "database\\nengine\\nkbox\\n" > "$FAKE_COMPOSE_STATE"; '
                           "kill -KILL $FAKE_COMPOSE_CALLER; sleep 1")  # fmt: skip
    proc = run_cli("hot-cold", "--folder", folder, "--dest", tmp_path / "backup", check=None,
                   env={**klink_env, "FAKE_COMPOSE_ON_START": started_then_killed})  # fmt: skip
    assert proc.returncode == -9 and running(klink_env) == ALL
    before = len(Path(klink_env["FAKE_COMPOSE_LOG"]).read_text().splitlines())
    assert "started again" in run_cli("recover", env=klink_env).stdout
    assert " stop " not in " ".join(Path(klink_env["FAKE_COMPOSE_LOG"]).read_text()
                                    .splitlines()[before:]) + " "  # fmt: skip
    assert running(klink_env) == ALL


def test_recover_waits_for_a_stop_through_every_level_of_the_stack(tmp_path, klink_env):
    """Review: Compose stops one level of depends_on after another, each up to the stop
    timeout; a stop left under way is finished while the record is younger than that
    many timeouts (one a service), not just one."""
    from klink_sync import state

    klink_env = _own_state(tmp_path, klink_env)
    folder = make_deployment(tmp_path)
    set_running(klink_env, [])  # the dead run's stop, still under way in Docker, took them
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 100))
    hold = state.Hold(str(folder), (str(ROOT / "tests/integration/fake-compose"),),
                      (str(folder / "docker-compose.yml"),), tuple(ALL), state.STOPPED, 1,
                      since, stop_timeout=60)  # fmt: skip
    os.environ[state.STATE_ENV], saved = klink_env["KLINK_SYNC_STATE_DIR"], os.environ.get(
        state.STATE_ENV)  # fmt: skip
    try:
        state.record(hold)
    finally:
        os.environ.pop(state.STATE_ENV)
        if saved is not None:
            os.environ[state.STATE_ENV] = saved
    run_cli("recover", env=klink_env)
    calls = Path(klink_env["FAKE_COMPOSE_LOG"]).read_text().splitlines()
    verbs = [v for c in calls for v in ("stop", "start") if f" {v} " in f" {c} "]
    assert verbs == ["stop", "start"], calls  # the stop finished first, then the start
    assert running(klink_env) == ALL
