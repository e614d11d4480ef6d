#!/usr/bin/env python3
"""The "kbox" service of the sample stack: writes documents and their rows.

Forever, about WRITE_RATE times a second:
  1. write a new file of random content (1 KiB .. 256 KiB, BIG_FRACTION of
     them 1 .. 3 MiB) at $STORAGE_DIR/documents/<uuid>.bin, fsync it;
  2. INSERT its row (path relative to $STORAGE_DIR, size, sha256), COMMIT.
About every REWRITE_INTERVAL seconds (0: never), rewrite one existing document
in place with new random content of the same size (fsync), then UPDATE its
row's sha256, COMMIT. With REWRITE_KEEP_MTIME=1 the old mtime is put back
after the rewrite (what rsync's quick check cannot see). A rewrite in place
cannot be atomic with its UPDATE, so, as an application that survives a crash
must, the writer first records the document it is about to rewrite in
$STORAGE_DIR/rewrite-intent (fsynced) and removes the record once the UPDATE
is committed: after a crash, or in a crash-consistent copy, the one document
whose content may differ from its row is the one that record names.

Besides, like a K-Box its users talk to, it serves HTTP on HTTP_PORT (8080; 0:
no server), so a client can tell whether the stack answers during a backup:
  GET /health       200 {"documents": <rows in MariaDB now>}; 503 when the
                    database does not answer;
  POST /documents   body: the document (at most MAX_UPLOAD bytes); written
                    and committed like the loop's own documents (file, fsync,
                    row, COMMIT); 201 {"id", "path", "sha256"}; 503 on failure.
Every request has a database connection of its own (threads never share one).

A committed row therefore always names a file completely written with that
sha256. SIGTERM: the HTTP server stops accepting at once, the current file +
row pair (of the loop and of uploads already begun) is finished, then exit 0.
"""

import hashlib
import json
import math
import os
import random
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pymysql
from common import Stop, connect, drop_privileges, log, open_db

NAME = "writer"
STORAGE = os.environ.get("STORAGE_DIR", "/var/www/dms/storage")
DOCS = "documents"
INTENT = "rewrite-intent"
RATE = float(os.environ.get("WRITE_RATE", "15"))
REWRITE_INTERVAL = float(os.environ.get("REWRITE_INTERVAL", "1"))
BIG_FRACTION = float(os.environ.get("BIG_FRACTION", "0.01"))
KEEP_MTIME = os.environ.get("REWRITE_KEEP_MTIME", "0") == "1"
RUN_AS = os.environ.get("RUN_AS", "33:33")  # www-data, as in the K-Box image
HTTP_PORT = int(os.environ.get("HTTP_PORT", "8080"))
MAX_UPLOAD = int(os.environ.get("MAX_UPLOAD", str(8 << 20)))

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


def create_document(data=None):
    """Write a new document file (random content unless `data`: an upload); return
    (relative path, size, sha256). File and directory are fsynced before the row is
    committed, so a committed row never names a file a crash could lose."""
    if data is None:
        data = os.urandom(random_size())
    size = len(data)
    rel = f"{DOCS}/{uuid.uuid4().hex}.bin"
    fd = os.open(os.path.join(STORAGE, rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(os.path.join(STORAGE, DOCS))
    return rel, size, hashlib.sha256(data).hexdigest()


def record_intent(rel):
    """Name the document about to be rewritten (None: the rewrite is committed), durably,
    before its content changes; see the module doc."""
    path = os.path.join(STORAGE, INTENT)
    if rel is None:
        if os.path.exists(path):
            os.unlink(path)
    else:
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            write_all(fd, rel.encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(path + ".tmp", path)
    fsync_dir(STORAGE)


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
    """One database connection and what is written through it. The loop has one (patient:
    it waits for the database); every upload request has its own, which tries once."""

    def __init__(self, stop, patient=True):
        self.stop = stop
        self.patient = patient
        self.conn = None
        self.created = 0
        self.rewritten = 0
        self.error = None  # the last database error, for a request's 503

    def db(self, must_finish=False):
        if self.conn is None:
            if self.patient:
                self.conn = connect(NAME, self.stop, autocommit=False, must_finish=must_finish)
            else:
                try:
                    self.conn = open_db(autocommit=False)
                except DB_ERRORS as e:
                    self.error = e
        return self.conn

    def drop_connection(self, err):
        self.error = err
        log(NAME, f"database error: {err}" + ("; reconnecting" if self.patient else ""))
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = None

    def commit_sql(self, sql, args, must_finish):
        """Run one statement and COMMIT; the statement's lastrowid when committed, else
        None. With must_finish (a file on disk already differs from its committed row)
        retry through reconnects, even while stopping, for a while."""
        for _ in range(30 if must_finish else 1):
            conn = self.db(must_finish)
            if conn is None:
                return None
            try:
                with conn.cursor() as cur:
                    cur.execute(sql, args)
                    row_id = cur.lastrowid
                conn.commit()
                return row_id
            except DB_ERRORS as e:
                self.drop_connection(e)
                if must_finish:
                    time.sleep(1)
        return None

    def create_one(self, data=None):
        """One unit of work, the loop's or an upload's: the file, then its row. Returns
        (row id, relative path, sha256), or None when the row was not committed."""
        rel, size, sha = create_document(data)
        doc_id = self.commit_sql(
            "INSERT INTO documents (path, size, sha256) VALUES (%s, %s, %s)",
            (rel, size, sha),
            must_finish=False,
        )
        if doc_id is None:
            # The file stays, maybe without a row (harmless, like an upload cut short).
            # It is not removed: when the connection broke during COMMIT, the row may
            # have been committed after all.
            return None
        self.created += 1
        return doc_id, rel, sha

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
                    (random.randint(1, max_id),),
                )
                row = cur.fetchone()
            conn.commit()
        except DB_ERRORS as e:
            self.drop_connection(e)
            return
        if row is None:
            return
        doc_id, rel, size = row
        record_intent(rel)
        sha = rewrite_document(rel, size)
        updated = self.commit_sql(
            "UPDATE documents SET sha256 = %s WHERE id = %s", (sha, doc_id), must_finish=True
        )
        if updated is not None:
            record_intent(None)
            self.rewritten += 1
        else:  # the record stays: the file differs from its row until someone repairs it
            log(NAME, f"ERROR: {rel} was rewritten but its row {doc_id} could not be updated")

    def run(self):
        """The write loop. A knob at 0 (WRITE_RATE, REWRITE_INTERVAL) turns its step off:
        its next time is never, so the loop sleeps instead of spinning on a past deadline."""
        now = time.monotonic()
        interval = 1.0 / RATE if RATE > 0 else math.inf
        next_write = now if RATE > 0 else math.inf
        next_rewrite = now + REWRITE_INTERVAL if REWRITE_INTERVAL > 0 else math.inf
        next_report = now + 10
        if self.db() is None:
            return
        rewrites = f"one every {REWRITE_INTERVAL:g} s" if REWRITE_INTERVAL > 0 else "none"
        log(
            NAME,
            f"writing ~{RATE:g} documents/s under {STORAGE}/{DOCS}; "
            f"rewrites: {rewrites} (keep mtime: {KEEP_MTIME})",
        )
        while not self.stop.requested:
            now = time.monotonic()
            if now >= next_write:
                self.create_one()
                next_write = max(next_write + interval, time.monotonic() - 1.0)
            elif now >= next_rewrite:
                self.rewrite_one()
                next_rewrite = now + REWRITE_INTERVAL
            elif now >= next_report:
                log(NAME, f"{self.created} documents created, {self.rewritten} rewritten")
                next_report = now + 10
            else:
                self.stop.sleep(min(next_write, next_rewrite, next_report) - now)

    def close(self, quiet=False):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None
        if not quiet:
            log(NAME, f"stopped: {self.created} documents created, {self.rewritten} rewritten")


def one_line(err):
    """An error as one line of text, for a JSON body and a log line."""
    return " ".join(str(err).split()) or type(err).__name__


class Uploads:
    """Uploads in flight. A stop refuses new ones and waits a while for those begun, so an
    upload's file + row is finished like the loop's own unit of work."""

    def __init__(self):
        self.cond = threading.Condition()
        self.busy = 0
        self.closed = False
        self.done = 0

    def begin(self):
        with self.cond:
            if self.closed:
                return False
            self.busy += 1
            return True

    def end(self, ok):
        with self.cond:
            self.busy -= 1
            self.done += 1 if ok else 0
            self.cond.notify_all()

    def close(self, timeout):
        with self.cond:
            self.closed = True
            return self.cond.wait_for(lambda: self.busy == 0, timeout)


class Handler(BaseHTTPRequestHandler):
    """GET /health and POST /documents; each request runs in a thread of its own with a
    database connection of its own, closed before the response is sent."""

    server_version = "klink-sample-kbox/1"
    timeout = 60  # a client that stops sending mid-request loses its thread, not ours forever

    def log_message(self, format, *args):
        pass  # a probe asks 20 times a second: an access log would drown the writer's log

    def reply(self, status, body):
        data = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path != "/health":
            return self.reply(404, {"error": "not found"})
        try:
            conn = open_db(autocommit=True)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT COUNT(*) FROM documents")
                    (count,) = cur.fetchone()
            finally:
                conn.close()
        except DB_ERRORS as e:
            return self.reply(503, {"error": one_line(e)})
        self.reply(200, {"documents": count})

    def do_POST(self):
        if self.path != "/documents":
            return self.reply(404, {"error": "not found"})
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            return self.reply(411, {"error": "Content-Length required"})
        if not 0 < int(length) <= MAX_UPLOAD:
            return self.reply(413, {"error": f"a document is 1 to {MAX_UPLOAD} bytes"})
        data = self.rfile.read(int(length))
        if len(data) != int(length):
            return self.reply(400, {"error": "body shorter than Content-Length"})
        uploads = self.server.uploads
        if not uploads.begin():
            return self.reply(503, {"error": "stopping"})
        writer, done = Writer(self.server.stop, patient=False), None
        try:
            if writer.db() is not None:  # no database: no file left without its row
                done = writer.create_one(data)
        except Exception as e:  # disk full, permissions: the client is told, the server lives
            writer.error = e
            log(NAME, f"upload failed: {one_line(e)}")
        finally:
            writer.close(quiet=True)
            uploads.end(done is not None)
        if done is None:
            return self.reply(503, {"error": one_line(writer.error or "not committed")})
        doc_id, rel, sha = done
        self.reply(201, {"id": doc_id, "path": rel, "sha256": sha})


class Server(ThreadingHTTPServer):
    """The HTTP server, with what its handlers share: the stop flag and the uploads."""

    daemon_threads = True  # a slow client never holds the process at exit

    def __init__(self, port, stop):
        super().__init__(("", port), Handler)
        self.stop, self.uploads = stop, Uploads()

    def handle_error(self, request, client_address):
        """One log line, not a traceback: a client gone mid-reply (a probe's timeout) is
        ordinary while a backup freezes or stops the stack."""
        log(NAME, f"HTTP request from {client_address[0]} failed: {one_line(sys.exc_info()[1])}")


def start_http(stop):
    """Serve HTTP in a daemon thread (None when HTTP_PORT is 0). Short poll interval:
    shutting it down at a stop takes at most 0.1 s."""
    if HTTP_PORT == 0:
        return None
    server = Server(HTTP_PORT, stop)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="http", daemon=True
    )
    thread.start()
    log(NAME, f"serving HTTP on port {HTTP_PORT} (GET /health, POST /documents)")
    return server


def stop_http(server):
    """Stop accepting, close the listening socket (new clients are refused at once), then
    let uploads already begun finish their file + row (a few seconds at most)."""
    if server is None:
        return
    server.shutdown()
    server.server_close()
    if not server.uploads.close(timeout=5):  # well within compose's 10 s before SIGKILL
        log(NAME, "uploads still running after 5 s: exiting anyway")
    log(NAME, f"HTTP stopped: {server.uploads.done} documents uploaded")


def main():
    stop = Stop(NAME)
    os.umask(0o027)
    drop_privileges(NAME, RUN_AS, [STORAGE, os.path.join(STORAGE, DOCS)])
    server = start_http(stop)
    writer = Writer(stop)
    try:
        writer.run()
    finally:
        stop_http(server)
        writer.close()


if __name__ == "__main__":
    main()
