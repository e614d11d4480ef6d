"""Compose file(s) + .env -> Deployment: the volumes to back up and the secrets to mask.

Pure: reads files, never runs docker, never reads the process environment by itself (the
CLI passes it in). It follows Compose v2's rules wherever they decide which host paths
hold the data (file names, .env, interpolation, merge, volume syntax), so the backup sees
the same paths as `docker compose` does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UsageError
from .models import Volume, VolumeType

# Compose v2's order of preference (compose-go DefaultFileNames / DefaultOverrideFileNames).
COMPOSE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_NAMES = (
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
)

# Keys whose values are masked in any output (matched case-insensitively, as substrings).
SECRET_KEY_WORDS = ("PASS", "PWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "AUTH")
SECRET_MIN_LENGTH = 6  # shorter values would mask ordinary text everywhere

# Mount types with nothing on a host path to back up.
_IGNORED_MOUNT_TYPES = ("tmpfs", "npipe", "image")


@dataclass(frozen=True)
class Deployment:
    """What the backup needs to know about one setup folder; no environment values."""

    folder: Path  # absolute setup folder
    compose_files: tuple[Path, ...]  # absolute, in merge order
    env_files: tuple[Path, ...]  # .env and the env_file: files that exist
    project_name: str
    volumes: tuple[Volume, ...]
    services: tuple[str, ...]  # every service name, sorted
    secrets: frozenset[str] = field(default=frozenset(), repr=False)  # values to mask
    # each service's environment (env_file: values, then environment:), for the login of
    # live mode: holds secrets, never shown
    environments: Mapping[str, Mapping[str, str]] = field(default_factory=dict, repr=False)


def find_compose_files(folder: Path, explicit: Sequence[str | Path] = ()) -> tuple[Path, ...]:
    """The compose files `docker compose` would use in `folder`, absolute, in merge order.

    `explicit` (like `-f`, relative to folder) replaces the search.
    """
    folder = _absolute(folder)
    if explicit:
        files = tuple(_absolute(folder / name) for name in explicit)
        for path in files:
            if not path.is_file():
                raise UsageError(f"{path}: compose file not found")
        return files
    main = next((folder / n for n in COMPOSE_NAMES if (folder / n).is_file()), None)
    if main is None:
        raise UsageError(f"{folder}: no compose file (looked for {', '.join(COMPOSE_NAMES)})")
    override = next((folder / n for n in OVERRIDE_NAMES if (folder / n).is_file()), None)
    return (main,) if override is None else (main, override)


def load_deployment(
    folder: Path,
    compose_files: Sequence[str | Path] = (),
    environ: Mapping[str, str] | None = None,
    read_from: Path | None = None,
) -> Deployment:
    """Read the compose file(s) of `folder` like Compose would, with `environ` as the shell.
    `read_from`: where the compose files and .env are now (a snapshot's, before a restore
    puts them back in `folder`); relative paths still resolve against `folder`.

    Raises UsageError (one line naming the file and key) for anything Compose would refuse.
    """
    folder = _absolute(folder)
    environ = dict(environ or {})
    source = _absolute(read_from) if read_from is not None else folder
    files = find_compose_files(source, compose_files)

    dotenv_path = source / ".env"
    written: dict[str, str] = {}  # the values as the files write them, for the secrets
    dotenv = _read_env_file(dotenv_path, environ, written) if dotenv_path.is_file() else {}
    env = {**dotenv, **environ}  # the process environment wins over .env

    parsed = [_parse_file_once(path, folder, env, environ) for path in files]
    merged = _merge(parsed)

    volumes = tuple(
        _resolve_named(mount, merged.volumes, service.name, service.image)
        for service in merged.services.values()
        for mount in service.mounts.values()
        if mount.type is not None
    )

    service_env_files: list[Path] = []
    for service in merged.services.values():
        for path in service.env_files:
            if path.is_file() and path != dotenv_path and path not in service_env_files:
                service_env_files.append(path)
    env_files = ([dotenv_path] if dotenv_path.is_file() else []) + service_env_files

    environments = {name: _service_environment(service, env)
                    for name, service in merged.services.items()}  # fmt: skip
    entries = [(k, v, written.get(k, v)) for k, v in dotenv.items()]
    entries += _env_file_entries(service_env_files, env)
    secret_pairs = [*((k, v) for k, v, _ in entries),
                    *(pair for environment in environments.values()
                      for pair in environment.items()),
                    *(("COMPOSE_SECRET", env.get(v, "")) for v in merged.secret_variables)]
    return Deployment(
        folder=folder,
        compose_files=files,
        env_files=tuple(env_files),
        project_name=_project_name(folder, env, merged.name),
        volumes=volumes,
        services=tuple(sorted(merged.services)),
        secrets=_with_written_forms(secret_pairs, entries),
        environments=environments,
    )


def _with_written_forms(pairs: Sequence[tuple[str, str]],
                        entries: Sequence[tuple[str, str, str]]) -> frozenset[str]:
    """The secrets among (key, value) pairs, and the forms Compose quotes a value in when
    it cannot interpolate it: as an env file writes it (each (key, value, written) entry
    whose key looks secret or whose value a secret takes, `MYSQL_ROOT_PASSWORD: ${DB_ROOT}`,
    unless written as references alone), a secret's `$` doubled."""
    secrets = {v for k, v in pairs if _is_secret(k, v)}
    written = {w for k, v, w in entries
               if (_is_secret(k, w) or v in secrets) and _REFERENCE.sub("", w).strip()}
    doubled = {v.replace("$", "$$") for v in secrets if "$" in v}
    return frozenset(secrets | written | doubled)


def _env_file_entries(paths: Sequence[Path], env: Mapping[str, str]
                      ) -> list[tuple[str, str, str]]:  # fmt: skip
    """(key, value, value as the file writes it) of each env file's lines."""
    entries = []
    for path in paths:
        written: dict[str, str] = {}
        values = _read_env_file(path, env, written)
        entries += [(k, v, written.get(k, v)) for k, v in values.items()]  # bare KEY: no text
    return entries


# a value written as references alone (`${DB_PASSWORD}`) holds no secret as written
_REFERENCE = re.compile(r"\$\{[^}]*\}|\$\w+")


def _service_environment(service: _Service, env: Mapping[str, str]) -> dict[str, str]:
    """What the service's container gets: its env_file: values, then its environment:
    (a bare KEY from the shell or .env), as Compose gives them."""
    found: dict[str, str] = {}
    for path in service.env_files:
        if path.is_file():
            found.update(_read_env_file(path, env))
    for key, value in service.environment.items():
        found[key] = env.get(key, "") if value is None else value
    return found


# --- records used while reading --------------------------------------------------------


@dataclass(frozen=True)
class _Mount:
    """One volume entry; type None means a mount with nothing on the host (tmpfs)."""

    target: str
    type: VolumeType | None
    source: str = ""
    read_only: bool = False
    where: str = ""  # "<file>: services.x.volumes[i]", for errors found after merging


@dataclass(frozen=True)
class _Service:
    name: str
    image: str | None
    mounts: dict[str, _Mount]  # by container target, in file order
    environment: dict[str, str | None]  # None: taken from the shell environment
    env_files: tuple[Path, ...]


@dataclass(frozen=True)
class _VolumeDecl:
    """A top-level `volumes:` entry; None means not given in this file."""

    name: str | None = None
    external: bool | None = None


@dataclass(frozen=True)
class _File:
    name: str | None  # top-level `name:`
    services: dict[str, _Service]
    volumes: dict[str, _VolumeDecl]
    secret_variables: tuple[str, ...] = ()  # top-level `secrets: {x: {environment: VAR}}`


# --- reading one file ------------------------------------------------------------------


def _parse_file_once(path: Path, folder: Path, env: Mapping[str, str], environ: Mapping
                     ) -> _File:  # fmt: skip
    """A YAML alias may refer to the node that holds it: a structure without end."""
    try:
        return _parse_file(path, folder, env, environ)
    except RecursionError:
        raise UsageError(f"{path}: a YAML anchor refers to itself (an alias inside the node "
                         "it names): Compose refuses it too") from None


def _parse_file(path: Path, folder: Path, env: Mapping[str, str], environ: Mapping) -> _File:
    """One compose file, interpolated and checked, volumes parsed."""
    data = _load_yaml(path)
    if not isinstance(data, dict):
        raise UsageError(f"{path}: top level must be a mapping (services:, ...), not {_kind(data)}")
    data = _interpolate_tree(data, env, str(path), "")

    services = data.get("services")
    if not isinstance(services, dict):
        what = "is missing" if services is None else f"must be a mapping, not {_kind(services)}"
        raise UsageError(f"{path}: services {what}")

    parsed: dict[str, _Service] = {}
    for key, body in services.items():
        name = str(key)
        where = f"{path}: services.{name}"
        if not isinstance(body, dict):
            raise UsageError(f"{where}: must be a mapping, not {_kind(body)}")
        parsed[name] = _parse_service(name, body, where, folder, environ)

    top_volumes = data.get("volumes") or {}
    if not isinstance(top_volumes, dict):
        raise UsageError(f"{path}: volumes: must be a mapping, not {_kind(top_volumes)}")
    decls = {str(k): _parse_volume_decl(v, f"{path}: volumes.{k}") for k, v in top_volumes.items()}

    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise UsageError(f"{path}: name: must be a string, not {_kind(name)}")
    secrets = data.get("secrets")
    variables = tuple(str(d["environment"]) for d in (secrets or {}).values()
                      if isinstance(d, dict) and d.get("environment") is not None
                      ) if isinstance(secrets, dict) else ()  # fmt: skip
    return _File(name=name or None, services=parsed, volumes=decls, secret_variables=variables)


def read_utf8(path: Path, what: str = "") -> str:
    """A file's text; the error names the file (`what`: which kind, for the message)."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"{path}: cannot read{' ' + what if what else ''}: "
                         f"{err.strerror}") from None  # fmt: skip
    except UnicodeDecodeError:
        raise UsageError(f"{path}: {what + ' is ' if what else ''}not UTF-8 text") from None


def _load_yaml(path: Path) -> Any:
    """The YAML document; the error names the line but never quotes the file (secrets)."""
    text = read_utf8(path)
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "syntax error"
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise UsageError(f"{path}: not valid YAML: {problem}{line}") from None
    except yaml.YAMLError:
        raise UsageError(f"{path}: not valid YAML") from None


def _parse_service(name: str, body: dict, where: str, folder: Path, environ: Mapping) -> _Service:
    image = body.get("image")
    entries = body.get("volumes") or []
    if not isinstance(entries, list):
        raise UsageError(f"{where}.volumes: must be a list, not {_kind(entries)}")
    mounts: dict[str, _Mount] = {}
    for i, entry in enumerate(entries):
        mount = _parse_mount(entry, f"{where}.volumes[{i}]", folder, environ)
        mounts[mount.target] = mount
    return _Service(
        name=name,
        image=None if image is None else str(image),
        mounts=mounts,
        environment=_parse_environment(body.get("environment"), f"{where}.environment"),
        env_files=_parse_env_file_refs(body.get("env_file"), f"{where}.env_file", folder),
    )


def _parse_mount(entry: Any, where: str, folder: Path, environ: Mapping) -> _Mount:
    """A short (`SRC:TARGET[:MODE]`, `TARGET`) or long (mapping) volume entry."""
    if isinstance(entry, str):
        return _parse_short_mount(entry, where, folder, environ)
    if isinstance(entry, dict):
        return _parse_long_mount(entry, where, folder, environ)
    raise UsageError(f"{where}: must be a string or a mapping, not {_kind(entry)}")


def _parse_short_mount(spec: str, where: str, folder: Path, environ: Mapping) -> _Mount:
    parts = spec.split(":")
    if any(part == "" for part in parts):
        raise UsageError(f"{where}: {spec!r} has an empty part")
    if len(parts) > 3:
        raise UsageError(f"{where}: {spec!r} has too many ':'")
    if len(parts) == 1:
        return _Mount(_target(parts[0], where), VolumeType.ANONYMOUS, where=where)
    source, target = parts[0], _target(parts[1], where)
    read_only = False
    for option in parts[2].split(",") if len(parts) == 3 else ():
        if option in ("ro", "rw"):  # the last one wins, like Compose; z, Z, ... do not matter
            read_only = option == "ro"
    if source[0] in "./~":
        path = _host_path(source, where, folder, environ)
        return _Mount(target, VolumeType.BIND, path, read_only, where)
    return _Mount(target, VolumeType.VOLUME, source, read_only, where)


def _parse_long_mount(entry: dict, where: str, folder: Path, environ: Mapping) -> _Mount:
    kind = entry.get("type")
    target = entry.get("target")
    if not isinstance(target, str) or not target:
        raise UsageError(f"{where}: target: must be a container path")
    target = _target(target, f"{where}.target")
    if kind in _IGNORED_MOUNT_TYPES:
        return _Mount(target, None, where=where)
    read_only = _boolean(entry.get("read_only", False), f"{where}.read_only")
    source = entry.get("source")
    if source is not None and not isinstance(source, str):
        raise UsageError(f"{where}.source: must be a string, not {_kind(source)}")
    if kind == "bind":
        if not source:
            raise UsageError(f"{where}.source: a bind mount needs a host path")
        path = _host_path(source, f"{where}.source", folder, environ)
        return _Mount(target, VolumeType.BIND, path, read_only, where)
    if kind == "volume":
        if not source:
            return _Mount(target, VolumeType.ANONYMOUS, "", read_only, where)
        return _Mount(target, VolumeType.VOLUME, source, read_only, where)
    if kind is None:
        raise UsageError(f"{where}: type: missing (bind, volume or tmpfs)")
    raise UsageError(f"{where}.type: {kind!r} is not bind, volume or tmpfs")


def _target(target: str, where: str) -> str:
    """The container path: Docker refuses relative ones, so do we (and say where)."""
    if not target.startswith("/"):
        raise UsageError(f"{where}: container path {target!r} must be absolute")
    return os.path.normpath(target) if target != "/" else target


def _host_path(source: str, where: str, folder: Path, environ: Mapping) -> str:
    """An absolute host path: relative to the folder, `~` from HOME; symlinks kept."""
    if source == "~" or source.startswith("~/"):
        home = environ.get("HOME")
        if not home:
            raise UsageError(f"{where}: {source!r} starts with ~ but HOME is not set")
        source = home + source[1:]
    elif source.startswith("~"):
        raise UsageError(f"{where}: {source!r}: ~user paths are not supported")
    return os.path.normpath(os.path.join(folder, source))


def _boolean(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise UsageError(f"{where}: must be true or false, not {_kind(value)}")


def _parse_environment(value: Any, where: str) -> dict[str, str | None]:
    """`environment:` as a mapping or a `KEY=VALUE` list; a bare KEY comes from the shell."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): None if v is None else _scalar(v) for k, v in value.items()}
    if isinstance(value, list):
        result: dict[str, str | None] = {}
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise UsageError(f"{where}[{i}]: must be a KEY=VALUE string, not {_kind(item)}")
            key, sep, val = item.partition("=")
            result[key] = val if sep else None
        return result
    raise UsageError(f"{where}: must be a mapping or a list, not {_kind(value)}")


def _parse_env_file_refs(value: Any, where: str, folder: Path) -> tuple[Path, ...]:
    """`env_file:` as a string, a list of strings, or a list of {path, required}."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise UsageError(f"{where}: must be a path or a list, not {_kind(value)}")
    paths = []
    for i, item in enumerate(items):
        path = item.get("path") if isinstance(item, dict) else item
        if not isinstance(path, str) or not path:
            raise UsageError(f"{where}[{i}]: must be a path")
        paths.append(Path(os.path.normpath(os.path.join(folder, path))))
    return tuple(paths)


def _parse_volume_decl(value: Any, where: str) -> _VolumeDecl:
    """A top-level volume: `name:` fixes the Docker name; `external:` true or {name: ...}."""
    if value is None:
        return _VolumeDecl()
    if not isinstance(value, dict):
        raise UsageError(f"{where}: must be a mapping, not {_kind(value)}")
    name = value.get("name")
    if name is not None and not isinstance(name, str):
        raise UsageError(f"{where}.name: must be a string, not {_kind(name)}")
    external = value.get("external")
    if isinstance(external, dict):  # legacy form: external: {name: real-name}
        name = external.get("name", name)
        external = True
    elif external is not None:
        external = _boolean(external, f"{where}.external")
    return _VolumeDecl(name=name or None, external=external)


# --- merging files, resolving named volumes --------------------------------------------


def _merge(files: Sequence[_File]) -> _File:
    """Later files win, like Compose: services by name, volumes by target, env by key."""
    name: str | None = None
    services: dict[str, _Service] = {}
    volumes: dict[str, _VolumeDecl] = {}
    for file in files:
        name = file.name or name
        for key, decl in file.volumes.items():
            old = volumes.get(key, _VolumeDecl())
            volumes[key] = _VolumeDecl(
                name=decl.name if decl.name is not None else old.name,
                external=decl.external if decl.external is not None else old.external,
            )
        for key, new in file.services.items():
            old = services.get(key)
            services[key] = new if old is None else _merge_service(old, new)
    variables = tuple(dict.fromkeys(v for file in files for v in file.secret_variables))
    return _File(name=name, services=services, volumes=volumes, secret_variables=variables)


def _merge_service(old: _Service, new: _Service) -> _Service:
    env_files = old.env_files + tuple(p for p in new.env_files if p not in old.env_files)
    return _Service(
        name=old.name,
        image=new.image if new.image is not None else old.image,
        mounts={**old.mounts, **new.mounts},
        environment={**old.environment, **new.environment},
        env_files=env_files,
    )


def _resolve_named(
    mount: _Mount, decls: Mapping[str, _VolumeDecl], service: str, image: str | None
) -> Volume:
    """The public Volume; a named volume must be declared at the top level (Compose says so)."""
    volume_name, external = "", False
    if mount.type is VolumeType.VOLUME:
        decl = decls.get(mount.source)
        if decl is None:
            raise UsageError(
                f"{mount.where}: named volume {mount.source!r} is not declared"
                " in the top-level volumes:"
            )
        external = bool(decl.external)
        volume_name = decl.name or (mount.source if external else "")
    return Volume(
        service=service,
        target=mount.target,
        type=mount.type,
        source=mount.source,
        image=image or "",
        read_only=mount.read_only,
        volume_name=volume_name,
        external=external,
    )


def _project_name(folder: Path, env: Mapping[str, str], top_name: str | None) -> str:
    """COMPOSE_PROJECT_NAME > top-level name: > folder name, normalised like Compose v2."""
    name = env.get("COMPOSE_PROJECT_NAME") or top_name
    if name:
        return name
    normalised = re.sub(r"[^a-z0-9_-]", "", folder.name.lower())
    normalised = re.sub(r"^[^a-z0-9]+", "", normalised)
    if not normalised:
        raise UsageError(
            f"{folder}: cannot make a project name from the folder name;"
            " set COMPOSE_PROJECT_NAME or a top-level name:"
        )
    return normalised


def _is_a_path(where: str) -> bool:
    """A place (`FILE: services.db.volumes[0]`) whose value is a volume's path: no secret
    there. Any other (an environment, an anchor, a .env line a password may take) may hold
    one."""
    place = where.rpartition(": ")[2]
    return place.startswith("services.") and ".volumes[" in place


def _is_secret(key: str, value: str) -> bool:
    upper = key.upper()
    return len(value) >= SECRET_MIN_LENGTH and any(w in upper for w in SECRET_KEY_WORDS)


# --- interpolation ---------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _interpolate_tree(node: Any, env: Mapping[str, str], file: str, key: str) -> Any:
    """Interpolate every string value (never keys), tracking the key path for errors."""
    if isinstance(node, str):
        return _interpolate(node, env, f"{file}: {key}")
    if isinstance(node, dict):
        return {
            k: _interpolate_tree(v, env, file, f"{key}.{k}" if key else str(k))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_interpolate_tree(v, env, file, f"{key}[{i}]") for i, v in enumerate(node)]
    return node


def _interpolate(text: str, env: Mapping[str, str], where: str, strict: bool = True) -> str:
    """Compose's `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:?e}`, `${VAR?e}`, `$VAR`, `$$`.

    Unset variables become "". Messages never quote the value (it may be a password).
    `strict=False` (env files) keeps a `$` that starts nothing as a literal `$`.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$":
            out.append(char)
            i += 1
            continue
        following = text[i + 1 : i + 2]
        if following == "$":
            out.append("$")
            i += 2
            continue
        if following == "{":
            end = _closing_brace(text, i + 2)
            if end >= 0:
                substituted = _substitute(text[i + 2 : end], env, where, strict)
                if substituted is not None:
                    out.append(substituted)
                    i = end + 1
                    continue
            if strict:
                raise UsageError(f"{where}: invalid ${{...}} interpolation (write $$ for a $)")
        else:
            match = _NAME.match(text, i + 1)
            if match:
                out.append(env.get(match.group(), ""))
                i = match.end()
                continue
            if strict:
                raise UsageError(f"{where}: '$' not followed by a variable (write $$ for a $)")
        out.append("$")
        i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    """Index of the `}` closing a `${` whose body starts at `start` (nesting allowed), or -1."""
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _substitute(body: str, env: Mapping[str, str], where: str, strict: bool) -> str | None:
    """The value of `${body}`, or None if body is not a valid expression."""
    match = _NAME.match(body)
    if not match:
        return None
    name, rest = match.group(), body[match.end() :]
    if not rest:
        return env.get(name, "")
    operator = next((op for op in (":-", ":?", ":+", "-", "?", "+") if rest.startswith(op)), None)
    if operator is None:
        return None
    argument = rest[len(operator) :]
    value = env.get(name)
    is_set = value is not None and (value != "" or not operator.startswith(":"))
    if operator.endswith("-"):
        return value if is_set else _interpolate(argument, env, where, strict)
    if operator.endswith("+"):
        return _interpolate(argument, env, where, strict) if is_set else ""
    if not is_set:
        shown = argument and _is_a_path(where)  # elsewhere the text may be a secret's piece
        detail = f": {argument}" if shown else ""
        raise UsageError(f"{where}: required variable {name} is missing a value{detail}")
    return value


# --- env files -------------------------------------------------------------------------

_ENV_LINE = re.compile(r"([\w.-]+)\s*(?:([=:])[ \t]*(.*))?")
# Compose's escapes in a double-quoted value (any other stays as written): `\$` is a literal
# `$` (as `$$`: no interpolation)
_DOUBLE_QUOTE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "$": "$$"}


def _read_env_file(path: Path, lookup: Mapping[str, str],
                   written: dict[str, str] | None = None) -> dict[str, str]:  # fmt: skip
    """KEY=VALUE lines like Compose: `export `, comments, quotes, multi-line quoted values.

    Unquoted and double-quoted values expand `$VAR` from `lookup` first, then earlier keys;
    single-quoted values are literal. A bare KEY takes its value from `lookup` if set.
    `written`, if given, gets each value as the file writes it (before escapes and
    interpolation): the text Compose quotes when it cannot read a value.
    """
    try:  # bytes decoded as they are: a lone CR does not end a line for Compose either
        text = path.read_bytes().decode("utf-8-sig")  # a BOM is not the first key's
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: cannot read: {getattr(err, 'strerror', None) or err}") from None
    lines = text.split("\n")  # not at a form feed or U+2028 either, as splitlines would
    values: dict[str, str] = {}
    index = 0
    while index < len(lines):
        number, original = index + 1, lines[index]
        line = original.strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith(("export ", "export\t")):
            line = line[len("export") :].lstrip()
        match = _ENV_LINE.fullmatch(line)
        if not match:
            raise UsageError(f"{path}: line {number}: expected KEY=VALUE")
        key, separator, raw = match.group(1), match.group(2), match.group(3) or ""
        if not separator:
            if key in lookup:
                values[key] = lookup[key]
            continue
        where = f"{path}: line {number}: {key}"
        scope = {**values, **lookup}
        quote = raw[:1]
        if quote in ("'", '"'):  # the value runs on past this line's end as written
            first = raw[1:] + original[len(original.rstrip()) :]
            body, index = _quoted(first, quote, lines, index, f"{path}: line {number}: {key}")
            value = (_interpolate(_unescape(body), scope, where, strict=False) if quote == '"'
                     else body.replace("\\'", "'"))  # fmt: skip
        else:
            body = raw.split(" #", 1)[0].rstrip()  # a comment: after a space, not a tab
            value = _interpolate(body, scope, where, strict=False)
        values[key] = value
        if written is not None:
            written[key] = body
    return values


def _quoted(first: str, quote: str, lines: Sequence[str], index: int, where: str
            ) -> tuple[str, int]:  # fmt: skip
    """A quoted value's text up to its closing quote (which may be lines further on, the
    lines joined as written), and the index of the line after it."""
    body = first
    end = _closing_quote(body, quote)
    while end < 0 and index < len(lines):
        body += "\n" + lines[index]
        index += 1
        end = _closing_quote(body, quote)
    if end < 0:
        raise UsageError(f"{where}: unterminated quoted value")
    return body[:end], index


def _closing_quote(text: str, quote: str) -> int:
    """Index of the first `quote` not escaped by a backslash, or -1."""
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i
        i += 1
    return -1


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _DOUBLE_QUOTE_ESCAPES.get(m.group(1), m.group(0)), text,
                  flags=re.S)  # fmt: skip


# --- small helpers ---------------------------------------------------------------------


def _absolute(path: str | Path) -> Path:
    """Absolute and normalised, without following symlinks (the user's path is kept)."""
    return Path(os.path.normpath(os.path.abspath(path)))


def _scalar(value: Any) -> str:
    """A YAML scalar as Compose passes it to a container (true -> "true")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _kind(value: Any) -> str:
    """A short description of a YAML value's type, for messages (never the value itself)."""
    if value is None:
        return "empty"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return type(value).__name__
