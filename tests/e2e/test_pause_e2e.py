"""`klink-sync hot-cold --pause` on the real sample stack: frozen, never stopped.

What the issue asks, measured with Docker itself: no container of the project dies, stops,
is killed or starts during a run (`docker events`); the snapshot's database starts (InnoDB
crash recovery is expected of a frozen copy) and `mariadb-check` passes; every row committed
before the freeze is in it with its file and the right sha256. Ten runs in a row under the
writer's load, each checked. Faults: SIGTERM and SIGKILL while frozen, and `docker pause`
failing for one container.

A run is held inside the freeze the way test_killed_run_e2e holds one inside the stop:
`rsync` on the PATH is a wrapper that, called while the database container is paused,
touches a marker and hangs.
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
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.conftest import KLINK_SYNC, run_cli
from tests.e2e.conftest import DOCKER_SHIM, SERVICES, Events, checker, probe, wait_for_rows
from tests.integration.test_dry_run_is_the_run import planned

RUNS = 10

HANG_WHILE_FROZEN = """#!/bin/sh
# rsync while the database is paused (the frozen pass): mark it, then hang until killed
state=$(docker inspect -f '{{{{.State.Paused}}}}' "$PAUSED_RUN_DB" 2>/dev/null)
if [ "$state" = true ]; then
  : > "$PAUSED_RUN_MARK"
  exec sleep 600
fi
exec {rsync} "$@"
"""

def _project(stack) -> str:
    return stack.folder.name


def _containers(stack) -> dict[str, str]:
    """container id -> State.Status ('running', 'paused', ...) of the project's containers."""
    ids = subprocess.run([*shlex.split(stack.compose_cmd), "ps", "-aq"], cwd=stack.folder,
                         capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    out = subprocess.run(["docker", "inspect", "-f", "{{.Id}} {{.State.Status}}", *ids],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return dict(line.split() for line in out.splitlines())


def _utc(iso: str, minus: float = 0.0) -> str:
    """A manifest time, less `minus` seconds, as the checker's --before wants it."""
    when = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(when.timestamp() - minus, timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S.%f")


def test_ten_paused_runs_under_load_never_stop_a_container(fresh_stack, tmp_path):
    stack = fresh_stack[0]
    dest = tmp_path / "backup"
    env = {"KLINK_SYNC_COMPOSE": stack.compose_cmd,
           "KLINK_SYNC_STATE_DIR": str(tmp_path / "state")}  # fmt: skip
    reports, spans = [], []
    dry = run_cli("hot-cold", "--pause", "--folder", stack.folder, "--dest", dest, "--dry-run",
                  env=env).stdout  # fmt: skip
    with Events(_project(stack)) as events, probe.Probe(stack.folder) as requests:
        for i in range(RUNS):
            began = time.time()
            proc = run_cli("hot-cold", "--pause", "--folder", stack.folder, "--dest", dest,
                           "--json", *(["-v"] if i == 0 else []), env=env)  # fmt: skip
            spans.append((began, time.time()))
            if i == 0:  # the run executes the commands the dry run printed
                ran = [line.split(" DEBUG run: ", 1)[1] for line in proc.stderr.splitlines()
                       if " DEBUG run: " in line]  # fmt: skip
                holds = [c for c in ran if c.startswith(("docker pause", "docker unpause"))]
                assert holds == [c for c in planned(dry) if c.startswith("docker ")], dry
                assert set(planned(dry)) <= set(ran), dry
            report = json.loads(proc.stdout)
            assert report["mode"] == "hot-cold-pause" and report["downtime_seconds"] == 0.0
            assert report["freeze_seconds"] > 0 and "pause" in report["phases"]
            assert report["services_before"] == SERVICES == report["services_after"]
            assert set(_containers(stack).values()) == {"running"}
            reports.append(report)
    asked = requests.summary()
    assert all(requests.summary(*span)["requests"] for span in spans), spans  # throughout
    assert asked["posts"] > 0, asked
    assert asked["failed"] == 0, f"HTTP requests failed during --pause runs: {asked}"
    assert not events.held(), f"containers stopped or started during --pause runs: {events.held()}"
    assert events.count("pause") == events.count("unpause") == RUNS * len(SERVICES)

    for report in reports:
        snapshot = dest / "snapshots" / report["snapshot"]
        manifest = json.loads((snapshot / "manifest.json").read_text())
        assert manifest["mode"] == "hot-cold-pause"
        assert manifest["consistency"].startswith("crash-consistent")
        result = checker.check_snapshot(str(snapshot / "folder"), crash_ok=True)
        assert result["ok"], (report["snapshot"], result["errors"])
        assert result["check_ok"] and not result["missing_files"] and not result["bad_sha256"]
        # committed before the freeze: created a second before it (a row whose INSERT ran
        # just before the pause may commit only after the thaw: then it is not in the copy)
        before = checker.live_rows(stack.folder, stack.compose_cmd,
                                   before=_utc(manifest["times"]["pause_begin"], 1.0))  # fmt: skip
        assert before["rows"] > 0
        assert set(before["ids"]) <= set(result["ids"]), report["snapshot"]
    # verify boots the latest: crash recovery is expected of a frozen copy, not an error
    verified = run_cli("verify", "--database", "--dest", dest, env=env)
    said = verified.stdout + verified.stderr
    assert "expected: a hot-cold --pause snapshot is crash-consistent" in said, said
    rows = checker.live_rows(stack.folder, stack.compose_cmd)["rows"]
    wait_for_rows(stack.folder, stack.compose_cmd, at_least=rows + 10, timeout=60)
    freezes = sorted(r["freeze_seconds"] for r in reports)
    print(f"\nfreeze: median {freezes[RUNS // 2]:.2f}s, max {freezes[-1]:.2f}s; requests: "
          f"{asked['requests']}, slowest {asked['max_latency']:.2f}s")


def _held_in_the_freeze(stack, dest: Path, tmp_path: Path) -> tuple[subprocess.Popen, dict]:
    """A --pause run held in its frozen pass (the database container paused)."""
    env = {"KLINK_SYNC_COMPOSE": stack.compose_cmd,
           "KLINK_SYNC_STATE_DIR": str(tmp_path / "state")}  # fmt: skip
    db = subprocess.run([*shlex.split(stack.compose_cmd), "ps", "-q", "database"], cwd=stack.folder,
                        capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    bindir, mark = tmp_path / "bin", tmp_path / "frozen-pass-reached"
    bindir.mkdir()
    (bindir / "rsync").write_text(HANG_WHILE_FROZEN.format(rsync=shutil.which("rsync")))
    (bindir / "rsync").chmod(0o755)
    run_env = {**os.environ, **env, "PATH": f"{bindir}:{os.environ['PATH']}",
               "PAUSED_RUN_DB": db, "PAUSED_RUN_MARK": str(mark)}  # fmt: skip
    log = (tmp_path / "paused-run.log").open("w")
    proc = subprocess.Popen([KLINK_SYNC, "hot-cold", "--pause", "--folder", str(stack.folder),
                             "--dest", str(dest)], env=run_env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not mark.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
            pytest.fail(f"the run never reached its frozen pass:\n"
                        f"{(tmp_path / 'paused-run.log').read_text()}")  # fmt: skip
        time.sleep(0.1)
    assert set(_containers(stack).values()) == {"paused"}
    return proc, env


def _no_snapshot(dest: Path) -> None:
    promoted = list((dest / "snapshots").iterdir()) if (dest / "snapshots").exists() else []
    assert promoted == [], promoted


def test_a_signal_in_the_freeze_leaves_the_stack_thawed(fresh_stack, tmp_path):
    """SIGTERM: the run thaws, then exits 1. SIGKILL (a power cut of klink-sync): the
    stack stays frozen until the next command, here `recover` (what the timer's
    ExecStopPost= and the boot unit run). One stack for both, one after the other."""
    stack = fresh_stack[0]
    for how in ("SIGTERM", "SIGKILL"):
        (tmp_path / how).mkdir()
        dest = tmp_path / how / "backup"
        proc, env = _held_in_the_freeze(stack, dest, tmp_path / how)
        if how == "SIGTERM":
            os.kill(proc.pid, signal.SIGTERM)  # klink-sync alone, as systemd's stop would
            assert proc.wait(timeout=60) == 1
            said = (tmp_path / how / "paused-run.log").read_text()
            assert "klink-sync: error: interrupted by SIGTERM" in said, said
            assert "thawed (docker unpause): 3 container(s)" in said, said
        else:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            time.sleep(1)
            assert set(_containers(stack).values()) == {"paused"}, "thawed by nobody?"
            said = run_cli("recover", env=env).stdout
            assert "thawed database, engine, kbox: a klink-sync run that died had frozen" in said
        assert set(_containers(stack).values()) == {"running"}, how
        assert not list((tmp_path / how / "state" / "holds").glob("*.json")), "record left"
        _no_snapshot(dest)
        rows = checker.live_rows(stack.folder, stack.compose_cmd)["rows"]
        wait_for_rows(stack.folder, stack.compose_cmd, at_least=rows + 5, timeout=60)


def _shimmed(stack, tmp_path: Path, dest: Path, shim: str, extra: dict, code: int) -> str:
    """A --pause run with Docker misbehaving as `shim` says: its last stderr line."""
    path = f"{tmp_path / 'bin'}:{os.environ['PATH']}"
    env = {"KLINK_SYNC_COMPOSE": stack.compose_cmd, "PATH": path, "SHIM": shim,
           "KLINK_SYNC_STATE_DIR": str(tmp_path / "state"), **extra}  # fmt: skip
    with Events(_project(stack)) as events:
        proc = run_cli("hot-cold", "--pause", "--folder", stack.folder, "--dest", dest,
                       env=env, check=code)  # fmt: skip
    ours = {"started": lambda e: e[0] == "start", "oneoff": lambda e: "oneoff" in e[1]}
    assert not [e for e in events.held() if not ours.get(shim, lambda e: False)(e)]
    _no_snapshot(dest)
    return proc.stderr.strip().splitlines()[-1]


def test_a_freeze_that_does_not_hold_is_never_promoted(fresh_stack, tmp_path):
    """docker pause failing for one container, a thaw or a start by someone else during the
    copy, the daemon away at the thaw, a tampered record: each one fails the run, thaws
    what this run froze and nothing else."""
    stack, dest = fresh_stack[0], tmp_path / "backup"
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "docker").write_text(DOCKER_SHIM.format(docker=shutil.which("docker")))
    (tmp_path / "bin" / "docker").chmod(0o755)
    holds = tmp_path / "state" / "holds"
    env = {"KLINK_SYNC_COMPOSE": stack.compose_cmd, "KLINK_SYNC_STATE_DIR": str(tmp_path / "state")}

    said = _shimmed(stack, tmp_path, dest, "admin-pause", {}, 1)
    assert said.startswith("klink-sync: error: ") and "already paused" in said, said
    states = _containers(stack)
    admins = max(states)  # the last id: the one the admin paused stays paused
    assert states.pop(admins) == "paused" and set(states.values()) == {"running"}
    subprocess.run(["docker", "unpause", admins], check=True, capture_output=True)
    assert not list(holds.glob("*.json"))

    said = _shimmed(stack, tmp_path, dest, "thawed", {}, 1)
    assert "ran during the frozen copy" in said and "nothing promoted" in said, said
    assert set(_containers(stack).values()) == {"running"} and not list(holds.glob("*.json"))

    # one that ran and went during the copy: no state at the end shows it, the events do
    said = _shimmed(stack, tmp_path, dest, "oneoff",
                    {"SHIM_PROJECT": _project(stack), "SHIM_SERVICE": "kbox"}, 1)  # fmt: skip
    assert "ran during the frozen copy" in said, said
    assert set(_containers(stack).values()) == {"running"} and not list(holds.glob("*.json"))

    stack.compose("stop", "engine")
    engine = subprocess.run([*shlex.split(stack.compose_cmd), "ps", "-aq", "engine"],
                            cwd=stack.folder, capture_output=True, text=True).stdout.strip()
    said = _shimmed(stack, tmp_path, dest, "started", {"SHIM_START": engine}, 1)
    assert "ran during the frozen copy" in said, said
    assert set(_containers(stack).values()) == {"running"} and not list(holds.glob("*.json"))

    said = _shimmed(stack, tmp_path, dest, "away", {"SHIM_AWAY": str(tmp_path / "away")}, 70)
    assert "containers still frozen" in said and "docker unpause" in said, said
    assert set(_containers(stack).values()) == {"paused"} and list(holds.glob("*.json"))
    assert "thawed database, engine, kbox" in run_cli("recover", env=env).stdout
    assert set(_containers(stack).values()) == {"running"} and not list(holds.glob("*.json"))

    # a record is data: a container of another project named in it is not thawed
    other = subprocess.run(["docker", "run", "-d", "--rm", "klink-sample/base:bookworm", "sleep",
                            "300"], capture_output=True, text=True, check=True).stdout.strip()
    try:
        subprocess.run(["docker", "pause", other], check=True, capture_output=True)
        key = hashlib.sha256(os.fsencode(os.path.realpath(stack.folder))).hexdigest()[:16]
        record = {"folder": str(stack.folder), "compose": shlex.split(stack.compose_cmd),
                  "compose_files": [str(stack.folder / "docker-compose.yml")],
                  "services": SERVICES, "how": "paused", "pid": 1, "since": "x",
                  "containers": [other]}  # fmt: skip
        (holds / f"{key}.json").write_text(json.dumps(record))
        (holds / f"{key}.json").chmod(0o600)
        run_cli("recover", env=env)
        assert _state(other) == "paused" and not list(holds.glob("*.json"))
    finally:
        subprocess.run(["docker", "rm", "-f", other], capture_output=True)
    rows = checker.live_rows(stack.folder, stack.compose_cmd)["rows"]
    wait_for_rows(stack.folder, stack.compose_cmd, at_least=rows + 5, timeout=60)


def _state(cid: str) -> str:
    return subprocess.run(["docker", "inspect", "-f", "{{.State.Status}}", cid],
                          capture_output=True, text=True, check=True).stdout.strip()
