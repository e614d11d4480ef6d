"""The order of the measurements: the repetitions (every method once each, the 1% change
between first and incremental runs), then a second snapshot of unchanged data with verify
and check.py, side tests of rsync alone, the offsite push against plain restic, and the
scaling runs (no Docker)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from . import methods as m
from . import restore
from .common import CUTS, MASK, MIB, REST_AFTER_CLEANUP, SAMPLE, du_bytes, log, median, rm_tree, run
from .measure import Bench, timed

FIRST_RUN_CUTS = ("rounds", "seed", "parallel", "write-back")  # those that matter most on H1

# A stand-in compose command for the scaling runs (no Docker): the idea of
# tests/integration/fake-compose, kept here so the benchmark imports nothing from tests.
FAKE_COMPOSE = """#!/bin/bash
set -euo pipefail
state={state}
while [ "${{1:-}}" = "-f" ]; do shift 2; done
cmd=${{1:-}}; shift || true
case "$cmd" in
  version) echo "bench stand-in compose 0" ;;
  config) ;;
  ps) case " $* " in *" -q "*) exit 0 ;; esac; [ -f "$state" ] && cat "$state" ;;
  stop) : >"$state" ;;
  start|up)
    [ "${{1:-}}" = "-d" ] && shift
    [ $# -gt 0 ] || set -- database engine kbox
    for s in "$@"; do grep -qx "$s" "$state" 2>/dev/null || echo "$s" >>"$state"; done ;;
  *) echo "stand-in compose: unknown command $cmd" >&2; exit 2 ;;
esac
"""


# ----------------------------------------------------------------- the repetitions


def repetitions(b: Bench) -> Path:
    """Every repetition; returns the klink-sync destination of the last one (kept, with
    the last live destination: b.kept)."""
    keep = None
    b.extra["live_available"] = live_available(b)
    if not b.extra["live_available"]:
        b.notes.append("`klink-sync live` is not in the code measured (no `live` command): "
                       "its rows are missing; the physical restore starts an H2 snapshot's "
                       "database (a clean shutdown's copy) instead of a live one's")  # fmt: skip
    for rep in range(1, b.a.reps + 1):
        d = b.s.work / f"r{rep}"
        d.mkdir()
        kd = one_repetition(b, rep, d)
        kept = {"hot-cold": kd, "live": d / "klive"}
        for sub in d.iterdir():
            if sub not in kept.values():
                rm_tree(sub)
        if keep is not None:
            rm_tree(keep.parent)
        keep = kd
        b.kept = {k: v for k, v in kept.items() if v.exists()}
        if rep < b.a.reps:  # the last one's documents stay: check.py reads its snapshot
            log(f"rep {rep}: removed the {b.s.trim_to_prefilled()} documents the writer added")
        run(["sync"])
        time.sleep(REST_AFTER_CLEANUP)  # before the next repetition's F and P
    return keep


def live_available(b: Bench) -> bool:
    """Whether the code measured has `klink-sync live`."""
    p = run(b.s.klink("live", "--help"), env=b.s.klink_env, check=False)
    return p.returncode == 0


def one_repetition(b: Bench, rep: int, d: Path) -> Path:
    """F, P, cold, H1 and its peers; the 1% change; H2 and its peers, the cuts."""
    s = b.s
    b.measure("F", rep, m.floor, s)
    # no destination is removed before the repetition ends: a measured run right
    # after a large delete writes markedly slower (seconds, on ext4 here)
    b.measure("P", rep, m.plain, s, d / "plain")
    b.measure("cold", rep, m.klink_run, s, "cold", d / "kcold")
    kd, bd = d / "klink", d / "bare"
    first_runs(b, rep, d, kd, bd)
    changed = s.change_documents()
    log(f"rep {rep}: rewrote {b.a.change_percent:g}% of the documents "
        f"({changed / MIB:.0f} MiB)")  # fmt: skip
    b.extra.setdefault("changed_bytes", []).append(changed)
    incremental_runs(b, rep, d, kd, bd)
    return kd


def stopless_modes(b: Bench, d: Path) -> list[tuple[str, str, Path]]:
    """(method prefix, klink-sync mode, destination) of the modes that stop nothing, each
    on a destination of its own: a first run (-1), an incremental one after the change (-2)."""
    out = [("pause", "hot-cold --pause", d / "kpause")]
    if b.extra.get("live_available"):
        out.append(("live", "live", d / "klive"))
    return out


def first_runs(b: Bench, rep: int, d: Path, kd: Path, bd: Path) -> None:
    s = b.s
    script = m.bare_script(s, kd, bd, 1)
    h1 = b.measure("H1", rep, m.klink_run, s, "hot-cold", kd)
    for prefix, mode, dest in stopless_modes(b, d):  # as close to H1 as H2 will be to them
        b.measure(f"{prefix}-1", rep, m.klink_run, s, mode, dest)
    b.measure("bare-H1", rep, m.bare, s, script, bd, h1)
    if b.a.cuts:  # the cuts that matter most on a first run, each on a fresh destination
        for cut in FIRST_RUN_CUTS:
            b.measure(f"H1-no-{cut}", rep, m.klink_run, s, "hot-cold", d / f"k1-{cut}", cut)
    if not b.a.skip_peers:
        b.measure("rsnapshot-1", rep, m.rsnapshot, s, d / "rsnapshot")
        b.measure("restic-1", rep, m.restic, s, d / "restic", True)


def incremental_runs(b: Bench, rep: int, d: Path, kd: Path, bd: Path) -> None:
    s = b.s
    script = m.bare_script(s, kd, bd, 2)
    h2 = b.measure("H2", rep, m.klink_run, s, "hot-cold", kd)
    for prefix, mode, dest in stopless_modes(b, d):
        b.measure(f"{prefix}-2", rep, m.klink_run, s, mode, dest)
    b.measure("bare-H2", rep, m.bare, s, script, bd, h2)
    if not b.a.skip_peers:
        b.measure("rsnapshot-2", rep, m.rsnapshot, s, d / "rsnapshot")
        b.measure("restic-2", rep, m.restic, s, d / "restic", False)
    if b.a.cuts:
        # each downtime cut turned off in turn, against the same run with all of them,
        # one after the other (incremental: the writer's few seconds of changes)
        for cut in ["", *CUTS]:
            b.measure(f"H3-no-{cut}" if cut else "H3", rep, m.klink_run, s, "hot-cold", kd, cut)


# ----------------------------------------------------------------- the second snapshot


def second_snapshot(b: Bench, kd: Path) -> None:
    """Two hot-cold runs with the writer stopped: the second's new disk space."""
    s = b.s
    first_snaps = sorted(p.name for p in (kd / "snapshots").iterdir() if p.is_dir())
    log("second snapshot of unchanged data: stopping the writer (kbox)")
    s.compose("stop", "kbox")
    time.sleep(b.a.settle + 2)  # the indexer catches up with the last rows
    try:
        snaps = unchanged_runs(b, kd)
        side_tests(b, kd / "snapshots" / snaps[-1]["snapshot"])
    finally:
        s.compose("start", "kbox")
    s2, s3, s4 = (kd / "snapshots" / r["snapshot"] for r in snaps)
    second, settle_new = second_sizes(s2, s3, s4)
    listing = json.loads(run(s.klink("snapshots", "--dest", kd, "--json"),
                             env=s.klink_env).stdout)  # fmt: skip
    verify = verify_snapshots(b, kd, first_snaps + [s3.name])
    b.extra["second"] = {
        "first": s3.name, "second": s4.name, **second, "listing": listing, "verify": verify,
        "older": first_snaps, "downtimes": [r.get("downtime_seconds") for r in snaps],
        "settle": s2.name, "settle_changed_files": changed_files(s2, s3),
        "first_new": settle_new,
    }  # fmt: skip
    log(f"second snapshot: {second['second_new'] / MIB:.1f} MiB new of "
        f"{second['first_bytes'] / MIB:.0f} MiB "
        f"({b.extra['second']['percent']:.2f}%); verify: "
        + ", ".join(f"{k}={v['exit']}" for k, v in verify.items()))  # fmt: skip
    if b.a.check:
        check_last_h2(b, kd)
    b.save_raw()


def unchanged_runs(b: Bench, kd: Path) -> list[dict]:
    """Three hot-cold runs one after the other; their --json reports."""
    s = b.s
    snaps = []
    # A settling run first: the database's restart after the writer's last rows
    # still has work (InnoDB purges, flushes) that rewrites its log and tablespaces;
    # the measured pair is the next two runs, with nothing left to change.
    for _ in range(3):
        run(["sync"])
        _, _, p = timed(s.klink("hot-cold", "--folder", s.folder, "--dest", kd, "--json"),
                        env=s.klink_env)  # fmt: skip
        snaps.append(json.loads(p.stdout))
        time.sleep(b.a.settle)
    return snaps


def second_sizes(s2: Path, s3: Path, s4: Path) -> tuple[dict, int]:
    """Disk use of the first measured snapshot (s3), what the second (s4) adds; and what
    s3 added to the settling run's s2."""
    settle_new = du_bytes(s2, s3)[1]
    total3, new4 = du_bytes(s3, s4)
    total4_alone = du_bytes(s4)[0]
    changed = changed_files(s3, s4)
    return {
        "first_bytes": total3, "second_new": new4, "second_alone": total4_alone,
        "percent": 100.0 * new4 / total3 if total3 else None, "changed_files": changed,
    }, settle_new  # fmt: skip


def verify_snapshots(b: Bench, kd: Path, names: list[str]) -> dict:
    verify = {}
    for name in names:
        p = run(b.s.klink("verify", "--dest", kd, name), env=b.s.klink_env, check=False)
        verify[name] = {"exit": p.returncode, "out": MASK(p.stdout + p.stderr).strip()[-500:]}
    return verify


def check_last_h2(b: Bench, kd: Path) -> None:
    log("checking the last H2 snapshot with scripts/sample-stack/check.py")
    h2 = [r for r in b.results if r["method"] == "H2"][-1]["snapshot"]
    p = run([sys.executable, SAMPLE / "check.py", "snapshot",
             kd / "snapshots" / h2 / "folder", "--json"], check=False, timeout=3600)  # fmt: skip
    try:
        r = json.loads(p.stdout)
        b.extra["check"] = {k: r.get(k) for k in (
            "ok", "rows", "crash_recovery", "check_ok", "index_ok", "index_consistent",
            "errors")} | {"snapshot": h2, "missing": len(r.get("missing_files", [])),
                          "bad_sha256": len(r.get("bad_sha256", []))}  # fmt: skip
    except ValueError:
        b.extra["check"] = {"ok": False, "errors": [MASK(p.stderr)[-500:]]}


def side_tests(b: Bench, snapshot: Path) -> None:
    """With the documents unchanged (writer stopped): what a cold rsync of storage/data costs
    with and without --link-dest when the target is already complete (as after a hot pass),
    and what one near-empty rsync costs run bare."""
    folder, work = b.s.folder, b.s.work
    base = ["rsync", "-aHAX", "--numeric-ids", "--delete", "--sparse", "--stats", "--no-h"]
    src = f"{folder}/storage/data/"
    prev = str(snapshot / "folder" / "storage" / "data")
    x = work / "side-x"
    run([*base, f"--link-dest={prev}", src, f"{x}/"])  # like a hot pass: hard links
    times = {"with": [], "without": [], "plain": [], "tiny": []}
    plain = ["-aH" if a == "-aHAX" else a for a in base]
    for _ in range(3):
        for key, argv in (("with", [*base, f"--link-dest={prev}"]), ("without", base),
                          ("plain", plain)):  # fmt: skip
            run(["sync"])
            t = time.monotonic()
            run([*argv, src, f"{x}/"])
            times[key].append(time.monotonic() - t)
        t = time.monotonic()
        run([*base, f"{folder}/.env", f"{work}/side-env"])
        times["tiny"].append(time.monotonic() - t)
    files = sum(1 for _ in (folder / "storage" / "data").rglob("*"))
    b.extra["side"] = {k: median(v) for k, v in times.items()} | {"files": files}
    rm_tree(x)


def changed_files(a: Path, b: Path) -> list[str]:
    """Files of b that are not the same inode as a's file at the same path."""
    out = []
    for dirpath, _, files in os.walk(b):
        for f in files:
            pb = os.path.join(dirpath, f)
            rel = os.path.relpath(pb, b)
            try:
                same = os.lstat(pb).st_ino == os.lstat(a / rel).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                out.append(f"{rel} ({os.lstat(pb).st_size} bytes)")
    return sorted(out)


# ----------------------------------------------------------------- restore (issue 15)


def restore_compare(b: Bench) -> None:
    """The last repetition's live snapshot's database (without live: its H2 snapshot's)
    restored physically, against the dump other tools take restored logically; writer and
    indexer stopped meanwhile (the database idle), each repeated, the order alternating."""
    reps = b.a.restore_reps
    if reps < 1:
        return
    s = b.s
    if "live" in b.kept or "hot-cold" in b.kept:
        source = "live-2" if "live" in b.kept else "H2"
        dest = b.kept["live" if source == "live-2" else "hot-cold"]
        name = [r for r in b.results if r["method"] == source][-1]["snapshot"]
    else:  # no repetitions ran (--only): a live snapshot of its own
        source, dest = "live (taken for the restore)", s.work / "restore-live"
        log("restore: no repetitions ran: taking a live snapshot")
        run(s.klink("live", "--folder", s.folder, "--dest", dest), env=s.klink_env)
        name = os.path.basename(os.readlink(dest / "latest"))
    datadir, image = restore.snapshot_database(dest / "snapshots" / name)
    envf = restore.env_file(s)
    log("restore: stopping the writer and the indexer; dumping the database")
    s.compose("stop", "kbox", "engine")
    try:
        dump_file = s.work / "restore-dump.sql"
        dumped = restore.dump(s, dump_file)
        log(f"restore: dump {dumped['bytes'] / MIB:.0f} MiB in {dumped['seconds']:.1f}s; "
            f"snapshot {name}'s datadir {du_bytes(datadir)[0] / MIB:.0f} MiB")  # fmt: skip
        out = {"source": source, "snapshot": name, "image": image, "dump": dumped,
               "datadir_bytes": du_bytes(datadir)[0], "physical": [], "logical": []}
        b.extra["restore"] = out
        pair = [("physical", lambda: restore.physical(datadir, image, envf, s.work / "rs-p")),
                ("logical", lambda: restore.logical(dump_file, image, envf, s.work / "rs-l"))]
        for rep in range(1, reps + 1):
            for kind, fn in pair if rep % 2 else pair[::-1]:
                run(["sync"])
                time.sleep(2)
                r = fn()
                out[kind].append(r)
                log(f"restore rep {rep}: {kind} {r['seconds']:.1f}s ({r['rows']} rows)")
                b.save_raw()
        rm_tree(dump_file)
    finally:
        s.compose("start", "kbox", "engine")


# ----------------------------------------------------------------- offsite push (issue 14)


def offsite(b: Bench) -> None:
    """`klink-sync offsite push` against plain `restic backup` of the deployment's folder,
    the writer stopped (the data moves only by the 1% change and the stack's restarts)."""
    if not b.a.offsite:
        return
    s = b.s
    log("offsite: stopping the writer (kbox)")
    s.compose("stop", "kbox")
    time.sleep(b.a.settle + 2)  # the indexer catches up with the last rows
    try:
        for rep in range(1, b.a.reps + 1):
            d = s.work / f"offsite-r{rep}"
            d.mkdir()
            offsite_repetition(b, rep, d)
            rm_tree(d)
            run(["sync"])
            time.sleep(REST_AFTER_CLEANUP)
    finally:
        s.compose("start", "kbox")


def offsite_repetition(b: Bench, rep: int, d: Path) -> None:
    """A hot-cold snapshot, pushed into an empty repository; the deployment's folder backed
    up by plain restic into an empty one; the snapshot backed up by restic by hand with
    klink-sync's command line into a third. Then --offsite-rounds incremental rounds, each:
    the 1% change, a new snapshot (hard links to the one before), and the three again, as
    a daily chain of pushes goes. The order of the three turns from one round to the next."""
    s = b.s
    kd, krepo, prepo, srepo = d / "klink", d / "repo-klink", d / "repo-plain", d / "repo-same"
    conf = m.offsite_repositories(s, prepo, krepo, srepo)
    parents: list[str] = []  # restic-same's own chain
    for turn in range(1 + b.a.offsite_rounds):
        n = 1 if turn == 0 else 2
        if n == 2:
            changed = s.change_documents()
            log(f"offsite rep {rep}, round {turn}: rewrote {b.a.change_percent:g}% of the "
                f"documents ({changed / MIB:.0f} MiB)")  # fmt: skip
            b.extra.setdefault("offsite", {}).setdefault("changed_bytes", []).append(changed)
        run(["sync"])
        run(s.klink("hot-cold", "--folder", s.folder, "--dest", kd), env=s.klink_env)
        three = [(f"offsite-{n}", m.offsite_push, s, conf, kd, krepo),
                 (f"restic-plain-{n}", m.restic_backup, s, prepo),
                 (f"restic-same-{n}", m.restic_same, s, srepo, kd, parents)]  # fmt: skip
        turned = (rep + turn) % len(three)
        for method, body, *args in three[turned:] + three[:turned]:
            b.record(method, rep, body, *args)
    costs = m.fixed_costs(s, prepo)
    for key, value in costs.items():
        b.extra.setdefault("offsite", {}).setdefault(key, []).append(value)
    b.save_raw()


# ----------------------------------------------------------------- scaling


def scaling(b: Bench) -> None:
    """Unchanged incremental runs over N small files, a stand-in compose command."""
    rows = []
    for n in b.a.scaling:
        base = b.s.work / f"scale-{n}"
        rows.append(scaling_size(b, n, base))
        b.extra["scaling"] = rows
        b.save_raw()
        rm_tree(base)


def scaling_folder(base: Path, n: int) -> tuple[Path, float]:
    """A deployment of n files of a few bytes (1000 per folder); seconds it took to make."""
    folder = base / f"scale{n}"
    (folder / "storage" / "database").mkdir(parents=True)
    (folder / "storage" / "index").mkdir(parents=True)
    shutil.copy(SAMPLE / "deploy" / "docker-compose.yml", folder)
    shutil.copy(SAMPLE / "deploy" / ".env", folder)
    (folder / "storage" / "database" / "ibdata1").write_bytes(os.urandom(1 << 16))
    (folder / "storage" / "index" / "index").write_bytes(os.urandom(1 << 12))
    log(f"scaling: creating {n} small files")
    began = time.monotonic()
    docs = folder / "storage" / "data" / "documents"
    per_dir = 1000
    for d in range((n + per_dir - 1) // per_dir):
        sub = docs / f"{d:04d}"
        sub.mkdir(parents=True)
        subs = str(sub)
        for i in range(d * per_dir, min(n, (d + 1) * per_dir)):
            fd = os.open(f"{subs}/{i:07d}.txt", os.O_WRONLY | os.O_CREAT, 0o640)
            os.write(fd, b"%d\n" % i)
            os.close(fd)
    return folder, time.monotonic() - began


def fake_compose(base: Path) -> Path:
    state = base / "state"
    state.write_text("database\nengine\nkbox\n")
    fake = base / "compose"
    fake.write_text(FAKE_COMPOSE.format(state=shlex.quote(str(state))))
    fake.chmod(0o755)
    return fake


def scaling_size(b: Bench, n: int, base: Path) -> dict:
    folder, made = scaling_folder(base, n)
    dest = base / "dest"
    env = dict(b.s.klink_env, KLINK_SYNC_COMPOSE=str(fake_compose(base)))
    argv = b.s.klink("hot-cold", "--folder", folder, "--dest", dest, "--json")
    run(["sync"])
    log(f"scaling {n}: first run (empty destination)")
    t1, rss1, p1 = timed(argv, env=env)
    first = json.loads(p1.stdout)
    runs = []
    for i in range(b.a.scaling_reps):
        run(["sync"])
        log(f"scaling {n}: unchanged incremental run {i + 1}")
        t, rss, p = timed(argv, env=env)
        rep = json.loads(p.stdout)
        runs.append({"wall": t, "rss_kib": rss, "downtime": rep.get("downtime_seconds"),
                     "phases": rep.get("phases", {}),
                     "checksums_s": (rep.get("checksums") or {}).get("seconds"),
                     "bytes_moved": rep.get("bytes_moved", {})})  # fmt: skip
        log(f"scaling {n}: {t:.1f}s, peak RSS {rss / 1024:.0f} MiB")
    return {"files": n, "create_s": made, "first_wall": t1, "first_rss_kib": rss1,
            "first_downtime": first.get("downtime_seconds"), "runs": runs}  # fmt: skip
