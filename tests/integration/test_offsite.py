"""Offsite copies with real restic: its faults, and the secrets it is given.

Real restic on a repository on disk, on a real S3-protocol server (moto, tests/s3.py) and
over real sftp (tests/sshd.py); the real command with the stand-in compose. Every fault
ends in one line and an exit code, leaves the local snapshots as they were and never
touches the stack: `restic` here is a wrapper that notes each call, and whether the
stand-in stack was running, in the stand-in compose's own log.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import KLINK_SYNC, ROOT, error_line, run_cli, tree
from tests.integration.test_hot_cold import ALL, latest, make_deployment, running, set_running
from tests.s3 import S3, s3  # noqa: F401 (the fixture)
from tests.servers import free_port
from tests.sshd import Sshd, sshd  # noqa: F401 (the fixture)

PASSWORD = "klink-restic-pw-3c8e1f0a9d"
DEPLOYMENT = f"k-link@{socket.gethostname()}"  # restic's host: the project on this host
RESTIC = "/usr/bin/restic"
WRAPPER = """#!/bin/sh
# restic as klink-sync runs it, noted in the stand-in compose's log with the stack's state
echo "restic $* [running: $(tr '\\n' ' ' <"$FAKE_COMPOSE_STATE" 2>/dev/null)]" \\
  >>"$FAKE_COMPOSE_LOG"
echo "$$ $*" >>"$KLINK_TEST_RESTIC_PIDS"
exec {restic} "$@"
"""


class Site:
    """A deployment, its local destination, a config file with an `offsite:` section, and
    the environment of the stand-in compose with the noting restic wrapper first in PATH."""

    def __init__(self, base: Path, klink_env: dict, repository: str, made: bool = False,
                 **offsite: object):  # fmt: skip
        """A new site in `base`; `made`: one already there (a copy of another)."""
        self.base, self.folder, self.dest = base, base / "k-link", base / "backup"
        self.password, self.pids = base / "restic-password", base / "restic.pids"
        self.log = Path(klink_env["FAKE_COMPOSE_LOG"])
        if not made:
            base.mkdir(parents=True, exist_ok=True)
            assert make_deployment(base) == self.folder
            self.password.write_text(PASSWORD + "\n")
            self.password.chmod(0o600)
            (base / "bin").mkdir()
            (base / "bin" / "restic").write_text(WRAPPER.format(restic=RESTIC))
            (base / "bin" / "restic").chmod(0o755)
        self.env = {**klink_env, "PATH": f"{base / 'bin'}:{os.environ['PATH']}",
                    "KLINK_TEST_RESTIC_PIDS": str(self.pids)}  # fmt: skip
        set_running(self.env, ALL)
        self.config = base / "config.yml"
        self.offsite = {"repository": repository, "password_file": str(self.password),
                        **offsite}  # fmt: skip
        self.extra: dict = {}
        self.write_config()

    def write_config(self, **extra: object) -> None:
        self.extra.update(extra)
        settings = {"folder": str(self.folder), "dest": str(self.dest), "offsite": self.offsite,
                    **self.extra}  # fmt: skip
        self.config.write_text(yaml.safe_dump(settings))

    def cli(self, *args: object, check: int | None = 0, **kw) -> subprocess.CompletedProcess:
        return run_cli(*args, "--config", self.config, env=self.env, check=check, **kw)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def _compose_calls(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.startswith("restic ")]


def _offsite_step(site: Site, *args: object, check: int | None = 0) -> subprocess.CompletedProcess:
    """An `offsite` command: it never calls compose and leaves the local snapshots alone."""
    before_calls, before = site.calls(), _local_snapshots(site.dest)
    proc = site.cli("offsite", *args, check=check)
    new = site.calls()[len(before_calls):]
    assert _compose_calls(new) == [], new
    assert running(site.env) == ALL
    assert _local_snapshots(site.dest) == before
    return proc


def _local_snapshots(dest: Path) -> tuple:
    """The snapshots (every file's content, mode, times) and where latest points."""
    if not dest.exists():
        return ()
    link = dest / "latest"
    return tree(dest / "snapshots"), os.readlink(link) if link.is_symlink() else None


def _one_line(proc: subprocess.CompletedProcess) -> str:
    """The error: one line on stderr, nothing else there (no -v)."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return error_line(proc.stderr)


def _pushed(base: Path, klink_env: dict) -> Site:
    """A local repository, made, and one hot-cold run that pushed its snapshot."""
    site = Site(base, klink_env, str(base / "repo"))
    assert "created the restic repository" in _offsite_step(site, "init").stdout
    site.cli("hot-cold")
    return site


@pytest.fixture(scope="module")
def pushed_site(tmp_path_factory) -> Path:
    """One pushed site for the module; each test gets a copy of it (restic's key derivation
    makes every restic command take half a second: made once, it is copied in no time)."""
    base = tmp_path_factory.mktemp("offsite")
    klink_env = {"KLINK_SYNC_COMPOSE": str(ROOT / "tests" / "integration" / "fake-compose"),
                 "FAKE_COMPOSE_STATE": str(base / "running"),
                 "FAKE_COMPOSE_LOG": str(base / "compose.log")}  # fmt: skip
    return _pushed(base / "site", klink_env).base


@pytest.fixture
def site(pushed_site: Path, tmp_path: Path, klink_env: dict) -> Site:
    base = tmp_path / "site"
    shutil.copytree(pushed_site, base, symlinks=True)
    return Site(base, klink_env, str(base / "repo"), made=True)


def _listing(site: Site) -> list[dict]:
    return json.loads(site.cli("offsite", "snapshots", "--json").stdout)


# --- a backup with a push, and the pull of what it pushed -------------------------------------


def test_a_backup_pushes_once_the_stack_is_up_and_a_pull_brings_back_the_same_tree(
    tmp_path: Path, klink_env: dict
):
    site = _pushed(tmp_path / "site", klink_env)
    snap = latest(site.dest)
    calls = site.calls()
    backup = [i for i, c in enumerate(calls) if c.startswith("restic ") and " backup " in c]
    assert len(backup) == 1, calls
    last_start = max(i for i, c in enumerate(calls) if " start " in c)
    assert backup[0] > last_start, calls  # pushed after the restart, not during the downtime
    assert calls[backup[0]].endswith("[running: database engine kbox ]"), calls[backup[0]]
    assert all(PASSWORD not in c for c in calls)  # never on restic's command line
    found = _listing(site)
    assert [s["snapshot"] for s in found] == [snap.name]
    assert found[0]["deployment"] == DEPLOYMENT and found[0]["mode"] == "hot-cold"

    elsewhere = tmp_path / "elsewhere"
    proc = _offsite_step(site, "pull", "latest", "--dest", elsewhere)
    assert f"pulled {snap.name} ({DEPLOYMENT}) into {elsewhere}/snapshots/{snap.name}" in (
        proc.stdout)  # fmt: skip
    pulled = latest(elsewhere)
    assert pulled.name == snap.name
    assert tree(pulled) == tree(snap)  # modes, owners, times, content: all of it
    assert stat.S_IMODE(pulled.stat().st_mode) == stat.S_IMODE(snap.stat().st_mode)
    assert not (elsewhere / ".staging").exists()
    run_cli("verify", "--dest", elsewhere, env=site.env)  # its own SHA256SUMS agree


def test_init_twice_refuses_the_second(site: Site):
    proc = _offsite_step(site, "init", check=2)
    line = _one_line(proc)
    assert "already a restic repository" in line and "nothing done" in line
    assert len(_listing(site)) == 1  # the repository is as it was


def test_a_pull_of_a_snapshot_already_here_refuses(site: Site):
    name = latest(site.dest).name
    proc = _offsite_step(site, "pull", name, check=2)
    assert f"snapshots/{name} is already here: nothing pulled" in _one_line(proc)
    proc = _offsite_step(site, "pull", "latest", check=2)
    assert "is already here" in _one_line(proc)
    assert not (site.dest / ".staging").exists()


def test_prune_dry_run_names_what_prune_then_forgets(site: Site):
    first = latest(site.dest).name
    time.sleep(1)  # a new snapshot name
    site.cli("hot-cold")
    second = latest(site.dest).name
    # keep_daily 7 (the default): of two snapshots on one day the newer is kept
    proc = _offsite_step(site, "prune", "--dry-run")
    assert proc.stdout.strip().endswith(
        f"2 snapshots; prune would forget 1: {first} ({DEPLOYMENT})")  # fmt: skip
    proc = _offsite_step(site, "prune")  # the dry run forgot nothing: this one does
    assert "1 snapshots forgotten, 1 kept, space freed" in proc.stdout
    assert [s["snapshot"] for s in _listing(site)] == [second]


# --- faults -----------------------------------------------------------------------------------


def test_a_wrong_password_fails_saying_so_and_never_prints_it(site: Site):
    site.password.write_text("not-the-password-7e2b\n")
    for args in (("push",), ("snapshots",), ("check",), ("pull", "latest", "--dest",
                                                       site.base / "other")):  # fmt: skip
        proc = _offsite_step(site, *args, check=1)
        line = _one_line(proc)
        assert "wrong password" in line, line
        assert "not-the-password-7e2b" not in proc.stdout + proc.stderr
    assert not (site.base / "other" / "snapshots").exists()


@pytest.mark.parametrize("key", ["password_file", "environment_file"])
def test_a_secret_file_others_can_read_is_refused_before_restic_runs(site: Site, key: str):
    if key == "environment_file":
        path = site.base / "offsite.env"
        path.write_text("AWS_ACCESS_KEY_ID=AKIAKLINKOFFSITE7Q3Z\n")
        site.offsite["environment_file"] = str(path)
        site.write_config()
    path = Path(site.offsite[key])
    path.chmod(0o644)
    site.pids.unlink()
    for args in (("push",), ("snapshots",), ("init",)):
        proc = _offsite_step(site, *args, check=2)
        assert _one_line(proc) == (f"klink-sync: error: {path}: offsite.{key}: mode 0644 lets "
                                   "others read it: chmod 600 it")  # fmt: skip
    assert not site.pids.exists()  # restic never ran
    # a backup still makes its snapshot; the push fails, said in one line, exit 1
    before = latest(site.dest)
    proc = site.cli("hot-cold", check=1)
    assert latest(site.dest) != before and running(site.env) == ALL
    assert f"the snapshot {latest(site.dest).name} is kept; the offsite push failed" in \
        error_line(proc.stderr)  # fmt: skip


def test_an_unreachable_repository_fails_fast_in_one_line(tmp_path: Path, klink_env: dict):
    port = free_port()  # nothing listens there
    repository = f"s3:http://127.0.0.1:{port}/klink-offsite-tests/gone"
    site = Site(tmp_path / "site", klink_env, repository)
    site.cli("hot-cold", check=1)  # a local snapshot first (its push fails)
    site.log.write_text("")
    began = time.monotonic()
    proc = _offsite_step(site, "push", check=1)
    assert time.monotonic() - began < 30
    line = _one_line(proc)
    assert f"({repository})" in line and "connection refused" in line, line
    proc = _offsite_step(site, "snapshots", check=1)
    assert "connection refused" in _one_line(proc)


@pytest.mark.parametrize("password", ["Kq7%rT9wZx", "Kq7%41T9wZx"])
def test_a_password_in_the_repository_url_is_never_shown(tmp_path: Path, klink_env: dict,
                                                          password: str):  # fmt: skip
    """Review: restic quoted a REST URL it could not parse (a raw `%`), password and all,
    into the error line, the report and the hooks' KLINK_SYNC_ERROR."""
    repository = f"rest:https://backup:{password}@127.0.0.1:{free_port()}/repo"
    site = Site(tmp_path / "site", klink_env, repository)
    seen = tmp_path / "hook-saw"
    hook = f'printf %s "$KLINK_SYNC_ERROR" > {seen}'
    site.write_config(hooks={"shell": True, "on_failure": [hook]})
    runs = [site.cli("offsite", "init", "-v", check=None),
            site.cli("hot-cold", "--json", "-v", check=None)]  # fmt: skip
    said = "".join(r.stdout + r.stderr for r in runs) + seen.read_text()
    assert [r.returncode for r in runs] == [1, 1], said
    assert "T9wZx" not in said and "Kq7%" not in said and "KqA" not in said, said


def test_a_backup_whose_push_fails_keeps_its_snapshot_and_the_stack_runs(
    tmp_path: Path, klink_env: dict
):
    site = Site(tmp_path / "site", klink_env, str(tmp_path / "never-made"))
    proc = site.cli("hot-cold", "--json", check=1)
    report = json.loads(proc.stdout)
    assert report["result"] == "ok" and report["offsite"]["result"] == "failed"
    snap = latest(site.dest)
    assert snap.name == report["snapshot"] and (snap / "SHA256SUMS").is_file()
    assert running(site.env) == ALL
    assert error_line(proc.stderr).startswith(
        f"klink-sync: error: the snapshot {snap.name} is kept; the offsite push failed: ")
    calls = site.calls()
    first_restic = next(i for i, c in enumerate(calls) if c.startswith("restic "))
    assert max(i for i, c in enumerate(calls) if " start " in c) < first_restic


def test_a_full_disk_during_a_pull_promotes_nothing(site: Site, tmp_path: Path):
    """The pull's destination is a 512 KiB tmpfs, in a mount namespace of its own."""
    small = tmp_path / "small"
    small.mkdir()
    out, err = tmp_path / "pull.out", tmp_path / "pull.err"
    script = ('mount -t tmpfs -o size=512k,mode=0700 klink-test "$0" && '
              '{ "$@" >"$OUT" 2>"$ERR"; code=$?; cd "$0" && find . | sort; exit $code; }')
    argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(small),
            KLINK_SYNC, "offsite", "pull", "latest", "--dest", str(small), "--config",
            str(site.config)]  # fmt: skip
    env = {**os.environ, **site.env, "OUT": str(out), "ERR": str(err)}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    stderr = err.read_text()
    assert proc.returncode == 1, (proc.returncode, proc.stderr, out.read_text(), stderr)
    line = _one_line(subprocess.CompletedProcess(argv, 1, "", stderr))
    assert "no space left on device (" in line and "errors in all)" in line, line
    left = proc.stdout.split()
    assert "./snapshots" in left and not [p for p in left if p.startswith("./snapshots/")]
    assert "./latest" not in left
    assert not [p for p in left if p.startswith("./.staging")], left  # its space given back
    assert list(small.iterdir()) == []  # nothing reached the real folder under the tmpfs


def _alive(pid: int) -> bool:
    """Running (a zombie left to a parent that does not reap is dead all the same)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_an_interrupted_push_leaves_no_restic_behind_and_the_next_push_goes_through(
    tmp_path: Path, klink_env: dict
):
    repo = tmp_path / "repo"
    site = Site(tmp_path / "site", klink_env, str(repo), after_backup=False,
                limit_upload=1024)  # fmt: skip
    big = site.folder / "storage/data/documents/big.bin"
    big.write_bytes(os.urandom(6 * 2**20))  # some 6 s at 1 MiB/s
    _offsite_step(site, "init")
    site.cli("hot-cold")
    before = _local_snapshots(site.dest)
    klink = subprocess.Popen([KLINK_SYNC, "offsite", "push", "--config", str(site.config)],
                             env={**os.environ, **site.env}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not (site.pids.exists() and " backup " in site.pids.read_text()):
        assert klink.poll() is None and time.monotonic() < deadline, klink.communicate()
        time.sleep(0.05)
    time.sleep(1.5)  # restic holds its lock and is uploading
    assert list((repo / "locks").iterdir())
    klink.send_signal(signal.SIGTERM)
    _, stderr = klink.communicate(timeout=30)
    backup_pid = int(next(line for line in site.pids.read_text().splitlines()
                          if " backup " in line).split()[0])  # fmt: skip
    time.sleep(0.5)
    assert not _alive(backup_pid), "restic went on after klink-sync ended"
    assert klink.returncode == 1, (klink.returncode, stderr)
    assert "interrupted by SIGTERM" in error_line(stderr)
    assert _local_snapshots(site.dest) == before
    assert list((repo / "locks").iterdir()), "the killed restic's lock is left"

    site.offsite["limit_upload"] = 0
    site.write_config()
    _offsite_step(site, "check")  # an exclusive lock: the stale one must not block it
    pushed = json.loads(_offsite_step(site, "push", "--json").stdout)
    assert pushed["result"] == "ok" and pushed["snapshot"] == latest(site.dest).name
    # the interrupted push left no snapshot: only this one is there
    assert [s["snapshot"] for s in _listing(site)] == [pushed["snapshot"]]
    assert list((repo / "locks").iterdir()) == []


def test_push_and_pull_refuse_a_destination_over_ssh(
    site: Site, sshd: Sshd, tmp_path: Path  # noqa: F811
):
    """restic runs here: it can read or write only this host's folders."""
    spec, real = sshd.far("offsite-pull")
    real.mkdir(parents=True)
    here = Path(spec.partition(":")[2])  # the same path on this side (an empty folder)
    site.env.update(sshd.env)
    for args in (("pull", "latest", "--dest", spec), ("push", "--dest", spec)):
        proc = _offsite_step(site, *args, check=2)
        line = _one_line(proc)
        assert f"{spec}: not on this host" in line and "restic runs here" in line, line
        assert not here.exists() and list(real.iterdir()) == []


# --- secrets ------------------------------------------------------------------------------------


def test_secrets_reach_restic_only(tmp_path: Path, klink_env: dict, s3: S3):  # noqa: F811
    """The password and the S3 keys: in no output of any offsite command with -v, nor in
    the manifest, the metrics file, the hooks' environment or restic's command lines."""
    env_file = s3.environment_file(tmp_path / "offsite.env")
    site = Site(tmp_path / "site", klink_env, s3.repository(f"secrets-{os.getpid()}"),
                environment_file=str(env_file), check_subset="100%")  # fmt: skip
    prom, hook_env = tmp_path / "klink_sync.prom", tmp_path / "hook.env"
    site.write_config(metrics_file=str(prom),
                      hooks={"after": [["sh", "-c", f"env > {shlex.quote(str(hook_env))}"]]})
    outputs = [_offsite_step(site, "init", "-v"), site.cli("hot-cold", "-v")]
    snap = latest(site.dest)
    for args in (("push", "-v"), ("snapshots", "--json", "-v"), ("check", "-v"),
                 ("pull", "latest", "--dest", tmp_path / "pulled", "-v"), ("prune", "-v")):
        outputs.append(_offsite_step(site, *args))
    outputs.append(_offsite_step(site, "pull", snap.name, "-v", check=2))  # a failure too
    assert [s["snapshot"] for s in _listing(site)] == [snap.name]
    assert tree(latest(tmp_path / "pulled")) == tree(snap)
    assert "klink_sync_offsite_last_push_success" in prom.read_text()
    assert "KLINK_SYNC_OFFSITE=ok" in hook_env.read_text()
    assert all("run: restic" in proc.stderr for proc in outputs[2:-1])  # -v shows the commands
    assert len(s3.objects(f"secrets-{os.getpid()}/data/")) > 0
    texts = {"manifest.json": (snap / "manifest.json").read_text(), "metrics": prom.read_text(),
             "hook environment": hook_env.read_text(),
             "restic command lines": "\n".join(site.calls()),
             "offsite.json": (site.dest / "offsite.json").read_text()}  # fmt: skip
    for proc in outputs:
        texts[shlex.join(proc.args[1:4])] = proc.stdout + proc.stderr
    for secret in (PASSWORD, *s3.secrets):
        for what, text in texts.items():
            assert secret not in text, f"{secret!r} in {what}"


# --- one restic command per push, and the two causes it mends ---------------------------------


def _restic_calls(site: Site, since: int) -> list[str]:
    return [c.split(" [running")[0] for c in site.calls()[since:] if c.startswith("restic ")]


def test_a_push_is_one_restic_command_with_the_noted_push_as_parent(site: Site):
    first = _listing(site)[0]
    site.cli("hot-cold")  # pushes
    since = len(site.calls())
    site.cli("hot-cold")
    calls = _restic_calls(site, since)
    assert len(calls) == 1 and " backup " in calls[0], calls
    noted = json.loads((site.dest / "offsite.json").read_text())
    assert noted["deployment"] == DEPLOYMENT and noted["result"] == "ok"
    assert f"--parent {noted['restic_id']}" not in calls[0]  # the parent is the one before
    assert "--parent " in calls[0] and first["id"] not in calls[0]


def test_a_noted_parent_the_repository_lost_is_looked_up_and_the_push_goes_through(site: Site):
    status = site.dest / "offsite.json"
    noted = json.loads(status.read_text())
    status.write_text(json.dumps({**noted, "restic_id": "deadbeef",
                                  "repository": str(site.base / "repo")}))  # this copy's
    since = len(site.calls())
    proc = site.cli("offsite", "push", "--json")
    assert json.loads(proc.stdout)["result"] == "ok"
    calls = _restic_calls(site, since)
    assert [c.split()[1] for c in calls] == ["backup", "snapshots", "backup"], calls
    assert "--parent deadbeef" in calls[0]
    assert f"--parent {_listing(site)[0]['id']}" in calls[2]  # the push restic does have


def test_a_stale_exclusive_lock_is_removed_and_the_push_goes_through(site: Site):
    # what a `check` or `prune` killed by SIGKILL leaves: an exclusive lock of a dead process
    locks = site.base / "repo" / "locks"
    planted = subprocess.Popen(
        [RESTIC, "-r", str(site.base / "repo"), "--password-file", str(site.password),
         "check", "--read-data"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    for _ in range(200):
        if locks.is_dir() and any(locks.iterdir()):
            break
        time.sleep(0.05)
    planted.kill()
    planted.wait()
    planted_locks = set(os.listdir(locks))
    assert planted_locks, "no lock planted"
    proc = site.cli("offsite", "push", "--json")
    assert json.loads(proc.stdout)["result"] == "ok"
    assert not planted_locks & set(os.listdir(locks))  # the dead check's lock is gone


# --- the hostile review's findings ---------------------------------------------------------------


def test_a_failed_push_fails_the_run_for_the_hooks_the_ping_and_the_metrics(
    tmp_path: Path, klink_env: dict
):
    site = Site(tmp_path / "site", klink_env, str(tmp_path / "never-made"))
    seen = tmp_path / "hook.env"
    hook = ["sh", "-c", f'env | grep ^KLINK_SYNC_ > "{seen}.$KLINK_SYNC_STATUS"']
    site.write_config(hooks={"after": [hook], "on_failure": [hook]},
                      metrics_file=str(tmp_path / "k.prom"))  # fmt: skip
    proc = site.cli("hot-cold", "--json", check=1)
    snapshot = json.loads(proc.stdout)["snapshot"]
    assert not Path(f"{seen}.ok").exists()  # no `after` hook: the run did not succeed
    failed = dict(line.split("=", 1) for line in Path(f"{seen}.failed").read_text().split("\n")
                  if line)  # fmt: skip
    assert failed["KLINK_SYNC_OFFSITE"] == "failed" and failed["KLINK_SYNC_EXIT_CODE"] == "1"
    assert failed["KLINK_SYNC_SNAPSHOT"] == snapshot
    assert "the offsite push failed" in failed["KLINK_SYNC_ERROR"]
    prom = (tmp_path / "k.prom").read_text()
    assert re.search(r"^klink_sync_last_run_success\{[^}]*\} 0$", prom, re.M), prom
    assert re.search(r"^klink_sync_offsite_last_push_success\{[^}]*\} 0$", prom, re.M), prom


def _forge(site: Site, name: str) -> None:
    """A snapshot someone with the password put in the repository, with a name of theirs."""
    forged = site.base / "forged"
    forged.mkdir()
    (forged / "x").write_text("hi\n")
    (forged / "manifest.json").write_text('{"project": "k-link", "mode": "hot-cold"}')
    (forged / "SHA256SUMS").write_text(
        hashlib.sha256(b"hi\n").hexdigest() + "  x\n")  # fmt: skip
    subprocess.run([RESTIC, "-r", str(site.base / "repo"), "--password-file",
                    str(site.password), "backup", "-q", "--host", "k-link@elsewhere",
                    "--tag", f"klink-sync,snapshot:{name},deployment:k-link@elsewhere", "."],
                   cwd=forged, check=True, capture_output=True)  # fmt: skip


@pytest.mark.parametrize("name", ["../../escaped", "9999-01-01T00-00-00Z/../../escaped"])
def test_a_snapshot_name_from_the_repository_never_leads_out_of_the_destination(
    site: Site, tmp_path: Path, name: str
):
    _forge(site, name)
    assert [s["snapshot"] for s in _listing(site)] == [latest(site.dest).name]  # not shown
    elsewhere = tmp_path / "pulled" / "dest"
    elsewhere.parent.mkdir()
    proc = site.cli("offsite", "pull", name, "--dest", elsewhere, check=2)
    assert "no offsite snapshot named" in error_line(proc.stderr)
    site.cli("offsite", "pull", "latest", "--dest", elsewhere)  # the real one only
    assert sorted(os.listdir(tmp_path / "pulled")) == ["dest"]
    assert not (site.base / "escaped").exists() and not (tmp_path / "escaped").exists()
    assert os.listdir(elsewhere / "snapshots") == [latest(site.dest).name]


UTS = 'hostname "$0" && exec "$@"'


def test_two_sites_with_the_same_project_name_stay_apart_in_one_repository(site: Site):
    """Site B is a copy of site A's folder (project k-link) on another host (a UTS
    namespace of its own), pushing into the same repository."""
    other = site.base.parent / "site-b"
    shutil.copytree(site.folder, other / "k-link", symlinks=True)
    config_b = site.base.parent / "b.yml"
    config_b.write_text(site.config.read_text().replace(str(site.folder), str(other / "k-link"))
                        .replace(str(site.dest), str(other / "backup")))  # fmt: skip
    argv = ["unshare", "-u", "sh", "-c", UTS, "site-b.example", KLINK_SYNC, "hot-cold",
            "--config", str(config_b), "--json"]  # fmt: skip
    proc = subprocess.run(argv, env={**os.environ, **site.env}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    pushed_b = json.loads(proc.stdout)["offsite"]
    assert pushed_b["files_unmodified"] == 0  # B's push did not take A's as its parent
    hosts = {s["host"] for s in _listing(site)}
    assert len(hosts) == 2 and any(h.endswith("@site-b.example") for h in hosts), hosts
    out = site.cli("offsite", "prune", "--dry-run").stdout
    assert "would forget 0" in out, out  # each site's one push is its latest: kept
    proc = site.cli("offsite", "pull", "latest", "--dest", site.base / "p", check=2)
    assert "several deployments" in error_line(proc.stderr)
