"""The executor's small pure helpers."""

import threading
from pathlib import Path

from klink_sync.passes import _Countdown, unwritten_bytes

MEMINFO = """MemTotal:       24634524 kB
MemFree:         1234567 kB
Dirty:             81920 kB
Writeback:         20480 kB
WritebackTmp:          0 kB
"""


def test_unwritten_bytes_adds_dirty_and_writeback(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(MEMINFO)
    assert unwritten_bytes(str(meminfo)) == (81920 + 20480) * 1024


def test_unwritten_bytes_is_unknown_when_the_file_is_missing_or_odd(tmp_path: Path) -> None:
    assert unwritten_bytes(str(tmp_path / "nope")) is None
    odd = tmp_path / "meminfo"
    odd.write_text("MemTotal: 1 kB\n")
    assert unwritten_bytes(str(odd)) is None


def test_unwritten_bytes_reads_this_machine() -> None:
    waiting = unwritten_bytes()
    assert waiting is not None and waiting >= 0


def test_the_countdown_calls_once_when_the_last_unit_is_done() -> None:
    """The hot round's write-back starts once, when its last copy (in any thread) is done."""
    calls = []
    done = _Countdown(8, lambda: calls.append(threading.current_thread().name))
    workers = [threading.Thread(target=done, name=f"unit-{i}") for i in range(7)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert calls == []
    done()
    assert calls == ["MainThread"]
