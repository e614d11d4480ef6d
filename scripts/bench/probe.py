"""The downtime probe: the compose wrapper that notes stop/start times, and the poller
that asks the Docker API and MariaDB whether the stack is up; the project's container
events (a freeze seen from outside: docker pause -> unpause); the sample stack's HTTP
probe of the kbox (scripts/sample-stack/probe.py, loaded by its path)."""

from __future__ import annotations

import http.client
import importlib.util
import json
import socket
import threading
import time
import urllib.parse
from pathlib import Path

from .common import SAMPLE, SERVICES, BenchError


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


# what a run may do to the project's containers (exec_* of the healthcheck left out)
LIFECYCLE = ("pause", "unpause", "stop", "kill", "die", "start", "restart", "create", "destroy")


class ContainerEvents(threading.Thread):
    """The project's container lifecycle events while it runs (start() .. stop()), streamed
    from the Docker API (the daemon keeps only its last 256 events: no replay afterwards):
    [{"action", "service", "t"}] in `events`."""

    def __init__(self, project: str):
        super().__init__(daemon=True)
        self.events: list[dict] = []
        filters = json.dumps({"type": ["container"], "event": list(LIFECYCLE),
                              "label": [f"com.docker.compose.project={project}"]})  # fmt: skip
        self.conn = UnixHTTP(timeout=None)
        self.conn.request("GET", "/events?" + urllib.parse.urlencode({"filters": filters}))
        self.resp = self.conn.getresponse()  # the stream is open: no event is missed
        if self.resp.status != 200:
            raise BenchError(f"Docker API events: {self.resp.status}")
        self.closing = False

    def run(self) -> None:
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    return
                if line.strip():
                    self.events.append(event_row(json.loads(line)))
        except (OSError, ValueError, http.client.HTTPException):
            if not self.closing:
                raise

    def stop(self, linger: float = 0.3) -> list[dict]:
        """The events so far, after `linger` s for the last ones to arrive."""
        time.sleep(linger)
        self.closing = True
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.join(10)
        self.conn.close()
        return sorted(self.events, key=lambda e: e["t"])


def event_row(e: dict) -> dict:
    attrs = (e.get("Actor") or {}).get("Attributes") or {}
    t = e.get("timeNano")
    return {"action": e.get("Action") or e.get("status"),
            "service": attrs.get("com.docker.compose.service"),
            "t": t / 1e9 if t else float(e.get("time", 0))}  # fmt: skip


def freeze_fields(events: list[dict]) -> dict:
    """From the container events of one run: the freeze seen from outside (first pause to
    last unpause; None without a pause), the services frozen, and every action by service."""
    pauses = [e["t"] for e in events if e["action"] == "pause"]
    unpauses = [e["t"] for e in events if e["action"] == "unpause"]
    actions: dict[str, list[str]] = {}
    for e in events:
        actions.setdefault(e["service"] or "?", []).append(e["action"])
    return {
        "freeze": max(unpauses) - min(pauses) if pauses and unpauses else None,
        "frozen": sorted({e["service"] for e in events if e["action"] == "pause"}),
        "container_events": actions,
    }


def sample_probe():
    """scripts/sample-stack/probe.py (scripts/ is not a package), loaded by its path."""
    spec = importlib.util.spec_from_file_location("klink_sample_probe", SAMPLE / "probe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def users_fields(summary: dict) -> dict:
    """What a row keeps of the HTTP probe's summary over one run."""
    return {
        "http_requests": summary["requests"], "http_failed": summary["failed"],
        "http_slow": summary["slow"], "http_max_latency": summary["max_latency"],
        "http_failing_s": sum(b - a for a, b in summary["failed_windows"]),
        "http_errors": summary["errors"],
    }  # fmt: skip


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
