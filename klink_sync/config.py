"""The YAML config file -> Settings. Every option, its type and its default, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .classify import Override
from .errors import UsageError
from .models import VolumeClass
from .retention import RULES, Retention

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


# key: (type, default, help). `config sample` and the README are made from this table.
OPTIONS: dict[str, tuple[type | tuple[type, ...], Any, str]] = {
    "folder": (str, None, "setup folder holding the compose file (default: searched)"),
    "compose_files": (list, [], "compose files relative to the folder (default: found)"),
    "compose_command": (str, None, "'docker compose' or 'docker-compose' (default: detected)"),
    "dest": (str, None, "backup destination folder, or [user@]host:/path over ssh"),
    "ssh_options": (list, (), "ssh options for a remote dest (KLINK_SYNC_SSH wins)"),
    "stop_timeout": (int, 120, "seconds the stack gets to stop cleanly before Compose kills it"),
    "start_timeout": (int, 300, "seconds to wait for services to run (and be healthy) again"),
    "volumes": (list, [], "class overrides: [{service, target, source, class, reason}]"),
    "retention": (dict, Retention(), "what prune keeps: {keep_last, keep_daily, ...}"),
    "require_mount": (bool, False, "refuse a destination not on a mounted disk (exit 75)"),
    "allow_unclean_stop": (bool, False, "promote even if a database container was killed"),
    "excludes": (dict, {}, "paths not to copy, per volume: {volume source: [pattern, ...]}"),
    "hooks": (dict, Hooks(), "commands run before, after and on failure: {before, after, ...}"),
    "metrics_file": (str, None, "Prometheus textfile written after every run (*.prom)"),
    "ping_url": (str, None, "healthchecks-style URL: /start, success, /fail (5 s timeout)"),
    "log_level": (str, "info", "debug, info or warning (-v and -q win)"),
}
OVERRIDE_KEYS = {"service", "target", "source", "class", "reason"}
HOOK_EVENTS = ("before", "after", "on_failure")
LOG_LEVELS = ("debug", "info", "warning")

@dataclass(frozen=True)
class Settings:
    folder: str | None = None
    compose_files: tuple[str, ...] = ()
    compose_command: str | None = None
    dest: str | None = None
    ssh_options: tuple[str, ...] = ()
    stop_timeout: int = 120
    start_timeout: int = 300
    overrides: tuple[Override, ...] = field(default=())
    retention: Retention = Retention()
    require_mount: bool = False
    allow_unclean_stop: bool = False
    excludes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    hooks: Hooks = Hooks()
    metrics_file: str | None = None
    ping_url: str | None = None
    log_level: str = "info"
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
    before = len(problems)
    for key in sorted(set(map(str, entry)) - set(RULES)):
        problems.add("retention", f"unknown key '{key}'")
    for key, value in entry.items():
        if key in RULES and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            problems.add(f"retention.{key}", "must be a whole number >= 0")
    return Retention(**entry) if len(problems) == before else None


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


def check_settings(data: object, source: str) -> tuple[Settings | None, list[str]]:
    """Settings from parsed YAML, and every problem found (the settings only if none)."""
    problems = _Problems(source)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        problems.add("", "the config must be a mapping of options")
        return None, problems
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in OPTIONS:
            problems.add("", f"unknown key '{key}'")
            continue
        kind = OPTIONS[key][0]
        if value is None:
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            problems.add(key, f"must be {_type_name(kind)}")
            continue
        values[key] = value
    for key in ("stop_timeout", "start_timeout"):
        if values.get(key, 1) < 1:
            problems.add(key, "must be at least 1 second")
    for key in ("folder", "dest", "compose_command"):
        if key in values:
            _path_like(problems, key, values[key])
    overrides = tuple(
        _override(problems, f"volumes[{i}]", e) for i, e in enumerate(values.pop("volumes", []))
    )
    files = values.pop("compose_files", [])
    for i, name in enumerate(files):
        if not isinstance(name, str) or not name.strip():
            problems.add(f"compose_files[{i}]", "must be a file name")
    if "retention" in values:
        values["retention"] = _retention(problems, values["retention"])
    if "excludes" in values:
        values["excludes"] = _excludes(problems, values["excludes"])
    if "hooks" in values:
        values["hooks"] = _hooks(problems, values["hooks"])
    if "ssh_options" in values:
        values["ssh_options"] = _ssh_options(problems, values["ssh_options"])
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
    if values.get("log_level", "info") not in LOG_LEVELS:
        problems.add("log_level", "must be " + ", ".join(LOG_LEVELS[:-1]) + f" or {LOG_LEVELS[-1]}")
    if problems:
        return None, problems
    settings = Settings(**values, compose_files=tuple(files),
                        overrides=overrides, source=source)  # type: ignore[arg-type]  # fmt: skip
    return settings, problems


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
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read config: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: config is not UTF-8 text") from None
    loader = _Loader(text)
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

# Example YAML per option. Settings left commented out (no default, or they act: hooks,
# pings) are '#key: value' and '#  nested: value' lines; '# text' lines are explanations.
EXAMPLES: dict[str, str] = {
    "folder": "#folder: /opt/k-link",
    "compose_files": "#compose_files: [docker-compose.yml]",
    "compose_command": "#compose_command: docker compose",
    "dest": "# over ssh: dest: backup@nas.example:/srv/backup/k-link\n#dest: /mnt/backup/k-link",
    "ssh_options": "#ssh_options: [-p, 2222, -i, /root/.ssh/klink-sync]",
    "volumes": """\
# last match wins; service, target (container path) and source (host path, ./ for the
# folder, or a named volume) must all match
#volumes:
#  - service: kbox
#    target: /var/www/dms/storage
#    class: cold
#    reason: the documents are rewritten in place
#  - source: ./storage/cache
#    class: skip""",
    "retention": """\
# used by `klink-sync prune` and after every hot-cold/cold run; whole numbers >= 0
#retention:
#  keep_last: 3
#  keep_daily: 7
#  keep_weekly: 4
#  keep_monthly: 12""",
    "excludes": """\
# keys name a volume by its source as in the compose file; patterns are rsync patterns
#excludes:
#  ./storage/data:
#    - cache/
#    - "*.tmp\"""",
    "hooks": """\
# each hook is a list of commands; a command is an argv list run without a shell, or, with
# shell: true, a command line for /bin/sh. They get KLINK_SYNC_STATUS (ok, failed),
# KLINK_SYNC_SNAPSHOT, KLINK_SYNC_DOWNTIME_SECONDS, KLINK_SYNC_EXIT_CODE, KLINK_SYNC_DEST,
# KLINK_SYNC_FOLDER, KLINK_SYNC_ERROR. A failing `before` hook stops the run before the
# stack is stopped; a failing `after` hook fails the run (the snapshot is kept).
#hooks:
#  before:
#    - [logger, -t, klink-sync, backup starting]
#  after:
#    - [logger, -t, klink-sync, backup done]
#  on_failure:
#    - [logger, -p, user.err, -t, klink-sync, backup failed]
#  shell: false""",
    "metrics_file": "#metrics_file: /var/lib/prometheus/node-exporter/klink_sync.prom",
    "ping_url": "#ping_url: https://hc-ping.com/your-check-uuid",
}


def _default_text(key: str) -> str:
    default = OPTIONS[key][1]
    if isinstance(default, bool):
        return f" (default: {str(default).lower()})"
    return f" (default: {default})" if isinstance(default, (str, int)) else ""


def sample() -> str:
    """A config file with every option documented; it passes `config check` as printed."""
    lines = [
        "# klink-sync configuration: every option, with its default.",
        "# Precedence: command-line flags > environment (KLINK_SYNC_FOLDER, KLINK_SYNC_DEST,",
        "# KLINK_SYNC_COMPOSE, KLINK_SYNC_LOG_LEVEL, KLINK_SYNC_SSH) > this file > defaults.",
        "# Lines '#key: value' are examples: remove the '#' to use them.",
        "# Check a file with: klink-sync config check FILE",
    ]
    for key, (_, default, help_text) in OPTIONS.items():
        lines += ["", f"# {key}: {help_text}{_default_text(key)}"]
        if key in EXAMPLES:
            lines.append(EXAMPLES[key])
        else:
            lines.append(yaml.safe_dump({key: default}, default_flow_style=False).strip())
    return "\n".join(lines) + "\n"
