"""The one process boundary: every external command runs through `run`.

Command lines arrive as plain tuples built by pure functions; here they are
logged (secrets masked), executed with `sh`, and their exit codes mapped.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import sh

from .errors import KlinkSyncError

log = logging.getLogger(__name__)
# sh logs whole command lines unmasked; only this module may speak of commands.
logging.getLogger("sh").setLevel(logging.CRITICAL)

_secrets: set[str] = set()
MASK = "*****"
_CAUSE = re.compile(r"error|failed|denied|cannot|no such|not found|no space", re.IGNORECASE)


class CommandFailed(KlinkSyncError):
    """An external command exited with a code its caller did not accept."""

    def __init__(self, message: str, result: Result | None = None):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def last_error_line(self) -> str:
        """The line that names the cause: the first that reads like an error, else the last.

        rsync, for one, ends with the consequence ("Broken pipe") after the cause
        ("write failed ...: No space left on device").
        """
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        causes = [line for line in lines if _CAUSE.search(line)]
        return mask((causes or lines or [""])[0 if causes else -1])


def add_secrets(values: Iterable[str]) -> None:
    """Register values that must never appear in logs or messages."""
    _secrets.update(v for v in values if v)


def mask(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def show(argv: Sequence[str]) -> str:
    """A command line as a user could paste it, with secrets masked."""
    import shlex

    return mask(" ".join(shlex.quote(os.fsdecode(a)) for a in argv))


def run(
    argv: Sequence[str],
    *,
    ok_codes: Sequence[int] = (0,),
    cwd: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    on_output: Callable[[str], None] | None = None,
    input: bytes | None = None,
    on_stderr: Callable[[str], None] | None = None,
) -> Result:
    """Run argv (never through a shell); raise CommandFailed unless its exit code is ok.
    `input`: its standard input (else end of file); `on_stderr`: each line of its standard
    error as it comes (a log whose timing matters), still kept whole in the Result."""
    argv = tuple(os.fsdecode(a) for a in argv)
    if _abandon.is_set():
        raise CommandFailed(f"{show(argv[:2])}: not started, the run is ending")
    command = _command(argv, "run")
    out_chunks: list[str] = []
    pending = [""]

    def collect(chunk: str) -> None:
        """Keep all output; hand each line (or \\r-ended progress update) to on_output."""
        out_chunks.append(chunk)
        if on_output is None:
            return
        *done, pending[0] = re.split(r"[\r\n]", pending[0] + chunk)
        for segment in done:
            if segment.strip():
                on_output(segment)

    err_lines: list[str] = []

    def collect_err(line: str) -> None:
        err_lines.append(line)
        if on_stderr is not None:
            on_stderr(line.rstrip("\n"))

    running = command(
        *argv[1:],
        _ok_code=list(range(-64, 256)),  # a signal's death is an exit code like any other
        _return_cmd=True,
        _tty_out=False,
        _cwd=os.fspath(cwd) if cwd is not None else None,
        _env=dict(env) if env is not None else dict(os.environ),
        _out=collect,
        _out_bufsize=0 if on_output else 1,
        _decode_errors="surrogateescape",
        _bg=True,
        _bg_exc=False,
        _in=input if input is not None else b"",  # else sh feeds a queue, polled every 0.1 s
        **({"_err": collect_err, "_err_bufsize": 1} if on_stderr is not None else {}),
    )
    stdout = _wait(running, out_chunks)
    stderr = ("".join(err_lines) if on_stderr is not None
              else running.stderr.decode("utf-8", "surrogateescape"))  # fmt: skip
    return _judged(Result(argv, running.exit_code, stdout, stderr), ok_codes)


def _command(argv: Sequence[str], how: str) -> sh.Command:
    """argv's program, found on the PATH; the command line logged (secrets masked)."""
    log.debug("%s: %s", how, show(argv))
    try:
        return sh.Command(argv[0])
    except sh.CommandNotFound:
        raise CommandFailed(f"command not found: {argv[0]}") from None


def _judged(result: Result, ok_codes: Sequence[int]) -> Result:
    """The result, or CommandFailed naming its cause when its exit code is not ok."""
    log.debug("exit %d: %s", result.exit_code, result.argv[0])
    if result.exit_code not in ok_codes:
        detail = result.last_error_line or f"exit code {result.exit_code}"
        if result.exit_code < 0:
            detail = f"killed by {signal.Signals(-result.exit_code).name}"
        argv = result.argv
        shown = show(argv[:3]) + (" ..." if len(argv) > 3 else "")
        raise CommandFailed(f"{shown} failed (exit {result.exit_code}): {detail}", result)
    return result


def _wait(running: object, out_chunks: list[str]) -> str:
    """Wait for a started command (listed for run_many meanwhile); its whole output."""
    _live[id(running)] = running
    try:
        running.wait()  # type: ignore[attr-defined]
    except BaseException:  # a signal: the command's work is abandoned with the run
        _kill(running)
        raise
    finally:
        _live.pop(id(running), None)
    return "".join(out_chunks)


_live: dict[int, object] = {}  # commands under way, so that run_many can end them
_abandon = threading.Event()  # run_many is ending its jobs: start nothing new
T = TypeVar("T")


def _kill(running: object) -> None:
    try:
        running.kill()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 (it may have ended on its own meanwhile)
        pass


def run_many(jobs: Sequence[Callable[[], T]]) -> list[T]:
    """Run jobs (each calling `run`) side by side; on failure or signal end them all."""
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    if len(jobs) <= 1:
        return [job() for job in jobs]
    pool = ThreadPoolExecutor(max_workers=len(jobs))
    futures = [pool.submit(job) for job in jobs]
    try:
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f.exception() for f in done if f.exception() is not None]
        if failed:
            raise failed[0]
        return [f.result() for f in futures]
    except BaseException:
        _abandon.set()  # a job still walking its files starts no command after this
        for running in list(_live.values()):
            _kill(running)
        pool.shutdown(wait=True, cancel_futures=True)  # no job outlives the failure
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        _abandon.clear()


class Session:
    """A command kept running in the background while its standard input stays open.

    For a remote lock: `ssh HOST flock ... cat` holds the lock until `close()` (or
    until this process dies: the pipe closes with it). Its own session, so a Ctrl-C
    at the terminal does not end it before the run has put the stack back.
    """

    def __init__(self, argv: Sequence[str]):
        self.argv = tuple(os.fsdecode(a) for a in argv)
        log.debug("start: %s", show(self.argv))
        self._err = tempfile.TemporaryFile()  # never a full pipe that would stall it
        try:
            self._proc = subprocess.Popen(
                self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err,
                start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            self._err.close()
            raise CommandFailed(f"cannot run {self.argv[0]}: {exc.strerror}") from None

    def first_line(self) -> str:
        """The first line the command prints ('' if it ends first)."""
        assert self._proc.stdout is not None
        return self._proc.stdout.readline().decode("utf-8", "surrogateescape").rstrip("\n")

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def close(self, timeout: float = 30) -> Result:
        """End of input: the command ends; its exit code and the rest of its output."""
        proc = self._proc
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        self._err.seek(0)
        err = self._err.read()
        self._err.close()
        log.debug("exit %d: %s", proc.returncode, self.argv[0])
        text = ((b or b"").decode("utf-8", "surrogateescape") for b in (out, err))
        return Result(self.argv, proc.returncode, *text)


@dataclass
class Watch:
    """A command left running in the background (a stream such as `docker events`): the
    lines it printed so far, and whether it still runs (a dead stream proves nothing)."""

    lines: list[str]
    running: object

    def alive(self) -> bool:
        return bool(self.running.is_alive())  # type: ignore[attr-defined]


@contextmanager
def watching(argv: Sequence[str]) -> Iterator[Watch]:
    """Run argv in the background while the block runs; ended on every path."""
    argv = tuple(os.fsdecode(a) for a in argv)
    command = _command(argv, "watch")
    lines: list[str] = []
    running = command(*argv[1:], _bg=True, _bg_exc=False, _ok_code=list(range(-64, 256)),
                      _out=lambda line: lines.append(line.rstrip("\n")), _out_bufsize=1,
                      _decode_errors="surrogateescape", _in=b"", _env=dict(os.environ))  # fmt: skip
    try:
        yield Watch(lines, running)
    finally:
        _kill(running)
        try:
            running.wait()  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 (killed: its exit code says so, nothing to judge)
            pass
