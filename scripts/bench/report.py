"""The report: docs/benchmarks.md (every number of one run, from Bench's rows or a raw.json)
and docs/downtime.png beside it. render() is pure: made-up rows render without Docker."""

from __future__ import annotations

import os
import platform
import re
import statistics
from pathlib import Path

from .common import CUTS, GIB, REST_AFTER_CLEANUP, ROOT, log, median, read_env, run

ENTRY = "python -m scripts.bench"  # the command that writes the report, as it names it

METHODS = [
    ("F", "floor: `stop`, `up -d`, nothing copied"),
    ("P", "guide's plain procedure: `stop`, `cp -a` folder, `up -d`"),
    ("cold", "`klink-sync cold`, empty destination"),
    ("bare-H1", "bare script of klink-sync's commands, empty destination"),
    ("H1", "`klink-sync hot-cold`, empty destination"),
    ("bare-H2", "bare script, incremental after the 1% change"),
    ("H2", "`klink-sync hot-cold`, incremental after the 1% change"),
    ("pause-1", "`klink-sync hot-cold --pause`, empty destination"),
    ("pause-2", "`klink-sync hot-cold --pause`, incremental after the 1% change"),
    ("live-1", "`klink-sync live`, empty destination"),
    ("live-2", "`klink-sync live`, incremental after the 1% change"),
    ("rsnapshot-1", "rsnapshot, `cmd_preexec` stop / `cmd_postexec` `up -d`, first run"),
    ("rsnapshot-2", "rsnapshot, incremental after the 1% change"),
    ("restic-1", "restic, stack stopped around `restic backup`, new repository"),
    ("restic-2", "restic, incremental after the 1% change"),
]
# the offsite push (issue 14): its row, n (klink-sync's method offsite-n, its baseline's
# restic-plain-n); the acceptance limit of klink-sync's time over the baseline's
OFFSITE_ROWS = (("offsite first push", 1), ("offsite incremental push", 2))
OFFSITE_LIMIT = 1.15
OFFSITE_METHODS = ("offsite-", "restic-plain-", "restic-same-")  # none in the downtime table
# issue 15's limits: pause's freeze over F's downtime; live's wall over hot-cold's (both
# incremental); a physical restore's time over a logical one's
PAUSE_LIMIT, LIVE_WALL_LIMIT, RESTORE_LIMIT = 0.3, 2.0, 0.5
STOPLESS = ("pause-1", "pause-2", "live-1", "live-2")


def stat3(xs, fmt="{:.2f}"):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    m = statistics.median(xs)
    if len(xs) == 1:
        return fmt.format(m)
    return f"{fmt.format(m)} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"


def human(n):
    if n is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def ratio(x, y):
    return x / y if x is not None and y else None


def fr(x, digits=2):
    return "–" if x is None else f"{x:.{digits}f}"


def held(ok):
    return "–" if ok is None else ("**yes**" if ok else "**no**")


def machine_info(work: Path) -> dict:
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) * 1024
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    df = run(["df", "-hT", work]).stdout.splitlines()[-1].split()
    pretty = ""
    osr = Path("/etc/os-release")
    if osr.exists():
        pretty = read_env(osr).get("PRETTY_NAME", "")

    def version(argv):
        p = run(argv, check=False)
        lines = (p.stdout or p.stderr or "?").strip().splitlines()
        return re.sub(r"\s+", " ", lines[0]) if lines else "?"

    return {
        "nproc": os.cpu_count(), "cpu": cpu, "mem": mem, "kernel": platform.release(),
        "os": pretty, "disk": f"{df[0]} ({df[1]}, {df[2]}, {df[4]} free at start)",
        "docker": version(["docker", "version", "--format", "{{.Server.Version}}"]),
        "compose": version(["docker", "compose", "version", "--short"]),
        "rsync": version(["rsync", "--version"]), "restic": version(["restic", "version"]),
        "rsnapshot": version(["rsnapshot", "-V"]),
        "git": version(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]),
    }  # fmt: skip


class View:
    """One run's rows as the report reads them: columns, medians, ratios."""

    def __init__(self, b, machine: dict, timing: dict, argv: list[str]):
        self.b, self.a, self.res = b, b.a, b.results
        self.machine, self.timing, self.argv = machine, timing, argv
        self.present = [m for m, _ in METHODS if self.col(m, "downtime")]
        self.F, self.P, self.H1, self.H2 = (self.med(m) for m in ("F", "P", "H1", "H2"))
        self.peers = [m for m in ("rsnapshot-1", "rsnapshot-2", "restic-1", "restic-2")
                      if m in self.present]  # fmt: skip
        self.ov1 = self.per_rep_ratio("H1", "bare-H1")
        self.ov2 = self.per_rep_ratio("H2", "bare-H2")
        self.off = {n: self.per_rep_ratio(f"offsite-{n}", f"restic-plain-{n}", "cmd_s")
                    for _, n in OFFSITE_ROWS}  # fmt: skip
        self.sec = b.extra.get("second")
        self.sc = b.extra.get("scaling")
        self.restore = b.extra.get("restore")

    def col(self, method, key):
        return [r.get(key) for r in self.res if r["method"] == method]

    def med(self, method, key="downtime"):
        return median(self.col(method, key))

    def restore_ratio(self):
        """Median physical restore time over median logical restore time."""
        rs = self.restore or {}
        return ratio(median([r["seconds"] for r in rs.get("physical") or []]),
                     median([r["seconds"] for r in rs.get("logical") or []]))  # fmt: skip

    def freeze(self, method):
        """A run's freeze: seen from outside (docker events), else as klink-sync reports it."""
        return [r.get("freeze") if r.get("freeze") is not None else r.get("self_freeze")
                for r in self.res if r["method"] == method]  # fmt: skip

    def per_rep_ratio(self, x, y, key="wall"):
        """x's value over y's, repetition by repetition: the i-th run of x in a repetition
        over the i-th of y (the offsite rounds make several pairs in one repetition)."""
        out = []
        for rep in range(1, self.a.reps + 1):
            vx = [r[key] for r in self.res if r["method"] == x and r["rep"] == rep]
            vy = [r[key] for r in self.res if r["method"] == y and r["rep"] == rep]
            out += [a / b for a, b in zip(vx, vy, strict=False) if b]
        return out


def write_report(b, out: Path, machine: dict, timing: dict, argv: list[str]) -> None:
    """docs/benchmarks.md and downtime.png beside it."""
    view = View(b, machine, timing, argv)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(view))
    log(f"wrote {out}")
    chart(b, out.parent / "downtime.png", view.present)


def render(view: View) -> str:
    """The report's text (docs/benchmarks.md), section by section."""
    L = []
    for section in (_title, _machine, _sizes, _how_measured, _results, _users, _ratios,
                    _overhead, _cuts, _where_time_goes, _second_snapshot, _check, _restore,
                    _offsite, _scaling, _reading, _acceptance, _checks, _tail):  # fmt: skip
        section(view, L.append)
    return "\n".join(L)


def _title(view: View, w) -> None:
    timing = view.timing
    w("# Benchmarks: downtime of klink-sync, the guide's procedure and peers\n")
    w(f"Produced by `make bench` (`{ENTRY} {' '.join(view.argv)}`) on "
      f"{timing['date']}; every number below comes from that one run "
      "(raw data: `raw.json` in the work folder, kept with `--keep`; `--report-from` "
      "writes this file again from it) "
      f"(benchmark runtime {timing['total'] / 60:.0f} min). Regenerate with `make bench`.\n")  # fmt: skip


def _machine(view: View, w) -> None:
    b, machine = view.b, view.machine
    w("## Machine\n")
    w(f"- {machine['nproc']} CPUs ({machine['cpu']}), {machine['mem'] / GIB:.1f} GiB memory, "
      f"kernel {machine['kernel']}, {machine['os']}")  # fmt: skip
    w(f"- disk: {machine['disk']}; the work folder, the stack's data and every destination "
      "on that one disk; page cache warm (the data fits in memory, caches were not dropped)")
    w(f"- Docker {machine['docker']}, Compose {machine['compose']}, {machine['rsync']}, "
      f"{machine['restic']}, {machine['rsnapshot']}")  # fmt: skip
    w(f"- klink-sync: working tree at `{machine['git']}` (code copied at the start of the run and "
      f"byte-compiled, as an install is; digest {b.code_digest}: later edits by others did "
      "not reach this run)")  # fmt: skip
    w("- **The machine is shared and noisy** (a virtual machine; other work may run on its "
      "host and on it): read min/max, not only medians.\n")


def _sizes(view: View, w) -> None:
    a, b, res = view.a, view.b, view.res
    s0, s1 = b.size_start, b.size_end
    w("## Sizes\n")
    w(f"- documents pre-filled: {a.files} files, {human(a.docs_gib * GIB)} of random data "
      "(log-uniform 1 KiB–1 MiB, 2% 2–8 MiB, scaled to the total), each with its row "
      "(path, size, sha256) in `documents`")  # fmt: skip
    w(f"- database: a `filler` table (LONGBLOB rows of `RANDOM_BYTES`) up to {a.db_mib} MiB "
      "on disk, plus the writer's rows")
    w(f"- at the start of the measurements: {human(s0['total'])} in {s0['files']} files "
      f"(documents {human(s0['documents'])}, database {human(s0['database'])}, "
      f"index {human(s0['index'])}), {s0['rows']} rows")  # fmt: skip
    if s1:
        w(f"- at the end: {human(s1['total'])} in {s1['files']} files, {s1['rows']} rows "
          f"(the writer kept adding ~{a.write_rate:g} documents/s, rewriting one a second)")  # fmt: skip
    ch = b.extra.get("changed_bytes", [])
    if ch:
        w(f"- the change before each incremental run: {a.change_percent:g}% of the pre-filled "
          f"documents ({round(a.files * a.change_percent / 100)} files, ~{human(median(ch))}) "
          "rewritten in place with new random content, same size, rows updated")
    order = []
    for r in res:
        if r["method"] not in order and not r["method"].startswith(OFFSITE_METHODS):
            order.append(r["method"])
    w(f"- repetitions: {a.reps}; every method once per repetition, in this order: "
      + ", ".join(order) + " (the 1% change between the first runs and the incremental ones); "
      f"before each: `sync`, the stack up, then {a.settle:g} s of rest; every destination of a "
      "repetition is removed only at its end, with the documents the writer added during it "
      "(rows and files, the writer stopped for that: every repetition starts from the same "
      "deployment), then `sync` and "
      f"{REST_AFTER_CLEANUP} s of rest: a run right after a large delete writes markedly "
      "slower here, and no measured copy follows one\n")


def _how_measured(view: View, w) -> None:
    b = view.b
    w("## How it is measured\n")
    w("- **downtime**: every compose command (klink-sync's too, through "
      "`KLINK_SYNC_COMPOSE`; rsnapshot's pre/post scripts too) goes through a wrapper that "
      "writes the time a `stop`, `start` or `up` command begins. A poller thread asks the "
      "Docker API for the project's containers and, once all three run, connects to MariaDB "
      "in the database container and runs `SELECT 1`. Downtime = from the `stop` command's "
      "start to the end of the first probe, begun after the last `start`/`up` command began, "
      "that saw every service running and the database answering. "
      f"Probe period: median {1000 * (b.probe_period or 0):.0f} ms "
      f"(resolution of every downtime).")  # fmt: skip
    w("- **self**: the downtime klink-sync reports (`--json` `downtime_seconds`: from its stop "
      "to its own check that every service runs and is healthy; no database query).")
    w("- **wall**: the whole run, from its first command until it ended and the stack was up "
      "(klink-sync: preflight, hot pass, checksums and all).")
    w("- **written**: new disk usage of the destination (`du -s -B1` before and after; "
      "hard links counted once); restic: its repository.")
    w("- **peak RSS**: `/usr/bin/time -f %M` (GNU time: the largest resident set of any "
      "one process of the tool's tree, e.g. docker compose, rsync, or klink-sync's Python); "
      "for P, F and restic the largest of their commands.")
    w("- **freeze** (`hot-cold --pause`, `live`: they stop nothing, their downtime is 0 when "
      "no `stop` was seen): from the project's first `pause` container event to its last "
      "`unpause` (the Docker API's event stream, read through the run); **self**: klink-sync's "
      "`freeze_seconds`. **commit block** (live): how long commits waited for mariadb-backup "
      "(BACKUP STAGE BLOCK_COMMIT), from its log, as klink-sync reports it.")
    interval = getattr(view.a, "http_interval", None)
    if interval:
        w("- **the kbox's users**: `scripts/sample-stack/probe.py` sends requests to the kbox "
          f"back to back ({interval:g} s apart; `GET /health`, every tenth a small "
          "`POST /documents`; each on a new connection, 30 s timeout) from before the run "
          "until the kbox answered again after it: **failed** (no container, refused, reset, "
          "timed out, an error status), **failing s** (the failed stretches end to end), "
          "**slow** (answered after more than 1 s), **slowest** (the longest wait for an "
          "answer). F's failures are the baseline a stop causes.")
    w("")


def _results(view: View, w) -> None:
    """The results table and the downtime split."""
    present, col = view.present, view.col
    w("## Results (median, min–max over the repetitions)\n")
    w("| method | what | downtime s | self-reported s | wall s | written | peak RSS MiB |")
    w("|---|---|---|---|---|---|---|")
    desc = dict(METHODS)
    for m in present:
        wr = [x for x in col(m, "written") if x is not None]
        rss = [x / 1024 for x in col(m, "rss_kib") if x]
        w(f"| **{m}** | {desc[m]} | {stat3(col(m, 'downtime'))} | "
          f"{stat3(col(m, 'self_downtime'))} | {stat3(col(m, 'wall'), '{:.1f}')} | "
          f"{human(median(wr)) if wr else '–'} | {stat3(rss, '{:.0f}')} |")  # fmt: skip
    w("")

    w("### The downtime split (external, median s)\n")
    w("From the `stop` command's start to the last `start`/`up` command's start (the stop "
      "and, if any, the copy), then from there to every service running and `SELECT 1` "
      "answering (the start).\n")
    w("| method | stop → start command | start command → all up | downtime |")
    w("|---|---|---|---|")
    for m in present:
        w(f"| {m} | {stat3(col(m, 'stop_to_start'))} | {stat3(col(m, 'start_to_up'))} | "
          f"{stat3(col(m, 'downtime'))} |")  # fmt: skip
    w("")


def _users(view: View, w) -> None:
    """Freeze, commit block and the HTTP probe: what the stack's users saw of each run."""
    col, present = view.col, view.present
    rows = [m for m in present if any(x is not None for x in col(m, "http_requests"))
            or any(x is not None for x in view.freeze(m))]  # fmt: skip
    if not rows:
        return
    w("### What the users saw: freeze and the kbox's HTTP answers (median, min–max)\n")
    w("Downtime: the stack stopped (requests refused); freeze: frozen by `docker pause` "
      "(requests wait, none refused); commit block: commits waited for mariadb-backup "
      "(live). Failed, failing s, slow and slowest: the HTTP probe of the kbox through the run.\n")
    w("| method | downtime s | freeze s | self-reported freeze s | commit block s | "
      "failed requests | failing s | slow requests (> 1 s) | slowest request s | wall s |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for m in rows:
        frozen = sorted({s for r in view.res if r["method"] == m for s in r.get("frozen") or []})
        fz = stat3([x for x in col(m, "freeze")])
        if frozen and fz != "–":
            fz += f" ({', '.join(frozen)})"
        w(f"| {m} | {stat3(col(m, 'downtime'))} | {fz} | {stat3(col(m, 'self_freeze'))} | "
          f"{stat3(col(m, 'commit_block'), '{:.3f}')} | {stat3(col(m, 'http_failed'), '{:.0f}')} | "
          f"{stat3(col(m, 'http_failing_s'))} | {stat3(col(m, 'http_slow'), '{:.0f}')} | "
          f"{stat3(col(m, 'http_max_latency'))} | {stat3(col(m, 'wall'), '{:.1f}')} |")  # fmt: skip
    w("")


def _ratios(view: View, w) -> None:
    F, P, H1, H2, med, peers = view.F, view.P, view.H1, view.H2, view.med, view.peers
    w("### Ratios (of median downtimes)\n")
    w("| ratio | value |")
    w("|---|---|")
    rat = {
        "H1/P": ratio(H1, P), "H2/P": ratio(H2, P), "H1/F": ratio(H1, F), "H2/F": ratio(H2, F),
        "(H1−F)/(P−F)": ratio(None if H1 is None or F is None else H1 - F,
                              None if P is None or F is None else P - F),
        "cold/P": ratio(med("cold"), P),
    }  # fmt: skip
    for m in peers:
        rat[f"{m}/H2"] = ratio(med(m), H2)
    for k, v in rat.items():
        w(f"| {k} | {fr(v)} |")
    w("")


def _overhead(view: View, w) -> None:
    ov1, ov2, per_rep_ratio = view.ov1, view.ov2, view.per_rep_ratio
    w("### klink-sync's own overhead (total wall time against the bare script)\n")
    w("The bare script (`bare-H1`, `bare-H2`) runs the rsync and compose commands that "
      "`klink-sync hot-cold --dry-run` prints for the same destination state: the hot rsyncs "
      "of every volume (the database as a seed) with `--link-dest`, as many rounds as "
      "klink-sync's run just before it took (its walks decide: another round when 16 MiB or "
      "more changed during one; later rounds without `--link-dest`, as klink-sync runs them; "
      "one after the other, where klink-sync runs a round's volumes side by side), `sync` if "
      "that run flushed to disk before its stop (it does when 128 MiB or more wait for the "
      "disk), `stop -t 120`, the cold rsyncs one after the other, with `-aH` as klink-sync runs them "
      "here (the deployment holds no xattr or ACL), `start`, then a wait for every container "
      "running and healthy, polled every 0.1 s as klink-sync does; staging is renamed to a "
      "snapshot at the end. It does not do klink-sync's preflight (compose checks, one stat "
      "walk, locks), its ctime walks, the manifest or SHA256SUMS.\n")  # fmt: skip
    w("| ratio | per repetition | median |")
    w("|---|---|---|")
    w(f"| H1 wall / bare-H1 wall | {', '.join(fr(x) for x in ov1) or '–'} | {fr(median(ov1))} |")
    w(f"| H2 wall / bare-H2 wall | {', '.join(fr(x) for x in ov2) or '–'} | {fr(median(ov2))} |")
    d1, d2 = per_rep_ratio("H1", "bare-H1", "downtime"), per_rep_ratio("H2", "bare-H2", "downtime")
    w(f"| H1 downtime / bare-H1 downtime | {', '.join(fr(x) for x in d1) or '–'} | "
      f"{fr(median(d1))} |")  # fmt: skip
    w(f"| H2 downtime / bare-H2 downtime | {', '.join(fr(x) for x in d2) or '–'} | "
      f"{fr(median(d2))} |\n")  # fmt: skip


def _cuts(view: View, w) -> None:
    res, col, per_rep_ratio = view.res, view.col, view.per_rep_ratio
    if not col("H3", "downtime"):
        return
    what = {
        "rounds": "hot pass repeated while >= 16 MiB changed during a round (off: one round)",
        "seed": "hot pass seeds the database (off: database copied cold only)",
        "parallel": "the units of each pass side by side, hot and cold (off: one after the other)",
        "plain": "cold pass without -A -X when no xattr/ACL exists (off: always -AX)",
        "write-back": "hot pass written to disk before the stop (off: no sync)",
    }
    w("### What each downtime cut brings\n")
    w("After H2, in each repetition: `H3`, the same incremental hot-cold with every cut, "
      "then one run per cut with that cut turned off (`KLINK_SYNC_DISABLE=<cut>`), one "
      "after the other on the same destination (each copies the writer's few seconds of "
      "changes). After H1: a first run with each of the cuts that matter on a first run "
      "turned off, each on a fresh destination, against H1. Ratio > 1: the run without "
      "the cut had the longer downtime, the cut helps.\n")
    w("| cut turned off | downtime s | cold pass s | hot pass s | wall s | "
      "downtime / H3's, per repetition | median |")
    w("|---|---|---|---|---|---|---|")

    def phase(m, name):
        return [(r.get("phases") or {}).get(name) for r in res if r["method"] == m]

    for m in ["H3", *[f"H3-no-{c}" for c in CUTS], "H1", *[f"H1-no-{c}" for c in CUTS]]:
        if not col(m, "downtime") or (m == "H1" and not col("H1-no-seed", "downtime")):
            continue
        base = m[:2]
        rr = per_rep_ratio(m, base, "downtime") if m != base else []
        label = what[m[6:]] if m != base else "none (every cut on)"
        w(f"| `{m}`: {label} | {stat3(col(m, 'downtime'))} | {stat3(phase(m, 'cold'))} | "
          f"{stat3(phase(m, 'hot'), '{:.1f}')} | {stat3(col(m, 'wall'), '{:.1f}')} | "
          f"{', '.join(fr(x) for x in rr) or '–'} | {fr(median(rr)) if rr else '–'} |")
    w("")


def _where_time_goes(view: View, w) -> None:
    res = view.res
    held = {"H": ("stop", "cold", "start"), "pause": ("pause", "cold", "unpause"),
            "live": ("pause", "unpause")}  # the phases inside the downtime / the freeze
    for m in ("H2", "H1", "pause-2", "live-2"):
        rows = [r for r in res if r["method"] == m and r.get("phases")]
        if not rows:
            continue
        inside_of = held[m.split("-")[0] if "-" in m else "H"]
        w(f"### Where {m}'s time goes (klink-sync's phase timings, median s)\n")
        phases = []
        for r in rows:
            for k in r["phases"]:
                if k not in phases:
                    phases.append(k)
        w(f"| phase | seconds | in the {'downtime' if m[0] == 'H' else 'freeze'} |")
        w("|---|---|---|")
        for ph in phases:
            inside = "yes" if ph in inside_of else "no"
            if m.startswith("live") and ph == "cold":
                inside = "the index's round: yes"
            w(f"| {ph} | {stat3([r['phases'].get(ph) for r in rows])} | {inside} |")
        if any(r.get("checksums_s") is not None for r in rows):
            w(f"| SHA256SUMS (hashed while the stack starts) | "
              f"{stat3([r.get('checksums_s') for r in rows])} | no |")
        units = []
        for r in rows:
            for k in r.get("cold_units", {}):
                if k not in units:
                    units.append(k)
        for u in units:
            w(f"| cold pass: `{u}` | {stat3([r['cold_units'].get(u) for r in rows])} | "
              f"{'yes' if m[0] in 'Hp' else '–'} |")  # fmt: skip
        moved = [r.get("bytes_moved", {}) for r in rows]
        w(f"| bytes copied hot / cold | {human(median([x.get('hot') for x in moved]))} / "
          f"{human(median([x.get('cold') for x in moved]))} | |")  # fmt: skip
        rounds = [r.get("hot_rounds") for r in rows]
        if any(rounds):
            w(f"| hot rounds | {', '.join(str(x) for x in rounds)} | |")
        w("")


def _second_snapshot(view: View, w) -> None:
    sec = view.sec
    if not sec:
        return
    w("## A second snapshot of unchanged data\n")
    settle = ""
    if sec.get("settle"):
        settle = (f"A settling run came first ({sec['settle']}): the database's restart "
                  "after the writer's last rows still has work of its own (InnoDB purge and "
                  "flushing) that rewrites its log and tablespaces, so the next snapshot "
                  f"(the first below) still added {human(sec['first_new'])} ("
                  + ", ".join(f"`{f}`" for f in sec["settle_changed_files"][:8])
                  + "). ")  # fmt: skip
    w("With the writer stopped (`docker compose stop kbox`; database and indexer kept "
      "running, the indexer had caught up), three `klink-sync hot-cold` runs one after the "
      "other into the destination of the last repetition (which already held its H1 and "
      f"H2 snapshots). {settle}`du -s -B1 first second`: the first, {sec['first']}, uses "
      f"{human(sec['first_bytes'])}; the second, {sec['second']}, adds "
      f"**{human(sec['second_new'])} = {sec['percent']:.2f}%** of it "
      f"({human(sec['second_alone'])} if it stood alone). Then `docker compose start kbox`.\n")  # fmt: skip
    if sec["changed_files"]:
        w("Files of the second snapshot that are not hard links to the first (what the "
          "new space is):\n")
        for f in sec["changed_files"][:30]:
            w(f"- `{f}`")
        if len(sec["changed_files"]) > 30:
            w(f"- … {len(sec['changed_files']) - 30} more")
        w("")
    w("`klink-sync verify` of the older snapshots after those new runs (exit 0 = every "
      "file matches its SHA256SUMS):\n")
    for name, v in sec["verify"].items():
        w(f"- {name}: exit {v['exit']}" + (f" ({v['out'][-200:]})" if v["exit"] else ""))
    w("")


def _check(view: View, w) -> None:
    b = view.b
    chk = b.extra.get("check")
    if not chk:
        return
    w(f"`scripts/sample-stack/check.py snapshot` of the last H2 snapshot ({chk.get('snapshot')}): "
      f"ok={chk.get('ok')}, rows={chk.get('rows')}, crash_recovery={chk.get('crash_recovery')}, "
      f"mariadb-check ok={chk.get('check_ok')}, missing files={chk.get('missing')}, "
      f"bad sha256={chk.get('bad_sha256')}, index ok={chk.get('index_ok')}, "
      f"index consistent={chk.get('index_consistent')}.\n")  # fmt: skip


def _restore(view: View, w) -> None:
    """A database restored: physical (a snapshot's datadir) against logical (a dump)."""
    rs = view.restore
    if not rs or not (rs.get("physical") or rs.get("logical")):
        return
    ph, lg = rs.get("physical") or [], rs.get("logical") or []
    src = ("the last repetition's `live` snapshot (live-2): mariadb-backup's prepared datadir"
           if rs["source"] == "live-2" else
           "the last repetition's H2 snapshot (a copy of a clean shutdown; `live` was not in "
           "the code measured: the restore of a prepared datadir costs the same)")  # fmt: skip
    w("## Restoring the database: physical against logical (issue 15)\n")
    w(f"With the writer and the indexer stopped (the database idle). **Physical**: the "
      f"database folder of {src}, {snapshot_name(rs)} ({human(rs['datadir_bytes'])}), copied "
      "(`cp -a`) into an empty folder, the database image started on it in a throwaway "
      "container (`docker run`, no network, as `klink-sync verify --database` does) until "
      "it answers `SELECT COUNT(*) FROM documents`. **Logical**, what borgmatic and "
      "stack-back do: `mariadb-dump --single-transaction --databases` of the bench's "
      f"database, taken once outside the timing ({human(rs['dump']['bytes'])}, dumped in "
      f"{rs['dump']['seconds']:.1f} s); timed: an empty server started in a throwaway container "
      "(the image initialises its datadir), the dump imported with the `mariadb` client, "
      "the same query. Each "
      f"{len(ph)} time(s), the order alternating; before each `sync` and 2 s of rest.\n")  # fmt: skip
    w("| restore | total s | of which | rows counted |")
    w("|---|---|---|---|")
    w(f"| physical | {stat3([r['seconds'] for r in ph])} | copy "
      f"{stat3([r['copy_s'] for r in ph])}, server start until it answers "
      f"{stat3([r['start_s'] for r in ph])} | {fr(median([r['rows'] for r in ph]), 0)} |")
    w(f"| logical | {stat3([r['seconds'] for r in lg])} | empty server ready "
      f"{stat3([r['server_s'] for r in lg])}, import {stat3([r['import_s'] for r in lg])} | "
      f"{fr(median([r['rows'] for r in lg]), 0)} |")  # fmt: skip
    w(f"| physical / logical | {fr(view.restore_ratio())} | | |")
    w("")


def snapshot_name(rs: dict) -> str:
    return f"`{rs.get('snapshot')}`"


def _offsite(view: View, w) -> None:
    """`klink-sync offsite push` against plain `restic backup`, first and incremental."""
    a, col, off = view.a, view.col, view.off
    if not any(col(f"offsite-{n}", "cmd_s") for _, n in OFFSITE_ROWS):
        return
    w("## Offsite push: klink-sync against plain restic (issue 14)\n")
    w("With the writer stopped (`docker compose stop kbox`), in each repetition: empty "
      "restic repositories in the work folder (one `restic init`, then copied: one key, so "
      "one key-derivation cost for all; one password file, mode 0600); a `klink-sync "
      "hot-cold` snapshot into an empty destination; `klink-sync offsite push --config` of "
      "it into the first repository (restic runs in the snapshot folder, `--ignore-ctime`, "
      "the previous push as `--parent`) and plain `restic backup --json FOLDER` of the "
      "deployment's folder into the second (**first push**). Then "
      f"{getattr(a, 'offsite_rounds', 1)} incremental round(s), each: "
      f"{a.change_percent:g}% of the pre-filled documents rewritten, a new hot-cold "
      "snapshot (its unchanged files hard links to the one before), and the runs again "
      "(**incremental push**: plain restic takes its own parent, the last snapshot of the "
      "same host and path). Time: the command alone (GNU time around it), each after "
      f"`sync` and {a.settle:g} s of rest; the order of the runs turns from one round to "
      "the next; a ratio is klink-sync's time over plain restic's in the same round.\n")
    w("| push | `klink-sync offsite push` s | plain `restic backup` s | "
      "ratio per round | median ratio |")
    w("|---|---|---|---|---|")
    for name, n in OFFSITE_ROWS:
        rr = off[n]
        w(f"| {name} | {stat3(col(f'offsite-{n}', 'cmd_s'))} | "
          f"{stat3(col(f'restic-plain-{n}', 'cmd_s'))} | "
          f"{', '.join(fr(x) for x in rr) or '–'} | {fr(median(rr)) if rr else '–'} |")  # fmt: skip
    w("")
    _offsite_split(view, w)
    _offsite_summary(view, w)


def _offsite_split(view: View, w) -> None:
    """Where the incremental ratio comes from, in the same rounds: klink-sync around restic
    (against restic by hand with its command line in the same snapshot folder), and the
    snapshot folder against the deployment's (restic by hand against plain restic)."""
    around = view.per_rep_ratio("offsite-2", "restic-same-2", "cmd_s")
    folder = view.per_rep_ratio("restic-same-2", "restic-plain-2", "cmd_s")
    if not around:
        return
    w("Where the incremental ratio comes from, in the same rounds: **restic by hand** is "
      "`restic backup --json --ignore-ctime --parent PREVIOUS .` run by the bench inside "
      "the same snapshot folder as the push, into a third repository (a copy of the "
      "second): klink-sync's command line without klink-sync.\n")
    w("| split | s | ratio per round | median ratio |")
    w("|---|---|---|---|")
    w(f"| klink-sync around restic: push / restic by hand | "
      f"{stat3(view.col('offsite-2', 'cmd_s'))} / {stat3(view.col('restic-same-2', 'cmd_s'))}"
      f" | {', '.join(fr(x) for x in around)} | {fr(median(around))} |")
    w(f"| the snapshot folder: restic by hand / plain restic | "
      f"{stat3(view.col('restic-same-2', 'cmd_s'))} / "
      f"{stat3(view.col('restic-plain-2', 'cmd_s'))} | {', '.join(fr(x) for x in folder)} | "
      f"{fr(median(folder)) if folder else '–'} |")
    w("")


def _offsite_summary(view: View, w) -> None:
    """restic's numbers of the incremental runs, and the fixed costs behind the ratio."""
    w("restic's JSON summary of the incremental runs (median over the rounds):\n")
    w("| incremental run | data_added | files_new | files_changed | files_unmodified | "
      "repository grew by |")
    w("|---|---|---|---|---|---|")
    for label, m in (("`klink-sync offsite push`", "offsite-2"),
                     ("plain `restic backup`", "restic-plain-2")):  # fmt: skip
        sums = [r.get("summary") or {} for r in view.res if r["method"] == m]
        md = {k: median([x.get(k) for x in sums]) for k in
              ("data_added", "files_new", "files_changed", "files_unmodified")}  # fmt: skip
        w(f"| {label} | {human(md['data_added'])} | {fr(md['files_new'], 0)} | "
          f"{fr(md['files_changed'], 0)} | {fr(md['files_unmodified'], 0)} | "
          f"{human(view.med(m, 'written'))} |")  # fmt: skip
    w("")
    ex = view.b.extra.get("offsite") or {}
    lines = []
    if ex.get("changed_bytes"):
        lines.append(f"the change: ~{human(median(ex['changed_bytes']))} of documents rewritten")
    opened, started = median(ex.get("open_s", [])), median(ex.get("start_s", []))
    if opened is not None and started is not None:
        gap = [ratio_gap(view, n) for _, n in OFFSITE_ROWS]
        lines.append(
            f"one restic command's fixed cost here: {opened:.2f} s (`restic snapshots "
            "--json`: the repository opened, its key derived with the scrypt cost `restic "
            f"init` chose); klink-sync's start: {started:.2f} s (`klink-sync version`). "
            "A first push lists the repository for its parent (no push noted yet), then "
            "backs up: one restic command more than plain restic; a later push is one restic "
            f"command, like plain restic. Expected on top: first {opened + started:.2f} s, "
            f"incremental {started:.2f} s; measured (median push − median plain): first "
            f"{fr(gap[0])} s, incremental {fr(gap[1])} s")  # fmt: skip
    own = [r["cmd_s"] - r["restic_s"] for r in view.res
           if r["method"] == "offsite-2" and r.get("restic_s") is not None]  # fmt: skip
    if own:
        lines.append(
            "klink-sync's own time in an incremental push (its wall time less the restic "
            f"command's, as its `--json` `seconds` gives it): {stat3(own)} s")  # fmt: skip
    for line in lines:
        w(f"- {line}")
    if lines:
        w("")


def ratio_gap(view: View, n: int):
    """Median klink-sync push time less median plain restic time, row n."""
    k, p = view.med(f"offsite-{n}", "cmd_s"), view.med(f"restic-plain-{n}", "cmd_s")
    return None if k is None or p is None else k - p


def _scaling(view: View, w) -> None:
    a, sc = view.a, view.sc
    if not sc:
        return
    w("## Scaling: unchanged incremental hot-cold by number of files\n")
    w("A separate deployment with N files of a few bytes each (1000 per folder) under "
      "storage/data and a stand-in compose command (no Docker: stop and start are "
      "instant, so the times are klink-sync's and rsync's alone). First a run into an "
      "empty destination, then "
      f"{a.scaling_reps} unchanged incremental run(s), measured (median).\n")  # fmt: skip
    w("| files | first run s | incremental wall s | µs per file | downtime (cold pass) s | "
      "peak RSS MiB | phases of the incremental run (s) |")
    w("|---|---|---|---|---|---|---|")
    for row in sc:
        runs = row["runs"]
        wall = median([r["wall"] for r in runs])
        rss = max(r["rss_kib"] for r in runs) / 1024 if runs else None
        ph = runs[-1]["phases"] if runs else {}
        phs = ", ".join(f"{k} {v:.1f}" for k, v in ph.items())
        cs = runs[-1].get("checksums_s") if runs else None
        if cs is not None:
            phs += f", checksums {cs:.1f}"
        w(f"| {row['files']:,} | {row['first_wall']:.1f} | {fr(wall, 1)} | "
          f"{fr(1e6 * wall / row['files'], 0) if wall else '–'} | "
          f"{fr(median([r['downtime'] for r in runs]))} | {fr(rss, 0)} | {phs} |")  # fmt: skip
    w("")


def _reading(view: View, w) -> None:
    """Reading the numbers: every value computed from this run's rows."""
    an = [*_reading_downtime(view), *_reading_cold(view), *_reading_stop(view)]
    if an:
        w("## Reading the numbers\n")
        for line in an:
            w(f"- {line}")
        w("")


def _reading_downtime(view: View) -> list[str]:
    F, H1, H2, med, res = view.F, view.H1, view.H2, view.med, view.res
    an = []
    bH1, bH2 = med("bare-H1"), med("bare-H2")
    if None not in (H2, bH2, F):
        own = (f"so {H2 - bH2:.2f} s of H2's downtime is klink-sync's own doing" if H2 > bH2
               else f"so klink-sync's is {bH2 - H2:.2f} s shorter than the bare script's (its "
                    "cold units run side by side, the script's one after the other)")
        an.append(f"H2's downtime is {H2 - F:.2f} s above the floor F; the bare script of the "
                  f"same commands (bare-H2) is {bH2 - F:.2f} s above it, {own}.")  # fmt: skip
    if None not in (H1, bH1, F):
        an.append(f"H1: {H1 - F:.2f} s above F; bare-H1 {bH1 - F:.2f} s above F.")
    diffs = [r["self_downtime"] - r["downtime"] for r in res
             if r.get("self_downtime") is not None and r.get("downtime") is not None]  # fmt: skip
    if diffs:
        an.append(f"klink-sync's self-reported downtime is {median(diffs):.2f} s "
                  f"({min(diffs):.2f}–{max(diffs):.2f}) longer than the measured one: it ends "
                  "when klink-sync's own wait (compose ps and docker inspect, every 0.1 s) "
                  "has seen the services up, after they were.")  # fmt: skip
    return an


def _reading_cold(view: View) -> list[str]:
    b, res = view.b, view.res
    an = []
    units = [v for r in res for k, v in (r.get("cold_units") or {}).items()]
    side = b.extra.get("side") or {}
    if units:
        line = (f"The shortest command klink-sync ran in any cold pass took {min(units):.2f} s "
                f"(median of all its cold-pass commands: {median(units):.2f} s)")
        if side.get("tiny") is not None:
            extra = min(units) - side["tiny"]
            cost = (f"about {extra:.2f} s of its own" if extra >= 0.005
                    else "nothing measurable of its own")
            line += (f"; the same kind of rsync (one small file) run bare takes "
                     f"{side['tiny']:.3f} s, so each command klink-sync runs costs {cost}, and "
                     "the downtime holds the stop, every cold unit's walk and rsync, side by "
                     "side, and the start")  # fmt: skip
        an.append(line + ".")
    h1u = [r["cold_units"].get("folder/storage/data") for r in res if r["method"] == "H1"
           and r.get("cold_units")]  # fmt: skip
    h2u = [r["cold_units"].get("folder/storage/data") for r in res if r["method"] == "H2"
           and r.get("cold_units")]  # fmt: skip
    if h1u and h2u:
        line = (f"Cold pass of storage/data (walk, rsync, corrections): {median(h2u):.2f} s in "
                f"H2, {median(h1u):.2f} s in H1; in both the hot pass filled staging, so the "
                "cold rsync has no `--link-dest`, and no walk found an xattr or ACL, so it runs "
                "without `-A -X`")
        if side.get("plain") is not None:
            line += (f". Side test on the deployment's storage/data ({side['files']} entries, "
                     f"writer stopped, target already complete): `rsync -aHAX` with "
                     f"`--link-dest` {side['with']:.2f} s, without {side['without']:.2f} s, "
                     f"`rsync -aH` without {side['plain']:.2f} s")  # fmt: skip
        an.append(line + ".")
    return an


def _reading_stop(view: View) -> list[str]:
    H2, col, present = view.H2, view.col, view.present
    an = []
    if "rsnapshot-2" in present and H2 is not None:
        st = {m: median(col(m, "stop_to_start")) for m in ("H2", "rsnapshot-2", "bare-H2")}
        an.append(f"From stop to start command (external): H2 {st['H2']:.2f} s, bare-H2 "
                  f"{st['bare-H2']:.2f} s, rsnapshot-2 {st['rsnapshot-2']:.2f} s; from the "
                  f"start command to all up every method takes about the same "
                  f"({median(col('F', 'start_to_up')):.2f} s for F).")  # fmt: skip
    return an


def _acceptance(view: View, w) -> None:
    w("## Acceptance targets (issue 6; the offsite push: issue 14)\n")
    w("| target | measured | held |")
    w("|---|---|---|")
    for name, what, ok in _targets(view):
        w(f"| {name} | {what} | {held(ok)} |")
    w("")


def _targets(view: View) -> list[tuple]:
    """(target, measured, held) of the acceptance targets."""
    F, P, H1, H2, med, peers = view.F, view.P, view.H1, view.H2, view.med, view.peers
    ov1, ov2, sec, sc, machine = view.ov1, view.ov2, view.sec, view.sc, view.machine
    t = []
    t.append(("H2 ≤ 1.3 × F", f"H2 {fr(H2)} s, F {fr(F)} s, H2/F = {fr(ratio(H2, F))}",
              None if H2 is None or F is None else H2 <= 1.3 * F))  # fmt: skip
    if None not in (H1, F, P):
        t.append(("H1 − F ≤ 0.15 × (P − F)",
                  f"H1 − F = {H1 - F:.2f} s, 0.15 × (P − F) = {0.15 * (P - F):.2f} s "
                  f"(ratio {fr(ratio(H1 - F, P - F))})", H1 - F <= 0.15 * (P - F)))  # fmt: skip
    if peers and H2 is not None:
        pm = {m: med(m) for m in peers}
        t.append(("no peer has a shorter downtime than H2",
                  ", ".join(f"{m} {v:.2f} s" for m, v in pm.items()) + f"; H2 {H2:.2f} s",
                  all(v >= H2 for v in pm.values())))  # fmt: skip
    else:
        t.append(("no peer has a shorter downtime than H2", "peers not run (--skip-peers)", None))
    for name, ov in (("H2", ov2), ("H1", ov1)):
        if ov:
            t.append((f"{name} wall ≤ 1.15 × bare script wall", f"{fr(median(ov))}",
                      median(ov) <= 1.15))  # fmt: skip
    for name, n in OFFSITE_ROWS:
        if view.off[n]:
            t.append((f"{name}: klink-sync ≤ {OFFSITE_LIMIT:g} × plain restic (issue 14)",
                      fr(median(view.off[n])), median(view.off[n]) <= OFFSITE_LIMIT))  # fmt: skip
    if sec:
        t.append(("second snapshot of unchanged data < 1% of the first",
                  f"{sec['percent']:.2f}%", sec["percent"] < 1))  # fmt: skip
        ok = all(v["exit"] == 0 for v in sec["verify"].values())
        t.append(("a new run never changes an older snapshot's files (verify)",
                  ", ".join(f"{k}: exit {v['exit']}" for k, v in sec["verify"].items()), ok))
    if sc:
        big = max(sc, key=lambda r: r["files"])
        rss = max(r["rss_kib"] for r in big["runs"]) * 1024 if big["runs"] else None
        wall = median([r["wall"] for r in big["runs"]])
        t.append((f"unchanged incremental at {big['files']:,} files fits in memory",
                  f"{fr(wall, 1)} s, peak RSS {human(rss)} of {human(machine['mem'])}",
                  None if rss is None else rss < machine["mem"] / 2))  # fmt: skip
    return t


def _checks(view: View, w) -> None:
    """Issue 15's acceptance, each ratio with its measured value: PASS, FAIL, or – (not run)."""
    rows = _check_rows(view)
    if not rows:
        return
    w("## Checks (issue 15: `hot-cold --pause` and `live`; issue 14: the offsite push)\n")
    w("| check | measured | result |")
    w("|---|---|---|")
    for name, what, ok in rows:
        w(f"| {name} | {what} | {'–' if ok is None else ('PASS' if ok else 'FAIL')} |")
    w("")


def _check_rows(view: View) -> list[tuple]:
    med, col = view.med, view.col
    out = []
    F = view.F
    for name, mode in (("hot-cold --pause", "pause"), ("live", "live")):
        ms = [m for m in (f"{mode}-1", f"{mode}-2") if col(m, "wall")]
        if not ms:
            out.append((f"`{name}`: downtime 0", "not run", None))
            continue
        downs = [x for m in ms for x in col(m, "downtime")]
        out.append((f"`{name}`: downtime 0 (every run)",
                    ", ".join(f"{m} {stat3(col(m, 'downtime'))} s" for m in ms),
                    None if None in downs else all(x == 0 for x in downs)))  # fmt: skip
        failed = [x for m in ms for x in col(m, "http_failed") if x is not None]
        if failed:
            out.append((f"`{name}`: no failed HTTP request (every run)",
                        ", ".join(f"{m} {stat3(col(m, 'http_failed'), '{:.0f}')}" for m in ms)
                        + (f" (F: {stat3(col('F', 'http_failed'), '{:.0f}')})"
                           if col("F", "http_failed") else ""),
                        sum(failed) == 0))  # fmt: skip
    pf = median(view.freeze("pause-2"))
    if pf is not None:
        out.append((f"`hot-cold --pause` freeze ≤ {PAUSE_LIMIT:g} × F downtime (medians; pause-2)",
                    f"freeze {fr(pf)} s, F {fr(F)} s: {fr(ratio(pf, F))} × F",
                    None if F is None else pf <= PAUSE_LIMIT * F))  # fmt: skip
    lf, lc = median(view.freeze("live-2")), med("live-2", "commit_block")
    if col("live-2", "wall"):
        out.append(("`live`: the index's pause and the database's commit block (medians; "
                    "live-2)", f"index paused {fr(lf)} s, commits blocked {fr(lc, 3)} s", None))
        lw, hw = med("live-2", "wall"), med("H2", "wall")
        out.append((f"`live` wall ≤ {LIVE_WALL_LIMIT:g} × hot-cold wall (medians; live-2, H2)",
                    f"live {fr(lw, 1)} s, hot-cold {fr(hw, 1)} s: {fr(ratio(lw, hw))} ×",
                    None if lw is None or not hw else lw <= LIVE_WALL_LIMIT * hw))  # fmt: skip
    rr = view.restore_ratio()
    if view.restore:
        rs = view.restore
        out.append((f"physical restore ≤ {RESTORE_LIMIT:g} × logical (medians; physical from "
                    f"{'a live' if rs['source'] == 'live-2' else 'an H2 (no live)'} snapshot)",
                    f"physical {fr(median([r['seconds'] for r in rs['physical']]), 1)} s, "
                    f"logical {fr(median([r['seconds'] for r in rs['logical']]), 1)} s: "
                    f"{fr(rr)} ×", None if rr is None else rr <= RESTORE_LIMIT))  # fmt: skip
    for name, n in OFFSITE_ROWS:
        if view.off[n]:
            out.append((f"{name}: klink-sync ≤ {OFFSITE_LIMIT:g} × plain restic",
                        fr(median(view.off[n])), median(view.off[n]) <= OFFSITE_LIMIT))  # fmt: skip
    return out


def _tail(view: View, w) -> None:
    """Notes, the runtime, the chart."""
    b, timing = view.b, view.timing
    if b.notes:
        w("## Notes\n")
        for n in b.notes:
            w(f"- {n}")
        w("")
    w("## Runtime of the benchmark\n")
    for k, v in timing.items():
        if k not in ("date", "total"):
            w(f"- {k}: {v / 60:.1f} min")
    w(f"- total: {timing['total'] / 60:.1f} min\n")
    w("![median downtime per method, min–max bars](downtime.png)\n")


def chart(b, path: Path, methods: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meds, lo, hi = [], [], []
    for m in methods:
        xs = [r["downtime"] for r in b.results
              if r["method"] == m and r.get("downtime") is not None] or [0.0]  # fmt: skip
        md = statistics.median(xs)
        meds.append(md)
        lo.append(md - min(xs))
        hi.append(max(xs) - md)
    colors = []
    for m in methods:
        if m in ("H1", "H2", "cold"):
            colors.append("#2b7bba")
        elif m in STOPLESS:
            colors.append("#3a9e5f")
        elif m.startswith("bare"):
            colors.append("#7fb3d5")
        elif m in ("F", "P"):
            colors.append("#888888")
        else:
            colors.append("#d98c3f")
    fig, ax = plt.subplots(figsize=(10, 4.8), dpi=110)
    bars = ax.bar(methods, meds, yerr=[lo, hi], capsize=4, color=colors)
    for bar, v, up in zip(bars, meds, hi, strict=True):
        ax.text(bar.get_x() + bar.get_width() / 2, v + up + 0.2, f"{v:.1f}",
                ha="center", va="bottom", fontsize=8)  # fmt: skip
    # the modes that stop nothing: their freeze (docker pause -> unpause), hatched
    frozen = [(i, statistics.median(fs)) for i, m in enumerate(methods)
              if (fs := [r["freeze"] for r in b.results
                         if r["method"] == m and r.get("freeze") is not None])]  # fmt: skip
    if frozen:
        ax.bar([methods[i] for i, _ in frozen], [f for _, f in frozen], color="none",
               edgecolor="#3a9e5f", hatch="//", label="freeze (docker pause), median")  # fmt: skip
        for i, f in frozen:
            ax.text(i, f + 0.2, f"freeze {f:.1f}", ha="center", va="bottom", fontsize=8)
        ax.legend(loc="upper right", fontsize=8)
    ax.set_ylabel("downtime, s (stop → all running + SELECT 1)")
    ax.set_title(f"Downtime per method: median of {b.a.reps}, bars min–max "
                 f"({b.size_start['total'] / GIB:.1f} GiB deployment)")  # fmt: skip
    ax.tick_params(axis="x", rotation=30)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    log(f"wrote {path}")
