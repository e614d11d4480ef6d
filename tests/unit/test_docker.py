"""docker.py: every docker and compose command line, compared with the literal argv
klink-sync built before the builders moved there (stack.py, verify.py, execute.py,
restore.py)."""

from __future__ import annotations

from pathlib import Path

from klink_sync import dbcheck, docker
from klink_sync.stack import CANDIDATES, Stack

V2 = ("docker", "compose")
FILES = (Path("/srv/k/docker-compose.yml"), Path("/srv/k/docker-compose.override.yml"))
F = ("-f", "/srv/k/docker-compose.yml", "-f", "/srv/k/docker-compose.override.yml")
STATES = ('{{index .Config.Labels "com.docker.compose.service"}}\t'
          '{{index .Config.Labels "com.docker.compose.oneoff"}}\t'
          "{{.ID}}\t{{.State.Status}}\t"
          "{{if .State.Health}}{{.State.Health.Status}}{{end}}")  # fmt: skip
EXITS = ('{{index .Config.Labels "com.docker.compose.service"}} '
         "{{.State.ExitCode}} {{.State.OOMKilled}}")  # fmt: skip


# --- compose -----------------------------------------------------------------------------


def test_compose_argv_names_every_file_in_order():
    assert docker.compose_argv(V2, FILES, "ps", "-q") == (*V2, *F, "ps", "-q")
    assert docker.compose_argv(("docker-compose",), (), "stop") == ("docker-compose", "stop")
    assert docker.compose_argv(("docker-compose",), ["a.yml"]) == ("docker-compose", "-f", "a.yml")


def test_compose_verbs_are_todays_command_lines():
    assert docker.compose_version_argv(V2) == ("docker", "compose", "version")
    assert docker.compose_version_argv(("docker-compose",)) == ("docker-compose", "version")
    assert docker.compose_ids_argv(V2, FILES) == (*V2, *F, "ps", "-a", "-q")
    assert docker.compose_ids_argv(V2, FILES, stopped=False) == (*V2, *F, "ps", "-q")
    assert docker.compose_ids_argv(V2, FILES, ["database", "kbox"]) == (
        *V2, *F, "ps", "-a", "-q", "database", "kbox")  # fmt: skip
    assert docker.compose_running_argv(V2, FILES) == (
        *V2, *F, "ps", "--services", "--filter", "status=running")  # fmt: skip
    assert docker.compose_stop_argv(V2, FILES, 30) == (*V2, *F, "stop", "-t", "30")
    assert docker.compose_start_argv(V2, FILES, ["database", "engine"]) == (
        *V2, *F, "start", "database", "engine")  # fmt: skip
    assert docker.compose_up_argv(V2, FILES) == (*V2, *F, "up", "-d")
    assert docker.compose_up_argv(V2, FILES, ("kbox",)) == (*V2, *F, "up", "-d", "kbox")


def test_compose_candidates_v2_then_v1():
    assert docker.COMPOSE_COMMANDS == CANDIDATES == (("docker", "compose"), ("docker-compose",))


def test_stack_argv_and_start_command_delegate_to_docker():
    stack = Stack(V2, Path("/srv/my k"), FILES)
    assert stack.argv("stop", "-t", "10") == (*V2, *F, "stop", "-t", "10")
    assert stack.argv() == (*V2, *F)
    files = " ".join(F)
    assert stack.start_command(["database", "kbox"]) == (
        f"cd '/srv/my k' && docker compose {files} start database kbox")  # fmt: skip
    assert stack.start_command(["kbox"], recreate=True) == (
        f"cd '/srv/my k' && docker compose {files} up -d kbox")  # fmt: skip


def test_stack_has_no_env_field():
    assert "env" not in Stack.__dataclass_fields__


# --- docker inspect ----------------------------------------------------------------------


def test_inspect_formats_are_todays():
    assert docker.STATES_FORMAT == STATES
    assert docker.EXITS_FORMAT == EXITS
    assert docker.states_argv(["a1", "b2"]) == ("docker", "inspect", "--format", STATES, "a1", "b2")
    assert docker.exits_argv(("a1",)) == ("docker", "inspect", "--format", EXITS, "a1")
    assert docker.inspect_argv("{{.ID}}", "x", "y") == ("docker", "inspect", "--format",
                                                        "{{.ID}}", "x", "y")  # fmt: skip


# --- volumes (execute._volume_mountpoint, restore._volume_path) ----------------------------


def test_volume_argv_are_todays():
    assert docker.volume_mountpoint_argv("k_database") == (
        "docker", "volume", "inspect", "--format", "{{.Mountpoint}}", "k_database")  # fmt: skip
    assert docker.volume_create_argv("k_database", "k", "database") == (
        "docker", "volume", "create",
        "--label", "com.docker.compose.project=k",
        "--label", "com.docker.compose.volume=database", "k_database")  # fmt: skip


# --- the throwaway server of verify --database ----------------------------------------------


def test_verify_server_argv_is_todays():
    assert dbcheck.run_argv("n", "img:1", "/tmp/copy", "/tmp/v.cnf") == (
        "docker", "run", "-d", "--name", "n", "--label", "klink-sync.verify=1",
        "--network", "none", "-v", "/tmp/copy:/var/lib/mysql",
        "-v", "/tmp/v.cnf:/etc/mysql/conf.d/zz-klink-sync-verify.cnf:ro", "img:1")  # fmt: skip
    assert docker.run_argv("n", "img", label="l=1", network="none") == (
        "docker", "run", "-d", "--name", "n", "--label", "l=1",
        "--network", "none", "img")  # fmt: skip


def test_verify_container_commands_are_todays():
    assert docker.exec_argv("n", "mariadb-admin", "ping") == (
        "docker", "exec", "n", "mariadb-admin", "ping")  # fmt: skip
    assert docker.exec_argv("n", "mysqlcheck", "--all-databases") == (
        "docker", "exec", "n", "mysqlcheck", "--all-databases")  # fmt: skip
    assert docker.logs_argv("n", tail=100) == ("docker", "logs", "--tail", "100", "n")
    assert docker.logs_argv("n") == ("docker", "logs", "n")
    assert docker.running_argv("n") == ("docker", "inspect", "--format", "{{.State.Running}}", "n")
    assert docker.container_exists_argv("n") == (
        "docker", "container", "inspect", "--format", "{{.Id}}", "n")  # fmt: skip
    assert docker.remove_argv("n") == ("docker", "rm", "-f", "-v", "n")


def test_builders_return_tuples_of_str():
    built = [
        docker.compose_argv(V2, FILES, "ps"), docker.compose_stop_argv(V2, FILES, 5),
        docker.states_argv(["a"]), docker.volume_mountpoint_argv("v"),
        docker.volume_create_argv("v", "p", "k"), docker.logs_argv("n", 3),
        dbcheck.run_argv("n", "i", "/d", "/c"),
    ]  # fmt: skip
    for argv in built:
        assert isinstance(argv, tuple) and all(isinstance(a, str) for a in argv), argv
