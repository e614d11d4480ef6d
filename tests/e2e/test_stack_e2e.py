"""What the run asks Docker about the stack, and what it starts again."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

from klink_sync.compose import find_compose_files
from klink_sync.stack import Stack
from tests.conftest import run_cli
from tests.e2e.conftest import SERVICES, compose, running_services


def _state(cid: str) -> str:
    return subprocess.run(["docker", "inspect", "--format", "{{.State.Status}}", cid],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip


def test_a_one_off_container_does_not_make_its_stopped_service_running(
    sample_stack: Path, compose_cmd: str, tmp_path: Path
):
    """A stopped service with a one-off `compose run` container of it is not running (Compose's
    `ps --services --filter status=running` counts it, and starting the service after the
    backup would start what the admin had stopped). The survey (one compose call, one docker
    call) names the running containers; the wait after the start asks those."""
    stack = Stack(tuple(shlex.split(compose_cmd)), sample_stack, find_compose_files(sample_stack))
    one_off = f"klink-oneoff-{os.getpid()}"
    compose(sample_stack, compose_cmd, "stop", "engine")
    try:
        compose(sample_stack, compose_cmd, "run", "-d", "--no-deps", "--name", one_off,
                "--entrypoint", "sleep", "engine", "120")  # fmt: skip
        assert _state(one_off) == "running"
        survey = stack.survey()
        assert survey.running == ("database", "kbox") == stack.running_services()
        ids = survey.ids(["database", "kbox"])
        assert sorted(survey.containers) == ["database", "kbox"] and len(ids) == 2
        assert [_state(cid) for cid in ids] == ["running", "running"]
        # the wait asks those containers; a container gone since: compose is asked instead
        assert stack.health(["database", "kbox"], known=ids) == ([], ("database", "kbox"))
        assert stack.health(["engine"], known=ids) == (["engine"], ("database", "kbox"))
        gone = "0" * 64
        assert stack.health(["database"], known=[gone]) == ([], ("database", "kbox"))
        # a backup starts again what ran: not the stopped engine
        proc = run_cli("hot-cold", "--folder", sample_stack, "--dest", tmp_path / "backup",
                       "--json", env={"KLINK_SYNC_COMPOSE": compose_cmd})  # fmt: skip
        report = json.loads(proc.stdout)
        assert report["services_before"] == report["services_after"] == ["database", "kbox"]
        assert stack.survey().running == ("database", "kbox")
        assert _state(survey.ids(["database"])[0]) == "running"
    finally:
        subprocess.run(["docker", "rm", "-f", one_off], capture_output=True)
        compose(sample_stack, compose_cmd, "start", "engine")
    assert list(stack.survey().running) == SERVICES == running_services(sample_stack, compose_cmd)
