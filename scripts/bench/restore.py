"""Restoring a database, physical against logical (issue 15): the time from a backup to a
server answering `SELECT COUNT(*) FROM documents`.

  physical  a snapshot's database folder (live: mariadb-backup's prepared datadir) copied
            (`cp -a`) into an empty folder, the database image started on it
  logical   the dump other tools take (`mariadb-dump --single-transaction`, as borgmatic
            and stack-back do; taken once, outside the timing), imported into an empty
            server the same image initialises in a throwaway container

Every server: `docker run`, no network (as klink_sync/dbcheck.py starts one), its datadir a
folder in the work folder (same disk), removed on every path. Queries go through
`docker exec` with the password from the container's own environment (an env file, 0600):
never on a command line."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

from .common import MASK, BenchError, rm_tree, run
from .stack import Stack

LABEL = "klink-bench.restore=1"  # finds a container a killed run left behind
DATADIR = "/var/lib/mysql"
IMAGE = "klink-sample/database:latest"
COUNT = "SELECT COUNT(*) FROM documents"
# the password from the container's environment; the database named by it too
SQL = 'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mariadb -uroot -N -B -D "$MYSQL_DATABASE" "$@"'
DUMP = ('MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mariadb-dump -uroot --single-transaction '
        '--databases "$MYSQL_DATABASE"')  # fmt: skip
START_TIMEOUT = 600


def env_file(s: Stack) -> Path:
    """The throwaway servers' environment (what the image's entrypoint initialises an empty
    datadir with), mode 0600."""
    path = s.work / "restore.env"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"MYSQL_ROOT_PASSWORD={s.env['DB_ROOT_PASSWORD']}\n"
                    f"MYSQL_DATABASE={s.env['DB_NAME']}\nMYSQL_USER={s.env['DB_USER']}\n"
                    f"MYSQL_PASSWORD={s.env['DB_PASSWORD']}\n")  # fmt: skip
    return path


def snapshot_database(snapshot: Path) -> tuple[Path, str]:
    """The database folder of a snapshot and the image of its service, from its manifest."""
    manifest = json.loads((snapshot / "manifest.json").read_text())
    for v in manifest.get("volumes", []):
        if v.get("target", "").rstrip("/") != DATADIR:
            continue
        for u in manifest.get("units", []):
            src = u.get("source", "")
            if src == v.get("source"):
                return snapshot / u["dest"], v.get("image") or IMAGE
            if u.get("type") == "bind" and v.get("source", "").startswith(src.rstrip("/") + "/"):
                rel = os.path.relpath(v["source"], src)
                return snapshot / u["dest"] / rel, v.get("image") or IMAGE
    raise BenchError(f"{snapshot}: no database volume in its manifest")


def dump(s: Stack, out: Path) -> dict:
    """`mariadb-dump --single-transaction` of the bench's database (running) into out."""
    began = time.monotonic()
    with open(out, "wb") as f:
        p = subprocess.run([str(s.wrapper), "exec", "-T", "database", "sh", "-c", DUMP],
                           cwd=s.folder, stdout=f, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, timeout=3600)  # fmt: skip
    if p.returncode != 0:
        raise BenchError(f"mariadb-dump exited {p.returncode}: {MASK(p.stderr.decode())[-2000:]}")
    return {"seconds": time.monotonic() - began, "bytes": out.stat().st_size}


class Server:
    """A throwaway MariaDB container on a datadir folder: no network, removed on exit."""

    def __init__(self, image: str, datadir: Path, envf: Path):
        self.image, self.datadir, self.envf = image, datadir, envf
        self.name = f"klink-bench-restore-{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> Server:
        run(["docker", "run", "-d", "--name", self.name, "--label", LABEL, "--network", "none",
             "--env-file", self.envf, "-v", f"{self.datadir}:{DATADIR}", self.image])  # fmt: skip
        return self

    def __exit__(self, *exc) -> None:
        run(["docker", "rm", "-f", "-v", self.name], check=False)

    def sql(self, *args, stdin=None, timeout=3600) -> subprocess.CompletedProcess:
        flags = ["-i"] if stdin is not None else []
        return subprocess.run(["docker", "exec", *flags, self.name, "sh", "-c", SQL, "sh",
                               *args], stdin=stdin if stdin is not None else subprocess.DEVNULL,
                              capture_output=True, timeout=timeout)  # fmt: skip

    def answer(self, query: str, timeout: float = START_TIMEOUT) -> str:
        """The query's answer, asked every 0.1 s until the server gives one."""
        deadline = time.monotonic() + timeout
        while True:
            p = self.sql("-e", query, timeout=60)
            if p.returncode == 0:
                return p.stdout.decode().strip()
            state = run(["docker", "inspect", "-f", "{{.State.Running}}", self.name],
                        check=False).stdout.strip()  # fmt: skip
            if state != "true" or time.monotonic() > deadline:
                logs = run(["docker", "logs", "--tail", "20", self.name], check=False)
                raise BenchError(f"restore server {self.image} on {self.datadir}: no answer "
                                 f"(running: {state}): {MASK(logs.stderr + logs.stdout)[-1500:]}")
            time.sleep(0.1)


def physical(datadir: Path, image: str, envf: Path, scratch: Path) -> dict:
    """The snapshot's datadir copied into an empty folder, a server started on it, until it
    answers the count."""
    rm_tree(scratch)
    scratch.mkdir(parents=True)
    began = time.monotonic()
    run(["cp", "-a", datadir, scratch / "datadir"])
    copied = time.monotonic()
    try:
        with Server(image, scratch / "datadir", envf) as srv:
            rows = srv.answer(COUNT)
            ended = time.monotonic()
    finally:
        rm_tree(scratch)
    return {"seconds": ended - began, "copy_s": copied - began, "start_s": ended - copied,
            "rows": int(rows)}  # fmt: skip


def logical(dump_file: Path, image: str, envf: Path, scratch: Path) -> dict:
    """An empty server initialised in a throwaway container, the dump imported, until it
    answers the count."""
    rm_tree(scratch)
    (scratch / "datadir").mkdir(parents=True)
    began = time.monotonic()
    try:
        with Server(image, scratch / "datadir", envf) as srv:
            srv.answer("SELECT 1")
            ready = time.monotonic()
            with open(dump_file, "rb") as f:
                p = srv.sql(stdin=f)
            if p.returncode != 0:
                raise BenchError(f"importing the dump exited {p.returncode}: "
                                 f"{MASK(p.stderr.decode())[-1500:]}")  # fmt: skip
            imported = time.monotonic()
            rows = srv.answer(COUNT)
            ended = time.monotonic()
    finally:
        rm_tree(scratch)
    return {"seconds": ended - began, "server_s": ready - began, "import_s": imported - ready,
            "rows": int(rows)}  # fmt: skip

