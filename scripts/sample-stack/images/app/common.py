"""Shared helpers of writer.py and indexer.py (klink-sample/app)."""

import os
import signal
import sys
import time

import pymysql


class Stop:
    """SIGTERM/SIGINT set a flag; the main loop looks at it between units of
    work, so a unit (file + row) is always finished, never left half done.
    Interrupted system calls are retried by Python (PEP 475)."""

    def __init__(self, name):
        self.name = name
        self.requested = False
        signal.signal(signal.SIGTERM, self._handler)
        signal.signal(signal.SIGINT, self._handler)

    def _handler(self, signum, frame):
        if not self.requested:
            log(self.name, f"signal {signum}: finishing the current step, then exiting")
        self.requested = True

    def sleep(self, seconds):
        """Sleep up to `seconds`; return early (True) when a stop is requested."""
        end = time.monotonic() + seconds
        while not self.requested:
            left = end - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, 0.05))
        return self.requested


def log(name, msg):
    print(
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {name}: {msg}",
        file=sys.stderr,
        flush=True,
    )


def drop_privileges(name, spec, dirs):
    """As root, create and chown `dirs` then become uid:gid `spec` (e.g. "33:33").
    Empty spec: stay who we are."""
    if not spec or os.getuid() != 0:
        for d in dirs:
            os.makedirs(d, exist_ok=True)
        return
    uid, _, gid = spec.partition(":")
    uid = int(uid)
    gid = int(gid or uid)
    for d in dirs:
        os.makedirs(d, exist_ok=True)
        os.chown(d, uid, gid)
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    log(name, f"running as {uid}:{gid}")


def open_db(autocommit):
    """One connection attempt (raises pymysql's errors). HTTP requests use it directly: a
    client should get its 503 at once rather than wait while the loop's retries go on.
    The session is in UTC: CURRENT_TIMESTAMP(6) gives UTC."""
    return pymysql.connect(
        host=os.environ.get("DB_HOST", "database"),
        port=int(os.environ.get("DB_PORT", "3306")),
        user=os.environ["DB_USER"],
        password=os.environ["DB_PASSWORD"],
        database=os.environ["DB_NAME"],
        connect_timeout=5,
        read_timeout=30,
        write_timeout=30,
        autocommit=autocommit,
        init_command="SET time_zone = '+00:00'",
    )


def connect(name, stop, autocommit, must_finish=False):
    """Connect to the database, retrying until it answers. Gives up (None) when
    a stop is requested, or, with must_finish (a half-done step must be
    completed even while stopping), after about 30 s."""
    attempt = 0
    while must_finish or not stop.requested:
        try:
            conn = open_db(autocommit)
            log(name, "connected to the database")
            return conn
        except pymysql.err.MySQLError as e:
            attempt += 1
            if attempt == 1 or attempt % 10 == 0:
                log(name, f"database not ready ({e.args[0] if e.args else e}); retrying")
            if must_finish:
                if attempt >= 30:
                    return None
                time.sleep(1)
            else:
                stop.sleep(1)
    return None
