"""The command line: parse, call the core, print, exit with the documented code."""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__, destination, process, remote, systemd
from .classify import check_overrides
from .compose import load_deployment
from .config import LOG_LEVELS, Settings, check_file, load_settings
from .config import sample as config_sample_text
from .destination import Destination
from .errors import DestinationUnavailable, KlinkSyncError, UsageError
from .execute import CUTS, RunOptions, dry_run_commands, resolve_sources, run_backup
from .hooks import Job
from .plan import Mode, Plan, build_plan
from .remote import RemoteDestination
from .report import human_bytes, plan_dict, plan_text, report_text
from .stack import Stack, detect_compose_command
from .verify import Verdict, VerifyInterrupted, verify_snapshot

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
    try:
        the_plan = build_plan(deployment, overrides, mode, settings.stop_timeout,
                              settings.excludes)  # fmt: skip
    except UsageError as exc:
        raise UsageError(str(exc).replace("config:", f"{settings.source}:", 1)) from None
    return settings, the_plan


def _dest(dest: Path | None, settings: Settings) -> Path:
    chosen = dest or (Path(settings.dest) if settings.dest else None)
    if chosen is None:
        raise UsageError("no destination: give --dest, KLINK_SYNC_DEST or dest: in the config")
    return chosen.absolute()


def _remote(dest: Path | None, settings: Settings) -> RemoteDestination | None:
    """A destination written [user@]host:/path is on another host, reached over ssh."""
    text = str(dest) if dest is not None else settings.dest
    if not remote.is_remote(text):
        return None
    return RemoteDestination.from_settings(str(text), settings.ssh_options)


def _disabled_cuts() -> frozenset[str]:
    """KLINK_SYNC_DISABLE: downtime cuts to turn off, for the benchmark (see execute.CUTS)."""
    names = {n.strip() for n in os.environ.get("KLINK_SYNC_DISABLE", "").split(",") if n.strip()}
    unknown = sorted(names - set(CUTS))
    if unknown:
        raise UsageError(f"KLINK_SYNC_DISABLE: unknown {', '.join(unknown)} "
                         f"(known: {', '.join(CUTS)})")  # fmt: skip
    return frozenset(names)


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


def _job(mode: Mode, dest: Path | None, config: Path | None, verbose: int, quiet: bool) -> Job:
    """Settings for what surrounds a run (log level, hooks, ping, metrics); pings /start."""
    settings = load_settings(config)
    if not verbose and not quiet:
        level = os.environ.get("KLINK_SYNC_LOG_LEVEL") or settings.log_level
        if level not in LOG_LEVELS:
            raise UsageError(f"KLINK_SYNC_LOG_LEVEL={level}: must be debug, info or warning")
        log.setLevel(level.upper())
    job = Job(settings, mode.value, dest=str(dest or settings.dest or ""))
    job.start()
    return job


def _progress(verbose: int, quiet: bool):
    """A live display on a terminal; plain log lines for the journal, cron or a pipe."""
    if quiet or not sys.stderr.isatty():
        return None
    from .progress import TerminalProgress

    return TerminalProgress.shared()


def _backup(mode: Mode, folder, dest, config, dry_run, as_json, verbose, quiet) -> None:
    _setup_logging(verbose, quiet)
    job = None
    try:
        job = None if dry_run else _job(mode, dest, config, verbose, quiet)
        settings, the_plan = _read_plan(folder, config, mode)
        far = _remote(dest, settings)
        dest_root = far.root if far else _dest(dest, settings)
        compose = os.environ.get("KLINK_SYNC_COMPOSE") or settings.compose_command
        stack = Stack(detect_compose_command(compose), the_plan.folder, the_plan.compose_files)
        if dry_run:
            typer.echo(process.mask(_dry_run_text(the_plan, far or Destination(dest_root), stack)))
            return
        job.before(dest_root, the_plan.folder)
        options = RunOptions(settings.retention, settings.require_mount,
                             settings.allow_unclean_stop, settings.start_timeout,
                             progress=_progress(verbose, quiet),
                             disabled=_disabled_cuts())  # fmt: skip
        if far is not None:
            report = remote.run_backup(the_plan, far, stack, options)
        else:
            report = run_backup(the_plan, dest_root, stack, options)
        job.succeeded(report)
    except KlinkSyncError as exc:
        if job is not None:
            job.failed(exc)
        raise _fail(exc) from None
    except Exception as exc:
        if job is not None:
            job.failed(exc)
        raise
    text = json.dumps(report.to_dict(), indent=2) if as_json else report_text(report)
    typer.echo(process.mask(text))


def _dry_run_text(the_plan: Plan, dest: Destination | RemoteDestination, stack: Stack) -> str:
    commands = dry_run_commands
    if isinstance(dest, RemoteDestination):
        dest.check_usable()
        commands = remote.dry_run_commands
    else:
        destination.check_usable(dest.root)
    sources = resolve_sources(the_plan)
    lines = [plan_text(the_plan), "", "commands (dry run, nothing is touched):"]
    lines += [f"  [{phase.value}] {process.show(argv)}"
              for phase, argv in commands(the_plan, dest, stack, sources)]  # fmt: skip
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
    """List the snapshots: time, result, downtime, size, bytes new since the one before."""
    try:
        settings = load_settings(config)
        root = _dest(dest, settings)
        far = _remote(dest, settings)
        rows = far.describe_snapshots() if far else None
    except KlinkSyncError as exc:
        raise _fail(exc) from None
    if rows is None:
        rows = destination.describe_snapshots(Destination(root))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    width = max((len(r["name"]) for r in rows), default=0)
    for r in rows:
        downtime = f"{r['downtime_seconds']:.1f}s" if r["downtime_seconds"] is not None else "-"
        mark = " (latest)" if r["latest"] else ""
        mode = r["mode"] or "-"
        verified = f"verified {r['verified']}" if r["verified"] else "not verified"
        total, new = human_bytes(r["total_bytes"]), human_bytes(r["new_bytes"])
        typer.echo(f"{r['name']:<{width}}  {mode:<8} {r['result']:<10} downtime {downtime:<7} "
                   f"total {total:>10}  new {new:>10}  {verified}{mark}")  # fmt: skip


def _keep(flag: str, what: str) -> typer.models.OptionInfo:
    return typer.Option(flag, min=0, help=f"keep {what} (0: off; overrides the config)")


KeepLastOpt = Annotated[Optional[int], _keep("--keep-last", "the N newest")]  # noqa: UP045
KeepDailyOpt = Annotated[Optional[int], _keep("--keep-daily", "the newest of N days")]  # noqa: UP045
KeepWeeklyOpt = Annotated[Optional[int], _keep("--keep-weekly", "the newest of N weeks")]  # noqa: UP045
KeepMonthlyOpt = Annotated[Optional[int], _keep("--keep-monthly", "the newest of N months")]  # noqa: UP045
PruneDryRunOpt = Annotated[bool, typer.Option("--dry-run", help="list what would go only")]


@app.command()
def prune(
    dest: DestOpt = None, config: ConfigOpt = None,
    keep_last: KeepLastOpt = None, keep_daily: KeepDailyOpt = None,
    keep_weekly: KeepWeeklyOpt = None, keep_monthly: KeepMonthlyOpt = None,
    dry_run: PruneDryRunOpt = False,
    as_json: JsonOpt = False, verbose: VerboseOpt = 0, quiet: QuietOpt = False,
) -> None:  # fmt: skip
    """Remove the snapshots no retention rule keeps (flags override the config's retention:)."""
    _setup_logging(verbose, quiet)
    try:
        settings = load_settings(config)
        root = _dest(dest, settings)
        flags = {"keep_last": keep_last, "keep_daily": keep_daily, "keep_weekly": keep_weekly,
                 "keep_monthly": keep_monthly}  # fmt: skip
        rules = replace(settings.retention, **{k: v for k, v in flags.items() if v is not None})
        if rules.empty:
            raise UsageError("no retention rules: give --keep-last, --keep-daily, --keep-weekly "
                             "or --keep-monthly, or retention: in the config")  # fmt: skip
        far = _remote(dest, settings)
        if far is not None:
            result = far.prune_command(rules, dry_run)
        else:
            if not root.is_dir() or not Destination(root).snapshots_dir.is_dir():
                raise DestinationUnavailable(f"{root}: no snapshots folder: nothing to prune")
            if not (root / destination.MARKER).exists():
                raise UsageError(f"{root}: no {destination.MARKER} marker: refusing to prune")
            the_dest = Destination(root)
            if dry_run:
                result = destination.prune(the_dest, rules, dry_run=True)
            else:
                try:
                    with destination.locked(the_dest):  # never while a backup runs
                        result = destination.prune(the_dest, rules, dry_run=False)
                except OSError as exc:
                    raise DestinationUnavailable(f"{root}: {exc.strerror}") from None
    except KlinkSyncError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    gone = "would remove" if dry_run else "removed"
    width = max((len(n) for n in [e["name"] for e in result["keep"]] + result["remove"]), default=0)
    for entry in result["keep"]:
        why = ", ".join(entry["reasons"])
        typer.echo(f"{'keep':<{len(gone)}}  {entry['name']:<{width}}  {why}")
    for name in result["remove"]:
        typer.echo(f"{gone}  {name}")
    summary = f"{len(result['keep'])} kept, {len(result['remove'])} {gone}"
    typer.echo(summary + (" (dry run: nothing was touched)" if dry_run else ""))


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"klink-sync {__version__}")


SnapshotArg = Annotated[
    Optional[str],  # noqa: UP045
    typer.Argument(metavar="[SNAPSHOT]", help="snapshot name, or latest (the default)"),
]
AllOpt = Annotated[bool, typer.Option("--all", help="every snapshot in the destination")]
SampleOpt = Annotated[
    float,
    typer.Option("--sample", metavar="PERCENT",
                 help="re-read a random PERCENT of the files (missing and extra files are "
                      "always all found)"),
]  # fmt: skip
DatabaseOpt = Annotated[
    bool,
    typer.Option("--database", help="start the database on a copy of the snapshot (Docker, "
                 "no network) and check every table"),
]  # fmt: skip


def _verdict_lines(v: Verdict) -> list[str]:
    f = v.files
    lines = [f"snapshot {v.snapshot}: {f.listed} files listed, {f.checked} re-read "
             f"({f.sample:g}%, {human_bytes(f.bytes_read)})"]  # fmt: skip
    lines += f.problems()
    for d in v.databases:
        state = f"ok, {d.tables} tables checked" if d.ok else f"FAILED: {d.reason}"
        lines.append(f"database ({d.service}): {state}")
    lines += [f"warning: {w}" for w in v.warnings]
    if v.ok:
        lines.append(f"snapshot {v.snapshot}: intact")
    return lines


@app.command("verify")
def verify_command(
    snapshot: SnapshotArg = None, dest: DestOpt = None, config: ConfigOpt = None,
    all_snapshots: AllOpt = False, sample: SampleOpt = 100.0, database: DatabaseOpt = False,
    as_json: JsonOpt = False, verbose: VerboseOpt = 0, quiet: QuietOpt = False,
) -> None:  # fmt: skip
    """Re-read a snapshot against its SHA256SUMS: missing, changed, extra files (exit 1 if any)."""
    _setup_logging(verbose, quiet)
    try:
        settings = load_settings(config)
        root = _dest(dest, settings)
        far = _remote(dest, settings)
        if far is not None and database:
            raise UsageError(f"{far.root}: --database needs the snapshot on this host (Docker "
                             "runs the database here): verify it on the backup host")  # fmt: skip
        if all_snapshots and snapshot:
            raise UsageError("give a snapshot name or --all, not both")
        if not 0 < sample <= 100:
            raise UsageError(f"--sample {sample:g}: give a percentage above 0, at most 100")
        the_dest = far or Destination(root)
        if all_snapshots:
            targets = the_dest.snapshots()
            if not targets:
                raise UsageError(f"{root}: no snapshots")
        else:
            targets = [the_dest.find(snapshot or "latest")]
    except KlinkSyncError as exc:
        raise _fail(exc) from None
    rows, failed = [], []
    for snap in targets:
        try:
            check = remote.verify_snapshot if far else verify_snapshot
            verdict = check(the_dest, snap, sample, database)
        except KlinkSyncError as exc:
            if not all_snapshots or isinstance(exc, VerifyInterrupted):
                raise _fail(exc) from None
            rows.append({"snapshot": snap.name, "ok": False, "error": str(exc)})
            failed.append(str(exc))
            if not as_json:
                typer.echo(f"snapshot {snap.name}: {exc}")
            continue
        rows.append(verdict.to_dict())
        if not verdict.ok:
            failed.append(verdict.failure())
        if not as_json:
            typer.echo("\n".join(_verdict_lines(verdict)))
    if as_json:
        typer.echo(json.dumps(rows if all_snapshots else rows[0], indent=2))
    if failed:
        message = failed[0] if len(failed) == 1 else (
            f"{len(failed)} of {len(targets)} snapshots failed verification; first: {failed[0]}")
        raise _fail(KlinkSyncError(message))


@app.command()
def restore(
    snapshot: Annotated[str, typer.Argument(help="snapshot name (default: latest)")] = "latest",
    dest: DestOpt = None, folder: FolderOpt = None, config: ConfigOpt = None,
    maps: Annotated[list[str], typer.Option("--map", help="OLD=NEW host path")] = [],  # noqa: B006
    dry_run: DryRunOpt = False,
    no_safety: Annotated[bool, typer.Option("--no-safety-snapshot",
                         help="do not keep the current state first")] = False,
    start: Annotated[bool, typer.Option("--start", help="start the stack afterwards")] = False,
    as_json: JsonOpt = False, verbose: VerboseOpt = 0, quiet: QuietOpt = False,
) -> None:  # fmt: skip
    """Put a snapshot back: setup folder, volumes, owners; the current state is kept first."""
    from .restore import Restore, parse_maps, quick_verify, run_restore

    _setup_logging(verbose, quiet)
    try:
        settings = load_settings(config)
        far = _remote(dest, settings)
        the_dest = far or Destination(_dest(dest, settings))
        if far is not None:
            far.check_existing()
        elif not the_dest.root.is_dir():
            raise UsageError(f"{the_dest.root}: no such destination")
        snap = the_dest.find(snapshot)
        if not snap.complete:
            raise UsageError(f"snapshot {snap.name} is incomplete (no manifest.json): refusing")
        if far is not None:
            remote.quick_verify(far, snap)
        else:
            quick_verify(snap)
        target = folder or (Path(settings.folder) if settings.folder else None)
        target = (target or Path(snap.manifest()["folder"])).absolute()
        compose = os.environ.get("KLINK_SYNC_COMPOSE") or settings.compose_command
        kind = remote.RemoteRestore if far else Restore
        job = kind(the_dest, snap, target, detect_compose_command(compose), parse_maps(maps),
                   safety=not no_safety, start=start, stop_timeout=settings.stop_timeout,
                   start_timeout=settings.start_timeout)
        if dry_run:
            typer.echo(process.mask("\n".join(job.dry_run_lines())))
            return
        report = remote.run_restore(job) if far else run_restore(job)
    except KlinkSyncError as exc:
        raise _fail(exc) from None
    if as_json:
        from dataclasses import asdict

        typer.echo(process.mask(json.dumps(asdict(report), indent=2)))
        return
    lines = [f"restored snapshot {report.snapshot} into {report.folder}: "
             f"{report.bytes_restored} bytes in {len(report.moves)} parts"]
    if report.safety_snapshot:
        lines.append(f"the state before the restore is snapshot {report.safety_snapshot} "
                     f"(undo: klink-sync restore {report.safety_snapshot})")
    lines += [f"rewrote paths in {f}" for f in report.rewritten]
    lines.append("services before: " + (", ".join(report.services_before) or "none"))
    lines.append("services after:  " + (", ".join(report.services_after) or "none"))
    lines += report.hints
    typer.echo(process.mask("\n".join(lines)))


# --- klink-sync timer: systemd units for nightly runs ----------------------------------------

timer_app = typer.Typer(no_args_is_help=True, help="systemd service and timer for nightly runs.")
app.add_typer(timer_app, name="timer")

OnCalendarOpt = Annotated[
    str, typer.Option("--on-calendar", metavar="SPEC",
                      help="when to run (systemd.time: daily, 'Mon..Fri 02:30', ...)"),
]  # fmt: skip
UnitConfigOpt = Annotated[
    Path, typer.Option("--config", help="the config file the service reads"),
]
UnitDirOpt = Annotated[Path, typer.Option("--unit-dir", help="where the unit files go")]
ExecOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--exec", help="the klink-sync command the service runs (default: this one)"),
]


def _this_command() -> str:
    """The klink-sync the admin just ran (as typed: a /usr/local/bin link stays a link)."""
    argv0 = sys.argv[0]
    if os.path.basename(argv0) == "klink-sync" and os.path.isfile(argv0):
        return os.path.abspath(argv0)
    beside = Path(sys.executable).parent / "klink-sync"
    if beside.is_file():
        return str(beside)
    found = shutil.which("klink-sync")
    if found:
        return found
    raise UsageError("cannot tell where the klink-sync command is: give --exec PATH")


def _check_calendar(spec: str) -> None:
    """Ask systemd-analyze (when there is one) whether systemd understands `spec`."""
    try:
        process.run(("systemd-analyze", "calendar", spec))
    except process.CommandFailed as exc:
        if exc.result is None:  # no systemd-analyze here: systemd will judge it
            return
        raise UsageError(f"--on-calendar {spec!r}: not a systemd calendar spec "
                         f"({exc.result.last_error_line})") from None  # fmt: skip


def _unit_files(on_calendar: str, config: Path, exec_path: Path | None) -> dict[str, str]:
    _check_calendar(on_calendar)
    command = str(exec_path.absolute()) if exec_path else _this_command()
    if not os.access(command, os.X_OK):
        raise UsageError(f"{command}: not an executable klink-sync command")
    config = config.absolute()
    writable: list[str] = []
    if config.exists():
        problems = check_file(config)
        if problems:
            raise UsageError("\n".join(problems))
        settings = load_settings(config)
        writable = systemd.writable_paths(settings.dest, settings.metrics_file)
        if not settings.dest:
            log.warning("%s has no dest: the service will need KLINK_SYNC_DEST", config)
    else:
        log.warning("%s does not exist yet: write it (klink-sync config sample > %s), then run "
                    "`klink-sync timer install` again so the service may write to its dest",
                    config, config)  # fmt: skip
    try:
        return systemd.units(command, str(config), on_calendar, writable)
    except systemd.UnitValueError as exc:
        raise UsageError(str(exc)) from None


@timer_app.command("print")
def timer_print(
    on_calendar: OnCalendarOpt = systemd.DEFAULT_CALENDAR,
    config: UnitConfigOpt = Path(systemd.DEFAULT_CONFIG),
    unit_dir: UnitDirOpt = Path(systemd.UNIT_DIR),
    exec_path: ExecOpt = None,
) -> None:  # fmt: skip
    """Print the service and timer units (nothing is written)."""
    _setup_logging(0, False)
    try:
        files = _unit_files(on_calendar, config, exec_path)
    except KlinkSyncError as exc:
        raise _fail(exc) from None
    for name, text in files.items():
        typer.echo(f"# {unit_dir.absolute() / name}\n{text}")
    typer.echo("# to install them: klink-sync timer install, then:")
    typer.echo("\n".join(systemd.enable_commands()))


@timer_app.command("install")
def timer_install(
    on_calendar: OnCalendarOpt = systemd.DEFAULT_CALENDAR,
    config: UnitConfigOpt = Path(systemd.DEFAULT_CONFIG),
    unit_dir: UnitDirOpt = Path(systemd.UNIT_DIR),
    exec_path: ExecOpt = None,
) -> None:  # fmt: skip
    """Write klink-sync.service and klink-sync.timer into the unit folder."""
    _setup_logging(0, False)
    try:
        files = _unit_files(on_calendar, config, exec_path)
        try:
            written = systemd.write_units(unit_dir.absolute(), files)
        except OSError as exc:
            raise UsageError(f"{unit_dir}: cannot write the units: {exc.strerror}") from None
    except KlinkSyncError as exc:
        raise _fail(exc) from None
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo("now enable the timer, as root:")
    typer.echo("\n".join(systemd.enable_commands()))


# --- klink-sync config: the sample and the checker ---------------------------------------------

config_app = typer.Typer(no_args_is_help=True, help="The YAML config file: sample and check.")
app.add_typer(config_app, name="config")


@config_app.command("sample")
def config_sample() -> None:
    """Print a config file with every option, its default and an example."""
    typer.echo(config_sample_text(), nl=False)


@config_app.command("check")
def config_check(
    file: Annotated[Path, typer.Argument(envvar="KLINK_SYNC_CONFIG",
                                         help="the config file to check")] = Path(
        systemd.DEFAULT_CONFIG),
) -> None:  # fmt: skip
    """Report every problem of a config file (file, key, reason); exit 2 if there is any."""
    problems = check_file(file)
    for problem in problems:
        typer.echo(problem, err=True)
    if problems:
        count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
        typer.echo(f"{file}: {count}", err=True)
        raise typer.Exit(2)
    typer.echo(f"{file}: ok")
