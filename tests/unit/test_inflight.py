"""inflight.drain: the wait for writes submitted before a freeze, on counters shaped like
/sys/dev/block/M:m/inflight (reads, writes)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from klink_sync import inflight


def _counter(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "254:0" / "inflight"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_the_device_under_this_folder_is_found() -> None:
    dev = os.stat("/").st_dev
    expected = inflight.SYS_BLOCK / f"{os.major(dev)}:{os.minor(dev)}" / "inflight"
    assert inflight.devices(["/", "/", "/no/such/path"]) == (
        [expected] if os.major(dev) and expected.is_file() else [])


def test_no_write_in_flight_returns_at_once(tmp_path: Path, monkeypatch) -> None:
    counter = _counter(tmp_path, "       7        0\n")  # reads do not count
    monkeypatch.setattr(inflight, "devices", lambda paths: [counter])
    began = time.monotonic()
    assert inflight.drain(["/x"]) == ""
    assert time.monotonic() - began < 1


def test_it_waits_until_the_writes_land(tmp_path: Path, monkeypatch) -> None:
    counter = _counter(tmp_path, "0 3\n")
    monkeypatch.setattr(inflight, "devices", lambda paths: [counter])
    landed = threading.Timer(0.3, lambda: counter.write_text("0 0\n"))
    landed.start()
    began = time.monotonic()
    assert inflight.drain(["/x"], timeout=5) == ""
    assert time.monotonic() - began >= 0.3


def test_a_device_busy_past_the_timeout_is_a_warning(tmp_path: Path, monkeypatch) -> None:
    counter = _counter(tmp_path, "0 2\n")
    monkeypatch.setattr(inflight, "devices", lambda paths: [counter])
    warning = inflight.drain(["/x"], timeout=0.2)
    assert warning.startswith("writes still in flight on block device 254:0 after 0.2s")
