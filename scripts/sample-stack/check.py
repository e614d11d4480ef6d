#!/usr/bin/env python3
"""Check the sample stack's data: a test fixture, not part of klink-sync.

Python 3 standard library only; runs on the host as root and drives Docker
through subprocess. Images: klink-sample/database:latest, klink-sample/app:latest
(scripts/sample-stack/build.sh).

  check.py snapshot FOLDER [--json] [--ids]
      FOLDER: a restored setup folder, or a snapshot's folder/ directory
      (holding .env, storage/database, storage/data, storage/index).
      Starts a throwaway MariaDB (no network) on a `cp -a` copy of
      storage/database and reports whether it starts, whether InnoDB had to
      recover from a crash, what `mariadb-check --all-databases` says, the
      rows of `documents`, whether every row's file exists under
      storage/data with that sha256, and whether the Xapian index under
      storage/index opens. Exit 0 when all is well, 1 when not.
      --crash-ok: the copy is crash-consistent (hot-cold --pause): crash
      recovery is expected, and the one document the writer's
      storage/data/rewrite-intent names may differ from its row.

  check.py live FOLDER [--compose "docker compose"] [--before "YYYY-mm-dd HH:MM:SS.ffffff"] [--ids]
      Asks the RUNNING stack of FOLDER (`<compose> exec -T database mariadb`)
      for the ids of `documents`, only those with created_at < --before (UTC)
      when given. Prints JSON {"rows", "max_id", "ids_sha"}.

ids_sha is the sha256 of the ids sorted ascending, each written in decimal
followed by "\\n" (see ids_digest()), so two id sets compare by their digests.

As a module: check_snapshot(folder) -> dict, live_rows(folder, compose_cmd,
before=None) -> dict (both dicts also hold "ids", the sorted id list).

The root password is read from FOLDER/.env (DB_ROOT_PASSWORD, or
MYSQL_ROOT_PASSWORD). It reaches containers through the environment, never a
command line, and is masked in everything this script returns or prints.
"""

import argparse
import datetime
import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DB_IMAGE = os.environ.get("KLINK_SAMPLE_DB_IMAGE", "klink-sample/database:latest")
APP_IMAGE = os.environ.get("KLINK_SAMPLE_APP_IMAGE", "klink-sample/app:latest")
DOCKER = os.environ.get("KLINK_SAMPLE_DOCKER", "docker")

# What MariaDB 10.11 logs when its datadir was not shut down cleanly
# (InnoDB redo apply, Aria recovery, crashed MyISAM/Aria tables).
RECOVERY_PATTERNS = [
    re.compile(p, re.I)
    for p in (
        r"crash recovery",
        r"InnoDB: To recover: \d+ pages",
        r"Starting final batch to recover",
        r"not shut ?down normally",
        r"Recovering after a crash",
        r"Aria engine: starting recovery",
        r"marked as crashed",
        r"InnoDB: Database was not shut ?down normally",
    )
]
CHECK_BAD = re.compile(r"^\s*(error|corrupt)|corrupt|crashed|doesn't exist", re.I)
CHECK_WARN = re.compile(r"^\s*warning\s*:", re.I)
BEFORE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?$")


class CheckError(Exception):
    """A check could not be carried out (not: the data is bad)."""


# --------------------------------------------------------------- helpers


def ids_digest(ids):
    """sha256 of the sorted ids, each as decimal + "\\n"."""
    h = hashlib.sha256()
    for i in sorted(int(x) for x in ids):
        h.update(b"%d\n" % i)
    return h.hexdigest()


def read_env(path):
    """KEY=VALUE lines of a compose .env file (quotes stripped, comments ignored)."""
    env = {}
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return env
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export "):]
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


class Masker:
    def __init__(self, *secret_values):
        self.values = sorted({s for s in secret_values if s}, key=len, reverse=True)

    def __call__(self, text):
        if not isinstance(text, str):
            return text
        for s in self.values:
            text = text.replace(s, "********")
        return text


def run(argv, env=None, cwd=None, timeout=120, check=False, mask=None):
    try:
        p = subprocess.run(argv, env=env, cwd=cwd, timeout=timeout, text=True,
                           capture_output=True, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        what = " ".join(argv[:2])
        raise CheckError(f"timed out after {timeout} s: {what}") from None
    if check and p.returncode != 0:
        msg = (p.stderr or p.stdout).strip()
        if mask:
            msg = mask(msg)
        raise CheckError(f"{' '.join(argv[:3])} ... exited {p.returncode}: {msg[-2000:]}")
    return p


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _signals_to_exit():
    """SIGTERM/SIGHUP raise SystemExit, so the finally clauses clean up."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, handler)


# --------------------------------------------------------------- snapshot


def _mariadb_args(db=None):
    args = ["mariadb", "-uroot", "-N", "-B"]
    if db:
        args += ["-D", db]
    return args


def _wait_for_server(name, env, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = run([DOCKER, "inspect", "-f", "{{.State.Running}}", name], timeout=30)
        if st.returncode != 0 or st.stdout.strip() != "true":
            return False
        p = run([DOCKER, "exec", "-e", "MYSQL_PWD", name] + _mariadb_args() + ["-e", "SELECT 1"],
                env=env, timeout=30)
        if p.returncode == 0 and p.stdout.strip() == "1":
            return True
        time.sleep(0.5)
    return False


def _check_index(index_root, result, mask):
    xapian_dir = index_root / "xapian"
    if not xapian_dir.is_dir():
        result["errors"].append(f"no Xapian index at {xapian_dir}")
        return
    code = (
        "import json, xapian\n"
        "db = xapian.Database('/idx')\n"
        "last = db.get_metadata('last_id')\n"
        "last = last.decode() if isinstance(last, bytes) else last\n"
        "print(json.dumps({'docs': db.get_doccount(), 'last_id': int(last) if last else None}))\n"
        "db.close()\n"
    )
    p = run([DOCKER, "run", "--rm", "--network", "none", "--label", "klink-sample.check=1",
             "-v", f"{xapian_dir}:/idx:ro", APP_IMAGE, "python3", "-c", code], timeout=120)
    if p.returncode != 0:
        result["errors"].append("Xapian index does not open: " + mask(p.stderr.strip())[-1000:])
        return
    info = json.loads(p.stdout.strip().splitlines()[-1])
    result["index_ok"] = True
    result["index_docs"] = info["docs"]
    result["index_last_id"] = info["last_id"]


def compare_files(data, rows, crash_ok=False):
    """Every row's file under DATA against the row's size and sha256. A crash-consistent
    copy (crash_ok) may hold the one rewrite the writer had begun and not committed: the
    document its DATA/rewrite-intent names is then reported as "rewrite_in_flight", not
    as bad. Any other difference, or that one when not crash_ok, is "bad_sha256"."""
    found = {"missing_files": [], "bad_sha256": [], "rewrite_in_flight": None}
    intent = data / "rewrite-intent"
    begun = intent.read_text().strip() if crash_ok and intent.is_file() else None
    for _id, rel, size, sha, _ in rows:
        path = data / rel
        if rel.startswith("/") or ".." in Path(rel).parts or not path.is_file():
            found["missing_files"].append(rel)
            continue
        try:
            differs = path.stat().st_size != size or sha256_file(path) != sha
        except OSError:
            found["missing_files"].append(rel)
            continue
        if differs and rel == begun:
            found["rewrite_in_flight"] = rel
        elif differs:
            found["bad_sha256"].append(rel)
    return found


def check_snapshot(folder, timeout=180, crash_ok=False):
    """Check a setup folder's data (see the module doc). Returns a dict; "ok"
    says whether everything is fine. Never raises for bad data; raises
    CheckError only when FOLDER is unusable or Docker fails."""
    folder = Path(folder).resolve()
    storage = folder / "storage"
    env_file = read_env(folder / ".env")
    root_pw = env_file.get("DB_ROOT_PASSWORD") or env_file.get("MYSQL_ROOT_PASSWORD")
    db_name = env_file.get("DB_NAME") or env_file.get("MYSQL_DATABASE") or "dms"
    mask = Masker(root_pw, env_file.get("DB_PASSWORD"), env_file.get("MYSQL_PASSWORD"))

    r = {
        "folder": str(folder),
        "ok": False,
        "server_started": False,
        "crash_recovery": False,
        "recovery_lines": [],
        "check_ok": False,
        "check_output": "",
        "check_warnings": [],
        "rows": None,
        "max_id": None,
        "ids_sha": None,
        "max_created_at": None,
        "missing_files": [],
        "bad_sha256": [],
        "rewrite_in_flight": None,
        "index_ok": False,
        "index_docs": None,
        "index_last_id": None,
        "index_consistent": False,
        "errors": [],
        "ids": [],
    }
    if not root_pw:
        raise CheckError(f"no DB_ROOT_PASSWORD in {folder / '.env'}")
    if not (storage / "database").is_dir():
        raise CheckError(f"no {storage / 'database'}")

    env = dict(os.environ, MYSQL_PWD=root_pw, MYSQL_ROOT_PASSWORD=root_pw)
    name = f"klink-check-{os.getpid()}-{secrets.token_hex(4)}"
    tmp = Path(tempfile.mkdtemp(prefix="klink-check-"))
    rows = []
    try:
        copy = tmp / "database"
        run(["cp", "-a", "--", str(storage / "database"), str(copy)], check=True, timeout=600)
        run([DOCKER, "run", "-d", "--name", name, "--network", "none",
             "--label", "klink-sample.check=1", "-e", "MYSQL_ROOT_PASSWORD",
             "-v", f"{copy}:/var/lib/mysql", DB_IMAGE],
            env=env, check=True, mask=mask, timeout=120)
        r["server_started"] = _wait_for_server(name, env, timeout)

        if r["server_started"]:
            sql = ("SET time_zone = '+00:00'; SELECT id, path, size, sha256, "
                   "DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:%s.%f') FROM documents ORDER BY id")
            p = run([DOCKER, "exec", "-e", "MYSQL_PWD", name] + _mariadb_args(db_name) + ["-e", sql],
                    env=env, timeout=300)
            if p.returncode != 0:
                r["errors"].append("query of documents failed: " + mask(p.stderr.strip()))
            else:
                for line in p.stdout.splitlines():
                    if line:
                        i, path, size, sha, created = line.split("\t")
                        rows.append((int(i), path, int(size), sha, created))
                ids = [row[0] for row in rows]
                r["rows"] = len(rows)
                r["max_id"] = max(ids) if ids else None
                r["ids_sha"] = ids_digest(ids)
                r["ids"] = ids
                r["max_created_at"] = max((row[4] for row in rows), default=None)

            p = run([DOCKER, "exec", "-e", "MYSQL_PWD", name,
                     "mariadb-check", "-uroot", "--all-databases"], env=env, timeout=600)
            out = mask((p.stdout + p.stderr).strip())
            r["check_output"] = out
            bad = [ln for ln in out.splitlines() if CHECK_BAD.search(ln)]
            r["check_warnings"] = [ln for ln in out.splitlines() if CHECK_WARN.search(ln)]
            r["check_ok"] = p.returncode == 0 and not bad
            if bad:
                r["errors"].append(f"mariadb-check: {len(bad)} problem line(s)")
            elif p.returncode != 0:
                r["errors"].append(f"mariadb-check exited {p.returncode}")
        else:
            r["errors"].append(f"the server did not start or answer within {timeout} s")

        logs = run([DOCKER, "logs", name], timeout=60)
        log_lines = mask(logs.stdout + logs.stderr).splitlines()
        r["recovery_lines"] = [ln for ln in log_lines if any(p.search(ln) for p in RECOVERY_PATTERNS)]
        r["crash_recovery"] = bool(r["recovery_lines"])
        if not r["server_started"]:
            r["server_log_tail"] = log_lines[-30:]
    finally:
        run([DOCKER, "rm", "-f", "-v", name], timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)

    r.update(compare_files(storage / "data", rows, crash_ok))
    if r["missing_files"]:
        r["errors"].append(f"{len(r['missing_files'])} row(s) without their file")
    if r["bad_sha256"]:
        r["errors"].append(f"{len(r['bad_sha256'])} file(s) whose content differs from its row")

    _check_index(storage / "index", r, mask)
    if r["index_ok"]:
        last = r["index_last_id"] or 0
        r["index_consistent"] = last <= (r["max_id"] or 0)
        if not r["index_consistent"]:
            r["errors"].append(f"index is ahead of the database (last id {last}, max id {r['max_id']})")
    if r["crash_recovery"] and not crash_ok:
        r["errors"].append("the database needed crash recovery (copied while running?)")

    r["ok"] = (r["server_started"] and (crash_ok or not r["crash_recovery"]) and r["check_ok"]
               and r["rows"] is not None and not r["missing_files"] and not r["bad_sha256"]
               and r["index_ok"] and r["index_consistent"])
    return r


# --------------------------------------------------------------- live

LIVE_SCRIPT = 'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mariadb -uroot -N -B -D "$MYSQL_DATABASE" -e "$1"'


def _before_text(before):
    if before is None:
        return None
    if isinstance(before, datetime.datetime):
        if before.tzinfo is not None:
            before = before.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return before.strftime("%Y-%m-%d %H:%M:%S.%f")
    before = str(before).strip()
    if not BEFORE_RE.match(before):
        raise CheckError(f"--before must look like 'YYYY-mm-dd HH:MM:SS.ffffff' (UTC), not {before!r}")
    return before.replace("T", " ")


def live_rows(folder, compose_cmd="docker compose", before=None):
    """Ids of `documents` in the running stack of FOLDER, only rows with
    created_at < before (UTC; str or datetime) when given."""
    folder = Path(folder).resolve()
    compose = shlex.split(compose_cmd) if isinstance(compose_cmd, str) else list(compose_cmd)
    before = _before_text(before)
    sql = "SET time_zone = '+00:00'; SELECT id FROM documents"
    if before:
        sql += f" WHERE created_at < '{before}'"
    sql += " ORDER BY id"
    env_file = read_env(folder / ".env")
    mask = Masker(env_file.get("DB_ROOT_PASSWORD"), env_file.get("DB_PASSWORD"),
                  env_file.get("MYSQL_ROOT_PASSWORD"), env_file.get("MYSQL_PASSWORD"))
    p = run(compose + ["exec", "-T", "database", "sh", "-c", LIVE_SCRIPT, "sh", sql],
            cwd=str(folder), timeout=120, check=True, mask=mask)
    ids = [int(x) for x in p.stdout.split()]
    return {"rows": len(ids), "max_id": max(ids) if ids else None,
            "ids_sha": ids_digest(ids), "before": before, "ids": ids}


# --------------------------------------------------------------- CLI


def _print_text(r):
    keys = ("ok", "server_started", "crash_recovery", "check_ok", "rows", "max_id", "ids_sha",
            "max_created_at", "index_ok", "index_docs", "index_last_id", "index_consistent")
    for k in keys:
        print(f"{k}: {json.dumps(r[k])}")
    print(f"missing_files: {len(r['missing_files'])}")
    for p in r["missing_files"][:20]:
        print(f"  {p}")
    print(f"bad_sha256: {len(r['bad_sha256'])}")
    for p in r["bad_sha256"][:20]:
        print(f"  {p}")
    for ln in r["recovery_lines"]:
        print(f"recovery: {ln}")
    for ln in r["check_output"].splitlines():
        if CHECK_BAD.search(ln) or CHECK_WARN.search(ln):
            print(f"mariadb-check: {ln}")
    for ln in r.get("server_log_tail", []):
        print(f"server log: {ln}")
    for e in r["errors"]:
        print(f"error: {e}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("snapshot", help="check a stopped/restored/snapshot folder")
    s.add_argument("folder")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--ids", action="store_true", help="include the id list in the JSON")
    s.add_argument("--timeout", type=float, default=180, help="seconds to wait for the server")
    s.add_argument("--crash-ok", action="store_true",
                   help="a crash-consistent copy (hot-cold --pause): crash recovery and the "
                   "one rewrite named by rewrite-intent expected")
    lv = sub.add_parser("live", help="query the running stack of a folder")
    lv.add_argument("folder")
    lv.add_argument("--compose", default=os.environ.get("KLINK_SYNC_COMPOSE", "docker compose"))
    lv.add_argument("--before", help="UTC 'YYYY-mm-dd HH:MM:SS.ffffff': only rows created before")
    lv.add_argument("--ids", action="store_true", help="include the id list in the JSON")
    a = ap.parse_args(argv)
    _signals_to_exit()
    try:
        if a.mode == "snapshot":
            r = check_snapshot(a.folder, timeout=a.timeout, crash_ok=a.crash_ok)
            if not a.ids:
                r.pop("ids")
            if a.json:
                print(json.dumps(r, indent=2))
            else:
                _print_text(r)
            return 0 if r["ok"] else 1
        r = live_rows(a.folder, a.compose, a.before)
        if not a.ids:
            r.pop("ids")
        print(json.dumps(r, indent=2))
        return 0
    except CheckError as e:
        print(f"check.py: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
