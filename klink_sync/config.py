"""The YAML config file -> Settings. Every option, its type and its default, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .classify import Override
from .errors import UsageError
from .models import VolumeClass
from .retention import RULES, Retention

# key: (type, default, help). `config sample` and the README are made from this table.
OPTIONS: dict[str, tuple[type | tuple[type, ...], Any, str]] = {
    "folder": (str, None, "setup folder holding the compose file (default: searched)"),
    "compose_files": (list, [], "compose files relative to the folder (default: found)"),
    "compose_command": (str, None, "'docker compose' or 'docker-compose' (default: detected)"),
    "dest": (str, None, "backup destination folder"),
    "stop_timeout": (int, 120, "seconds the stack gets to stop cleanly before Compose kills it"),
    "start_timeout": (int, 300, "seconds to wait for services to run (and be healthy) again"),
    "volumes": (list, [], "class overrides: [{service, target, source, class, reason}]"),
    "retention": (dict, Retention(), "what prune keeps: {keep_last, keep_daily, ...}"),
    "require_mount": (bool, False, "refuse a destination not on a mounted disk (exit 75)"),
    "allow_unclean_stop": (bool, False, "promote even if a database container was killed"),
}
OVERRIDE_KEYS = {"service", "target", "source", "class", "reason"}


@dataclass(frozen=True)
class Settings:
    folder: str | None = None
    compose_files: tuple[str, ...] = ()
    compose_command: str | None = None
    dest: str | None = None
    stop_timeout: int = 120
    start_timeout: int = 300
    overrides: tuple[Override, ...] = field(default=())
    retention: Retention = Retention()
    require_mount: bool = False
    allow_unclean_stop: bool = False
    source: str = "defaults"  # where the settings came from, for messages


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "a number", list: "a list", dict: "a mapping",
             bool: "true or false"}  # fmt: skip
    return " or ".join(names[k] for k in kinds)


def _override(where: str, entry: object) -> Override:
    if not isinstance(entry, Mapping):
        raise UsageError(f"{where}: must be a mapping with 'class' and service/target/source")
    unknown = set(entry) - OVERRIDE_KEYS
    if unknown:
        raise UsageError(f"{where}: unknown key '{sorted(unknown)[0]}'")
    try:
        cls = VolumeClass(entry.get("class"))
    except ValueError:
        raise UsageError(f"{where}.class: must be hot, cold or skip") from None
    for key in ("service", "target", "source", "reason"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise UsageError(f"{where}.{key}: must be a string")
    if not any(entry.get(k) for k in ("service", "target", "source")):
        raise UsageError(f"{where}: names no service, target or source")
    return Override(
        cls=cls,
        service=entry.get("service"),
        target=entry.get("target"),
        source=entry.get("source"),
        reason=str(entry.get("reason", "")),
    )


def _retention(where: str, entry: Mapping) -> Retention:
    unknown = set(entry) - set(RULES)
    if unknown:
        raise UsageError(f"{where}: unknown key '{sorted(map(str, unknown))[0]}'")
    for key, value in entry.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise UsageError(f"{where}.{key}: must be a whole number >= 0")
    return Retention(**entry)


def parse_settings(data: object, source: str) -> Settings:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise UsageError(f"{source}: the config must be a mapping of options")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in OPTIONS:
            raise UsageError(f"{source}: unknown key '{key}'")
        kind = OPTIONS[key][0]
        if value is None:
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise UsageError(f"{source}: {key}: must be {_type_name(kind)}")
        values[key] = value
    for key in ("stop_timeout", "start_timeout"):
        if values.get(key, 1) < 1:
            raise UsageError(f"{source}: {key}: must be at least 1 second")
    overrides = tuple(
        _override(f"{source}: volumes[{i}]", e) for i, e in enumerate(values.pop("volumes", []))
    )
    files = tuple(str(f) for f in values.pop("compose_files", []))
    if "retention" in values:
        values["retention"] = _retention(f"{source}: retention", values["retention"])
    return Settings(**values, compose_files=files, overrides=overrides, source=source)


def load_settings(path: Path | None) -> Settings:
    if path is None:
        return Settings()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read config: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: config is not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark else ""
        raise UsageError(f"{path}: not valid YAML{at}") from None
    return parse_settings(data, str(path))
