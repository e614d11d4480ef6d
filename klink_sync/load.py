"""From the command line's words, the environment and the config file to what a command
works on: settings (loaded once), the setup folder, the plan, the destination, the stack.
Flags win over the environment, the environment over the config file, the file over the
defaults."""

from __future__ import annotations

import glob
import logging
import os
import shlex
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import process
from .config import LOG_LEVELS, Settings, load_settings
from .errors import UsageError

if TYPE_CHECKING:  # a command imports only what it works with: `offsite push` no planner
    from .destination import Destination
    from .models import Login, Mode
    from .passes import Cuts
    from .plan import Plan
    from .stack import Stack

log = logging.getLogger(__name__)

USUAL_FOLDERS = ("/home/*/deploy/k-link", "/home/*/k-Link", "/home/*/k-link", "/opt/k-link")


def settings(config: Path | None) -> Settings:
    return load_settings(config)


def find_folder(explicit: Path | None, settings: Settings) -> Path:
    """--folder, KLINK_SYNC_FOLDER, the config, else the one usual place that exists."""
    if explicit is not None or settings.folder:
        folder = explicit or Path(str(settings.folder))
        if not folder.is_dir():
            raise UsageError(f"{folder}: setup folder does not exist")
        return folder.resolve()
    found = sorted({p for pattern in USUAL_FOLDERS for p in glob.glob(pattern)})
    found = [p for p in found if os.path.isdir(p)]
    if len(found) == 1:
        log.info("setup folder: %s (found in the usual places)", found[0])
        return Path(found[0]).resolve()
    if not found:
        raise UsageError("no setup folder given (--folder) and none in " + ", ".join(USUAL_FOLDERS))
    raise UsageError("several setup folders found, choose one with --folder: " + ", ".join(found))


def real_folder(path: str) -> str:
    """A folder's real path (symlinks followed); a file bind keeps its path: it is copied
    with the file's content (rsync --copy-links), where its link points at the time."""
    return path if os.path.isfile(path) else os.path.realpath(path)


def plan(settings: Settings, folder: Path | None, mode: Mode) -> Plan:
    """Setup folder -> compose files -> Plan; the deployment's secrets registered for masking."""
    from .classify import check_overrides
    from .compose import load_deployment
    from .plan import build_plan, resolved

    root = find_folder(folder, settings)
    deployment = resolved(load_deployment(root, settings.compose_files, os.environ),
                          real_folder)  # fmt: skip
    process.add_secrets(deployment.secrets)
    overrides = tuple(
        replace(o, source=os.path.normpath(root / o.source))
        if o.source and o.source.startswith(".") else o
        for o in settings.overrides
    )  # fmt: skip
    check_overrides(overrides, deployment.services, deployment.volumes, settings.source)
    try:
        return build_plan(deployment, overrides, mode, settings.stop_timeout, settings.excludes)
    except UsageError as exc:
        raise UsageError(str(exc).replace("config:", f"{settings.source}:", 1)) from None


def database_login(settings: Settings, the_plan: Plan) -> Login:
    """live mode's login to the database: the config's database.password_file (0600), else
    root and the root password in the database service's environment; masked from here on."""
    from .compose import load_deployment
    from .live import login_from, select  # live builds on the backup run
    from .models import Login
    from .offsite import secret_file

    service = select(the_plan).service
    chosen = settings.database
    if chosen is not None and chosen.password_file:
        raw = secret_file(chosen.password_file, "password_file", "database")
        try:
            password = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise UsageError(f"{chosen.password_file}: database.password_file: not UTF-8") from None
        login = Login(chosen.user, password, f"database.password_file {chosen.password_file}")
    elif chosen is not None and chosen.user != "root":
        raise UsageError(f"{settings.source}: database.user {chosen.user!r} needs "
                         "database.password_file")  # fmt: skip
    else:
        deployment = load_deployment(the_plan.folder, settings.compose_files, os.environ)
        login = login_from(deployment.environments.get(service, {}), service)
    if not login.password:
        raise UsageError(f"the database password ({login.origin}) is empty")
    process.add_secrets([login.password])
    return login


def destination(spec: str | None, settings: Settings) -> Destination:
    """--dest (or KLINK_SYNC_DEST), else the config's dest."""
    from .destination import open_destination

    return open_destination(spec or settings.dest, settings.ssh_options)


def compose_command(settings: Settings) -> tuple[str, ...]:
    from .stack import detect_compose_command

    return detect_compose_command(os.environ.get("KLINK_SYNC_COMPOSE") or settings.compose_command)


def compose_commands(settings: Settings) -> list[tuple[str, ...]]:
    """Every compose command klink-sync may run here: v2, v1, and the configured one."""
    from .docker import COMPOSE_COMMANDS

    chosen = os.environ.get("KLINK_SYNC_COMPOSE") or settings.compose_command
    return [*COMPOSE_COMMANDS, *([tuple(shlex.split(chosen))] if chosen else [])]


def stack(settings: Settings, the_plan: Plan) -> Stack:
    from .stack import Stack

    return Stack(compose_command(settings), the_plan.folder, the_plan.compose_files)


def log_level(settings: Settings) -> str:
    """KLINK_SYNC_LOG_LEVEL, else the config's log_level."""
    level = os.environ.get("KLINK_SYNC_LOG_LEVEL") or settings.log_level
    if level not in LOG_LEVELS:
        raise UsageError(f"KLINK_SYNC_LOG_LEVEL={level}: must be debug, info or warning")
    return level


def cuts() -> Cuts:
    """KLINK_SYNC_DISABLE: downtime cuts to turn off, for the benchmark."""
    from .passes import Cuts

    return Cuts.parse(os.environ.get("KLINK_SYNC_DISABLE", ""))
