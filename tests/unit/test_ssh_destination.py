"""destination/ssh.py's pure parts: reading `[user@]host:/path`, ssh and rsync command lines."""

from __future__ import annotations

import shlex
from pathlib import PurePosixPath

import pytest

from klink_sync import systemd
from klink_sync.config import check_settings
from klink_sync.destination import ssh as remote
from klink_sync.destination.ssh import SSH_DEFAULTS, is_remote, rsh
from klink_sync.destination.ssh import SshDestination as RemoteDestination
from klink_sync.errors import UsageError


@pytest.mark.parametrize("text", ["root@127.0.0.1:/backup", "nas:/srv/k-link", "b@h:/",
                                  "u@[::1]:/b", "host.example.org:/a b/c'd", "h:relative"])
def test_remote_forms(text: str) -> None:
    assert is_remote(text)


@pytest.mark.parametrize("text", ["/mnt/backup", "./nas:/x", "backup", "/a/b:c", "", None,
                                  "../h:/x", "a/b@h:/x"])  # fmt: skip
def test_local_forms(text) -> None:
    assert not is_remote(text)


def test_parts_of_a_remote_destination() -> None:
    dest = RemoteDestination("backup@nas.example:/srv/backup//k-link/", ())
    assert dest.host == "backup@nas.example" and dest.rsync_host == "backup@nas.example"
    assert dest.root == PurePosixPath("/srv/backup/k-link")
    assert dest.spec == "backup@nas.example:/srv/backup//k-link/"  # as the user wrote it
    assert dest.path(".staging") == "/srv/backup/k-link/.staging"
    assert dest.path("snapshots") == "/srv/backup/k-link/snapshots"
    assert dest.rsync_address(dest.path(".staging/folder")) == (
        "backup@nas.example:/srv/backup/k-link/.staging/folder")
    v6 = RemoteDestination("root@[fd00::2]:/b", ())
    assert v6.host == "root@fd00::2" and v6.rsync_address("/b") == "root@[fd00::2]:/b"


@pytest.mark.parametrize("text, why", [
    ("nas:backup", "absolute path"),
    ("-oProxyCommand=x:/b", "cannot start with '-'"),
    ("-l@h:/b", "cannot start with '-'"),
])  # fmt: skip
def test_refused_remote_destinations(text: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        RemoteDestination(text, ())


def test_remote_commands_are_one_quoted_string_with_every_argument_intact() -> None:
    odd = "/srv/back up/$(touch x)/'q'/\"d\"/new\nline/;&|*"
    dest = RemoteDestination(f"u@h:{odd}", ("-p", "2222"))
    argv = dest.ssh_argv("cat", str(dest.root), "-n")
    assert argv[:5] == ("ssh", "-p", "2222", "u@h", "--") and len(argv) == 6
    # what the remote login shell splits it into: exactly the argv we meant
    assert shlex.split(argv[5]) == ["sh", "-c", remote.script("cat"), "klink-sync", odd, "-n"]


def test_rsync_reaches_the_host_through_ssh_with_its_options() -> None:
    dest = RemoteDestination("u@h:/b", ("-p", "2222", "-i", "/keys/my key", "-o",
                                        "ProxyCommand=nc 'x' %h"))  # fmt: skip
    argv = dest.rsync_argv(("rsync", "-a", "src/", "u@h:/b/"))
    assert argv[:3] == ("rsync", "-e",
                        "ssh -p 2222 -i '/keys/my key' -o \"ProxyCommand=nc 'x' %h\"")
    assert argv[3] == "--protect-args" and argv[4:] == ("-a", "src/", "u@h:/b/")
    assert rsh(["ssh", ""]) == "ssh ''"
    with pytest.raises(UsageError):
        rsh(["ssh", "both ' and \""])


def test_ssh_options_environment_wins_over_the_config(monkeypatch) -> None:
    monkeypatch.delenv(remote.SSH_ENV, raising=False)
    assert remote.ssh_options(["-p", "22"]) == ("-p", "22", *SSH_DEFAULTS)
    monkeypatch.setenv(remote.SSH_ENV, "-p 2222 -i '/root/my key'")
    assert remote.ssh_options(["-p", "22"]) == ("-p", "2222", "-i", "/root/my key", *SSH_DEFAULTS)
    monkeypatch.setenv(remote.SSH_ENV, "-i 'unclosed")
    with pytest.raises(UsageError, match=remote.SSH_ENV):
        remote.ssh_options()
    assert "BatchMode=yes" in SSH_DEFAULTS  # unattended: never a password prompt


def test_find_times_become_nanoseconds() -> None:
    assert remote._mtime_ns("1700000000.1234567890") == 1_700_000_000_123_456_789
    assert remote._mtime_ns("1700000000") == 1_700_000_000_000_000_000
    assert remote._mtime_ns("1700000000.5") // 10**9 == 1_700_000_000


def test_config_ssh_options() -> None:
    settings, problems = check_settings({"dest": "u@h:/b", "ssh_options": ["-p", 2222]}, "c.yml")
    assert problems == [] and settings.ssh_options == ("-p", "2222")
    _, problems = check_settings({"ssh_options": ["-p", True, "", ["x"], "a\nb"]}, "c.yml")
    assert problems == ["c.yml: ssh_options[1]: must be a string",
                        "c.yml: ssh_options[2]: must be a non-empty string on one line",
                        "c.yml: ssh_options[3]: must be a string",
                        "c.yml: ssh_options[4]: must be a non-empty string on one line"]
    _, problems = check_settings({"ssh_options": "-p 22"}, "c.yml")
    assert problems == ["c.yml: ssh_options: must be a list"]


def test_a_remote_destination_is_not_a_path_the_service_writes() -> None:
    assert systemd.writable_paths("backup@nas:/srv/b", "/var/lib/n/k.prom") == ["/var/lib/n"]
    assert systemd.writable_paths("/mnt/a:b", None) == ["/mnt/a:b"]
