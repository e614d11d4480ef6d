"""The command line of the benchmark: `python -m scripts.bench` from the repository's root
(`make bench BENCH_ARGS=...`). Options as --help shows; the run's steps, timed."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from . import __doc__ as package_doc
from . import rounds
from .common import MASK, ROOT, BenchError, log, median
from .measure import Bench
from .report import machine_info, write_report

PROG = "python -m scripts.bench"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog=PROG, description=package_doc.split("\n\n")[0])
    ap.add_argument("--docs-gib", type=float, help="GiB of pre-filled documents (default 2)")
    ap.add_argument("--files", type=int, help="number of pre-filled documents (default 20000)")
    ap.add_argument("--db-mib", type=int, help="database size on disk, MiB (default 500)")
    ap.add_argument("--reps", type=int, help="repetitions of every method (default 3)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"),
                    help="the report (the chart goes beside it as downtime.png)")
    ap.add_argument("--scaling", help="file counts of the scaling runs "
                    "(default 10000,100000,1000000; 'none' to skip)")
    ap.add_argument("--scaling-reps", type=int, default=1,
                    help="unchanged incremental runs per scaling size (default 1)")
    ap.add_argument("--skip-peers", action="store_true", help="no rsnapshot, no restic")
    ap.add_argument("--no-offsite", dest="offsite", action="store_false",
                    help="skip `klink-sync offsite push` against plain `restic backup`")
    ap.add_argument("--no-cuts", dest="cuts", action="store_false",
                    help="skip the runs with one downtime cut turned off at a time")
    ap.add_argument("--quick", action="store_true",
                    help="a small smoke size: 64 MiB in 600 files, 48 MiB database, 1 rep, "
                    "scaling 2000,10000 (explicit options still win)")
    ap.add_argument("--write-rate", type=float, default=15,
                    help="documents/s of the writer (the sample's default: 15)")
    ap.add_argument("--change-percent", type=float, default=1.0,
                    help="percent of the pre-filled documents rewritten before H2 (default 1)")
    ap.add_argument("--offsite-rounds", type=int, default=3,
                    help="incremental offsite rounds per repetition, each a new change and "
                    "snapshot pushed by both (default 3)")
    ap.add_argument("--settle", type=float, default=5, help="seconds of rest before each method")
    ap.add_argument("--poll-interval", type=float, default=0.05, help="seconds between probes")
    ap.add_argument("--compose", default="docker compose", help="compose command")
    ap.add_argument("--work-dir", default=None,
                    help="where the deployment and destinations go (default /var/tmp/klink-bench-PID)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--no-check", dest="check", action="store_false",
                    help="skip check.py on the last H2 snapshot")
    ap.add_argument("--http-interval", type=float, default=0.05,
                    help="seconds between the HTTP probe's requests to the kbox during every "
                    "measured run (scripts/sample-stack/probe.py; default 0.05, 0: no probe)")
    ap.add_argument("--restore-reps", type=int,
                    help="repetitions of the physical and the logical database restore "
                    "(default 5, --quick 2; 0: skip)")
    ap.add_argument("--only", default="",
                    help="comma-separated steps to run after the setup, of: repetitions, "
                    "second-snapshot, restore, offsite, scaling (default: all); restore "
                    "without repetitions takes a live snapshot of its own")
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--report-from", metavar="RAW_JSON",
                    help="only write the report (and chart) again from a finished run's raw.json")
    a = ap.parse_args(argv)
    apply_defaults(a)
    if a.reps < 1:
        ap.error("--reps must be at least 1")
    return a


def apply_defaults(a) -> None:
    """The sizes --quick picks, where no explicit option gave one."""
    q = a.quick
    a.docs_gib = a.docs_gib if a.docs_gib is not None else (1 / 16 if q else 2.0)
    a.files = a.files if a.files is not None else (600 if q else 20000)
    a.db_mib = a.db_mib if a.db_mib is not None else (48 if q else 500)
    a.reps = a.reps if a.reps is not None else (1 if q else 3)
    a.restore_reps = a.restore_reps if a.restore_reps is not None else (2 if q else 5)
    sc = a.scaling if a.scaling is not None else ("2000,10000" if q else "10000,100000,1000000")
    a.scaling = [] if sc == "none" else [int(x) for x in sc.split(",") if x.strip()]
    a.work_dir = a.work_dir or f"/var/tmp/klink-bench-{os.getpid()}"


def report_from(raw_path: Path, out: Path) -> int:
    """The report of a finished run again, from its raw.json (nothing is measured)."""
    raw = json.loads(raw_path.read_text())
    b = SimpleNamespace(
        a=argparse.Namespace(**raw["args"]), results=raw["results"], extra=raw["extra"],
        notes=raw["notes"], size_start=raw["size_start"], size_end=raw["size_end"],
        code_digest=raw["code_digest"], probe_period=raw["probe_period_median"],
    )  # fmt: skip
    write_report(b, out, raw["machine"], raw["timing"], raw["argv"])
    return 0


def preflight(a) -> str | None:
    """Why the benchmark cannot run here, if it cannot."""
    if os.geteuid() != 0:
        return f"{PROG}: run as root (Docker, numeric owners)"
    tools = ["rsync", "/usr/bin/time", "docker"] + ([] if a.skip_peers else ["rsnapshot"])
    for tool in tools + (["restic"] if a.offsite or not a.skip_peers else []):
        if not shutil.which(tool):
            return f"{PROG}: {tool} is missing (scripts/install-deps.sh)"
    return None


def on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.report_from:
        return report_from(Path(a.report_from), Path(a.out))
    problem = preflight(a)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    b = Bench(a)
    timing = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    try:
        run_all(b, timing)
        return 0
    except (BenchError, KeyboardInterrupt) as exc:
        log(f"failed: {MASK(str(exc))}")
        return 1
    finally:
        b.teardown()


def run_all(b: Bench, timing: dict) -> None:
    """Every step, each timed into `timing`; then raw.json and the report."""
    a = b.a
    t0 = time.monotonic()
    machine = machine_info(Path("/var/tmp") if not Path(a.work_dir).exists() else Path(a.work_dir))
    only = {x.strip() for x in a.only.split(",") if x.strip()}
    wanted = (lambda name: not only or name in only)  # noqa: E731
    step(timing, "setup (deployment, fill)", b.setup)
    if wanted("repetitions"):
        kept = step(timing, "repetitions", rounds.repetitions, b)
        if wanted("second-snapshot"):
            step(timing, "second snapshot, verify, check", second_snapshot, b, kept)
    if wanted("restore"):
        step(timing, "restore: physical against logical", rounds.restore_compare, b)
    if wanted("offsite"):
        step(timing, "offsite push", rounds.offsite, b)  # nothing when --no-offsite
    b.stop_stack()
    if wanted("scaling"):
        step(timing, "scaling", rounds.scaling, b)  # nothing when --scaling none
    timing["total"] = time.monotonic() - t0
    b.save_raw(machine, timing)
    b.probe_period = median(b.poller.periods) if b.poller else None
    write_report(b, Path(a.out), machine, timing, sys.argv[1:])


def step(timing: dict, name: str, fn, *args):
    t = time.monotonic()
    result = fn(*args)
    timing[name] = time.monotonic() - t
    return result


def second_snapshot(b: Bench, kept: Path) -> None:
    rounds.second_snapshot(b, kept)
    b.size_end = b.s.deployment_size()


if __name__ == "__main__":
    sys.exit(main())
