"""The kbox's HTTP face and the probe that asks it: what the "zero failed requests" tests
stand on. The probe must see a healthy stack as healthy and a stopped kbox as failing."""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import time

from tests.e2e.conftest import checker, probe


def _row(stack, doc_id: int) -> list[str]:
    """path and sha256 of one row, asked of the running database as the checker asks."""
    sql = f"SELECT path, sha256 FROM documents WHERE id = {int(doc_id)}"
    argv = [*shlex.split(stack.compose_cmd), "exec", "-T", "database"]
    out = subprocess.run(
        [*argv, "sh", "-c", checker.LIVE_SCRIPT, "sh", sql],
        cwd=stack.folder,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return out.split()


def _kbox_exit_code(stack) -> str:
    cid = subprocess.run(
        [*shlex.split(stack.compose_cmd), "ps", "-a", "-q", "kbox"],
        cwd=stack.folder,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return subprocess.run(
        ["docker", "inspect", "-f", "{{.State.ExitCode}}", cid.split()[0]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_the_probe_sees_a_running_kbox_answer_and_a_stopped_one_fail(live_stack):
    """Seconds of GETs and POSTs: none failed, none slow, the row count grows. An upload's
    row and file carry the sha256 of what was sent (the writer loop's own code path). A
    probe that cannot fail proves nothing: `compose stop kbox` shows as failed requests (the
    server shuts down at once; the container exits 0 well before compose's 10 s), and after
    `compose start kbox` the probe finds the container again and succeeds."""
    with probe.Probe(live_stack.folder, interval=0.05, timeout=10) as p:
        calm = p.wait(lambda s: s["requests"] >= 60 and s["posts"] >= 3, timeout=30)
        assert calm["failed"] == 0 and calm["slow"] == 0, calm
        assert calm["documents"][1] > calm["documents"][0], calm

        data = os.urandom(50_000)
        ip = probe.find_ip(live_stack.folder)
        status, body = probe.http_json(ip, "POST", "/documents", data)
        sha = hashlib.sha256(data).hexdigest()
        assert status == 201 and body["sha256"] == sha, body
        assert _row(live_stack, body["id"]) == [body["path"], sha]
        on_disk = live_stack.folder / "storage" / "data" / body["path"]
        assert hashlib.sha256(on_disk.read_bytes()).hexdigest() == sha

        began = time.monotonic()
        live_stack.compose("stop", "kbox")
        stop_took = time.monotonic() - began
        p.wait(lambda s: s["failed"] >= 3, timeout=30)
        live_stack.compose("start", "kbox")
        back = time.time()
        p.wait(lambda _: _ok(p.summary(since=back)) >= 3, timeout=30)
    assert stop_took < 5 and _kbox_exit_code(live_stack) == "0"
    s = p.summary()
    assert s["failed"] >= 3 and len(s["failed_windows"]) == 1, s  # one outage: the stop
    after = p.summary(since=s["failed_windows"][0][1])
    assert _ok(after) >= 3 and after["failed"] == 0, after


def _ok(summary: dict) -> int:
    return summary["requests"] - summary["failed"]
