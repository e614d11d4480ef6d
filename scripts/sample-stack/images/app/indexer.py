#!/usr/bin/env python3
"""The "engine" service of the sample stack: a search index fed from the rows.

About every INDEX_INTERVAL seconds: read the rows not indexed yet (id greater
than the last indexed id, kept in the index's metadata "last_id"), add each to
a Xapian database at $INDEX_DIR (terms "Q<id>" and "P<path>", document data:
the sha256), set last_id, commit. SIGTERM: finish the batch, close the Xapian
database (clean), exit 0.
"""

import os

import pymysql
import xapian
from common import Stop, connect, drop_privileges, log

NAME = "indexer"
DATA = os.environ.get("INDEX_DATA_DIR", "/opt/solr/k-search/k-search/data")
INDEX_DIR = os.environ.get("INDEX_DIR", os.path.join(DATA, "xapian"))
INTERVAL = float(os.environ.get("INDEX_INTERVAL", "1"))
BATCH = int(os.environ.get("INDEX_BATCH", "5000"))
RUN_AS = os.environ.get("RUN_AS", "8983:8983")  # solr's uid in the Solr images

DB_ERRORS = (pymysql.err.MySQLError,)  # any: drop the connection, reconnect


def index_batch(conn, xdb, last_id):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, path, sha256 FROM documents WHERE id > %s ORDER BY id LIMIT %s",
            (last_id, BATCH))
        rows = cur.fetchall()
    for doc_id, path, sha in rows:
        doc = xapian.Document()
        doc.set_data(sha)
        idterm = f"Q{doc_id}"
        doc.add_boolean_term(idterm)
        doc.add_boolean_term("P" + path)
        xdb.replace_document(idterm, doc)
        last_id = doc_id
    if rows:
        xdb.set_metadata("last_id", str(last_id))
        xdb.commit()
    return last_id, len(rows)


def main():
    stop = Stop(NAME)
    os.umask(0o027)
    drop_privileges(NAME, RUN_AS, [DATA])
    conn = connect(NAME, stop, autocommit=True)  # autocommit: each SELECT sees new rows
    if conn is None:
        return
    xdb = xapian.WritableDatabase(INDEX_DIR, xapian.DB_CREATE_OR_OPEN)
    last_id = int(xdb.get_metadata("last_id") or 0)
    log(NAME, f"indexing into {INDEX_DIR}, {xdb.get_doccount()} documents, last id {last_id}")
    total = 0
    try:
        while not stop.requested:
            try:
                last_id, n = index_batch(conn, xdb, last_id)
                total += n
            except DB_ERRORS as e:
                log(NAME, f"database error: {e}; reconnecting")
                try:
                    conn.close()
                except Exception:
                    pass
                conn = connect(NAME, stop, autocommit=True)
                if conn is None:
                    break
                continue
            if n < BATCH:
                stop.sleep(INTERVAL)
    finally:
        xdb.close()  # commits nothing pending (each batch is committed) and releases the lock
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass
        log(NAME, f"stopped: indexed {total} documents this run, last id {last_id}")


if __name__ == "__main__":
    main()
