#!/usr/bin/env python3
"""Ask the sample stack's kbox over HTTP, back to back, as its users would: did a request
fail, or wait, while a backup ran? A test fixture and a benchmark tool, not part of
klink-sync. Python 3 standard library only; Docker through its CLI.

    with Probe("/path/to/setup-folder") as p:   # or Probe("compose-project-name")
        ...                                     # stop, pause, back up the stack
    p.summary()   # {"requests", "failed", "slow", "max_latency", "failed_windows", ...}

No port is published (stacks run side by side): the probe reaches the kbox container on
its bridge-network address, found with `docker ps` + `docker inspect` by the Compose
labels (project, service, not one-off). It finds it again after every failed request,
since a container started again may have another address. Mostly `GET /health`; every
`post_every`-th request a small `POST /documents`, whose answer must carry the sha256 of
what was sent.

    probe.py FOLDER_OR_PROJECT [--seconds 10] [--interval 0.05]   # prints the summary (JSON)
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

PORT = 8080
DOCKER = os.environ.get("KLINK_SAMPLE_DOCKER", "docker")


class Request(NamedTuple):
    """One request as the probe saw it."""

    start: float  # wall clock (time.time()) when it was sent: comparable across processes
    latency: float  # seconds until the answer, or until it failed
    ok: bool  # a 2xx answer with the expected body
    method: str  # "GET" (/health) or "POST" (/documents)
    status: int | None  # HTTP status; None when no answer came
    error: str  # why it failed; "" when ok
    documents: int | None  # the row count GET /health reported


def project_name(folder: str | Path) -> str:
    """The Compose project of a setup folder, derived as Compose v1 and v2 do:
    COMPOSE_PROJECT_NAME (environment, then the folder's .env), else the folder's base
    name, lowercased, keeping a-z 0-9 - _."""
    name = os.environ.get("COMPOSE_PROJECT_NAME", "")
    env_file = Path(folder) / ".env"
    if not name and env_file.is_file():
        for line in env_file.read_text().splitlines():
            key, _, value = line.strip().partition("=")
            if key.strip() == "COMPOSE_PROJECT_NAME":
                name = value.strip().strip("'\"")
    name = name or Path(folder).resolve().name
    return re.sub(r"[^-_a-z0-9]", "", name.lower()).lstrip("-_")


def find_ip(folder_or_project: str | Path, service: str = "kbox", docker: str = DOCKER):
    """The bridge-network address of the service's running (or paused) container, or
    None. A Path, or a str with a "/", is a setup folder; anything else a project name."""
    target = str(folder_or_project)
    project = (
        project_name(target) if isinstance(folder_or_project, Path) or "/" in target else target
    )
    labels = [
        f"com.docker.compose.project={project}",
        f"com.docker.compose.service={service}",
        "com.docker.compose.oneoff=False",
    ]
    argv = [docker, "ps", "-q", "--no-trunc"]
    for label in labels:
        argv += ["--filter", f"label={label}"]
    try:
        ids = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.split()
        if not ids:
            return None
        fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
        out = subprocess.run(
            [docker, "inspect", "-f", fmt, ids[0]], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return next(iter(out.split()), None)


def http_json(
    ip: str,
    method: str,
    path: str,
    body: bytes | None = None,
    port: int = PORT,
    timeout: float = 30.0,
) -> tuple[int, dict]:
    """One request on a connection of its own (a new TCP connection, as a browser after a
    pause would open); (status, JSON body). A body that is not JSON comes back as
    {"raw": text}. Raises OSError / http.client.HTTPException when no answer came."""
    conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    return resp.status, data if isinstance(data, dict) else {"raw": raw[:200].decode("replace")}


def windows(requests: list[Request], bad) -> list[tuple[float, float]]:
    """(start of the first, end of the last) of each run of consecutive `bad` requests."""
    out: list[tuple[float, float]] = []
    run_open = False
    for r in requests:
        if bad(r):
            if run_open:
                out[-1] = (out[-1][0], r.start + r.latency)
            else:
                out.append((r.start, r.start + r.latency))
            run_open = True
        else:
            run_open = False
    return out


class Probe:
    """Requests to the kbox, back to back (`interval` s between the end of one and the
    next), in a daemon thread, from start() (or `with`) to stop(). A request fails on
    no container, a refused or reset connection, `timeout` s without an answer, a non-2xx
    status or an unexpected body; it is slow when it succeeds after more than `slow` s
    (what a frozen stack does to its users)."""

    def __init__(
        self,
        folder_or_project: str | Path,
        interval: float = 0.05,
        timeout: float = 30.0,
        slow: float = 1.0,
        post_every: int = 10,
        post_size: int = 4096,
        service: str = "kbox",
        port: int = PORT,
        docker: str = DOCKER,
    ):
        self.target, self.service, self.port, self.docker = folder_or_project, service, port, docker
        self.interval, self.timeout, self.slow = interval, timeout, slow
        self.post_every, self.post_size = post_every, post_size
        self.ip: str | None = None
        self._results: list[Request] = []
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Probe:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._halt.clear()
        self._thread = threading.Thread(target=self._loop, name="kbox-probe", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ends the loop; a request under way is waited for (at most `timeout` s)."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 60)
            self._thread = None

    @property
    def results(self) -> list[Request]:
        with self._lock:
            return list(self._results)

    def _loop(self) -> None:
        n = 0
        while not self._halt.is_set():
            n += 1
            post = self.post_every > 0 and n % self.post_every == 0
            r = self.request(post)
            with self._lock:
                self._results.append(r)
            self._halt.wait(self.interval)

    def request(self, post: bool = False) -> Request:
        """One request (GET /health, or POST /documents with `post_size` random bytes).
        After a failure the container's address is looked up again before the next one."""
        method = "POST" if post else "GET"
        start, t0 = time.time(), time.monotonic()
        if self.ip is None:
            self.ip = find_ip(self.target, self.service, self.docker)
        if self.ip is None:
            return Request(
                start, time.monotonic() - t0, False, method, None, "no running container", None
            )
        body = os.urandom(self.post_size) if post else None
        status, data, error = None, {}, ""
        start, t0 = time.time(), time.monotonic()
        try:
            status, data = http_json(
                self.ip, method, "/documents" if post else "/health", body, self.port, self.timeout
            )
        except (OSError, http.client.HTTPException) as e:
            error = f"{type(e).__name__}: {e}"
        latency = time.monotonic() - t0
        if status is not None and not 200 <= status < 300:
            error = f"HTTP {status}: {data.get('error') or data.get('raw', '')}"
        elif status is not None and post and data.get("sha256") != hashlib.sha256(body).hexdigest():
            error = f"POST answered without the document's sha256: {data}"
        elif status is not None and not post and not isinstance(data.get("documents"), int):
            error = f"GET /health answered without a document count: {data}"
        if error:
            self.ip = None
        documents = data.get("documents") if not error and not post else None
        return Request(start, latency, not error, method, status, error, documents)

    def summary(self, since: float | None = None, until: float | None = None) -> dict:
        """Counts over the requests sent in [since, until) (wall clock; default: all).
        Windows are (start, end) wall-clock pairs of consecutive failed / slow requests."""
        rs = [
            r
            for r in self.results
            if (since is None or r.start >= since) and (until is None or r.start < until)
        ]
        failed = [r for r in rs if not r.ok]
        counts = [r.documents for r in rs if r.documents is not None]
        return {
            "requests": len(rs),
            "failed": len(failed),
            "slow": sum(1 for r in rs if self.is_slow(r)),
            "max_latency": max((r.latency for r in rs), default=0.0),
            "failed_windows": windows(rs, lambda r: not r.ok),
            "slow_windows": windows(rs, self.is_slow),
            "errors": dict(collections.Counter(r.error for r in failed)),
            "posts": sum(1 for r in rs if r.method == "POST"),
            "documents": (counts[0], counts[-1]) if counts else None,
            "first": rs[0].start if rs else None,
            "last": rs[-1].start + rs[-1].latency if rs else None,
        }

    def is_slow(self, r: Request) -> bool:
        return r.ok and r.latency > self.slow

    def wait(self, predicate, timeout: float = 30.0) -> dict:
        """Poll summary() until predicate(summary) holds; that summary. TimeoutError
        (with the last summary) when it does not within `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.summary()
            if predicate(s):
                return s
            if time.monotonic() > deadline:
                raise TimeoutError(f"probe: condition not met within {timeout:g} s: {s}")
            time.sleep(0.05)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Probe a sample stack's kbox over HTTP.")
    ap.add_argument("target", help="setup folder (has a /) or Compose project name")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--slow", type=float, default=1.0)
    a = ap.parse_args(argv)
    with Probe(a.target, interval=a.interval, timeout=a.timeout, slow=a.slow) as p:
        time.sleep(a.seconds)
    s = p.summary()
    print(json.dumps(s, indent=2))
    return 0 if s["requests"] and not s["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
