"""The methods measured. Each takes the deployment (Stack), runs its commands once and
returns what it learnt (peak RSS, bytes written, klink-sync's own report); Bench.measure
adds the downtime seen from outside.

  F (floor), P (the guide's plain procedure), klink-sync cold / hot-cold (cold, H1, H2, H3
  and the runs with one downtime cut off) / hot-cold --pause / live, the bare script of klink-sync's commands
  (bare-H1, bare-H2), rsnapshot and restic; the offsite push (`klink-sync offsite push`)
  and plain `restic backup` of the deployment's folder, its baseline."""

from __future__ import annotations

import json
import os
import re
import shlex
import uuid
from pathlib import Path

from .common import SERVICES, BenchError, du_bytes, run
from .measure import timed
from .stack import Stack


def floor(s: Stack) -> dict:
    s1, r1, _ = timed([s.wrapper, "stop"], cwd=s.folder)
    s2, r2, _ = timed([s.wrapper, "up", "-d"], cwd=s.folder)
    return {"rss_kib": max(r1, r2), "written": 0}


def plain(s: Stack, dest: Path) -> dict:
    dest.mkdir(parents=True)
    before = du_bytes(dest)[0]
    _, r1, _ = timed([s.wrapper, "stop"], cwd=s.folder)
    _, r2, _ = timed(["cp", "-a", s.folder, dest / "folder"])
    _, r3, _ = timed([s.wrapper, "up", "-d"], cwd=s.folder)
    return {"rss_kib": max(r1, r2, r3), "written": du_bytes(dest)[0] - before}


# ----------------------------------------------------------------- klink-sync


STOPLESS = ("live", "hot-cold --pause")  # modes that never stop the stack
FREEZING = ("hot-cold-pause", "live")  # their names in the report: they freeze, not stop


def klink_run(s: Stack, mode: str, dest: Path, disable: str = "") -> dict:
    """One klink-sync backup run; `mode`: cold, hot-cold, hot-cold --pause or live."""
    before = du_bytes(dest)[0] if dest.exists() else 0
    env = {**s.klink_env, "KLINK_SYNC_DISABLE": disable}
    _, rss, p = timed(s.klink(*mode.split(), "--folder", s.folder, "--dest", dest, "--json"),
                      env=env)  # fmt: skip
    report = json.loads(p.stdout)
    return {
        "rss_kib": rss,
        "written": du_bytes(dest)[0] - before,
        **from_klink_report(report),
        "wrote_back": "written back to disk" in p.stderr,  # its sync before the stop
        **({"stopless": True} if mode in STOPLESS else {}),
    }


def from_klink_report(report: dict) -> dict:
    """What a row keeps of klink-sync's --json report."""
    cold_units = {}
    for ps in report.get("passes", []):
        if ps.get("phase") == "cold":
            cold_units[ps["unit"]] = cold_units.get(ps["unit"], 0) + ps["seconds"]
    return {
        "self_downtime": report.get("downtime_seconds"),
        "self_freeze": report.get("freeze_seconds") if report.get("mode") in FREEZING else None,
        "commit_block": commit_block(report),
        "mode": report.get("mode"),
        "phases": report.get("phases", {}),
        "checksums_s": (report.get("checksums") or {}).get("seconds"),
        "bytes_moved": report.get("bytes_moved", {}),
        "cold_units": cold_units,
        "hot_rounds": max([ps.get("round", 1) for ps in report.get("passes", [])
                           if ps.get("phase") == "hot"] or [0]),  # fmt: skip
        "snapshot": report.get("snapshot"),
        "warnings": report.get("warnings", []),
    }


def commit_block(report: dict) -> float | None:
    """live: how long commits waited for mariadb-backup (BACKUP STAGE BLOCK_COMMIT), from
    its log, as klink-sync reports it; None in other modes (or when not in the report)."""
    if report.get("mode") != "live":
        return None
    for where in (report, report.get("database") or {}, report.get("live") or {}):
        if isinstance(where, dict) and where.get("commit_block_seconds") is not None:
            return where["commit_block_seconds"]
    return None


# ----------------------------------------------------------------- the bare script


def dry_run_commands(s: Stack, kdest: Path) -> list[tuple[str, list[str]]]:
    """(phase, argv) of every command `klink-sync hot-cold --dry-run` prints for kdest."""
    p = run(s.klink("hot-cold", "--folder", s.folder, "--dest", kdest, "--dry-run"),
            env=s.klink_env)  # fmt: skip
    return parse_dry_run(p.stdout)


def parse_dry_run(text: str) -> list[tuple[str, list[str]]]:
    cmds = []
    on = False
    for line in text.splitlines():
        if line.startswith("commands"):
            on = True
            continue
        m = re.match(r"^\s+\[([a-z]+)[^\]]*\]\s+(.*)$", line) if on else None
        if m and not m.group(2).startswith("("):  # "(...)": a rule the run decides, no command
            cmds.append((m.group(1), shlex.split(m.group(2))))
    if not any(ph == "stop" for ph, _ in cmds):
        raise BenchError("could not read the commands of klink-sync --dry-run")
    return cmds


def bare_script(s: Stack, kdest: Path, bdest: Path, n: int) -> Path:
    """The exact commands of `klink-sync hot-cold --dry-run` for kdest, pointed at bdest."""
    cmds = dry_run_commands(s, kdest)
    kd, staging = str(kdest), str(bdest / ".staging")
    prev = str(bdest / f"snap-{n - 1}")

    def fix(arg: str) -> str:
        arg = arg.replace(kd + "/.staging", staging)
        return re.sub(re.escape(kd) + r"/(?:snapshots/[^/]+|latest)", prev, arg)

    # klink-sync repeats its hot pass when a walk finds much changed during a round:
    # the script runs as many rounds as klink-sync's run just before it ($1), and
    # flushes to disk before the stop ($2 = 1) if that run did.
    out = shlex.quote(str(s.work / f"bare-{n}.out"))
    lines = ["#!/bin/bash", "# the rsync and compose commands of klink-sync, bare",
             "set -u", f"cd {shlex.quote(str(s.folder))}", "fail=0",
             f"rm -rf {shlex.quote(staging)}"]  # fmt: skip
    lines += command_lines([(phase, [fix(x) for x in argv]) for phase, argv in cmds],
                           out, s.wrapper)  # fmt: skip
    lines.append(f"[ $fail = 0 ] && mv {shlex.quote(staging)} {shlex.quote(str(bdest / f'snap-{n}'))}")
    script = s.work / f"bare-{n}.sh"
    script.write_text("\n".join(lines) + "\n")
    return script


def command_lines(cmds: list[tuple[str, list[str]]], out: str, wrapper: Path) -> list[str]:
    """The script's lines for the commands; the hot ones in a loop of rounds."""
    lines = []
    in_hot = False
    for phase, argv in cmds:
        if phase == "hot" and not in_hot:
            lines.append('for round in $(seq "${1:-1}"); do')
            in_hot = True
        elif phase != "hot" and in_hot:
            lines.append('done; [ "${2:-0}" = 1 ] && sync')
            in_hot = False
        if argv[0] == "rsync":
            lines += rsync_lines(phase, argv, out)
        else:
            lines += compose_lines(argv, wrapper)
    return lines


def rsync_lines(phase: str, argv: list[str], out: str) -> list[str]:
    into = argv[-1]
    lines = [f"mkdir -p {shlex.quote(os.path.dirname(into.rstrip('/')))}"]
    if phase == "hot":  # later rounds: no --link-dest (staging is full), as klink-sync
        later = [x for x in argv if not x.startswith("--link-dest=")]
        lines.append(f"if [ $round = 1 ]; then {shlex.join(argv)} >{out}; "
                     f"else {shlex.join(later)} >{out}; fi; c=$?; "
                     "[ $c = 0 ] || [ $c = 23 ] || [ $c = 24 ] || exit $c")  # fmt: skip
    else:  # klink-sync's cold pass copies without -A -X: no xattr/ACL here
        argv = ["-aH" if x == "-aHAX" else x for x in argv]
        lines.append(f"{shlex.join(argv)} >/dev/null || fail=1")
    return lines


def compose_lines(argv: list[str], wrapper: Path) -> list[str]:
    argv = [x for x in argv if x != "<services running before>"]
    if ("start" in argv or "up" in argv) and not set(argv) & set(SERVICES):
        argv += list(SERVICES)
    lines = [shlex.join(argv) + " >/dev/null 2>&1 || fail=1"]
    if "start" in argv or "up" in argv:
        # wait as klink-sync does: every service running and healthy
        w = shlex.quote(str(wrapper))
        lines.append(
            "for i in $(seq 600); do ids=$(" + w + " ps -q); ok=1; "
            "for id in $ids; do s=$(docker inspect -f '{{.State.Running}} "
            "{{if .State.Health}}{{.State.Health.Status}}{{end}}' $id); "
            "case \"$s\" in 'true '|'true healthy') ;; *) ok=0 ;; esac; done; "
            f"[ $ok = 1 ] && [ $(echo $ids | wc -w) -ge {len(SERVICES)} ] && break; "
            "sleep 0.1; done")  # fmt: skip
    return lines


def bare(s: Stack, script: Path, bdest: Path, like: dict) -> dict:
    """The script, as many hot rounds as the klink-sync run `like`, and its sync."""
    bdest.mkdir(parents=True, exist_ok=True)
    before = du_bytes(bdest)[0]
    rounds, wrote_back = like["hot_rounds"], like["wrote_back"]
    _, rss, _ = timed(["bash", script, str(rounds), "1" if wrote_back else "0"])
    return {"rss_kib": rss, "written": du_bytes(bdest)[0] - before, "hot_rounds": rounds,
            "wrote_back": wrote_back}  # fmt: skip


# ----------------------------------------------------------------- peers


def rsnapshot_conf(s: Stack, root: Path) -> Path:
    conf = s.work / f"rsnapshot-{root.name}.conf"
    pre, post = s.work / "rsnapshot-pre.sh", s.work / "rsnapshot-post.sh"
    f = shlex.quote(str(s.folder))
    w = shlex.quote(str(s.wrapper))
    pre.write_text(f"#!/bin/sh\ncd {f} && exec {w} stop\n")
    post.write_text(f"#!/bin/sh\ncd {f} && exec {w} up -d\n")
    pre.chmod(0o755)
    post.chmod(0o755)
    fields = [
        ("config_version", "1.2"), ("snapshot_root", f"{root}/"), ("no_create_root", "0"),
        ("cmd_cp", "/bin/cp"), ("cmd_rm", "/bin/rm"), ("cmd_rsync", "/usr/bin/rsync"),
        ("cmd_preexec", str(pre)), ("cmd_postexec", str(post)),
        ("retain", "alpha\t10"), ("verbose", "1"), ("loglevel", "3"),
        ("lockfile", str(s.work / f"rsnapshot-{root.name}.pid")),
        ("backup", f"{s.folder}/\tlocalhost/"),
    ]  # fmt: skip
    conf.write_text("".join(f"{k}\t{v}\n" for k, v in fields))
    return conf


def rsnapshot(s: Stack, root: Path) -> dict:
    conf = rsnapshot_conf(s, root)
    before = du_bytes(root)[0] if root.exists() else 0
    _, rss, _ = timed(["rsnapshot", "-c", conf, "alpha"])
    return {"rss_kib": rss, "written": du_bytes(root)[0] - before}


def restic_env(s: Stack, repo: Path) -> dict:
    """Plain restic's environment: the repository, the bench's password file (made 0600
    here), a cache in the work folder."""
    pw = s.work / "restic-password"
    if not pw.exists():
        pw.write_text(uuid.uuid4().hex + "\n")
        pw.chmod(0o600)
    return dict(os.environ, RESTIC_REPOSITORY=str(repo), RESTIC_PASSWORD_FILE=str(pw),
                RESTIC_CACHE_DIR=str(s.work / "restic-cache"))  # fmt: skip


def restic(s: Stack, repo: Path, first: bool) -> dict:
    env = restic_env(s, repo)
    rss0 = 0
    if first:
        _, rss0, _ = timed(["restic", "init", "-q"], env=env)
    before = du_bytes(repo)[0]
    _, r1, _ = timed([s.wrapper, "stop"], cwd=s.folder)
    try:
        _, r2, _ = timed(["restic", "backup", "-q", s.folder], env=env)
    finally:
        _, r3, _ = timed([s.wrapper, "up", "-d"], cwd=s.folder)
    return {"rss_kib": max(rss0, r1, r2, r3), "written": du_bytes(repo)[0] - before}


# ----------------------------------------------------------------- offsite push (issue 14)

SUMMARY = ("data_added", "files_new", "files_changed", "files_unmodified")


def offsite_repositories(s: Stack, prepo: Path, *copies: Path) -> Path:
    """An empty restic repository and copies of it (one key, so one key-derivation cost
    for all), and a klink-sync config that pushes into the first copy."""
    run(["restic", "init", "-q"], env=restic_env(s, prepo))
    for copy in copies:
        run(["cp", "-a", prepo, copy])
    conf = prepo.parent / "klink-sync.yml"
    conf.write_text("offsite:\n"
                    f"  repository: {json.dumps(str(copies[0]))}\n"
                    f"  password_file: {json.dumps(str(s.work / 'restic-password'))}\n"
                    "  after_backup: false\n")  # fmt: skip
    return conf


def offsite_env(s: Stack) -> dict:
    """klink-sync's environment for offsite commands: its state (restic's cache) in the
    work folder, beside plain restic's."""
    return dict(s.klink_env, KLINK_SYNC_STATE_DIR=str(s.work / "offsite-state"))


def offsite_push(s: Stack, conf: Path, kd: Path, repo: Path) -> dict:
    """`klink-sync offsite push` of the destination's latest snapshot into repo."""
    before = du_bytes(repo)[0]
    secs, rss, p = timed(s.klink("offsite", "push", "--dest", kd, "--config", conf, "--json"),
                         env=offsite_env(s))  # fmt: skip
    pushed = json.loads(p.stdout)
    found = {k: pushed.get(k) for k in SUMMARY[1:]} | {"data_added": pushed.get("added_bytes")}
    return {"cmd_s": secs, "rss_kib": rss, "written": du_bytes(repo)[0] - before,
            "summary": found, "snapshot": pushed.get("snapshot"),
            "restic_s": pushed.get("seconds")}  # fmt: skip


def restic_backup(s: Stack, repo: Path) -> dict:
    """Plain `restic backup` of the deployment's folder into repo: a later run takes
    restic's own parent (the last snapshot of this host and path)."""
    return _timed_backup(s, repo, ["restic", "backup", "--json", s.folder])


def restic_same(s: Stack, repo: Path, kd: Path, parents: list[str]) -> dict:
    """restic by hand with klink-sync's own command line (`--ignore-ctime`, the previous
    run as `--parent`, `.` inside the destination's latest snapshot folder) into repo: what
    the push costs without klink-sync around it. Its snapshot id is the next one's parent."""
    folder = kd / "snapshots" / os.path.basename(os.readlink(kd / "latest"))
    argv = ["restic", "backup", "--json", "--host", "bench-same", "--ignore-ctime",
            *(["--parent", parents[-1]] if parents else []), "."]  # fmt: skip
    row = _timed_backup(s, repo, argv, folder)
    parents.append(row.pop("snapshot_id"))
    return row


def _timed_backup(s: Stack, repo: Path, argv: list, folder: Path | None = None) -> dict:
    """One `restic backup --json` into repo, timed; run in `folder` when given (told so by
    PWD, as klink-sync tells it). Exit 3: a file vanished while restic read the live
    folder; the snapshot is made."""
    before = du_bytes(repo)[0]
    env = restic_env(s, repo) | ({"PWD": str(folder)} if folder else {})
    secs, rss, p = timed(argv, cwd=folder, env=env, ok=(0, 3))
    found = restic_summary(p.stdout)
    return {"cmd_s": secs, "rss_kib": rss, "written": du_bytes(repo)[0] - before,
            "summary": {k: found.get(k) for k in SUMMARY}, "exit": p.returncode,
            "snapshot_id": found.get("snapshot_id")}  # fmt: skip


def restic_summary(stdout: str) -> dict:
    """The summary line of `restic backup --json`."""
    for line in reversed(stdout.splitlines()):
        if '"summary"' in line:
            try:
                return json.loads(line)
            except ValueError:
                continue
    return {}


def fixed_costs(s: Stack, repo: Path) -> dict:
    """One restic command's fixed cost on repo (`restic snapshots`: the repository opened,
    the key derived) and klink-sync's start (`klink-sync version`: the interpreter, the
    command line's modules; a --help would add rendering the help), in seconds."""
    opened, _, _ = timed(["restic", "snapshots", "--json"], env=restic_env(s, repo))
    started, _, _ = timed(s.klink("version"), env=offsite_env(s))
    return {"open_s": opened, "start_s": started}
