"""The one process boundary, on real commands: what a command prints reaches its caller
whole and as it comes, its exit decides, and nothing it leaves behind holds the run."""

from __future__ import annotations

import os
import time

import pytest

from klink_sync import process


def test_output_error_and_input_reach_the_caller():
    seen, errors = [], []
    result = process.run(
        ["sh", "-c", "cat; printf 'one\\rtwo\\nthree\\n'; echo warn >&2"],
        input=b"fed\n", on_output=seen.append, on_stderr=errors.append,
    )  # fmt: skip
    assert result.stdout == "fed\none\rtwo\nthree\n"
    assert seen == ["fed", "one", "two", "three"]  # \r-ended progress updates too
    assert errors == ["warn"] and result.stderr == "warn\n"


def test_undecodable_output_is_kept_not_fatal():
    result = process.run(["printf", "\\377ok"])
    assert result.stdout.encode("utf-8", "surrogateescape") == b"\xffok"


def test_a_failure_names_its_cause_and_a_signal_its_name():
    with pytest.raises(process.CommandFailed, match=r"exit 3\): write failed: No space"):
        process.run(["sh", "-c", "echo 'write failed: No space left' >&2; echo x >&2; exit 3"])
    with pytest.raises(process.CommandFailed, match="killed by SIGTERM"):
        process.run(["sh", "-c", "kill -TERM $$"])
    assert process.run(["sh", "-c", "exit 3"], ok_codes=(0, 3)).exit_code == 3


def test_a_missing_command_or_folder_is_one_line():
    with pytest.raises(process.CommandFailed, match="^command not found: no-such-command-x$"):
        process.run(["no-such-command-x"])
    with pytest.raises(process.CommandFailed, match="cannot run true in /no/such/folder"):
        process.run(["true"], cwd="/no/such/folder")


def test_a_command_in_a_folder_is_told_where_it_is(tmp_path):
    """PWD as a shell sets it: restic (Go) otherwise stats its way back to its folder for
    every file of `restic backup .`."""
    out = process.run(["sh", "-c", 'echo "$PWD"'], cwd=tmp_path, env={"PWD": "/elsewhere"})
    assert out.stdout.strip() == str(tmp_path)


def test_a_daemon_left_holding_the_pipe_does_not_hold_the_run():
    began = time.monotonic()
    result = process.run(["sh", "-c", "echo done; sleep 30 & exit 0"])
    assert result.stdout.startswith("done") and time.monotonic() - began < 10


def test_watching_collects_lines_and_ends_the_command():
    with process.watching(["sh", "-c", "echo a; echo b; exec sleep 30"]) as watch:
        deadline = time.monotonic() + 5
        while len(watch.lines) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert watch.lines == ["a", "b"] and watch.alive()
        pid = watch.running.pid
    assert not watch.alive()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_run_many_ends_the_others_when_one_fails(tmp_path):
    marker = tmp_path / "finished"
    jobs = [lambda: process.run(["sh", "-c", f"sleep 5; touch {marker}"]),
            lambda: process.run(["sh", "-c", "exit 4"])]  # fmt: skip
    began = time.monotonic()
    with pytest.raises(process.CommandFailed, match="exit 4"):
        process.run_many(jobs)
    assert time.monotonic() - began < 4
    time.sleep(0.2)
    assert not marker.exists()


def test_a_realtime_signal_is_named_by_its_number():
    """Signals 35-63 have no name in Python's enum: the error says the number, no
    traceback."""
    with pytest.raises(process.CommandFailed, match="killed by signal 40"):
        process.run(["sh", "-c", "kill -40 $$"])


def test_a_last_error_line_without_newline_survives_a_daemon_holding_the_pipe():
    with pytest.raises(process.CommandFailed, match=r"\(exit 3\): fatal: the cause$"):
        process.run(["sh", "-c", "printf 'fatal: the %s' cause >&2; sleep 30 & exit 3"])


def test_a_command_runs_in_its_own_process_group():
    """A Ctrl-C at the terminal reaches klink-sync only: the restart it is running is not
    cut short under it."""
    result = process.run(["sh", "-c", "ps -o pgid= -p $$"])
    assert int(result.stdout) != os.getpgrp()


def test_a_command_started_as_run_many_ends_the_others_is_ended_too(monkeypatch):
    """A job that had passed the 'the run is ending' check as the others were ended starts
    its command after the ending: it is ended too, not waited for."""
    started = process._start

    def start_then_abandon(*args, **kwargs):
        proc = started(*args, **kwargs)
        process._abandon.set()  # run_many ends its jobs in this very instant
        return proc

    monkeypatch.setattr(process, "_start", start_then_abandon)
    began = time.monotonic()
    try:
        with pytest.raises(process.CommandFailed, match="killed by SIGKILL"):
            process.run(["sleep", "5"])
    finally:
        process._abandon.clear()
    assert time.monotonic() - began < 3


def test_a_command_ended_by_a_signal_is_reaped_before_the_run_goes_on(monkeypatch):
    """A killed restic left as a zombie still 'exists': the next restic takes its lock for
    a live one's and refuses to remove it."""
    import signal

    started = process._start
    procs = []
    monkeypatch.setattr(process, "_start", lambda *a, **k: procs.append(started(*a, **k))
                        or procs[-1])  # fmt: skip

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(KeyboardInterrupt):
            process.run(["sleep", "5"])
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert not os.path.exists(f"/proc/{procs[0].pid}")


def _on_a_terminal(code: str) -> str:
    """What a Python child prints when it runs `code` on a terminal of its own (a pty as
    its controlling terminal, as an admin's shell has)."""
    import pty
    import sys

    pid, fd = pty.fork()
    if pid == 0:  # the child: never back into pytest
        os.execv(sys.executable, [sys.executable, "-c", code])
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.waitpid(pid, 0)
    return out.decode()


def test_no_command_asks_at_the_terminal():
    """A prompt (ssh's unknown host key, a hook asking) in a background group of the
    terminal would stop the run for good (SIGTTIN): every command, a hook too, runs
    without a terminal, and its prompt fails at once."""
    code = ("from klink_sync import process; print(process.run(['sh', '-c', "
            "'(exec 3</dev/tty) 2>/dev/null && echo opened || echo refused']).stdout)")
    assert "refused" in _on_a_terminal(code)


def test_an_ended_command_takes_its_children_with_it(tmp_path):
    """A wrapper script (a compose or rsync stand-in, a hook) ends with its children: none
    goes on writing after klink-sync gave up on it."""
    import signal

    marker = tmp_path / "child-wrote"
    previous = signal.signal(signal.SIGALRM, _interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(KeyboardInterrupt):
            process.run(["sh", "-c", f"(sleep 1; touch {marker}) & wait"])
    finally:
        signal.signal(signal.SIGALRM, previous)
    time.sleep(1.5)
    assert not marker.exists()


def test_a_signal_as_the_command_starts_ends_it(monkeypatch):
    """Between the start and the wait (the output's threads being made) a signal must
    end the command too, not leave it running unwatched."""
    started, procs = process._start, []
    monkeypatch.setattr(process, "_start", lambda *a, **k: procs.append(started(*a, **k))
                        or procs[-1])  # fmt: skip

    def signal_arrives(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(process, "_reader", signal_arrives)
    with pytest.raises(KeyboardInterrupt):
        process.run(["sleep", "5"])
    assert procs[0].returncode is not None and not os.path.exists(f"/proc/{procs[0].pid}")


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt


def test_a_secret_is_masked_as_a_tool_quotes_it():
    """Compose quotes a bad .env value Go's way: the escaped form is the secret too."""
    process.add_secrets(['Sup3r"S3cret\\x'])
    assert process.mask('Invalid template: "Sup3r\\"S3cret\\\\x"') == \
        'Invalid template: "*****"'


@pytest.mark.parametrize("value, quoted", [
    ("Zq9\u00a0Lm4", "Zq9\\u00a0Lm4"), ("a\vb\ac", "a\\vb\\ac"), ("x\x7fy\x01", "x\\x7fy\\x01"),
    ("p\u2028q\ue000", "p\\u2028q\\ue000"), ("pw\U0010fffdxy", "pw\\U0010fffdxy"),
    ('q"\\ é€😀 ok', 'q\\"\\\\ é€😀 ok'), ("bad\udcff", "bad\\xff"),
])  # fmt: skip
def test_a_secret_is_masked_as_go_quotes_it(value, quoted):
    """Go's strconv.Quote, as Compose quotes a value it refuses (`Invalid template:
    "..."`; the e2e test and `docker compose config` show the same forms)."""
    process.add_secrets([value])
    assert process.mask(f'Invalid template: "{quoted}"') == 'Invalid template: "*****"'


@pytest.mark.parametrize("shown", ["Zq9\\v🛜Lm4PwX", "Zq9\\v\\U0001f6dcLm4PwX",
                                   "Zq9\\u000b\\U0001f6dcLm4PwX", "Zq9\\u000B🛜Lm4PwX"])
def test_a_secret_is_masked_whichever_unicode_tables_the_tool_has(shown):
    """Review: Go's tables (Unicode 15) print 🛜 as is, Python 3.11's (14) call it
    unassigned and escape it: each character may come either way."""
    process.add_secrets(["Zq9\v🛜Lm4PwX"])
    assert process.mask(f'Invalid template: "{shown}"') == 'Invalid template: "*****"'


def test_a_secret_in_a_command_line_is_masked_before_the_shell_quoting():
    """Review: a `'` in a password became `'"'"'` in the logged command line, unmasked."""
    process.add_secrets(["Zr8'pQ-4e1d9c"])
    assert "pQ-4e1d9c" not in process.show(["mariadb-admin", "--password=Zr8'pQ-4e1d9c"])


def test_a_secret_of_many_lines_is_masked_line_by_line_too():
    """Review: a key of several lines was logged a line at a time, each line unmasked."""
    key = "MIIEvQIBADANBgkqhkiG9w0\nBKcwggSjAgEAAoIBAQC7\u2028MzEfYyjiWA4R4"
    process.add_secrets([key])
    for piece in key.splitlines():
        assert process.mask(f"before hook: {piece}") == "before hook: *****"
    failed = process.run(["sh", "-c", f"printf '%s' '{key}' >&2; exit 1"], ok_codes=(0, 1))
    assert "AQC7" not in failed.last_error_line


def test_masking_a_run_of_backslashes_takes_no_time():
    """Review: a secret of many backslashes against a text of many made the mask try
    every way to split them (exponential)."""
    process.add_secrets(["\\" * 20 + "Z"])  # never found: every split would be tried
    began = time.monotonic()
    process.mask("\\" * 200)
    assert time.monotonic() - began < 1


@pytest.mark.parametrize("secret", ["ab\\\\cdef", "pw\\u005cxyz", "pw\\x5cabc", "abc\\\\\\def"])
def test_a_secret_with_backslashes_is_masked_as_it_is(secret):
    """Review: the atomic alternatives took a raw `\\\\` for one escaped backslash and
    then missed the rest of the secret, as is and in a command line."""
    process.add_secrets([secret])
    assert process.mask(f"raw: {secret}.") == "raw: *****."
    assert secret not in process.show(["echo", secret])


@pytest.mark.parametrize("secret, shown", [
    ("p\U0001f6dcssword", "p\\uD83D\\uDEDCssword"),  # a surrogate pair, digits upper
    ("it's-secret", "'-pit'\\''s-secret'"),  # `set -x` of a hook, shell-quoted
    ("it's-secret", "'it'\"'\"'s-secret'"),
    ("it's \"q\"-x", "'it\\'s \"q\"-x'"),  # Python's repr
])  # fmt: skip
def test_a_secret_is_masked_as_more_tools_print_it(secret, shown):
    """Review: upper-case surrogate pairs (.NET, Jackson), a quote as a shell or Python's
    repr writes it."""
    process.add_secrets([secret])
    assert "*****" in process.mask(shown) and "ssword" not in process.mask(shown)
    assert "secret" not in process.mask(shown) and "-x" not in process.mask(shown)


@pytest.mark.parametrize("short", ["e", " ", "\\", "abc"])
def test_a_value_too_short_to_mask_is_not_registered(short):
    """Review: a one-character database password blanked every `e` of every message."""
    process.add_secrets([short])
    assert process.mask("ERROR: connection refused: no route \\ to host abc") == \
        "ERROR: connection refused: no route \\ to host abc"


@pytest.mark.parametrize("secret", ["pa\\\\ss'word", "\\x5c'abcd", "it's\\u005c-x"])
def test_a_secret_shell_quoted_with_backslashes_is_masked(secret):
    """Review: inside a shell's single quotes backslashes stay as they are; the escaped
    forms' pattern took `\\\\` for one backslash and missed the quote after it."""
    import shlex

    process.add_secrets([secret])
    bash_style = "'" + secret.replace("'", "'\\''") + "'"
    for text in (shlex.quote(secret), bash_style):
        masked = process.mask(f"+ mysqldump --password={text}")
        assert masked == "+ mysqldump --password='*****'", masked  # the quotes are the shell's
