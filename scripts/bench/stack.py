"""The deployment measured: the sample stack in a work folder of its own (Compose project
bench-<pid>), filled to size, and the commands that reach it (compose, SQL, klink-sync)."""

from __future__ import annotations

import compileall
import hashlib
import os
import random
import re
import shlex
import shutil
import sys
import time
import uuid
from pathlib import Path

from .common import GIB, MASK, MIB, ROOT, SAMPLE, BenchError, du_bytes, log, read_env, rm_tree, run
from .probe import WRAPPER, Events


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


def write_new(path: Path, data: bytes, owner: int | None = None) -> None:
    """Write a file that must not exist yet (mode 0640, owned by `owner` when given)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        os.write(fd, data)
        if owner is not None:
            os.fchown(fd, owner, owner)
    finally:
        os.close(fd)


class Stack:
    def __init__(self, args):
        self.a = args
        self.work = Path(args.work_dir).resolve()
        self.project = f"bench-{os.getpid()}"
        self.folder = self.work / self.project
        self.events: Events | None = None
        self.rng = random.Random(args.seed)
        self.prefilled: list[tuple[str, int]] = []  # (relative path, size)
        self.prefilled_last_id = 0  # the last pre-filled document's row: the writer's follow
        self.stack_up = False
        self.code_digest = ""

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

    def prepare(self) -> None:
        """Everything before the stack starts: work folder, code copy, wrapper, documents."""
        self.check_space()
        self.copy_code()
        self.write_wrapper()
        self.copy_deploy()
        self.prefill_documents()

    def check_space(self) -> None:
        a = self.a
        self.work.mkdir(parents=True, exist_ok=True)
        os.chmod(self.work, 0o700)
        need = int((a.docs_gib * GIB + a.db_mib * MIB) * 13 + 4 * GIB)  # a repetition's copies
        free = shutil.disk_usage(self.work).free
        if free < need:
            raise BenchError(f"{self.work}: {free / GIB:.1f} GiB free, the run needs about "
                             f"{need / GIB:.1f} GiB (--work-dir elsewhere or smaller sizes)")  # fmt: skip

    def copy_code(self) -> None:
        """The code measured: a copy of klink_sync as it is now (others may edit the tree)."""
        shutil.copytree(ROOT / "klink_sync", self.work / "code" / "klink_sync",
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        # byte-compiled once, as `pip install` leaves an installed tool: with
        # PYTHONDONTWRITEBYTECODE set, every command would otherwise compile it all again
        compileall.compile_dir(self.work / "code", quiet=1)
        self.code_digest = hashlib.sha256(
            b"".join(p.read_bytes() for p in sorted((self.work / "code").rglob("*.py")))
        ).hexdigest()[:12]

    def write_wrapper(self) -> None:
        self.events = Events(self.work / "events")
        self.wrapper.write_text(WRAPPER.format(events=shlex.quote(str(self.events.path)),
                                               compose=self.a.compose))  # fmt: skip
        self.wrapper.chmod(0o755)

    def copy_deploy(self) -> None:
        """The sample's deploy folder, the writer's rate set, its passwords masked."""
        shutil.copytree(SAMPLE / "deploy", self.folder)
        env_file = self.folder / ".env"
        text = env_file.read_text()
        text = re.sub(r"^WRITE_RATE=.*$", f"WRITE_RATE={self.a.write_rate:g}", text, flags=re.M)
        env_file.write_text(text)
        self.env = read_env(env_file)
        self.root_pw = self.env.get("DB_ROOT_PASSWORD") or ""
        MASK.add(self.root_pw, self.env.get("DB_PASSWORD"))
        if not self.root_pw:
            raise BenchError("no DB_ROOT_PASSWORD in the sample deploy's .env")

    def start(self) -> None:
        log(f"starting the stack {self.project} in {self.folder}")
        self.compose("up", "-d", timeout=900)
        self.stack_up = True

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
            write_new(docs.parent / rel, data, owner=33)
            rows.append((rel, size, hashlib.sha256(data).hexdigest()))
        self.prefilled = [(r[0], r[1]) for r in rows]
        self._rows = rows
        log(f"documents written in {time.monotonic() - began:.0f}s")

    def fill_database(self) -> None:
        """The pre-filled documents' rows, then a filler table up to --db-mib on disk."""
        self.insert_document_rows()
        dbdir = self.folder / "storage" / "database"
        self.sql("CREATE TABLE IF NOT EXISTS filler (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
                 "pad LONGBLOB NOT NULL) ENGINE=InnoDB;")  # fmt: skip
        target = self.a.db_mib * MIB
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

    def insert_document_rows(self) -> None:
        log(f"inserting {len(self._rows)} rows for the pre-filled documents")
        for i in range(0, len(self._rows), 2000):
            chunk = self._rows[i:i + 2000]
            values = ",".join(f"('{p}',{s},'{h}')" for p, s, h in chunk)
            self.sql(f"INSERT INTO documents (path, size, sha256) VALUES {values};")
        del self._rows
        self.prefilled_last_id = int(self.sql("SELECT COALESCE(MAX(id), 0) FROM documents;"))

    def trim_to_prefilled(self) -> int:
        """The documents the writer added since the setup removed, rows and files, the
        writer stopped meanwhile: every repetition starts from the deployment the report
        describes, not from one the runs before grew (the writer adds WRITE_RATE documents a
        second, all through the bench). Returns how many went."""
        after = f"FROM documents WHERE id > {self.prefilled_last_id}"
        self.compose("stop", "kbox")
        try:
            paths = self.sql(f"SELECT path {after};").split()
            self.sql(f"DELETE {after};")  # rows first: never a row whose file is gone
            data = self.folder / "storage" / "data"
            for rel in paths:
                (data / rel).unlink(missing_ok=True)
        finally:
            self.compose("start", "kbox")
        return len(paths)

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

    # -- teardown -------------------------------------------------------------------

    def down(self) -> None:
        """The stack down (volumes too); its folder stays."""
        run([self.wrapper, "down", "-v", "-t", "60"], cwd=self.folder, check=False)
        self.stack_up = False

    def teardown(self) -> None:
        if self.stack_up and (self.folder / "docker-compose.yml").exists():
            log(f"taking the stack {self.project} down")
            self.down()
        if not self.a.keep:
            rm_tree(self.work)
