"""Frozen records passed between the layers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
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
    PAUSE = "pause"  # hot-cold --pause: docker pause, the stack frozen (not stopped)
    DATABASE = "database"  # live: mariadb-backup --backup and --prepare
    COLD = "cold"
    START = "start"
    UNPAUSE = "unpause"
    FINISH = "finish"
    SAFETY = "safety"  # a restore's cold copy of the state it replaces
    RESTORE = "restore"  # a restore's copies back


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
    declared: str = ""  # a bind's source as written, where symlinks lead `source` elsewhere


@dataclass(frozen=True)
class Classified:
    volume: Volume
    cls: VolumeClass
    reason: str


class Mode(str, Enum):
    HOT_COLD = "hot-cold"
    COLD = "cold"
    PAUSE = "hot-cold-pause"  # `hot-cold --pause`: frozen with docker pause, never stopped
    LIVE = "live"  # nothing stopped; the database copied by mariadb-backup

    @property
    def copies_hot(self) -> bool:
        """Whether hot rounds run while the stack runs, before whatever holds it."""
        return self is not Mode.COLD

    @property
    def consistency(self) -> str:
        """What the snapshot is consistent with, as the manifest and README say it."""
        return CONSISTENCY[self]


CONSISTENCY = {
    Mode.COLD: "clean shutdown: every volume copied with the stack stopped",
    Mode.HOT_COLD: "clean shutdown: every volume copied exactly with the stack stopped",
    Mode.PAUSE: "crash-consistent: every volume copied with the stack frozen at one instant "
    "(MariaDB runs crash recovery at its first start)",
    Mode.LIVE: "database at mariadb-backup's backup point (prepared: starts as after a clean "
    "shutdown); documents copied after it (every row has its file); "
    "index copied with its service paused",
}


@dataclass(frozen=True)
class Source:
    """A copy unit's source as found on this host at run time."""

    path: str
    is_file: bool = False


@dataclass(frozen=True)
class Login:
    """A database login (live mode's mariadb-backup): the password is never shown."""

    user: str
    password: str = field(repr=False)
    origin: str = ""  # where the password came from, for messages (a file, a variable)


@dataclass(frozen=True)
class RsyncStats:
    """What one rsync's --stats block says."""

    files: int = 0  # entries in the source (files, dirs, links)
    regular_files_transferred: int = 0
    total_size: int = 0  # bytes of all files in the source
    transferred_size: int = 0  # bytes of the files that were copied
    literal_bytes: int = 0  # bytes actually sent (not matched)
    deleted: int = 0

    def __add__(self, other: RsyncStats) -> RsyncStats:
        return RsyncStats(
            *(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__)
        )


@dataclass(frozen=True)
class PassResult:
    phase: Phase
    unit: str
    seconds: float
    exit_code: int
    stats: RsyncStats
    refreshed: int = 0  # files copied again because their ctime moved
    warning: str = ""
    round: int = 1  # hot passes repeat while they still move much


@dataclass(frozen=True)
class Report:
    mode: Mode
    result: str  # "ok" or "failed"
    dest: str
    snapshot: str | None
    downtime_seconds: float
    phases: Mapping[str, float]  # phase -> seconds
    services_before: tuple[str, ...]
    services_after: tuple[str, ...]
    passes: tuple[PassResult, ...] = ()
    warnings: tuple[str, ...] = ()
    pruned: tuple[str, ...] = ()  # snapshots removed by the retention rules after the run
    recovered: tuple[str, ...] = ()  # started again first: a klink-sync run that died stopped them
    checksums: Mapping[str, object] = field(default_factory=dict)  # checksums.ChecksumResult
    offsite: Mapping[str, object] = field(default_factory=dict)  # offsite.Pushed.to_dict()
    freeze_seconds: float = 0.0  # services frozen (docker pause), not stopped: requests wait
    commit_block_seconds: float = 0.0  # live: commits waited for mariadb-backup's lock

    def bytes_moved(self, phase: Phase) -> int:
        return sum(p.stats.transferred_size for p in self.passes if p.phase is phase)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["passes"] = [
            {**asdict(p), "phase": p.phase.value, "stats": asdict(p.stats)} for p in self.passes
        ]
        data["mode"] = self.mode.value
        data["bytes_moved"] = {ph.value: self.bytes_moved(ph) for ph in (Phase.HOT, Phase.COLD)}
        return data
