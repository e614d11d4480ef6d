"""Plans and reports as text for people and JSON for machines (pure)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .models import Phase, Report

if TYPE_CHECKING:
    from .plan import Plan


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def plan_dict(plan: Plan) -> dict:
    return {
        "mode": plan.mode.value,
        "folder": str(plan.folder),
        "project": plan.project_name,
        "compose_files": [str(f) for f in plan.compose_files],
        "volumes": [
            {"service": c.volume.service, "source": c.volume.source, "target": c.volume.target,
             "type": c.volume.type.value, "class": c.cls.value, "reason": c.reason}
            for c in plan.volumes
        ],  # fmt: skip
        "units": [
            {"dest": u.dest, "source": u.source, "class": u.cls.value, "excludes": list(u.excludes)}
            for u in plan.units
        ],
        "steps": [{"phase": s.phase.value, "text": s.text} for s in plan.steps],
    }


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def plan_text(plan: Plan) -> str:
    lines = [f"folder:  {plan.folder}", f"project: {plan.project_name}",
             "compose: " + ", ".join(str(f) for f in plan.compose_files), ""]  # fmt: skip
    rows = [["SERVICE", "SOURCE", "TARGET", "CLASS", "REASON"]]
    for c in plan.volumes:
        source = c.volume.source or "(anonymous)"
        if c.volume.declared:
            source = f"{c.volume.declared} -> {source}"  # symlinks followed once
        rows.append([c.volume.service, source, c.volume.target, c.cls.value, c.reason])
    lines += _table(rows) if len(rows) > 1 else ["(no volumes)"]
    lines += ["", "steps:"]
    lines += [f"  {i}. {s.phase.value:<9} {s.text}" for i, s in enumerate(plan.steps, 1)]
    return "\n".join(lines)


def report_text(report: Report) -> str:
    head = f"klink-sync {report.mode.value}: {report.result}"
    if report.snapshot:
        head += f", snapshot {report.snapshot} in {report.dest}"
    lines = [head]
    moved = {Phase.HOT.value: report.bytes_moved(Phase.HOT),
             Phase.COLD.value: report.bytes_moved(Phase.COLD)}  # fmt: skip
    for phase, seconds in report.phases.items():
        extra = f"   copied {human_bytes(moved[phase])}" if phase in moved else ""
        lines.append(f"  {phase:<10} {seconds:7.1f}s{extra}")
    lines.append(f"  {'DOWNTIME':<10} {report.downtime_seconds:7.1f}s   (stop until running again)")
    if report.freeze_seconds:
        lines.append(f"  {'FREEZE':<10} {report.freeze_seconds:7.1f}s   "
                     "(paused: requests waited, none failed)")  # fmt: skip
    if report.commit_block_seconds:
        lines.append(f"  {'COMMITS':<10} {report.commit_block_seconds:7.3f}s   "
                     "(blocked by mariadb-backup: commits waited, none failed)")  # fmt: skip
    lines.append("services before: " + (", ".join(report.services_before) or "none"))
    lines.append("services after:  " + (", ".join(report.services_after) or "none"))
    if report.recovered:
        lines.append("recovered first: " + ", ".join(report.recovered)
                     + " (stopped by a klink-sync run that died, started again)")
    if report.pruned:
        lines.append("pruned (retention): " + ", ".join(report.pruned))
    if report.offsite:
        lines.append(report_offsite(report.offsite))
    lines += [f"warning: {w}" for w in report.warnings]
    return "\n".join(lines)


def report_offsite(pushed: dict) -> str:
    """One line on a push (offsite_run.Pushed as a dict)."""
    if pushed.get("result") != "ok":
        return f"offsite: push of {pushed.get('snapshot')} failed: {pushed.get('error')}"
    return (f"offsite: pushed {pushed['snapshot']} to {pushed['repository']} as "
            f"{pushed['restic_id']}: {human_bytes(int(pushed['added_bytes']))} added, "
            f"{pushed['files_unmodified']} files unchanged, {pushed['files_new']} new, "
            f"{pushed['files_changed']} changed")
