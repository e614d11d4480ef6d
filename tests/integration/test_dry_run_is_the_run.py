"""--dry-run prints the commands the run executes: the same rsync and compose command lines,
for hot-cold, cold and restore, to a local folder and over ssh (real rsync, real sshd, the
stand-in compose). Nothing changes between the dry run and the run, so the lists must be
equal, but for temporary names (the ssh connection's control socket)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.test_hot_cold import ALL, make_deployment, set_running
from tests.sshd import Sshd, sshd  # noqa: F401 (the fixture)

COMPOSE_VERBS = ("stop", "start", "up")
TEMPORARY = re.compile(r"klink-sync-ssh-[^/]+/mux")


def _normal(command: str) -> str:
    return TEMPORARY.sub("klink-sync-ssh-X/mux", command)


def planned(stdout: str) -> list[str]:
    """The commands a dry run prints: `  [phase] COMMAND`, leaving out `(rules)`."""
    found = []
    for line in stdout.splitlines():
        match = re.match(r"^  \[[a-z]+\] (.*)$", line)
        if match and not match.group(1).startswith("("):
            found.append(_normal(match.group(1)))
    return sorted(found)


def executed(stderr: str, compose: str) -> list[str]:
    """The rsync copies and compose stop/start/up a `-v` run logged as it ran them."""
    found = []
    for line in stderr.splitlines():
        match = re.search(r" DEBUG run: (.*)$", line)
        if not match or not match.group(1).startswith(("rsync ", compose + " ")):
            continue  # an ssh script (over several lines), docker inspect ...
        argv = shlex.split(match.group(1))
        copy = argv[0] == "rsync" and argv[1:] != ["--version"]
        verb = [a for a in argv[1:] if not a.startswith("-") and not a.endswith(".yml")]
        if copy or (argv[0] == compose and verb[:1] and verb[0] in COMPOSE_VERBS):
            found.append(_normal(match.group(1)))
    return sorted(found)


@pytest.fixture(params=["local", "ssh"])
def where(request, tmp_path: Path, klink_env: dict) -> tuple[str, dict]:
    """A destination spec and the environment to reach it."""
    if request.param == "local":
        return str(tmp_path / "backup"), klink_env
    server: Sshd = request.getfixturevalue("sshd")
    return server.dest(tmp_path / "backup"), {**klink_env, **server.env}


@pytest.mark.parametrize("verb", ["hot-cold", "cold", "restore"])
def test_the_dry_run_prints_what_the_run_runs(verb, where, tmp_path, klink_env):
    dest, env = where
    folder = make_deployment(tmp_path)
    set_running(env, ALL)
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=env)  # latest: --link-dest
    args = [verb, "--dest", dest, "--folder", folder]
    dry = run_cli(*args, "--dry-run", env=env)
    real = run_cli(*args, "-v", env=env)
    compose = env["KLINK_SYNC_COMPOSE"]
    plan, ran = planned(dry.stdout), executed(real.stderr, compose)
    assert ran, real.stderr
    assert plan == ran
    assert any(c.startswith("rsync") for c in ran) and any(" stop " in c for c in ran)
