"""`start_timeout` bounds the wait after the start, on a real Docker daemon.

A service whose healthcheck never passes: the backup stops it, copies, starts it again and
waits for it to be healthy. With `start_timeout: 5` the run gives up after about 5 s with
exit 70 naming the service, instead of waiting the default 300 s (before `start_timeout` was
wired into that wait, it was always 300 s, so this test failed by taking five minutes).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import KLINK_SYNC, error_line
from tests.e2e.conftest import running_services

SERVICE = "sickly"

# the sample app image (no Docker Hub here); version 2.4: Compose v1 reads it too
COMPOSE_FILE = f"""\
version: "2.4"
services:
  {SERVICE}:
    image: klink-sample/app:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $$!; done"]
    volumes:
      - "./storage/data:/var/www/dms/storage"
    healthcheck:
      test: ["CMD", "false"]
      interval: 1s
      timeout: 1s
      retries: 1
"""


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


@pytest.fixture
def sickly_stack(tmp_path: Path, compose_cmd: str):
    """A one-service project of its own, running but never healthy; taken down afterwards."""
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.fail("no Docker daemon: run `make test` (it installs and starts dockerd)")
    folder = tmp_path / f"kl-sick-{os.getpid()}-{tmp_path.name[-12:].strip('_')}"
    (folder / "storage" / "data").mkdir(parents=True)
    (folder / "storage" / "data" / "document.txt").write_text("a document\n")
    (folder / "docker-compose.yml").write_text(COMPOSE_FILE)
    compose = [*shlex.split(compose_cmd)]
    try:
        subprocess.run([*compose, "up", "-d"], cwd=folder, check=True, capture_output=True)
        deadline = time.monotonic() + 60  # running, not healthy: it never will be
        while running_services(folder, compose_cmd) != [SERVICE]:
            assert time.monotonic() < deadline, f"{SERVICE} did not start"
            time.sleep(0.5)
        yield folder
    finally:
        subprocess.run([*compose, "down", "-v", "-t", "10"], cwd=folder, capture_output=True)


def _run_timed(argv: list[str], env: dict) -> tuple[int, list[tuple[float, str]], str, float]:
    """Run the command; its exit code, each stderr line with the moment it was read
    (time.monotonic()), stdout, and the moment it exited."""
    proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace")  # fmt: skip
    lines: list[tuple[float, str]] = []

    def read() -> None:
        for line in proc.stderr:
            lines.append((time.monotonic(), line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        stdout = proc.stdout.read()
        code = proc.wait(timeout=120)
    finally:
        proc.kill()
    ended = time.monotonic()
    reader.join(timeout=10)
    return code, lines, stdout, ended


def test_a_never_healthy_service_fails_with_exit_70_within_20s_of_the_start(
    sickly_stack: Path, compose_cmd: str, tmp_path: Path
):
    folder = sickly_stack
    config = tmp_path / "klink-sync.yml"
    config.write_text(f"folder: {folder}\ndest: {tmp_path / 'backup'}\n"
                      "stop_timeout: 10\nstart_timeout: 5\n")  # fmt: skip
    began = time.monotonic()
    code, lines, stdout, ended = _run_timed(
        [KLINK_SYNC, "hot-cold", "--config", str(config)], {"KLINK_SYNC_COMPOSE": compose_cmd}
    )
    stderr = "\n".join(line for _, line in lines)
    assert code == 70, f"exit {code}, wanted 70\nstdout:\n{stdout}\nstderr:\n{stderr}"
    last = error_line(stderr)
    assert f"services still down: {SERVICE}" in last, stderr

    # the start: the moment klink-sync logs that it starts the stack again
    stop_at = next(i for i, (_, line) in enumerate(lines) if "stopping the stack" in line)
    stop = lines[stop_at + 1][0] - lines[stop_at][0]  # until the next line: the first copy
    start_at = next(t for t, line in lines if f"starting again: {SERVICE}" in line)
    after_start = ended - start_at
    print(f"\nwhole run {ended - began:.1f}s, stop {stop:.1f}s, "
          f"start to exit {after_start:.1f}s")  # fmt: skip
    assert after_start < 20, f"exit 70 came {after_start:.1f}s after the start\n{stderr}"
    assert after_start >= 5, f"gave up after {after_start:.1f}s, before start_timeout (5 s)"
    # and from the start of the run: the stop of one `trap 'exit 0' TERM` shell is quick
    assert ended - began < 20 + stop, f"the run took {ended - began:.1f}s\n{stderr}"

    # klink-sync did start it again: it runs, only its healthcheck fails
    assert running_services(folder, compose_cmd) == [SERVICE]
    cid = subprocess.run([*shlex.split(compose_cmd), "ps", "-q", SERVICE], cwd=folder,
                         capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert len(cid) == 1
    state = _docker("inspect", "--format", "{{.State.Status}} {{.State.Health.Status}}", cid[0])
    assert state.split()[0] == "running" and state.split()[1] != "healthy", state
