"""A throwaway OpenSSH server on 127.0.0.1, for remote destinations (`user@host:/path`).

Its own host key, authorized key, config and pid file in a temporary folder; root may
log in with the throwaway key only; it serves the sftp subsystem too (restic's `sftp:`).
`import` the `sshd` fixture into a test module.
No skips: a missing sshd fails (scripts/install-deps.sh installs openssh-server).
"""

from __future__ import annotations

import getpass
import os
import shlex
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import free_port, wait_until_ready

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class Sshd:
    port: int
    key: Path
    user: str
    base: Path  # below it, far/: a folder the server sees and this side does not

    def far(self, name: str) -> tuple[str, Path]:
        """A destination on a folder only the server sees (as on a real backup host: this
        side's same path is an empty folder), and where its files really are, to check."""
        return self.dest(self.base / "far" / name), self.base / "far-real" / name

    @property
    def options(self) -> list[str]:
        """ssh options for klink-sync's ssh_options / KLINK_SYNC_SSH."""
        return ["-p", str(self.port), "-i", str(self.key), "-o", "IdentitiesOnly=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR", "-o", "BatchMode=yes"]  # fmt: skip

    @property
    def sftp_command(self) -> str:
        """restic's `-o sftp.command=...`: ssh to this server with its port and key, asking
        for the sftp subsystem (restic then ignores the repository's user and host)."""
        return "ssh " + shlex.join([*self.options, f"{self.user}@127.0.0.1", "-s", "sftp"])

    @property
    def env(self) -> dict[str, str]:
        return {"KLINK_SYNC_SSH": shlex.join(self.options)}

    def dest(self, path: Path | str) -> str:
        return f"{self.user}@127.0.0.1:{path}"

    def ssh(self, *command: str) -> subprocess.CompletedProcess:
        """Run a command on the server, as klink-sync would reach it."""
        return subprocess.run(["ssh", *self.options, f"{self.user}@127.0.0.1", "--",
                               shlex.join(command)], capture_output=True, text=True,
                              timeout=60)  # fmt: skip


def _listens(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


@pytest.fixture(scope="session")
def sshd(tmp_path_factory) -> Sshd:
    if not os.path.exists(SSHD):
        pytest.fail(f"{SSHD} is missing: run scripts/install-deps.sh (openssh-server)")
    base = tmp_path_factory.mktemp("sshd")
    os.chmod(base, 0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / "host_key")],
                   check=True)  # fmt: skip
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / "client_key")],
                   check=True)  # fmt: skip
    (base / "authorized_keys").write_text((base / "client_key.pub").read_text())
    port = free_port()
    config = base / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {base / 'host_key'}",
        f"AuthorizedKeysFile {base / 'authorized_keys'}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "StrictModes no",
        "UsePAM no",
        f"PidFile {base / 'sshd.pid'}",
        "MaxStartups 100:30:200",  # the tests open many short sessions at once
        "MaxSessions 50",
        "Subsystem sftp internal-sftp",  # restic's sftp: repositories (no extra binary)
        "",
    ]))  # fmt: skip
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation directory
    log = base / "sshd.log"
    (base / "far").mkdir()
    (base / "far-real").mkdir()
    # The server's own view of base/far is base/far-real, in a mount namespace of its own.
    serve = (f"mount --bind {shlex.quote(str(base / 'far-real'))} {shlex.quote(str(base / 'far'))}"
             f" && exec {SSHD} -D -e -f {shlex.quote(str(config))}")
    with open(log, "wb") as out:
        proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", serve],
                                stdout=out, stderr=out)  # fmt: skip
    try:
        wait_until_ready("sshd", proc, log, lambda: _listens(port), timeout=20)
        server = Sshd(port, base / "client_key", getpass.getuser(), base)
        answer = server.ssh("true")
        assert answer.returncode == 0, f"cannot log in: {answer.stderr}\n{log.read_text()}"
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
