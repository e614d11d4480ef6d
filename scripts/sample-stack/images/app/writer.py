#!/usr/bin/env python3
"""The "kbox" service of the sample stack: writes documents and their rows.

Forever, about WRITE_RATE times a second:
  1. write a new file of random content (1 KiB .. 256 KiB, BIG_FRACTION of
     them 1 .. 3 MiB) at $STORAGE_DIR/documents/<uuid>.bin, fsync it;
  2. INSERT its row (path relative to $STORAGE_DIR, size, sha256), COMMIT.
About every REWRITE_INTERVAL seconds, rewrite one existing document in place
with new random content of the same size (fsync), then UPDATE its row's
sha256, COMMIT. With REWRITE_KEEP_MTIME=1 the old mtime is put back after the
rewrite (what rsync's quick check cannot see).

A committed row therefore always names a file completely written with that
sha256. SIGTERM: the current file + row pair is finished, then exit 0.
"""

import hashlib
import os
import random
import time
import uuid

import pymysql
from common import Stop, connect, drop_privileges, log

NAME = "writer"
STORAGE = os.environ.get("STORAGE_DIR", "/var/www/dms/storage")
DOCS = "documents"
RATE = float(os.environ.get("WRITE_RATE", "15"))
REWRITE_INTERVAL = float(os.environ.get("REWRITE_INTERVAL", "1"))
BIG_FRACTION = float(os.environ.get("BIG_FRACTION", "0.01"))
KEEP_MTIME = os.environ.get("REWRITE_KEEP_MTIME", "0") == "1"
RUN_AS = os.environ.get("RUN_AS", "33:33")  # www-data, as in the K-Box image

DB_ERRORS = (pymysql.err.MySQLError,)  # any: drop the connection, reconnect


def random_size():
    if random.random() < BIG_FRACTION:
        return random.randint(1 << 20, 3 << 20)
    return int(2 ** random.uniform(10, 18))  # 1 KiB .. 256 KiB, log-uniform


def write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_document():
    """Write a new document file; return (relative path, size, sha256)."""
    size = random_size()
    data = os.urandom(size)
    rel = f"{DOCS}/{uuid.uuid4().hex}.bin"
    fd = os.open(os.path.join(STORAGE, rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(os.path.join(STORAGE, DOCS))
    return rel, size, hashlib.sha256(data).hexdigest()


def rewrite_document(rel, size):
    """Rewrite an existing file in place, same size; return the new sha256."""
    path = os.path.join(STORAGE, rel)
    before = os.stat(path)
    if before.st_size != size:
        raise RuntimeError(f"{rel}: size {before.st_size} on disk, {size} in its row")
    data = os.urandom(size)
    fd = os.open(path, os.O_WRONLY)
    try:
        write_all(fd, data)
        if KEEP_MTIME:
            os.utime(fd, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.fsync(fd)
    finally:
        os.close(fd)
    return hashlib.sha256(data).hexdigest()


class Writer:
    def __init__(self, stop):
        self.stop = stop
        self.conn = None
        self.created = 0
        self.rewritten = 0

    def db(self, must_finish=False):
        if self.conn is None:
            self.conn = connect(NAME, self.stop, autocommit=False, must_finish=must_finish)
        return self.conn

    def drop_connection(self, err):
        log(NAME, f"database error: {err}; reconnecting")
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = None

    def commit_sql(self, sql, args, must_finish):
        """Run one statement and COMMIT; True when committed. With must_finish
        (a file on disk already differs from its committed row) retry through
        reconnects, even while stopping, for a while."""
        for _ in range(30 if must_finish else 1):
            conn = self.db(must_finish)
            if conn is None:
                return False
            try:
                with conn.cursor() as cur:
                    cur.execute(sql, args)
                conn.commit()
                return True
            except DB_ERRORS as e:
                self.drop_connection(e)
                if must_finish:
                    time.sleep(1)
        return False

    def create_one(self):
        rel, size, sha = create_document()
        ok = self.commit_sql(
            "INSERT INTO documents (path, size, sha256) VALUES (%s, %s, %s)",
            (rel, size, sha), must_finish=False)
        if ok:
            self.created += 1
        # else: the file stays, maybe without a row (harmless, like an upload
        # cut short). It is not removed: when the connection broke during
        # COMMIT, the row may have been committed after all.

    def rewrite_one(self):
        conn = self.db()
        if conn is None:
            return
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT MAX(id) FROM documents")
                (max_id,) = cur.fetchone()
                if not max_id:
                    conn.commit()
                    return
                cur.execute(
                    "SELECT id, path, size FROM documents WHERE id >= %s ORDER BY id LIMIT 1",
                    (random.randint(1, max_id),))
                row = cur.fetchone()
            conn.commit()
        except DB_ERRORS as e:
            self.drop_connection(e)
            return
        if row is None:
            return
        doc_id, rel, size = row
        sha = rewrite_document(rel, size)
        if self.commit_sql("UPDATE documents SET sha256 = %s WHERE id = %s",
                           (sha, doc_id), must_finish=True):
            self.rewritten += 1
        else:
            log(NAME, f"ERROR: {rel} was rewritten but its row {doc_id} could not be updated")

    def run(self):
        interval = 1.0 / RATE if RATE > 0 else 1.0
        next_write = time.monotonic()
        next_rewrite = time.monotonic() + REWRITE_INTERVAL
        next_report = time.monotonic() + 10
        if self.db() is None:
            return
        log(NAME, f"writing ~{RATE:g} documents/s under {STORAGE}/{DOCS}, "
                  f"rewriting one every {REWRITE_INTERVAL:g} s (keep mtime: {KEEP_MTIME})")
        while not self.stop.requested:
            now = time.monotonic()
            if RATE > 0 and now >= next_write:
                self.create_one()
                next_write = max(next_write + interval, time.monotonic() - 1.0)
            elif REWRITE_INTERVAL > 0 and now >= next_rewrite:
                self.rewrite_one()
                next_rewrite = now + REWRITE_INTERVAL
            elif now >= next_report:
                log(NAME, f"{self.created} documents created, {self.rewritten} rewritten")
                next_report = now + 10
            else:
                self.stop.sleep(min(next_write, next_rewrite, next_report) - now)

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        log(NAME, f"stopped: {self.created} documents created, {self.rewritten} rewritten")


def main():
    stop = Stop(NAME)
    os.umask(0o027)
    drop_privileges(NAME, RUN_AS, [STORAGE, os.path.join(STORAGE, DOCS)])
    writer = Writer(stop)
    try:
        writer.run()
    finally:
        writer.close()


if __name__ == "__main__":
    main()
