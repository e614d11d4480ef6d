"""The command line: parse, one call into the core, print. `command` is the one wrapper
that sets up logging and turns a KlinkSyncError into its message and exit code."""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from . import __version__, load, process, systemd
from .config import check_file
from .config import sample as config_sample_text
from .errors import KlinkSyncError, OffsiteFailed, UsageError
from .models import Mode

if TYPE_CHECKING:  # each command imports what it runs: a push pays for no backup code
    from .models import Report
    from .verify import Verdict

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Hot and cold backups of K-Link / K-Box Docker Compose deployments.",
)
log = logging.getLogger("klink_sync")

FolderOpt = Annotated[
    Optional[Path],  # noqa: UP045 (typer reads the annotation at run time)
    typer.Option("--folder", envvar="KLINK_SYNC_FOLDER", help="setup folder (compose file)"),
]
DestOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--dest", envvar="KLINK_SYNC_DEST",
                 help="backup destination: a folder, or \\[user@]host:/path over ssh"),
]  # fmt: skip
ConfigOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--config", envvar="KLINK_SYNC_CONFIG", help="YAML config file"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object")]
VerboseOpt = Annotated[int, typer.Option("-v", "--verbose", count=True, help="more detail")]
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet", help="warnings and errors only")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="print the plan and commands only")]


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


def command(group: typer.Typer, name: str | None = None) -> Callable:
    """Register `fn` as a command: logging set up first; a KlinkSyncError becomes one line
    on stderr (secrets masked) and its exit code."""

    def register(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args, **kwargs):  # type: ignore[no-untyped-def]
            _setup_logging(kwargs.get("verbose", 0), kwargs.get("quiet", False))
            try:
                return fn(*args, **kwargs)
            except KlinkSyncError as exc:
                typer.echo(f"klink-sync: error: {process.mask(str(exc))}", err=True)
                raise typer.Exit(exc.exit_code) from None

        return group.command(name)(run)

    return register


def _echo(text: str) -> None:
    typer.echo(process.mask(text))


@command(app)
def plan(
    folder: FolderOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False,
    verbose: VerboseOpt = 0, quiet: QuietOpt = False,
) -> None:  # fmt: skip
    """Show what a backup would copy, how (hot, cold, skip) and why."""
    from .report import plan_dict, plan_text

    the_plan = load.plan(load.settings(config), folder, Mode.HOT_COLD)
    _echo(json.dumps(plan_dict(the_plan), indent=2) if as_json else plan_text(the_plan))


def _progress(quiet: bool):  # type: ignore[no-untyped-def]
    """A live display on a terminal; plain log lines for the journal, cron or a pipe."""
    if quiet or not sys.stderr.isatty():
        return None
    from .progress import TerminalProgress

    return TerminalProgress.shared()


def _backup(mode: Mode, folder: Path | None, dest: str | None, config: Path | None,
            dry_run_only: bool, verbose: int, quiet: bool) -> Report | None:  # fmt: skip
    """A backup run inside its job (hooks, ping, metrics); None after a dry run."""
    from .backup import RunOptions, dry_run, run_backup
    from .hooks import Job
    from .report import plan_text

    settings = load.settings(config)
    cuts = load.cuts()
    if dry_run_only:
        the_plan = load.plan(settings, folder, mode)
        options = RunOptions(progress=_progress(quiet), cuts=cuts,
                             require_mount=settings.require_mount)  # fmt: skip
        steps = dry_run(the_plan, load.destination(dest, settings), load.stack(settings, the_plan),
                        options)  # fmt: skip
        lines = [plan_text(the_plan), "", "commands (dry run, nothing is touched):"]
        _echo("\n".join(lines + [s.line() for s in steps]))
        return None
    if not verbose and not quiet:
        log.setLevel(load.log_level(settings).upper())
    job = Job(settings, mode.value, dest=str(dest or settings.dest or ""))
    job.start()
    try:
        the_plan = load.plan(settings, folder, mode)
        the_dest = load.destination(dest, settings)
        stack = load.stack(settings, the_plan)
        job.before(the_dest.spec, the_plan.folder)
        login = load.database_login(settings, the_plan) if mode is Mode.LIVE else None
        options = RunOptions(settings.retention, settings.require_mount,
                             settings.allow_unclean_stop, settings.start_timeout,
                             _progress(quiet), cuts, login)  # fmt: skip
        report = run_backup(the_plan, the_dest, stack, options)
        if settings.offsite is not None and settings.offsite.after_backup and report.snapshot:
            from .offsite_run import push_after_backup  # the stack is up again by now

            pushed = push_after_backup(settings.offsite, the_dest, report.snapshot,
                                       count=settings.metrics_file is not None)
            report = replace(report, offsite=pushed.to_dict())
        failure = _offsite_failure(report)
        if failure is None:
            job.succeeded(report)
        else:  # the snapshot is kept, the run failed: on_failure hooks, /fail, metrics 0
            job.report = report
            job.failed(failure)
    except Exception as exc:
        job.failed(exc)
        raise
    return report


def _offsite_failure(report: Report) -> OffsiteFailed | None:
    """A failed push fails the run (exit 1), though its snapshot is kept."""
    if report.offsite.get("result") != "failed":
        return None
    return OffsiteFailed(f"the snapshot {report.snapshot} is kept; the offsite push failed: "
                         + str(report.offsite.get("error")))  # fmt: skip


PauseOpt = Annotated[bool, typer.Option(
    "--pause", help="freeze the stack (docker pause) instead of stopping it: no request "
    "fails, they wait; the snapshot is crash-consistent")]  # fmt: skip


def _backup_command(mode: Mode, doc: str) -> None:
    """`klink-sync hot-cold` and `klink-sync cold`: the same options, another mode."""

    def backup(
        folder: FolderOpt = None, dest: DestOpt = None, config: ConfigOpt = None,
        dry_run: DryRunOpt = False, as_json: JsonOpt = False,
        verbose: VerboseOpt = 0, quiet: QuietOpt = False, pause: PauseOpt = False,
    ) -> None:  # fmt: skip
        if pause and mode is not Mode.HOT_COLD:
            raise UsageError(f"--pause is an option of hot-cold, not of {mode.value}")
        from .report import report_text

        chosen = Mode.PAUSE if pause else mode
        report = _backup(chosen, folder, dest, config, dry_run, verbose, quiet)
        if report is not None:
            _echo(json.dumps(report.to_dict(), indent=2) if as_json else report_text(report))
            failure = _offsite_failure(report)
            if failure is not None:
                raise failure

    backup.__doc__ = doc
    command(app, mode.value)(backup)


_backup_command(Mode.HOT_COLD, "Copy hot volumes while the stack runs, stop it, copy the rest, "
                "start it again.")  # fmt: skip
_backup_command(Mode.COLD, "The guide's plain procedure: stop, copy everything, start.")
_backup_command(Mode.LIVE, "Stop nothing: the database copied by mariadb-backup, the index "
                "with its service paused, the documents after the database.")  # fmt: skip


@command(app)
def snapshots(dest: DestOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List the snapshots: time, result, downtime, size, bytes new since the one before."""
    from .report import human_bytes

    rows = load.destination(dest, load.settings(config)).describe()
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


@command(app)
def prune(
    dest: DestOpt = None, config: ConfigOpt = None,
    keep_last: KeepLastOpt = None, keep_daily: KeepDailyOpt = None,
    keep_weekly: KeepWeeklyOpt = None, keep_monthly: KeepMonthlyOpt = None,
    dry_run: PruneDryRunOpt = False,
    as_json: JsonOpt = False, verbose: VerboseOpt = 0, quiet: QuietOpt = False,
) -> None:  # fmt: skip
    """Remove the snapshots no retention rule keeps (flags override the config's retention:)."""
    settings = load.settings(config)
    flags = {"keep_last": keep_last, "keep_daily": keep_daily, "keep_weekly": keep_weekly,
             "keep_monthly": keep_monthly}  # fmt: skip
    rules = replace(settings.retention, **{k: v for k, v in flags.items() if v is not None})
    the_dest = load.destination(dest, settings)
    try:
        result = the_dest.prune_command(rules, dry_run)
    except OSError as exc:
        raise KlinkSyncError(f"{the_dest.spec}: {exc.strerror}") from None
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
    from .report import human_bytes

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


@command(app, "verify")
def verify_command(
    snapshot: SnapshotArg = None, dest: DestOpt = None, config: ConfigOpt = None,
    all_snapshots: AllOpt = False, sample: SampleOpt = 100.0, database: DatabaseOpt = False,
    as_json: JsonOpt = False, verbose: VerboseOpt = 0, quiet: QuietOpt = False,
) -> None:  # fmt: skip
    """Re-read a snapshot against its SHA256SUMS: missing, changed, extra files (exit 1 if any)."""
    from .verify import VerifyInterrupted, verify_snapshot, verify_targets

    the_dest = load.destination(dest, load.settings(config))
    targets = verify_targets(the_dest, snapshot, all_snapshots, sample, database)
    rows, failed = [], []
    for snap in targets:
        try:
            verdict = verify_snapshot(the_dest, snap, sample, database)
        except KlinkSyncError as exc:
            if not all_snapshots or isinstance(exc, VerifyInterrupted):
                raise
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
        raise KlinkSyncError(failed[0] if len(failed) == 1 else (
            f"{len(failed)} of {len(targets)} snapshots failed verification; first: {failed[0]}"))


@command(app)
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
    from .restore import open_restore, run_restore

    settings = load.settings(config)
    job = open_restore(load.destination(dest, settings), snapshot, folder, settings, maps,
                       safety=not no_safety, start=start)  # fmt: skip
    if dry_run:
        _echo("\n".join(job.dry_run_lines()))
        return
    report = run_restore(job)
    if as_json:
        _echo(json.dumps(asdict(report), indent=2))
        return
    lines = [f"restored snapshot {report.snapshot} into {report.folder}: "
             f"{report.bytes_restored} bytes in {len(report.moves)} parts, "
             f"{report.files_repaired} files rewritten (missing or their content differed)"]
    if report.safety_snapshot:
        lines.append(f"the state before the restore is snapshot {report.safety_snapshot} "
                     f"(undo: klink-sync restore {report.safety_snapshot})")
    lines += [f"rewrote paths in {f}" for f in report.rewritten]
    lines.append("services before: " + (", ".join(report.services_before) or "none"))
    lines.append("services after:  " + (", ".join(report.services_after) or "none"))
    lines += report.hints
    _echo("\n".join(lines))


@command(app, "recover")
def recover_command(config: ConfigOpt = None, verbose: VerboseOpt = 0,
                    quiet: QuietOpt = False) -> None:  # fmt: skip
    """Start again (or thaw) what a klink-sync run that died left stopped (or frozen): run
    at boot and after each timer run by the units `timer install` writes; every backup and
    restore does it first too."""
    from .recover import recover_all

    settings = load.settings(config)
    done = recover_all(settings.start_timeout, load.compose_commands(settings))
    failed = [f"{folder}: {what}" for folder, what in done if isinstance(what, KlinkSyncError)]
    for folder, what in done:
        if not isinstance(what, KlinkSyncError):
            _echo(f"{folder}: {what.message() or 'nothing to start'}")
    if not done:
        _echo("nothing held: no klink-sync run left a deployment stopped or frozen")
    if failed:
        raise KlinkSyncError("; ".join(failed))


# --- klink-sync offsite: encrypted copies with restic ----------------------------------------

offsite_app = typer.Typer(no_args_is_help=True,
                          help="Encrypted offsite copies of the snapshots, with restic.")
app.add_typer(offsite_app, name="offsite")


def _offsite(config: Path | None):  # type: ignore[no-untyped-def]
    settings = load.settings(config)
    if settings.offsite is None:
        where = settings.source if config else "no config file (give --config)"
        raise UsageError(f"{where}: no offsite: section: see `klink-sync config sample`")
    return settings, settings.offsite


@command(offsite_app, "init")
def offsite_init(config: ConfigOpt = None, verbose: VerboseOpt = 0) -> None:
    """Create the restic repository (an existing one is left alone)."""
    from . import offsite_run

    _echo(offsite_run.init(_offsite(config)[1]))


@command(offsite_app, "push")
def offsite_push(
    snapshot: Annotated[str, typer.Argument(help="snapshot name (default: latest)")] = "latest",
    dest: DestOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False,
    verbose: VerboseOpt = 0,
) -> None:  # fmt: skip
    """Copy one local snapshot into the restic repository (the previous push as parent)."""
    from . import offsite_run
    from .report import report_offsite

    settings, offsite = _offsite(config)
    pushed = offsite_run.push(offsite, load.destination(dest, settings), snapshot)
    _echo(json.dumps(pushed.to_dict(), indent=2) if as_json else report_offsite(pushed.to_dict()))


@command(offsite_app, "snapshots")
def offsite_snapshots(config: ConfigOpt = None, as_json: JsonOpt = False,
                      verbose: VerboseOpt = 0) -> None:  # fmt: skip
    """What the repository holds, by klink-sync snapshot name."""
    from . import offsite_run

    found = offsite_run.listing(_offsite(config)[1])
    if as_json:
        _echo(json.dumps([s.to_dict() for s in found], indent=2))
        return
    rows = [f"{s.name:<24} {s.deployment or s.host:<20} {s.mode:<9} {s.id}" for s in found]
    _echo("\n".join([f"{'SNAPSHOT':<24} {'DEPLOYMENT':<20} {'MODE':<9} RESTIC ID", *rows]))


@command(offsite_app, "check")
def offsite_check(config: ConfigOpt = None, verbose: VerboseOpt = 0) -> None:
    """restic check, reading `check_subset` of the data."""
    from . import offsite_run

    _echo(offsite_run.check(_offsite(config)[1]))


@command(offsite_app, "pull")
def offsite_pull(
    snapshot: Annotated[str, typer.Argument(help="snapshot name, or latest")],
    dest: DestOpt = None, config: ConfigOpt = None,
    deployment: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--deployment", help="which deployment, when the repository holds several")] = None,
    verbose: VerboseOpt = 0,
) -> None:  # fmt: skip
    """Bring a snapshot back from the repository into DEST/snapshots/NAME, checked."""
    from . import offsite_run

    settings, offsite = _offsite(config)
    _echo(offsite_run.pull(offsite, load.destination(dest, settings), snapshot, deployment))


@command(offsite_app, "prune")
def offsite_prune(config: ConfigOpt = None, dry_run: DryRunOpt = False,
                  verbose: VerboseOpt = 0) -> None:  # fmt: skip
    """restic forget --prune by offsite.retention (each deployment on its own)."""
    from . import offsite_run

    _echo(offsite_run.prune(_offsite(config)[1], dry_run))


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
ModeOpt = Annotated[
    str, typer.Option("--mode", help="what the service runs: " + ", ".join(systemd.MODE_WORDS)
                      + " (hot-cold-pause: hot-cold --pause)"),
]  # fmt: skip


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


def _unit_files(on_calendar: str, config: Path, exec_path: Path | None,
                mode: str = "hot-cold") -> dict[str, str]:  # fmt: skip
    if mode not in systemd.MODE_WORDS:
        raise UsageError(f"--mode {mode}: not one of {', '.join(systemd.MODE_WORDS)}")
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
        settings = load.settings(config)
        repository = settings.offsite.repository if settings.offsite else None
        writable = systemd.writable_paths(settings.dest, settings.metrics_file, repository)
        if not settings.dest:
            log.warning("%s has no dest: the service will need KLINK_SYNC_DEST", config)
    else:
        log.warning("%s does not exist yet: write it (klink-sync config sample > %s), then run "
                    "`klink-sync timer install` again so the service may write to its dest",
                    config, config)  # fmt: skip
    try:
        return systemd.units(command, str(config), on_calendar, writable, mode)
    except systemd.UnitValueError as exc:
        raise UsageError(str(exc)) from None


@command(timer_app, "print")
def timer_print(
    on_calendar: OnCalendarOpt = systemd.DEFAULT_CALENDAR,
    config: UnitConfigOpt = Path(systemd.DEFAULT_CONFIG),
    unit_dir: UnitDirOpt = Path(systemd.UNIT_DIR),
    exec_path: ExecOpt = None,
    mode: ModeOpt = "hot-cold",
) -> None:  # fmt: skip
    """Print the service and timer units (nothing is written)."""
    files = _unit_files(on_calendar, config, exec_path, mode)
    for name, text in files.items():
        typer.echo(f"# {unit_dir.absolute() / name}\n{text}")
    typer.echo("# to install them: klink-sync timer install, then:")
    typer.echo("\n".join(systemd.enable_commands()))


@command(timer_app, "install")
def timer_install(
    on_calendar: OnCalendarOpt = systemd.DEFAULT_CALENDAR,
    config: UnitConfigOpt = Path(systemd.DEFAULT_CONFIG),
    unit_dir: UnitDirOpt = Path(systemd.UNIT_DIR),
    exec_path: ExecOpt = None,
    mode: ModeOpt = "hot-cold",
) -> None:  # fmt: skip
    """Write klink-sync.service and klink-sync.timer into the unit folder."""
    files = _unit_files(on_calendar, config, exec_path, mode)
    try:
        written = systemd.write_units(unit_dir.absolute(), files)
    except OSError as exc:
        raise UsageError(f"{unit_dir}: cannot write the units: {exc.strerror}") from None
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
