#!/usr/bin/env python3
"""Downtime benchmark: klink-sync against the guide's procedure and peers (make bench).

Builds a deployment of the sample stack (scripts/sample-stack) of a chosen size in a
work folder of its own (Compose project bench-<pid>), with its writer and indexer
running, and measures, repetition after repetition in the same run:

  F        docker compose stop; docker compose up -d               (nothing copied)
  P        stop; cp -a of the whole folder to a fresh destination; up -d
  cold     klink-sync cold, fresh destination
  H1       klink-sync hot-cold, fresh destination
  bare-H1  the rsync and compose commands klink-sync runs (from its --dry-run),
           as a plain shell script, fresh destination, as many hot rounds as H1 ran
  rsnapshot-1, restic-1   peers, first run (fresh snapshot root / repository)
  ... then 1% of the pre-filled documents are rewritten (new content, same size) ...
  H2       klink-sync hot-cold, incremental (same destination as H1)
  bare-H2  the same script, incremental (--link-dest to its previous snapshot)
  rsnapshot-2, restic-2   peers, incremental

Downtime is measured from outside: every compose command goes through a small
wrapper that notes when a `stop` (and a `start`/`up`) command starts; a poller
thread asks the Docker API for the project's containers and, once all run, opens a
MariaDB connection to the database container and runs SELECT 1. Downtime = from the
stop command's start to the end of the first probe, begun after the last start
command, that sees every service running and the database answering.

Then: a second snapshot of unchanged data (writer stopped), `klink-sync verify` of
older snapshots, and unchanged incremental runs at 10k / 100k / 1M small files
(a stand-in compose command, no Docker). Writes docs/benchmarks.md and
docs/downtime.png. Run as root (Docker, numeric owners). See --help.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import http.client
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "scripts" / "sample-stack"
sys.path.insert(0, str(SAMPLE))
from check import read_env  # noqa: E402 (the sample stack's .env reader)

from klink_sync.execute import CUTS  # noqa: E402 (the downtime cuts KLINK_SYNC_DISABLE knows)

SERVICES = ("database", "engine", "kbox")
GIB = 1 << 30
MIB = 1 << 20
REST_AFTER_CLEANUP = 10  # seconds of rest once a repetition's destinations are removed


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ----------------------------------------------------------------- secrets, commands


class Masker:
    def __init__(self) -> None:
        self.values: list[str] = []

    def add(self, *values: str | None) -> None:
        self.values = sorted({*self.values, *(v for v in values if v)}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for v in self.values:
            text = text.replace(v, "********")
        return text


MASK = Masker()


def run(argv, cwd=None, env=None, check=True, capture=True, timeout=3600, stdin=None):
    """Run a command; on failure raise BenchError with its (masked) output tail."""
    p = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, text=True, timeout=timeout,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.PIPE if capture else subprocess.DEVNULL,
        input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
    )  # fmt: skip
    if check and p.returncode != 0:
        out = MASK(((p.stderr or "") + (p.stdout or "")).strip())[-3000:]
        raise BenchError(f"{' '.join(map(str, argv[:4]))} ... exited {p.returncode}: {out}")
    return p


def timed(argv, cwd=None, env=None, ok=(0,), timeout=7200):
    """Run under GNU time: (seconds, peak RSS in KiB of the largest process of the tree, proc)."""
    fd, tfile = tempfile.mkstemp(prefix="bench-time-")
    os.close(fd)
    began = time.monotonic()
    p = subprocess.run(
        ["/usr/bin/time", "-f", "%M", "-o", tfile, *map(str, argv)], cwd=cwd, env=env,
        text=True, capture_output=True, stdin=subprocess.DEVNULL,
        timeout=timeout,
    )  # fmt: skip
    seconds = time.monotonic() - began
    try:
        lines = [ln for ln in Path(tfile).read_text().splitlines() if ln.strip().isdigit()]
        rss = int(lines[-1]) if lines else 0
    finally:
        os.unlink(tfile)
    if p.returncode not in ok:
        out = MASK((p.stderr + p.stdout).strip())[-3000:]
        raise BenchError(f"{' '.join(map(str, argv[:4]))} ... exited {p.returncode}: {out}")
    return seconds, rss, p


def du_bytes(*paths: Path) -> list[int]:
    """Disk usage (blocks, in bytes) of each path, in one du: a hard-linked file counts once,
    for the first path that holds it; later paths show only their own new blocks."""
    existing = [p for p in paths if p.exists()]
    if not existing:
        return [0 for _ in paths]
    out = run(["du", "-s", "-B1", *existing]).stdout
    sizes = {}
    for line in out.splitlines():
        n, _, path = line.partition("\t")
        sizes[path] = int(n)
    return [sizes.get(str(p), 0) for p in paths]


def apparent_bytes(path: Path) -> int:
    return int(run(["du", "-s", "--bytes", path]).stdout.split()[0])


def rm_tree(path: Path) -> None:
    if path.exists() or path.is_symlink():
        run(["rm", "-rf", "--one-file-system", path], timeout=3600)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# ----------------------------------------------------------------- Docker API + poller


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str = "/var/run/docker.sock", timeout: float = 5):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


def docker_containers(project: str) -> list[dict]:
    filters = json.dumps({"label": [f"com.docker.compose.project={project}"]})
    conn = UnixHTTP()
    try:
        conn.request("GET", "/containers/json?all=1&filters=" + urllib.parse.quote(filters))
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise BenchError(f"Docker API: {resp.status} {body[:200]!r}")
        return json.loads(body)
    finally:
        conn.close()


class Poller(threading.Thread):
    """Probes the stack every `interval` s: all services running + the database answering."""

    def __init__(self, project: str, password: str, services=SERVICES, interval: float = 0.05):
        super().__init__(daemon=True)
        import pymysql  # the bench extra

        self.pymysql = pymysql
        self.project, self.password, self.services = project, password, set(services)
        self.interval = interval
        self.samples: list[tuple[float, float, bool]] = []  # (probe began, probe ended, all up)
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.periods: list[float] = []

    def probe(self) -> bool:
        try:
            cs = docker_containers(self.project)
        except Exception:
            return False
        running, ip = set(), None
        for c in cs:
            service = c.get("Labels", {}).get("com.docker.compose.service")
            if c.get("State") == "running":
                running.add(service)
                if service == "database":
                    nets = (c.get("NetworkSettings") or {}).get("Networks") or {}
                    ip = next((n.get("IPAddress") for n in nets.values() if n.get("IPAddress")),
                              None)  # fmt: skip
        if not self.services <= running or not ip:
            return False
        try:
            conn = self.pymysql.connect(host=ip, user="root", password=self.password,
                                        connect_timeout=2, read_timeout=3, write_timeout=3)  # fmt: skip
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                    return cur.fetchone()[0] == 1
            finally:
                conn.close()
        except Exception:
            return False

    def run(self) -> None:
        last = None
        while not self.halt.is_set():
            t0 = time.time()
            ok = self.probe()
            t1 = time.time()
            with self.lock:
                self.samples.append((t0, t1, ok))
                if len(self.samples) > 20000:
                    del self.samples[:10000]
            if last is not None:
                self.periods.append(t0 - last)
                if len(self.periods) > 100000:
                    del self.periods[:50000]
            last = t0
            self.halt.wait(self.interval)

    def up_after(self, t: float, timeout: float = 600) -> float:
        """End of the first probe begun at or after t that saw everything up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for t0, t1, ok in self.samples:
                    if t0 >= t and ok:
                        return t1
            time.sleep(0.05)
        raise BenchError(f"the stack was not back up within {timeout}s")

    def up_now(self) -> bool:
        return self.up_after(time.time(), timeout=600) > 0


# ----------------------------------------------------------------- compose wrapper

WRAPPER = """#!/bin/bash
# compose wrapper of the benchmark: notes when stop/start/up begin, then runs compose
verb=; skip=0
for a in "$@"; do
  if [ $skip = 1 ]; then skip=0; continue; fi
  case "$a" in -f|-p|--file|--project-name|--env-file) skip=1 ;; -*) ;; *) verb=$a; break ;; esac
done
case "$verb" in stop|start|up|restart) echo "$verb $(date +%s.%N)" >>{events} ;; esac
exec {compose} "$@"
"""

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


class Events:
    def __init__(self, path: Path):
        self.path = path
        path.write_text("")

    def reset(self) -> None:
        self.path.write_text("")

    def read(self) -> list[tuple[str, float]]:
        out = []
        for line in self.path.read_text().splitlines():
            verb, _, t = line.partition(" ")
            out.append((verb, float(t)))
        return out


# ----------------------------------------------------------------- the deployment


def random_sizes(n: int, total: int, rng: random.Random) -> list[int]:
    """Mixed sizes: log-uniform 1 KiB..1 MiB, 2% 2..8 MiB; scaled to sum to `total`."""
    raw = []
    for _ in range(n):
        if rng.random() < 0.02:
            raw.append(rng.uniform(2 * MIB, 8 * MIB))
        else:
            raw.append(2 ** rng.uniform(10, 20))
    scale = total / sum(raw)
    return [max(1, int(x * scale)) for x in raw]


class Bench:
    def __init__(self, args):
        self.a = args
        self.work = Path(args.work_dir).resolve()
        self.project = f"bench-{os.getpid()}"
        self.folder = self.work / self.project
        self.events = None
        self.poller: Poller | None = None
        self.results: list[dict] = []
        self.notes: list[str] = []
        self.extra: dict = {}
        self.rng = random.Random(args.seed)
        self.prefilled: list[tuple[str, int]] = []  # (relative path, size)
        self.stack_up = False

    # -- commands -------------------------------------------------------------

    @property
    def wrapper(self) -> Path:
        return self.work / "compose"

    def compose(self, *args, check=True, timeout=600):
        return run([self.wrapper, *args], cwd=self.folder, check=check, timeout=timeout)

    def klink(self, *args) -> list[str]:
        return [sys.executable, "-m", "klink_sync", *map(str, args)]

    @property
    def klink_env(self) -> dict:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(self.work / "code")
        env["KLINK_SYNC_COMPOSE"] = str(self.wrapper)
        for k in ("KLINK_SYNC_FOLDER", "KLINK_SYNC_DEST", "KLINK_SYNC_CONFIG"):
            env.pop(k, None)
        return env

    def sql(self, text: str, timeout: int = 3600) -> str:
        """SQL into the running database, as root; the password stays inside the container."""
        script = 'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mariadb -uroot -N -B -D "$MYSQL_DATABASE"'
        p = run([self.wrapper, "exec", "-T", "database", "sh", "-c", script], cwd=self.folder,
                stdin=text, timeout=timeout)  # fmt: skip
        return p.stdout

    # -- setup ----------------------------------------------------------------

    def setup(self) -> None:
        a = self.a
        self.work.mkdir(parents=True, exist_ok=True)
        os.chmod(self.work, 0o700)
        need = int((a.docs_gib * GIB + a.db_mib * MIB) * 13 + 4 * GIB)  # a repetition's copies
        free = shutil.disk_usage(self.work).free
        if free < need:
            raise BenchError(f"{self.work}: {free / GIB:.1f} GiB free, the run needs about "
                             f"{need / GIB:.1f} GiB (--work-dir elsewhere or smaller sizes)")  # fmt: skip
        # the code measured: a copy of klink_sync as it is now (others may edit the tree)
        shutil.copytree(ROOT / "klink_sync", self.work / "code" / "klink_sync",
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        self.code_digest = hashlib.sha256(
            b"".join(p.read_bytes() for p in sorted((self.work / "code").rglob("*.py")))
        ).hexdigest()[:12]
        self.events = Events(self.work / "events")
        self.wrapper.write_text(WRAPPER.format(events=shlex.quote(str(self.events.path)),
                                               compose=a.compose))  # fmt: skip
        self.wrapper.chmod(0o755)
        shutil.copytree(SAMPLE / "deploy", self.folder)
        env_file = self.folder / ".env"
        text = env_file.read_text()
        text = re.sub(r"^WRITE_RATE=.*$", f"WRITE_RATE={a.write_rate:g}", text, flags=re.M)
        env_file.write_text(text)
        self.env = read_env(env_file)
        self.root_pw = self.env.get("DB_ROOT_PASSWORD") or ""
        MASK.add(self.root_pw, self.env.get("DB_PASSWORD"))
        if not self.root_pw:
            raise BenchError("no DB_ROOT_PASSWORD in the sample deploy's .env")
        self.prefill_documents()
        log(f"starting the stack {self.project} in {self.folder}")
        self.compose("up", "-d", timeout=900)
        self.stack_up = True
        self.poller = Poller(self.project, self.root_pw, interval=a.poll_interval)
        self.poller.start()
        self.poller.up_after(time.time(), timeout=600)
        self.fill_database()
        log("letting the writer and the indexer run")
        time.sleep(a.settle * 2)
        self.size_start = self.deployment_size()
        log(f"deployment: {self.size_start['total'] / GIB:.2f} GiB "
            f"({self.size_start['files']} files)")  # fmt: skip

    def prefill_documents(self) -> None:
        a = self.a
        docs = self.folder / "storage" / "data" / "documents"
        for d in (docs.parent, docs):
            d.mkdir(parents=True, exist_ok=True)
            os.chown(d, 33, 33)
            d.chmod(0o750)
        sizes = random_sizes(a.files, int(a.docs_gib * GIB), self.rng)
        log(f"writing {len(sizes)} documents, {sum(sizes) / GIB:.2f} GiB, into {docs}")
        rows = []
        began = time.monotonic()
        for size in sizes:
            rel = f"documents/{uuid.UUID(int=self.rng.getrandbits(128)).hex}.bin"
            data = os.urandom(size)
            path = docs.parent / rel
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            try:
                os.write(fd, data)
                os.fchown(fd, 33, 33)
            finally:
                os.close(fd)
            rows.append((rel, size, hashlib.sha256(data).hexdigest()))
        self.prefilled = [(r[0], r[1]) for r in rows]
        self._rows = rows
        log(f"documents written in {time.monotonic() - began:.0f}s")

    def fill_database(self) -> None:
        a = self.a
        log(f"inserting {len(self._rows)} rows for the pre-filled documents")
        for i in range(0, len(self._rows), 2000):
            chunk = self._rows[i:i + 2000]
            values = ",".join(f"('{p}',{s},'{h}')" for p, s, h in chunk)
            self.sql(f"INSERT INTO documents (path, size, sha256) VALUES {values};")
        del self._rows
        dbdir = self.folder / "storage" / "database"
        self.sql("CREATE TABLE IF NOT EXISTS filler (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
                 "pad LONGBLOB NOT NULL) ENGINE=InnoDB;")  # fmt: skip
        target = a.db_mib * MIB
        began = time.monotonic()
        row_kib, batch_rows = 64, 64  # 4 MiB of random bytes per statement
        pad = "CONCAT(" + ",".join(["RANDOM_BYTES(1024)"] * row_kib) + ")"
        stmt = (f"INSERT INTO filler (pad) WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL "
                f"SELECT n + 1 FROM s WHERE n < {batch_rows}) SELECT {pad} FROM s;\n")  # fmt: skip
        while du_bytes(dbdir)[0] < target:
            have = du_bytes(dbdir)[0]
            batches = max(1, min(16, int((target - have) / (row_kib * batch_rows * 1024)) + 1))
            self.sql(stmt * batches)
        log(f"database {du_bytes(dbdir)[0] / MIB:.0f} MiB on disk "
            f"(filled in {time.monotonic() - began:.0f}s)")  # fmt: skip

    def deployment_size(self) -> dict:
        st = self.folder / "storage"
        parts = dict(zip(("documents", "database", "index"),
                         du_bytes(st / "data", st / "database", st / "index"), strict=True))  # fmt: skip
        files = int(run(["find", self.folder, "-type", "f", "-printf", "."]).stdout.__len__())
        rows = int(self.sql("SELECT COUNT(*) FROM documents;").strip() or 0)
        return {**parts, "total": du_bytes(self.folder)[0], "files": files, "rows": rows}

    def change_documents(self) -> int:
        """Rewrite 1% of the pre-filled documents in place: new random content, same size;
        their rows get the new sha256 (the sample's checker stays consistent)."""
        n = max(1, round(len(self.prefilled) * self.a.change_percent / 100))
        chosen = self.rng.sample(self.prefilled, n)
        updates = []
        for rel, size in chosen:
            data = os.urandom(size)
            path = self.folder / "storage" / "data" / rel
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            updates.append(f"UPDATE documents SET sha256='{hashlib.sha256(data).hexdigest()}' "
                           f"WHERE path='{rel}';")  # fmt: skip
        self.sql("\n".join(updates))
        return sum(s for _, s in chosen)

    # -- one measurement --------------------------------------------------------

    def quiesce(self) -> None:
        """Between measurements: flush what the last one wrote, let the stack settle."""
        run(["sync"])
        self.poller.up_after(time.time(), timeout=600)
        time.sleep(self.a.settle)

    def measure(self, method: str, rep: int, body, *args) -> dict:
        self.quiesce()
        log(f"rep {rep}: {method}")
        self.events.reset()
        began_wall, began = time.time(), time.monotonic()
        info = body(*args) or {}
        ended = time.monotonic()
        ev = self.events.read()
        stops = [t for v, t in ev if v == "stop"]
        starts = [t for v, t in ev if v in ("start", "up", "restart")]
        row = {"method": method, "rep": rep, **info}
        if stops and starts:
            up = self.poller.up_after(max(starts))
            row["downtime"] = up - stops[0]
            row["stop_to_start"] = max(starts) - stops[0]  # stop, and the copy, if any
            row["start_to_up"] = up - max(starts)  # from the start command to all up + SELECT 1
            row["wall"] = max(ended - began, up - began_wall)
        else:
            row["downtime"] = None
            row["wall"] = ended - began
        self.results.append(row)
        self.save_raw()
        log(f"rep {rep}: {method}: downtime {row['downtime'] or 0:.2f}s, "
            f"wall {row['wall']:.1f}s, written {row.get('written', 0) / MIB:.0f} MiB, "
            f"peak RSS {row.get('rss_kib', 0) / 1024:.0f} MiB"
            + (f", self-reported downtime {row['self_downtime']:.2f}s"
               if row.get("self_downtime") is not None else ""))  # fmt: skip
        return row

    def save_raw(self, machine=None, timing=None) -> None:
        periods = self.poller.periods if self.poller else []
        raw = {
            "argv": sys.argv[1:], "args": vars(self.a), "results": self.results,
            "extra": self.extra, "notes": self.notes, "code_digest": getattr(self, "code_digest", ""),
            "size_start": getattr(self, "size_start", None),
            "size_end": getattr(self, "size_end", None),
            "probe_period_median": median(periods[-50000:]) if periods else None,
            "machine": machine, "timing": timing,
        }  # fmt: skip
        (self.work / "raw.json").write_text(json.dumps(raw, indent=1, default=str))

    # -- the methods --------------------------------------------------------------

    def floor(self) -> dict:
        s1, r1, _ = timed([self.wrapper, "stop"], cwd=self.folder)
        s2, r2, _ = timed([self.wrapper, "up", "-d"], cwd=self.folder)
        return {"rss_kib": max(r1, r2), "written": 0}

    def plain(self, dest: Path) -> dict:
        dest.mkdir(parents=True)
        before = du_bytes(dest)[0]
        _, r1, _ = timed([self.wrapper, "stop"], cwd=self.folder)
        _, r2, _ = timed(["cp", "-a", self.folder, dest / "folder"])
        _, r3, _ = timed([self.wrapper, "up", "-d"], cwd=self.folder)
        return {"rss_kib": max(r1, r2, r3), "written": du_bytes(dest)[0] - before}

    def klink_run(self, mode: str, dest: Path, disable: str = "") -> dict:
        before = du_bytes(dest)[0] if dest.exists() else 0
        env = {**self.klink_env, "KLINK_SYNC_DISABLE": disable}
        _, rss, p = timed(self.klink(mode, "--folder", self.folder, "--dest", dest, "--json"),
                          env=env)  # fmt: skip
        report = json.loads(p.stdout)
        cold_units = {}
        for ps in report.get("passes", []):
            if ps.get("phase") == "cold":
                cold_units[ps["unit"]] = cold_units.get(ps["unit"], 0) + ps["seconds"]
        return {
            "rss_kib": rss,
            "written": du_bytes(dest)[0] - before,
            "self_downtime": report.get("downtime_seconds"),
            "phases": report.get("phases", {}),
            "checksums_s": (report.get("checksums") or {}).get("seconds"),
            "bytes_moved": report.get("bytes_moved", {}),
            "cold_units": cold_units,
            "hot_rounds": max([ps.get("round", 1) for ps in report.get("passes", [])
                               if ps.get("phase") == "hot"] or [0]),  # fmt: skip
            "snapshot": report.get("snapshot"),
            "warnings": report.get("warnings", []),
            "wrote_back": "written back to disk" in p.stderr,  # its sync before the stop
        }

    def bare_script(self, kdest: Path, bdest: Path, n: int) -> Path:
        """The exact commands of `klink-sync hot-cold --dry-run` for kdest, pointed at bdest."""
        p = run(self.klink("hot-cold", "--folder", self.folder, "--dest", kdest, "--dry-run"),
                env=self.klink_env)  # fmt: skip
        cmds = []
        on = False
        for line in p.stdout.splitlines():
            if line.startswith("commands"):
                on = True
                continue
            m = re.match(r"^\s+\[([a-z]+)[^\]]*\]\s+(.*)$", line) if on else None
            if m:
                cmds.append((m.group(1), shlex.split(m.group(2))))
        if not any(ph == "stop" for ph, _ in cmds):
            raise BenchError("could not read the commands of klink-sync --dry-run")
        kd, staging = str(kdest), str(bdest / ".staging")
        prev = str(bdest / f"snap-{n - 1}")

        def fix(arg: str) -> str:
            arg = arg.replace(kd + "/.staging", staging)
            return re.sub(re.escape(kd) + r"/(?:snapshots/[^/]+|latest)", prev, arg)

        # klink-sync repeats its hot pass when a walk finds much changed during a round:
        # the script runs as many rounds as klink-sync's run just before it ($1), and
        # flushes to disk before the stop ($2 = 1) if that run did.
        out = shlex.quote(str(self.work / f"bare-{n}.out"))
        lines = ["#!/bin/bash", "# the rsync and compose commands of klink-sync, bare",
                 "set -u", f"cd {shlex.quote(str(self.folder))}", "fail=0",
                 f"rm -rf {shlex.quote(staging)}"]  # fmt: skip
        in_hot = False
        for phase, argv in cmds:
            argv = [fix(x) for x in argv]
            if phase == "hot" and not in_hot:
                lines.append('for round in $(seq "${1:-1}"); do')
                in_hot = True
            elif phase != "hot" and in_hot:
                lines.append('done; [ "${2:-0}" = 1 ] && sync')
                in_hot = False
            if argv[0] == "rsync":
                into = argv[-1]
                lines.append(f"mkdir -p {shlex.quote(os.path.dirname(into.rstrip('/')))}")
                if phase == "hot":  # later rounds: no --link-dest (staging is full), as klink-sync
                    later = [x for x in argv if not x.startswith("--link-dest=")]
                    lines.append(f"if [ $round = 1 ]; then {shlex.join(argv)} >{out}; "
                                 f"else {shlex.join(later)} >{out}; fi; c=$?; "
                                 "[ $c = 0 ] || [ $c = 23 ] || [ $c = 24 ] || exit $c")  # fmt: skip
                else:  # klink-sync's cold pass copies without -A -X: no xattr/ACL here
                    argv = ["-aH" if x == "-aHAX" else x for x in argv]
                    lines.append(f"{shlex.join(argv)} >/dev/null || fail=1")
            else:
                argv = [x for x in argv if x != "<services running before>"]
                if "start" in argv or "up" in argv:
                    argv += list(SERVICES)
                lines.append(shlex.join(argv) + " >/dev/null 2>&1 || fail=1")
                if "start" in argv or "up" in argv:
                    # wait as klink-sync does: every service running and healthy
                    w = shlex.quote(str(self.wrapper))
                    lines.append(
                        "for i in $(seq 600); do ids=$(" + w + " ps -q); ok=1; "
                        "for id in $ids; do s=$(docker inspect -f '{{.State.Running}} "
                        "{{if .State.Health}}{{.State.Health.Status}}{{end}}' $id); "
                        "case \"$s\" in 'true '|'true healthy') ;; *) ok=0 ;; esac; done; "
                        f"[ $ok = 1 ] && [ $(echo $ids | wc -w) -ge {len(SERVICES)} ] && break; "
                        "sleep 0.1; done")  # fmt: skip
        lines.append(f"[ $fail = 0 ] && mv {shlex.quote(staging)} {shlex.quote(str(bdest / f'snap-{n}'))}")
        script = self.work / f"bare-{n}.sh"
        script.write_text("\n".join(lines) + "\n")
        return script

    def bare(self, script: Path, bdest: Path, like: dict) -> dict:
        """The script, as many hot rounds as the klink-sync run `like`, and its sync."""
        bdest.mkdir(parents=True, exist_ok=True)
        before = du_bytes(bdest)[0]
        rounds, wrote_back = like["hot_rounds"], like["wrote_back"]
        _, rss, _ = timed(["bash", script, str(rounds), "1" if wrote_back else "0"])
        return {"rss_kib": rss, "written": du_bytes(bdest)[0] - before, "hot_rounds": rounds,
                "wrote_back": wrote_back}  # fmt: skip

    def rsnapshot_conf(self, root: Path) -> Path:
        conf = self.work / f"rsnapshot-{root.name}.conf"
        pre, post = self.work / "rsnapshot-pre.sh", self.work / "rsnapshot-post.sh"
        f = shlex.quote(str(self.folder))
        w = shlex.quote(str(self.wrapper))
        pre.write_text(f"#!/bin/sh\ncd {f} && exec {w} stop\n")
        post.write_text(f"#!/bin/sh\ncd {f} && exec {w} up -d\n")
        pre.chmod(0o755)
        post.chmod(0o755)
        fields = [
            ("config_version", "1.2"), ("snapshot_root", f"{root}/"), ("no_create_root", "0"),
            ("cmd_cp", "/bin/cp"), ("cmd_rm", "/bin/rm"), ("cmd_rsync", "/usr/bin/rsync"),
            ("cmd_preexec", str(pre)), ("cmd_postexec", str(post)),
            ("retain", "alpha\t10"), ("verbose", "1"), ("loglevel", "3"),
            ("lockfile", str(self.work / f"rsnapshot-{root.name}.pid")),
            ("backup", f"{self.folder}/\tlocalhost/"),
        ]  # fmt: skip
        conf.write_text("".join(f"{k}\t{v}\n" for k, v in fields))
        return conf

    def rsnapshot(self, root: Path) -> dict:
        conf = self.rsnapshot_conf(root)
        before = du_bytes(root)[0] if root.exists() else 0
        _, rss, _ = timed(["rsnapshot", "-c", conf, "alpha"])
        return {"rss_kib": rss, "written": du_bytes(root)[0] - before}

    def restic(self, repo: Path, first: bool) -> dict:
        env = dict(os.environ, RESTIC_REPOSITORY=str(repo),
                   RESTIC_PASSWORD_FILE=str(self.work / "restic-password"),
                   RESTIC_CACHE_DIR=str(self.work / "restic-cache"))  # fmt: skip
        pw = self.work / "restic-password"
        if not pw.exists():
            pw.write_text(uuid.uuid4().hex + "\n")
            pw.chmod(0o600)
        rss0 = 0
        if first:
            _, rss0, _ = timed(["restic", "init", "-q"], env=env)
        before = du_bytes(repo)[0]
        _, r1, _ = timed([self.wrapper, "stop"], cwd=self.folder)
        try:
            _, r2, _ = timed(["restic", "backup", "-q", self.folder], env=env)
        finally:
            _, r3, _ = timed([self.wrapper, "up", "-d"], cwd=self.folder)
        return {"rss_kib": max(rss0, r1, r2, r3), "written": du_bytes(repo)[0] - before}

    # -- the rounds -----------------------------------------------------------------

    def repetitions(self) -> None:
        a = self.a
        keep = None
        for rep in range(1, a.reps + 1):
            d = self.work / f"r{rep}"
            d.mkdir()
            self.measure("F", rep, self.floor)
            # no destination is removed before the repetition ends: a measured run right
            # after a large delete writes markedly slower (seconds, on ext4 here)
            self.measure("P", rep, self.plain, d / "plain")
            self.measure("cold", rep, self.klink_run, "cold", d / "kcold")
            kd, bd = d / "klink", d / "bare"
            script = self.bare_script(kd, bd, 1)
            h1 = self.measure("H1", rep, self.klink_run, "hot-cold", kd)
            self.measure("bare-H1", rep, self.bare, script, bd, h1)
            if a.cuts:  # the cuts that matter most on a first run, each on a fresh destination
                for cut in ("rounds", "seed", "parallel", "write-back"):
                    self.measure(f"H1-no-{cut}", rep, self.klink_run, "hot-cold",
                                 d / f"k1-{cut}", cut)  # fmt: skip
            if not a.skip_peers:
                self.measure("rsnapshot-1", rep, self.rsnapshot, d / "rsnapshot")
                self.measure("restic-1", rep, self.restic, d / "restic", True)
            changed = self.change_documents()
            log(f"rep {rep}: rewrote {a.change_percent:g}% of the documents "
                f"({changed / MIB:.0f} MiB)")  # fmt: skip
            self.extra.setdefault("changed_bytes", []).append(changed)
            script = self.bare_script(kd, bd, 2)
            h2 = self.measure("H2", rep, self.klink_run, "hot-cold", kd)
            self.measure("bare-H2", rep, self.bare, script, bd, h2)
            if not a.skip_peers:
                self.measure("rsnapshot-2", rep, self.rsnapshot, d / "rsnapshot")
                self.measure("restic-2", rep, self.restic, d / "restic", False)
            if a.cuts:
                # each downtime cut turned off in turn, against the same run with all of them,
                # one after the other (incremental: the writer's few seconds of changes)
                for cut in ["", *CUTS]:
                    self.measure(f"H3-no-{cut}" if cut else "H3", rep, self.klink_run,
                                 "hot-cold", kd, cut)  # fmt: skip
            for sub in d.iterdir():
                if sub != kd:
                    rm_tree(sub)
            if keep is not None:
                rm_tree(keep.parent)
            keep = kd
            run(["sync"])
            time.sleep(REST_AFTER_CLEANUP)  # before the next repetition's F and P
        self.kept_dest = keep

    def second_snapshot(self) -> None:
        """Two hot-cold runs with the writer stopped: the second's new disk space."""
        kd = self.kept_dest
        first_snaps = sorted(p.name for p in (kd / "snapshots").iterdir() if p.is_dir())
        log("second snapshot of unchanged data: stopping the writer (kbox)")
        self.compose("stop", "kbox")
        time.sleep(self.a.settle + 2)  # the indexer catches up with the last rows
        env = self.klink_env
        snaps = []
        try:
            # A settling run first: the database's restart after the writer's last rows
            # still has work (InnoDB purges, flushes) that rewrites its log and tablespaces;
            # the measured pair is the next two runs, with nothing left to change.
            for _ in range(3):
                run(["sync"])
                _, _, p = timed(self.klink("hot-cold", "--folder", self.folder, "--dest", kd,
                                           "--json"), env=env)  # fmt: skip
                snaps.append(json.loads(p.stdout))
                time.sleep(self.a.settle)
            self.side_tests(kd / "snapshots" / snaps[-1]["snapshot"])
        finally:
            self.compose("start", "kbox")
        s2, s3, s4 = (kd / "snapshots" / r["snapshot"] for r in snaps)
        settle_new = du_bytes(s2, s3)[1]
        total3, new4 = du_bytes(s3, s4)
        total4_alone = du_bytes(s4)[0]
        changed = self.changed_files(s3, s4)
        listing = json.loads(run(self.klink("snapshots", "--dest", kd, "--json"),
                                 env=env).stdout)  # fmt: skip
        verify = {}
        for name in first_snaps + [s3.name]:
            p = run(self.klink("verify", "--dest", kd, name), env=env, check=False)
            verify[name] = {"exit": p.returncode, "out": MASK(p.stdout + p.stderr).strip()[-500:]}
        self.extra["second"] = {
            "first": s3.name, "second": s4.name, "first_bytes": total3, "second_new": new4,
            "second_alone": total4_alone, "percent": 100.0 * new4 / total3 if total3 else None,
            "changed_files": changed, "listing": listing, "verify": verify,
            "older": first_snaps, "downtimes": [r.get("downtime_seconds") for r in snaps],
            "settle": s2.name, "settle_changed_files": self.changed_files(s2, s3),
            "first_new": settle_new,
        }  # fmt: skip
        log(f"second snapshot: {new4 / MIB:.1f} MiB new of {total3 / MIB:.0f} MiB "
            f"({self.extra['second']['percent']:.2f}%); verify: "
            + ", ".join(f"{k}={v['exit']}" for k, v in verify.items()))  # fmt: skip
        if self.a.check:
            log("checking the last H2 snapshot with scripts/sample-stack/check.py")
            h2 = [r for r in self.results if r["method"] == "H2"][-1]["snapshot"]
            p = run([sys.executable, SAMPLE / "check.py", "snapshot",
                     kd / "snapshots" / h2 / "folder", "--json"], check=False, timeout=3600)  # fmt: skip
            try:
                r = json.loads(p.stdout)
                self.extra["check"] = {k: r.get(k) for k in (
                    "ok", "rows", "crash_recovery", "check_ok", "index_ok", "index_consistent",
                    "errors")} | {"snapshot": h2, "missing": len(r.get("missing_files", [])),
                                  "bad_sha256": len(r.get("bad_sha256", []))}  # fmt: skip
            except ValueError:
                self.extra["check"] = {"ok": False, "errors": [MASK(p.stderr)[-500:]]}
        self.save_raw()

    def side_tests(self, snapshot: Path) -> None:
        """With the documents unchanged (writer stopped): what a cold rsync of storage/data costs
        with and without --link-dest when the target is already complete (as after a hot pass),
        and what one near-empty rsync costs run bare."""
        base = ["rsync", "-aHAX", "--numeric-ids", "--delete", "--sparse", "--stats", "--no-h"]
        src = f"{self.folder}/storage/data/"
        prev = str(snapshot / "folder" / "storage" / "data")
        x = self.work / "side-x"
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
            run([*base, f"{self.folder}/.env", f"{self.work}/side-env"])
            times["tiny"].append(time.monotonic() - t)
        files = sum(1 for _ in (self.folder / "storage" / "data").rglob("*"))
        self.extra["side"] = {k: median(v) for k, v in times.items()} | {"files": files}
        rm_tree(x)

    @staticmethod
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

    # -- scaling --------------------------------------------------------------------

    def scaling(self) -> None:
        rows = []
        for n in self.a.scaling:
            base = self.work / f"scale-{n}"
            folder, dest = base / f"scale{n}", base / "dest"
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
            made = time.monotonic() - began
            state = base / "state"
            state.write_text("database\nengine\nkbox\n")
            fake = base / "compose"
            fake.write_text(FAKE_COMPOSE.format(state=shlex.quote(str(state))))
            fake.chmod(0o755)
            env = dict(self.klink_env, KLINK_SYNC_COMPOSE=str(fake))
            argv = self.klink("hot-cold", "--folder", folder, "--dest", dest, "--json")
            run(["sync"])
            log(f"scaling {n}: first run (empty destination)")
            t1, rss1, p1 = timed(argv, env=env)
            first = json.loads(p1.stdout)
            runs = []
            for i in range(self.a.scaling_reps):
                run(["sync"])
                log(f"scaling {n}: unchanged incremental run {i + 1}")
                t, rss, p = timed(argv, env=env)
                rep = json.loads(p.stdout)
                runs.append({"wall": t, "rss_kib": rss, "downtime": rep.get("downtime_seconds"),
                             "phases": rep.get("phases", {}),
                             "checksums_s": (rep.get("checksums") or {}).get("seconds"),
                             "bytes_moved": rep.get("bytes_moved", {})})  # fmt: skip
                log(f"scaling {n}: {t:.1f}s, peak RSS {rss / 1024:.0f} MiB")
            rows.append({"files": n, "create_s": made, "first_wall": t1, "first_rss_kib": rss1,
                         "first_downtime": first.get("downtime_seconds"), "runs": runs})  # fmt: skip
            self.extra["scaling"] = rows
            self.save_raw()
            rm_tree(base)

    # -- teardown -------------------------------------------------------------------

    def teardown(self) -> None:
        if self.poller:
            self.poller.halt.set()
        if self.stack_up and (self.folder / "docker-compose.yml").exists():
            log(f"taking the stack {self.project} down")
            run([self.wrapper, "down", "-v", "-t", "60"], cwd=self.folder, check=False)
        if not self.a.keep:
            rm_tree(self.work)


# ----------------------------------------------------------------- the report


METHODS = [
    ("F", "floor: `stop`, `up -d`, nothing copied"),
    ("P", "guide's plain procedure: `stop`, `cp -a` folder, `up -d`"),
    ("cold", "`klink-sync cold`, empty destination"),
    ("bare-H1", "bare script of klink-sync's commands, empty destination"),
    ("H1", "`klink-sync hot-cold`, empty destination"),
    ("bare-H2", "bare script, incremental after the 1% change"),
    ("H2", "`klink-sync hot-cold`, incremental after the 1% change"),
    ("rsnapshot-1", "rsnapshot, `cmd_preexec` stop / `cmd_postexec` `up -d`, first run"),
    ("rsnapshot-2", "rsnapshot, incremental after the 1% change"),
    ("restic-1", "restic, stack stopped around `restic backup`, new repository"),
    ("restic-2", "restic, incremental after the 1% change"),
]


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


def write_report(b: Bench, out: Path, machine: dict, timing: dict) -> None:
    a = b.a
    res = b.results

    def col(method, key):
        return [r.get(key) for r in res if r["method"] == method]

    def med(method, key="downtime"):
        return median(col(method, key))

    present = [m for m, _ in METHODS if col(m, "downtime")]
    F, P, H1, H2 = (med(m) for m in ("F", "P", "H1", "H2"))
    L = []
    w = L.append
    w("# Benchmarks: downtime of klink-sync, the guide's procedure and peers\n")
    w(f"Produced by `make bench` (`scripts/bench.py {' '.join(sys.argv[1:])}`) on "
      f"{timing['date']}; every number below comes from that one run "
      "(raw data: `raw.json` in the work folder, kept with `--keep`; `--report-from` "
      "writes this file again from it) "
      f"(benchmark runtime {timing['total'] / 60:.0f} min). Regenerate with `make bench`.\n")  # fmt: skip
    w("## Machine\n")
    w(f"- {machine['nproc']} CPUs ({machine['cpu']}), {machine['mem'] / GIB:.1f} GiB memory, "
      f"kernel {machine['kernel']}, {machine['os']}")  # fmt: skip
    w(f"- disk: {machine['disk']}; the work folder, the stack's data and every destination "
      "on that one disk; page cache warm (the data fits in memory, caches were not dropped)")
    w(f"- Docker {machine['docker']}, Compose {machine['compose']}, {machine['rsync']}, "
      f"{machine['restic']}, {machine['rsnapshot']}")  # fmt: skip
    w(f"- klink-sync: working tree at `{machine['git']}` (code copied at the start of the run, "
      f"digest {b.code_digest}: later edits by others did not reach this run)")  # fmt: skip
    w("- **The machine is shared and noisy** (a virtual machine; other work may run on its "
      "host and on it): read min/max, not only medians.\n")
    s0, s1 = b.size_start, getattr(b, "size_end", None)
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
        if r["method"] not in order:
            order.append(r["method"])
    w(f"- repetitions: {a.reps}; every method once per repetition, in this order: "
      + ", ".join(order) + " (the 1% change between the first runs and the incremental ones); "
      f"before each: `sync`, the stack up, then {a.settle:g} s of rest; every destination of a "
      "repetition is removed only at its end (then `sync` and "
      f"{REST_AFTER_CLEANUP} s of rest): a run right after a large delete writes markedly "
      "slower here, and no measured copy follows one\n")

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
      "for P, F and restic the largest of their commands.\n")

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

    def ratio(x, y):
        return x / y if x is not None and y else None

    def fr(x, digits=2):
        return "–" if x is None else f"{x:.{digits}f}"

    w("### Ratios (of median downtimes)\n")
    w("| ratio | value |")
    w("|---|---|")
    rat = {
        "H1/P": ratio(H1, P), "H2/P": ratio(H2, P), "H1/F": ratio(H1, F), "H2/F": ratio(H2, F),
        "(H1−F)/(P−F)": ratio(None if H1 is None or F is None else H1 - F,
                              None if P is None or F is None else P - F),
        "cold/P": ratio(med("cold"), P),
    }  # fmt: skip
    peers = [m for m in ("rsnapshot-1", "rsnapshot-2", "restic-1", "restic-2") if m in present]
    for m in peers:
        rat[f"{m}/H2"] = ratio(med(m), H2)
    for k, v in rat.items():
        w(f"| {k} | {fr(v)} |")
    w("")

    def per_rep_ratio(x, y, key="wall"):
        out = []
        for rep in range(1, a.reps + 1):
            vx = [r[key] for r in res if r["method"] == x and r["rep"] == rep]
            vy = [r[key] for r in res if r["method"] == y and r["rep"] == rep]
            if vx and vy and vy[0]:
                out.append(vx[0] / vy[0])
        return out

    ov1, ov2 = per_rep_ratio("H1", "bare-H1"), per_rep_ratio("H2", "bare-H2")
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

    if col("H3", "downtime"):
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

    # where H2's time goes
    for m in ("H2", "H1"):
        rows = [r for r in res if r["method"] == m and r.get("phases")]
        if not rows:
            continue
        w(f"### Where {m}'s time goes (klink-sync's phase timings, median s)\n")
        phases = []
        for r in rows:
            for k in r["phases"]:
                if k not in phases:
                    phases.append(k)
        w("| phase | seconds | in the downtime |")
        w("|---|---|---|")
        for ph in phases:
            inside = "yes" if ph in ("stop", "cold", "start") else "no"
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
            w(f"| cold pass: `{u}` | {stat3([r['cold_units'].get(u) for r in rows])} | yes |")
        moved = [r.get("bytes_moved", {}) for r in rows]
        w(f"| bytes copied hot / cold | {human(median([x.get('hot') for x in moved]))} / "
          f"{human(median([x.get('cold') for x in moved]))} | |")  # fmt: skip
        rounds = [r.get("hot_rounds") for r in rows]
        if any(rounds):
            w(f"| hot rounds | {', '.join(str(x) for x in rounds)} | |")
        w("")

    sec = b.extra.get("second")
    if sec:
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
    chk = b.extra.get("check")
    if chk:
        w(f"`scripts/sample-stack/check.py snapshot` of the last H2 snapshot ({chk.get('snapshot')}): "
          f"ok={chk.get('ok')}, rows={chk.get('rows')}, crash_recovery={chk.get('crash_recovery')}, "
          f"mariadb-check ok={chk.get('check_ok')}, missing files={chk.get('missing')}, "
          f"bad sha256={chk.get('bad_sha256')}, index ok={chk.get('index_ok')}, "
          f"index consistent={chk.get('index_consistent')}.\n")  # fmt: skip

    sc = b.extra.get("scaling")
    if sc:
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

    # reading the numbers: every value computed from this run's rows
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
    if "rsnapshot-2" in present and H2 is not None:
        st = {m: median(col(m, "stop_to_start")) for m in ("H2", "rsnapshot-2", "bare-H2")}
        an.append(f"From stop to start command (external): H2 {st['H2']:.2f} s, bare-H2 "
                  f"{st['bare-H2']:.2f} s, rsnapshot-2 {st['rsnapshot-2']:.2f} s; from the "
                  f"start command to all up every method takes about the same "
                  f"({median(col('F', 'start_to_up')):.2f} s for F).")  # fmt: skip
    if an:
        w("## Reading the numbers\n")
        for line in an:
            w(f"- {line}")
        w("")

    # acceptance
    w("## Acceptance targets (issue 6)\n")
    w("| target | measured | held |")
    w("|---|---|---|")

    def held(ok):
        return "–" if ok is None else ("**yes**" if ok else "**no**")

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
    for name, what, ok in t:
        w(f"| {name} | {what} | {held(ok)} |")
    w("")
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
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(L))
    log(f"wrote {out}")
    chart(b, out.parent / "downtime.png", present)


def chart(b: Bench, path: Path, methods: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meds, lo, hi = [], [], []
    for m in methods:
        xs = [r["downtime"] for r in b.results if r["method"] == m and r.get("downtime")]
        md = statistics.median(xs)
        meds.append(md)
        lo.append(md - min(xs))
        hi.append(max(xs) - md)
    colors = []
    for m in methods:
        if m in ("H1", "H2", "cold"):
            colors.append("#2b7bba")
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
    ax.set_ylabel("downtime, s (stop → all running + SELECT 1)")
    ax.set_title(f"Downtime per method: median of {b.a.reps}, bars min–max "
                 f"({b.size_start['total'] / GIB:.1f} GiB deployment)")  # fmt: skip
    ax.tick_params(axis="x", rotation=30)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    log(f"wrote {path}")


# ----------------------------------------------------------------- main


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
    ap.add_argument("--no-cuts", dest="cuts", action="store_false",
                    help="skip the runs with one downtime cut turned off at a time")
    ap.add_argument("--quick", action="store_true",
                    help="a small smoke size: 64 MiB in 600 files, 48 MiB database, 1 rep, "
                    "scaling 2000,10000 (explicit options still win)")
    ap.add_argument("--write-rate", type=float, default=15,
                    help="documents/s of the writer (the sample's default: 15)")
    ap.add_argument("--change-percent", type=float, default=1.0,
                    help="percent of the pre-filled documents rewritten before H2 (default 1)")
    ap.add_argument("--settle", type=float, default=5, help="seconds of rest before each method")
    ap.add_argument("--poll-interval", type=float, default=0.05, help="seconds between probes")
    ap.add_argument("--compose", default="docker compose", help="compose command")
    ap.add_argument("--work-dir", default=None,
                    help="where the deployment and destinations go (default /var/tmp/klink-bench-PID)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--no-check", dest="check", action="store_false",
                    help="skip check.py on the last H2 snapshot")
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--report-from", metavar="RAW_JSON",
                    help="only write the report (and chart) again from a finished run's raw.json")
    a = ap.parse_args(argv)
    q = a.quick
    a.docs_gib = a.docs_gib if a.docs_gib is not None else (1 / 16 if q else 2.0)
    a.files = a.files if a.files is not None else (600 if q else 20000)
    a.db_mib = a.db_mib if a.db_mib is not None else (48 if q else 500)
    a.reps = a.reps if a.reps is not None else (1 if q else 3)
    sc = a.scaling if a.scaling is not None else ("2000,10000" if q else "10000,100000,1000000")
    a.scaling = [] if sc == "none" else [int(x) for x in sc.split(",") if x.strip()]
    a.work_dir = a.work_dir or f"/var/tmp/klink-bench-{os.getpid()}"
    if a.reps < 1:
        ap.error("--reps must be at least 1")
    return a


def report_from(raw_path: Path, out: Path) -> int:
    """The report of a finished run again, from its raw.json (nothing is measured)."""
    raw = json.loads(raw_path.read_text())
    from types import SimpleNamespace

    b = SimpleNamespace(
        a=argparse.Namespace(**raw["args"]), results=raw["results"], extra=raw["extra"],
        notes=raw["notes"], size_start=raw["size_start"], size_end=raw["size_end"],
        code_digest=raw["code_digest"], probe_period=raw["probe_period_median"],
    )  # fmt: skip
    sys.argv[1:] = raw["argv"]
    write_report(b, out, raw["machine"], raw["timing"])
    return 0


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.report_from:
        return report_from(Path(a.report_from), Path(a.out))
    if os.geteuid() != 0:
        print("bench.py: run as root (Docker, numeric owners)", file=sys.stderr)
        return 2
    for tool in ("rsync", "/usr/bin/time", "docker") + (() if a.skip_peers else ("rsnapshot", "restic")):
        if not shutil.which(tool):
            print(f"bench.py: {tool} is missing (scripts/install-deps.sh)", file=sys.stderr)
            return 2

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    b = Bench(a)
    timing = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    t0 = time.monotonic()
    try:
        machine = machine_info(Path("/var/tmp") if not Path(a.work_dir).exists() else Path(a.work_dir))
        t = time.monotonic()
        b.setup()
        timing["setup (deployment, fill)"] = time.monotonic() - t
        t = time.monotonic()
        b.repetitions()
        timing["repetitions"] = time.monotonic() - t
        t = time.monotonic()
        b.second_snapshot()
        b.size_end = b.deployment_size()
        timing["second snapshot, verify, check"] = time.monotonic() - t
        b.teardown_stack = True
        if b.poller:
            b.poller.halt.set()
        run([b.wrapper, "down", "-v", "-t", "60"], cwd=b.folder, check=False)
        b.stack_up = False
        rm_tree(b.folder)
        for sub in b.work.glob("r*"):
            rm_tree(sub)
        t = time.monotonic()
        if a.scaling:
            b.scaling()
        timing["scaling"] = time.monotonic() - t
        timing["total"] = time.monotonic() - t0
        b.save_raw(machine, timing)
        b.probe_period = median(b.poller.periods) if b.poller else None
        write_report(b, Path(a.out), machine, timing)
        return 0
    except (BenchError, KeyboardInterrupt) as exc:
        log(f"failed: {MASK(str(exc))}")
        return 1
    finally:
        b.teardown()


if __name__ == "__main__":
    sys.exit(main())
