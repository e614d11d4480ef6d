"""The measuring: GNU time around a command, and Bench, the run's state, which measures one
method at a time (downtime from the wrapper's events and the poller) and keeps every row
in raw.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import GIB, MASK, MIB, BenchError, log, median, rm_tree, run
from .probe import ContainerEvents, Poller, freeze_fields, sample_probe, users_fields
from .stack import Stack


def timed(argv, cwd=None, env=None, ok=(0,), timeout=7200):
    """Run under GNU time: (seconds, peak RSS in KiB of the largest process of the tree, proc)."""
    fd, tfile = tempfile.mkstemp(prefix="bench-time-")
    os.close(fd)
    began = time.monotonic()
    p = subprocess.run(
        ["/usr/bin/time", "-f", "%M", "-o", tfile, *map(str, argv)], cwd=cwd, env=env,
        text=True, capture_output=True, stdin=subprocess.DEVNULL,
        timeout=timeout,
    )  # fmt: skip
    seconds = time.monotonic() - began
    try:
        lines = [ln for ln in Path(tfile).read_text().splitlines() if ln.strip().isdigit()]
        rss = int(lines[-1]) if lines else 0
    finally:
        os.unlink(tfile)
    if p.returncode not in ok:
        out = MASK((p.stderr + p.stdout).strip())[-3000:]
        raise BenchError(f"{' '.join(map(str, argv[:4]))} ... exited {p.returncode}: {out}")
    return seconds, rss, p


def downtime_fields(events, began_wall: float, began: float, ended: float, up_after) -> dict:
    """From the wrapper's events: downtime, its split and the wall time of one measurement.
    `up_after(t)`: the end of the first probe begun at or after t that saw everything up."""
    stops = [t for v, t in events if v == "stop"]
    starts = [t for v, t in events if v in ("start", "up", "restart")]
    if not (stops and starts):
        return {"downtime": None, "wall": ended - began}
    up = up_after(max(starts))
    return {
        "downtime": up - stops[0],
        "stop_to_start": max(starts) - stops[0],  # stop, and the copy, if any
        "start_to_up": up - max(starts),  # from the start command to all up + SELECT 1
        "wall": max(ended - began, up - began_wall),
    }


class Bench:
    """One run: the deployment (stack), the probe (poller) and every measured row."""

    def __init__(self, args):
        self.a = args
        self.s = Stack(args)
        self.poller: Poller | None = None
        self.results: list[dict] = []
        self.notes: list[str] = []
        self.extra: dict = {}
        self.size_start: dict | None = None
        self.size_end: dict | None = None
        self.probe_period: float | None = None
        self.kept: dict[str, Path] = {}  # destinations kept after the repetitions, by mode
        self.sample_probe = sample_probe() if getattr(args, "http_interval", 0) > 0 else None

    @property
    def code_digest(self) -> str:
        return self.s.code_digest

    def setup(self) -> None:
        """The deployment built and filled, the stack running, the poller probing it."""
        s = self.s
        s.prepare()
        s.start()
        self.poller = Poller(s.project, s.root_pw, interval=self.a.poll_interval)
        self.poller.start()
        self.poller.up_after(time.time(), timeout=600)
        s.fill_database()
        log("letting the writer and the indexer run")
        time.sleep(self.a.settle * 2)
        self.size_start = s.deployment_size()
        log(f"deployment: {self.size_start['total'] / GIB:.2f} GiB "
            f"({self.size_start['files']} files)")  # fmt: skip

    # -- one measurement --------------------------------------------------------

    def quiesce(self) -> None:
        """Between measurements: flush what the last one wrote, let the stack settle."""
        run(["sync"])
        self.poller.up_after(time.time(), timeout=600)
        time.sleep(self.a.settle)

    def measure(self, method: str, rep: int, body, *args) -> dict:
        """One run of a method, the stack measured from outside: downtime (wrapper events +
        poller), the project's container events (a freeze: pause -> unpause) and, with
        --http-interval, the kbox's users (the sample's HTTP probe). A body that stops
        nothing returns "stopless": its downtime is 0 when no stop was seen."""
        self.quiesce()
        users = self.users()
        log(f"rep {rep}: {method}")
        self.s.events.reset()
        watch = ContainerEvents(self.s.project)
        watch.start()
        began_wall, began = time.time(), time.monotonic()
        try:
            info = body(*args) or {}
            ended, ended_wall = time.monotonic(), time.time()
            ev = self.s.events.read()
            stopless = info.pop("stopless", False)
            row = {"method": method, "rep": rep, **info}
            row.update(downtime_fields(ev, began_wall, began, ended, self.poller.up_after))
            if row["downtime"] is None and stopless and not any(v == "stop" for v, _ in ev):
                row["downtime"] = 0.0
            row.update(freeze_fields(watch.stop()))
            if users is not None:
                row.update(self.users_after(users, began_wall, ended_wall))
        finally:
            if watch.is_alive():
                watch.stop(0)
            if users is not None:
                users.stop()
        self.results.append(row)
        self.save_raw()
        log(f"rep {rep}: {method}: downtime {row['downtime'] or 0:.2f}s, "
            f"wall {row['wall']:.1f}s, written {row.get('written', 0) / MIB:.0f} MiB, "
            f"peak RSS {row.get('rss_kib', 0) / 1024:.0f} MiB"
            + (f", self-reported downtime {row['self_downtime']:.2f}s"
               if row.get("self_downtime") is not None else "")
            + (f", freeze {row['freeze']:.2f}s ({', '.join(row['frozen'])})"
               if row.get("freeze") is not None else "")
            + (f", commit block {row['commit_block']:.3f}s"
               if row.get("commit_block") is not None else "")
            + (f", HTTP {row['http_failed']} failed / {row['http_requests']}, "
               f"{row['http_slow']} slow, slowest {row['http_max_latency']:.2f}s"
               if "http_requests" in row else ""))  # fmt: skip
        return row

    def users(self):
        """The sample's HTTP probe of the kbox, started; None without --http-interval.
        It must have had an answer before the run begins (the kbox found, answering)."""
        if self.sample_probe is None:
            return None
        users = self.sample_probe.Probe(self.s.project, interval=self.a.http_interval,
                                        timeout=30.0, slow=1.0)  # fmt: skip
        users.start()
        try:
            users.wait(lambda s: s["requests"] > s["failed"], timeout=120)
        except TimeoutError as exc:
            users.stop()
            raise BenchError(f"the kbox does not answer HTTP: {exc}") from None
        return users

    def users_after(self, users, began_wall: float, ended_wall: float) -> dict:
        """The probe's counts from the run's start until the kbox answered again after it
        ended (at most 120 s more: what is still failing then counts as failed)."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(r.ok and r.start >= ended_wall for r in users.results):
                break
            time.sleep(0.05)
        users.stop()
        return users_fields(users.summary(since=began_wall))

    def record(self, method: str, rep: int, body, *args) -> dict:
        """A measurement without the probe (part of the stack may be stopped): `sync`, the
        rest, the body; its row has a wall time, no downtime (the offsite pushes)."""
        run(["sync"])
        time.sleep(self.a.settle)
        log(f"rep {rep}: {method}")
        began = time.monotonic()
        info = body(*args) or {}
        row = {"method": method, "rep": rep, **info, "downtime": None,
               "wall": time.monotonic() - began}  # fmt: skip
        self.results.append(row)
        self.save_raw()
        log(f"rep {rep}: {method}: {row.get('cmd_s', row['wall']):.2f}s, "
            f"written {row.get('written', 0) / MIB:.0f} MiB, "
            f"peak RSS {row.get('rss_kib', 0) / 1024:.0f} MiB")  # fmt: skip
        return row

    def save_raw(self, machine=None, timing=None) -> None:
        periods = self.poller.periods if self.poller else []
        raw = {
            "argv": sys.argv[1:], "args": vars(self.a), "results": self.results,
            "extra": self.extra, "notes": self.notes, "code_digest": self.code_digest,
            "size_start": self.size_start,
            "size_end": self.size_end,
            "probe_period_median": median(periods[-50000:]) if periods else None,
            "machine": machine, "timing": timing,
        }  # fmt: skip
        (self.s.work / "raw.json").write_text(json.dumps(raw, indent=1, default=str))

    # -- the end ----------------------------------------------------------------------

    def stop_stack(self) -> None:
        """After the Docker measurements: poller stopped, stack down, its folder and the
        repetitions' destinations removed (the scaling runs need the disk)."""
        if self.poller:
            self.poller.halt.set()
        self.s.down()
        rm_tree(self.s.folder)
        for sub in self.s.work.glob("r*"):
            rm_tree(sub)

    def teardown(self) -> None:
        if self.poller:
            self.poller.halt.set()
        self.s.teardown()
