"""The sample K-Link stack on a real Docker daemon, via pytest-docker.

No skips: `make test` installs and starts Docker; a missing daemon fails here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.sample import checker, probe  # noqa: F401 (the e2e tests import them from here)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SAMPLE = ROOT / "scripts" / "sample-stack"
SERVICES = ["database", "engine", "kbox"]

# Docker misbehaving at chosen moments, through a `docker` first on the PATH ($SHIM):
#   admin-pause  the admin pauses the last container just before klink-sync's pause
#   thawed       someone unpauses the last container right after the pause
#   started      a stopped container of the project is started just before the pause
#   away         the daemon stops answering unpause and inspect from the first unpause on
#   oneoff       right after the pause, a one-off container of the project's service
#                $SHIM_SERVICE runs and is gone (as `compose run --rm` would)
DOCKER_SHIM = """#!/bin/sh
real={docker}
for last in "$@"; do :; done
case "$SHIM:$1" in
  admin-pause:pause) "$real" pause "$last" >/dev/null ;;
  thawed:pause) "$real" "$@"; rc=$?; "$real" unpause "$last" >/dev/null; exit $rc ;;
  started:pause) "$real" start "$SHIM_START" >/dev/null ;;
  away:unpause) : > "$SHIM_AWAY" ;;
  oneoff:pause) "$real" "$@"; rc=$?
    "$real" run --rm --name "klink-oneoff-$$" --label "com.docker.compose.project=$SHIM_PROJECT" \
      --label "com.docker.compose.service=$SHIM_SERVICE" klink-sample/base:bookworm true >/dev/null
    exit $rc ;;
esac
if [ "$SHIM" = away ] && [ -e "$SHIM_AWAY" ] && [ "$1" != compose ]; then
  echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock." >&2
  exit 1
fi
exec "$real" "$@"
"""



@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items):
    """The e2e tests run one after the other in one worker (`make test` runs two, with
    `--dist loadgroup`): they share the sample stack and the Docker daemon; the other
    worker takes the unit and integration tests meanwhile."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.xdist_group("docker"))


@pytest.fixture(scope="session")
def compose_cmd() -> str:
    """The compose command under test (KLINK_E2E_COMPOSE, default Compose v2)."""
    return os.environ.get("KLINK_E2E_COMPOSE", "docker compose")


@pytest.fixture(scope="session")
def docker_compose_command(compose_cmd: str) -> str:
    return compose_cmd


@pytest.fixture(scope="session")
def stack_folder(tmp_path_factory) -> Path:
    docker = subprocess.run(["docker", "info"], capture_output=True)
    if docker.returncode != 0:
        pytest.fail("no Docker daemon: run `make test` (it installs and starts dockerd)")
    # a Compose project of its own: parallel sessions never drive the same containers
    folder = tmp_path_factory.mktemp("e2e") / f"k-link-e2e-{os.getpid()}"
    shutil.copytree(SAMPLE / "deploy", folder)
    return folder


@pytest.fixture(scope="session")
def docker_compose_file(stack_folder: Path) -> str:
    return str(stack_folder / "docker-compose.yml")


@pytest.fixture(scope="session")
def docker_compose_project_name(stack_folder: Path) -> str:
    return stack_folder.name  # what Compose derives from the folder, as admins run it


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    return ["up -d"]  # Compose v1 has no --wait; the fixture waits for rows instead


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    return ["down -t 30"]


def running_services(folder: Path, compose_cmd: str) -> list[str]:
    out = subprocess.run(
        [*shlex.split(compose_cmd), "ps", "--services", "--filter", "status=running"],
        cwd=folder, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return sorted(out.split())


def compose(folder: Path, compose_cmd: str, *args: str) -> None:
    subprocess.run([*shlex.split(compose_cmd), *args], cwd=folder, check=True,
                   capture_output=True)  # fmt: skip


def wait_for_rows(folder: Path, compose_cmd: str, at_least: int, timeout: float = 180) -> int:
    deadline = time.monotonic() + timeout
    rows = 0
    while time.monotonic() < deadline:
        try:
            rows = checker.live_rows(folder, compose_cmd)["rows"]
        except Exception:  # the database may still be starting
            rows = 0
        if rows >= at_least:
            return rows
        time.sleep(1)
    pytest.fail(f"the sample stack wrote only {rows} rows in {timeout}s")


@pytest.fixture(scope="session")
def sample_stack(docker_services, stack_folder: Path, compose_cmd: str) -> Path:
    """The sample stack, up and writing documents and rows."""
    wait_for_rows(stack_folder, compose_cmd, at_least=40)
    assert running_services(stack_folder, compose_cmd) == SERVICES
    return stack_folder


class SampleStack:
    """A sample stack of its own (own folder, own Compose project), for tests that break it."""

    def __init__(self, folder: Path, compose_cmd: str):
        self.folder, self.compose_cmd = folder, compose_cmd

    def compose(self, *args: str) -> None:
        compose(self.folder, self.compose_cmd, *args)

    def running(self) -> list[str]:
        return running_services(self.folder, self.compose_cmd)

    def down(self) -> None:
        if (self.folder / "docker-compose.yml").exists():
            subprocess.run([*shlex.split(self.compose_cmd), "down", "-v", "-t", "30"],
                           cwd=self.folder, capture_output=True)  # fmt: skip


@pytest.fixture
def fresh_stack(tmp_path: Path, compose_cmd: str):
    """A new sample stack in tmp_path, up and writing; taken down afterwards."""
    folder = tmp_path / f"kl-{os.getpid()}-{tmp_path.name[-12:].strip('_')}"
    shutil.copytree(SAMPLE / "deploy", folder)
    stacks = [SampleStack(folder, compose_cmd)]
    stacks[0].compose("up", "-d")
    wait_for_rows(folder, compose_cmd, at_least=40)
    yield stacks
    for stack in stacks:
        stack.down()


@pytest.fixture
def live_stack(tmp_path: Path, compose_cmd: str):
    """A new sample stack with in-place rewrites off (REWRITE_INTERVAL=0), as the live-mode
    tests run it: a K-Box writes each document once (a new version is a new file), so a
    document's sha256 stays what its row says. Taken down afterwards, also when it never
    came up."""
    folder = tmp_path / f"kl-{os.getpid()}-{tmp_path.name[-12:].strip('_')}"
    shutil.copytree(SAMPLE / "deploy", folder)
    env = folder / ".env"
    env.write_text(re.sub(r"(?m)^REWRITE_INTERVAL=.*$", "REWRITE_INTERVAL=0", env.read_text()))
    stack = SampleStack(folder, compose_cmd)
    try:
        stack.compose("up", "-d")
        wait_for_rows(folder, compose_cmd, at_least=40)
        yield stack
    finally:
        stack.down()


# container events that mean a service stopped or started (a pause or unpause does not)
STOPPING = {"die", "stop", "kill", "start", "restart", "create", "destroy", "oom"}


class Events:
    """Every container event of a project while the block runs, as (action, name): a live
    `docker events` (replayed history is cut to the daemon's last few hundred events, and
    healthchecks fill it)."""

    def __init__(self, project: str):
        self.project, self.seen = project, []

    def __enter__(self) -> Events:
        self.proc = subprocess.Popen(
            ["docker", "events", "--filter", "type=container",
             "--filter", f"label=com.docker.compose.project={self.project}",
             "--format", "{{.Action}}\t{{.Actor.Attributes.name}}"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(0.5)  # subscribed before the first run begins
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.5)  # the last events reach the stream
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=30)
        # an exec's action carries its command ("exec_start: /bin/sh -c ..."): the name only
        self.seen = [(action.split(":", 1)[0], name) for action, _, name in
                     (line.partition("\t") for line in out.splitlines() if line)]  # fmt: skip

    def held(self) -> list:
        return [(action, name) for action, name in self.seen if action in STOPPING]

    def count(self, action: str) -> int:
        return sum(1 for seen, _ in self.seen if seen == action)
