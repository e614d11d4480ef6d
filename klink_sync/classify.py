"""Volume -> hot | cold | skip, always with a reason a person can check.

Pure. Container paths decide first because they are stable across K-Box and K-Link
releases, while service and image names are not. Anything unknown is copied cold: a cold
copy is always consistent, a hot copy of the wrong thing is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import UsageError
from .models import Classified, Volume, VolumeClass, VolumeType

# Container paths (and everything below them) with a known role.
KNOWN_PATHS: tuple[tuple[str, VolumeClass, str], ...] = (
    ("/var/lib/mysql", VolumeClass.COLD, "a MariaDB/MySQL database"),
    ("/var/lib/postgresql/data", VolumeClass.COLD, "a PostgreSQL database"),
    ("/var/www/dms/storage", VolumeClass.HOT, "the K-Box document storage"),
    ("/var/www/k-search/var/data-downloads", VolumeClass.HOT, "the K-Search downloads"),
    ("/opt/solr/k-search/k-search/data", VolumeClass.HOT, "the Solr search index"),
)

# Not data: the Docker socket (and any other socket) a service talks to, and the Docker
# daemon's own tree (never copied file by file under a running daemon).
SOCKET_REASON = "a socket ({path}): a way to talk to a daemon, not data"
DOCKER_ROOT = "/var/lib/docker"
DOCKER_ROOT_REASON = ("the Docker daemon's own folder ({path}): not copied (back up the "
                      "volumes it holds as named volumes)")

# Image repository names (last path component, no tag) that are databases.
DATABASE_IMAGES = frozenset({"mariadb", "mysql", "postgres", "mongo", "redis"})

ANONYMOUS_REASON = (
    "anonymous volume: not stored on a host path you chose (add a bind mount to back it up)"
)
DEFAULT_REASON = (
    "unknown volume: copied only while the stack is stopped (safe default);"
    " override in the config to copy it hot"
)


@dataclass(frozen=True)
class Override:
    """A config file entry forcing the class of the volumes it matches (all given fields)."""

    cls: VolumeClass
    service: str | None = None  # all volumes of this service ...
    target: str | None = None  # ... and/or this container path
    source: str | None = None  # ... and/or this host path or named volume key
    reason: str = ""  # shown in plans


def classify(volume: Volume, overrides: Sequence[Override] = ()) -> Classified:
    """The class of one volume: config override, anonymous, container path, image, default."""
    matching = [o for o in overrides if _matches(o, volume)]
    if matching:
        override = matching[-1]  # the last one wins, like later lines in a config
        reason = f"config override: {override.reason or 'set in config'}"
        return Classified(volume, override.cls, reason)
    if volume.type is VolumeType.ANONYMOUS:
        return Classified(volume, VolumeClass.SKIP, ANONYMOUS_REASON)
    not_data = _not_data(volume)
    if not_data:
        return Classified(volume, VolumeClass.SKIP, not_data)
    target = _strip_slash(volume.target)
    for path, cls, what in KNOWN_PATHS:
        if target == path:
            return Classified(volume, cls, f"container path {path} is {what}")
        if target.startswith(path + "/"):
            return Classified(volume, cls, f"container path {target} is inside {path}, {what}")
    repository = image_repository(volume.image)
    if repository in DATABASE_IMAGES:
        return Classified(volume, VolumeClass.COLD, f"image {repository} is a database")
    return Classified(volume, VolumeClass.COLD, DEFAULT_REASON)


def _not_data(volume: Volume) -> str:
    """Why a bind is no data to copy, or ''."""
    if volume.type is not VolumeType.BIND:
        return ""
    for path in (volume.source, volume.target):
        if path.rsplit("/", 1)[-1] == "docker.sock":
            return SOCKET_REASON.format(path=path)
    source = _strip_slash(volume.source)
    inside = source.startswith(DOCKER_ROOT + "/")
    if source == DOCKER_ROOT or (inside and not source.startswith(DOCKER_ROOT + "/volumes/")):
        return DOCKER_ROOT_REASON.format(path=volume.source)
    return ""


def classify_all(
    volumes: Sequence[Volume], overrides: Sequence[Override] = ()
) -> tuple[Classified, ...]:
    """Every volume classified, in the given order."""
    return tuple(classify(volume, overrides) for volume in volumes)


def check_overrides(
    overrides: Sequence[Override],
    deployment_services: Sequence[str],
    volumes: Sequence[Volume],
    config_name: str = "config",
) -> None:
    """Refuse overrides that name an unknown service or match nothing: likely typos.

    The message names the entry as `<config_name>: volumes[i]` (its index in the list).
    """
    services = set(deployment_services)
    for index, override in enumerate(overrides):
        where = f"{config_name}: volumes[{index}]"
        if override.service is None and override.target is None and override.source is None:
            raise UsageError(f"{where}: give at least one of service, target, source")
        if override.service is not None and override.service not in services:
            raise UsageError(f"{where}: service {override.service!r} is not in the compose file")
        if not any(_matches(override, volume) for volume in volumes):
            raise UsageError(f"{where}: matches no volume ({_describe(override)})")


def image_repository(image: str) -> str:
    """`docker.io/library/mariadb:10.3@sha256:...` -> `mariadb` (no registry, path or tag)."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.split(":", 1)[0].lower()


def _matches(override: Override, volume: Volume) -> bool:
    """True if every field the override gives equals the volume's."""
    sources = {_strip_slash(volume.source), volume.volume_name or volume.source}
    if volume.declared:  # as the admin wrote it, before symlinks were followed
        sources.add(_strip_slash(volume.declared))
    target = _strip_slash(volume.target)
    return (
        (override.service is None or override.service == volume.service)
        and (override.target is None or _strip_slash(override.target) == target)
        and (override.source is None or _strip_slash(override.source) in sources)
    )


def _strip_slash(path: str) -> str:
    """`/data/` and `/data` are the same path; `/` stays `/`."""
    return path.rstrip("/") or path


def _describe(override: Override) -> str:
    fields = (
        ("service", override.service),
        ("target", override.target),
        ("source", override.source),
    )
    return ", ".join(f"{name} {value!r}" for name, value in fields if value is not None)
