"""Frozen records passed between the layers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class VolumeType(str, Enum):
    BIND = "bind"
    VOLUME = "volume"  # a named Docker volume; host path known only at run time
    ANONYMOUS = "anonymous"


class VolumeClass(str, Enum):
    HOT = "hot"  # safe to copy while the stack runs (documents, search index)
    COLD = "cold"  # only consistent while the stack is stopped (databases)
    SKIP = "skip"  # not backed up


class Phase(str, Enum):
    PREFLIGHT = "preflight"
    HOT = "hot"
    STOP = "stop"
    COLD = "cold"
    START = "start"
    FINISH = "finish"


@dataclass(frozen=True)
class Volume:
    """One volume entry of one service, as the compose file declares it."""

    service: str
    target: str  # container path
    type: VolumeType
    source: str = ""  # absolute host path (bind) or the compose volume key (named)
    image: str = ""
    read_only: bool = False
    volume_name: str = ""  # named volumes: the Docker volume name if fixed (`name:`/external)
    external: bool = False


@dataclass(frozen=True)
class Classified:
    volume: Volume
    cls: VolumeClass
    reason: str
