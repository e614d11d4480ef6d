"""The command line: parse, call the core, print, exit with the documented code."""

from __future__ import annotations

import glob
import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__, destination, process
from .classify import check_overrides
from .compose import load_deployment
from .config import Settings, load_settings
from .destination import Destination
from .errors import KlinkSyncError, UsageError
from .execute import dry_run_commands, resolve_sources, run_backup
from .plan import Mode, Plan, build_plan
from .report import plan_dict, plan_text, report_text
from .stack import Stack, detect_compose_command

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Hot and cold backups of K-Link / K-Box Docker Compose deployments.",
)
log = logging.getLogger("klink_sync")

USUAL_FOLDERS = ("/home/*/deploy/k-link", "/home/*/k-Link", "/home/*/k-link", "/opt/k-link")

FolderOpt = Annotated[
    Optional[Path],  # noqa: UP045 (typer reads the annotation at run time)
    typer.Option("--folder", envvar="KLINK_SYNC_FOLDER", help="setup folder (compose file)"),
]
DestOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--dest", envvar="KLINK_SYNC_DEST", help="backup destination folder"),
]
ConfigOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--config", envvar="KLINK_SYNC_CONFIG", help="YAML config file"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object")]
VerboseOpt = Annotated[int, typer.Option("-v", "--verbose", count=True, help="more detail")]
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet", help="warnings and errors only")]


class _MaskSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = process.mask(record.getMessage()), None
        return True


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    handler.addFilter(_MaskSecrets())
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def _fail(exc: KlinkSyncError) -> typer.Exit:
    typer.echo(f"klink-sync: error: {process.mask(str(exc))}", err=True)
    return typer.Exit(exc.exit_code)


def find_folder(explicit: Path | None, settings: Settings) -> Path:
    """--folder, KLINK_SYNC_FOLDER, the config, else the one usual place that exists."""
    if explicit is not None or settings.folder:
        folder = explicit or Path(settings.folder)
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


def _read_plan(folder: Path | None, config: Path | None, mode: Mode) -> tuple[Settings, Plan]:
    """Config -> setup folder -> compose files -> Plan; secrets registered for masking."""
    settings = load_settings(config)
    root = find_folder(folder, settings)
    deployment = load_deployment(root, settings.compose_files, os.environ)
    process.add_secrets(deployment.secrets)
    overrides = tuple(
        replace(o, source=os.path.normpath(root / o.source))
        if o.source and o.source.startswith(".") else o
        for o in settings.overrides
    )  # fmt: skip
    check_overrides(overrides, deployment.services, deployment.volumes, settings.source)
    return settings, build_plan(deployment, overrides, mode, settings.stop_timeout)


def _dest(dest: Path | None, settings: Settings) -> Path:
    chosen = dest or (Path(settings.dest) if settings.dest else None)
    if chosen is None:
        raise UsageError("no destination: give --dest, KLINK_SYNC_DEST or dest: in the config")
    return chosen.absolute()


@app.command()
def plan(
    folder: FolderOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False,
    verbose: VerboseOpt = 0, quiet: QuietOpt = False,
) -> None:  # fmt: skip
    """Show what a backup would copy, how (hot, cold, skip) and why."""
    _setup_logging(verbose, quiet)
    try:
        _, the_plan = _read_plan(folder, config, Mode.HOT_COLD)
    except KlinkSyncError as exc:
        raise _fail(exc) from None
    out = json.dumps(plan_dict(the_plan), indent=2) if as_json else plan_text(the_plan)
    typer.echo(process.mask(out))


def _backup(mode: Mode, folder, dest, config, dry_run, as_json, verbose, quiet) -> None:
    _setup_logging(verbose, quiet)
    try:
        settings, the_plan = _read_plan(folder, config, mode)
        dest_root = _dest(dest, settings)
        compose = os.environ.get("KLINK_SYNC_COMPOSE") or settings.compose_command
        stack = Stack(detect_compose_command(compose), the_plan.folder, the_plan.compose_files)
        if dry_run:
            typer.echo(process.mask(_dry_run_text(the_plan, Destination(dest_root), stack)))
            return
        report = run_backup(the_plan, dest_root, stack)
    except KlinkSyncError as exc:
        raise _fail(exc) from None
    text = json.dumps(report.to_dict(), indent=2) if as_json else report_text(report)
    typer.echo(process.mask(text))


def _dry_run_text(the_plan: Plan, dest: Destination, stack: Stack) -> str:
    destination.check_usable(dest.root)
    sources = resolve_sources(the_plan)
    lines = [plan_text(the_plan), "", "commands (dry run, nothing is touched):"]
    lines += [f"  [{phase.value}] {process.show(argv)}"
              for phase, argv in dry_run_commands(the_plan, dest, stack, sources)]  # fmt: skip
    return "\n".join(lines)


DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="print the plan and commands only")]


@app.command("hot-cold")
def hot_cold(
    folder: FolderOpt = None, dest: DestOpt = None, config: ConfigOpt = None,
    dry_run: DryRunOpt = False, as_json: JsonOpt = False,
    verbose: VerboseOpt = 0, quiet: QuietOpt = False,
) -> None:  # fmt: skip
    """Copy hot volumes while the stack runs, stop it, copy the rest, start it again."""
    _backup(Mode.HOT_COLD, folder, dest, config, dry_run, as_json, verbose, quiet)


@app.command()
def cold(
    folder: FolderOpt = None, dest: DestOpt = None, config: ConfigOpt = None,
    dry_run: DryRunOpt = False, as_json: JsonOpt = False,
    verbose: VerboseOpt = 0, quiet: QuietOpt = False,
) -> None:  # fmt: skip
    """The guide's plain procedure: stop, copy everything, start."""
    _backup(Mode.COLD, folder, dest, config, dry_run, as_json, verbose, quiet)


@app.command()
def snapshots(dest: DestOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List the snapshots in the destination."""
    try:
        root = _dest(dest, load_settings(config))
    except KlinkSyncError as exc:
        raise _fail(exc) from None
    the_dest = Destination(root)
    latest = the_dest.latest()
    rows = []
    for snap in the_dest.snapshots():
        manifest = snap.manifest() if snap.complete else {}
        rows.append({
            "name": snap.name, "complete": snap.complete, "latest": bool(latest) and
            latest.name == snap.name, "mode": manifest.get("mode"),
            "result": manifest.get("result", "incomplete"),
            "downtime_seconds": manifest.get("downtime_seconds"),
        })  # fmt: skip
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        downtime = f"{r['downtime_seconds']:.1f}s" if r["downtime_seconds"] is not None else "-"
        mark = " (latest)" if r["latest"] else ""
        mode = r["mode"] or "-"
        typer.echo(f"{r['name']}  {mode:<8} {r['result']:<10} downtime {downtime}{mark}")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"klink-sync {__version__}")
