"""The downtime probe: the compose wrapper that notes stop/start times, and the poller
that asks the Docker API and MariaDB whether the stack is up."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.parse
from pathlib import Path

from .common import SERVICES, BenchError


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


def running_and_db_ip(containers: list[dict]) -> tuple[set, str | None]:
    """The services whose container runs, and the database container's IP address."""
    running, ip = set(), None
    for c in containers:
        service = c.get("Labels", {}).get("com.docker.compose.service")
        if c.get("State") == "running":
            running.add(service)
            if service == "database":
                nets = (c.get("NetworkSettings") or {}).get("Networks") or {}
                ip = next((n.get("IPAddress") for n in nets.values() if n.get("IPAddress")),
                          None)  # fmt: skip
    return running, ip


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
        running, ip = running_and_db_ip(cs)
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
