"""Every `docker ...` and compose command line klink-sync runs, as data.

Pure functions returning argv tuples: nothing here runs a process (`process.run`
does). Keeping them in one place lets the unit tests pin the exact command lines
and lets a reader see everything klink-sync asks of Docker at a glance.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike

DOCKER = "docker"
# Compose v2 (the docker CLI plugin), then v1: tried in this order when none is configured.
COMPOSE_COMMANDS = ((DOCKER, "compose"), ("docker-compose",))

# The label Compose puts on every container it makes, naming its service.
SERVICE_LABEL = '{{index .Config.Labels "com.docker.compose.service"}}'
# service, one-off?, id, status, health: one tab-separated line per container.
STATES_FORMAT = "\t".join((SERVICE_LABEL,
                           '{{index .Config.Labels "com.docker.compose.oneoff"}}',
                           "{{.ID}}", "{{.State.Status}}",
                           "{{if .State.Health}}{{.State.Health.Status}}{{end}}"))  # fmt: skip
# service, exit code, OOM-killed?: how each container ended.
EXITS_FORMAT = SERVICE_LABEL + " {{.State.ExitCode}} {{.State.OOMKilled}}"


# ------------------------------------------------------------------ compose


def compose_argv(
    compose: Sequence[str], files: Sequence[str | PathLike[str]], *args: str
) -> tuple[str, ...]:
    """A compose command naming every compose file, as the admin's own `-f` would:
    the project is then the same whichever file set klink-sync found."""
    named = [a for f in files for a in ("-f", str(f))]
    return (*compose, *named, *args)


def compose_version_argv(compose: Sequence[str]) -> tuple[str, ...]:
    """Whether a compose command exists and answers (v2 plugin or v1 binary)."""
    return (*compose, "version")


def compose_ids_argv(
    compose: Sequence[str], files: Sequence[str | PathLike[str]],
    services: Sequence[str] = (), stopped: bool = True,
) -> tuple[str, ...]:  # fmt: skip
    """The project's container ids (with `stopped`: the stopped ones too), one a line:
    a later `docker inspect` of them costs one call where compose would take several."""
    return compose_argv(compose, files, "ps", *(("-a",) if stopped else ()), "-q", *services)


def compose_running_argv(
    compose: Sequence[str], files: Sequence[str | PathLike[str]]
) -> tuple[str, ...]:
    """Compose's own list of running services: for a stand-in compose without Docker."""
    return compose_argv(compose, files, "ps", "--services", "--filter", "status=running")


def compose_stop_argv(
    compose: Sequence[str], files: Sequence[str | PathLike[str]], timeout: int
) -> tuple[str, ...]:
    """Stop the whole project, waiting `timeout` seconds before Docker kills a service."""
    return compose_argv(compose, files, "stop", "-t", str(timeout))


def compose_start_argv(
    compose: Sequence[str], files: Sequence[str | PathLike[str]], services: Sequence[str]
) -> tuple[str, ...]:
    """Start existing containers again: exactly the services that ran before."""
    return compose_argv(compose, files, "start", *services)


def compose_up_argv(
    compose: Sequence[str], files: Sequence[str | PathLike[str]], services: Sequence[str] = ()
) -> tuple[str, ...]:
    """Create (if needed) and start: a restored or new folder may have no containers."""
    return compose_argv(compose, files, "up", "-d", *services)


def pause_argv(ids: Sequence[str]) -> tuple[str, ...]:
    """Freeze containers (cgroup freezer): their processes stop being scheduled, their
    connections stay open, so a request waits instead of failing."""
    return (DOCKER, "pause", *ids)


def unpause_argv(ids: Sequence[str]) -> tuple[str, ...]:
    return (DOCKER, "unpause", *ids)


PROJECT_LABEL = "com.docker.compose.project"


def project_of_argv(ids: Sequence[str]) -> tuple[str, ...]:
    """The Compose project each container belongs to, as Compose labelled it."""
    return inspect_argv(f'{{{{index .Config.Labels "{PROJECT_LABEL}"}}}}', *ids)


def project_containers_argv(project: str) -> tuple[str, ...]:
    """Every container of a project, one-off ones too, with its state (running, paused...)
    and service: what a freeze must hold, and the proof afterwards that it held."""
    return (DOCKER, "ps", "-a", "--no-trunc", "--filter", f"label={PROJECT_LABEL}={project}",
            "--format", '{{.ID}} {{.State}} {{.Label "com.docker.compose.service"}}')  # fmt: skip


def events_argv(project: str, since: float) -> tuple[str, ...]:
    """Docker's container events of a project from `since` (a Unix time) on, as they come:
    action, container id and Compose service, tab-separated, one event a line."""
    return (DOCKER, "events", "--since", f"{since:.6f}", "--filter", "type=container",
            "--filter", f"label={PROJECT_LABEL}={project}", "--format",
            '{{.Action}}\t{{.Actor.ID}}\t{{index .Actor.Attributes "com.docker.compose.service"}}')


# ------------------------------------------------------------------ inspect


def inspect_argv(fmt: str, *names: str) -> tuple[str, ...]:
    """One `docker inspect` of many objects: one line each, shaped by a Go template."""
    return (DOCKER, "inspect", "--format", fmt, *names)


def states_argv(ids: Sequence[str]) -> tuple[str, ...]:
    """Service, one-off flag, id, status and health of each container (see STATES_FORMAT)."""
    return inspect_argv(STATES_FORMAT, *ids)


def exits_argv(ids: Sequence[str]) -> tuple[str, ...]:
    """Service, exit code and OOM flag of each container: was it killed or did it exit?"""
    return inspect_argv(EXITS_FORMAT, *ids)


# ------------------------------------------------------------------ volumes


def volume_mountpoint_argv(name: str) -> tuple[str, ...]:
    """Where a named volume's files are on this host: copied from or restored into."""
    return (DOCKER, "volume", "inspect", "--format", "{{.Mountpoint}}", name)


def volume_create_argv(name: str, project: str, key: str) -> tuple[str, ...]:
    """A named volume labelled as Compose labels its own, so Compose adopts it later
    instead of warning that it was not created by Compose."""
    return (DOCKER, "volume", "create",
            "--label", f"com.docker.compose.project={project}",
            "--label", f"com.docker.compose.volume={key}", name)  # fmt: skip


# ------------------------------------------------------- throwaway containers


def run_argv(
    name: str, image: str, *, label: str, network: str, volumes: Sequence[str] = ()
) -> tuple[str, ...]:
    """A detached container with a name and a label (so leftovers can be found), its
    network and its `-v` mounts; the image's own command runs."""
    mounts = [a for v in volumes for a in ("-v", v)]
    return (DOCKER, "run", "-d", "--name", name, "--label", label,
            "--network", network, *mounts, image)  # fmt: skip


def exec_argv(name: str, *argv: str) -> tuple[str, ...]:
    """A command inside a running container."""
    return (DOCKER, "exec", name, *argv)


def logs_argv(name: str, tail: int | None = None) -> tuple[str, ...]:
    """A container's output (the last `tail` lines): why a server stopped, or recovered."""
    return (DOCKER, "logs", *(("--tail", str(tail)) if tail is not None else ()), name)


def running_argv(name: str) -> tuple[str, ...]:
    """Prints `true` while the container runs: has the server given up?"""
    return inspect_argv("{{.State.Running}}", name)


def container_exists_argv(name: str) -> tuple[str, ...]:
    """Succeeds only if a container (not an image or volume) has that name."""
    return (DOCKER, "container", "inspect", "--format", "{{.Id}}", name)


def remove_argv(name: str) -> tuple[str, ...]:
    """Remove a container, running or not, with its anonymous volumes: nothing left behind."""
    return (DOCKER, "rm", "-f", "-v", name)


# ------------------------------------------------------- mariadb-backup (live)

# What the database's own image must hold for `live`: the new name, then the old one.
BACKUP_PROGRAMS = ("mariadb-backup", "mariabackup")
BACKUP_MOUNT = "/klink-sync-backup"  # the scratch folder, inside the throwaway containers
BACKUP_DATA = f"{BACKUP_MOUNT}/data"  # mariadb-backup's --target-dir
CLIENT_CNF = "/run/klink-sync/client.cnf"  # the 0600 defaults file holding the login
# image id, image name, then the container's addresses on its networks (space-separated)
CONTAINER_FORMAT = ("{{.Image}}\t{{.Config.Image}}\t"
                    "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}")  # fmt: skip


def container_argv(cid: str) -> tuple[str, ...]:
    """The image a container runs (its id: a tag may have moved since), the image's name,
    and its addresses (see CONTAINER_FORMAT)."""
    return inspect_argv(CONTAINER_FORMAT, cid)


def which_backup_argv(image: str) -> tuple[str, ...]:
    """Prints the path of the image's mariadb-backup (or mariabackup); fails without one.
    Asked before anything is copied: `live` refuses an image without it."""
    found = " || ".join(f"command -v {p}" for p in BACKUP_PROGRAMS)
    return (DOCKER, "run", "--rm", "--entrypoint", "sh", image, "-c", found)


def mariadb_backup_argv(
    image: str, program: str, container: str, scratch: str, cnf: str, datadir: str, host: str,
    name: str,
) -> tuple[str, ...]:  # fmt: skip
    """mariadb-backup --backup from the database's own image (the server's version) in a
    throwaway container that sees the datadir as the server does (--volumes-from) and
    reaches it on its own network namespace (--network container:); the copy lands in
    `scratch`. The login is read from the defaults file `cnf`, never from argv or env."""
    return (DOCKER, "run", "--rm", "--name", name, "--network", f"container:{container}",
            "--volumes-from", container, "-v", f"{scratch}:{BACKUP_MOUNT}",
            "-v", f"{cnf}:{CLIENT_CNF}:ro", "--entrypoint", program, image,
            f"--defaults-extra-file={CLIENT_CNF}", "--backup", f"--target-dir={BACKUP_DATA}",
            f"--datadir={datadir}", f"--host={host}")  # fmt: skip


def mariadb_prepare_argv(image: str, program: str, scratch: str, name: str) -> tuple[str, ...]:
    """mariadb-backup --prepare: applies the redo log copied with the files, so the copy
    starts as after a clean shutdown (no network, no server)."""
    return (DOCKER, "run", "--rm", "--name", name, "--network", "none",
            "-v", f"{scratch}:{BACKUP_MOUNT}", "--entrypoint", program, image, "--prepare",
            f"--target-dir={BACKUP_DATA}")  # fmt: skip


def chown_argv(image: str, scratch: str, uid: int, gid: int, name: str) -> tuple[str, ...]:
    """The prepared files belong to whoever ran mariadb-backup; the server needs them as the
    datadir's owner has them (numeric: the host may not know the container's names)."""
    return (DOCKER, "run", "--rm", "--name", name, "--network", "none",
            "-v", f"{scratch}:{BACKUP_MOUNT}", "--entrypoint", "chown", image, "-R",
            f"{uid}:{gid}", BACKUP_DATA)  # fmt: skip
