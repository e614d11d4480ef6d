"""Prometheus textfile-collector metrics, written after every backup run, success or failure.

node_exporter's textfile collector reads `*.prom` files from one folder on every scrape;
the file is written under a temporary name (not `*.prom`) and renamed, so a scrape never
sees half a file. Every series carries a `dest` label, so two deployments on one host
(two files) never clash.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .models import Phase

log = logging.getLogger(__name__)

PREFIX = "klink_sync_"

# name: (type, help)
METRICS: dict[str, tuple[str, str]] = {
    "last_run_timestamp_seconds": ("gauge", "Unix time the last backup run ended."),
    "last_run_success": ("gauge", "1 if the last backup run succeeded, else 0."),
    "last_run_duration_seconds": ("gauge", "Wall time of the last backup run."),
    "last_success_timestamp_seconds": ("gauge", "Unix time the last successful run ended."),
    "downtime_seconds": ("gauge", "Seconds the stack was stopped (last run with a snapshot)."),
    "freeze_seconds": ("gauge", "Seconds services were frozen by docker pause, requests waiting "
                       "(last run with a snapshot)."),
    "phase_duration_seconds": ("gauge", "Seconds each phase took (last run with a snapshot)."),
    "transferred_bytes": ("gauge", "Bytes rsync copied per pass (last run with a snapshot)."),
    "snapshot_size_bytes": ("gauge", "Bytes of the files in the snapshot (last run with one)."),
    "snapshots_total": ("gauge", "Complete snapshots in the destination."),
    "last_run_recovered_total": ("gauge", "Services the last run started again first, "
                                    "because a klink-sync run that died had stopped them."),
    "offsite_last_push_success": ("gauge", "1 if the last run's offsite push succeeded, else 0."),
    "offsite_last_success_timestamp_seconds": ("gauge", "Unix time of the last successful "
                                               "offsite push."),
    "offsite_added_bytes": ("gauge", "Bytes the last successful offsite push added to the "
                            "repository (after deduplication and compression)."),
    "offsite_snapshots_total": ("gauge", "klink-sync snapshots in the offsite repository."),
}


@dataclass(frozen=True)
class RunMetrics:
    """What one run leaves for monitoring; None: not known (a failed run made no snapshot)."""

    success: bool
    finished: float  # Unix time
    duration: float
    dest: str
    downtime: float | None = None
    freeze: float | None = None
    phases: Mapping[str, float] = field(default_factory=dict)
    transferred: Mapping[str, int] = field(default_factory=dict)  # pass -> bytes
    snapshot_bytes: int | None = None
    snapshots: int | None = None
    recovered: int | None = None
    offsite: Mapping[str, object] = field(default_factory=dict)  # offsite_run.Pushed, as a dict


def from_report(report, success: bool, finished: float, duration: float,
                snapshots: int | None) -> RunMetrics:  # fmt: skip
    """The metrics of a run that made a snapshot (an execute.Report)."""
    phases = dict(report.phases)
    seconds = report.checksums.get("seconds") if report.checksums else None
    if isinstance(seconds, (int, float)):
        phases["checksums"] = seconds
    cold = [p for p in report.passes
            if p.phase is Phase.COLD and not p.unit.endswith(" (ctime refresh)")]  # fmt: skip
    return RunMetrics(
        success=success, finished=finished, duration=duration, dest=report.dest,
        downtime=report.downtime_seconds, freeze=report.freeze_seconds, phases=phases,
        transferred={ph.value: report.bytes_moved(ph) for ph in (Phase.HOT, Phase.COLD)},
        snapshot_bytes=sum(p.stats.total_size for p in cold), snapshots=snapshots,
        recovered=len(report.recovered), offsite=dict(report.offsite),
    )  # fmt: skip


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def _offsite_samples(m: RunMetrics, label: str, last_push: float | None) -> dict:
    """The offsite gauges of a run that pushed (or tried to); the last success survives a
    failed push through the previous file."""
    if not m.offsite:
        return {}
    ok = m.offsite.get("result") == "ok"
    samples: dict[str, list[tuple[str, float]]] = {
        "offsite_last_push_success": [(label, 1 if ok else 0)]}
    if ok:
        last_push = m.finished
        samples["offsite_added_bytes"] = [(label, int(m.offsite.get("added_bytes") or 0))]
        total = m.offsite.get("snapshots_total")
        if isinstance(total, int):
            samples["offsite_snapshots_total"] = [(label, total)]
    if last_push is not None:
        samples["offsite_last_success_timestamp_seconds"] = [(label, last_push)]
    return samples


def render(m: RunMetrics, last_success: float | None, last_push: float | None = None) -> str:
    """The text exposition format: HELP and TYPE before each metric's samples."""
    dest = f'dest="{_label(m.dest)}"'
    samples: dict[str, list[tuple[str, float]]] = {
        "last_run_timestamp_seconds": [(dest, m.finished)],
        "last_run_success": [(dest, 1 if m.success else 0)],
        "last_run_duration_seconds": [(dest, m.duration)],
    }
    if m.success:
        last_success = m.finished
    if last_success is not None:
        samples["last_success_timestamp_seconds"] = [(dest, last_success)]
    if m.downtime is not None:
        samples["downtime_seconds"] = [(dest, m.downtime)]
    if m.freeze is not None:
        samples["freeze_seconds"] = [(dest, m.freeze)]
    if m.phases:
        samples["phase_duration_seconds"] = [
            (f'{dest},phase="{_label(phase)}"', seconds) for phase, seconds in m.phases.items()
        ]
    if m.transferred:
        samples["transferred_bytes"] = [
            (f'{dest},pass="{_label(name)}"', size) for name, size in m.transferred.items()
        ]
    if m.snapshot_bytes is not None:
        samples["snapshot_size_bytes"] = [(dest, m.snapshot_bytes)]
    if m.snapshots is not None:
        samples["snapshots_total"] = [(dest, m.snapshots)]
    if m.recovered is not None:
        samples["last_run_recovered_total"] = [(dest, m.recovered)]
    samples.update(_offsite_samples(m, dest, last_push))
    lines = []
    for name, (kind, help_text) in METRICS.items():
        if name not in samples:
            continue
        full = PREFIX + name
        lines += [f"# HELP {full} {help_text}", f"# TYPE {full} {kind}"]
        lines += [f"{full}{{{labels}}} {_number(value)}" for labels, value in samples[name]]
    return "\n".join(lines) + "\n"


def previous_success(text: str, dest: str, metric: str = "last_success_timestamp_seconds"
                     ) -> float | None:  # fmt: skip
    """The last success time a previous file recorded for `dest`, if any."""
    name = re.escape(PREFIX + metric)
    label = re.escape(f'dest="{_label(dest)}"')
    for line in text.splitlines():
        found = re.fullmatch(rf"{name}\{{{label}\}}\s+(\S+)", line.strip())
        if found:
            try:
                return float(found.group(1))
            except ValueError:
                return None
    return None


def write(path: Path, m: RunMetrics) -> None:
    """Write the file atomically (0644: node_exporter may not run as root)."""
    try:
        previous = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        previous = ""
    text = render(m, previous_success(previous, m.dest), previous_success(
        previous, m.dest, "offsite_last_success_timestamp_seconds"))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        tmp.chmod(0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_or_warn(path: Path, m: RunMetrics) -> None:
    """Metrics never fail a run: a problem writing them is a warning."""
    try:
        write(path, m)
    except OSError as exc:
        log.warning("metrics file %s not written: %s", path, exc.strerror or exc)
        return
    log.debug("metrics written to %s", path)
