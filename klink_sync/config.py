"""The YAML config file -> Settings. Every option, its type and its default, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from copy import copy
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import yaml

from .classify import Override
from .compose import read_utf8
from .errors import UsageError
from .models import VolumeClass
from .notify import NOTIFY_EXAMPLE, Notify, check_notify
from .offsite import OFFSITE_EXAMPLE, Offsite, check_offsite
from .retention import Retention, check_rules
from .state import MAX_STOP_TIMEOUT

# A hook command: an argv tuple (run directly), or a string (run by /bin/sh -c, with shell: true).
Command = tuple[str, ...] | str


@dataclass(frozen=True)
class Hooks:
    before: tuple[Command, ...] = ()
    after: tuple[Command, ...] = ()
    on_failure: tuple[Command, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.before or self.after or self.on_failure)


# The defaults other modules use too (CLI flags, restore): the option table holds these.
DEFAULT_STOP_TIMEOUT = 120  # seconds for a clean stop (MariaDB) before Compose kills
DEFAULT_START_TIMEOUT = 300  # seconds for the services (and healthchecks) to be up again


@dataclass(frozen=True)
class Option:
    """One config option, declared once: validation, `config sample`, the README table and
    the `Settings` defaults are all made from it, so none of them can fall behind the others.
    """

    key: str
    kind: type | tuple[type, ...]  # the YAML type accepted (a wrong one: "must be a number")
    default: Any  # the Settings value when the option is not given
    help: str  # one line of markdown: the README's "what" and the sample's comment
    example: str | None = None  # sample YAML, commented out; None: the default is printed set
    readme_default: str | None = None  # default to show when not the value (searched, found)
    setting: str | None = None  # the Settings field it fills, when not `key` (volumes)

    @property
    def field_name(self) -> str:
        """The `Settings` field this option ends up in."""
        return self.setting or self.key

    @property
    def default_text(self) -> str | None:
        """How the default reads in the README and the sample; None: no default to show."""
        if self.readme_default is not None:
            return self.readme_default
        if isinstance(self.default, bool):
            return str(self.default).lower()
        return str(self.default) if isinstance(self.default, (int, str)) else None


# Examples: settings left commented out (no default, or they act: hooks, pings) are
# '#key: value' and '#  nested: value' lines; '# text' lines are explanations.
_VOLUMES_EXAMPLE = """\
# last match wins; service, target (container path) and source (host path, ./ for the
# folder, or a named volume) must all match
#volumes:
#  - service: kbox
#    target: /var/www/dms/storage
#    class: cold
#    reason: the documents are rewritten in place
#  - source: ./storage/cache
#    class: skip"""
_RETENTION_EXAMPLE = """\
# used by `klink-sync prune` and after every hot-cold/cold run; whole numbers >= 0
#retention:
#  keep_last: 3
#  keep_daily: 7
#  keep_weekly: 4
#  keep_monthly: 12"""
_EXCLUDES_EXAMPLE = """\
# keys name a volume by its source as in the compose file; patterns are rsync patterns
#excludes:
#  ./storage/data:
#    - cache/
#    - "*.tmp\""""
_HOOKS_EXAMPLE = """\
# each hook is a list of commands; a command is an argv list run without a shell, or, with
# shell: true, a command line for /bin/sh. They get KLINK_SYNC_STATUS (ok, failed),
# KLINK_SYNC_SNAPSHOT, KLINK_SYNC_DOWNTIME_SECONDS, KLINK_SYNC_EXIT_CODE, KLINK_SYNC_DEST,
# KLINK_SYNC_FOLDER, KLINK_SYNC_ERROR, KLINK_SYNC_OFFSITE (ok, failed or empty). A failing
# `before` hook stops the run before the
# stack is stopped; a failing `after` hook fails the run (the snapshot is kept).
#hooks:
#  before:
#    - [logger, -t, klink-sync, backup starting]
#  after:
#    - [logger, -t, klink-sync, backup done]
#  on_failure:
#    - [logger, -p, user.err, -t, klink-sync, backup failed]
#  shell: false"""

_DATABASE_EXAMPLE = """\
# live mode's login to MariaDB (mariadb-backup needs RELOAD, PROCESS, LOCK TABLES and
# BINLOG MONITOR, or root); without it: root and the compose file's MARIADB_ROOT_PASSWORD
# or MYSQL_ROOT_PASSWORD. The password file must be 0600 or stricter.
#database:
#  user: backup
#  password_file: /etc/klink-sync/database-password"""


@dataclass(frozen=True)
class DatabaseLogin:
    """`database:` of the config: who mariadb-backup logs in as (live mode)."""

    user: str = "root"
    password_file: str | None = None


DATABASE_KEYS = ("user", "password_file")


# Every option, in the order of `config sample` and the README table. Add one here, give
# `Settings` its field, then run scripts/readme_options.py.
OPTIONS: Mapping[str, Option] = MappingProxyType({option.key: option for option in (
    Option("folder", str, None, "setup folder holding the compose file",
           "#folder: /opt/k-link", readme_default="searched"),
    Option("compose_files", list, (), "compose files relative to the folder",
           "#compose_files: [docker-compose.yml]", readme_default="found"),
    Option("compose_command", str, None, "`docker compose` or `docker-compose`",
           "#compose_command: docker compose", readme_default="detected"),
    Option("dest", str, None, "backup destination folder, or `[user@]host:/path` over ssh",
           "# over ssh: dest: backup@nas.example:/srv/backup/k-link\n"
           "#dest: /mnt/backup/k-link"),
    Option("ssh_options", list, (),
           "ssh's options for a remote `dest`, a list (`KLINK_SYNC_SSH` wins)",
           "#ssh_options: [-p, 2222, -i, /root/.ssh/klink-sync]"),
    Option("stop_timeout", int, DEFAULT_STOP_TIMEOUT,
           "seconds the stack gets to stop cleanly (MariaDB) before Compose kills it "
           f"(at most {MAX_STOP_TIMEOUT})"),
    Option("start_timeout", int, DEFAULT_START_TIMEOUT,
           "seconds to wait for services (and healthchecks) again"),
    Option("volumes", list, (),
           "class overrides (`service`, `target`, `source`, `class`, `reason`), "
           "last match wins", _VOLUMES_EXAMPLE, setting="overrides"),
    Option("retention", dict, Retention(),
           "`keep_last`, `keep_daily`, `keep_weekly`, `keep_monthly`: for `prune` and after "
           "each run", _RETENTION_EXAMPLE),
    Option("require_mount", bool, False,
           "refuse a destination that is not on a mounted disk (exit 75)"),
    Option("allow_unclean_stop", bool, False,
           "promote even if a database container was killed"),
    Option("excludes", dict, {},
           "per volume source (`./storage/data`, `/mnt/x`, a named volume, `.` for the setup "
           "folder), a list of rsync patterns not copied; a restore leaves those paths alone",
           _EXCLUDES_EXAMPLE),
    Option("hooks", dict, Hooks(),
           "`before`, `after` and `on_failure` commands: argv lists, or command lines with "
           "`shell: true`", _HOOKS_EXAMPLE),
    Option("metrics_file", str, None,
           "Prometheus textfile (`*.prom`) written after every run",
           "#metrics_file: /var/lib/prometheus/node-exporter/klink_sync.prom"),
    Option("ping_url", str, None,
           "healthchecks-style URL: `/start`, success, `/fail` (5 s timeout)",
           "#ping_url: https://hc-ping.com/your-check-uuid"),
    Option("log_level", str, "info",
           "`debug`, `info` or `warning`; `-v`/`-q` and `KLINK_SYNC_LOG_LEVEL` win"),
    Option("database", dict, None,
           "`live` mode's MariaDB login: `user`, `password_file` (0600)",
           _DATABASE_EXAMPLE, readme_default="root, password from the compose file"),
    Option("offsite", dict, None,
           "encrypted offsite copies with restic: `repository`, `password_file`, "
           "`environment_file`, `after_backup`, `retention`, `check_subset`, `limit_upload`, "
           "`options` (see Offsite copies)", OFFSITE_EXAMPLE, readme_default="none"),
    Option("notify", dict, None,
           "Apprise notifications: `urls` (a list) and `on` (`failure`, `recovered`, "
           "`success`)", NOTIFY_EXAMPLE, readme_default="none"),
)})  # fmt: skip
OVERRIDE_KEYS = {"service", "target", "source", "class", "reason"}
HOOK_EVENTS = ("before", "after", "on_failure")
LOG_LEVELS = ("debug", "info", "warning")


def _default(key: str) -> Any:
    """A `Settings` field whose default is the option's, so the value is written only once."""
    value = OPTIONS[key].default
    if isinstance(value, (dict, list, set)):
        return field(default_factory=lambda: copy(value))
    return field(default=value)


@dataclass(frozen=True)
class Settings:
    folder: str | None = _default("folder")
    compose_files: tuple[str, ...] = _default("compose_files")
    compose_command: str | None = _default("compose_command")
    dest: str | None = _default("dest")
    ssh_options: tuple[str, ...] = _default("ssh_options")
    stop_timeout: int = _default("stop_timeout")
    start_timeout: int = _default("start_timeout")
    overrides: tuple[Override, ...] = _default("volumes")
    retention: Retention = _default("retention")
    require_mount: bool = _default("require_mount")
    allow_unclean_stop: bool = _default("allow_unclean_stop")
    excludes: Mapping[str, tuple[str, ...]] = _default("excludes")
    hooks: Hooks = _default("hooks")
    metrics_file: str | None = _default("metrics_file")
    ping_url: str | None = _default("ping_url")
    log_level: str = _default("log_level")
    database: DatabaseLogin | None = _default("database")
    offsite: Offsite | None = _default("offsite")
    notify: Notify | None = _default("notify")
    source: str = "defaults"  # where the settings came from, for messages


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "a number", list: "a list", dict: "a mapping",
             bool: "true or false"}  # fmt: skip
    return " or ".join(names[k] for k in kinds)


class _Problems(list):
    """Every problem of one file, each `FILE: KEY: reason`; checking goes on after each."""

    def __init__(self, source: str):
        super().__init__()
        self.source = source

    def add(self, where: str, reason: str) -> None:
        self.append(f"{self.source}: {where}: {reason}" if where else f"{self.source}: {reason}")


def _override(problems: _Problems, where: str, entry: object) -> Override | None:
    if not isinstance(entry, Mapping):
        problems.add(where, "must be a mapping with 'class' and service/target/source")
        return None
    before = len(problems)
    for key in sorted(set(map(str, entry)) - OVERRIDE_KEYS):
        problems.add(where, f"unknown key '{key}'")
    try:
        cls = VolumeClass(entry.get("class"))
    except (ValueError, TypeError):
        problems.add(f"{where}.class", "must be hot, cold or skip")
    for key in ("service", "target", "source", "reason"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            problems.add(f"{where}.{key}", "must be a string")
    if not any(entry.get(k) for k in ("service", "target", "source")):
        problems.add(where, "names no service, target or source")
    if len(problems) > before:
        return None
    return Override(
        cls=cls,
        service=entry.get("service"),
        target=entry.get("target"),
        source=entry.get("source"),
        reason=str(entry.get("reason", "")),
    )


def _retention(problems: _Problems, entry: Mapping) -> Retention | None:
    return check_rules(problems, entry, "retention")


def _excludes(problems: _Problems, entry: Mapping) -> dict[str, tuple[str, ...]]:
    result: dict[str, tuple[str, ...]] = {}
    for key, patterns in entry.items():
        where = f"excludes[{key!r}]"
        if not isinstance(key, str) or not key.strip():
            problems.add(where, "must name a volume by its source (./storage/cache, /mnt/x or "
                         "a named volume)")  # fmt: skip
            continue
        if not isinstance(patterns, list):
            problems.add(where, "must be a list of patterns, like [cache/, '*.tmp']")
            continue
        good = []
        for i, pattern in enumerate(patterns):
            if not isinstance(pattern, str) or not pattern.strip() or "\n" in pattern:
                problems.add(f"{where}[{i}]", "must be a non-empty pattern on one line")
            else:
                good.append(pattern)
        result[key] = tuple(good)
    return result


def _hook_command(problems: _Problems, where: str, item: object, shell: bool) -> Command | None:
    if isinstance(item, str):
        if not shell:
            problems.add(where, "a string runs through the shell only with hooks.shell: true; "
                         "give an argv list like [logger, backup done]")  # fmt: skip
            return None
        if not item.strip():
            problems.add(where, "empty command")
            return None
        return item
    if not isinstance(item, list):
        problems.add(where, "must be an argv list like [logger, backup done]"
                     + (" or a shell command line" if shell else ""))  # fmt: skip
        return None
    if not item:
        problems.add(where, "empty command")
        return None
    argv = []
    for j, arg in enumerate(item):
        if isinstance(arg, bool) or not isinstance(arg, (str, int, float)):
            problems.add(f"{where}[{j}]", "must be a string")
            return None
        argv.append(str(arg))
    return tuple(argv)


def _hooks(problems: _Problems, entry: Mapping) -> Hooks:
    for key in sorted(set(map(str, entry)) - {*HOOK_EVENTS, "shell"}):
        problems.add("hooks", f"unknown key '{key}' (hooks are {', '.join(HOOK_EVENTS)}; "
                     "shell: true allows command lines)")  # fmt: skip
    shell = entry.get("shell", False)
    if not isinstance(shell, bool):
        problems.add("hooks.shell", "must be true or false")
        shell = False
    events: dict[str, tuple[Command, ...]] = {}
    for event in HOOK_EVENTS:
        commands = entry.get(event)
        if commands is None:
            continue
        if isinstance(commands, str) and shell:
            commands = [commands]
        if not isinstance(commands, list):
            _hook_command(problems, f"hooks.{event}", commands, shell)
            continue
        found = [_hook_command(problems, f"hooks.{event}[{i}]", c, shell)
                 for i, c in enumerate(commands)]  # fmt: skip
        events[event] = tuple(c for c in found if c is not None)
    return Hooks(**events)


def _database(problems: _Problems, entry: Mapping) -> DatabaseLogin | None:
    before = len(problems)
    for key in sorted(set(map(str, entry)) - set(DATABASE_KEYS)):
        problems.add("database", f"unknown key '{key}' (database has {', '.join(DATABASE_KEYS)})")
    user = entry.get("user", "root")
    if not isinstance(user, str) or not user.strip() or any(c in user for c in "\n\0"):
        problems.add("database.user", "must be a user name on one line")
    path = entry.get("password_file")
    if path is not None and (not isinstance(path, str) or not path.startswith("/")):
        problems.add("database.password_file", "must be an absolute path")
    if len(problems) > before:
        return None
    return DatabaseLogin(user, path)


def _ssh_options(problems: _Problems, options: list) -> tuple[str, ...]:
    """ssh's own arguments, one per item ([-p, 2222, -i, /root/.ssh/key])."""
    good = []
    for i, option in enumerate(options):
        if isinstance(option, bool) or not isinstance(option, (str, int)):
            problems.add(f"ssh_options[{i}]", "must be a string")
        elif not str(option) or any(c in str(option) for c in "\n\0"):
            problems.add(f"ssh_options[{i}]", "must be a non-empty string on one line")
        else:
            good.append(str(option))
    return tuple(good)


def _path_like(problems: _Problems, key: str, value: str) -> None:
    if not value.strip():
        problems.add(key, "must not be empty")


def _typed_values(problems: _Problems, data: Mapping) -> dict[str, Any]:
    """The options given, each of its declared YAML type: the checks the table itself makes
    (unknown keys, wrong types; a null keeps the default), before each option's own checks.
    """
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in OPTIONS:
            problems.add("", f"unknown key '{key}'")
            continue
        kind = OPTIONS[key].kind
        if value is None:
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            problems.add(key, f"must be {_type_name(kind)}")
            continue
        values[key] = value
    return values


def _checked_values(problems: _Problems, values: dict[str, Any]) -> None:
    """Each given option's own checks, turning it into its `Settings` value in place; the
    order is the order the problems are reported in (a run names the first).
    """
    for key in ("stop_timeout", "start_timeout"):
        if values.get(key, 1) < 1:
            problems.add(key, "must be at least 1 second")
    if values.get("stop_timeout", 1) > MAX_STOP_TIMEOUT:  # a dead run's record says no more
        problems.add("stop_timeout", f"must be at most {MAX_STOP_TIMEOUT} seconds")
    for key in ("folder", "dest", "compose_command"):
        if key in values:
            _path_like(problems, key, values[key])
    if "volumes" in values:
        values["volumes"] = tuple(
            _override(problems, f"volumes[{i}]", e) for i, e in enumerate(values["volumes"])
        )
    files = values.get("compose_files", [])
    for i, name in enumerate(files):
        if not isinstance(name, str) or not name.strip():
            problems.add(f"compose_files[{i}]", "must be a file name")
    if "compose_files" in values:
        values["compose_files"] = tuple(files)
    for key, check in (("retention", _retention), ("excludes", _excludes), ("hooks", _hooks),
                       ("ssh_options", _ssh_options), ("database", _database),
                       ("offsite", check_offsite),
                       ("notify", check_notify)):  # fmt: skip
        if key in values:
            values[key] = check(problems, values[key])
    _check_service_options(problems, values)


def _check_service_options(problems: _Problems, values: Mapping[str, Any]) -> None:
    metrics = values.get("metrics_file")
    if metrics is not None and not metrics.startswith("/"):
        problems.add("metrics_file", "must be an absolute path")
    elif metrics is not None and not metrics.endswith(".prom"):
        problems.add("metrics_file", "must end in .prom (node_exporter's textfile collector "
                     "reads only *.prom files)")  # fmt: skip
    url = values.get("ping_url")
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.add("ping_url", "must be an http:// or https:// URL")
    if values.get("log_level", OPTIONS["log_level"].default) not in LOG_LEVELS:
        problems.add("log_level", "must be " + ", ".join(LOG_LEVELS[:-1]) + f" or {LOG_LEVELS[-1]}")


def check_settings(data: object, source: str) -> tuple[Settings | None, list[str]]:
    """Settings from parsed YAML, and every problem found (the settings only if none), so
    `config check` can list them all while a run stops at the first.
    """
    problems = _Problems(source)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        problems.add("", "the config must be a mapping of options")
        return None, problems
    values = _typed_values(problems, data)
    _checked_values(problems, values)
    if problems:
        return None, problems
    fields_ = {OPTIONS[key].field_name: value for key, value in values.items()}
    return Settings(**fields_, source=source), problems


def parse_settings(data: object, source: str) -> Settings:
    settings, problems = check_settings(data, source)
    if problems:
        more = len(problems) - 1
        hint = f" (and {more} more: klink-sync config check {source})" if more else ""
        raise UsageError(problems[0] + hint)
    assert settings is not None
    return settings


class _Loader(yaml.SafeLoader):
    """safe_load that notes keys given twice (plain YAML keeps the last one silently)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.duplicates: list[tuple[str, int]] = []

    def construct_mapping(self, node, deep=False):  # type: ignore[no-untyped-def]
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    self.duplicates.append((str(key), key_node.start_mark.line + 1))
                seen.add(key)
            except TypeError:  # an unhashable key: construct_mapping says so
                pass
        return super().construct_mapping(node, deep)


def read_config(path: Path) -> tuple[object, list[str]]:
    """The parsed YAML of a config file, and the problems of reading it (file: reason)."""
    loader = _Loader(read_utf8(path, "config"))
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark else ""
        raise UsageError(f"{path}: not valid YAML{at}") from None
    finally:
        loader.dispose()
    duplicates = [f"{path}: {key}: given twice (line {line}); keep one"
                  for key, line in loader.duplicates]  # fmt: skip
    return data, duplicates


def check_file(path: Path) -> list[str]:
    """Every problem of a config file, for `klink-sync config check` (empty: the file is fine)."""
    try:
        data, problems = read_config(path)
    except UsageError as exc:
        return [str(exc)]
    return problems + check_settings(data, str(path))[1]


def load_settings(path: Path | None) -> Settings:
    if path is None:
        return Settings()
    data, duplicates = read_config(path)
    if duplicates:
        raise UsageError(duplicates[0])
    return parse_settings(data, str(path))


# --- `klink-sync config sample` --------------------------------------------------------------


def sample() -> str:
    """A config file with every option documented, made from OPTIONS so it cannot fall
    behind; it passes `config check` as printed, and with its examples uncommented.
    """
    lines = [
        "# klink-sync configuration: every option, with its default.",
        "# Precedence: command-line flags > environment (KLINK_SYNC_FOLDER, KLINK_SYNC_DEST,",
        "# KLINK_SYNC_COMPOSE, KLINK_SYNC_LOG_LEVEL, KLINK_SYNC_SSH) > this file > defaults.",
        "# Lines '#key: value' are examples: remove the '#' to use them.",
        "# Check a file with: klink-sync config check FILE",
    ]
    for option in OPTIONS.values():
        shown = option.default_text
        default = f" (default: {shown})" if shown is not None else ""
        lines += ["", f"# {option.key}: {option.help}{default}"]
        if option.example is not None:
            lines.append(option.example)
        else:
            dumped = yaml.safe_dump({option.key: option.default}, default_flow_style=False)
            lines.append(dumped.strip())
    return "\n".join(lines) + "\n"


def readme_table() -> str:
    """The option table of README.md's "Config file" section, made from OPTIONS so the README
    cannot fall behind: scripts/readme_options.py writes it, a unit test compares it.
    """
    rows = ["| option | default | what |", "|---|---|---|"]
    for option in OPTIONS.values():
        shown = option.default_text
        rows.append(f"| `{option.key}` | {'—' if shown is None else shown} | {option.help} |")
    return "\n".join(rows) + "\n"
