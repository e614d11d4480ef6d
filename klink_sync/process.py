"""The one process boundary: every external command runs through `run`.

Command lines arrive as plain tuples built by pure functions; here they are
logged (secrets masked), executed (never through a shell), and their exit codes mapped.
Only the standard library: a command such as `offsite push` pays for no more start-up
than the work needs.
"""

from __future__ import annotations

import codecs
import logging
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TypeVar

from .errors import KlinkSyncError

log = logging.getLogger(__name__)

_secrets: dict[str, tuple[re.Pattern, ...]] = {}  # each with the patterns of its printed forms
MASK = "*****"
MIN_SECRET = 4  # shorter values would mask ordinary text everywhere (every `e`)
# s: a command's output is read this long after it ended (a daemon it left holds the pipe)
OUTPUT_GRACE = 2.0
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
        lines = [line.strip() for line in mask(self.stderr).splitlines() if line.strip()]
        causes = [line for line in lines if _CAUSE.search(line)]
        return (causes or lines or [""])[0 if causes else -1]


def add_secrets(values: Iterable[str]) -> None:
    """Register values that must never appear in logs or messages, in every form a tool
    may quote them in: as they are, and each character escaped as JSON, Go (Compose's
    `Invalid template: "..."`), Python's repr or a shell would write it; a value of many
    lines line by line too. Under MIN_SECRET characters a value is not registered."""
    for value in (v for v in values if len(v) >= MIN_SECRET):
        lines = value.splitlines()  # a tool may print a key of many lines a line at a time
        pieces = {line for line in lines if len(line) >= 6} if len(lines) > 1 else set()
        for secret in {value, *pieces} - _secrets.keys():
            _secrets[secret] = tuple(re.compile(p) for p in _patterns(secret))


def _patterns(secret: str) -> list[str]:
    """Escaped (JSON, Go, repr: each character as is or escaped) and, with a `'` in it,
    shell-quoted: inside a shell's single quotes every character is as it is, backslashes
    too, and only the quote is written otherwise (`'\\''`, `'"'"'`)."""
    found = ["".join(map(_char_pattern, secret))]
    if "'" in secret:
        found.append("".join("(?:'\\\\''|'\"'\"'|')" if c == "'" else re.escape(c) for c in secret))
    return found


# the escapes Go's strconv.Quote and JSON write for a character (besides \\xNN, \\uNNNN)
_NAMED_ESCAPES = {"\a": ("\\a",), "\b": ("\\b",), "\f": ("\\f",), "\n": ("\\n",),
                  "\r": ("\\r",), "\t": ("\\t",), "\v": ("\\v",), '"': ('\\"',),
                  "\\": ("\\\\",), "/": ("\\/",),
                  "'": ("\\'",)}  # Python's repr (a shell's quoting: _patterns)


def _char_pattern(char: str) -> str:
    """One character of a secret as a tool may print it: as is, or escaped by name or by
    code (Go escapes what its Unicode tables call unprintable, and those tables are not
    Python's: any character may come either way)."""
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8 (surrogateescape)
        forms = {f"\\x{code - 0xDC00:02x}"}
    else:
        hexes = [f"\\U{code:08x}"]
        if code < 0x100:
            hexes.append(f"\\x{code:02x}")
        if code <= 0xFFFF:
            hexes.append(f"\\u{code:04x}")
        else:  # JSON's surrogate pair
            high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
            hexes.append(f"\\u{high:04x}\\u{low:04x}")
        hexes += [re.sub(r"(?<=\\[uUx])[0-9a-f]+", lambda m: m[0].upper(), h)
                  for h in hexes]  # some tools write the digits upper  # fmt: skip
        forms = {char, *_NAMED_ESCAPES.get(char, ()), *hexes}
    # atomic: a run of backslashes is never split every way (exponential) to find a match
    return "(?>" + "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)) + ")"


def mask(text: str) -> str:
    """Each secret as it is first (the pattern's atomic alternatives may take a raw `\\\\`
    for one escaped backslash and miss it), then in its printed forms."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
        for pattern in _secrets[secret]:
            text = pattern.sub(MASK, text)
    return text


def show(argv: Sequence[str]) -> str:
    """A command line as a user could paste it, with secrets masked."""
    import shlex

    return mask(" ".join(shlex.quote(mask(os.fsdecode(a))) for a in argv))  # then quoted


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
    `input`: its standard input (else end of file); `on_output`: each line (or \\r-ended
    progress update) of its standard output as it comes; `on_stderr`: each line of its
    standard error as it comes (a log whose timing matters). Both are kept whole in the
    Result."""
    argv = tuple(os.fsdecode(a) for a in argv)
    if _abandon.is_set():
        raise CommandFailed(f"{show(argv[:2])}: not started, the run is ending")
    stdin = subprocess.PIPE if input else subprocess.DEVNULL
    out_chunks: list[str] = []
    err_chunks: list[str] = []

    def collect(chunk: str) -> None:
        out_chunks.append(chunk)

    def collect_err(chunk: str) -> None:
        err_chunks.append(chunk)

    takers = [collect, collect_err]
    if on_output is not None:
        takers[0] = _and_segments(collect, on_output, r"[\r\n]")
    if on_stderr is not None:
        takers[1] = _and_segments(collect_err, on_stderr, r"\n")
    with _started(argv, "run", cwd, env, stdin) as proc:
        readers = [_reader(proc.stdout, takers[0]), _reader(proc.stderr, takers[1])]
        if input:
            readers.append(_writer(proc, input))
        proc.wait()
    _drain(readers)
    return _judged(Result(argv, proc.returncode, "".join(out_chunks), "".join(err_chunks)),
                   ok_codes)  # fmt: skip


def _and_segments(keep: Callable[[str], None], each: Callable[[str], None], ends: str
                  ) -> Callable[[str], None]:  # fmt: skip
    """A taker of chunks that keeps each whole (`keep`), and hands every non-blank segment
    ended by `ends` to `each` as it completes."""
    pending = [""]

    def take(chunk: str) -> None:
        keep(chunk)
        *done, pending[0] = re.split(ends, pending[0] + chunk)
        for segment in done:
            if segment.strip():
                each(segment)

    return take


def _start(argv: Sequence[str], how: str, cwd: str | os.PathLike | None,
           env: Mapping[str, str] | None, stdin: int) -> subprocess.Popen:
    """argv started with its output piped (the command line logged, secrets masked). In a
    folder (`cwd`) it is told where it is (PWD), as a shell tells it: a Go program (restic)
    otherwise stats its way back to its folder for every relative path it reads.

    In a session of its own, hooks too: a Ctrl-C at the terminal is klink-sync's to act
    on (a `compose start` of the restart is not cut short under it), a prompt (ssh's
    unknown host key, a hook asking) fails at once instead of waiting for an answer no one
    sees, the whole command, its children too, can be ended as one group, and its own
    `kill 0` (a script ending its children) ends that group, never klink-sync."""
    if log.isEnabledFor(logging.DEBUG):  # masking costs a pattern a secret: only for -v
        log.debug("%s: %s", how, show(argv))
    environment = dict(env if env is not None else os.environ)
    if cwd is not None:
        environment["PWD"] = os.path.abspath(cwd)
    try:
        return subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=cwd, env=environment,
                                start_new_session=True)  # fmt: skip
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and exc.filename == argv[0]:
            raise CommandFailed(f"command not found: {argv[0]}") from None
        where = f" in {os.fspath(cwd)}" if cwd is not None else ""
        raise CommandFailed(f"cannot run {argv[0]}{where}: {exc.strerror}") from None


@contextmanager
def _started(argv: Sequence[str], how: str, cwd: str | os.PathLike | None,
             env: Mapping[str, str] | None, stdin: int) -> Iterator[subprocess.Popen]:
    """A started command, listed for run_many while the block runs; a signal (or any
    error) from its start on ends it, its children too, and reaps it."""
    proc = _start(argv, how, cwd, env, stdin)
    _live[id(proc)] = proc
    try:
        if _abandon.is_set():  # run_many ended the others while this one was starting
            _kill(proc)
        yield proc
    except BaseException:  # a signal: the command's work is abandoned with the run
        _kill(proc)
        _reap(proc)
        raise
    finally:
        _live.pop(id(proc), None)


def _judged(result: Result, ok_codes: Sequence[int]) -> Result:
    """The result, or CommandFailed naming its cause when its exit code is not ok."""
    log.debug("exit %d: %s", result.exit_code, result.argv[0])
    if result.exit_code not in ok_codes:
        detail = result.last_error_line or f"exit code {result.exit_code}"
        if result.exit_code < 0:
            detail = f"killed by {_signal_name(-result.exit_code)}"
        argv = result.argv
        shown = show(argv[:3]) + (" ..." if len(argv) > 3 else "")
        raise CommandFailed(f"{shown} failed (exit {result.exit_code}): {detail}", result)
    return result


def _signal_name(number: int) -> str:
    """SIGTERM, or 'signal 40' for one Python has no name for (a real-time signal)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _reader(stream: IO[bytes] | None, take: Callable[[str], None]) -> threading.Thread:
    """A thread handing what a pipe brings to `take` as it arrives, decoded (undecodable
    bytes kept as surrogates). Never a line at a time: a last line without its newline
    reaches the caller even when a daemon the command left holds the pipe open."""
    assert stream is not None

    def pump() -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        with stream:
            for chunk in iter(lambda: os.read(stream.fileno(), 1 << 16), b""):
                text = decoder.decode(chunk)
                if text:
                    take(text)
            rest = decoder.decode(b"", final=True)
            if rest:
                take(rest)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def _writer(proc: subprocess.Popen, data: bytes) -> threading.Thread:
    """A thread feeding `data` to the command's input, then closing it (a command that
    stops reading early only ends the feeding)."""
    assert proc.stdin is not None
    stdin = proc.stdin

    def feed() -> None:
        try:
            with stdin:
                stdin.write(data)
        except OSError:
            pass

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return thread


def _drain(threads: Sequence[threading.Thread]) -> None:
    """Wait for a command's output; a grandchild that keeps the pipes open is not waited
    for past OUTPUT_GRACE."""
    ends = time.monotonic() + OUTPUT_GRACE
    for thread in threads:
        thread.join(max(0.0, ends - time.monotonic()))


_live: dict[int, object] = {}  # commands under way, so that run_many can end them
_abandon = threading.Event()  # run_many is ending its jobs: start nothing new
T = TypeVar("T")


def _kill(running: subprocess.Popen) -> None:
    """End a command: its whole process group when it leads one (a wrapper script's
    children too), else the process alone."""
    if running.poll() is not None:
        return
    try:
        if os.getpgid(running.pid) == running.pid:
            os.killpg(running.pid, signal.SIGKILL)
        else:
            running.kill()
    except OSError:  # it ended on its own meanwhile
        pass


def _reap(proc: subprocess.Popen) -> None:
    """Wait for a killed command to be gone: until its parent reaps it, its process still
    exists, and restic takes the lock of a dead push for a live one's."""
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        log.warning("%s (pid %d) has not ended 10 s after it was killed", proc.args[0], proc.pid)


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
    running: subprocess.Popen

    def alive(self) -> bool:
        return self.running.poll() is None


@contextmanager
def watching(argv: Sequence[str]) -> Iterator[Watch]:
    """Run argv in the background while the block runs; ended on every path."""
    argv = tuple(os.fsdecode(a) for a in argv)
    lines: list[str] = []
    with _started(argv, "watch", None, None, subprocess.DEVNULL) as proc:
        readers = [_reader(proc.stdout, _and_segments(lambda _chunk: None, lines.append,
                                                      r"\n")),
                   _reader(proc.stderr, lambda _chunk: None)]  # fmt: skip
        try:
            yield Watch(lines, proc)
        finally:
            _kill(proc)
            proc.wait()
    _drain(readers)
